"""Resolution rules (归一规则): every code a department used → one canonical code, read only.

A person's code is the 18-digit resident id, an enterprise's the USCC, by rules in this order:
a valid code is itself (``exact``); a 15-digit resident id becomes its 18-digit form
(``converted_15_to_18``); an organisation code is the USCC whose positions 9-17 carry it
(``org_code_in_uscc``); an old taxpayer id goes through its organisation code
(``taxpayer_org_code``); a registration number (and any code linked before) goes through the
cross-walk (``crosswalk``). Column-wise, with a handful of queries per batch (:mod:`identity._bulk`);
:func:`resolve_one` gives one code the same answer by at most three point queries (intake at the window).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.orm import Session

from hub.dbapi import prepared, session_dbapi
from identifiers.normalize import normalize
from identifiers.vectorized import normalize_many
from identity import _bulk
from identity.statuses import NEW, RESOLVED, UNRESOLVED
from identity.tables import (
    ENTERPRISE,
    PERSON,
    IdentityCrosswalk,
    IdentityEnterprise,
    IdentityPerson,
)

EXACT = "exact"


CONVERTED = "converted_15_to_18"


ORG_IN_USCC = "org_code_in_uscc"


TAXPAYER_ORG = "taxpayer_org_code"


CROSSWALK = "crosswalk"


COMMERCE = "commerce_registry"


def unique_values(values: Iterable[Any]) -> list[Any]:
    """Distinct non-empty values (order of first appearance; no sort over a million codes)."""
    arr = np.asarray(values if isinstance(values, np.ndarray | list) else list(values), dtype=object)
    if not len(arr):
        return []
    return [v for v in pd.unique(arr).tolist() if v is not None and v == v and v != ""]


def isin(values: np.ndarray, choices: Iterable[Any]) -> np.ndarray:
    """Membership per element of an object array that may hold ``None`` (hash-based)."""
    return pd.Series(values, dtype=object).isin(list(choices)).to_numpy(dtype=bool)


def kind_of_entity(entity_kind: str) -> str:
    if entity_kind not in (PERSON, ENTERPRISE):
        raise ValueError(f"entity_kind must be 'person' or 'enterprise', got {entity_kind!r}")
    return entity_kind


def _crosswalk(session: Session, codes: Sequence[str], entity_kind: str) -> dict[str, str]:
    """Active cross-walk entries: legacy code → canonical code (latest link wins)."""
    out: dict[str, tuple[Any, str]] = {}
    for chunk in _bulk.chunks(unique_values(codes)):
        rows = session.execute(
            select(IdentityCrosswalk.legacy_code, IdentityCrosswalk.canonical_code, IdentityCrosswalk.linked_at).where(
                _bulk.in_values(session, IdentityCrosswalk.legacy_code, chunk),
                IdentityCrosswalk.entity_kind == entity_kind,
                IdentityCrosswalk.undone_at.is_(None),
            )
        ).all()
        for legacy, canonical, at in rows:
            if legacy not in out or at >= out[legacy][0]:
                out[legacy] = (at, canonical)
    return {k: v[1] for k, v in out.items()}


def _by_org_code(session: Session, org_codes: Sequence[str]) -> dict[str, str | None]:
    """Organisation code → the USCC carrying it (``None`` if several identities carry it); a
    provisional enterprise's code is the hub's own and embeds no organisation code."""
    out: dict[str, str | None] = {}
    ent = IdentityEnterprise
    for chunk in _bulk.chunks(unique_values(org_codes)):
        rows = session.execute(
            select(ent.org_code, ent.uscc).where(
                _bulk.in_values(session, ent.org_code, chunk), ent.merged_into.is_(None), ent.provisional.is_(False)
            )
        ).all()
        for org, code in rows:
            out[org] = code if org not in out else None
    return out


def _existing(session: Session, codes: Sequence[str], entity_kind: str) -> tuple[set[str], dict[str, str]]:
    """(canonical codes present in the index, those merged away → the code they live on as)."""
    model = IdentityPerson if entity_kind == PERSON else IdentityEnterprise
    table = core_table(model)
    key_col, merged_col = table.c[model.key_name], table.c.merged_into
    if _bulk.dialect_name(session) == "sqlite":
        # the key alone is read from the primary-key index (a row read per code costs twice
        # as much); merged identities, few, from the partial index that holds only them
        present = {row[0] for row in _bulk.rows_for_keys(session, table, key_col, codes)}
        if not present:
            return present, {}
        merged = session.connection().execute(select(key_col, merged_col).where(merged_col.is_not(None))).all()
        return present, {code: into for code, into in merged if code in present}
    rows = list(_bulk.rows_for_keys(session, table, key_col, codes, (merged_col,)))
    return {code for code, _ in rows}, {code: into for code, into in rows if into}


def _candidate_mask(amb: np.ndarray, candidates: np.ndarray, kind: str) -> np.ndarray:
    """Rows that are ambiguous with ``kind`` among their candidate kinds."""
    out = np.zeros(len(amb), dtype=bool)
    idx = np.flatnonzero(amb)
    if len(idx):
        out[idx] = [kind in (c or ()) for c in candidates[idx].tolist()]
    return out


def _interpret(frame: pd.DataFrame, entity_kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row (column-wise): canonical code derivable from the code itself, its method, and
    the organisation code to look up for codes that need the index."""
    n = len(frame)
    kind = frame["kind"].to_numpy(dtype=object)
    canonical = frame["canonical"].to_numpy(dtype=object)
    valid = frame["valid"].to_numpy(dtype=bool)
    candidates = frame["candidates"].to_numpy(dtype=object)
    amb = kind == "ambiguous"
    direct = np.full(n, None, dtype=object)
    method = np.full(n, None, dtype=object)
    org = np.full(n, None, dtype=object)
    if entity_kind == PERSON:
        exact = valid & (kind == "resident_id")
        converted = ~exact & valid & (kind == "resident_id_15")
        from_15 = ~exact & ~converted & amb & _candidate_mask(amb, candidates, "resident_id_15")
        as_18 = ~exact & ~converted & ~from_15 & amb & _candidate_mask(amb, candidates, "resident_id")
        own = exact | converted | as_18
        direct[own] = canonical[own]
        direct[from_15] = frame["resident_id_18"].to_numpy(dtype=object)[from_15]
        method[exact | as_18] = EXACT
        method[converted | from_15] = CONVERTED
        return direct, method, org
    length = np.fromiter((len(c) if c else 0 for c in canonical.tolist()), dtype=np.int64, count=n)
    own_kind = (kind == "uscc") | (kind == "taxpayer_id")
    exact = (valid & own_kind & (length == 18)) | (amb & _candidate_mask(amb, candidates, "uscc"))
    by_org = ~exact & valid & (kind == "org_code")
    taxpayer = (
        ~exact
        & ~by_org
        & ((valid & (kind == "taxpayer_id") & (length == 15)) | (amb & _candidate_mask(amb, candidates, "taxpayer_id")))
    )
    direct[exact] = canonical[exact]
    method[exact] = EXACT
    org[by_org] = canonical[by_org]
    method[by_org] = ORG_IN_USCC
    idx = np.flatnonzero(taxpayer)
    if len(idx):
        org[idx] = [c[6:] for c in canonical[idx].tolist()]
        method[idx] = TAXPAYER_ORG
    return direct, method, org


