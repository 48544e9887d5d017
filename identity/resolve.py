"""Identity resolution (身份归一) of whole batches against the master index: the order of work.

:func:`link_batch` resolves a batch's holder codes by rule (:mod:`identity.rules`: exact, a
15-digit id converted, an organisation code inside a USCC, an old taxpayer id, the cross-walk),
sends person and enterprise records without a usable code to matching
(:mod:`identity.matching_step`), learns legacy codes into the cross-walk
(:mod:`identity.crosswalk`), plans and writes the source-record links (:mod:`identity.links`),
creates new identities with their golden records (:mod:`identity.new_identities`), places
relations (:mod:`identity.relations`) and the holders named inside records
(:mod:`identity.nested`: matched too when their code is unusable), and announces merges
through the outbox — all in the caller's session, with a handful of queries per batch, never one per row
(docs/decisions/0012-identity-bulk-linking.md). :func:`link_mapping_batch` does it for a
department's mapping (:class:`identity.batch_mapping.ResolvableMapping`), as the pipeline's
identity step calls it; :func:`resolve_batch` returns just the records; :func:`resolve_codes`
(the rules alone) only reads.

Workers resolving at once (scaled mode, one PostgreSQL database) would each read that a code
has no identity yet and each create it: :func:`link_batch` first takes the database-wide lock
:data:`RESOLVE_LOCK` (:mod:`hub.locks`, held until the caller's transaction ends), so batches
are resolved one after another and a later one finds what an earlier one created
(docs/decisions/0023-concurrency-on-postgresql.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from hub.killpoints import kill_point
from hub.locks import hold_for_transaction
from hub.models import utcnow
from identity import _bulk, golden
from identity.batch_mapping import ResolvableMapping, identifier_specs
from identity.crosswalk import emit_merged, learn_from_batch, rule_links, store_crosswalk
from identity.links import plan_links, write_links
from identity.matching_step import MATCH_METHODS, mark_provisional, match_records
from identity.nested import resolve_nested
from identity.new_identities import identity_rows, prepare_identities
from identity.relations import link_relations
from identity.rules import COMMERCE, core_table, kind_of_entity, resolve_codes, unique_values
from identity.statuses import NEW, RESOLVED, UNRESOLVED
from identity.tables import (
    ENTERPRISE,
    PERSON,
    IdentityEnterprise,
    IdentityPerson,
    IdentitySourceRecord,
)

#: Code columns tried per entity kind when the caller names none (first usable wins).
DEFAULT_CODE_COLUMNS = {
    PERSON: ("resident_id", "holder_code"),
    ENTERPRISE: ("uscc", "taxpayer_code", "holder_code", "org_code", "taxpayer_id", "reg_no"),
}


#: Identifier roles that name the record's own subject (a legal representative's id does not).
SUBJECT_ROLES = ("holder", "applicant", "owner", "subject")


#: The lock a batch's resolution holds until its transaction ends (:mod:`hub.locks`).
RESOLVE_LOCK = "identity.resolve"


#: The source key and version every mapped record carries (the mapping engine's columns).
SOURCE_KEY, SOURCE_VERSION = "_source_key", "_source_version"


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
    #: records without a usable code (:mod:`identity.matching_step`): linked by the model, sent
    #: to the review queue, made provisional identities; and the model's version
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    model_version: str | None = None

    @property
    def linked_by_code(self) -> int:
        """Records placed by their code (an identity in the index or a new one)."""
        placed = self.records["identity_status"].isin((RESOLVED, NEW))
        return int((placed & ~self.records["identity_method"].isin(MATCH_METHODS)).sum())


def _identifier_columns(
    df: pd.DataFrame, entity_kind: str, mapping: ResolvableMapping | None
) -> list[tuple[str, str | None]]:
    """(column, kind or None for auto) of the holder codes, in the order they are tried."""
    if mapping is not None:
        cols = [
            (spec.field, None if spec.kind in ("auto", None) else spec.kind)
            for spec in identifier_specs(mapping)
            if spec.role in SUBJECT_ROLES and spec.field in df.columns and spec.resolve
        ]
        if cols:
            # a canonical-kind column first: it decides, legacy columns only fill gaps
            return sorted(cols, key=lambda c: 0 if c[1] in ("uscc", "resident_id", None) else 1)
    return [(c, None) for c in DEFAULT_CODE_COLUMNS[entity_kind] if c in df.columns]


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


def link_mapping_batch(
    session: Session, df: pd.DataFrame, mapping: ResolvableMapping, *, run_id: str | None = None
) -> ResolveResult:
    """Resolve and link a mapping's batch as the identity kind the mapping declares
    (``identity_kind``: never guessed from its entity; an unknown kind is a ``ValueError``)."""
    kind = str(mapping.spec.identity_kind or "")
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
        session, df, kind_of_entity(kind), mapping.department, mapping.dataset, mapping=mapping, run_id=run_id
    )


def resolve_batch(session: Session, df: pd.DataFrame, entity_kind: str, department: str, dataset: str) -> pd.DataFrame:
    """Resolve and link a batch of canonical records of one kind; the records come back with
    ``canonical_code``/``resolved_id``, ``identity_method`` and ``identity_status``
    (``resolved`` | ``new`` | ``unresolved``) added, also as ``method`` and ``status`` when the
    records have no such columns. A mapping's batch goes through :func:`link_mapping_batch`."""
    return link_batch(session, df, entity_kind, department, dataset).records


