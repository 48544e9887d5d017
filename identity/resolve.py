"""Deterministic identity resolution (确定性归一) of whole batches against the master index.

Every code a department used lands on one canonical code — the 18-digit resident id of a
person, the USCC of an enterprise — by rules, in this order:

* a valid 18-digit resident id or USCC is itself (``exact``);
* a 15-digit resident id becomes its 18-digit form (``converted_15_to_18``);
* an organisation code is the USCC whose positions 9-17 carry it (``org_code_in_uscc``);
* an old taxpayer id goes through its organisation code (``taxpayer_org_code``);
* a registration number (and any code linked before) goes through the cross-walk
  (``crosswalk``), which learns old codes when commerce records carry both (``commerce_registry``).

The batch is resolved column-wise with a handful of queries (one bound parameter per
100,000 codes, see :mod:`identity._bulk`), never one per row. :func:`resolve_codes` only
reads; :func:`resolve_batch` also links: it creates new identities, records source-record
links and learnt cross-walk entries, refreshes golden records and emits ``identity.merged``
events to the outbox in the same session. Links and new identities are written through the
driver in bulk (docs/decisions/0012-identity-bulk-linking.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload

import numpy as np
import pandas as pd
from sqlalchemy import Table, Text, insert, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

from hub.killpoints import kill_point
from hub.masking import mask_resident_id
from hub.models import utcnow
from hub.outbox import emit_many
from hub.pseudonyms import event_key, keyed_digest, opaque_ref
from hub.regions import holder_region
from identifiers.vectorized import normalize_many
from identity import _bulk, _jsontext, golden
from identity.golden_sources import AS_GOLDEN_JSON, ONE_LINK, compact_attributes, pack
from identity.matching_step import MATCH_METHODS, mark_provisional, match_records
from identity.relations import link_relations
from identity.statuses import NEW, RESOLVED, UNRESOLVED
from identity.tables import (
    ENTERPRISE,
    PERSON,
    TYPED_COLUMNS,
    IdentityCrosswalk,
    IdentityEnterprise,
    IdentityPerson,
    IdentitySourceRecord,
)

log = logging.getLogger(__name__)

EXACT = "exact"
CONVERTED = "converted_15_to_18"
ORG_IN_USCC = "org_code_in_uscc"
TAXPAYER_ORG = "taxpayer_org_code"
CROSSWALK = "crosswalk"
COMMERCE = "commerce_registry"

#: Code columns tried per entity kind when the caller names none (first usable wins).
DEFAULT_CODE_COLUMNS = {
    PERSON: ("resident_id", "holder_code"),
    ENTERPRISE: ("uscc", "taxpayer_code", "holder_code", "org_code", "taxpayer_id", "reg_no"),
}
#: Legacy-code columns of enterprise records learnt into the cross-walk next to a valid USCC.
LEGACY_COLUMNS = {"reg_no": "reg_no", "org_code": "org_code", "taxpayer_id": "taxpayer_id"}
#: Identifier roles that name the record's own subject (a legal representative's id does not).
SUBJECT_ROLES = ("holder", "applicant", "owner", "subject")
#: The source key and version every mapped record carries (the mapping engine's columns).
SOURCE_KEY, SOURCE_VERSION = "_source_key", "_source_version"


def _unique(values: Iterable[Any]) -> list[Any]:
    """Distinct non-empty values (order of first appearance; no sort over a million codes)."""
    arr = np.asarray(values if isinstance(values, np.ndarray | list) else list(values), dtype=object)
    if not len(arr):
        return []
    return [v for v in pd.unique(arr).tolist() if v is not None and v == v and v != ""]


def _isin(values: np.ndarray, choices: Iterable[Any]) -> np.ndarray:
    """Membership per element of an object array that may hold ``None`` (hash-based)."""
    return pd.Series(values, dtype=object).isin(list(choices)).to_numpy(dtype=bool)


def _kind_of_entity(entity_kind: str) -> str:
    if entity_kind not in (PERSON, ENTERPRISE):
        raise ValueError(f"entity_kind must be 'person' or 'enterprise', got {entity_kind!r}")
    return entity_kind


# --- reading the index (batched: one statement per 100,000 codes) ---------------------------


def _crosswalk(session: Session, codes: Sequence[str], entity_kind: str) -> dict[str, str]:
    """Active cross-walk entries: legacy code → canonical code (latest link wins)."""
    out: dict[str, tuple[Any, str]] = {}
    for chunk in _bulk.chunks(_unique(codes)):
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
    """Organisation code → the USCC carrying it (``None`` if several identities carry it)."""
    out: dict[str, str | None] = {}
    for chunk in _bulk.chunks(_unique(org_codes)):
        rows = session.execute(
            select(IdentityEnterprise.org_code, IdentityEnterprise.uscc).where(
                _bulk.in_values(session, IdentityEnterprise.org_code, chunk), IdentityEnterprise.merged_into.is_(None)
            )
        ).all()
        for org, code in rows:
            out[org] = code if org not in out else None
    return out


def _existing(session: Session, codes: Sequence[str], entity_kind: str) -> tuple[set[str], dict[str, str]]:
    """(canonical codes present in the index, those merged away → the code they live on as)."""
    model = IdentityPerson if entity_kind == PERSON else IdentityEnterprise
    table = _table(model)
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


# --- resolution ---------------------------------------------------------------------------


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
    _kind_of_entity(entity_kind)
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
            in_index = has & _isin(canonical, present)
            status[in_index] = RESOLVED
        if merged:
            moved = np.flatnonzero(in_index & _isin(canonical, merged))
            canonical[moved] = [merged[c] for c in canonical[moved].tolist()]
    rest = has & ~in_index
    pend = rest & _isin(canonical, pending.values()) if pending else np.zeros(len(values), dtype=bool)
    new = pend | (rest & _isin(method, (EXACT, CONVERTED)))
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


# --- linking ------------------------------------------------------------------------------


def _table(model: Any) -> Table:
    """The Core table of a model: bulk inserts as plain executemany (no ORM bookkeeping)."""
    return cast(Table, model.__table__)


@dataclass
class ResolveResult:
    """What :func:`resolve_batch` did: the records with identity columns, and counts."""

    records: pd.DataFrame
    created: int = 0
    #: source records linked anew (to new identities and to identities already in the index)
    linked: int = 0
    #: of ``linked``, those linking an identity this batch created
    linked_to_new: int = 0
    learnt: int = 0
    merged_events: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: person records without a usable code (:mod:`identity.matching_step`): linked by the
    #: model, sent to the review queue, made provisional identities; and the model's version
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    model_version: str | None = None

    @property
    def linked_by_code(self) -> int:
        """Records placed by their code (an identity in the index or a new one)."""
        placed = self.records["identity_status"].isin((RESOLVED, NEW))
        return int((placed & ~self.records["identity_method"].isin(MATCH_METHODS)).sum())


def _learn_from_batch(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(legacy code, kind, USCC) pairs from enterprise records that carry both."""
    if "uscc" not in frame.columns:
        return []
    uscc = normalize_many(frame["uscc"].tolist(), "uscc")
    ok = uscc["valid"].to_numpy(dtype=bool)
    pairs: list[tuple[str, str, str]] = []
    for column, kind in LEGACY_COLUMNS.items():
        if column not in frame.columns:
            continue
        legacy = normalize_many(frame[column].tolist(), kind)
        good = ok & legacy["valid"].to_numpy(dtype=bool)
        for code, canonical in zip(legacy["canonical"][good], uscc["canonical"][good], strict=True):
            pairs.append((code, kind, canonical))
    return pairs


