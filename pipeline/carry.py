"""Carrying staged batches through (续传): nothing a failed run staged is left behind.

A connector's read position moves once a batch is staged (``connectors.sync.run_sync``), and
the staged Parquet is the durable buffer between the source and the licence store: every
staged batch is entered in ``staged_batch`` in the same transaction as the position, and stays
``staged`` until the publish step of the run that carried it marks it ``published``. So:

* :func:`claim_pending` — an extract first claims every batch of its mapping still ``staged``
  and not claimed by a run that is still running (earlier runs that failed anywhere after
  extract, or this run's own earlier attempt), oldest first, ahead of what it reads itself;
* :func:`mark_published` — publish marks the batches it carried through, right after the
  licences are written (a crash between repeats the work, which every step downstream dedupes).

A claim is ``claimed_by`` + ``claimed_at``, not a status: a run that dies leaves its batches
``staged``. The claim is one conditional ``UPDATE`` (only rows still staged and still claimed by
no one, by this run, or by a run known to be over), so two runs never carry the same batch. Who
is still running is the caller's knowledge: the DAG asks Airflow; callers outside Airflow (tests,
the benchmark) run one at a time and pass nothing.

Taking batches over from a run that did not finish also supersedes that run's ``map`` and
``validate`` ledger rows and its validation quarantine rows of those batches: this run counts
and quarantines those rows again, once. What a failed run changed for good (identities created,
licences issued) stays counted where it happened; re-processing finds it done and adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from hub.db import session_scope
from hub.models import StagedBatch, utcnow
from pipeline.tables import PipelineStep
from validation.quarantine import BatchRef, clear_batch

log = logging.getLogger(__name__)

#: ledger rows a carrying run counts again (resolve and publish count lasting effects, kept)
SUPERSEDED_STEPS = ("map", "validate")
_CHUNK = 500

StillRunning = Callable[[str], bool]


@dataclass(frozen=True)
class Carried:
    """A batch an earlier run (or an earlier attempt of this run) staged and nobody published."""

    staged_ref: str
    rows: int
    #: the run whose extract staged it
    staged_by: str | None
    #: the run that last tried to carry it through (None: nobody yet)
    previous_claim: str | None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def claim_pending(
    engine: Engine, mapping: Any, run_id: str, *, still_running: StillRunning | None = None
) -> list[Carried]:
    """Claim every staged, unpublished batch of ``mapping`` for ``run_id``; oldest first.

    ``still_running(run_id)`` says whether another run that holds a claim is still going (its
    batches are left to it); without it every other claimant counts as over.
    """
    with session_scope(engine) as session:
        pending = session.execute(
            select(StagedBatch.id, StagedBatch.claimed_by)
            .where(StagedBatch.mapping == mapping.name, StagedBatch.status == "staged")
            .order_by(StagedBatch.id)
        ).all()
    claimants = {c for _, c in pending if c is not None and c != run_id}
    busy = {c for c in claimants if still_running is not None and still_running(c)}
    if busy:
        log.warning("%s: batches claimed by run(s) %s are left to them (still running)", mapping.name, sorted(busy))
    previous = {i: c for i, c in pending if c not in busy}
    if not previous:
        return []
    allowed = (claimants - busy) | {run_id}
    now = utcnow()
    with session_scope(engine) as session:
        # write first: on SQLite the transaction takes the write lock at once (no stale snapshot)
        for ids in _chunks(sorted(previous)):
            session.execute(
                update(StagedBatch)
                .where(
                    StagedBatch.id.in_(ids),
                    StagedBatch.status == "staged",
                    or_(StagedBatch.claimed_by.is_(None), StagedBatch.claimed_by.in_(allowed)),
                )
                .values(claimed_by=run_id, claimed_at=now)
                .execution_options(synchronize_session=False)
            )
        mine = session.execute(
            select(StagedBatch.id, StagedBatch.staged_ref, StagedBatch.rows, StagedBatch.run_id)
            .where(StagedBatch.mapping == mapping.name, StagedBatch.status == "staged",
                   StagedBatch.claimed_by == run_id)
            .order_by(StagedBatch.id)
        ).all()  # fmt: skip
        carried = [Carried(ref, int(rows), staged_by, previous.get(i)) for i, ref, rows, staged_by in mine]
        _supersede(session, mapping, run_id, [c for c in carried if c.previous_claim not in (None, run_id)])
    return carried


def _supersede(session: Any, mapping: Any, run_id: str, taken_over: list[Carried]) -> None:
    """Mark the earlier claimants' map/validate rows superseded and drop their validation quarantine."""
    runs = sorted({str(c.previous_claim) for c in taken_over})
    if not runs:
        return
    session.execute(
        update(PipelineStep)
        .where(PipelineStep.mapping == mapping.name, PipelineStep.run_id.in_(runs),
               PipelineStep.step.in_(SUPERSEDED_STEPS), PipelineStep.superseded_by.is_(None))
        .values(superseded_by=run_id)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    cleared = 0
    for c in taken_over:
        # the batch is validated again by this run: its quarantined rows are recorded again, once
        cleared += clear_batch(session, BatchRef(mapping.department, mapping.dataset, c.staged_ref),
                               str(c.previous_claim))  # fmt: skip
    if cleared:
        log.info("%s: %d quarantine row(s) of run(s) %s superseded (validated again here)", mapping.name, cleared,
                 runs)  # fmt: skip


def mark_published(engine: Engine, mapping_name: str, staged_refs: Sequence[str], run_id: str) -> int:
    """Mark the batches ``run_id`` carried through as published; returns how many it marked."""
    refs = list(dict.fromkeys(staged_refs))
    marked = 0
    now = utcnow()
    with session_scope(engine) as session:
        for chunk in _chunks(refs):
            result = session.execute(
                update(StagedBatch)
                .where(StagedBatch.mapping == mapping_name, StagedBatch.staged_ref.in_(chunk),
                       StagedBatch.status == "staged")
                .values(status="published", claimed_by=run_id, finished_at=now)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
            marked += int(getattr(result, "rowcount", 0) or 0)
    return marked


def by_run(carried: Iterable[Carried]) -> dict[str, int]:
    """Rows carried over per run that staged them (what the extract log names)."""
    out: dict[str, int] = {}
    for c in carried:
        key = c.staged_by or "?"
        out[key] = out.get(key, 0) + c.rows
    return out
