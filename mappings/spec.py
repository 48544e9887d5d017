"""The parsed form of a mapping file (映射定义): plain frozen dataclasses, no I/O.

:func:`parse_spec` turns the YAML data (already schema-checked) into these objects; the
engine (:mod:`mappings.engine`) applies them to batches.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from mappings.canonical.models import ENTITIES, personal_kinds

NormalizerRef = tuple[str, tuple[tuple[str, Any], ...]]


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field ← a source field or a small expression, then normalisers."""

    name: str
    source: str | None = None
    coalesce: tuple[str, ...] = ()
    concat: tuple[str, ...] = ()
    sep: str = ""
    const: Any = None
    has_const: bool = False
    normalizers: tuple[NormalizerRef, ...] = ()
    required: bool = False

    @property
    def source_paths(self) -> tuple[str, ...]:
        if self.source is not None:
            return (self.source,)
        return self.coalesce or self.concat


@dataclass(frozen=True)
class AttributeSpec:
    """A department's own field (部门自有字段): not in the canonical entity, kept typed beside it.

    ``type`` is ``text``, ``date``, ``number`` or ``integer``; ``personal`` its personal-data
    kind (:class:`hub.masking.Personal`), so its values are masked by what they are;
    ``allowed`` the only values validation accepts; ``golden`` whether the identity's golden
    record carries it (the declaring department ranks first for it).
    """

    field: FieldSpec
    type: str
    personal: str | None = None
    allowed: tuple[Any, ...] = ()
    golden: bool = True
    description: str = ""

    @property
    def name(self) -> str:
        return self.field.name


@dataclass(frozen=True)
class RelationSpec:
    """Another identity a record names by role (a person's employer by USCC): the code in
    ``field`` is resolved as ``identity_kind`` (through the cross-walk for old codes)."""

    role: str
    field: str
    identity_kind: str
    kind: str = "auto"


@dataclass(frozen=True)
class NestedSpec:
    """A canonical list field built from a repeated source element (e.g. owners ← Owner)."""

    name: str
    source: str | None
    fields: tuple[FieldSpec, ...]
    split: str | None = None


@dataclass(frozen=True)
class IdentifierSpec:
    """A field whose value the identity step resolves, and as what kind of code."""

    field: str
    kind: str
    kind_field: str | None = None
    role: str = "holder"
    resolve: bool = True


@dataclass(frozen=True)
class LicenseSpec:
    """Which licence type a record yields, and from which canonical fields."""

    type_code: str
    number: str
    holder_code: str
    holder_name: str
    holder_kind: str | None = None
    issue_date: str | None = None
    valid_until: str | None = None
    status: str | None = None
    issuer_code: str | None = None
    when: MappingABC[str, Any] | None = None
    surface: MappingABC[str, str] = field(default_factory=dict)

    def referenced_fields(self) -> dict[str, str]:
        """Role → canonical field reference (``owners[].name`` for nested ones)."""
        refs = {
            "number": self.number,
            "holder_code": self.holder_code,
            "holder_name": self.holder_name,
            "holder_kind": self.holder_kind,
            "issue_date": self.issue_date,
            "valid_until": self.valid_until,
            "status": self.status,
            "issuer_code": self.issuer_code,
            "when": (self.when or {}).get("field"),
        }
        refs.update({f"surface.{k}": v for k, v in self.surface.items()})
        return {k: v for k, v in refs.items() if v is not None and v not in _LITERAL_KINDS}


_LITERAL_KINDS = {"person", "enterprise"}


def normalizer_ref(item: Any) -> NormalizerRef:
    """``"trim"`` → ("trim", ()); ``{"status": "commerce"}`` → ("status", (("table", "commerce"),))."""
    if isinstance(item, str):
        return (item, ())
    (name, params), *_ = dict(item).items()
    if isinstance(params, str) and name == "status":
        params = {"table": params}
    if not isinstance(params, MappingABC):
        params = {"value": params}
    return (str(name), tuple(sorted(params.items())))


def field_spec(name: str, raw: Any) -> FieldSpec:
    if isinstance(raw, str):
        return FieldSpec(name=name, source=raw)
    return FieldSpec(
        name=name,
        source=raw.get("from"),
        coalesce=tuple(raw.get("coalesce") or ()),
        concat=tuple(raw.get("concat") or ()),
        sep=str(raw.get("sep", "")),
        const=raw.get("const"),
        has_const="const" in raw,
        normalizers=tuple(normalizer_ref(n) for n in raw.get("normalizers") or ()),
        required=bool(raw.get("required", False)),
    )