def _identifier_columns(df: pd.DataFrame, entity_kind: str, mapping: Any) -> list[tuple[str, str | None]]:
    """(column, kind or None for auto) of the holder codes, in the order they are tried."""
    if mapping is not None:
        cols = [
            (spec.field, None if spec.kind in ("auto", None) else spec.kind)
            for spec in _identifier_specs(mapping)
            if getattr(spec, "role", "holder") in SUBJECT_ROLES
            and spec.field in df.columns
            and getattr(spec, "resolve", True)
        ]
        if cols:
            # a canonical-kind column first: it decides, legacy columns only fill gaps
            return sorted(cols, key=lambda c: 0 if c[1] in ("uscc", "resident_id", None) else 1)
    return [(c, None) for c in DEFAULT_CODE_COLUMNS[entity_kind] if c in df.columns]


def _identifier_specs(mapping: Any) -> tuple[Any, ...]:
    """A mapping's identifier specs (``DatasetMapping`` of the engine or its ``MappingSpec``)."""
    found = getattr(mapping, "identifiers", None)
    if found is None:
        found = getattr(getattr(mapping, "spec", None), "identifiers", ())
    return tuple(found or ())


def _combine(results: list[pd.DataFrame], n: int) -> dict[str, Any]:
    """First column's answer that resolved (or is new) wins, row by row."""
    canonical = np.full(n, None, dtype=object)
    method = np.full(n, None, dtype=object)
    status = np.full(n, UNRESOLVED, dtype=object)
    for res in results:
        take = (status == UNRESOLVED) & (res["status"].to_numpy(dtype=object) != UNRESOLVED)
        canonical[take] = res["canonical_code"].to_numpy(dtype=object)[take]
        method[take] = res["method"].to_numpy(dtype=object)[take]
        status[take] = res["status"].to_numpy(dtype=object)[take]
    return {"canonical_code": canonical, "method": method, "status": status}


#: a mapping's ``identity_kind`` for records that are no identity of their own (a property right:
#: only the owners named inside it are)
NO_IDENTITY = "none"


def link_mapping_batch(session: Session, df: pd.DataFrame, mapping: Any, *, run_id: str | None = None) -> ResolveResult:
    """Resolve and link a mapping's batch as the identity kind the mapping declares
    (``identity_kind``: never guessed from its entity; an unknown kind is a ``ValueError``)."""
    spec = getattr(mapping, "spec", mapping)
    kind = str(getattr(spec, "identity_kind", ""))
    if kind == NO_IDENTITY:
        # no top-level code: only the identities named inside the records, under their own kinds
        return link_batch(
            session,
            df,
            ENTERPRISE,
            mapping.department,
            mapping.dataset,
            mapping=mapping,
            run_id=run_id,
            code_columns=[],
        )
    return link_batch(
        session, df, _kind_of_entity(kind), mapping.department, mapping.dataset, mapping=mapping, run_id=run_id
    )


@overload
def resolve_batch(
    session: Session, df: pd.DataFrame, entity_kind: str, department: str, dataset: str, /
) -> pd.DataFrame: ...


@overload
def resolve_batch(
    df: pd.DataFrame, mapping: Any, /, *, session: Session, run_id: str | None = None
) -> ResolveResult: ...


