"""Keeping the matching models (模型维护): thresholds from the hub's own labels, relinks proposed.

:func:`retrain` is what ``hub identity matching train`` and the scheduled task run, for each
entity kind (``person``, ``enterprise``) on its own identities, links and review items:

1. **Labels, split**: the index's labelled pairs (source records linked by a valid code, paired
   with their identity — :func:`identity.matching_model.index_training_data`) are split by a hash
   of the identity's code: about two thirds train m, the rest are held out. A held-out record,
   its id withheld, is scored against the index sample with the new model; its best candidate is
   a true match when it is its own identity, a false one otherwise (and so is a strong runner-up).
2. **Stewards' decisions**: a grey-zone item a steward linked is a true match at the probability
   it was queued with; one rejected is a false match at that probability.
3. **Thresholds**: ``match`` is the lowest probability on a grid at which the labelled decisions
   at or above it keep precision >= 0.995 — counted by the lower end of a 95% Wilson interval, so
   a handful of lucky labels cannot bring it down — and never below 0.9; ``review`` stays below
   it. Too few labels (under 200 at the threshold): the defaults stand.
4. **Relinks proposed, never made**: every link a model placed (method ``probabilistic``) under
   another version is scored again from the values its record carried; where the new model
   would link it to another identity, a review item (reason ``relink``) proposes that identity,
   with the current one as runner-up. The link stays as it is until a steward decides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity.golden_sources import AS_GOLDEN
from identity.matching import MATCH, NO_MATCH, REVIEW, Thresholds, match_batch, prepare_persons
from identity.matching_enterprise_index import ENTERPRISE_COLUMNS, enterprise_values, index_enterprise_candidates
from identity.matching_model import (
    MASTER_COLUMNS,
    MatchingModel,
    _version,
    index_training_data,
    save,
    train_settings,
)
from identity.matching_review import enqueue_reviews
from identity.matching_step import index_candidates
from identity.matching_tables import LINKED, MATCH_REVIEW, REJECTED, RELINK, IdentityReviewQueue
from identity.tables import ENTERPRISE, PERSON, IdentitySourceRecord

log = logging.getLogger(__name__)

PRECISION_TARGET = 0.995
#: Candidate ``match`` thresholds, lowest first; the model never links below the first.
GRID = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
#: Fewer held-out decisions than this at or above a threshold: no evidence for it.
MIN_LABELS = 200
HELD_OUT_SHARE = 1 / 3


def held_out(codes: pd.Series, share: float = HELD_OUT_SHARE) -> np.ndarray:
    """Which labels are held out for choosing thresholds: by a hash of the identity's code, so
    one identity's labels are all on one side and the split is the same on every run."""
    cut = int(share * 2**32)
    return np.array(
        [int.from_bytes(hashlib.sha256(str(c).encode()).digest()[:4], "big") < cut for c in codes.tolist()],
        dtype=bool,
    )


def wilson_lower(right: int, total: int, z: float = 1.96) -> float:
    """The lower end of the Wilson score interval of ``right / total``."""
    if total <= 0:
        return 0.0
    p = right / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (centre - spread) / (1 + z * z / total)


def choose_thresholds(scored: pd.DataFrame, default: Thresholds | None = None) -> tuple[Thresholds, dict[str, Any]]:
    """Thresholds from labelled decisions (``p``: match probability, ``true``: a true match):
    the lowest ``match`` on :data:`GRID` whose decisions at or above it hold a Wilson lower bound
    of precision >= :data:`PRECISION_TARGET` (at least :data:`MIN_LABELS` of them), with no higher
    grid point's precision below the target."""
    default = default or Thresholds()
    p = scored["p"].to_numpy(dtype=float)
    true = scored["true"].to_numpy(dtype=bool)
    table = []
    for t in GRID:
        above = p >= t
        n, right = int(above.sum()), int((above & true).sum())
        table.append({"threshold": t, "decisions": n, "right": right, "lower": wilson_lower(right, n)})
    chosen = None
    for i, row in enumerate(table):
        later = table[i:]
        held = row["decisions"] >= MIN_LABELS and row["lower"] >= PRECISION_TARGET
        # and no higher threshold does worse (fewer decisions there: their plain precision)
        if held and all(r["right"] >= PRECISION_TARGET * r["decisions"] for r in later):
            chosen = row["threshold"]
            break
    if chosen is None:
        return default, {"chosen_from_labels": False, "grid": table}
    review = min(default.review, chosen - 0.05)
    return dataclasses.replace(default, match=chosen, review=review), {"chosen_from_labels": True, "grid": table}


