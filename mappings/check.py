"""Checking a mapping file (映射校验): JSON Schema first, then what a schema cannot know.

Every problem carries the file and the line it points at. Semantic checks: the entity is a
canonical entity, every mapped field is one of its fields, normalisers exist and get the
parameters they need, identifiers and licences name mapped fields, licence type codes are in
the e-licence catalogue, and the entity's required fields are all mapped.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel

from connectors.config import source_schema
from e_license_store.catalogue import CATALOGUE_PATH
from hub import safe_yaml
from mappings.canonical.models import ENTITIES
from mappings.normalizers import normalizer_problems, possible_values
from mappings.spec import normalizer_ref
from mappings.yamlmarks import MarkedDocument, Path_, Problem, load_marked, path_text

SCHEMA_PATH = Path(__file__).parent / "schema" / "mapping.schema.json"
#: Fields every canonical record gets from the engine, never from a mapping.
ENGINE_FIELDS = frozenset({"source"})


@lru_cache(maxsize=1)
def mapping_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def canonical_fields(entity: str) -> dict[str, Any]:
    """Field name → annotation of a canonical entity (without engine-filled fields)."""
    model = ENTITIES[entity]
    return {n: f.annotation for n, f in model.model_fields.items() if n not in ENGINE_FIELDS}


def required_fields(entity: str) -> set[str]:
    model = ENTITIES[entity]
    return {n for n, f in model.model_fields.items() if f.is_required() and n not in ENGINE_FIELDS}


def list_item_model(annotation: Any) -> type[BaseModel] | None:
    """``list[PropertyOwner]`` → PropertyOwner; anything else → None."""
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
    return None


#: where licence types are catalogued (named in problems, so an engineer knows what to edit)
CATALOGUE_FILE = "e_license_store/catalogue.yaml"


def _catalogue_codes() -> set[str] | None:
    """Licence type codes of the e-licence catalogue."""
    data = safe_yaml.load_file(CATALOGUE_PATH)
    return {str(t["type_code"]) for t in data.get("types", [])}


def check_document(doc: MarkedDocument, file: str) -> list[Problem]:
    """Schema and semantic problems of one loaded mapping document."""
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(Problem(file, doc.line_of(path), message, path_text(path)))

    for path, line in doc.duplicate_keys:
        problems.append(Problem(file, line, f"duplicate key {path[-1]!r}", path_text(path)))
    validator = jsonschema.Draft202012Validator(mapping_schema())
    for err in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(err.absolute_path)
        message = err.message
        if err.validator == "oneOf" and err.context:
            # The nearest alternative's complaint says more than "is not valid under any".
            best = min(err.context, key=lambda e: len(list(e.absolute_path)) * -1)
            message = best.message
            path = tuple(best.absolute_path) or path
        add(path, f"schema: {message}")
    if not isinstance(doc.data, Mapping):
        return sorted(problems)
    try:
        problems += _semantic(doc, file)
    except (KeyError, TypeError, AttributeError, ValueError):
        # The schema errors above already say why the document has no usable shape.
        if not problems:
            raise
    return sorted(set(problems))


def _semantic(doc: MarkedDocument, file: str) -> list[Problem]:
    data = doc.data
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(Problem(file, doc.line_of(path), message, path_text(path)))

    problems.extend(_source_problems(doc, file))
    entity = data["entity"]
    if entity not in ENTITIES:
        add(("entity",), f"unknown entity {entity!r} (known: {', '.join(sorted(ENTITIES))})")
        return problems
    problems.extend(_identity_problems(doc, file))
    known = canonical_fields(entity)
    mapped: set[str] = set()
    for name, raw in data["fields"].items():
        if name not in known:
            add(("fields", name), f"unknown canonical field {name!r} of entity {entity!r}")
        elif list_item_model(known[name]) is not None:
            add(("fields", name), f"{name!r} is a list of records: map it under 'nested'")
        mapped.add(name)
        problems.extend(_field_problems(doc, file, ("fields", name), raw))
    nested_fields: dict[str, set[str]] = {}
    for name, raw in (data.get("nested") or {}).items():
        item = list_item_model(known.get(name))
        if item is None:
            add(("nested", name), f"{name!r} is not a list-of-records field of entity {entity!r}")
            continue
        mapped.add(name)
        item_fields = {n for n in item.model_fields if n not in ENGINE_FIELDS}
        nested_fields[name] = set(raw["fields"])
        for sub, sub_raw in raw["fields"].items():
            if sub not in item_fields:
                add(("nested", name, "fields", sub), f"unknown field {sub!r} of {item.entity!r}")  # type: ignore[attr-defined]
            problems.extend(_field_problems(doc, file, ("nested", name, "fields", sub), sub_raw))
    problems.extend(_attribute_problems(doc, file, set(known) | ENGINE_FIELDS))
    mapped.update(data.get("attributes") or {})
    for missing in sorted(required_fields(entity) - mapped):
        add(("fields",), f"required canonical field {missing!r} of entity {entity!r} is not mapped")

    def ref_ok(ref: str) -> bool:
        if "[]." in ref:
            parent, _, child = ref.partition("[].")
            return child in nested_fields.get(parent, set())
        return ref in mapped

    for i, ident in enumerate(data.get("identifiers") or ()):
        for key in ("field", "kind_field"):
            ref = ident.get(key)
            if ref is not None and not ref_ok(ref):
                add(("identifiers", i, key), f"identifier refers to unmapped field {ref!r}")
    roles: set[str] = set()
    for i, rel in enumerate(data.get("relations") or ()):
        if not ref_ok(rel["field"]):
            add(
                ("relations", i, "field"),
                f"relation {rel['role']!r} refers to unmapped field {rel['field']!r} "
                "(map it under fields or attributes)",
            )
        if rel["role"] in roles:
            add(("relations", i, "role"), f"relation role {rel['role']!r} is declared twice")
        roles.add(rel["role"])
        if rel.get("kind", "auto") not in IDENTIFIER_KINDS[rel["identity_kind"]]:
            add(("relations", i, "kind"), f"code kind {rel.get('kind')!r} cannot name {_a(rel['identity_kind'])}")
    if (data.get("relations") or ()) and data.get("identity_kind") == "none":
        add(("relations",), "identity_kind is none: a relation needs the record's own identity to start from")
    codes = _catalogue_codes()
    for i, lic in enumerate(data.get("licenses") or ()):
        if codes is not None and str(lic["type_code"]) not in codes:
            add(
                ("licenses", i, "type_code"),
                f"licence type {lic['type_code']!r} is not in the e-licence catalogue ({CATALOGUE_FILE}; "
                f"types: {', '.join(sorted(codes))})",
            )
        for key in ("number", "holder_code", "holder_name", "issue_date", "valid_until", "status", "issuer_code"):
            ref = lic.get(key)
            if ref is not None and not ref_ok(ref):
                add(("licenses", i, key), f"licence {key} refers to unmapped field {ref!r}")
        kind = lic.get("holder_kind")
        if kind is not None and kind not in ("person", "enterprise") and not ref_ok(kind):
            add(("licenses", i, "holder_kind"), f"holder_kind must be person, enterprise or a mapped field: {kind!r}")
        when = lic.get("when") or {}
        if when and not ref_ok(when["field"]):
            add(("licenses", i, "when", "field"), f"condition refers to unmapped field {when['field']!r}")
        for sname, ref in (lic.get("surface") or {}).items():
            if not ref_ok(ref):
                add(("licenses", i, "surface", sname), f"surface field refers to unmapped field {ref!r}")
    return problems


#: identifier kinds that name a person, and those that name an enterprise (``auto`` fits both)
IDENTIFIER_KINDS = {
    "person": {"resident_id", "auto"},
    "enterprise": {"uscc", "org_code", "reg_no", "taxpayer_id", "auto"},
}
#: identifier roles that name the record's own subject (the identity it resolves to)
SUBJECT_ROLES = ("holder", "applicant", "owner", "subject")


def _a(kind: str) -> str:
    """``an enterprise``, ``a person``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def _identity_problems(doc: MarkedDocument, file: str) -> list[Problem]:
    """The declared ``identity_kind`` against the entity and the identifiers that resolve it."""
    data = doc.data
    out: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        out.append(Problem(file, doc.line_of(path), message, path_text(path)))

    entity, kind = data["entity"], data.get("identity_kind")
    allowed = ENTITIES[entity].identity_kinds
    if not allowed:
        add(
            ("entity",),
            f"canonical entity {entity!r} declares no identity_kinds (set them on its model in "
            "mappings/canonical/models.py: person, enterprise or none)",
        )
        return out
    if kind not in IDENTIFIER_KINDS and kind != "none":
        return out  # the schema says it is not a known kind
    if kind not in allowed:
        add(
            ("identity_kind",),
            f"identity_kind {kind!r} does not fit entity {entity!r} (its identity_kinds: {', '.join(allowed)})",
        )
    subject = [
        (i, ident)
        for i, ident in enumerate(data.get("identifiers") or ())
        if isinstance(ident, Mapping)
        and ident.get("role", "holder") in SUBJECT_ROLES
        and "[]." not in str(ident.get("field", ""))
    ]
    if kind == "none":
        for i, _ident in subject:
            add(
                ("identifiers", i, "role"),
                "identity_kind is none: a top-level identifier cannot name the record's "
                "own identity (use a nested field, or a relation)",
            )
        return out
    if not subject:
        add(
            ("identifiers",),
            f"identity_kind is {kind!r} but no identifier names the record's own identity "
            f"(role holder, applicant, owner or subject; kind {' or '.join(sorted(IDENTIFIER_KINDS[kind]))})",
        )
    for i, ident in subject:
        if ident.get("kind") not in IDENTIFIER_KINDS[kind]:
            add(
                ("identifiers", i, "kind"),
                f"identifier kind {ident.get('kind')!r} cannot name {_a(kind)} "
                f"(identity_kind); use {' or '.join(sorted(IDENTIFIER_KINDS[kind]))}",
            )
    return out