def resolve_batch(
    first: Any,
    second: Any,
    entity_kind: str | None = None,
    department: str | None = None,
    dataset: str | None = None,
    /,
    *,
    session: Session | None = None,
    run_id: str | None = None,
) -> Any:
    """Resolve and link a batch of canonical records.

    Two calling conventions, one implementation (:func:`link_batch`):

    * ``resolve_batch(session, df, entity_kind, department, dataset) -> DataFrame`` — the
      records with ``canonical_code``/``resolved_id``, ``identity_method`` and
      ``identity_status`` (``resolved`` | ``new`` | ``unresolved``) added, also as ``method``
      and ``status`` when the records have no such columns;
    * ``resolve_batch(df, mapping, *, session, run_id) -> ResolveResult`` — as the pipeline's
      identity step calls it, with the department, dataset and holder identifier fields of a
      mapping (``mappings.engine.DatasetMapping`` or its ``MappingSpec``).
    """
    if isinstance(first, pd.DataFrame):
        if session is None:
            raise TypeError("resolve_batch(df, mapping, *, session, run_id)")
        return link_mapping_batch(session, first, second, run_id=run_id)
    if entity_kind is None or department is None or dataset is None:
        raise TypeError("resolve_batch(session, df, entity_kind, department, dataset)")
    return link_batch(first, second, entity_kind, department, dataset, run_id=run_id).records


def link_batch(
    session: Session,
    df: pd.DataFrame,
    entity_kind: str,
    department: str,
    dataset: str,
    *,
    mapping: Any = None,
    run_id: str | None = None,
    code_columns: Sequence[tuple[str, str | None]] | None = None,
) -> ResolveResult:
    """Resolve ``df``'s holder codes, create new identities, link source records, learn the
    cross-walk, refresh golden records and emit ``identity.merged`` — all in ``session``."""
    with _bulk.collector_paused(len(df)):
        return _link_batch(
            session,
            df,
            entity_kind,
            department,
            dataset,
            mapping=mapping,
            run_id=run_id,
            code_columns=code_columns,
            match=entity_kind == PERSON,
        )


def _link_batch(
    session: Session,
    df: pd.DataFrame,
    entity_kind: str,
    department: str,
    dataset: str,
    *,
    mapping: Any,
    run_id: str | None,
    code_columns: Sequence[tuple[str, str | None]] | None,
    match: bool = False,
) -> ResolveResult:
    _kind_of_entity(entity_kind)
    n = len(df)
    now = utcnow()
    source = f"{department}/{dataset}"
    learnt_pairs = _learn_from_batch(df) if entity_kind == ENTERPRISE else []
    learnt = {code: canonical for code, _kind, canonical in learnt_pairs}
    columns = list(code_columns) if code_columns is not None else _identifier_columns(df, entity_kind, mapping)
    # a code as the department gave it, before the mapping converted it (a 15-digit resident id):
    # resolved after the others, so the rule that converts it lands it in the cross-walk
    # (detected, not forced: a 15-digit code read as a resident id normalises to its 18 digits)
    columns += [(f"_given_{col}", None) for col, _ in columns if f"_given_{col}" in df.columns]
    results = [
        resolve_codes(session, df[col], entity_kind, kinds=[kind] * n if kind else None, learnt=learnt)
        for col, kind in columns
    ]
    combined = _combine(results, n)

    new_codes = _unique(combined["canonical_code"][combined["status"] == NEW])
    retry = np.flatnonzero(combined["status"] == UNRESOLVED)
    if entity_kind == ENTERPRISE and new_codes and len(retry):
        # a second round for rows whose organisation code belongs to an identity created now
        sub = df.iloc[retry]
        pending = {c[8:17]: c for c in new_codes}
        again = [
            resolve_codes(
                session,
                sub[col],
                entity_kind,
                kinds=[kind] * len(sub) if kind else None,
                learnt=learnt,
                pending=pending,
            )
            for col, kind in columns
        ]
        second = _combine(again, len(sub))
        for name in ("canonical_code", "method", "status"):
            combined[name][retry] = second[name]
        results.extend(again)
    key_col = SOURCE_KEY if SOURCE_KEY in df.columns else None
    version_col = SOURCE_VERSION if SOURCE_VERSION in df.columns else None
    matched = None
    if match:
        # person records without a usable code: the model links them, sends them to review
        # or makes them provisional identities (identity.matching_step)
        matched = match_records(
            session,
            df,
            combined,
            results,
            key_col=key_col,
            id_col=columns[0][0] if columns else None,
            department=department,
            dataset=dataset,
            run_id=run_id,
        )
        new_codes = _unique(combined["canonical_code"][combined["status"] == NEW])
    status = combined["status"]

    # cross-walk: legacy codes learnt from this batch and legacy codes resolved by rule
    walk_rows: list[tuple[str, str, str, str]] = [(c, k, u, COMMERCE) for c, k, u in learnt_pairs]
    for res in results:
        if matched is not None and matched.legacy_dropped.any():
            res = res[~matched.legacy_dropped]  # a 15-digit id the model placed elsewhere: not learnt
        walk_rows.extend(_rule_links(res))
    learnt_count, merged_by_code = _store_crosswalk(session, walk_rows, entity_kind, source, now)

    # source-record links, then the new identities with golden records computed from them
    plan = _plan_links(session, df, combined, entity_kind, department, dataset, key_col, version_col)
    id_table = _table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)
    link_table = _table(IdentitySourceRecord)
    with _bulk.bulk_load(session, {link_table: plan.inserted, id_table: len(new_codes)}) as load:
        _write_links(session, plan, entity_kind, department, dataset, now)
        # the links' indexes are built inside SQLite while the new identities' rows are built here
        load.rebuild_in_background(link_table)
        identities = _identity_rows(entity_kind, new_codes, plan, department, dataset, now)
        # the rows as the driver takes them, and the records returned: pure work, also done
        # while the indexes build
        prepared = _prepare_identities(session, entity_kind, identities, now)
        records = _returned_records(df, combined, status)
        counts = pd.Series(status).value_counts().to_dict()
        load.wait()
        for part in prepared:
            _bulk.insert(session, part)
        kill_point("resolve.bulk_write")
    if matched is not None and matched.provisional_codes:
        mark_provisional(session, matched.provisional_codes)
    touched = plan.touched.difference(new_codes)
    if touched:
        golden.refresh(session, entity_kind, sorted(touched), cause="link")

    events = _emit_merged(session, merged_by_code, entity_kind, source, run_id)
    relations = getattr(getattr(mapping, "spec", mapping), "relations", ()) if mapping is not None else ()
    if relations:
        link_relations(
            session, records, relations, entity_kind, department, dataset, key_col, version_col, now, resolve_codes
        )
    nested = _resolve_nested(session, records, mapping, department, dataset, key_col, version_col, run_id)
    session.flush()
    return ResolveResult(
        records,
        created=len(new_codes) + nested.created,
        linked=plan.inserted + nested.linked,
        linked_to_new=int(plan.new.sum()) + nested.linked_to_new,
        learnt=learnt_count + nested.learnt,
        merged_events=events + nested.merged_events,
        by_status={str(k): int(v) for k, v in counts.items()},
        linked_by_match=matched.matched if matched else 0,
        sent_to_review=matched.review if matched else 0,
        provisional=matched.provisional if matched else 0,
        model_version=matched.model_version if matched else None,
    )


