"""Vectorised identifier normalisation (批量代码规范化) on numpy and pandas.

Gives exactly :func:`identity.normalize.normalize`'s answers for whole columns: the clean-up
is one ``str.translate`` per value (the same table), codes are grouped by length, and every
rule runs over a ``(rows, width)`` matrix of code points with the checks in the scalar
modules' order, so the first failing rule — the reason — is the same. A property test
(tests/identity/test_vectorized.py) holds the two paths to each other.

>>> df = normalize_many(["11010519491231002x", "D2143569-X", "91110000600037341M", None])
>>> for r in records(df):
...     print(r["kind"], r["canonical"], r["valid"], r["reason"])
resident_id 11010519491231002X True None
org_code D2143569X True None
uscc 91110000600037341M False invalid_checksum
unknown None False empty
>>> is_valid_resident_id(pd.Series(["11010519491231002X", "110105194912310021"])).tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from identity import org_code, resident_id, uscc
from identity._common import CLEAN_TABLE, Reason, province_codes, region_end_years, today
from identity.normalize import FIFTEEN, KINDS, normalize

__all__ = [
    "canonical_resident_ids",
    "clean_many",
    "is_valid_org_code",
    "is_valid_resident_id",
    "is_valid_uscc",
    "normalize_many",
    "records",
]

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.integer[Any]]  # integer matrices (uint8 code points, int16 values, int64 sums)
BoolA = npt.NDArray[np.bool_]
ObjA = npt.NDArray[np.object_]

#: Index 0 means "valid"; the rest are the scalar modules' reason codes.
REASONS: tuple[str | None, ...] = (
    None,
    Reason.LENGTH,
    Reason.FORMAT,
    Reason.CHECKSUM,
    Reason.BIRTH_DATE,
    Reason.FUTURE_BIRTH_DATE,
    Reason.REGION,
    Reason.REGION_RETIRED,
    Reason.AUTHORITY,
    Reason.ENTITY_TYPE,
    Reason.ORG_CODE,
)
_R = {r: i for i, r in enumerate(REASONS)}
#: Kind codes of the vectorised path (names as the scalar path reports them).
KIND_NAMES: tuple[str, ...] = ("unknown", "ambiguous", *KINDS)
_K = {k: i for i, k in enumerate(KIND_NAMES)}


# --- lookup tables -------------------------------------------------------------------------


def _lut(chars: str, values: Iterable[int] | None = None, default: int = -1) -> I64:
    table = np.full(128, default, dtype=np.int16)
    for char, value in zip(chars, values if values is not None else range(len(chars)), strict=True):
        table[ord(char)] = value
    return table


_DIGIT = _lut("0123456789")
_ORG_VALUE = _lut(org_code.ALPHABET)
_USCC_VALUE = _lut(uscc.ALPHABET)
_RID_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RID_CHECK = np.array([ord(c) for c in "10X98765432"], dtype=np.int64)
_ORG_WEIGHTS = np.array(org_code.WEIGHTS, dtype=np.int64)
_USCC_WEIGHTS = np.array(uscc.WEIGHTS, dtype=np.int64)
_USCC_CHARS = np.array([ord(c) for c in uscc.ALPHABET], dtype=np.int64)
_AUTHORITY = np.zeros(128, dtype=bool)
_AUTHORITY[[ord(a) for a in uscc.AUTHORITIES]] = True
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@cache
def _region_end() -> npt.NDArray[np.int16]:
    """Last year each 6-digit code was in use (0: never assigned), indexed by the code."""
    table = np.zeros(1_000_000, dtype=np.int16)
    for code, end in region_end_years().items():
        table[int(code)] = end
    for prefix in {code[:4] for code in region_end_years()}:
        if table[int(prefix + "00")] == 0:
            table[int(prefix + "00")] = 9999
    return table


@cache
def _registration_province() -> BoolA:
    table = np.zeros(100, dtype=bool)
    for code in province_codes():
        table[int(code)] = True
    table[10] = True
    return table


@cache
def _entity_types() -> BoolA:
    """``[authority code point, type code point]`` → allowed (GB 32100 Annex A)."""
    table = np.zeros((128, 128), dtype=bool)
    for authority, types in uscc.ENTITY_TYPES.items():
        for entity_type in types:
            table[ord(authority), ord(entity_type)] = True
    return table


# --- helpers -------------------------------------------------------------------------------


def _ascii(m: U32) -> I64:
    """Code points, with anything beyond ASCII folded to 0 (never a valid character)."""
    return np.where(m < 128, m, 0).astype(np.uint8)


def _number(values: I64) -> I64:
    """Decimal value of a digit matrix (assumes digits)."""
    out = np.zeros(values.shape[0], dtype=np.int64)
    for col in range(values.shape[1]):
        out = out * 10 + values[:, col]
    return out


class _Reasons:
    """First failing rule per row: later rules never overwrite an earlier reason."""

    def __init__(self, n: int) -> None:
        self.codes = np.zeros(n, dtype=np.int8)

    def fail(self, bad: Any, reason: str) -> None:
        self.codes[(self.codes == 0) & bad] = _R[reason]

    @property
    def ok(self) -> BoolA:
        return self.codes == 0


# --- per-kind rules (same order as the scalar modules) -------------------------------------


def _resident_id(m: U32) -> npt.NDArray[np.int8]:
    """GB 11643 rules over an (n, 18) or (n, 15) matrix; see :func:`identity.resident_id.validate`."""
    c = _ascii(m)
    n, width = c.shape
    r = _Reasons(n)
    d = _DIGIT[c]
    body = d[:, :17] if width == 18 else d
    fmt = (body >= 0).all(axis=1)
    if width == 18:
        fmt &= (d[:, 17] >= 0) | (c[:, 17] == ord("X"))
    r.fail(~fmt, Reason.FORMAT)
    dz = np.where(d >= 0, d, 0)
    region = _number(dz[:, :6])
    end = _region_end()[region].astype(np.int64)
    r.fail(end == 0, Reason.REGION)
    if width == 18:
        year, month, day = _number(dz[:, 6:10]), _number(dz[:, 10:12]), _number(dz[:, 12:14])
    else:
        year, month, day = 1900 + _number(dz[:, 6:8]), _number(dz[:, 8:10]), _number(dz[:, 10:12])
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    exists = month_ok & (day >= 1) & (day <= days) & (year >= 1)
    r.fail(~exists | (year < resident_id.MIN_BIRTH_YEAR), Reason.BIRTH_DATE)
    now = today()
    r.fail(year * 10000 + month * 100 + day > now.year * 10000 + now.month * 100 + now.day, Reason.FUTURE_BIRTH_DATE)
    r.fail(year > end, Reason.REGION_RETIRED)
    if width == 18:
        expected = _RID_CHECK[(dz[:, :17] @ _RID_WEIGHTS) % 11]
        r.fail(c[:, 17] != expected, Reason.CHECKSUM)
    return r.codes


def _org_check_ok(values: I64, check: I64) -> BoolA:
    """GB 11714 check of 8 character values against the check character's code point."""
    value = 11 - (values @ _ORG_WEIGHTS) % 11
    expected = np.where(value == 10, ord("X"), np.where(value == 11, ord("0"), value + ord("0")))
    return np.asarray(check == expected)


