"""Vectorised identifier normalisation (批量代码规范化) on numpy and pandas.

Gives exactly :func:`identifiers.normalize.normalize`'s answers for whole columns. The values
are joined into one string and encoded once; the clean-up table (the scalar path's
``CLEAN_TABLE``, as one byte per code point) maps every character in one pass; codes are
grouped by cleaned length, and every rule runs over a column-major ``(width, rows)`` byte
matrix with the checks in the scalar modules' order, so the first failing rule — the
reason — is the same. A property test (tests/identifiers/test_vectorized.py) holds the two
paths to each other.

One job, one module: the column-wise twin of the scalar identifier modules; its rules share one
byte matrix and one reason table, so splitting them would split the first-failing-rule order.

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

from identifiers import org_code, resident_id, uscc
from identifiers._common import CLEAN_TABLE, Reason, province_codes, region_end_years, today
from identifiers.normalize import FIFTEEN, KINDS

__all__ = [
    "canonical_resident_ids",
    "clean_many",
    "is_valid_org_code",
    "is_valid_resident_id",
    "is_valid_uscc",
    "normalize_many",
    "records",
]

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
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
#
# The rules work on column-major character matrices: ``(width, rows)`` arrays of bytes (see
# :class:`_Cleaned`), so every per-position step is one contiguous vector operation and every
# "all positions" test is a reduction over a short axis of long rows.

#: A value table's mark for "not in the alphabet".
_NOT = 255


def _lut(chars: str) -> U8:
    """Byte → the character's value in ``chars`` (its index), ``_NOT`` elsewhere."""
    table = np.full(256, _NOT, dtype=np.uint8)
    for value, char in enumerate(chars):
        table[ord(char)] = value
    return table


def _chars(text: str) -> U8:
    return np.array([ord(c) for c in text], dtype=np.uint8)


_ORG_VALUE = _lut(org_code.ALPHABET)
_USCC_VALUE = _lut(uscc.ALPHABET)
_RID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
#: Resident id check character by the weighted sum modulo 11.
_RID_CHECK = _chars("10X98765432")
_ORG_WEIGHTS = tuple(org_code.WEIGHTS)
#: Organisation code check character by the weighted sum modulo 11 (value 11 - r; 10 is X, 11 is 0).
_ORG_CHECK = _chars("0X" + "".join(str(11 - r) for r in range(2, 11)))
_USCC_WEIGHTS = tuple(uscc.WEIGHTS)
#: USCC check character by the weighted sum modulo 31.
_USCC_CHECK = _chars("".join(uscc.ALPHABET[(31 - r) % 31] for r in range(31)))
_AUTHORITY = np.zeros(256, dtype=bool)
_AUTHORITY[[ord(a) for a in uscc.AUTHORITIES]] = True
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
#: ISO 7064 MOD 11,10 step: ``[remainder * 10 + digit]`` → next remainder (remainders 1..10).
_MOD11_10 = np.array([(2 * ((p + d) % 10 or 10)) % 11 for p in range(11) for d in range(10)], dtype=np.int8)
_ZERO = np.uint8(ord("0"))
_X = np.uint8(ord("X"))


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
def _provinces(national: bool) -> BoolA:
    """2-digit prefix → a province (``national``: or 10, the national registries)."""
    table = np.zeros(100, dtype=bool)
    for code in province_codes():
        table[int(code)] = True
    table[10] |= national
    return table


@cache
def _entity_types() -> BoolA:
    """``[authority byte, type byte]`` → allowed (GB 32100 Annex A)."""
    table = np.zeros((256, 256), dtype=bool)
    for authority, types in uscc.ENTITY_TYPES.items():
        for entity_type in types:
            table[ord(authority), ord(entity_type)] = True
    return table


# --- helpers -------------------------------------------------------------------------------


def _all(ok: BoolA) -> BoolA:
    """Per row: every position holds."""
    return np.logical_and.reduce(ok, axis=0)


