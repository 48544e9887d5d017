"""The catalogue of licence types (电子证照目录): what each type is, who issues it, what its surface shows.

Loaded from ``catalogue.yaml`` and checked against ``catalogue.schema.json`` (plus the
checks a schema cannot express: unique type codes and field names).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from e_license_store.identifier import compact_authority_code, is_issuing_authority
from hub import safe_yaml
from hub.masking import KINDS, mask

HERE = Path(__file__).parent
CATALOGUE_PATH = HERE / "catalogue.yaml"
SCHEMA_PATH = HERE / "catalogue.schema.json"
_log = logging.getLogger(__name__)


class CatalogueError(ValueError):
    """The catalogue file is not valid."""


class UnknownLicenseType(KeyError):
    """A licence type code the catalogue does not list."""


@dataclass(frozen=True)
class SurfaceField:
    name: str
    label: str
    required: bool
    #: the personal-data kind of its values (:class:`hub.masking.Personal`), ``None`` when public
    personal: str | None = None


@dataclass(frozen=True)
class LicenseType:
    """One entry of the catalogue: a licence type (证照类型)."""

    type_code: str
    name: str
    kind: str  # "license" or "approval_result"
    holder_kind: str  # "person", "enterprise" or "any"
    issuer_department: str
    #: the issuing authority's unified social credit code (the issuer when a source names none)
    issuer_code: str
    issuer_name: str
    validity_years: int | None
    retention_years: int
    surface_fields: tuple[SurfaceField, ...]
    name_en: str = ""
    #: the personal-data kind of the licence number itself (``resident_id`` for a resident
    #: identity card, whose number is its holder's resident id); ``None`` when the number is public
    number_personal: str | None = None

    @property
    def is_approval_result(self) -> bool:
        return self.kind == "approval_result"

    @property
    def personal_kinds(self) -> dict[str, str | None]:
        """Each surface field's personal-data kind (the masking policy applies them)."""
        return {f.name: f.personal for f in self.surface_fields}


def validate_catalogue(data: Any) -> None:
    """Raise :class:`CatalogueError` unless ``data`` is a valid catalogue document."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        raise CatalogueError(f"catalogue invalid at {path or '<root>'}: {exc.message}") from exc
    codes = [t["type_code"] for t in data["types"]]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise CatalogueError(f"duplicate type codes: {dupes}")
    for t in data["types"]:
        if not is_issuing_authority(t["issuer_code"]):
            raise CatalogueError(
                f"type {t['type_code']}: issuer_code {t['issuer_code']!r} is no issuing authority's unified social "
                "credit code (GB 32100, check character verified; 11 organ or 12 public institution)"
            )
        names = [f["name"] for f in t["surface_fields"]]
        if len(names) != len(set(names)):
            raise CatalogueError(f"duplicate surface field names in type {t['type_code']}")
        if t.get("number_personal") is not None and t["number_personal"] not in KINDS:
            raise CatalogueError(f"type {t['type_code']}: unknown personal kind {t['number_personal']!r} of its number")
        for f in t["surface_fields"]:
            if f.get("personal") is not None and f["personal"] not in KINDS:
                raise CatalogueError(
                    f"type {t['type_code']} field {f['name']}: unknown personal kind {f['personal']!r} "
                    f"(one of {', '.join(sorted(KINDS))})"
                )


def parse_catalogue(data: Any) -> dict[str, LicenseType]:
    validate_catalogue(data)
    out: dict[str, LicenseType] = {}
    for t in data["types"]:
        fields = tuple(SurfaceField(**f) for f in t["surface_fields"])
        out[t["type_code"]] = LicenseType(**{**t, "surface_fields": fields})
    return out


def load_catalogue(path: Path | None = None) -> dict[str, LicenseType]:
    """The licence types by type code, from ``path`` (default: the packaged catalogue)."""
    if path is None:
        return dict(_default())
    return parse_catalogue(safe_yaml.load_file(path))


@lru_cache(maxsize=1)
def _default() -> dict[str, LicenseType]:
    return parse_catalogue(safe_yaml.load_file(CATALOGUE_PATH))


def license_type(type_code: str) -> LicenseType:
    """The catalogue entry for ``type_code``; :class:`UnknownLicenseType` if absent."""
    try:
        return _default()[type_code]
    except KeyError:
        raise UnknownLicenseType(type_code) from None


def number_shown(type_code: str, number: str, personal: bool) -> str:
    """A licence number as a reader sees it: whole with ``personal`` (``personal:read``), else masked
    by its type's ``number_personal`` kind — a number of no declared kind (or of a type the catalogue
    does not know) is scrubbed, so a resident id in it is masked by its shape all the same.

    >>> number_shown("1201", "330322198001011231", personal=False)
    '330322********1231'
    >>> number_shown("1201", "330322198001011231", personal=True)
    '330322198001011231'
    >>> number_shown("1101", "91330322MA2C8XYD8X", personal=False)
    '91330322MA2C8XYD8X'
    """
    if personal:
        return number
    try:
        kind = license_type(type_code).number_personal
    except UnknownLicenseType:
        kind = None
    return str(mask(number, kind))


def issuing_authority(type_code: str, given: Any) -> str:
    """The issuer a licence of ``type_code`` carries: the source's own when it is an issuing
    authority's USCC, else the authority the catalogue registers for the type — never a region
    code, a department's internal authority code (税务机关代码) or a placeholder.

    >>> issuing_authority("3101", "11330300002567983T")   # the source names its authority
    '11330300002567983T'
    >>> issuing_authority("3101", "330322"), issuing_authority("2101", None)
    ('113303220025679671', '113303220025679671')
    """
    if given is not None and is_issuing_authority(str(given)):
        return compact_authority_code(str(given))
    if given not in (None, ""):
        _not_an_authority(type_code, str(given))
    return license_type(type_code).issuer_code


@lru_cache(maxsize=256)
def _not_an_authority(type_code: str, given: str) -> None:
    """Logged once per type and code: the source's issuer code is no authority's USCC."""
    _log.warning("licence type %s: source issuer %r is not an issuing authority's USCC; issued under %s",
                type_code, given, license_type(type_code).issuer_code)  # fmt: skip