def decision_labels(session: Session, entity: str = PERSON) -> pd.DataFrame:
    """Stewards' decisions on grey-zone items as labels: linked → true at the probability of the
    identity chosen, rejected → false at the best candidate's (``p``, ``true``)."""
    q = IdentityReviewQueue
    rows = session.execute(
        select(q.status, q.match_probability, q.runner_up_probability, q.candidate_code, q.runner_up_code, q.id).where(
            q.reason == MATCH_REVIEW, q.status.in_((LINKED, REJECTED)), q.entity_kind == entity
        )
    ).all()
    linked_to = _linked_codes(session, [r for r in rows if r[0] == LINKED])
    points: list[tuple[float, bool]] = []
    for status, p, runner_p, _best, runner, item_id in rows:
        if status == REJECTED:
            points.append((float(p), False))
        elif linked_to.get(item_id) == runner and runner_p is not None:
            points.extend([(float(runner_p), True), (float(p), False)])
        else:
            points.append((float(p), True))
    return pd.DataFrame(points, columns=["p", "true"])


def _linked_codes(session: Session, rows: list[Any]) -> dict[int, str]:
    """Review item id → the identity its record was linked to by the decision."""
    out: dict[int, str] = {}
    q, link = IdentityReviewQueue, IdentitySourceRecord
    for row in rows:
        item = session.get(q, row[5])
        if item is None:
            continue
        code = session.scalar(
            select(link.canonical_code)
            .where(link.department == item.department, link.dataset == item.dataset)
            .where(link.source_key == item.incoming_key, link.method == "probabilistic_review")
            .order_by(link.id.desc())
            .limit(1)
        )
        if code is not None:
            out[item.id] = str(code)
    return out


def score_held_out(
    master: pd.DataFrame, labels: pd.DataFrame, settings: dict[str, Any], entity: str = PERSON
) -> pd.DataFrame:
    """The held-out labelled records (ids withheld) scored against ``master``: per record its best
    candidate (true when it is its own identity) and a strong runner-up (false) — ``p``, ``true``."""
    if labels.empty or master.empty:
        return pd.DataFrame({"p": [], "true": []})
    incoming = labels.drop(columns=["canonical_code"]).assign(incoming_key=[f"h{i}" for i in range(len(labels))])
    open_door = Thresholds(match=1.0, review=0.0, ambiguity_margin=0.0)
    decided = match_batch(master, incoming, open_door, model=settings, with_pairs=True, entity=entity)
    truth = dict(zip(incoming["incoming_key"], labels["canonical_code"].astype(str), strict=True))
    decided = decided[decided["decision"] != NO_MATCH]
    want = decided["incoming_key"].map(truth)
    best = pd.DataFrame({"p": decided["match_probability"], "true": decided["canonical_code"].astype(str) == want})
    runner = decided[decided["runner_up_probability"].notna()]
    wrong_runner = runner["runner_up_code"].astype(str) != runner["incoming_key"].map(truth)
    second = pd.DataFrame({"p": runner["runner_up_probability"][wrong_runner], "true": False})
    return pd.concat([best, second], ignore_index=True)


