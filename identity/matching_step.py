"""Probabilistic matching inside resolution (概率匹配归一): records without a usable code.

:func:`identity.resolve.link_batch` resolves codes by rule first. A person record whose code is
unusable — missing, a wrong check character, a wrong length — and one whose 15-digit id converts
to an 18-digit code nobody in the index holds, is then matched by the trained person model
(:mod:`identity.matching_model`) against the master index and against the batch's own records
that did resolve by code. An enterprise record none of whose codes resolves (a USCC with a wrong
check character or length, no code at all, an old code the cross-walk does not know) is matched
the same way by the enterprise model (name, legal representative, address, region, the damaged
code's characters; :mod:`identity.matching_enterprise`). Per record, by its best candidate:

* at or above the model's ``match`` threshold: linked to that identity (method
  ``probabilistic``), the match probability and the model version recorded on the link;
* between ``review`` and ``match``, or two strong candidates with different codes: no link;
  the record waits in the review queue (:mod:`identity.matching_review`) with its best two
  candidates, its personal data masked there;
* below ``review``: a provisional identity (``provisional`` of ``identity_person`` or
  ``identity_enterprise``) under a code of the hub's own (``P`` + 17 hexadecimal characters of
  the record's department, dataset and key: the same record gets the same code on every run) —
  or, for a person's valid converted 15-digit id, the new identity under that code, as before;
  an enterprise record carrying a valid old code nobody holds yet (an organisation code, an old
  taxpayer id, a registration number) stays unresolved instead: it waits for its enterprise (the
  cross-walk, the housekeeping relink), as before.

A record already linked (an earlier run, a steward's decision) keeps its link and is not scored
again. The whole set goes through the model at once: candidates are read from the index in a
few ``IN`` queries on the columns the blocking rules need (persons: birth dates, names and
represented enterprises' legal representatives; enterprises: names, the organisation codes inside
damaged codes and legal representatives' ids, :mod:`identity.matching_enterprise_index`), never
one query per record.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from identifiers.vectorized import normalize_many
from identity import _bulk
from identity.matching import MATCH, NO_MATCH, REVIEW, match_batch, prepare_persons
from identity.matching_enterprise_index import (
    enterprise_names,
    incoming_enterprises,
    index_enterprise_candidates,
    placed_enterprises,
)
from identity.matching_model import MASTER_COLUMNS, ensure_model
from identity.matching_relations import REPRESENTS, representative_codes
from identity.matching_review import enqueue_reviews
from identity.statuses import NEW, RESOLVED, UNRESOLVED
from identity.tables import (
    ENTERPRISE,
    PERSON,
    PROVISIONAL_PREFIX,
    IdentityEnterprise,
    IdentityPerson,
    IdentitySourceRecord,
)

log = logging.getLogger(__name__)

#: Link method of a record the model linked.
PROBABILISTIC = "probabilistic"
#: Link method of a record that became a provisional identity.
PROVISIONAL = "provisional"
#: ``identity_method`` of a record waiting in the review queue (not linked).
IN_REVIEW = "review"
#: Link methods that are not a code's: what the summary counts apart.
MATCH_METHODS = (PROBABILISTIC, PROVISIONAL, "probabilistic_review")


@dataclass
class MatchOutcome:
    """What matching decided for a batch (counts per decision, the model that decided)."""

    matched: int = 0
    review: int = 0
    provisional: int = 0
    model_version: str | None = None
    #: batch rows whose 15-digit code was not taken as their identity (matched or in review):
    #: the cross-walk must not learn it
    legacy_dropped: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    provisional_codes: list[str] = field(default_factory=list)


def provisional_code(department: str, dataset: str, source_key: str) -> str:
    """The code of a provisional identity: ``P`` + 17 hexadecimal characters of a hash of the
    record's place (no resident id or USCC starts with ``P``; the same record, the same code)."""
    digest = hashlib.sha256(f"{department}\x1f{dataset}\x1f{source_key}".encode()).hexdigest().upper()
    return PROVISIONAL_PREFIX + digest[:17]


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _text_column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df.columns:
        return pd.Series(None, index=df.index, dtype=object)
    return df[name].astype(object)