def resolve_codes(
    session: Session,
    codes: Sequence[Any],
    entity_kind: str,
    *,
    kinds: Sequence[str | None] | None = None,
    learnt: Mapping[str, str] | None = None,
    pending: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Resolve codes to canonical codes without writing anything.

    Returns one row per code: ``code_kind``, ``normalized`` (the code's own clean form),
    ``canonical_code``, ``method`` and ``status`` (``resolved`` — in the index, ``new`` — a
    valid canonical code not yet in the index, ``unresolved``). ``kinds`` forces a kind per
    code (``None``/``auto`` detects); ``learnt`` adds cross-walk entries not yet stored;
    ``pending`` maps organisation codes to USCCs of identities about to be created (``new``).
    """
    kind_of_entity(entity_kind)
    values = codes.tolist() if isinstance(codes, pd.Series | np.ndarray) else list(codes)
    frame = _normalize(values, kinds)
    direct, method, org = _interpret(frame, entity_kind)
    normalized = frame["canonical"].to_numpy(dtype=object)
    canonical = direct.copy()
    looks = np.flatnonzero(pd.notna(org))
    if len(looks):
        by_org: dict[str, str | None] = _by_org_code(session, org[looks].tolist())
        for code, into in (pending or {}).items():
            by_org.setdefault(code, into)
        canonical[looks] = [by_org.get(o) for o in org[looks].tolist()]
    # codes no rule turned into a canonical code: the cross-walk (stored, and learnt now)
    walk_rows = np.flatnonzero(pd.isna(canonical) & np.array([bool(v) for v in normalized.tolist()], dtype=bool))
    if len(walk_rows):
        need = normalized[walk_rows]
        walk = _crosswalk(session, need.tolist(), entity_kind)
        walk.update(learnt or {})
        found = np.array([walk.get(v) for v in need.tolist()], dtype=object)
        hit = pd.notna(found)
        canonical[walk_rows[hit]] = found[hit]
        method[walk_rows[hit]] = CROSSWALK
    method[pd.isna(canonical)] = None
    has = pd.notna(canonical)
    status = np.full(len(values), UNRESOLVED, dtype=object)
    in_index = np.zeros(len(values), dtype=bool)
    if has.any():
        present, merged = _existing(session, canonical[has].tolist(), entity_kind)
        if present:
            in_index = has & isin(canonical, present)
            status[in_index] = RESOLVED
        if merged:
            moved = np.flatnonzero(in_index & isin(canonical, merged))
            canonical[moved] = [merged[c] for c in canonical[moved].tolist()]
    rest = has & ~in_index
    pend = rest & isin(canonical, pending.values()) if pending else np.zeros(len(values), dtype=bool)
    new = pend | (rest & isin(method, (EXACT, CONVERTED)))
    status[new] = NEW
    gone = rest & ~new
    canonical[gone] = None
    method[gone] = None
    return pd.DataFrame(
        {
            "code_kind": frame["kind"].to_numpy(dtype=object),
            "normalized": pd.Series(normalized, dtype=object),
            "canonical_code": pd.Series(canonical, dtype=object),
            "method": pd.Series(method, dtype=object),
            "status": pd.Series(status, dtype=object),
        }
    )


class Resolved(NamedTuple):
    """One code's answer, as a row of :func:`resolve_codes` (same fields, same values)."""

    code_kind: str
    normalized: str | None
    canonical_code: str | None
    method: str | None
    status: str


def _interpret_one(norm: Mapping[str, Any], entity_kind: str) -> tuple[str | None, str | None, str | None]:
    """:func:`_interpret` for one normalised code (:func:`identifiers.normalize.normalize`'s dict)."""
    kind, canonical, valid = norm["kind"], norm["canonical"], bool(norm["valid"])
    amb = kind == "ambiguous"
    candidates = {c["kind"]: c["canonical"] for c in norm.get("candidates") or ()} if amb else {}
    if entity_kind == PERSON:
        if valid and kind in ("resident_id", "resident_id_15"):
            return canonical, EXACT if kind == "resident_id" else CONVERTED, None
        if "resident_id_15" in candidates:
            return candidates["resident_id_15"], CONVERTED, None
        if "resident_id" in candidates:
            return canonical, EXACT, None
        return None, None, None
    length = len(canonical) if canonical else 0
    if (valid and kind in ("uscc", "taxpayer_id") and length == 18) or "uscc" in candidates:
        return canonical, EXACT, None
    if valid and kind == "org_code":
        return None, ORG_IN_USCC, canonical
    if (valid and kind == "taxpayer_id" and length == 15) or "taxpayer_id" in candidates:
        return None, TAXPAYER_ORG, canonical[6:]
    return None, None, None


def resolve_one(
    session: Session,
    code: Any,
    entity_kind: str,
    *,
    kind: str | None = None,
    learnt: Mapping[str, str] | None = None,
    pending: Mapping[str, str] | None = None,
    normalized: Mapping[str, Any] | None = None,
) -> Resolved:
    """:func:`resolve_codes` for one code, without frames: the same answer as its row, by at most
    three point queries (the organisation code, the cross-walk, the identity itself).

    ``normalized``: the code's :func:`identifiers.normalize.normalize` (auto-detected kind) when the
    caller has it already (one code asked about as a person's and as an enterprise's).
    """
    kind_of_entity(entity_kind)
    forced = None if kind in (None, "auto") else kind
    norm = normalized if normalized is not None and forced is None else normalize(code, forced)
    canonical, method, org = _interpret_one(norm, entity_kind)
    own = norm["canonical"]
    if org is not None:
        model = IdentityEnterprise
        found = session.execute(
            select(model.uscc).where(model.org_code == org, model.merged_into.is_(None)).limit(2)
        ).all()
        by_org = (found[0][0] if len(found) == 1 else None) if found else (pending or {}).get(org)
        canonical = by_org
    if canonical is None and own:
        rows = session.execute(
            select(IdentityCrosswalk.canonical_code, IdentityCrosswalk.linked_at).where(
                IdentityCrosswalk.legacy_code == own,
                IdentityCrosswalk.entity_kind == entity_kind,
                IdentityCrosswalk.undone_at.is_(None),
            )
        ).all()
        walked: str | None = None
        latest: Any = None
        for into, at in rows:  # latest link wins (as :func:`_crosswalk`)
            if walked is None or at >= latest:
                walked, latest = into, at
        if learnt and own in learnt:
            walked = learnt[own]
        if walked is not None:
            canonical, method = walked, CROSSWALK
    if canonical is None:
        return Resolved(norm["kind"], own, None, None, UNRESOLVED)
    raw, dialect = session_dbapi(session)  # prepared once, on the DBAPI cursor (every intake asks it)
    row = prepared(_identity_lookup(entity_kind), dialect).first(raw, {"code": canonical})
    if row is not None:
        return Resolved(norm["kind"], own, row[1] or canonical, method, RESOLVED)
    if (pending and canonical in set(pending.values())) or method in (EXACT, CONVERTED):
        return Resolved(norm["kind"], own, canonical, method, NEW)
    return Resolved(norm["kind"], own, None, None, UNRESOLVED)


def _normalize(values: list[Any], kinds: Sequence[str | None] | None) -> pd.DataFrame:
    if kinds is None:
        return normalize_many(values)
    distinct = set(kinds)
    if len(distinct) == 1:  # one kind for the whole column (the usual case): one call
        (kind,) = distinct
        return normalize_many(values, None if kind in (None, "auto") else kind)
    parts = []
    kind_arr = np.array([None if k in (None, "auto") else k for k in kinds], dtype=object)
    for kind in pd.unique(kind_arr):
        idx = np.flatnonzero(kind_arr == kind) if kind is not None else np.flatnonzero(pd.isna(kind_arr))
        part = normalize_many([values[i] for i in idx], kind)
        part.index = idx
        parts.append(part)
    return pd.concat(parts).sort_index() if parts else normalize_many([])


@functools.cache
def _identity_lookup(entity_kind: str) -> Select[Any]:
    """An identity and where it was merged into, by its key (built once per kind: every intake asks it)."""
    model = IdentityPerson if entity_kind == PERSON else IdentityEnterprise
    table = core_table(model)
    key = table.c[model.key_name]
    return select(key, table.c.merged_into).where(key == bindparam("code"))


def core_table(model: Any) -> Table:
    """The Core table of a model: bulk inserts as plain executemany (no ORM bookkeeping)."""
    return cast(Table, model.__table__)
