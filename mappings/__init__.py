"""Department mappings: source fields → canonical records, and the canonical model itself."""