def _from_15(results: Sequence[pd.DataFrame], n: int) -> np.ndarray:
    """Rows whose code, in any column, was a 15-digit resident id."""
    out = np.zeros(n, dtype=bool)
    for res in results:
        out |= res["code_kind"].to_numpy(dtype=object) == "resident_id_15"
    return out


def _already_linked(session: Session, keys: np.ndarray, department: str, dataset: str) -> dict[str, tuple[str, str]]:
    """source key → (canonical code, method) of its active link."""
    table = _table(IdentitySourceRecord)
    c = table.c
    active = (c.department == department, c.dataset == dataset, c.unlinked_at.is_(None))
    rows = _bulk.rows_for_keys(session, table, c.source_key, keys.tolist(), (c.canonical_code, c.method), active)
    return {key: (code, method) for key, code, method in rows}


def index_candidates(session: Session, prepared: pd.DataFrame) -> pd.DataFrame:
    """Identities of the index sharing a birth date or a name with the records (what the
    blocking rules can pair them with), read in chunks of ``IN`` lists."""
    person = IdentityPerson
    cols = (person.resident_id, *(getattr(person, c) for c in MASTER_COLUMNS))
    found: list[tuple[Any, ...]] = []
    for column, values in (
        (person.birth_date, prepared["birth_date"]),
        (person.name, prepared["name"]),
        (person.resident_id, prepared["rep_code"]),
    ):
        distinct = [v for v in pd.unique(values.dropna().astype(str)) if v]
        for chunk in _bulk.chunks(distinct):
            found.extend(
                session.execute(
                    select(*cols).where(_bulk.in_values(session, column, chunk), person.merged_into.is_(None))
                ).all()
            )
    frame = pd.DataFrame(found, columns=["canonical_code", *MASTER_COLUMNS])
    return frame.drop_duplicates("canonical_code")


def _name_counts(session: Session, names: pd.Series) -> pd.DataFrame:
    """How many identities of the whole index bear each name (``name``, ``count``, ``total``):
    the candidates are a part of the index, and a name's frequency is the index's, not theirs."""
    person = IdentityPerson
    live = person.merged_into.is_(None)
    total = session.scalar(select(func.count()).select_from(person).where(live)) or 0
    counts: dict[str, int] = dict.fromkeys((str(v) for v in pd.unique(names.dropna().astype(str)) if v), 0)
    for chunk in _bulk.chunks(list(counts)):
        stmt = select(person.name, func.count()).where(_bulk.in_values(session, person.name, chunk), live)
        for name, count in session.execute(stmt.group_by(person.name)).all():
            counts[str(name)] = int(count)
    return pd.DataFrame({"name": list(counts), "count": list(counts.values()), "total": max(int(total), 1)})