def train_with_thresholds(
    session: Session, *, seed: int = 7, entity: str = PERSON
) -> tuple[MatchingModel, dict[str, Any]] | None:
    """A new model version of ``entity``: m from two thirds of the index's labels, thresholds from
    the held-out third and the stewards' decisions; ``None`` when the index holds nobody."""
    master, labels = index_training_data(session, seed=seed, entity=entity)
    if master.empty:
        return None
    hold = held_out(labels["canonical_code"]) if len(labels) else np.zeros(0, dtype=bool)
    train, test = labels[~hold].reset_index(drop=True), labels[hold].reset_index(drop=True)
    settings = train_settings(master, train, seed=seed, entity=entity)
    scored = pd.concat(
        [score_held_out(master, test, settings, entity), decision_labels(session, entity)], ignore_index=True
    )
    thresholds, report = choose_thresholds(scored)
    now = dt.datetime.now(dt.UTC)
    model = MatchingModel(
        entity=entity,
        version=_version(entity, settings, now),
        settings=settings,
        thresholds=thresholds,
        trained_at=now.isoformat(),
        labels=len(train),
        master_records=len(master),
    )
    report.update({"held_out_labels": len(test), "scored_decisions": len(scored), "thresholds": thresholds.__dict__})
    return model, report


def propose_relinks(session: Session, model: MatchingModel, *, limit: int = 50_000) -> dict[str, int]:
    """Score the links other model versions placed again with ``model``; where it would link a
    record to another identity, queue a ``relink`` review item. Links are never changed here."""
    link = IdentitySourceRecord
    enterprise = model.entity == ENTERPRISE
    rows = session.execute(
        select(link.department, link.dataset, link.source_key, link.canonical_code, link.stored_attributes)
        .where(link.entity_kind == model.entity, link.unlinked_at.is_(None), link.method == "probabilistic")
        .where((link.model_version != model.version) | link.model_version.is_(None))
        .order_by(link.id)
        .limit(limit)
    ).all()
    report = {"links_scored": 0, "proposed": 0, "agree": 0}
    columns = list(ENTERPRISE_COLUMNS) if enterprise else list(MASTER_COLUMNS)

    def values(a: dict[str, Any]) -> dict[str, Any]:
        return enterprise_values(a) if enterprise else {col: a.get(col) for col in MASTER_COLUMNS}

    records = [
        {"department": d, "dataset": ds, "source_key": k, "current": c, **values(a)}
        for d, ds, k, c, a in rows
        if isinstance(a, dict) and a and a != AS_GOLDEN
    ]
    if not records:
        return report
    frame = pd.DataFrame(records).assign(incoming_key=[f"r{i}" for i in range(len(records))])
    incoming = frame[["incoming_key", *columns]]
    # candidates read from the index the way resolution reads them
    if enterprise:
        candidates = index_enterprise_candidates(session, incoming)
    else:
        candidates = index_candidates(session, prepare_persons(incoming, "incoming_key"))
    decided = match_batch(
        candidates, incoming, model.thresholds, model=model.settings, with_pairs=True, entity=model.entity
    )
    decided = decided.merge(
        frame[["incoming_key", "department", "dataset", "source_key", "current"]], on="incoming_key"
    )
    report["links_scored"] = len(decided)
    moved = decided["decision"].isin([MATCH, REVIEW]) & (decided["canonical_code"].astype(str) != decided["current"])
    report["agree"] = int((~moved).sum())
    for (department, dataset), group in decided[moved].groupby(["department", "dataset"]):
        proposals = group.assign(
            decision=REVIEW,
            incoming_key=group["source_key"],
            runner_up_code=group["current"],
            runner_up_probability=None,
        )
        shown = frame[frame["incoming_key"].isin(group["incoming_key"])].assign(incoming_key=lambda f: f["source_key"])
        report["proposed"] += enqueue_reviews(
            session, proposals, department=str(department), dataset=str(dataset), incoming=shown,
            actor=f"model {model.version}", reason=RELINK, entity_kind=model.entity,
        )  # fmt: skip
    log.info("model %s: %s", model.version, report)
    return report


def retrain(
    session: Session, *, folder: Path | None = None, seed: int = 7, entity: str = PERSON
) -> dict[str, Any] | None:
    """Train a new version of ``entity``'s model (thresholds from the hub's labels), save it,
    propose relinks; ``None`` when the index holds no identity of that kind."""
    trained = train_with_thresholds(session, seed=seed, entity=entity)
    if trained is None:
        return None
    model, report = trained
    path = save(model, folder)
    relinks = propose_relinks(session, model)
    shown = model.as_json()
    shown.pop("settings")
    grid = report.pop("grid")
    report.pop("thresholds")
    return {**shown, "path": str(path), **report, "threshold_grid": grid, "relinks": relinks}