def _digits(c: U8) -> tuple[U8, BoolA]:
    """Digit values (0 where the character is no digit) and which characters are digits."""
    d = c - _ZERO  # bytes wrap: every non-digit lands at 10 or above
    ok = d < 10
    return d * ok, ok


def _values(c: U8, table: U8) -> tuple[U8, BoolA]:
    """Alphabet values (0 outside the alphabet) and which characters are in it."""
    v = table[c]
    ok = v != _NOT
    return v * ok, ok


def _number(d: U8) -> I32:
    """Decimal value of digit rows (assumes digits)."""
    out = d[0].astype(np.int32)
    for row in d[1:]:
        out = out * 10 + row
    return out


def _weighted(values: U8, weights: tuple[int, ...]) -> I32:
    """Σ weight × value per row (small numbers: 16 bits hold every sum the codes have)."""
    out = np.zeros(values.shape[1], dtype=np.uint16)
    step = np.empty_like(out)
    for row, weight in zip(values, weights, strict=True):
        np.multiply(row, np.uint16(weight), out=step)
        out += step
    return out.astype(np.int32)


def _is_check(c: U8) -> BoolA:
    """A digit or X (the check character's alphabet in GB 11643 and GB 11714)."""
    return np.asarray(((c - _ZERO) < 10) | (c == _X))


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


