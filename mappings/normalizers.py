"""Normalisers (规范化): vectorised clean-up of source values before they become canonical.

Every normaliser takes a pandas ``Series`` (object dtype, ``None``/``NaN`` for missing) and
returns a Series of the same length and index; none loops over rows in Python except over
*distinct* values where a library only offers a scalar call (OpenCC), and those results are
cached across batches. Mapping files name normalisers by their registry key, optionally with
parameters: ``- trim`` or ``- {status: commerce_enterprise}``.

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

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

Normalizer = Callable[..., pd.Series]

#: U+FF01..U+FF5E are the full-width forms of ASCII 0x21..0x7E; U+3000 is the ideographic space.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
# Dashes departments type into codes and dates (full-width hyphen handled above).
_FULLWIDTH.update({0x2014: 0x2D, 0x2013: 0x2D, 0x2212: 0x2D, 0x2010: 0x2D, 0x2011: 0x2D})


def _as_str(s: pd.Series) -> pd.Series:
    """The values as pandas' string dtype (missing stays missing; ``1.0`` read as a float is ``1``)."""
    if isinstance(s.dtype, pd.StringDtype):
        return s
    if pd.api.types.is_float_dtype(s.dtype):
        finite = s.dropna()
        if bool((finite == finite.round()).all()):
            s = s.astype("Int64")
    return s.astype("str")


def _empty_to_none(s: pd.Series) -> pd.Series:
    return s.where(s != "")


def fullwidth_to_halfwidth(s: pd.Series) -> pd.Series:
    """Full-width letters, digits, punctuation and the ideographic space → ASCII (全角转半角)."""
    s = _as_str(s)
    return s.str.translate(_FULLWIDTH)


def trim(s: pd.Series) -> pd.Series:
    """Strip both ends and collapse inner runs of whitespace (incl. U+3000) to one space."""
    s = _as_str(s)
    out = s.str.replace(r"[\s\u3000]+", " ", regex=True).str.strip()
    return _empty_to_none(out)


def remove_spaces(s: pd.Series) -> pd.Series:
    """Drop every whitespace character (Chinese names and addresses carry none)."""
    s = _as_str(s)
    return _empty_to_none(s.str.replace(r"[\s\u3000]+", "", regex=True))


def upper(s: pd.Series) -> pd.Series:
    """Upper-case (a lower-case ``x`` check character is still the check character X)."""
    s = _as_str(s)
    return s.str.upper()


def code(s: pd.Series) -> pd.Series:
    """Code clean-up (代码清洗): half-width, no spaces, dashes, dots or slashes, upper case.

    Only the *shape* is cleaned; whether the code is valid is the identity module's call.
    """
    s = fullwidth_to_halfwidth(s)
    out = s.str.replace(r"[\s\-_./\\]+", "", regex=True).str.upper()
    return _empty_to_none(out)


def digits(s: pd.Series) -> pd.Series:
    """Keep digits only (region codes, phone numbers)."""
    s = fullwidth_to_halfwidth(s)
    return _empty_to_none(s.str.replace(r"\D+", "", regex=True))


# --- traditional → simplified (繁简转换) -----------------------------------------------------


@lru_cache(maxsize=1)
def _opencc() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _traditional_pattern() -> re.Pattern[str]:
    """A character class of every character OpenCC's t2s tables would change."""
    import opencc

    dictionary = Path(opencc.__file__).parent / "dictionary"
    chars: set[str] = set()
    for name in ("TSCharacters.txt", "TSPhrases.txt"):
        for line in (dictionary / name).read_text(encoding="utf-8").splitlines():
            key, _, values = line.partition("\t")
            if key and values.split(" ")[0] != key:
                chars.update(key)
    chars = {c for c in chars if ord(c) > 0x7F}
    return re.compile("[" + "".join(sorted(re.escape(c) for c in chars)) + "]")


_T2S_CACHE: dict[str, str] = {}
_T2S_CACHE_MAX = 500_000