def _org_code(m: U32) -> npt.NDArray[np.int8]:
    c = _ascii(m)
    r = _Reasons(c.shape[0])
    v = _ORG_VALUE[c[:, :8]]
    last = c[:, 8]
    fmt = (v >= 0).all(axis=1) & ((_DIGIT[last] >= 0) | (last == ord("X")))
    r.fail(~fmt, Reason.FORMAT)
    r.fail(~_org_check_ok(np.where(v >= 0, v, 0), last), Reason.CHECKSUM)
    return r.codes


def _registration_region_ok(d: I64) -> BoolA:
    """Six digit values → province prefix exists or is 10 (assumes digits checked before)."""
    prefix = np.clip(d[:, 0] * 10 + d[:, 1], 0, 99)
    return np.asarray(_registration_province()[prefix])


def _uscc(m: U32) -> npt.NDArray[np.int8]:
    c = _ascii(m)
    r = _Reasons(c.shape[0])
    v = _USCC_VALUE[c]
    r.fail(~(v >= 0).all(axis=1), Reason.FORMAT)
    d = _DIGIT[c[:, 2:8]]
    r.fail(~(d >= 0).all(axis=1), Reason.FORMAT)
    r.fail(~_AUTHORITY[c[:, 0]], Reason.AUTHORITY)
    r.fail(~_entity_types()[c[:, 0], c[:, 1]], Reason.ENTITY_TYPE)
    r.fail(~_registration_region_ok(np.where(d >= 0, d, 0)), Reason.REGION)
    vz = np.where(v >= 0, v, 0)
    expected = _USCC_CHARS[(31 - (vz[:, :17] @ _USCC_WEIGHTS) % 31) % 31]
    r.fail(c[:, 17] != expected, Reason.CHECKSUM)
    r.fail(_org_code(m[:, 8:17]) != 0, Reason.ORG_CODE)
    return r.codes


