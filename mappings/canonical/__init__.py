"""The canonical model: the record shapes every part of the hub shares (one source of truth).

Each entity is a pydantic model carrying ``SCHEMA_VERSION``; its JSON Schema is generated
from the model (``hub`` never keeps a hand-written copy). Later parts extend these models
by adding optional fields and bumping the minor version; none invents its own shape.
"""

from mappings.canonical.models import (
    ENTITIES,
    SCHEMA_VERSION,
    ApprovalResult,
    Enterprise,
    HolderKind,
    License,
    LicenseStatus,
    Person,
    PersonStatus,
    PropertyOwner,
    PropertyRight,
    QuarantineEntry,
    SourceRef,
    TaxRegistration,
    json_schema,
)

__all__ = [
    "ENTITIES",
    "SCHEMA_VERSION",
    "ApprovalResult",
    "Enterprise",
    "HolderKind",
    "License",
    "LicenseStatus",
    "Person",
    "PersonStatus",
    "PropertyOwner",
    "PropertyRight",
    "QuarantineEntry",
    "SourceRef",
    "TaxRegistration",
    "json_schema",
]
