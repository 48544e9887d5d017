"""Normalisers (规范化): vectorised clean-up of source values before they become canonical.

Every normaliser takes a pandas ``Series`` (object dtype, ``None``/``NaN`` for missing) and
returns a Series of the same length and index; none loops over rows in Python except over
*distinct* values where a library only offers a scalar call (OpenCC), and those results are
cached across batches. Mapping files name normalisers by their registry key, optionally with
parameters: ``- trim`` or ``- {status: commerce_enterprise}``.

One job, one module: the registry of normalisers a mapping file can name, each a short column
function; the registry is the list a mapping check validates names against.

>>> import pandas as pd
>>> list(fullwidth_to_halfwidth(pd.Series(["１１０１０５ＡＢｃ", None])))
['110105ABc', nan]
>>> list(trim(pd.Series(["  张　三  ", "浙江省  温州市"])))
['张 三', '浙江省 温州市']
>>> list(code(pd.Series([" 9133 0322-MA2８abcd1x ", ""])))
['91330322MA28ABCD1X', nan]
>>> [str(d.date()) for d in date(pd.Series(["2016-05-04", "2016/5/4", "20160504", "2016年5月4日", "2016.05.04"]))]
['2016-05-04', '2016-05-04', '2016-05-04', '2016-05-04', '2016-05-04']
>>> list(sex(pd.Series(["1", "女", "M", "x", None])))
['1', '2', '1', nan, nan]
>>> list(status(pd.Series(["存续", "在业", "吊销", "注销"]), table="commerce_enterprise"))
['active', 'active', 'revoked', 'cancelled']
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import opencc
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from identifiers.vectorized import canonical_resident_ids

Normalizer = Callable[..., pd.Series]

#: U+FF01..U+FF5E are the full-width forms of ASCII 0x21..0x7E; U+3000 is the ideographic space.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
# Dashes departments type into codes and dates (full-width hyphen handled above).
_FULLWIDTH.update({0x2014: 0x2D, 0x2013: 0x2D, 0x2212: 0x2D, 0x2010: 0x2D, 0x2011: 0x2D})


#: pandas' string dtype on Arrow storage: string work runs in Arrow's C++ kernels (RE2).
STR = pd.StringDtype("pyarrow", na_value=np.nan)
_WS = r"[\s\x{3000}]+"
_FULLWIDTH_RE2 = r"[\x{FF01}-\x{FF5E}\x{3000}\x{2010}-\x{2014}\x{2212}]"


def _as_str(s: pd.Series) -> pd.Series:
    """The values as Arrow-backed strings (missing stays missing; ``1.0`` read as a float is ``1``)."""
    if s.dtype == STR:
        return s
    if pd.api.types.is_float_dtype(s.dtype):
        finite = s.dropna()
        if bool((finite == finite.round()).all()):
            s = s.astype("Int64")
    if isinstance(s.dtype, pd.StringDtype):
        return s.astype(STR)
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return s.astype(str).where(s.notna()).astype(STR)
    return s.astype(STR)


def _arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    return pa.array(_as_str(s), from_pandas=True)


def _back(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    out = arr.to_pandas(types_mapper={pa.string(): STR, pa.large_string(): STR}.get)
    return pd.Series(out.array if isinstance(out, pd.Series) else out, index=index, dtype=STR)


def _empty_to_none(s: pd.Series) -> pd.Series:
    return s.where(s != "")


def fullwidth_to_halfwidth(s: pd.Series) -> pd.Series:
    """Full-width letters, digits, punctuation and the ideographic space → ASCII (全角转半角).

    Arrow finds the few values that hold a full-width character; only those are translated.
    """
    s = _as_str(s)
    hit = pc.fill_null(pc.match_substring_regex(_arrow(s), _FULLWIDTH_RE2), False).to_numpy(zero_copy_only=False)
    if not hit.any():
        return s
    out = s.copy()
    out[hit] = s[hit].map(lambda v: v.translate(_FULLWIDTH)).astype(STR)
    return out


def _replace(s: pd.Series, pattern: str, replacement: str) -> pd.Series:
    return _back(pc.replace_substring_regex(_arrow(s), pattern=pattern, replacement=replacement), s.index)


def trim(s: pd.Series) -> pd.Series:
    """Strip both ends and collapse inner runs of whitespace (incl. U+3000) to one space."""
    s = _as_str(s)
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(_arrow(s), pattern=_WS, replacement=" "))
    return _empty_to_none(_back(arr, s.index))


def remove_spaces(s: pd.Series) -> pd.Series:
    """Drop every whitespace character (Chinese names and addresses carry none)."""
    return _empty_to_none(_replace(_as_str(s), _WS, ""))


def upper(s: pd.Series) -> pd.Series:
    """Upper-case (a lower-case ``x`` check character is still the check character X)."""
    s = _as_str(s)
    return _back(pc.utf8_upper(_arrow(s)), s.index)


def code(s: pd.Series) -> pd.Series:
    """Code clean-up (代码清洗): half-width, no spaces, dashes, dots or slashes, upper case.

    Only the *shape* is cleaned; whether the code is valid is the identity module's call.
    """
    s = fullwidth_to_halfwidth(s)
    arr = pc.utf8_upper(pc.replace_substring_regex(_arrow(s), pattern=r"[\s\-_./\\]+", replacement=""))
    return _empty_to_none(_back(arr, s.index))


def digits(s: pd.Series) -> pd.Series:
    """Keep digits only (region codes, phone numbers)."""
    return _empty_to_none(_replace(fullwidth_to_halfwidth(s), r"\D+", ""))


def _map_values(key: pd.Series, mapping: Mapping[str, Any]) -> pd.Series:
    """Map each value through ``mapping`` once per distinct value (vectorised take)."""
    codes, uniques = pd.factorize(key, use_na_sentinel=True)
    table = np.array([mapping.get(u) for u in uniques] + [None], dtype=object)
    out = pd.Series(table[codes], index=key.index, dtype=object)
    return out.astype(STR)


# --- traditional → simplified (繁简转换) -----------------------------------------------------


@lru_cache(maxsize=1)
def _opencc() -> Any:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _t2s_tables() -> tuple[str, str, dict[int, str]]:
    """OpenCC's t2s data as (RE2 class of every character it changes, RE2 class of the
    characters only a phrase or a choice decides, translation table of the rest).

    A value whose traditional characters all have exactly one simplified form, outside any
    phrase rule, converts with ``str.translate`` and gives OpenCC's answer; only the others
    go through OpenCC itself.
    """
    dictionary = Path(opencc.__file__).parent / "dictionary"
    single: dict[int, str] = {}
    context: set[str] = set()
    for line in (dictionary / "TSCharacters.txt").read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        candidates = values.split(" ")
        if not key or candidates[0] == key:
            continue
        if len(key) == 1 and len(candidates) == 1:
            single[ord(key)] = candidates[0]
        else:
            context.update(key)
    convertible = {chr(k) for k in single} | context
    for line in (dictionary / "TSPhrases.txt").read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        first = values.split(" ")[0]
        if len(first) == len(key):
            # A phrase decides its changed characters and also the convertible ones it keeps
            # (八濛山 keeps 濛, which alone would become 蒙).
            context.update(k for k, v in zip(key, first, strict=True) if k != v or k in convertible)
        else:
            context.update(key)
    context = {c for c in context if ord(c) > 0x7F}
    for c in context:
        single.pop(ord(c), None)

    def re2_class(chars: set[str]) -> str:
        # An RE2 character class (Arrow's regex engine), one \x{...} escape per character.
        return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(chars)) + "]"

    return re2_class(context | {chr(k) for k in single}), re2_class(context), single


def _traditional_pattern() -> str:
    """An RE2 class of every character OpenCC's t2s tables would change."""
    return _t2s_tables()[0]


