"""The licence identifier (电子证照标识), in the spirit of GB/T 36904.

Structure: ``<type code>-<issuing authority code>-<serial><check>``

* type code: 4 characters from the catalogue (``1101`` business licence, ...);
* issuing authority code: the issuing authority's unified social credit code (统一社会信用代码,
  GB 32100: 18 characters, its MOD 31 check character verified by :mod:`identifiers.uscc`), an
  authority registered by the establishment administration — an organ (机关, ``11``) or a
  public institution a law empowers to issue (事业单位, ``12``); :func:`is_issuing_authority`.
  The pipeline's drafts and approval results take a source's code only when it is one; any
  other (a region code, a department's internal authority code) gives way to the authority the
  catalogue registers for the type (:func:`e_license_store.catalogue.issuing_authority`). The
  id pattern itself still reads 6 to 18 characters there, so an id printed under a shorter code
  before keeps parsing;
* serial: 12 base-36 characters taken from SHA-256 of the licence's *source*
  (type, department, dataset, source record key), so re-running an import never mints
  a second licence for the same thing;
* check: one character computed with ISO 7064 MOD 37,36 (the hybrid system for
  alphanumeric strings, the same family GB 32100's organisation code check comes
  from) over the type code, authority code and serial without separators.

The hyphens keep the variable-length authority code parseable; they are not part of
the check.

>>> lid = make_license_id("1101", "113303220025678958", "commerce", "enterprise_registry", "ent-42")
>>> lid
'1101-113303220025678958-...'
>>> is_valid(lid), parse(lid)[1]
(True, '113303220025678958')
>>> is_issuing_authority("113303220025678958"), is_issuing_authority("330322")
(True, False)
>>> is_issuing_authority("91110000600037341L")   # a valid USCC, but an enterprise issues no licence
False
>>> calc_check_char("00000000D07A0090")  # ISAN 0000-0000-D07A-0090-Q, an ISO 7064 MOD 37,36 user
'Q'
"""

from __future__ import annotations

import hashlib
import re

from identifiers import uscc

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SERIAL_LENGTH = 12
_ID_RE = re.compile(r"^([0-9A-Z]{4})-([0-9A-Z]{6,18})-([0-9A-Z]{" + str(SERIAL_LENGTH) + r"})([0-9A-Z])$")


class InvalidLicenseId(ValueError):
    """Not a licence identifier (wrong format or check character)."""


def calc_check_char(payload: str) -> str:
    """ISO 7064 MOD 37,36 check character for ``payload`` (characters ``0-9A-Z``).

    MOD 37,36 is a hybrid system: M = 36, M+1 = 37; its check character is itself from
    ``0-9A-Z``. ``is_valid_check`` below applies the standard's validation rule.
    """
    m = 36
    p = m
    for ch in payload:
        idx = ALPHABET.find(ch)
        if idx < 0:
            raise InvalidLicenseId(f"character {ch!r} not in 0-9A-Z")
        s = (p + idx) % m or m
        p = (s * 2) % (m + 1)
    return ALPHABET[(m + 1 - p) % m]


def is_valid_check(payload_with_check: str) -> bool:
    """ISO 7064 hybrid-system check: running the whole string must end at 1."""
    m = 36
    p = m
    for ch in payload_with_check:
        idx = ALPHABET.find(ch)
        if idx < 0:
            return False
        s = (p + idx) % m or m
        p = (s * 2) % (m + 1)
    return s == 1


def _serial(type_code: str, department: str, dataset: str, source_key: str) -> str:
    digest = hashlib.sha256("\x1f".join((type_code, department, dataset, source_key)).encode("utf-8")).digest()
    n = int.from_bytes(digest[:10], "big")
    out = []
    for _ in range(SERIAL_LENGTH):
        n, r = divmod(n, 36)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def source_serial(type_code: str, department: str, dataset: str, source_key: str) -> str:
    """The serial part of the licence id a source record yields for a type (whoever issues it)."""
    return _serial(type_code, department, dataset, source_key)


#: GB 32100 registration authority 1 (机构编制) and the entity types that issue licences:
#: 1 机关 (organs), 2 事业单位 (public institutions a law empowers, e.g. a registration centre)
ISSUING_ENTITY_TYPES = ("11", "12")


def is_issuing_authority(code: str | None) -> bool:
    """Whether ``code`` is a valid USCC (check character verified) of an organ or public institution."""
    if not code:
        return False
    compact = compact_authority_code(str(code))
    return len(compact) == 18 and compact[:2] in ISSUING_ENTITY_TYPES and uscc.is_valid(compact)


def compact_authority_code(code: str) -> str:
    return re.sub(r"[\s\-]", "", code).upper()


def make_license_id(type_code: str, issuer_code: str, department: str, dataset: str, source_key: str) -> str:
    """The deterministic licence id for a source record."""
    authority = compact_authority_code(issuer_code)
    serial = _serial(type_code, department, dataset, source_key)
    payload = f"{type_code}{authority}{serial}"
    lid = f"{type_code}-{authority}-{serial}{calc_check_char(payload)}"
    validate(lid)
    return lid


def validate(license_id: str) -> str:
    """Return ``license_id`` if well formed with a correct check character, else raise."""
    m = _ID_RE.match(license_id)
    if not m:
        raise InvalidLicenseId(f"not a licence id: {license_id!r}")
    if not is_valid_check("".join(m.groups())):
        raise InvalidLicenseId(f"check character wrong in {license_id!r}")
    return license_id


def is_valid(license_id: str) -> bool:
    try:
        validate(license_id)
    except InvalidLicenseId:
        return False
    return True


def parse(license_id: str) -> tuple[str, str, str]:
    """``(type_code, issuer_code, serial)`` of a valid licence id."""
    validate(license_id)
    m = _ID_RE.match(license_id)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)