def _resident_id(c: U8) -> npt.NDArray[np.int8]:
    """GB 11643 rules over a (18, n) or (15, n) matrix; see :func:`identifiers.resident_id.validate`."""
    width, n = c.shape
    r = _Reasons(n)
    d, is_digit = _digits(c)
    if width == 18:
        r.fail(~(_all(is_digit[:17]) & _is_check(c[17])), Reason.FORMAT)
    else:
        r.fail(~_all(is_digit), Reason.FORMAT)
    end = _region_end()[_number(d[:6])]
    r.fail(end == 0, Reason.REGION)
    if width == 18:
        year, month, day = _number(d[6:10]), _number(d[10:12]), _number(d[12:14])
    else:
        year, month, day = 1900 + _number(d[6:8]), _number(d[8:10]), _number(d[10:12])
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days = _DAYS[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    exists = month_ok & (day >= 1) & (day <= days) & (year >= 1)
    r.fail(~exists | (year < resident_id.MIN_BIRTH_YEAR), Reason.BIRTH_DATE)
    now = today()
    r.fail(year * 10000 + month * 100 + day > now.year * 10000 + now.month * 100 + now.day, Reason.FUTURE_BIRTH_DATE)
    r.fail(year > end, Reason.REGION_RETIRED)
    if width == 18:
        r.fail(c[17] != _RID_CHECK[_weighted(d[:17], _RID_WEIGHTS) % 11], Reason.CHECKSUM)
    return r.codes


def _org_check_ok(values: U8, check: U8) -> BoolA:
    """GB 11714 check of 8 character values against the check character."""
    return np.asarray(check == _ORG_CHECK[_weighted(values, _ORG_WEIGHTS) % 11])


def _org_code(c: U8) -> npt.NDArray[np.int8]:
    r = _Reasons(c.shape[1])
    v, in_alphabet = _values(c[:8], _ORG_VALUE)
    r.fail(~(_all(in_alphabet) & _is_check(c[8])), Reason.FORMAT)
    r.fail(~_org_check_ok(v, c[8]), Reason.CHECKSUM)
    return r.codes


def _registration_region_ok(d: U8) -> BoolA:
    """Digit rows of a region → its province prefix exists or is 10 (digits checked before)."""
    return np.asarray(_provinces(True)[d[0].astype(np.intp) * 10 + d[1]])


def _uscc_checksum_ok(v: U8, c: U8) -> BoolA:
    return np.asarray(c[17] == _USCC_CHECK[_weighted(v[:17], _USCC_WEIGHTS) % 31])


def _uscc(c: U8) -> npt.NDArray[np.int8]:
    r = _Reasons(c.shape[1])
    v, in_alphabet = _values(c, _USCC_VALUE)
    r.fail(~_all(in_alphabet), Reason.FORMAT)
    d, is_digit = _digits(c[2:8])
    r.fail(~_all(is_digit), Reason.FORMAT)
    r.fail(~_AUTHORITY[c[0]], Reason.AUTHORITY)
    r.fail(~_entity_types()[c[0], c[1]], Reason.ENTITY_TYPE)
    r.fail(~_registration_region_ok(d), Reason.REGION)
    r.fail(~_uscc_checksum_ok(v, c), Reason.CHECKSUM)
    r.fail(_org_code(c[8:17]) != 0, Reason.ORG_CODE)
    return r.codes


def _mod31_ok(c: U8) -> BoolA:
    """Only the GB 32100 MOD 31 check character (a cheap first filter)."""
    v, in_alphabet = _values(c, _USCC_VALUE)
    return _all(in_alphabet) & _uscc_checksum_ok(v, c)


def _uscc_given(c: U8, resident_ok: BoolA) -> npt.NDArray[np.int8]:
    """:func:`_uscc` reasons where the row is no valid resident id; for valid resident ids
    only whether the USCC rules hold matters (any failure code will do), so most of those
    rows stop at the cheap MOD 31 filter."""
    out = np.full(c.shape[1], _R[Reason.CHECKSUM], dtype=np.int8)
    idx = np.flatnonzero(~resident_ok | _mod31_ok(c))
    if len(idx):
        out[idx] = _uscc(c[:, idx])
    return out


def _reg_no(c: U8) -> npt.NDArray[np.int8]:
    r = _Reasons(c.shape[1])
    d, is_digit = _digits(c)
    r.fail(~_all(is_digit), Reason.FORMAT)
    r.fail(~_registration_region_ok(d[:6]), Reason.REGION)
    # ISO 7064 MOD 11,10 over all 15 digits: valid when the running remainder ends at 1.
    p = np.full(c.shape[1], 10, dtype=np.int8)
    for row in d[:14]:
        p = _MOD11_10[p.astype(np.intp) * 10 + row]
    r.fail(d[14] != (11 - p) % 10, Reason.CHECKSUM)
    return r.codes


def _taxpayer_15(c: U8) -> npt.NDArray[np.int8]:
    r = _Reasons(c.shape[1])
    d, is_digit = _digits(c[:6])
    r.fail(~_all(is_digit), Reason.FORMAT)
    v, in_alphabet = _values(c[6:14], _ORG_VALUE)
    r.fail(~(_all(in_alphabet) & _is_check(c[14])), Reason.FORMAT)
    r.fail(~_registration_region_ok(d), Reason.REGION)
    r.fail(~_org_check_ok(v, c[14]), Reason.CHECKSUM)
    return r.codes


def _taxpayer_20(c: U8) -> npt.NDArray[np.int8]:
    r = _Reasons(c.shape[1])
    r.fail(~_all(_digits(c[18:])[1]), Reason.FORMAT)
    inner = _resident_id(c[:18])
    return np.where(r.codes == 0, inner, r.codes).astype(np.int8)


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


def _guess_many(c: U8) -> npt.NDArray[np.int8]:
    """:func:`identifiers.normalize._guess_18` over an (18, n) matrix."""
    d, is_digit = _digits(c)
    shaped = _all(is_digit[:17]) & _is_check(c[17])
    in_province = shaped & _provinces(False)[d[0].astype(np.intp) * 10 + d[1]]
    uscc_chars = _all(_values(c, _USCC_VALUE)[1])
    out = np.full(c.shape[1], _K["unknown"], dtype=np.int8)
    out[shaped] = _K["resident_id"]
    out[~in_province & uscc_chars] = _K["uscc"]
    return out


# --- the public surface ---------------------------------------------------------------------


def clean_many(values: Iterable[Any]) -> list[str | None]:
    """The scalar clean-up over many values (``None``/NaN stay ``None``)."""
    table = CLEAN_TABLE
    return [None if v is None or v != v else str(v).translate(table) for v in values]


def _to_18(c: U8) -> ObjA:
    """18-digit forms of valid 15-digit resident ids (a (15, n) matrix)."""
    d, _ = _digits(c)
    century = np.broadcast_to(np.array([[1], [9]], dtype=np.uint8), (2, c.shape[1]))
    body = np.concatenate([d[:6], century, d[6:]], axis=0)
    check = _RID_CHECK[_weighted(body, _RID_WEIGHTS) % 11]
    chars = np.concatenate([body + _ZERO, check[None, :]], axis=0).T.astype(np.uint32)
    return np.ascontiguousarray(chars).view("<U18").ravel().astype(object)


#: Byte a cleaned character becomes in the matrices: ASCII as itself; FOREIGN for any other
#: character the clean-up keeps (never valid in any code, so one value stands for them all).
FOREIGN = 128
#: Joins the values into one string, so one encode and one pass find every boundary. A
#: control character no code has; if a value does contain it, boundaries come from ``len``.
_SEPARATOR = 0x1F
#: Cleaned byte of the separator (and the "changed" mark never makes it: see _clean_codes).
_CUT = 255
#: Zero bytes after the last row, so every row has a full window of this many characters.
_PAD = 40


@cache
def _clean_codes(separator: int) -> U8:
    """:data:`CLEAN_TABLE` as one byte per code point: 0 when the clean-up deletes the
    character, the ASCII character it keeps, ``FOREIGN`` for any other kept character, and
    ``FOREIGN +`` the ASCII character a different input character becomes (full width, lower
    case), so the same pass tells which values the clean-up changed; ``_CUT`` for the
    separator. (Results are at most 0x7E, so a changed mark never reaches ``_CUT``.)"""
    lut = np.full(0x110000, FOREIGN, dtype=np.uint8)
    lut[1:128] = np.arange(1, 128, dtype=np.uint8)
    for code, repl in CLEAN_TABLE.items():
        if repl is None:
            lut[code] = 0
        elif repl != code:
            lut[code] = repl + FOREIGN if repl < 128 else FOREIGN
    if separator >= 0:
        lut[separator] = _CUT
    return lut


def _code_points(text: str) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint32]:
    """A string's code points: one byte each when it is ASCII (most batches), else four."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _rows_of(starts: I64, positions: I64) -> I64:
    """Row of each character position, given the rows' (non-decreasing) first positions."""
    return np.searchsorted(starts, positions, side="right") - 1