_T2S_CACHE: dict[str, str] = {}
_T2S_LOCK = threading.Lock()
_T2S_CACHE_MAX = 500_000


def simplify(s: pd.Series) -> pd.Series:
    """Traditional → simplified Chinese with OpenCC (``t2s``).

    Only values that contain a character OpenCC would change are converted (a vectorised regex
    test), each distinct value once, and results are cached across batches.
    """
    s = _as_str(s)
    needs = pc.fill_null(pc.match_substring_regex(_arrow(s), _traditional_pattern()), False).to_numpy(
        zero_copy_only=False
    )
    if not needs.any():
        return s
    trad = s[needs]
    _, context_class, table = _t2s_tables()
    in_context = _contains(trad, context_class)
    out = s.copy()
    simple = trad[~in_context]
    if len(simple):
        out[simple.index] = simple.map(lambda v: v.translate(table)).astype(STR)
    hard = trad[in_context]
    if len(hard):
        distinct = pd.unique(hard)
        with _T2S_LOCK:  # columns are mapped on several threads: one fills (or clears) the cache at a time
            cc = _opencc()
            missing = [v for v in distinct if v not in _T2S_CACHE]
            if len(_T2S_CACHE) + len(missing) > _T2S_CACHE_MAX:
                _T2S_CACHE.clear()
            for v in missing:
                _T2S_CACHE[v] = cc.convert(v)
            out[hard.index] = _map_values(hard, _T2S_CACHE)
    return out