def simplify(s: pd.Series) -> pd.Series:
    """Traditional → simplified Chinese with OpenCC (``t2s``).

    Only values that contain a character OpenCC would change are converted (a vectorised regex
    test), each distinct value once, and results are cached across batches.
    """
    s = _as_str(s)
    needs = s.str.contains(_traditional_pattern(), regex=True, na=False)
    if not bool(needs.any()):
        return s
    distinct = pd.unique(s[needs])
    cc = _opencc()
    missing = [v for v in distinct if v not in _T2S_CACHE]
    if len(_T2S_CACHE) + len(missing) > _T2S_CACHE_MAX:
        _T2S_CACHE.clear()
    for v in missing:
        _T2S_CACHE[v] = cc.convert(v)
    out = s.copy()
    out[needs] = s[needs].map(_T2S_CACHE)
    return out


# --- dates (日期) ---------------------------------------------------------------------------

# 2016-05-04, 2016/5/4, 2016.05.04, 2016年5月4日, optionally followed by a time.
_YMD_SEP = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:$|[\sT])")
_YMD_COMPACT = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})(?:$|[\sT]|\d{6}$)")
_TZ_SUFFIX = re.compile(r"(?:[+-]\d{2}:?\d{2}|Z)\s*$")
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
    has_tz = text.str.contains(r"\d[T ]\d{1,2}:\d{2}", regex=True, na=False) & text.str.contains(
        _TZ_SUFFIX, regex=True, na=False
    )
    if bool(has_tz.any()):
        parsed = pd.to_datetime(text[has_tz], errors="coerce", utc=True, format="ISO8601")
        out[has_tz] = parsed.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    rest = text.notna() & ~has_tz
    sep = text[rest].str.extract(_YMD_SEP)
    got = sep[0].notna()
    if bool(got.any()):
        out[got[got].index] = _ymd_to_datetime(sep[got])
    left = rest & ~got.reindex(s.index, fill_value=False)
    compact = text[left].str.extract(_YMD_COMPACT)
    got_c = compact[0].notna()
    if bool(got_c.any()):
        out[got_c[got_c].index] = _ymd_to_datetime(compact[got_c])
    if excel_serial:
        left = left & ~got_c.reindex(s.index, fill_value=False)
        serial = pd.to_numeric(text[left].where(text[left].str.fullmatch(r"\s*\d{5}(?:\.0+)?\s*", na=False)),
                               errors="coerce")
        serial = serial[(serial >= _EXCEL_MIN) & (serial <= _EXCEL_MAX)]
        if len(serial):
            out[serial.index] = _EXCEL_EPOCH + serial.astype("int64").to_numpy().astype("timedelta64[D]")
    return out


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
        aware = text.str.contains(_TZ_SUFFIX, regex=True, na=False)
        parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        if bool(aware.any()):
            parsed[aware] = pd.to_datetime(text[aware], errors="coerce", format="ISO8601", utc=True)
        naive = text.notna() & ~aware
        if bool(naive.any()):
            local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
            parsed[naive] = local.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    iso = parsed.dt.tz_convert(LOCAL_TZ).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    iso = iso.str.replace(r"(\d{2})(\d{2})$", r"\1:\2", regex=True)
    return iso.where(parsed.notna()).astype("str")