class _Cleaned:
    """Every value's cleaned characters, concatenated into one byte array (see
    :func:`_clean_codes`), with each row's start and cleaned length; which rows the clean-up
    changed (else the text is its own canonical form) and which keep a non-ASCII character.

    One join, one encode and a few passes over the bytes replace a per-value
    ``str.translate`` and a padded code-point matrix of every row."""

    def __init__(self, values: list[Any]) -> None:
        texts = values
        try:
            joined = chr(_SEPARATOR).join(values)
        except TypeError:  # not all ``str``: None, NaN, numbers, odd objects
            texts = [_as_text(v) for v in values]
            joined = chr(_SEPARATOR).join(texts)
        n = len(texts)
        mapped = _clean_codes(_SEPARATOR)[_code_points(joined)]
        cuts = np.flatnonzero(mapped == _CUT)
        if n == 0:
            raw_start = raw_len = np.zeros(0, dtype=np.int64)
        elif len(cuts) == n - 1:
            raw_start = np.concatenate([[0], cuts + 1]).astype(np.int64)
            raw_len = np.concatenate([cuts, [len(mapped)]]).astype(np.int64) - raw_start
        else:  # a value holds the separator itself: lengths one by one, no separators
            mapped = _clean_codes(-1)[_code_points("".join(texts))]
            raw_len = np.fromiter(map(len, texts), dtype=np.int64, count=n)
            raw_start = np.zeros(n, dtype=np.int64)
            np.cumsum(raw_len[:-1], out=raw_start[1:])
        deleted = _rows_of(raw_start, np.flatnonzero(mapped == 0))
        changed = np.flatnonzero((mapped - np.uint8(FOREIGN + 1)) < _CUT - FOREIGN - 1)  # marks only
        self.length = raw_len - np.bincount(deleted, minlength=n)[:n]
        self.start = np.zeros(n, dtype=np.int64)
        np.cumsum(self.length[:-1], out=self.start[1:])
        self.changed = np.zeros(n, dtype=bool)
        self.changed[deleted] = True
        self.changed[_rows_of(raw_start, changed)] = True
        self.foreign = np.zeros(n, dtype=bool)
        self.foreign[_rows_of(raw_start, np.flatnonzero(mapped == FOREIGN))] = True
        mapped[changed] -= np.uint8(FOREIGN)  # the characters the rules see
        kept = mapped[(mapped - np.uint8(1)) < _CUT - 1]  # drops deletions (0) and separators
        self.chars = np.concatenate([kept, np.zeros(_PAD, dtype=np.uint8)])
        self.texts = texts

    def matrix(self, idx: I64, width: int) -> U8:
        """The cleaned characters of rows ``idx`` (at least ``width`` long) as a matrix."""
        windows = np.lib.stride_tricks.sliding_window_view(self.chars, width)
        return np.ascontiguousarray(windows[self.start[idx]])

    def rows(self, width: int) -> tuple[I64, U8]:
        """The rows of cleaned length ``width`` and their characters, column-major
        ``(width, rows)``: the layout every rule works on."""
        idx = np.flatnonzero(self.length == width)
        return idx, np.ascontiguousarray(self.matrix(idx, width).T)

    def canonical(self, texts: ObjA | None = None) -> ObjA:
        """Each row's cleaned text: the text itself where nothing changed, else rebuilt from
        the cleaned ASCII bytes, else (non-ASCII left, or very long) ``str.translate``.
        ``texts``: the texts as an object array already made (copied, not changed)."""
        out: ObjA = texts.copy() if texts is not None else _objects(self.texts)
        redo = np.flatnonzero(self.changed)
        simple = ~self.foreign[redo] & (self.length[redo] <= _PAD)
        fast, slow = redo[simple], redo[~simple]
        if len(fast):
            width = max(int(self.length[fast].max()), 1)
            m = self.matrix(fast, width)
            m[np.arange(width) >= self.length[fast][:, None]] = 0  # the next rows' characters
            out[fast] = m.astype(np.uint32).view(f"<U{width}").ravel()
        for i in slow.tolist():
            out[i] = self.texts[i].translate(CLEAN_TABLE)
        return out