# --- dates (日期) ---------------------------------------------------------------------------

# 2016-05-04, 2016/5/4, 2016.05.04, 2016年5月4日, optionally followed by a time.
# RE2 patterns (Arrow's regex engine); named groups become the extracted fields.
_YMD_SEP = r"^\s*(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?(?:$|[\sT])"
_YMD_COMPACT = r"^\s*(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?:$|[\sT]|\d{6}$)"
_TZ_SUFFIX = r"(?:[+-]\d{2}:?\d{2}|Z)\s*$"
_HAS_TIME = r"\d[T ]\d{1,2}:\d{2}"
_EXCEL = r"^\s*\d{5}(?:\.0+)?\s*$"
#: Excel's day 0 (its 1900 leap-year bug is why this is 1899-12-30, not 12-31).
_EXCEL_EPOCH = np.datetime64("1899-12-30")
#: Serial numbers Excel exports for 1954-10-18 .. 2064-03-29: the only plausible range here.
_EXCEL_MIN, _EXCEL_MAX = 20_000, 60_000
LOCAL_TZ = "Asia/Shanghai"


def _ymd_to_datetime(parts: pd.DataFrame) -> pd.Series:
    frame = pd.DataFrame(
        {
            "year": pd.to_numeric(parts[0], errors="coerce"),
            "month": pd.to_numeric(parts[1], errors="coerce"),
            "day": pd.to_numeric(parts[2], errors="coerce"),
        },
        index=parts.index,
    )
    ok = frame.notna().all(axis=1)
    out = pd.Series(pd.NaT, index=parts.index, dtype="datetime64[ns]")
    if bool(ok.any()):
        out[ok] = pd.to_datetime(frame[ok].astype("int64"), errors="coerce")
    return out


