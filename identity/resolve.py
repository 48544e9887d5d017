"""Deterministic identity resolution (确定性归一) of whole batches against the master index.

Every code a department used lands on one canonical code — the 18-digit resident id of a
person, the USCC of an enterprise — by rules, in this order:

* a valid 18-digit resident id or USCC is itself (``exact``);
* a 15-digit resident id becomes its 18-digit form (``converted_15_to_18``);
* an organisation code is the USCC whose positions 9-17 carry it (``org_code_in_uscc``);
* an old taxpayer id goes through its organisation code (``taxpayer_org_code``);
* a registration number (and any code linked before) goes through the cross-walk
  (``crosswalk``), which learns old codes when commerce records carry both (``commerce_registry``).

The batch is resolved with a handful of queries (chunked ``IN`` lists), never one per row.
:func:`resolve_codes` only reads; :func:`resolve_batch` also links: it creates new
identities, records source-record links and learnt cross-walk entries, refreshes golden
records and emits ``identity.merged`` events to the outbox in the same session.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload

import numpy as np
import pandas as pd
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from hub.masking import mask_resident_id
from hub.models import OutboxEvent, utcnow
from hub.outbox import emit
from identity import golden
from identity.tables import (
    ENTERPRISE,
    PERSON,
    IdentityCrosswalk,
    IdentityEnterprise,
    IdentityPerson,
    IdentitySourceRecord,
)
from identity.vectorized import normalize_many

log = logging.getLogger(__name__)

CHUNK = 5000
RESOLVED, NEW, UNRESOLVED = "resolved", "new", "unresolved"
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
SOURCE_KEY_COLUMNS = ("_source_key", "source_key")
SOURCE_VERSION_COLUMNS = ("_source_version", "source_version")


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    unique = sorted(set(values))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _kind_of_entity(entity_kind: str) -> str:
    if entity_kind not in (PERSON, ENTERPRISE):
        raise ValueError(f"entity_kind must be 'person' or 'enterprise', got {entity_kind!r}")
    return entity_kind


# --- reading the index (batched) ---------------------------------------------------------


def _crosswalk(session: Session, codes: Sequence[str], entity_kind: str) -> dict[str, str]:
    """Active cross-walk entries: legacy code → canonical code (latest link wins)."""
    out: dict[str, tuple[Any, str]] = {}
    for chunk in _chunks(codes):
        rows = session.execute(
            select(IdentityCrosswalk.legacy_code, IdentityCrosswalk.canonical_code, IdentityCrosswalk.linked_at).where(
                IdentityCrosswalk.legacy_code.in_(chunk),
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
    for chunk in _chunks(org_codes):
        rows = session.execute(
            select(IdentityEnterprise.org_code, IdentityEnterprise.uscc).where(
                IdentityEnterprise.org_code.in_(chunk), IdentityEnterprise.merged_into.is_(None)
            )
        ).all()
        for org, code in rows:
            out[org] = code if org not in out else None
    return out


def _existing(session: Session, codes: Sequence[str], entity_kind: str) -> dict[str, str]:
    """Canonical codes present in the index → the code they live on as (after merges)."""
    model = IdentityPerson if entity_kind == PERSON else IdentityEnterprise
    key = model.resident_id if entity_kind == PERSON else model.uscc  # type: ignore[union-attr]
    out: dict[str, str] = {}
    for chunk in _chunks(codes):
        for code, merged in session.execute(select(key, model.merged_into).where(key.in_(chunk))).all():
            out[code] = merged or code
    return out


# --- resolution ---------------------------------------------------------------------------


def _interpret(frame: pd.DataFrame, entity_kind: str) -> tuple[list[str | None], list[str | None], list[str | None]]:
    """Per row: canonical code derivable from the code itself, its method, and a lookup key
    (``org:<code>`` for organisation-code lookups) for codes that need the index."""
    direct: list[str | None] = []
    method: list[str | None] = []
    lookup: list[str | None] = []
    cols = [frame[c].tolist() for c in ("kind", "canonical", "valid", "candidates", "resident_id_18")]
    for kind, canonical, valid, candidates, eighteen in zip(*cols, strict=True):
        d = m = look = None
        cands = set(candidates or ())
        if entity_kind == PERSON:
            if valid and kind == "resident_id":
                d, m = canonical, EXACT
            elif valid and kind == "resident_id_15":
                d, m = canonical, CONVERTED
            elif kind == "ambiguous" and "resident_id_15" in cands:
                d, m = eighteen, CONVERTED
            elif kind == "ambiguous" and "resident_id" in cands:
                d, m = canonical, EXACT
        else:
            own = valid and kind in ("uscc", "taxpayer_id") and canonical and len(canonical) == 18
            if own or (kind == "ambiguous" and "uscc" in cands):
                d, m = canonical, EXACT
            elif valid and kind == "org_code":
                look, m = f"org:{canonical}", ORG_IN_USCC
            elif (valid and kind == "taxpayer_id" and canonical and len(canonical) == 15) or (
                kind == "ambiguous" and "taxpayer_id" in cands
            ):
                look, m = f"org:{canonical[6:]}", TAXPAYER_ORG
        direct.append(d)
        method.append(m)
        lookup.append(look)
    return direct, method, lookup


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
    values = list(codes)
    frame = _normalize(values, kinds)
    direct, method, lookup = _interpret(frame, entity_kind)
    normalized = frame["canonical"].tolist()
    orgs = [k[4:] for k in lookup if k]
    by_org = _by_org_code(session, orgs) if orgs else {}
    for org, code in (pending or {}).items():
        by_org.setdefault(org, code)
    need_walk = [n for n, d, k in zip(normalized, direct, lookup, strict=True) if n and d is None]
    walk = _crosswalk(session, need_walk, entity_kind) if need_walk else {}
    walk.update(learnt or {})
    canonical: list[str | None] = []
    for i, (norm, d, look) in enumerate(zip(normalized, direct, lookup, strict=True)):
        c = d
        if c is None and look:
            c = by_org.get(look[4:])
        if c is None and norm:
            c = walk.get(norm)
            if c is not None:
                method[i] = CROSSWALK
        if c is None:
            method[i] = None
        canonical.append(c)
    present = _existing(session, [c for c in canonical if c], entity_kind)
    status: list[str] = []
    for i, c in enumerate(canonical):
        if c is None:
            status.append(UNRESOLVED)
        elif c in present:
            canonical[i] = present[c]
            status.append(RESOLVED)
        elif pending and c in pending.values():
            status.append(NEW)
        else:
            status.append(NEW if method[i] in (EXACT, CONVERTED) else UNRESOLVED)
            if status[-1] == UNRESOLVED:
                canonical[i], method[i] = None, None
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
    linked: int = 0
    learnt: int = 0
    merged_events: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def _first(columns: Iterable[str], frame: pd.DataFrame) -> str | None:
    return next((c for c in columns if c in frame.columns), None)


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
    """A mapping's identifier specs (``Mapping`` of the engine or its ``MappingSpec``)."""
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