def _mod31_ok(m: U32) -> BoolA:
    """Only the GB 32100 MOD 31 check character (a cheap first filter)."""
    v = _USCC_VALUE[_ascii(m)]
    vz = np.where(v >= 0, v, 0).astype(np.int64)
    expected = _USCC_CHARS[(31 - (vz[:, :17] @ _USCC_WEIGHTS) % 31) % 31]
    return np.asarray((v >= 0).all(axis=1) & (_ascii(m)[:, 17] == expected))


def _uscc_given(m: U32, resident_ok: BoolA) -> npt.NDArray[np.int8]:
    """:func:`_uscc` reasons where the row is no valid resident id; for valid resident ids
    only whether the USCC rules hold matters (any failure code will do), so most of those
    rows stop at the cheap MOD 31 filter."""
    out = np.full(len(m), _R[Reason.CHECKSUM], dtype=np.int8)
    full = ~resident_ok
    rid_rows = np.flatnonzero(resident_ok)
    if len(rid_rows):
        full[rid_rows[_mod31_ok(m[rid_rows])]] = True
    idx = np.flatnonzero(full)
    if len(idx):
        out[idx] = _uscc(m[idx])
    return out


def _reg_no(m: U32) -> npt.NDArray[np.int8]:
    c = _ascii(m)
    r = _Reasons(c.shape[0])
    d = _DIGIT[c]
    r.fail(~(d >= 0).all(axis=1), Reason.FORMAT)
    dz = np.where(d >= 0, d, 0)
    r.fail(~_registration_region_ok(dz[:, :6]), Reason.REGION)
    # ISO 7064 MOD 11,10 over all 15 digits: valid when the running remainder ends at 1.
    p = np.full(c.shape[0], 10, dtype=np.int64)
    for col in range(14):
        s = (p + dz[:, col]) % 10
        s[s == 0] = 10
        p = (2 * s) % 11
    r.fail(dz[:, 14] != (11 - p) % 10, Reason.CHECKSUM)
    return r.codes


def _taxpayer_15(m: U32) -> npt.NDArray[np.int8]:
    c = _ascii(m)
    r = _Reasons(c.shape[0])
    d = _DIGIT[c[:, :6]]
    r.fail(~(d >= 0).all(axis=1), Reason.FORMAT)
    v = _ORG_VALUE[c[:, 6:14]]
    last = c[:, 14]
    r.fail(~((v >= 0).all(axis=1) & ((_DIGIT[last] >= 0) | (last == ord("X")))), Reason.FORMAT)
    r.fail(~_registration_region_ok(np.where(d >= 0, d, 0)), Reason.REGION)
    r.fail(~_org_check_ok(np.where(v >= 0, v, 0), last), Reason.CHECKSUM)
    return r.codes


def _taxpayer_20(m: U32) -> npt.NDArray[np.int8]:
    c = _ascii(m)
    r = _Reasons(c.shape[0])
    r.fail(~(_DIGIT[c[:, 18:]] >= 0).all(axis=1), Reason.FORMAT)
    inner = _resident_id(m[:, :18])
    r.codes = np.where(r.codes == 0, inner, r.codes).astype(np.int8)
    return r.codes


def _rules(kind: str, width: int) -> Any:
    """The rule function for ``kind`` at ``width`` characters, or None (wrong length)."""
    table: dict[tuple[str, int], Any] = {
        ("resident_id", 18): _resident_id,
        ("resident_id", 15): _resident_id,
        ("resident_id_15", 15): _resident_id,
        ("uscc", 18): _uscc,
        ("org_code", 9): _org_code,
        ("reg_no", 15): _reg_no,
        ("taxpayer_id", 15): _taxpayer_15,
        ("taxpayer_id", 18): _uscc,
        ("taxpayer_id", 20): _taxpayer_20,
    }
    return table.get((kind, width))