def date(s: pd.Series, excel_serial: bool = True) -> pd.Series:
    """Parse the date formats departments really use into ``datetime64[ns]`` (midnight, local).

    Accepted: ``2016-05-04``, ``2016/5/4``, ``2016.05.04``, ``20160504``, ``2016年5月4日``,
    date-times (the date part; with an offset such as ``+08:00`` or ``Z`` the instant is first
    converted to Asia/Shanghai), native dates and timestamps, and — unless
    ``excel_serial: false`` — Excel day serials (20000..60000) that spreadsheets export.
    Impossible dates (2016-02-30) and anything else become ``NaT``.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ts = s
        if getattr(s.dt, "tz", None) is not None:
            ts = s.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)
        return ts.dt.normalize().astype("datetime64[ns]")
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    if len(s) == 0:
        return out
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind in ("date", "datetime", "datetime64"):
        native = s.notna()
    elif kind == "mixed":
        # Rare: real dates mixed with text in one column; sort them out value by value.
        native = s.map(lambda v: hasattr(v, "isoformat")).astype(bool)
    else:
        native = pd.Series(False, index=s.index)
    text = fullwidth_to_halfwidth(_as_str(s.where(~native, None)))
    if bool(native.any()):
        nat = pd.to_datetime(s[native], errors="coerce")
        out[native] = _naive_local(pd.Series(nat, index=s.index[native]))
    # Date-times carrying an offset: the local calendar day is what the department means.
    has_tz = _contains(text, _HAS_TIME) & _contains(text, _TZ_SUFFIX)
    if has_tz.any():
        parsed = pd.to_datetime(text[has_tz], errors="coerce", utc=True, format="ISO8601")
        out[has_tz] = parsed.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    left = text.notna().to_numpy() & ~has_tz
    for pattern in (_YMD_SEP, _YMD_COMPACT):
        if not left.any():
            break
        ymd = _extract(text[left], pattern)
        got = ymd["y"].notna().to_numpy()
        if got.any():
            rows = text.index[left][got]
            out[rows] = _ymd_to_datetime(ymd[got].set_axis([0, 1, 2], axis=1)).to_numpy()
            left[np.flatnonzero(left)[got]] = False
    if excel_serial and left.any():
        candidates = text[left][_contains(text[left], _EXCEL)]
        serial = pd.to_numeric(candidates, errors="coerce")
        serial = serial[(serial >= _EXCEL_MIN) & (serial <= _EXCEL_MAX)]
        if len(serial):
            out[serial.index] = _EXCEL_EPOCH + serial.astype("int64").to_numpy().astype("timedelta64[D]")
    return out


def _contains(s: pd.Series, pattern: str) -> np.ndarray:
    """Boolean mask: values matching an RE2 ``pattern`` (missing → False)."""
    if len(s) == 0:
        return np.zeros(0, dtype=bool)
    hit = pc.match_substring_regex(_arrow(s), pattern)
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def _extract(s: pd.Series, pattern: str) -> pd.DataFrame:
    """The named groups of an RE2 ``pattern`` as columns (non-matching rows all missing)."""
    struct = pc.extract_regex(_arrow(s), pattern)
    if isinstance(struct, pa.ChunkedArray):
        struct = struct.combine_chunks()
    names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    valid = struct.is_valid()
    cols = {n: pc.if_else(valid, struct.field(n), pa.scalar(None, struct.field(n).type)) for n in names}
    return pd.DataFrame({n: _back(c, s.index) for n, c in cols.items()}, index=s.index)


def _naive_local(ts: pd.Series) -> pd.Series:
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None)
    return ts.dt.normalize()


def timestamp(s: pd.Series) -> pd.Series:
    """Date-times to ISO 8601 text with an offset (naive values are Asia/Shanghai local time).

    Used for versions and watermarks, where the text must compare and round-trip exactly.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        parsed = s if getattr(s.dt, "tz", None) is not None else s.dt.tz_localize(LOCAL_TZ, ambiguous="NaT")
        parsed = parsed.dt.tz_convert("UTC")
    else:
        text = fullwidth_to_halfwidth(_as_str(s)).str.strip().str.replace(" ", "T", n=1)
        aware = pd.Series(_contains(text, _TZ_SUFFIX), index=text.index)
        parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        if bool(aware.any()):
            parsed[aware] = pd.to_datetime(text[aware], errors="coerce", format="ISO8601", utc=True)
        naive = text.notna() & ~aware
        if bool(naive.any()):
            local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
            parsed[naive] = local.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return _iso_local(parsed)