def _entity_of_mapping(mapping: Any) -> str:
    entity = str(getattr(mapping, "entity", ""))
    return PERSON if entity == PERSON else ENTERPRISE


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
      mapping (``mappings.engine.Mapping`` or its ``MappingSpec``).
    """
    if isinstance(first, pd.DataFrame):
        if session is None:
            raise TypeError("resolve_batch(df, mapping, *, session, run_id)")
        mapping = second
        return link_batch(
            session, first, _entity_of_mapping(mapping), mapping.department, mapping.dataset,
            mapping=mapping, run_id=run_id,
        )
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
    _kind_of_entity(entity_kind)
    n = len(df)
    now = utcnow()
    source = f"{department}/{dataset}"
    learnt_pairs = _learn_from_batch(df) if entity_kind == ENTERPRISE else []
    learnt = {code: canonical for code, _kind, canonical in learnt_pairs}
    columns = list(code_columns) if code_columns is not None else _identifier_columns(df, entity_kind, mapping)
    results = [
        resolve_codes(session, df[col].tolist(), entity_kind, kinds=[kind] * n if kind else None, learnt=learnt)
        for col, kind in columns
    ]
    combined = _combine(results, n)

    new_codes = sorted({c for c, st in zip(combined["canonical_code"], combined["status"], strict=True) if st == NEW})
    retry = np.flatnonzero(combined["status"] == UNRESOLVED)
    if entity_kind == ENTERPRISE and new_codes and len(retry):
        # a second round for rows whose organisation code belongs to an identity created now
        sub = df.iloc[retry]
        pending = {c[8:17]: c for c in new_codes}
        again = [
            resolve_codes(session, sub[col].tolist(), entity_kind, kinds=[kind] * len(sub) if kind else None,
                          learnt=learnt, pending=pending)
            for col, kind in columns
        ]
        second = _combine(again, len(sub))
        for name in ("canonical_code", "method", "status"):
            combined[name][retry] = second[name]
        results.extend(again)
    status = combined["status"]

    # cross-walk: legacy codes learnt from this batch and legacy codes resolved by rule
    walk_rows: list[tuple[str, str, str, str]] = [(c, k, u, COMMERCE) for c, k, u in learnt_pairs]
    for res in results:
        for norm, kind, canonical, method in zip(res["normalized"], res["code_kind"], res["canonical_code"],
                                                 res["method"], strict=True):
            if canonical and norm and norm != canonical and method in (CONVERTED, ORG_IN_USCC, TAXPAYER_ORG):
                code_kind = {CONVERTED: "resident_id_15", TAXPAYER_ORG: "taxpayer_id"}.get(method, str(kind))
                walk_rows.append((norm, code_kind, canonical, method))
    learnt_count, merged_by_code = _store_crosswalk(session, walk_rows, entity_kind, source, now)

    # source-record links
    key_col = _first(SOURCE_KEY_COLUMNS, df)
    version_col = _first(SOURCE_VERSION_COLUMNS, df)
    linked = 0
    touched: set[str] = set()
    inserted: list[dict[str, Any]] = []
    if key_col is not None:
        linked, touched, inserted = _link_sources(session, df, combined, entity_kind, department, dataset, key_col,
                                                  version_col, now)
    # new identities, their golden records computed from this batch's links (one bulk insert)
    _create_identities(session, entity_kind, new_codes, inserted, now)
    if touched - set(new_codes):
        golden.refresh(session, entity_kind, sorted(touched - set(new_codes)), cause="link")

    events = _emit_merged(session, merged_by_code, entity_kind, source, run_id)

    records = df.copy()

    def column(values: Any) -> pd.Series:
        # object dtype explicitly: an inferred string dtype would turn None into NaN
        return pd.Series(values, index=records.index, dtype=object)

    records["canonical_code"] = column(combined["canonical_code"])
    records["resolved_id"] = column(combined["canonical_code"])
    records["identity_method"] = column(combined["method"])
    records["identity_status"] = column(status)
    # the plain names too (method/status), unless the record already has such columns
    for name, values in (("method", combined["method"]), ("status", status)):
        if name not in df.columns:
            records[name] = column(values)
    _resolve_nested(session, records, mapping)
    session.flush()
    counts = pd.Series(status).value_counts().to_dict()
    return ResolveResult(records, created=len(new_codes), linked=linked, learnt=learnt_count,
                         merged_events=events, by_status={str(k): int(v) for k, v in counts.items()})


def _create_identities(
    session: Session, entity_kind: str, codes: Sequence[str], links: list[dict[str, Any]], now: Any
) -> None:
    """Insert new identities with golden records from the links just made (no update pass)."""
    if not codes:
        return
    rules = golden.load_rules()
    by_code: dict[str, list[golden.SourceValues]] = {}
    for link in links:
        by_code.setdefault(link["canonical_code"], []).append(golden.SourceValues(
            link["department"], link["dataset"], link["source_key"], link["source_version"], link["attributes"],
            now.isoformat()))
    rows = []
    for code in codes:
        values, sources = golden.survive(by_code.get(code, []), entity_kind, rules)
        row: dict[str, Any] = {"attributes": values, "sources": sources, "created_at": now, "updated_at": now}
        row.update({c: golden.text(values.get(c)) for c in golden.TYPED_COLUMNS[entity_kind]})
        if entity_kind == PERSON:
            row["resident_id"] = code
        else:
            row["uscc"], row["org_code"] = code, code[8:17]
        rows.append(row)
    session.execute(insert(_table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)), rows)


def _emit_merged(
    session: Session, merged_by_code: dict[str, set[tuple[str, str, str]]], entity_kind: str, source: str,
    run_id: str | None,
) -> int:
    """``identity.merged`` per identity that gained legacy codes, written to the outbox in bulk
    (idempotent by key, like :func:`hub.outbox.emit`)."""
    events: list[dict[str, Any]] = []
    for canonical, legacy in sorted(merged_by_code.items()):
        shown = [
            {"legacy_code": mask_resident_id(code) if entity_kind == PERSON else code, "code_kind": kind,
             "method": method}
            for code, kind, method in sorted(legacy)
        ]
        digest = hashlib.sha256(repr(sorted(legacy)).encode()).hexdigest()[:16]
        events.append({
            "event_type": "identity.merged", "subject": canonical, "holder_code": canonical,
            "payload": {"entity_kind": entity_kind, "canonical_code": canonical, "merged": shown, "source": source,
                        "run_id": run_id},
            "idempotency_key": f"identity.merged:{canonical}:{digest}", "created_at": utcnow(),
        })
    if len(events) <= 20:  # few: the shared helper, one by one
        for e in events:
            emit(session, e["event_type"], e["subject"], e["payload"], e["idempotency_key"],
                 holder_code=e["holder_code"])
        return len(events)
    seen: set[str] = set()
    for chunk in _chunks([e["idempotency_key"] for e in events]):
        seen.update(session.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.idempotency_key.in_(chunk))))
    fresh = [e for e in events if e["idempotency_key"] not in seen]
    if fresh:
        session.execute(insert(_table(OutboxEvent)), fresh)
    return len(fresh)


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
    for chunk in _chunks([code for code, _ in unique]):
        for code, kind, canonical in session.execute(
            select(IdentityCrosswalk.legacy_code, IdentityCrosswalk.code_kind, IdentityCrosswalk.canonical_code).where(
                IdentityCrosswalk.legacy_code.in_(chunk),
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
        {"legacy_code": code, "code_kind": kind, "canonical_code": canonical, "entity_kind": entity_kind,
         "source": source, "method": method, "linked_at": now}
        for (code, kind), (canonical, method) in sorted(unique.items())
        if (code, kind) not in existing
    ]
    if fresh:
        session.execute(insert(_table(IdentityCrosswalk)), fresh)
    merged: dict[str, set[tuple[str, str, str]]] = {}
    for row in fresh:
        merged.setdefault(row["canonical_code"], set()).add((row["legacy_code"], row["code_kind"], row["method"]))
    return len(fresh), merged


def _link_sources(
    session: Session,
    df: pd.DataFrame,
    combined: dict[str, Any],
    entity_kind: str,
    department: str,
    dataset: str,
    key_col: str,
    version_col: str | None,
    now: Any,
) -> tuple[int, set[str], list[dict[str, Any]]]:
    """Upsert source-record links; a record that now resolves elsewhere is unlinked and
    relinked (history kept). Returns (links written, identities whose sources changed,
    the inserted link rows)."""
    rules = golden.load_rules()
    attr_cols: list[tuple[str, str]] = []
    for column in df.columns:
        name = rules.golden_name(entity_kind, str(column))
        if name is not None:
            attr_cols.append((str(column), name))
    keys = df[key_col].astype(str).tolist()
    versions = golden.json_column(df[version_col]) if version_col else [None] * len(df)
    canonical = list(combined["canonical_code"])
    methods = list(combined["method"])
    attr_values = {c: golden.json_column(df[c]) for c, _ in attr_cols}
    isr = IdentitySourceRecord
    current: dict[str, tuple[int, str, str | None, dict[str, Any]]] = {}
    for chunk in _chunks(keys):
        for link_id, key, code, version, attributes in session.execute(
            select(isr.id, isr.source_key, isr.canonical_code, isr.source_version, isr.attributes).where(
                isr.department == department,
                isr.dataset == dataset,
                isr.source_key.in_(chunk),
                isr.unlinked_at.is_(None),
            )
        ):
            current[key] = (link_id, code, version, attributes or {})
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    touched: set[str] = set()
    seen: set[str] = set()
    for i, key in enumerate(keys):
        code = canonical[i]
        if code is None or key in seen:
            continue
        seen.add(key)
        version = None if versions[i] is None else str(versions[i])
        attributes = {g: attr_values[c][i] for c, g in attr_cols if attr_values[c][i] is not None}
        link = current.get(key)
        if link is not None and link[1] == code:
            if link[2] != version or link[3] != attributes:
                updates.append({"id": link[0], "source_version": version, "attributes": attributes})
                touched.add(code)
            continue
        if link is not None:  # the record now belongs to another identity: unlink, keep history
            updates.append({"id": link[0], "unlinked_at": now})
            touched.add(link[1])
        inserts.append({
            "department": department, "dataset": dataset, "source_key": key,
            "source_version": version, "entity_kind": entity_kind,
            "canonical_code": code, "method": methods[i] or EXACT, "score": None, "attributes": attributes,
            "linked_at": now,
        })
        touched.add(code)
    for group in _same_keys(updates):
        session.execute(update(IdentitySourceRecord), group)  # bulk UPDATE by primary key
    if inserts:
        session.execute(insert(_table(IdentitySourceRecord)), inserts)
    return len(inserts), touched, inserts


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their key sets (one executemany per shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _resolve_nested(session: Session, records: pd.DataFrame, mapping: Any) -> None:
    """Holder codes inside list fields (``owners[].holder_code``): add ``resolved_id`` to each
    element, resolving persons and enterprises by the element's kind field; identities for
    valid canonical codes the index has not seen are created (without source links)."""
    if mapping is None:
        return
    for spec in _identifier_specs(mapping):
        if "[]." not in spec.field:
            continue
        list_col, _, code_key = spec.field.partition("[].")
        kind_key = spec.kind_field.partition("[].")[2] if getattr(spec, "kind_field", None) else None
        if list_col not in records.columns:
            continue
        elements = [(i, el) for i, items in enumerate(records[list_col].tolist())
                    if isinstance(items, list | tuple | np.ndarray) for el in items if isinstance(el, dict)]
        for entity_kind in (PERSON, ENTERPRISE):
            group = [el for _, el in elements
                     if (el.get(kind_key) if kind_key else None) in (entity_kind, None)
                     and "resolved_id" not in el]
            if not group:
                continue
            res = resolve_codes(session, [el.get(code_key) for el in group], entity_kind)
            created: set[str] = set()
            for el, code, status in zip(group, res["canonical_code"], res["status"], strict=True):
                el["resolved_id"] = code if status in (RESOLVED, NEW) else None
                if status == NEW:
                    created.add(code)
            # owners with a valid canonical code the index has not seen become identities
            _create_identities(session, entity_kind, sorted(created), [], utcnow())