@dataclass(frozen=True)
class MappingSpec:
    """Everything a mapping file says, parsed."""

    department: str
    dataset: str
    entity: str
    version: int
    source: MappingABC[str, Any]
    fields: tuple[FieldSpec, ...]
    nested: tuple[NestedSpec, ...]
    identifiers: tuple[IdentifierSpec, ...]
    expectation_suite: str
    quarantine_threshold: float
    licenses: tuple[LicenseSpec, ...]
    schedule: str | None
    pool: str
    source_key: str | None = None
    source_version: str | None = None
    description: str = ""
    #: ``person``, ``enterprise`` or ``none``: what the master index resolves a record to
    identity_kind: str = "none"
    attributes: tuple[AttributeSpec, ...] = ()
    relations: tuple[RelationSpec, ...] = ()

    def attribute_kinds(self) -> dict[str, str]:
        """Own attribute → its personal-data kind (those that have one)."""
        return {a.name: a.personal for a in self.attributes if a.personal}

    @property
    def protocol(self) -> str:
        return str(self.source["protocol"])

    def personal_source_columns(self) -> dict[str, str]:
        """Source field → the personal-data kind of the canonical field it feeds, so a
        department's raw rows (previews, refused rows) are masked by what their values are,
        whatever the department calls its columns."""
        kinds = personal_kinds(self.entity) if self.entity in ENTITIES else {}
        kinds = {**kinds, **self.attribute_kinds()}
        out: dict[str, str] = {}
        for f in (*self.fields, *(a.field for a in self.attributes)):
            if f.name in kinds:
                out.update(dict.fromkeys(f.source_paths, kinds[f.name]))
        for nested in self.nested:
            for f in nested.fields:
                kind = kinds.get(f"{nested.name}[].{f.name}")
                if kind:
                    out.update(dict.fromkeys(f.source_paths, kind))
        return out

    @property
    def conn_id(self) -> str:
        return str(self.source["conn_id"])


def parse_spec(data: MappingABC[str, Any]) -> MappingSpec:
    """Build a :class:`MappingSpec` from schema-valid YAML data."""
    nested = tuple(
        NestedSpec(
            name=name,
            source=raw.get("from"),
            fields=tuple(field_spec(f, r) for f, r in raw["fields"].items()),
            split=raw.get("split"),
        )
        for name, raw in (data.get("nested") or {}).items()
    )
    licenses = tuple(
        LicenseSpec(
            type_code=str(lic["type_code"]),
            number=lic["number"],
            holder_code=lic["holder_code"],
            holder_name=lic["holder_name"],
            holder_kind=lic.get("holder_kind"),
            issue_date=lic.get("issue_date"),
            valid_until=lic.get("valid_until"),
            status=lic.get("status"),
            issuer_code=lic.get("issuer_code"),
            when=lic.get("when"),
            surface=dict(lic.get("surface") or {}),
        )
        for lic in data.get("licenses") or ()
    )
    return MappingSpec(
        department=data["department"],
        dataset=data["dataset"],
        entity=data["entity"],
        version=int(data["version"]),
        source=dict(data["source"]),
        fields=tuple(field_spec(name, raw) for name, raw in data["fields"].items()),
        nested=nested,
        identifiers=tuple(IdentifierSpec(**i) for i in data.get("identifiers") or ()),
        expectation_suite=data["expectation_suite"],
        quarantine_threshold=float(data["quarantine_threshold"]),
        licenses=licenses,
        schedule=data.get("schedule"),
        pool=data["pool"],
        source_key=data.get("source_key"),
        source_version=data.get("source_version"),
        description=data.get("description", ""),
        identity_kind=str(data["identity_kind"]),
        attributes=tuple(
            AttributeSpec(
                field=field_spec(name, raw),
                type=str(raw["type"]),
                personal=raw.get("personal"),
                allowed=tuple(raw.get("allowed") or ()),
                golden=bool(raw.get("golden", True)),
                description=str(raw.get("description", "")),
            )
            for name, raw in (data.get("attributes") or {}).items()
        ),
        relations=tuple(RelationSpec(**r) for r in data.get("relations") or ()),
    )