def _iso_local(parsed: pd.Series) -> pd.Series:
    """UTC instants → ``YYYY-MM-DDTHH:MM:SS+08:00`` in Asia/Shanghai time (vectorised).

    The offset is computed per value: China observed daylight saving time 1986-1991 (+09:00).
    """
    ok = parsed.notna().to_numpy()
    if not ok.any():
        return pd.Series(np.nan, index=parsed.index, dtype=STR)
    utc = parsed.dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    local = parsed.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    # Arrow's cast writes ``YYYY-MM-DD HH:MM:SS`` (about fifteen times faster than strftime)
    body = pc.utf8_replace_slice(
        pc.cast(pa.array(local, pa.timestamp("s")), pa.string()), start=10, stop=11, replacement="T"
    )
    minutes = np.where(ok, (local - utc).astype("int64") // 60, 480)
    values, inverse = np.unique(minutes, return_inverse=True)
    labels = np.array([f"{'-' if v < 0 else '+'}{abs(v) // 60:02d}:{abs(v) % 60:02d}" for v in values], dtype=object)
    offset = pa.array(labels[inverse], pa.string())
    text = pc.binary_join_element_wise(body, offset, "")
    return _back(text, parsed.index).where(ok)


def number(s: pd.Series) -> pd.Series:
    """Decimal text (full-width digits, thousands separators allowed) → float; junk → NaN."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    text = fullwidth_to_halfwidth(s).str.replace(r"[,\s]", "", regex=True)
    return pd.to_numeric(text, errors="coerce").astype("float64")


# --- code tables (代码表) -------------------------------------------------------------------

_SEX = {
    "1": "1",
    "男": "1",
    "M": "1",
    "MALE": "1",
    "男性": "1",
    "2": "2",
    "女": "2",
    "F": "2",
    "FEMALE": "2",
    "女性": "2",
    "0": "0",
    "未知": "0",
    "9": "9",
    "未说明": "9",
}


def sex(s: pd.Series) -> pd.Series:
    """Sex codes to GB/T 2261.1 (1 male, 2 female, 0 unknown, 9 unspecified); others → None."""
    return _map_values(code(s), _SEX)


#: Department status codes → canonical status words.
STATUS_TABLES: dict[str, dict[str, str]] = {
    # 存续/在业 are the same legal state written two ways by different registration offices.
    "commerce_enterprise": {
        "存续": "active",
        "在业": "active",
        "开业": "active",
        "在营": "active",
        "正常": "active",
        "吊销": "revoked",
        "吊销未注销": "revoked",
        "注销": "cancelled",
        "迁出": "moved_out",
        "停业": "suspended",
        "歇业": "suspended",
    },
    "tax_taxpayer": {
        "01": "normal",
        "1": "normal",
        "正常": "normal",
        "02": "abnormal",
        "2": "abnormal",
        "非正常": "abnormal",
        "非正常户": "abnormal",
        "03": "cancelled",
        "3": "cancelled",
        "注销": "cancelled",
    },
    "person": {
        "ALIVE": "alive",
        "正常": "alive",
        "DECEASED": "deceased",
        "死亡": "deceased",
        "MOVED": "moved",
        "迁出": "moved",
    },
    "property_right": {
        "REGISTERED": "registered",
        "已登记": "registered",
        "CANCELLED": "cancelled",
        "注销": "cancelled",
        "MORTGAGED": "mortgaged",
        "抵押": "mortgaged",
        "SEALED": "sealed",
        "查封": "sealed",
    },
    "approval_conclusion": {
        "APPROVED": "approved",
        "同意": "approved",
        "通过": "approved",
        "APPROVED_WITH_CONDITIONS": "approved_with_conditions",
        "有条件通过": "approved_with_conditions",
        "REJECTED": "rejected",
        "不同意": "rejected",
        "不予通过": "rejected",
    },
    "holder_kind": {
        "RESIDENT_ID": "person",
        "USCC": "enterprise",
        "ORG_CODE": "enterprise",
        "REG_NO": "enterprise",
        "TAXPAYER_ID": "enterprise",
    },
}


def status(s: pd.Series, table: str) -> pd.Series:
    """Map a department's status codes through a named table in :data:`STATUS_TABLES`.

    Values the table does not know become ``None`` (validation quarantines them if required).
    """
    mapping = STATUS_TABLES[table]
    key = upper(trim(fullwidth_to_halfwidth(s)))
    return _map_values(key, mapping)


def value_map(s: pd.Series, values: Mapping[str, Any], default: Any = None, keep_unknown: bool = False) -> pd.Series:
    """Map values through an inline table (``{map: {values: {...}, default: ...}}``)."""
    key = trim(s)
    out = _map_values(key, dict(values))
    if keep_unknown:
        out = out.where(out.notna(), key)
    elif default is not None:
        out = out.where(out.notna() | key.isna(), default)
    return out.astype(STR)


def empty_to_null(s: pd.Series) -> pd.Series:
    """Empty strings and placeholders (``-``, ``无``, ``NULL``) → missing."""
    text = _as_str(s)
    stripped = text.str.strip()
    junk = stripped.isin(["", "-", "--", "无", "NULL", "null", "None", "N/A", "/"])
    return text.where(~junk)


def resident_id(s: pd.Series) -> pd.Series:
    """A resident id's own canonical form (GB 11643): cleaned, and a valid 15-digit legacy
    number converted to its 18 digits. Invalid values are only cleaned, so validation still
    sees (and quarantines) them; nothing is looked up.
    """
    text = _as_str(s)
    present = text.notna()
    out = text.copy()
    if present.any():
        out[present] = canonical_resident_ids(text[present]).to_numpy()
    return out


#: name → (function, allowed parameter names). Each is a function of one column alone: the
#: engine normalises a large batch's columns on several threads at once (shared state, such
#: as the OpenCC cache, is guarded by a lock).
NORMALIZERS: dict[str, tuple[Normalizer, frozenset[str]]] = {
    "fullwidth_to_halfwidth": (fullwidth_to_halfwidth, frozenset()),
    "trim": (trim, frozenset()),
    "remove_spaces": (remove_spaces, frozenset()),
    "upper": (upper, frozenset()),
    "code": (code, frozenset()),
    "digits": (digits, frozenset()),
    "simplify": (simplify, frozenset()),
    "date": (date, frozenset({"excel_serial"})),
    "timestamp": (timestamp, frozenset()),
    "number": (number, frozenset()),
    "sex": (sex, frozenset()),
    "status": (status, frozenset({"table"})),
    "map": (value_map, frozenset({"values", "default", "keep_unknown"})),
    "empty_to_null": (empty_to_null, frozenset()),
    "resident_id": (resident_id, frozenset()),
}

#: Parameters a normaliser cannot work without.
REQUIRED_PARAMS: dict[str, frozenset[str]] = {"status": frozenset({"table"}), "map": frozenset({"values"})}


#: normalisers that never change which value a cleaned code stands for (applied after one that
#: yields a closed set of values, they keep that set)
_VALUE_PRESERVING = frozenset({"trim", "remove_spaces", "upper", "fullwidth_to_halfwidth", "simplify", "empty_to_null"})


def possible_values(normalizers: Iterable[tuple[str, Mapping[str, Any]]]) -> frozenset[str] | None:
    """The values a chain of normalisers can yield, when it ends in a closed set (``status``
    tables, ``map`` without ``keep_unknown``, ``sex``); ``None`` when any source value can pass.

    >>> sorted(possible_values([("trim", {}), ("status", {"table": "person"})]))
    ['alive', 'deceased', 'moved']
    >>> possible_values([("trim", {})]) is None
    True
    """
    values: frozenset[str] | None = None
    for name, params in normalizers:
        if name == "status" and params.get("table") in STATUS_TABLES:
            values = frozenset(STATUS_TABLES[str(params["table"])].values())
        elif name == "map" and isinstance(params.get("values"), Mapping) and not params.get("keep_unknown"):
            found = {str(v) for v in params["values"].values() if v is not None}
            if params.get("default") is not None:
                found.add(str(params["default"]))
            values = frozenset(found)
        elif name == "sex":
            values = frozenset(_SEX.values())
        elif name not in _VALUE_PRESERVING:
            values = None
    return values


def normalizer_problems(name: str, params: Mapping[str, Any]) -> list[str]:
    """What is wrong with a normaliser reference (empty list if nothing)."""
    if name not in NORMALIZERS:
        return [f"unknown normaliser {name!r} (known: {', '.join(sorted(NORMALIZERS))})"]
    _, allowed = NORMALIZERS[name]
    problems = [f"normaliser {name!r} takes no parameter {p!r}" for p in params if p not in allowed]
    problems += [f"normaliser {name!r} needs parameter {p!r}" for p in REQUIRED_PARAMS.get(name, ()) if p not in params]
    if name == "status" and "table" in params and params["table"] not in STATUS_TABLES:
        problems.append(f"unknown status table {params['table']!r} (known: {', '.join(sorted(STATUS_TABLES))})")
    return problems


def apply_normalizer(s: pd.Series, name: str, params: Mapping[str, Any] | None = None) -> pd.Series:
    func, _ = NORMALIZERS[name]
    return func(s, **dict(params or {}))