def _returned_records(df: pd.DataFrame, combined: dict[str, Any], status: Any) -> pd.DataFrame:
    """The batch's records with their resolution: ``canonical_code``/``resolved_id``,
    ``identity_method``, ``identity_status``, and ``method``/``status`` unless taken."""
    records = df.copy()

    def column(values: Any) -> pd.Series:
        # object dtype explicitly: an inferred string dtype would turn None into NaN
        return pd.Series(values, index=records.index, dtype=object)

    records["canonical_code"] = column(combined["canonical_code"])
    records["resolved_id"] = column(combined["canonical_code"])
    records["identity_method"] = column(combined["method"])
    records["identity_status"] = column(status)
    for name, values in (("method", combined["method"]), ("status", status)):
        if name not in df.columns:
            records[name] = column(values)
    return records


def _rule_links(res: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """Cross-walk rows for legacy codes a rule resolved: (code, code kind, canonical, method)."""
    canonical = res["canonical_code"].to_numpy(dtype=object)
    norm = res["normalized"].to_numpy(dtype=object)
    method = res["method"].to_numpy(dtype=object)
    rows = np.flatnonzero(pd.notna(canonical) & pd.notna(norm) & _isin(method, (CONVERTED, ORG_IN_USCC, TAXPAYER_ORG)))
    kinds = res["code_kind"].to_numpy(dtype=object)
    out = []
    for i in rows.tolist():
        if norm[i] and norm[i] != canonical[i]:
            code_kind = {CONVERTED: "resident_id_15", TAXPAYER_ORG: "taxpayer_id"}.get(method[i], str(kinds[i]))
            out.append((norm[i], code_kind, canonical[i], method[i]))
    return out


# --- source-record links (column-wise) -----------------------------------------------------


@dataclass
class _Attribute:
    """One golden attribute of a batch, factorised: per row a code into the distinct values."""

    name: str
    codes: np.ndarray  # int per row; -1 (the last slot) for a missing value
    values: np.ndarray  # JSON-safe value per distinct value, then None
    encoded: np.ndarray  # its JSON text, then None
    blank: np.ndarray  # empty for survivorship (None or whitespace only), then True
    hashes: np.ndarray  # uint64 of the name and JSON text per distinct value, then 0

    @classmethod
    def of(cls, name: str, column: pd.Series) -> _Attribute:
        if column.dtype != object or pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            values = golden.json_column(pd.Series(uniques))
        else:  # mixed Python objects (True == 1 would share a slot; lists do not hash): row by row
            values = golden.json_column(column)
            codes = np.arange(len(values))
        table = np.empty(len(values) + 1, dtype=object)
        table[: len(values)] = values
        table[-1] = None
        codes = np.where(codes < 0, len(values), codes)
        encoded = np.empty(len(table), dtype=object)
        encoded[:] = _jsontext.encode_column(table)
        blank = np.array([golden.is_empty(v) for v in table.tolist()], dtype=bool)
        return cls(name, codes, table, encoded, blank, _value_hashes(name, encoded))

    def take(self, rows: np.ndarray) -> _Attribute:
        return _Attribute(self.name, self.codes[rows], self.values, self.encoded, self.blank, self.hashes)

    def present(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Per row (of ``rows``): has it a value (JSON text; blank text is a value here)."""
        return pd.notna(self.encoded)[self.codes if rows is None else self.codes[rows]]  # type: ignore[no-any-return]


def _json_objects(attributes: Sequence[_Attribute], rows: np.ndarray, keep: np.ndarray | None = None) -> list[str]:
    """The JSON objects of ``attributes`` at ``rows`` (see :func:`_jsontext.objects`)."""
    if not attributes:
        return ["{}"] * len(rows)
    return _jsontext.objects(
        [a.name for a in attributes],
        [a.encoded[a.codes[rows]].tolist() for a in attributes],
        keep=keep,
        present=np.column_stack([a.present(rows) for a in attributes]),
    )


def _value_hashes(name: str, encoded: np.ndarray) -> np.ndarray:
    """Per distinct value a 64-bit hash of ``name:json`` (pandas' fixed-key SipHash: the same
    in every process); 0 for a missing value, which the record's JSON leaves out."""
    out = np.zeros(len(encoded), dtype=np.uint64)
    present = pd.notna(encoded)
    if present.any():
        texts = np.array([f"{name}:{e}" for e in encoded[present].tolist()], dtype=object)
        out[present] = pd.util.hash_array(texts, categorize=False)
    return out


def _fingerprints(attributes: Sequence[_Attribute], n: int) -> np.ndarray:
    """Per row a fingerprint of its attributes' JSON object (int64, as stored): the sum of its
    values' hashes, so equal objects — whatever the key order — have equal fingerprints."""
    total = np.zeros(n, dtype=np.uint64)
    for a in attributes:
        total += a.hashes[a.codes]  # wraps around modulo 2**64
    return total.view(np.int64)


@dataclass
class _LinkPlan:
    """What linking a batch writes: rows to insert (by batch row), updates, identities touched."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # batch rows to link anew
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    versions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    methods: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    fingerprints: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: per inserted row: does it link an identity created by this batch
    new: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: the inserted rows linking new identities, in code order, and per such row: does its
    #: identity have other links in the batch
    new_links: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new_shared: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: per inserted row: the match probability (NaN for a link by code) and the model version
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=float))
    model_versions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    attributes: list[_Attribute] = field(default_factory=list)
    #: per inserted row its values' JSON text, or AS_GOLDEN's (the only link of a new identity)
    attributes_json: list[str] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # existing identities whose links changed

    @property
    def inserted(self) -> int:
        return len(self.rows)


def _plan_links(
    session: Session,
    df: pd.DataFrame,
    combined: dict[str, Any],
    entity_kind: str,
    department: str,
    dataset: str,
    key_col: str | None,
    version_col: str | None,
) -> _LinkPlan:
    """Decide the link writes: new records are linked, a record whose version or values
    changed is updated, a record that now resolves elsewhere is unlinked and relinked
    (history kept). The first resolved row of a source key in the batch speaks for it.

    A record is unchanged when its version and the fingerprint of its values equal the
    stored link's: only changed and new records have their JSON built (a link stored without
    a fingerprint is compared by its JSON, and gets its fingerprint)."""
    if key_col is None or not len(df):
        return _LinkPlan()
    rules = golden.load_rules()
    canonical = np.asarray(combined["canonical_code"], dtype=object)
    methods = np.asarray(combined["method"], dtype=object)
    rows = np.flatnonzero(pd.notna(canonical))
    keys_all = df[key_col].astype(str).to_numpy(dtype=object)
    rows = rows[~pd.Series(keys_all[rows], dtype=object).duplicated(keep="first").to_numpy()]
    if not len(rows):
        return _LinkPlan()
    keys = keys_all[rows]
    codes = canonical[rows]
    if version_col is not None:
        # the whole column, as its dates are formatted by what the whole column holds
        version_attr = _Attribute.of("version", df[version_col])
        text = np.array(
            [v if v is None or type(v) is str else str(v) for v in version_attr.values.tolist()], dtype=object
        )
        versions = text[version_attr.codes[rows]]
    else:
        versions = np.full(len(rows), None, dtype=object)
    feeds: dict[str, pd.Series] = {}
    for column in df.columns:
        name = rules.golden_name(entity_kind, str(column))
        if name is None:
            continue
        earlier = feeds.get(name)
        # two columns feeding one attribute (an alias and the name itself): the later one's
        # value where it has one, as a dict built column by column would hold
        feeds[name] = (
            df[column]
            if earlier is None
            else df[column].astype(object).where(df[column].notna(), earlier.astype(object))
        )
    attributes = [_Attribute.of(name, column).take(rows) for name, column in feeds.items()]
    prints = _fingerprints(attributes, len(rows))

    table = _table(IdentitySourceRecord)
    isr = table.c
    active = (isr.department == department, isr.dataset == dataset, isr.unlinked_at.is_(None))
    found = list(
        _bulk.rows_for_keys(  # Core rows: no ORM loading per row
            session,
            table,
            isr.source_key,
            keys.tolist(),
            (isr.id, isr.canonical_code, isr.source_version, isr.fingerprint),
            active,
        )
    )
    insert = np.ones(len(rows), dtype=bool)
    compare = np.zeros(len(rows), dtype=bool)  # same version, another or no fingerprint: compare JSON
    renew = np.zeros(len(rows), dtype=bool)  # another version: update
    link = np.full(len(rows), -1, dtype=np.int64)
    updates: list[dict[str, Any]] = []
    touched: set[str] = set()
    now = utcnow()
    if found:
        cur_key, cur_id, cur_code, cur_version, cur_print = (
            np.array(c, dtype=object) for c in zip(*found, strict=True)
        )
        at = pd.Index(cur_key, dtype=object).get_indexer(keys)  # an active link per key at most
        seen = np.flatnonzero(at >= 0)
        same = cur_code[at[seen]] == codes[seen]
        kept = seen[same]
        link[kept] = at[kept]
        insert[kept] = False
        renew[kept] = cur_version[at[kept]] != versions[kept]
        compare[kept] = ~renew[kept] & (cur_print[at[kept]] != prints[kept])
        for k in at[seen[~same]].tolist():  # the record moved to another identity: unlink, keep history
            updates.append({"id": int(cur_id[k]), "unlinked_at": now})
            touched.add(cur_code[k])
    keep = np.flatnonzero(insert)
    new = np.asarray(combined["status"], dtype=object)[rows[keep]] == NEW
    new_links, new_shared = _new_links(codes[keep], new)
    # an identity's only link whose values are all non-blank holds them as its golden record
    # does (AS_GOLDEN): survivorship over that one record keeps them all
    implied = np.zeros(len(rows), dtype=bool)
    alone = keep[new_links[~new_shared]]
    if len(alone):
        blank = np.zeros(len(alone), dtype=bool)
        for a in attributes:
            blank |= a.blank[a.codes[alone]] & a.present(alone)  # blank text, not a missing value
        implied[alone[~blank]] = True
    # JSON only for the rows written or compared
    need = np.flatnonzero((insert | renew | compare) & ~implied)
    texts = np.full(len(rows), None, dtype=object)
    texts[implied] = AS_GOLDEN_JSON
    if len(need):
        texts[need] = _json_objects(attributes, need)
    if compare.any():
        stored = dict(
            _bulk.rows_for_keys(
                session, table, isr.source_key, keys[compare].tolist(), (cast_text(isr.attributes),), active
            )
        )
        for j in np.flatnonzero(compare).tolist():
            if _same_json(stored.get(keys[j]), texts[j]):
                updates.append({"id": int(cur_id[link[j]]), "fingerprint": int(prints[j])})
            else:
                renew[j] = True
    for j in np.flatnonzero(renew).tolist():
        updates.append(
            {
                "id": int(cur_id[link[j]]),
                "source_version": versions[j],
                "stored_attributes": json.loads(texts[j]),
                "fingerprint": int(prints[j]),
            }
        )
        touched.add(codes[j])
    touched.update(_unique(codes[keep][~new]))
    return _LinkPlan(
        rows=rows[keep],
        keys=keys[keep],
        versions=versions[keep],
        codes=codes[keep],
        methods=np.array([m or EXACT for m in methods[rows[keep]].tolist()], dtype=object),
        fingerprints=prints[keep],
        new=new,
        new_links=new_links,
        new_shared=new_shared,
        probabilities=np.asarray(combined.get("match_probability", np.full(len(df), np.nan)), dtype=float)[rows[keep]],
        model_versions=np.asarray(combined.get("model_version", np.full(len(df), None)), dtype=object)[rows[keep]],
        attributes=[a.take(keep) for a in attributes],
        attributes_json=texts[keep].tolist(),
        updates=updates,
        touched=touched,
    )


def _new_links(codes: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the ``new`` links in code order (sorted once), and per position:
    does another of them link the same identity (in code order, an equal neighbour)."""
    links = np.flatnonzero(new)
    order, sorted_codes = _code_order(codes[links])
    same = sorted_codes[1:] == sorted_codes[:-1]
    shared = np.zeros(len(links), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    return links[order], shared


def cast_text(column: Any) -> Any:
    """A JSON column read as its stored text (compared as text before parsing)."""
    return sa_cast(column, Text)


def _same_json(stored: str | None, new: str) -> bool:
    if stored == new:
        return True
    try:
        return bool(json.loads(stored or "{}") == json.loads(new))
    except ValueError:
        return False


def _write_links(session: Session, plan: _LinkPlan, entity_kind: str, department: str, dataset: str, now: Any) -> None:
    for group in _same_keys(plan.updates):
        session.execute(update(IdentitySourceRecord), group)  # bulk UPDATE by primary key
    if not plan.inserted:
        return
    at = _bulk.timestamp(session, now)
    columns: tuple[str, ...] = ("source_key", "source_version", "canonical_code", "method", "attributes", "fingerprint")
    values: list[Any] = [plan.keys, plan.versions, plan.codes, plan.methods, plan.attributes_json, plan.fingerprints]
    scored = ~np.isnan(plan.probabilities) if len(plan.probabilities) else np.zeros(0, dtype=bool)
    if scored.any():  # links the model made: their probability and model version too
        columns += ("match_probability", "model_version")
        values += [
            np.array(
                [float(p) if ok else None for p, ok in zip(plan.probabilities, scored, strict=True)], dtype=object
            ),
            np.array([v if ok else None for v, ok in zip(plan.model_versions, scored, strict=True)], dtype=object),
        ]
    constants = {"department": department, "dataset": dataset, "entity_kind": entity_kind, "linked_at": at}
    _bulk.insert_columns(session, _table(IdentitySourceRecord), columns, values, constants)


def _identity_rows(
    entity_kind: str,
    codes: Sequence[str],
    plan: _LinkPlan | None,
    department: str | None,
    dataset: str | None,
    now: Any,
) -> tuple[tuple[str, ...], list[list[np.ndarray]]]:
    """The columns and rows of new identities (``codes``, distinct) with golden records from
    the links just made — no update pass. Pure: it reads nothing from the database.

    Rows come in parts, each in code order, the largest first — identities with one link in
    the batch — so the primary key's B-tree grows at its end for nearly every row; the links
    are sorted once, and the part of several-link identities and the part of identities
    without links (few) follow, each sorted too.

    An identity with one link in the batch takes that record's non-empty values, with that
    link as the source of every one (column-wise; stored as :data:`ONE_LINK`); one with several
    goes through :func:`golden.survive`; one without links (an owner named inside a list)
    starts empty."""
    typed = TYPED_COLUMNS[entity_kind]
    key_cols: tuple[str, ...] = ("resident_id",) if entity_kind == PERSON else ("uscc", "org_code")
    columns = (*key_cols, *typed, "attributes", "sources")
    if not len(codes):
        return columns, []
    new = np.asarray(codes, dtype=object)
    parts: list[_IdentityColumns] = []
    if plan is not None and plan.inserted:
        links, shared = plan.new_links, plan.new_shared  # the links of new identities, in code order
        if (~shared).any():
            parts.append(_single_link_golden(plan, links[~shared], typed))
        if shared.any():
            parts.append(_several_links_golden(plan, links[shared], entity_kind, typed, department, dataset, now))
    if sum(len(p.codes) for p in parts) < len(new):
        linked = np.concatenate([p.codes for p in parts]) if parts else np.zeros(0, dtype=object)
        alone = new[~_isin(new, linked)]
        alone = alone[_code_order(alone)[0]]
        parts.append(
            _IdentityColumns(
                alone,
                {c: np.full(len(alone), None, dtype=object) for c in typed},
                np.full(len(alone), "{}", dtype=object),
                np.full(len(alone), "[]", dtype=object),
            )
        )
    rows: list[list[np.ndarray]] = []
    for part in sorted(parts, key=lambda p: -len(p.codes)):
        cols: list[np.ndarray] = [part.codes]
        if entity_kind == ENTERPRISE:
            cols.append(np.array([c[8:17] for c in part.codes.tolist()], dtype=object))
        cols.extend(part.typed[c] for c in typed)
        cols.append(part.attributes)
        cols.append(part.sources)
        rows.append(cols)
    return columns, rows


def _prepare_identities(
    session: Session, entity_kind: str, rows: tuple[tuple[str, ...], list[list[np.ndarray]]], now: Any
) -> list[_bulk.Prepared]:
    """The rows of :func:`_identity_rows` as the driver takes them (pure work: done while the
    links' indexes build), parts in order."""
    at = _bulk.timestamp(session, now)
    table = _table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)
    return [_bulk.prepare(session, table, rows[0], cols, {"created_at": at, "updated_at": at}) for cols in rows[1]]


def _code_order(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts canonical codes as the database does (by code point), and the
    codes in that order (as compared: equal codes are equal elements). Codes are ASCII:
    sorted as fixed-width bytes (about four times faster than as Python strings); other
    text is sorted as text."""
    try:
        raw = np.array(codes.tolist(), dtype="S")  # as wide as the longest code
    except (UnicodeEncodeError, TypeError):
        text = codes.astype(str)
        order = np.argsort(text, kind="stable")
        return order, text[order]
    order = np.argsort(raw, kind="stable")
    return order, raw[order]


@dataclass
class _IdentityColumns:
    """New identities' columns (code, typed golden columns, attributes and sources JSON)."""

    codes: np.ndarray
    typed: dict[str, np.ndarray]
    attributes: np.ndarray
    sources: np.ndarray


#: The stored ``sources`` of a golden record drawn from its one link, as JSON text.
_ONE_LINK_JSON = _jsontext.dumps(ONE_LINK)


def _single_link_golden(plan: _LinkPlan, links: np.ndarray, typed: Sequence[str]) -> _IdentityColumns:
    """Golden records of identities with one link each (``links``: positions in ``plan``):
    the link's non-empty values, every one sourced from it — survivorship over one record.
    Text values of typed columns are stored there only; the sources are the link's."""
    n = len(links)
    attrs = plan.attributes
    values = np.full(n, "{}", dtype=object)
    typed_cols = {c: np.full(n, None, dtype=object) for c in typed}
    rest: list[tuple[_Attribute, np.ndarray]] = []
    for a in attrs:
        slots = a.codes[links]
        is_text = np.array([type(v) is str for v in a.values.tolist()], dtype=bool)
        if a.name in typed:
            text = np.array(
                [None if b else golden.text(v) for v, b in zip(a.values, a.blank, strict=True)], dtype=object
            )
            typed_cols[a.name] = text[slots]
        held = ~a.blank & ~(is_text if a.name in typed else np.zeros(len(a.values), dtype=bool))
        if held[slots].any():  # values the ``attributes`` column stores (not blank, not in a typed column)
            rest.append((a, held[slots]))
    if rest:
        values[:] = _json_objects([a for a, _ in rest], links, keep=np.column_stack([keep for _, keep in rest]))
    sources = np.full(n, _ONE_LINK_JSON, dtype=object)
    return _IdentityColumns(plan.codes[links], typed_cols, values, sources)


def _several_links_golden(
    plan: _LinkPlan,
    links: np.ndarray,
    entity_kind: str,
    typed: Sequence[str],
    department: str | None,
    dataset: str | None,
    now: Any,
) -> _IdentityColumns:
    """Golden records of identities with several links in the batch, by :func:`golden.survive`."""
    by_code: dict[str, list[int]] = {}
    for k, code in zip(links.tolist(), plan.codes[links].tolist(), strict=True):
        by_code.setdefault(code, []).append(k)
    rules = golden.load_rules()
    linked_at = now.isoformat()
    n = len(by_code)
    values_col = np.full(n, "{}", dtype=object)
    sources_col = np.full(n, "[]", dtype=object)
    typed_cols = {c: np.full(n, None, dtype=object) for c in typed}
    for i, ks in enumerate(by_code.values()):
        records = [
            golden.SourceValues(
                department or "",
                dataset or "",
                plan.keys[k],
                plan.versions[k],
                json.loads(plan.attributes_json[k]),
                linked_at,
            )
            for k in ks
        ]
        values, sources = golden.survive(records, entity_kind, rules)
        values_col[i] = _jsontext.dumps(compact_attributes(values, typed))
        sources_col[i] = _jsontext.dumps(pack(sources))
        for c in typed:
            typed_cols[c][i] = golden.text(values.get(c))
    return _IdentityColumns(np.array(list(by_code), dtype=object), typed_cols, values_col, sources_col)


def _emit_merged(
    session: Session,
    merged_by_code: dict[str, set[tuple[str, str, str]]],
    entity_kind: str,
    source: str,
    run_id: str | None,
) -> int:
    """``identity.merged`` per identity that gained legacy codes, written to the outbox in bulk
    (idempotent by key, like :func:`hub.outbox.emit`). Subject and key are opaque references
    (:mod:`hub.pseudonyms`); the codes are only in the payload, masked for whoever may not see them."""
    events: list[dict[str, Any]] = []
    key = event_key() if merged_by_code else None
    for canonical, legacy in sorted(merged_by_code.items()):
        shown = [
            {
                "legacy_code": mask_resident_id(code) if entity_kind == PERSON else code,
                "code_kind": kind,
                "method": method,
            }
            for code, kind, method in sorted(legacy)
        ]
        ref = opaque_ref(canonical, key=key)
        # keyed, not a plain hash: the legacy codes are resident ids a plain hash would give away
        digest = keyed_digest(ref, *(f"{code}|{kind}|{method}" for code, kind, method in sorted(legacy)), key=key)
        events.append(
            {
                "event_type": "identity.merged",
                "subject": ref,
                "holder_code": canonical,
                "region_code": holder_region(entity_kind, canonical),
                "payload": {
                    "entity_kind": entity_kind,
                    "canonical_code": canonical,
                    "merged": shown,
                    "source": source,
                    "run_id": run_id,
                },
                "idempotency_key": f"identity.merged:{ref}:{digest[:16]}",
            }
        )
    return emit_many(session, events)


def _store_crosswalk(
    session: Session, rows: list[tuple[str, str, str, str]], entity_kind: str, source: str, now: Any
) -> tuple[int, dict[str, set[tuple[str, str, str]]]]:
    """Insert cross-walk links not yet known; an active link to another identity is kept
    (the first authoritative link wins; re-pointing is a reviewed merge/split)."""
    if not rows:
        return 0, {}
    unique = {(code, kind): (canonical, method) for code, kind, canonical, method in rows}
    existing: set[tuple[str, str]] = set()
    conflicts = 0
    for chunk in _bulk.chunks(_unique(code for code, _ in unique)):
        for code, kind, canonical in session.execute(
            select(IdentityCrosswalk.legacy_code, IdentityCrosswalk.code_kind, IdentityCrosswalk.canonical_code).where(
                _bulk.in_values(session, IdentityCrosswalk.legacy_code, chunk),
                IdentityCrosswalk.entity_kind == entity_kind,
                IdentityCrosswalk.undone_at.is_(None),
            )
        ).all():
            existing.add((code, kind))
            if (code, kind) in unique and unique[(code, kind)][0] != canonical:
                conflicts += 1
    if conflicts:
        log.warning("%d legacy codes already link to another identity; kept the existing links", conflicts)
    fresh = [
        {
            "legacy_code": code,
            "code_kind": kind,
            "canonical_code": canonical,
            "entity_kind": entity_kind,
            "source": source,
            "method": method,
            "linked_at": now,
        }
        for (code, kind), (canonical, method) in sorted(unique.items())
        if (code, kind) not in existing
    ]
    if fresh:
        session.execute(insert(_table(IdentityCrosswalk)), fresh)
    merged: dict[str, set[tuple[str, str, str]]] = {}
    for row in fresh:
        merged.setdefault(row["canonical_code"], set()).add((row["legacy_code"], row["code_kind"], row["method"]))
    return len(fresh), merged


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their key sets (one executemany per shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


@dataclass
class _NestedCounts:
    created: int = 0
    linked: int = 0
    linked_to_new: int = 0
    learnt: int = 0
    merged_events: int = 0


#: The column of a nested holder's code in the frame its elements are linked from.
_NESTED_CODE = "_nested_holder_code"


def _resolve_nested(
    session: Session,
    records: pd.DataFrame,
    mapping: Any,
    department: str,
    dataset: str,
    key_col: str | None,
    version_col: str | None,
    run_id: str | None,
) -> _NestedCounts:
    """Holder codes inside list fields (``owners[].holder_code``): add ``resolved_id`` to each
    element, resolving persons and enterprises by the element's kind field.

    Each element is a source record of its own, linked like any other: its key is the
    record's key and the element's place (``<unit>#0``, as its licence's source), its version the record's, its
    values (the owner's name…) the element's fields. So "who is this?" shows the property
    right an owner holds, an owner the index has not seen becomes an identity with the
    department's values, and a re-run links nothing twice."""
    counts = _NestedCounts()
    nested = [spec for spec in _identifier_specs(mapping) if "[]." in spec.field] if mapping is not None else []
    if not nested:
        return counts
    keys = records[key_col].astype(str).tolist() if key_col is not None else None
    versions = records[version_col].tolist() if version_col is not None else None
    for spec in nested:
        list_col, _, code_key = spec.field.partition("[].")
        kind_key = spec.kind_field.partition("[].")[2] if getattr(spec, "kind_field", None) else None
        if list_col not in records.columns:
            continue
        # numbered as the licences they yield are (``pipeline.publish``: ``<key>#<n>``
        # over the non-empty elements), so a licence's source record is its holder's link
        elements = [
            (i, j, el)
            for i, items in enumerate(records[list_col].tolist())
            if isinstance(items, list | tuple | np.ndarray)
            for j, el in enumerate([o for o in items if o])
            if isinstance(el, dict)
        ]
        for entity_kind in (PERSON, ENTERPRISE):
            group = [
                (i, j, el)
                for i, j, el in elements
                if (el.get(kind_key) if kind_key else None) in (entity_kind, None) and "resolved_id" not in el
            ]
            if not group:
                continue
            fields = sorted({k for _, _, el in group for k in el} - {code_key, kind_key, "resolved_id"})
            frame = pd.DataFrame(
                {
                    _NESTED_CODE: pd.Series([el.get(code_key) for _, _, el in group], dtype=object),
                    **{f: pd.Series([el.get(f) for _, _, el in group], dtype=object) for f in fields},
                }
            )
            if keys is not None:
                frame["_source_key"] = [f"{keys[i]}#{j}" for i, j, _ in group]
            if versions is not None:
                frame["_source_version"] = pd.Series([versions[i] for i, _, _ in group], dtype=object)
            res = _link_batch(
                session,
                frame,
                entity_kind,
                department,
                dataset,
                mapping=None,
                run_id=run_id,
                code_columns=[(_NESTED_CODE, None)],
            )
            for (_, _, el), code, status in zip(
                group, res.records["canonical_code"].tolist(), res.records["identity_status"].tolist(), strict=True
            ):
                el["resolved_id"] = code if status in (RESOLVED, NEW) else None
            counts.created += res.created
            counts.linked += res.linked
            counts.linked_to_new += res.linked_to_new
            counts.learnt += res.learnt
            counts.merged_events += res.merged_events
    return counts