#: columns the identity step adds to a record: an own attribute cannot take their names
RESOLUTION_COLUMNS = frozenset(
    {"canonical_code", "resolved_id", "identity_method", "identity_status", "method", "status"}
)


def _attribute_problems(doc: MarkedDocument, file: str, taken: set[str]) -> list[Problem]:
    """A department's own attributes: new names, working normalisers, allowed values they can meet."""
    data = doc.data
    out: list[Problem] = []
    for name, raw in (data.get("attributes") or {}).items():
        path: Path_ = ("attributes", name)
        if name in taken or name in RESOLUTION_COLUMNS:
            what = "a canonical field of entity " + repr(data["entity"]) if name in taken else "a column the hub adds"
            out.append(
                Problem(
                    file,
                    doc.line_of(path),
                    f"own attribute {name!r} is {what}: an own attribute needs a "
                    "name of its own (the canonical field keeps its meaning; e.g. insurance_status "
                    "beside status)",
                    path_text(path),
                )
            )
        out.extend(_field_problems(doc, file, path, raw))
        if not isinstance(raw, Mapping):
            continue
        if raw.get("golden", True) and data.get("identity_kind") == "none":
            out.append(
                Problem(
                    file,
                    doc.line_of(path),
                    f"own attribute {name!r} is golden but identity_kind is none "
                    "(no identity to carry it): set golden: false",
                    path_text(path),
                )
            )
        allowed = raw.get("allowed")
        if allowed:
            chain = [normalizer_ref(x) for x in raw.get("normalizers") or ()]
            values = possible_values((n, dict(p)) for n, p in chain)
            if "const" in raw and raw["const"] is not None:
                values = frozenset({str(raw["const"])})
            extra = sorted(values - {str(a) for a in allowed}) if values is not None else []
            if extra:
                out.append(
                    Problem(
                        file,
                        doc.line_of((*path, "allowed")),
                        f"own attribute {name!r} allows only "
                        f"{[str(a) for a in allowed]}; its normalisers can yield {extra} (those rows "
                        "would be quarantined)",
                        path_text((*path, "allowed")),
                    )
                )
    return out