def match_records(
    session: Session,
    df: pd.DataFrame,
    combined: dict[str, np.ndarray],
    results: Sequence[pd.DataFrame],
    *,
    key_col: str | None,
    id_col: str | None,
    department: str,
    dataset: str,
    run_id: str | None,
    model_folder: Path | None = None,
    entity_kind: str = PERSON,
    code_columns: Sequence[str] = (),
) -> MatchOutcome:
    """Match the batch's records of ``entity_kind`` without a usable code; ``combined``
    (canonical code, method, status per row) is updated in place and gains
    ``match_probability`` and ``model_version``. Writes only review-queue items; the links are
    written by the caller. ``code_columns``: an enterprise record's code columns, the first
    non-empty one compared as its damaged code."""
    n = len(df)
    outcome = MatchOutcome(legacy_dropped=np.zeros(n, dtype=bool))
    combined["match_probability"] = np.full(n, np.nan)
    combined["model_version"] = np.full(n, None, dtype=object)
    if key_col is None or not n:
        return outcome
    enterprise = entity_kind == ENTERPRISE
    status = combined["status"]
    canonical = combined["canonical_code"]
    method = combined["method"]
    keys = df[key_col].astype(str).to_numpy(dtype=object)
    names = enterprise_names(df) if enterprise else _text_column(df, "name")
    has_name = (names.notna() & (names.astype(str).str.strip() != "")).to_numpy()
    from_15 = np.zeros(n, dtype=bool) if enterprise else _from_15(results, n) & (status == NEW)
    todo = ((status == UNRESOLVED) | from_15) & pd.notna(df[key_col]).to_numpy() & has_name
    if not todo.any():
        return outcome
    # a record linked before keeps its link (an earlier run's decision, a steward's)
    linked = _already_linked(session, keys[todo], department, dataset)
    if linked:
        idx = np.flatnonzero(todo)
        hit = idx[[k in linked for k in keys[idx].tolist()]]
        for i in hit.tolist():
            canonical[i], method[i] = linked[keys[i]]
            status[i] = RESOLVED
        todo[hit] = False
        # counted as they were placed (a retried batch counts what a clean attempt counts)
        placed_as = [method[i] for i in hit.tolist()]
        outcome.matched += sum(m == PROBABILISTIC for m in placed_as)
        outcome.provisional += sum(m == PROVISIONAL for m in placed_as)
    rows = np.flatnonzero(todo)
    if not len(rows):
        return outcome
    placed_mask = pd.notna(canonical) & ~todo & np.isin(status, (RESOLVED, NEW))
    if enterprise:
        incoming = incoming_enterprises(df, rows, code_columns)
    else:
        incoming = _incoming_persons(session, df, rows, id_col, canonical, placed_mask, todo)

    model = ensure_model(session, entity_kind, folder=model_folder)
    decisions = None
    if model is not None:
        outcome.model_version = model.version
        placed = np.flatnonzero(placed_mask)
        if enterprise:
            candidates = pd.concat(
                [index_enterprise_candidates(session, incoming), placed_enterprises(df, placed, canonical)],
                ignore_index=True,
            ).drop_duplicates("canonical_code")
            frequencies = None
        else:
            candidates, frequencies = _person_candidates(session, df, incoming, placed, canonical)
        if len(candidates):
            decisions = match_batch(
                candidates,
                incoming,
                model.thresholds,
                model=model.settings,
                with_pairs=True,
                entity=entity_kind,
                name_frequencies=frequencies,
            )
    if decisions is None:  # an empty index: nobody to match
        decisions = pd.DataFrame(
            {"incoming_key": incoming["incoming_key"], "canonical_code": None, "match_probability": 0.0}
        ).assign(decision=NO_MATCH)
    at = {k: i for i, k in enumerate(decisions["incoming_key"].astype(str).tolist())}
    order = np.array([at[k] for k in incoming["incoming_key"].tolist()], dtype=np.int64)
    decided = decisions.iloc[order].reset_index(drop=True)
    verdict = decided["decision"].to_numpy(dtype=object)
    best = decided["canonical_code"].to_numpy(dtype=object)
    p = decided["match_probability"].to_numpy(dtype=float)
    new_codes = set(canonical[status == NEW].tolist())

    is_match = verdict == MATCH
    m_rows = rows[is_match]
    canonical[m_rows] = best[is_match]
    method[m_rows] = PROBABILISTIC
    status[m_rows] = [NEW if c in new_codes else RESOLVED for c in best[is_match].tolist()]
    combined["match_probability"][m_rows] = p[is_match]
    combined["model_version"][m_rows] = model.version if model is not None else None

    is_review = verdict == REVIEW
    r_rows = rows[is_review]
    if len(r_rows):
        # one item per source key (a key twice in the batch is one record: the first speaks for it)
        review = decided[is_review].assign(incoming_key=keys[r_rows]).drop_duplicates("incoming_key")
        shown = incoming[is_review].assign(incoming_key=keys[r_rows]).drop_duplicates("incoming_key")
        enqueue_reviews(
            session, review, department=department, dataset=dataset, incoming=shown, run_id=run_id,
            entity_kind=entity_kind,
        )  # fmt: skip
    canonical[r_rows] = None
    method[r_rows] = IN_REVIEW
    status[r_rows] = UNRESOLVED

    # nobody: a provisional identity — or the converted 15-digit code's own new identity; an
    # enterprise's valid old code nobody holds yet stays unresolved: it waits for its enterprise
    # (the cross-walk, the housekeeping relink), as before
    waits = _valid_old_code(df, rows, code_columns) if enterprise else np.zeros(len(rows), dtype=bool)
    none = (verdict == NO_MATCH) & ~from_15[rows] & ~waits
    p_rows = rows[none]
    codes = [provisional_code(department, dataset, k) for k in keys[p_rows].tolist()]
    canonical[p_rows] = codes
    method[p_rows] = PROVISIONAL
    status[p_rows] = NEW

    outcome.legacy_dropped[rows[is_match | is_review]] = from_15[rows[is_match | is_review]]
    outcome.matched += len(m_rows)
    outcome.review = len(r_rows)
    outcome.provisional += len(p_rows)
    outcome.provisional_codes = sorted(set(codes))
    log.info(
        "matched %d %s records without a usable code (model %s): %d linked, %d to review, %d provisional",
        len(rows),
        entity_kind,
        outcome.model_version,
        outcome.matched,
        outcome.review,
        outcome.provisional,
    )
    return outcome