# --- the public surface ---------------------------------------------------------------------


def clean_many(values: Iterable[Any]) -> list[str | None]:
    """The scalar clean-up over many values (``None``/NaN stay ``None``)."""
    table = CLEAN_TABLE
    return [None if v is None or v != v else str(v).translate(table) for v in values]


def _to_18(m: U32) -> list[str]:
    """18-digit forms of valid 15-digit resident ids."""
    c = _ascii(m)
    d = _DIGIT[c]
    body = np.concatenate([d[:, :6], np.tile([1, 9], (len(d), 1)), d[:, 6:]], axis=1)
    check = _RID_CHECK[(body @ _RID_WEIGHTS) % 11]
    chars = np.concatenate([body + ord("0"), check[:, None]], axis=1).astype(np.uint32)
    return np.ascontiguousarray(chars).view("<U18").ravel().tolist()


@cache
def _clean_lut() -> U32:
    """:data:`CLEAN_TABLE` as an array over the Basic Multilingual Plane (0 = delete)."""
    lut = np.arange(0x10000, dtype=np.uint32)
    for code, repl in CLEAN_TABLE.items():
        lut[code] = 0 if repl is None else repl
    return lut


#: Raw values longer than this go through the scalar path (keeps the matrix narrow).
_MAX_RAW = 40


def _clean_matrix(texts: tuple[list[str], I64]) -> tuple[U32, I64, BoolA]:
    """Cleaned code points ``(n, width)``, cleaned lengths, and rows the matrix cannot hold
    exactly (NUL characters, very long values) — those go through the scalar path."""
    raw, raw_len = texts
    n = len(raw)
    long_rows = raw_len > _MAX_RAW
    if long_rows.any():
        raw = [s if not too_long else "" for s, too_long in zip(raw, long_rows.tolist(), strict=True)]
        raw_len = np.where(long_rows, 0, raw_len)
    width = max(int(raw_len.max(initial=0)), 1)
    try:
        m = np.array(raw, dtype=f"<U{width}").view(np.uint32).reshape(n, width)
    except (TypeError, ValueError):  # an odd object slipped past the sampled type check
        raw = [_as_text(v) for v in raw]
        m = np.array(raw, dtype=f"<U{width}").view(np.uint32).reshape(n, width)
    present = m != 0
    scalar_rows = long_rows | (present.sum(axis=1) != raw_len)  # NULs the fixed-width array lost
    lut = _clean_lut()
    mapped = lut[np.minimum(m, 0xFFFF)]
    astral = m > 0xFFFF
    if astral.any():  # characters beyond the BMP are kept as they are (never valid)
        mapped[astral] = m[astral]
    keep = mapped != 0
    lengths = keep.sum(axis=1)
    shifted = np.flatnonzero(lengths != raw_len)
    if len(shifted):  # move deleted characters (separators) to the end, keeping order
        sub = mapped[shifted]
        order = np.argsort(~keep[shifted], axis=1, kind="stable")
        mapped[shifted] = np.take_along_axis(sub, order, axis=1)
    return mapped, lengths, scalar_rows


def _guess_many(c: I64) -> npt.NDArray[np.int8]:
    """:func:`identity.normalize._guess_18` over an (n, 18) matrix of code points."""
    d = _DIGIT[c]
    shaped = (d[:, :17] >= 0).all(axis=1) & ((d[:, 17] >= 0) | (c[:, 17] == ord("X")))
    province = np.zeros(100, dtype=bool)
    for code in province_codes():
        province[int(code)] = True
    dz = np.where(d >= 0, d, 0)
    in_province = shaped & province[dz[:, 0] * 10 + dz[:, 1]]
    uscc_chars = (_USCC_VALUE[c] >= 0).all(axis=1)
    out = np.full(len(c), _K["unknown"], dtype=np.int8)
    out[shaped] = _K["resident_id"]
    out[~in_province & uscc_chars] = _K["uscc"]
    return out


