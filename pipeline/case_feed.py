"""The departments' case-step feeds (环节数据汇聚): each department's approval system's steps,
pulled like any feed and taken into the case repository's step log.

A case-step feed is a mapping file in ``mappings/case_steps/`` (entity ``case_step``): its
department's protocol (a table over ODBC, a SOAP operation, XML packages) and how the
department's columns and step codes become the hub's (supervision code, department, the
department's own step number, step, time, note, what is missing). Its exchange DAG runs

    extract → map → validate → take_steps ──(Asset event)──▶ hub_push

extract, map and validate are every feed's (read positions, staging, carry-over, quarantine with
reasons); take_steps writes the validated steps through :func:`pipeline.case_steps.ingest_case_steps`
— resends recognised, a step of a case the department was not dispatched refused and counted,
every new step announced in the same transaction — and settles the touched cases, which
releases the stages that wait for them (their ``case.dispatched`` events wake the push DAG).
Pulling the same steps again changes nothing. "Now" is the hub's clock (:func:`hub.clock.utcnow`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hub.db import get_engine, session_factory
from mappings import engine as mapping_engine
from pipeline.carry import mark_published
from pipeline.case_steps import COLUMNS, MISSING, ingest_case_steps
from pipeline.staging import ObjectStager, open_stager, read_frame
from pipeline.steps import (
    Counts,
    StepOutput,
    _sources,
    _timed,
    extract,
    load_mapping,
    map_batches,
    record_step,
)
from pipeline.steps import validate as validate_step

#: the entity of a case-step feed's records
ENTITY = "case_step"
STEP = "take_steps"


def step_feeds() -> dict[str, Any]:
    """Every case-step feed (``mappings/case_steps/*.yaml``), by name (``<department>_case_steps``)."""
    return mapping_engine.load_all(mapping_engine.STEP_FEEDS_DIR)


def take_steps(
    mapping_name: str, validated: StepOutput, run_id: str, *, stager: ObjectStager | None = None
) -> StepOutput:
    """Take the validated steps into the step log (环节入库) and settle their cases.

    Counts: ``pulled`` the steps validated, ``accepted`` those logged now or already logged
    (a resend), ``quarantined`` those the case repository refused (by code in ``refused``).
    The run's staged batches are then marked published; a run that dies before leaves them to
    the next, which finds its steps already logged.
    """
    mapping = load_mapping(mapping_name)
    stager = stager or open_stager()
    engine = get_engine()
    sessions = session_factory(engine)
    counts = Counts()
    refused: Counter[str] = Counter()
    appended = resent = settled = 0
    actor = f"{mapping.department}-approvals"
    with _timed() as t:
        for ref in [r for r in validated.get("staged", []) if r]:
            frame = read_frame(stager, ref)
            columns = [c for c in (*COLUMNS, MISSING) if c in frame]
            batch = ingest_case_steps(sessions, frame[columns], actor=actor)
            counts.pulled += len(frame)
            appended += batch.ingested.appended
            resent += batch.ingested.resent
            refused.update(batch.ingested.refused)
            settled += batch.settled
        marked = mark_published(engine, mapping_name, _sources(validated), run_id)
    counts.accepted = appended + resent
    counts.quarantined = sum(refused.values())
    record_step(run_id, mapping_name, mapping.department, STEP, counts, t[0])
    return {"mapping": mapping_name, "batches_published": marked, "appended": appended, "resent": resent,
            "refused": dict(refused), "cases_settled": settled, **vars(counts)}  # fmt: skip


def run_feed(mapping_name: str, run_id: str, *, stager: ObjectStager | None = None) -> StepOutput:
    """One run of a case-step feed's task bodies in order, in this process (``hub run``, tests, the demo)."""
    out = extract(mapping_name, run_id, stager=stager)
    out = map_batches(mapping_name, out, run_id, stager=stager)
    out = validate_step(mapping_name, out, run_id, stager=stager)
    return take_steps(mapping_name, out, run_id, stager=stager)