def _valid_old_code(df: pd.DataFrame, rows: np.ndarray, code_columns: Sequence[str]) -> np.ndarray:
    """Per row of ``rows``: does the record carry a valid code in any column (an organisation
    code, an old taxpayer id, a registration number no rule or cross-walk entry resolved)?"""
    out = np.zeros(len(rows), dtype=bool)
    for col in code_columns:
        if col not in df.columns:
            continue
        values = df[col].iloc[rows].astype(object)
        values = values.where(values.notna(), None).tolist()
        out |= normalize_many(values)["valid"].astype(bool).to_numpy()
    return out


#: Person columns of a record the model compares (those the batch has).
PERSON_COLUMNS = ("name", "birth_date", "sex", "address", "region_code")


def _incoming_persons(
    session: Session,
    df: pd.DataFrame,
    rows: np.ndarray,
    id_col: str | None,
    canonical: np.ndarray,
    placed_mask: np.ndarray,
    todo: np.ndarray,
) -> pd.DataFrame:
    """The person records at ``rows`` as the model's incoming side (``incoming_key``: the batch
    position, keys may repeat), with the damaged id and the legal-representative evidence."""
    columns = [c for c in PERSON_COLUMNS if c in df.columns]
    incoming = df.iloc[rows][columns].copy()
    incoming["resident_id"] = df.iloc[rows][id_col].to_numpy() if id_col and id_col in df.columns else None
    incoming["incoming_key"] = [str(i) for i in rows.tolist()]
    if REPRESENTS in df.columns:  # the enterprise it represents names its legal representative
        rep = representative_codes(session, df[REPRESENTS], canonical, placed_mask, todo)
        incoming["rep_code"] = rep[rows]
    return incoming.reset_index(drop=True)


def _person_candidates(
    session: Session, df: pd.DataFrame, incoming: pd.DataFrame, placed: np.ndarray, canonical: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The index's and the batch's candidates for ``incoming`` persons, and the names' frequencies."""
    columns = [c for c in PERSON_COLUMNS if c in df.columns]
    batch = df.iloc[placed][columns].copy().reset_index(drop=True)
    batch.insert(0, "canonical_code", canonical[placed])
    candidates = pd.concat(
        [index_candidates(session, prepare_persons(incoming, "incoming_key")), batch], ignore_index=True
    ).drop_duplicates("canonical_code")
    if not len(candidates):
        return candidates, None
    names = pd.concat([incoming["name"], candidates["name"]], ignore_index=True)
    return candidates, _name_counts(session, names)


def mark_provisional(session: Session, codes: Sequence[str], entity_kind: str = PERSON) -> None:
    """Set ``provisional`` on the identities just created under provisional codes (by chunk)."""
    table = _table(IdentityPerson if entity_kind == PERSON else IdentityEnterprise)
    key = table.c.resident_id if entity_kind == PERSON else table.c.uscc
    for chunk in _bulk.chunks(list(codes)):
        session.execute(update(table).where(_bulk.in_values(session, key, chunk)).values(provisional=True))