def _texts(values: list[Any]) -> tuple[list[str], I64]:
    """The values as text, and their lengths. Fast path: a list of ``str`` is used as it is
    (checked through ``len``, which ``None`` and NaN do not have); else one by one."""
    try:
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if not values or all(type(v) is str for v in values[:: max(1, len(values) // 64)]):
            return values, lengths
    except TypeError:
        pass
    texts = [_as_text(v) for v in values]
    return texts, np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def _as_text(value: Any) -> str:
    """A value as text; ``None`` and NaN are empty (the scalar path treats them alike)."""
    if type(value) is str:
        return value
    return "" if value is None or value != value else str(value)


@cache
def _kind_tuples() -> dict[int, tuple[str, ...]]:
    """Candidate-kind tuples by bit pattern (shared objects: no per-row allocation)."""
    return {bits: tuple(k for j, k in enumerate(FIFTEEN) if bits >> j & 1) for bits in range(8)}


def normalize_many(values: Iterable[Any], as_kind: str | None = None) -> pd.DataFrame:
    """Normalise a column of codes; one row per input, columns as the scalar contract
    (``input``, ``kind``, ``canonical``, ``valid``, ``reason``) plus ``candidates``
    (for ambiguous rows the tuple of kinds the code is valid as, else ``None``) and
    ``resident_id_18`` (the 18-digit form when a 15-character code is a valid resident id).
    :func:`records` turns rows into the scalar path's dicts."""
    if as_kind is not None and as_kind not in KINDS:
        raise ValueError(f"unknown kind {as_kind!r}; expected one of {', '.join(KINDS)}")
    inputs = values.tolist() if isinstance(values, pd.Series | np.ndarray) else list(values)
    n = len(inputs)
    matrix, lengths, scalar_rows = _clean_matrix(_texts(inputs))
    width_all = matrix.shape[1]
    canonical: ObjA = np.empty(n, dtype=object)
    canonical[:] = matrix.view(f"<U{width_all}").ravel().tolist() if n else []
    kind = np.full(n, _K["unknown" if as_kind is None else as_kind], dtype=np.int8)
    reason = np.full(n, _R[Reason.LENGTH], dtype=np.int8)
    candidates: ObjA = np.full(n, None, dtype=object)
    eighteen_col: ObjA = np.full(n, None, dtype=object)
    ambiguous_valid = np.zeros(n, dtype=bool)

    def rows(width: int) -> tuple[I64, U32]:
        idx = np.flatnonzero((lengths == width) & ~scalar_rows)
        return idx, matrix[idx, :width]

    if as_kind is not None:
        for width in np.unique(lengths[(lengths > 0) & ~scalar_rows]).tolist():
            fn = _rules(as_kind, width)
            if fn is None:
                continue
            idx, m = rows(width)
            reason[idx] = fn(m)
            if as_kind in ("resident_id", "resident_id_15") and width == 15:
                kind[idx] = _K["resident_id_15"]
                ok = reason[idx] == 0
                if ok.any():
                    canonical[idx[ok]] = _to_18(m[ok])
    else:
        idx, m = rows(18)
        if len(idx):
            rid = _resident_id(m)
            usc = _uscc_given(m, rid == 0)
            both = (rid == 0) & (usc == 0)
            k = np.where(rid == 0, _K["resident_id"], np.where(usc == 0, _K["uscc"], _K["unknown"])).astype(np.int8)
            neither = (rid != 0) & (usc != 0)
            if neither.any():
                k[neither] = _guess_many(_ascii(m[neither]))
            k[both] = _K["ambiguous"]
            kind[idx] = k
            reason[idx] = np.where(k == _K["uscc"], usc, np.where(k == _K["resident_id"], rid, _R[Reason.FORMAT]))
            for i in idx[both].tolist():
                candidates[i] = ("resident_id", "uscc")
                ambiguous_valid[i] = True
        idx, m = rows(15)
        if len(idx):
            kind[idx] = _K["ambiguous"]
            verdicts = {"resident_id_15": _resident_id(m) == 0, "reg_no": _reg_no(m) == 0,
                        "taxpayer_id": _taxpayer_15(m) == 0}
            ok15 = verdicts["resident_id_15"]
            if ok15.any():
                eighteen_col[idx[ok15]] = _to_18(m[ok15])
            bits = ok15.astype(np.int64) | verdicts["reg_no"] << 1 | verdicts["taxpayer_id"] << 2
            tuples: ObjA = np.empty(8, dtype=object)
            tuples[:] = [_kind_tuples()[b] for b in range(8)]
            candidates[idx] = tuples[bits]
            ambiguous_valid[idx] = verdicts["resident_id_15"] | verdicts["reg_no"] | verdicts["taxpayer_id"]
        idx, m = rows(9)
        if len(idx):
            kind[idx] = _K["org_code"]
            reason[idx] = _org_code(m)
        idx, m = rows(20)
        if len(idx):
            kind[idx] = _K["taxpayer_id"]
            reason[idx] = _taxpayer_20(m)
    empty = (lengths == 0) & ~scalar_rows
    valid = reason == 0
    reason_col: ObjA = np.array(REASONS, dtype=object)[reason]
    amb = kind == _K["ambiguous"]
    valid = np.where(amb, ambiguous_valid, valid)
    reason_col[amb] = np.where(ambiguous_valid[amb], Reason.AMBIGUOUS, Reason.NO_INTERPRETATION)
    reason_col[empty] = Reason.EMPTY
    valid[empty] = False
    canonical[empty] = None
    for i in np.flatnonzero(scalar_rows).tolist():
        one = normalize(inputs[i], as_kind)
        kind[i], canonical[i], valid[i], reason_col[i] = _K[one["kind"]], one["canonical"], one["valid"], one["reason"]
        found = one.get("candidates")
        if found is not None:
            candidates[i] = tuple(c["kind"] for c in found)
            eighteen_col[i] = next((c["canonical"] for c in found if c["kind"] == "resident_id_15"), None)
    # object dtype explicitly: pandas would otherwise infer a string dtype and turn None into NaN
    return pd.DataFrame(
        {
            "input": pd.Series(inputs, dtype=object),
            "kind": pd.Series(np.array(KIND_NAMES, dtype=object)[kind], dtype=object),
            "canonical": pd.Series(canonical, dtype=object),
            "valid": valid.astype(bool),
            "reason": pd.Series(reason_col, dtype=object),
            "candidates": pd.Series(candidates, dtype=object),
            "resident_id_18": pd.Series(eighteen_col, dtype=object),
        }
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of :func:`normalize_many` as the scalar path's dicts (``candidates`` when ambiguous)."""
    out = []
    names = ("input", "kind", "canonical", "valid", "reason", "candidates", "resident_id_18")
    columns = [frame[c].tolist() for c in names]
    for inp, kind, canonical, valid, reason, candidates, eighteen in zip(*columns, strict=True):
        row: dict[str, Any] = {"input": inp, "kind": kind, "canonical": canonical, "valid": bool(valid),
                               "reason": reason}
        if candidates is not None:
            row["candidates"] = [
                {"kind": k, "canonical": eighteen if k == "resident_id_15" else canonical} for k in candidates
            ]
        out.append(row)
    return out


def _valid(column: pd.Series, kind: str, width: int) -> BoolA:
    inputs = column.tolist()
    matrix, lengths, scalar_rows = _clean_matrix(_texts(inputs))
    result = np.zeros(len(inputs), dtype=bool)
    idx = np.flatnonzero((lengths == width) & ~scalar_rows)
    if len(idx):
        result[idx] = _rules(kind, width)(matrix[idx, :width]) == 0
    for i in np.flatnonzero(scalar_rows).tolist():
        one = normalize(inputs[i], kind)
        result[i] = bool(one["valid"]) and len(one["canonical"] or "") == width
    return result


def canonical_resident_ids(column: pd.Series) -> pd.Series:
    """Each value's own canonical form as a resident id: cleaned, and a valid 15-digit
    (legacy) number converted to its 18 digits; anything else cleaned only (never looked up).

    For mappings and validation that want the 18-digit form before checking it.

    >>> canonical_resident_ids(pd.Series(["110105491231002", "11010519491231002x", None, "bad"])).tolist()
    ['11010519491231002X', '11010519491231002X', None, 'BAD']
    """
    frame = normalize_many(column.tolist(), "resident_id")
    return pd.Series(frame["canonical"].to_numpy(dtype=object), index=column.index, dtype=object)


def is_valid_resident_id(column: pd.Series) -> BoolA:
    """Whether each value is a valid 18-digit resident id (公民身份号码), after clean-up."""
    return _valid(column, "resident_id", 18)


def is_valid_uscc(column: pd.Series) -> BoolA:
    """Whether each value is a valid unified social credit code (统一社会信用代码)."""
    return _valid(column, "uscc", 18)


def is_valid_org_code(column: pd.Series) -> BoolA:
    """Whether each value is a valid organisation code (组织机构代码)."""
    return _valid(column, "org_code", 9)

