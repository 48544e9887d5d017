"""Data-quality rules as vectorised functions: the single source of truth for each rule (校验规则).

Each rule takes a pandas ``Series`` (one canonical column of a batch) and returns a boolean
``numpy`` array, ``True`` where the value is as expected. The same function backs both the
Great Expectations metric provider (:mod:`validation.expectations`) and the fast path that
computes the quarantine mask for whole batches (:mod:`validation.suites`), so GX and the fast
path cannot drift apart.

Identifier checks are :mod:`identifiers.vectorized`'s (``is_valid_resident_id``, ``is_valid_uscc``,
``is_valid_org_code``). This module only adds the canonical-form check (compact, upper-case, the
shapes of :mod:`identifiers.shapes`) that says the mapping normalised the value.

>>> import pandas as pd
>>> resident_id_valid(pd.Series(["11010519491231002X", "110105194912310021", None])).tolist()
[True, False, False]
>>> resolved(pd.Series(["P-1", "", None, float("nan")])).tolist()
[True, False, False, False]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from identifiers import shapes
from identifiers.vectorized import is_valid_org_code, is_valid_resident_id, is_valid_uscc

BoolArray = np.ndarray

#: A vectorised identifier check: a column of candidate codes → one verdict per value.
IdentifierCheck = Callable[[pd.Series], Any]


def _as_str(column: pd.Series) -> pd.Series:
    """Values as ``str`` with missing values as ``None`` (object dtype)."""
    s = column.astype(object)
    return s.where(pd.notna(s), None)


def _identifier_valid(column: pd.Series, check: IdentifierCheck, shape: re.Pattern[str]) -> BoolArray:
    # The canonical form is compact and upper-case; anything else was not normalised by the mapping.
    text = column.astype("str")
    shaped = text.str.fullmatch(shape.pattern).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(text), dtype=bool)
    idx = np.flatnonzero(shaped)
    if len(idx) == 0:
        return out
    candidates = text.iloc[idx].reset_index(drop=True)
    out[idx] = np.asarray(check(candidates), dtype=bool)
    return out


def resident_id_valid(column: pd.Series) -> BoolArray:
    """A valid 18-digit resident id (公民身份号码, GB 11643): shape, birth date and check digit."""
    return _identifier_valid(column, is_valid_resident_id, shapes.RESIDENT_ID)


def uscc_valid(column: pd.Series) -> BoolArray:
    """A valid unified social credit code (统一社会信用代码, GB 32100)."""
    return _identifier_valid(column, is_valid_uscc, shapes.USCC)


def org_code_valid(column: pd.Series) -> BoolArray:
    """A valid organisation code (组织机构代码, GB 11714), nine characters, no dash."""
    return _identifier_valid(column, is_valid_org_code, shapes.ORG_CODE)


def resolved(column: pd.Series) -> BoolArray:
    """The resolver found an identity: the resolved-id column holds a non-empty id."""
    s = column.astype(object)
    present = pd.notna(s).to_numpy(dtype=bool)
    nonblank = s.astype(str).str.strip().ne("").to_numpy(dtype=bool)
    return present & nonblank


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != "" and not (isinstance(value, float) and np.isnan(value))


def _owner_code(owner: Any) -> tuple[str | None, str | None, bool, bool]:
    """(holder code, holder kind, resolved-or-unannotated, matchable) of one owner entry."""
    if isinstance(owner, dict):
        code = owner.get("holder_code")
        kind = owner.get("holder_kind")
        ok = True
        if "resolved_id" in owner:
            ok = _present(owner.get("resolved_id"))
        return (None if code is None else str(code)), kind, ok, _matchable(owner, code, kind)
    if owner is None or (isinstance(owner, float) and np.isnan(owner)):
        return None, None, True, False
    return str(owner), None, True, False


def _matchable(owner: dict[str, Any], code: Any, kind: Any) -> bool:
    """An owner the resolver can match without a usable code (as the person and enterprise
    suites' ``unless_matchable_by``): a named enterprise; a named person whose code, however
    damaged, still carries a birth date (characters 7-14 of an 18-character resident id)."""
    if not _present(owner.get("name")) or kind not in ("person", "enterprise"):
        return False
    if kind == "enterprise":
        return True
    text = str(code).strip() if _present(code) else ""
    born = pd.to_datetime(text[6:14], format="%Y%m%d", errors="coerce") if len(text) == 18 else pd.NaT
    return bool(pd.notna(born))


def _owners_of(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, np.ndarray):
        return list(value.tolist())
    if isinstance(value, dict | str):
        return [value]
    return None


def known_property_owner(column: pd.Series) -> BoolArray:
    """Every owner of a property right (不动产权利人) is a known party.

    A value is one owner (a code, or a dict with ``holder_code``/``holder_kind``) or a list of
    them. An owner is known when its code is a valid resident id, USCC or organisation code
    (of its ``holder_kind`` when given) — or, without a usable code, when the resolver can match
    it (:func:`_matchable`) — and, where the resolver annotated it with ``resolved_id``, that id
    is set. An empty owner list is unknown.
    """
    owners_lists = [_owners_of(v) for v in column.to_numpy()]
    flat_codes: list[str | None] = []
    flat_kind: list[str | None] = []
    flat_ok: list[bool] = []
    flat_matchable: list[bool] = []
    flat_row: list[int] = []
    for row, owners in enumerate(owners_lists):
        for owner in owners or ():
            code, kind, ok, matchable = _owner_code(owner)
            flat_matchable.append(matchable)
            flat_codes.append(code)
            flat_kind.append(kind)
            flat_ok.append(ok)
            flat_row.append(row)
    out = np.array([bool(o) for o in owners_lists], dtype=bool)
    if not flat_codes:
        return out
    codes = pd.Series(flat_codes, dtype=object)
    kinds = np.array([k or "" for k in flat_kind], dtype=object)
    as_person = resident_id_valid(codes)
    as_enterprise = uscc_valid(codes) | org_code_valid(codes)
    valid = np.where(
        kinds == "person", as_person, np.where(kinds == "enterprise", as_enterprise, as_person | as_enterprise)
    )
    # without a usable code: a code valid for the other kind is a wrong kind, not a damaged code
    unusable = ~(as_person | as_enterprise) & np.array(flat_matchable, dtype=bool)
    owner_ok = (valid | unusable) & np.array(flat_ok, dtype=bool)
    rows = np.array(flat_row)
    bad_rows = np.unique(rows[~owner_ok])
    out[bad_rows] = False
    return out


# -- equivalents of the GX built-ins the suites use, for the fast path --------------------------
# These mirror the pandas implementations of GX's own metric providers; tests assert that GX and
# these give the same unexpected rows on the same frames (tests/validation/test_equivalence.py).


def not_null(column: pd.Series) -> BoolArray:
    """GX ``column_values.nonnull``: pandas' notna."""
    return pd.notna(column).to_numpy(dtype=bool)


def in_set(column: pd.Series, value_set: Iterable[Any]) -> BoolArray:
    """GX ``column_values.in_set`` (nulls are not evaluated: GX counts them as missing)."""
    return column.isin(list(value_set)).to_numpy(dtype=bool)


def match_regex(column: pd.Series, regex: str) -> BoolArray:
    """GX ``column_values.match_regex``: ``column.astype(str).str.contains(regex)``."""
    return column.astype(str).str.contains(regex).to_numpy(dtype=bool)


def value_lengths_between(column: pd.Series, min_value: int | None, max_value: int | None) -> BoolArray:
    """GX ``column_values.value_length_between`` on string values."""
    lengths = column.astype(str).str.len()
    ok = np.ones(len(column), dtype=bool)
    if min_value is not None:
        ok &= (lengths >= min_value).to_numpy(dtype=bool)
    if max_value is not None:
        ok &= (lengths <= max_value).to_numpy(dtype=bool)
    return ok


def null_mask(column: pd.Series) -> BoolArray:
    """Rows GX treats as missing (not evaluated) for map metrics that filter nulls."""
    return pd.isna(column).to_numpy(dtype=bool)


def unexpected_rows(expected: BoolArray, evaluated: BoolArray) -> BoolArray:
    """Rows that were evaluated and failed."""
    return evaluated & ~expected