def number(s: pd.Series) -> pd.Series:
    """Decimal text (full-width digits, thousands separators allowed) → float; junk → NaN."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    text = fullwidth_to_halfwidth(s).str.replace(r"[,\s]", "", regex=True)
    return pd.to_numeric(text, errors="coerce").astype("float64")


# --- code tables (代码表) -------------------------------------------------------------------

_SEX = {
    "1": "1", "男": "1", "M": "1", "MALE": "1", "男性": "1",
    "2": "2", "女": "2", "F": "2", "FEMALE": "2", "女性": "2",
    "0": "0", "未知": "0", "9": "9", "未说明": "9",
}


def sex(s: pd.Series) -> pd.Series:
    """Sex codes to GB/T 2261.1 (1 male, 2 female, 0 unknown, 9 unspecified); others → None."""
    key = code(s)
    return key.map(_SEX).where(key.notna(), None).astype("str")


#: Department status codes → canonical status words.
STATUS_TABLES: dict[str, dict[str, str]] = {
    # 存续/在业 are the same legal state written two ways by different registration offices.
    "commerce_enterprise": {
        "存续": "active", "在业": "active", "开业": "active", "在营": "active", "正常": "active",
        "吊销": "revoked", "吊销未注销": "revoked", "注销": "cancelled", "迁出": "moved_out",
        "停业": "suspended", "歇业": "suspended",
    },
    "tax_taxpayer": {
        "01": "normal", "1": "normal", "正常": "normal",
        "02": "abnormal", "2": "abnormal", "非正常": "abnormal", "非正常户": "abnormal",
        "03": "cancelled", "3": "cancelled", "注销": "cancelled",
    },
    "person": {
        "ALIVE": "alive", "正常": "alive", "DECEASED": "deceased", "死亡": "deceased",
        "MOVED": "moved", "迁出": "moved",
    },
    "property_right": {
        "REGISTERED": "registered", "已登记": "registered", "CANCELLED": "cancelled", "注销": "cancelled",
        "MORTGAGED": "mortgaged", "抵押": "mortgaged", "SEALED": "sealed", "查封": "sealed",
    },
    "approval_conclusion": {
        "APPROVED": "approved", "同意": "approved", "通过": "approved",
        "APPROVED_WITH_CONDITIONS": "approved_with_conditions", "有条件通过": "approved_with_conditions",
        "REJECTED": "rejected", "不同意": "rejected", "不予通过": "rejected",
    },
    "holder_kind": {
        "RESIDENT_ID": "person", "USCC": "enterprise", "ORG_CODE": "enterprise",
        "REG_NO": "enterprise", "TAXPAYER_ID": "enterprise",
    },
}


def status(s: pd.Series, table: str) -> pd.Series:
    """Map a department's status codes through a named table in :data:`STATUS_TABLES`.

    Values the table does not know become ``None`` (validation quarantines them if required).
    """
    mapping = STATUS_TABLES[table]
    key = trim(fullwidth_to_halfwidth(s)).str.upper()
    return key.map(mapping).astype("str")


def value_map(s: pd.Series, values: Mapping[str, Any], default: Any = None, keep_unknown: bool = False) -> pd.Series:
    """Map values through an inline table (``{map: {values: {...}, default: ...}}``)."""
    key = trim(s)
    out = key.map(dict(values))
    if keep_unknown:
        out = out.where(out.notna(), key)
    elif default is not None:
        out = out.where(out.notna() | key.isna(), default)
    return out.astype("str")


def empty_to_null(s: pd.Series) -> pd.Series:
    """Empty strings and placeholders (``-``, ``无``, ``NULL``) → missing."""
    text = _as_str(s)
    stripped = text.str.strip()
    junk = stripped.isin(["", "-", "--", "无", "NULL", "null", "None", "N/A", "/"])
    return text.where(~junk)


#: name → (function, allowed parameter names)
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
}

#: Parameters a normaliser cannot work without.
REQUIRED_PARAMS: dict[str, frozenset[str]] = {"status": frozenset({"table"}), "map": frozenset({"values"})}


def normalizer_problems(name: str, params: Mapping[str, Any]) -> list[str]:
    """What is wrong with a normaliser reference (empty list if nothing)."""
    if name not in NORMALIZERS:
        return [f"unknown normaliser {name!r} (known: {', '.join(sorted(NORMALIZERS))})"]
    _, allowed = NORMALIZERS[name]
    problems = [f"normaliser {name!r} takes no parameter {p!r}" for p in params if p not in allowed]
    problems += [
        f"normaliser {name!r} needs parameter {p!r}" for p in REQUIRED_PARAMS.get(name, ()) if p not in params
    ]
    if name == "status" and "table" in params and params["table"] not in STATUS_TABLES:
        problems.append(f"unknown status table {params['table']!r} (known: {', '.join(sorted(STATUS_TABLES))})")
    return problems


def apply_normalizer(s: pd.Series, name: str, params: Mapping[str, Any] | None = None) -> pd.Series:
    func, _ = NORMALIZERS[name]
    return func(s, **dict(params or {}))
