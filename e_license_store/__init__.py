"""The e-licence repository (电子证照库): catalogue, identifiers, seals, store, lifecycle, index."""