def _objects(values: list[Any]) -> ObjA:
    """A list as a 1-d object array (elements kept as they are, sequences included)."""
    return np.fromiter(values, dtype=object, count=len(values))


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
    cleaned = _Cleaned(inputs)
    lengths = cleaned.length
    input_col = _objects(inputs)
    canonical = cleaned.canonical(input_col if cleaned.texts is inputs else None)
    kind = np.full(n, _K["unknown" if as_kind is None else as_kind], dtype=np.int8)
    reason = np.full(n, _R[Reason.LENGTH], dtype=np.int8)
    candidates: ObjA = np.full(n, None, dtype=object)
    eighteen_col: ObjA = np.full(n, None, dtype=object)
    ambiguous_valid = np.zeros(n, dtype=bool)

    rows = cleaned.rows

    if as_kind is not None:
        for width in np.unique(lengths[lengths > 0]).tolist():
            fn = _rules(as_kind, width)
            if fn is None:
                continue
            idx, m = rows(width)
            reason[idx] = fn(m)
            if as_kind in ("resident_id", "resident_id_15") and width == 15:
                kind[idx] = _K["resident_id_15"]
                ok = reason[idx] == 0
                if ok.any():
                    canonical[idx[ok]] = _to_18(m[:, ok])
    else:
        idx, m = rows(18)
        if len(idx):
            rid = _resident_id(m)
            usc = _uscc_given(m, rid == 0)
            both = (rid == 0) & (usc == 0)
            k = np.where(rid == 0, _K["resident_id"], np.where(usc == 0, _K["uscc"], _K["unknown"])).astype(np.int8)
            neither = (rid != 0) & (usc != 0)
            if neither.any():
                k[neither] = _guess_many(m[:, neither])
            k[both] = _K["ambiguous"]
            kind[idx] = k
            reason[idx] = np.where(k == _K["uscc"], usc, np.where(k == _K["resident_id"], rid, _R[Reason.FORMAT]))
            for i in idx[both].tolist():
                candidates[i] = ("resident_id", "uscc")
                ambiguous_valid[i] = True
        idx, m = rows(15)
        if len(idx):
            kind[idx] = _K["ambiguous"]
            verdicts = {
                "resident_id_15": _resident_id(m) == 0,
                "reg_no": _reg_no(m) == 0,
                "taxpayer_id": _taxpayer_15(m) == 0,
            }
            ok15 = verdicts["resident_id_15"]
            if ok15.any():
                eighteen_col[idx[ok15]] = _to_18(m[:, ok15])
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
    empty = lengths == 0
    valid = reason == 0
    reason_col: ObjA = np.array(REASONS, dtype=object)[reason]
    amb = kind == _K["ambiguous"]
    valid = np.where(amb, ambiguous_valid, valid)
    reason_col[amb] = np.where(ambiguous_valid[amb], Reason.AMBIGUOUS, Reason.NO_INTERPRETATION)
    reason_col[empty] = Reason.EMPTY
    valid[empty] = False
    canonical[empty] = None
    # object dtype explicitly: pandas would otherwise infer a string dtype and turn None into NaN
    # Object dtype explicitly (pandas would otherwise infer a string dtype and turn None into
    # NaN); no copies: every array is this call's own, and pandas need not consolidate them.
    columns = {
        "input": input_col,
        "kind": np.array(KIND_NAMES, dtype=object)[kind],
        "canonical": canonical,
        "valid": valid.astype(bool),
        "reason": reason_col,
        "candidates": candidates,
        "resident_id_18": eighteen_col,
    }
    return pd.DataFrame({k: pd.Series(v, dtype=v.dtype, copy=False) for k, v in columns.items()}, copy=False)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of :func:`normalize_many` as the scalar path's dicts (``candidates`` when ambiguous)."""
    out = []
    names = ("input", "kind", "canonical", "valid", "reason", "candidates", "resident_id_18")
    columns = [frame[c].tolist() for c in names]
    for inp, kind, canonical, valid, reason, candidates, eighteen in zip(*columns, strict=True):
        row: dict[str, Any] = {
            "input": inp,
            "kind": kind,
            "canonical": canonical,
            "valid": bool(valid),
            "reason": reason,
        }
        if candidates is not None:
            row["candidates"] = [
                {"kind": k, "canonical": eighteen if k == "resident_id_15" else canonical} for k in candidates
            ]
        out.append(row)
    return out


def _valid(column: pd.Series, kind: str, width: int) -> BoolA:
    inputs = column.tolist()
    result = np.zeros(len(inputs), dtype=bool)
    idx, m = _Cleaned(inputs).rows(width)
    if len(idx):
        result[idx] = _rules(kind, width)(m) == 0
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