def _source_problems(doc: MarkedDocument, file: str) -> list[Problem]:
    """The ``source:`` block against the connectors' own schema."""
    block = doc.data.get("source")
    out: list[Problem] = []
    validator = jsonschema.Draft202012Validator(source_schema())
    for err in validator.iter_errors(block):
        path = ("source", *err.absolute_path)
        out.append(Problem(file, doc.line_of(path), f"source: {err.message}", path_text(path)))
    datasets = block.get("datasets") if isinstance(block, Mapping) else None
    if isinstance(datasets, Mapping) and doc.data.get("dataset") not in datasets:
        path = ("source", "datasets")
        out.append(
            Problem(
                file,
                doc.line_of(path),
                f"source.datasets has no entry for dataset {doc.data.get('dataset')!r}",
                path_text(path),
            )
        )
    return out


def _field_problems(doc: MarkedDocument, file: str, path: Path_, raw: Any) -> list[Problem]:
    if not isinstance(raw, Mapping):
        return []
    out: list[Problem] = []
    for j, item in enumerate(raw.get("normalizers") or ()):
        name, params = normalizer_ref(item)
        for msg in normalizer_problems(name, dict(params)):
            npath = (*path, "normalizers", j)
            out.append(Problem(file, doc.line_of(npath), msg, path_text(npath)))
    return out


def check_text(text: str, file: str = "<text>") -> list[Problem]:
    try:
        doc = load_marked(text, file)
    except safe_yaml.YamlError as exc:
        return [Problem(file, exc.line, exc.message)]
    return check_document(doc, file)


def check_file(path: str | Path) -> list[Problem]:
    """Every problem of the mapping file at ``path`` (empty list: the file is good)."""
    p = Path(path)
    try:
        text = safe_yaml.read_text(p)
    except OSError as exc:
        return [Problem(str(p), 1, f"cannot read: {exc.strerror or exc}")]
    except safe_yaml.YamlError as exc:
        return [Problem(str(p), exc.line, exc.message)]
    return check_text(text, str(p))