def link_batch(
    session: Session,
    df: pd.DataFrame,
    entity_kind: str,
    department: str,
    dataset: str,
    *,
    mapping: ResolvableMapping | None = None,
    run_id: str | None = None,
    code_columns: Sequence[tuple[str, str | None]] | None = None,
) -> ResolveResult:
    """Resolve ``df``'s holder codes, create new identities, link source records, learn the
    cross-walk, refresh golden records and emit ``identity.merged`` — all in ``session``,
    holding :data:`RESOLVE_LOCK` from before the first read until the session's transaction ends."""
    hold_for_transaction(session, RESOLVE_LOCK)
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
            match=entity_kind in (PERSON, ENTERPRISE),
        )


def _link_batch(
    session: Session,
    df: pd.DataFrame,
    entity_kind: str,
    department: str,
    dataset: str,
    *,
    mapping: ResolvableMapping | None,
    run_id: str | None,
    code_columns: Sequence[tuple[str, str | None]] | None,
    match: bool = False,
) -> ResolveResult:
    kind_of_entity(entity_kind)
    n = len(df)
    now = utcnow()
    source = f"{department}/{dataset}"
    learnt_pairs = learn_from_batch(df) if entity_kind == ENTERPRISE else []
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

    new_codes = unique_values(combined["canonical_code"][combined["status"] == NEW])
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
    # records without a usable code: the model of their kind links them, sends them to review
    # or makes them provisional identities (identity.matching_step); an enterprise batch without
    # code columns holds no enterprise of its own (a property right: only its owners are)
    if match and (columns or entity_kind == PERSON):
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
            entity_kind=entity_kind,
            code_columns=[col for col, _ in columns],
        )
        new_codes = unique_values(combined["canonical_code"][combined["status"] == NEW])
    status = combined["status"]

    # cross-walk: legacy codes learnt from this batch and legacy codes resolved by rule
    walk_rows: list[tuple[str, str, str, str]] = [(c, k, u, COMMERCE) for c, k, u in learnt_pairs]
    for res in results:
        if matched is not None and matched.legacy_dropped.any():
            res = res[~matched.legacy_dropped]  # a 15-digit id the model placed elsewhere: not learnt
        walk_rows.extend(rule_links(res))
    learnt_count, merged_by_code = store_crosswalk(session, walk_rows, entity_kind, source, now)

    # source-record links, then the new identities with golden records computed from them
    plan = plan_links(session, df, combined, entity_kind, department, dataset, key_col, version_col)
    id_table = core_table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)
    link_table = core_table(IdentitySourceRecord)
    with _bulk.bulk_load(session, {link_table: plan.inserted, id_table: len(new_codes)}) as load:
        links = write_links(session, plan, entity_kind, department, dataset, now)
        # the links' indexes (when dropped for a large load) are built by the database while the new
        # identities' rows are built here; on PostgreSQL the links' COPY too
        if links is not None:
            load.insert_in_background(session, links)
        else:
            load.rebuild_in_background(link_table)
        identities = identity_rows(entity_kind, new_codes, plan, department, dataset, now)
        # the rows as the driver takes them, and the records returned: pure work, also done
        # while the indexes build
        prepared = prepare_identities(session, entity_kind, identities, now)
        records = _returned_records(df, combined, status)
        counts = pd.Series(status).value_counts().to_dict()
        load.wait()
        for part in prepared:
            _bulk.insert(session, part)
        kill_point("resolve.bulk_write")
    if plan.inserted:
        # a dataset's first links: the next batch's lookup by source key plans with their count
        _bulk.analyze_if_unknown(session, link_table, {"department": department, "dataset": dataset})
    if matched is not None and matched.provisional_codes:
        mark_provisional(session, matched.provisional_codes, entity_kind)
    touched = plan.touched.difference(new_codes)
    if touched:
        golden.refresh(session, entity_kind, sorted(touched), cause="link")

    events = emit_merged(session, merged_by_code, entity_kind, source, run_id)
    relations = mapping.spec.relations if mapping is not None else ()
    if relations:
        link_relations(
            session, records, relations, entity_kind, department, dataset, key_col, version_col, now, resolve_codes
        )
    nested = resolve_nested(session, records, mapping, department, dataset, key_col, version_col, run_id, _link_batch)
    session.flush()
    return ResolveResult(
        records,
        created=len(new_codes) + nested.created,
        linked=plan.inserted + nested.linked,
        linked_to_new=int(plan.new.sum()) + nested.linked_to_new,
        learnt=learnt_count + nested.learnt,
        merged_events=events + nested.merged_events,
        by_status={str(k): int(v) for k, v in counts.items()},
        linked_by_match=(matched.matched if matched else 0) + nested.linked_by_match,
        sent_to_review=(matched.review if matched else 0) + nested.sent_to_review,
        provisional=(matched.provisional if matched else 0) + nested.provisional,
        model_version=(matched.model_version if matched else None) or nested.model_version,
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
