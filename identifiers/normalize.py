"""Identifier normalisation (代码规范化): clean a code, tell its kind, check it.

The contract (ARCHITECTURE.md): one JSON object per code,
``{"input", "kind", "canonical", "valid", "reason"}``; ``kind`` is one of :data:`KINDS`,
``ambiguous`` or ``unknown``; ``canonical`` is the code's *own* normalised form — the
18-digit form of a 15-digit resident id, the plain nine characters of an organisation code —
never a code looked up elsewhere (that is ``lookup``'s job). A 15-character code without an
explicit kind is ``ambiguous`` and carries ``candidates``: every kind it is valid as.
``reason`` is ``None`` for a valid code, otherwise a stable code (see :class:`Reason`).

>>> normalize("１１０１０５ １９４９１２３１ ００２ｘ")["canonical"]
'11010519491231002X'
>>> r = normalize("D2143569-X"); (r["kind"], r["canonical"], r["valid"])
('org_code', 'D2143569X', True)
>>> r = normalize("110105491231002"); (r["kind"], r["valid"], [c["kind"] for c in r["candidates"]])
('ambiguous', True, ['resident_id_15', 'reg_no'])
>>> normalize("110105491231002", as_kind="resident_id_15")["canonical"]
'11010519491231002X'
>>> normalize("91110000600037341M")["reason"]
'invalid_checksum'
>>> normalize("hello")["kind"], normalize("")["reason"]
('unknown', 'empty')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stdnum.exceptions import ValidationError

from identifiers import org_code, reg_no, resident_id, taxpayer_id, uscc
from identifiers._common import Reason, clean, fail, province_codes, reason_of

__all__ = ["KINDS", "Reason", "normalize", "validator"]

#: The kinds ``--as`` accepts (and ``normalize`` reports besides ``ambiguous``/``unknown``).
KINDS = ("resident_id", "resident_id_15", "uscc", "org_code", "reg_no", "taxpayer_id")
#: Interpretations of a 15-character code, in the order candidates are listed.
FIFTEEN = ("resident_id_15", "reg_no", "taxpayer_id")
_USCC_CHARS = frozenset(uscc.ALPHABET)


def _validate_15(code: str) -> str:
    if len(code) != 15:
        fail(Reason.LENGTH)
    return resident_id.validate(code)


_VALIDATORS: dict[str, Callable[[str], str]] = {
    "resident_id": resident_id.validate,
    "resident_id_15": _validate_15,
    "uscc": uscc.validate,
    "org_code": org_code.validate,
    "reg_no": reg_no.validate,
    "taxpayer_id": taxpayer_id.validate,
}


def validator(kind: str) -> Callable[[str], str]:
    """The ``validate`` function for ``kind`` (one of :data:`KINDS`)."""
    return _VALIDATORS[kind]


def _check(kind: str, code: str) -> str | None:
    """``None`` when ``code`` is a valid ``kind``, else the reason code."""
    try:
        _VALIDATORS[kind](code)
    except ValidationError as exc:
        return reason_of(exc)
    return None


def _canonical(kind: str, code: str, valid: bool) -> str:
    if valid and kind == "resident_id_15":
        return resident_id.to_18(code)
    return code


def _result(raw: Any, kind: str, code: str, reason: str | None) -> dict[str, Any]:
    return {
        "input": raw,
        "kind": kind,
        "canonical": _canonical(kind, code, reason is None),
        "valid": reason is None,
        "reason": reason,
    }


def _guess_18(code: str) -> str:
    """Which kind an invalid 18-character code most likely meant to be."""
    shaped = code[:17].isascii() and code[:17].isdigit() and code[17] in "0123456789X"
    if shaped and code[:2] in province_codes():
        return "resident_id"
    if all(c in _USCC_CHARS for c in code):
        return "uscc"
    return "resident_id" if shaped else "unknown"


def normalize(code: Any, as_kind: str | None = None) -> dict[str, Any]:
    """Normalise one code; see the module docstring for the result's shape."""
    if as_kind is not None and as_kind not in KINDS:
        raise ValueError(f"unknown kind {as_kind!r}; expected one of {', '.join(KINDS)}")
    missing = code is None or (isinstance(code, float) and code != code)  # None or NaN
    cleaned = "" if missing else clean(str(code))
    if not cleaned:
        return {"input": code, "kind": as_kind or "unknown", "canonical": None, "valid": False, "reason": Reason.EMPTY}
    if as_kind is not None:
        kind = "resident_id_15" if as_kind == "resident_id" and len(cleaned) == 15 else as_kind
        return _result(code, kind, cleaned, _check(kind, cleaned))
    n = len(cleaned)
    if n == 18:
        rid, usc = _check("resident_id", cleaned), _check("uscc", cleaned)
        if rid is None and usc is None:
            return _ambiguous(code, cleaned, ["resident_id", "uscc"])
        if rid is None:
            return _result(code, "resident_id", cleaned, None)
        if usc is None:
            return _result(code, "uscc", cleaned, None)
        guess = _guess_18(cleaned)
        reason = {"resident_id": rid, "uscc": usc}.get(guess, Reason.FORMAT)
        return _result(code, guess, cleaned, reason)
    if n == 15:
        return _ambiguous(code, cleaned, [k for k in FIFTEEN if _check(k, cleaned) is None])
    if n == 9:
        return _result(code, "org_code", cleaned, _check("org_code", cleaned))
    if n == 20:
        return _result(code, "taxpayer_id", cleaned, _check("taxpayer_id", cleaned))
    return _result(code, "unknown", cleaned, Reason.LENGTH)


def _ambiguous(raw: Any, cleaned: str, kinds: list[str]) -> dict[str, Any]:
    return {
        "input": raw,
        "kind": "ambiguous",
        "canonical": cleaned,
        "valid": bool(kinds),
        "reason": Reason.AMBIGUOUS if kinds else Reason.NO_INTERPRETATION,
        "candidates": [{"kind": k, "canonical": _canonical(k, cleaned, True)} for k in kinds],
    }
