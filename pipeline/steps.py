"""Task bodies of the exchange DAGs (交换作业步骤): each step takes and returns references.

extract → map → validate → resolve → publish, one call per step over *all* the batches a
run pulled (tasks work on batches, never on single records). Every step:

* reads its input from staged Parquet by reference and stages its output the same way
  (XCom carries a small dict of references and counts, never records);
* records its counts in the run ledger (:class:`pipeline.tables.PipelineStep`),
  replacing the row of an earlier attempt, so a retried task never double-counts;
* names its staged objects after the run and the input, so a retry rewrites the same objects;
* passes on ``sources``: the extract's staged batches the run carries, which publish marks
  published at the end (:mod:`pipeline.carry`). A run that fails anywhere before leaves
  them ``staged``, and the next run of the mapping carries them through first;
* passes on ``deleted``: the tombstones of rows gone from the source, staged by map, which
  publish acts on (:mod:`pipeline.deletions`: links ended, identity and licences into review,
  the department told — never a revocation).

The logic of each step lives with its owner (connectors, mappings, validation, identity,
e_license_store, recognition); here it is only called in order.

One job, one module: the exchange DAG's step bodies in the order they run; each is short and
they share the ledger and staging conventions above.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from connectors.config import get_connection
from connectors.registry import make_connector
from connectors.sync import run_sync
from hub.db import get_engine, session_scope
from hub.killpoints import kill_point
from mappings import engine as mapping_engine
from pipeline.carry import StillRunning, by_run, claim_pending, mark_published
from pipeline.lineage import record_batch, set_model_version
from pipeline.staging import ObjectStager, open_stager, read_frame, stage_frame
from pipeline.tables import PipelineStep
from validation.gxrun import build_docs_for
from validation.run import validate_mapped
from validation.suites import ExpectationSpec

# The resolve, publish and push bodies import their rooms inside the function (`noqa: PLC0415 - DAG parse`):
# the DAG file imports this module at parse, and identity, licences and delivery cost 0.3-0.7 s each.
log = logging.getLogger(__name__)

#: what every step returns through XCom
StepOutput = dict[str, Any]


class StepError(RuntimeError):
    """A step cannot go on (counts do not reconcile, a batch is past its threshold, ...)."""


# -- plumbing -----------------------------------------------------------------------------


_MAPPINGS: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}


def load_mapping(name: str) -> Any:
    """The mapping ``<department>_<dataset>`` from ``mappings/*.yaml``.

    Checking every file against its JSON Schema costs a few hundred milliseconds; the checked
    set is kept per process for as long as no mapping file changes.
    """
    feeds = mapping_engine.STEP_FEEDS_DIR  # the case-step feeds run extract and map like every feed
    files = [*mapping_engine.mapping_files(mapping_engine.MAPPINGS_DIR), *mapping_engine.mapping_files(feeds)]
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    mappings = _MAPPINGS.get(stamp)
    if mappings is None:
        mappings = {**mapping_engine.load_all(), **mapping_engine.load_all(feeds)}
        _MAPPINGS.clear()
        _MAPPINGS[stamp] = mappings
    try:
        return mappings[name]
    except KeyError:
        raise StepError(f"no mapping named {name!r}; have {sorted(mappings)}") from None


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _safe_run(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def object_name(mapping: str, run_id: str, step: str, inputs: Any) -> str:
    """Deterministic name of a step's staged output (same run + same inputs → same object)."""
    return f"pipeline/{mapping}/{_safe_run(run_id)}/{step}-{_digest(inputs)}.parquet"


@dataclass
class Counts:
    pulled: int = 0
    #: extract only: rows of earlier runs' staged batches carried through by this run
    carried_over: int = 0
    accepted: int = 0
    quarantined: int = 0
    identities_created: int = 0
    identities_linked: int = 0
    linked_by_code: int = 0
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    licenses_issued: int = 0
    licenses_changed: int = 0
    #: publish: of the licences issued or changed, those now revoked (a source status revoked them)
    licenses_revoked: int = 0
    notices_pushed: int = 0


#: publish counts what it changed for good; an attempt never repeats an earlier attempt's changes
#: (issuing unchanged licences changes nothing), so attempts add up instead of replacing each other
LASTING = ("licenses_issued", "licenses_changed", "licenses_revoked")
#: resolve's lasting counts, likewise
#: (how the records found their identity — by code, by match, sent to review, provisional — is
#: counted afresh by every attempt, which resolves every batch again, like pulled and accepted)
LASTING_IDENTITIES = ("identities_created", "identities_linked")


def add_lasting(session: Any, run_id: str, mapping: str, department: str, step: str, **counts: int) -> None:
    """Add a step's lasting counts to its ledger row in ``session``: the transaction that makes
    the changes counted, so a crash can lose neither the changes nor their count alone (the
    retry finds them made, and counts only what it makes itself)."""
    row = session.get(PipelineStep, (run_id, mapping, step))
    if row is None:
        row = PipelineStep(run_id=run_id, mapping=mapping, step=step, department=department,
                           **dict.fromkeys(LASTING + LASTING_IDENTITIES, 0))  # fmt: skip
        session.add(row)
        session.flush()
    for key, value in counts.items():
        setattr(row, key, (getattr(row, key) or 0) + value)


def record_step(
    run_id: str, mapping: str, department: str, step: str, counts: Counts, seconds: float, *, add: tuple[str, ...] = ()
) -> None:
    """Write (or overwrite, on retry) the ledger row of one step; the counts named in ``add`` add
    to what earlier attempts of the step recorded."""
    with session_scope(get_engine()) as session:
        row = session.get(PipelineStep, (run_id, mapping, step))
        if row is None:
            row = PipelineStep(run_id=run_id, mapping=mapping, step=step, department=department)
            session.add(row)
        for key, value in vars(counts).items():
            setattr(row, key, value + (getattr(row, key) or 0) if key in add else value)
        row.seconds = seconds
        row.finished_at = dt.datetime.now(dt.UTC)


@contextmanager
def _timed() -> Iterator[list[float]]:
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


def _source_refs(refs: list[str]) -> list[str]:
    return [r for r in refs if r]


def _deleted(previous: StepOutput) -> list[str]:
    """The staged tombstones (rows gone from the source) the run carries, passed on to publish."""
    return _source_refs(list(previous.get("deleted", [])))


def _sources(previous: StepOutput) -> list[str]:
    """The extract's staged batches this run carries (passed on by every step to publish)."""
    if "sources" in previous:
        return _source_refs(list(previous["sources"]))
    return _source_refs([b.get("source", "") for b in previous.get("batches", [])])


# -- extract (+ stage) ---------------------------------------------------------------------


def connector_dataset(mapping: Any) -> str:
    """The connector's dataset name for a mapping (its ``source`` block may name several)."""
    source = mapping.spec.source
    datasets = source.get("datasets")
    if isinstance(datasets, Mapping) and datasets:
        return mapping.dataset if mapping.dataset in datasets else str(next(iter(datasets)))
    return str(source.get("dataset") or source.get("table") or mapping.dataset)


def source_block(mapping: Any) -> dict[str, Any]:
    """The mapping's ``source:`` block, completed from its Airflow Connection where it is silent.

    Which SQL dialect a department's server speaks is a fact of the deployment (SQL Server at
    the department, MariaDB in CI, SQLite in the embedded demo), so a Connection may carry it
    as ``extra.dialect``; the mapping file stays the same everywhere.
    """
    block = dict(mapping.spec.source)
    if block.get("protocol") == "sql" and "dialect" not in block:
        dialect = get_connection(str(block["conn_id"])).extra.get("dialect")
        if dialect:
            block["dialect"] = str(dialect)
    if block.get("dialect") == "sqlite" and isinstance(block.get("datasets"), Mapping):
        # SQLite has no schemas: the sandbox contract drops them there (population.x → x)
        block["datasets"] = {k: {f: v for f, v in ds.items() if f != "schema"} for k, ds in block["datasets"].items()}
    return block


def extract(
    mapping_name: str,
    run_id: str,
    *,
    stager: ObjectStager | None = None,
    still_running: StillRunning | None = None,
    limit: int | None = None,
) -> StepOutput:
    """Carry over what earlier runs staged and never published, then pull what changed since the
    saved watermark and stage it as Parquet (续传、抽取、暂存).

    Batches staged by earlier runs of this mapping that failed after extract come first, oldest
    first (``still_running`` tells which other runs still hold theirs: the DAG asks Airflow).
    The connector SDK's ``run_sync`` stages each batch before it quarantines refused records,
    enters the batch in ``staged_batch`` and advances the watermark, so a crash repeats work and
    never loses a record. ``pulled`` counts rows read from the source now, ``carried_over`` the
    rows carried over. ``limit`` (``hub run --limit``) reads at most that many rows from the
    source; the read position moves past them only, so the next run reads on from there.
    """
    mapping = load_mapping(mapping_name)
    stager = stager or open_stager()
    with _timed() as t:
        carried = claim_pending(get_engine(), mapping, run_id, still_running=still_running)
        connector = make_connector(
            source_block(mapping), name=mapping.department, personal_columns=mapping.spec.personal_source_columns()
        )
        result = run_sync(
            connector, connector_dataset(mapping), source=mapping.department, stager=stager, run_id=run_id,
            mapping=mapping_name, read_kwargs={"limit": limit} if limit is not None else None,
        )  # fmt: skip
        if not result.reconciled:
            raise StepError(
                f"{mapping_name}: read {result.rows_read} != staged {result.rows_staged} + "
                f"quarantined {result.quarantined}"
            )
    new_refs = set(result.staged_refs)
    # a batch staged again now (a read position moved back) is counted as read, not as carried over
    carried = [c for c in carried if c.staged_ref not in new_refs]
    refs = [c.staged_ref for c in carried] + list(result.staged_refs)
    # batches an earlier attempt of this same task staged were read by this run: pulled, not carried over
    resumed = sum(c.rows for c in carried if c.staged_by == run_id)
    carried = [c for c in carried if c.staged_by != run_id]
    counts = Counts(pulled=result.rows_read + resumed, carried_over=sum(c.rows for c in carried),
                    accepted=result.rows_staged + resumed, quarantined=result.quarantined)  # fmt: skip
    record_step(run_id, mapping_name, mapping.department, "extract", counts, t[0])
    if carried:
        # an operator reading the task log should see at once that this run finishes an earlier one's work
        log.warning("%s: carried over %d staged batch(es), %d row(s), not yet published, staged by run(s) %s",
                    mapping_name, len(carried), counts.carried_over, by_run(carried))  # fmt: skip
    if resumed:
        log.info("%s: %d row(s) staged by an earlier attempt of this run taken up again", mapping_name, resumed)
    log.info(
        "%s: pulled %d, staged %d in %d batch(es)",
        mapping_name,
        result.rows_read,
        result.rows_staged,
        len(result.staged_refs),
    )
    return {"mapping": mapping_name, "staged": refs, "sources": refs, "carried_over_from": by_run(carried),
            **vars(counts)}  # fmt: skip


# -- map ------------------------------------------------------------------------------------


def map_batches(
    mapping_name: str, extracted: StepOutput, run_id: str, *, stager: ObjectStager | None = None
) -> StepOutput:
    """Map every staged batch to canonical records (映射), batch by batch.

    Each batch yields a staged ``records`` object and a staged ``rejects`` object (rows that
    cannot become a record); validation quarantines the rejects with its own failures. A batch's
    tombstones (rows deleted at the source) are staged apart and passed on as ``deleted``.
    """
    mapping = load_mapping(mapping_name)
    stager = stager or open_stager()
    refs = _source_refs(extracted.get("staged", []))
    batches: list[dict[str, Any]] = []
    deleted: list[str] = []
    counts = Counts()
    with _timed() as t:
        for ref in refs:
            mapped = mapping.apply(stager.read(ref))
            if not mapped.reconciles:
                raise StepError(f"{mapping_name}: mapping of {ref} does not reconcile: {mapped.counts}")
            if len(mapped.tombstones):
                name = object_name(mapping_name, run_id, "deleted", ref)
                deleted.append(stage_frame(stager, name, mapped.tombstones))
            batches.append(
                {
                    "source": ref,
                    "records": stage_frame(stager, object_name(mapping_name, run_id, "mapped", ref), mapped.records),
                    "rejects": stage_frame(stager, object_name(mapping_name, run_id, "rejects", ref), mapped.rejects),
                    "rows_in": mapped.rows_in,
                    "tombstones": len(mapped.tombstones),
                }
            )
            counts.pulled += mapped.rows_in
            counts.accepted += len(mapped.records)
            counts.quarantined += mapped.rejected
            kill_point("map.batch")
    record_step(run_id, mapping_name, mapping.department, "map", counts, t[0])
    return {"mapping": mapping_name, "batches": batches, "sources": refs, "deleted": deleted, **vars(counts)}


# -- validate -------------------------------------------------------------------------------


@dataclass
class StagedMappedBatch:
    """A mapped batch read back from staging (what ``validation.run.validate_mapped`` takes)."""

    records: pd.DataFrame
    rejects: pd.DataFrame
    tombstones: pd.DataFrame
    rows_in: int
    entity: str


def own_expectations(mapping: Any) -> list[Any]:
    """The expectations a mapping's own attributes add to its suite: ``allowed`` values."""
    return [
        ExpectationSpec("expect_column_values_to_be_in_set",
                        {"column": a.name, "value_set": [str(v) for v in a.allowed]}, "invalid_code_value")
        for a in mapping.spec.attributes if a.allowed
    ]  # fmt: skip


def validate(mapping_name: str, mapped: StepOutput, run_id: str, *, stager: ObjectStager | None = None) -> StepOutput:
    """Run the entity's Great Expectations suite (数据校验); failing rows and mapping rejects go to quarantine.

    The accepted records' lineage (run, mapping file and its hash, suite version, each record's
    key and version) is written with the quarantine, per batch (:mod:`pipeline.lineage`).
    Counts must reconcile (pulled = accepted + quarantined, deletions aside) and a batch fails
    past the mapping's quarantine threshold.
    """
    mapping = load_mapping(mapping_name)
    stager = stager or open_stager()
    pulled = accepted = quarantined = 0
    out_refs: list[str] = []
    #: accepted object -> the extract's staged batch it came from (resolve names the batch's lineage)
    accepted_from: dict[str, str] = {}
    results: list[str] = []
    verdict = None
    with _timed() as t:
        for b in mapped.get("batches", []):
            batch = StagedMappedBatch(
                records=read_frame(stager, b["records"]),
                rejects=read_frame(stager, b["rejects"]),
                tombstones=pd.DataFrame(index=range(int(b["tombstones"]))),
                rows_in=int(b["rows_in"]),
                entity=mapping.entity,
            )
            with session_scope(get_engine()) as session:
                outcome = validate_mapped(
                    batch,
                    mapping_name=mapping_name,
                    threshold=mapping.spec.quarantine_threshold,
                    source_ref={
                        "department": mapping.department,
                        "dataset": mapping.dataset,
                        "staged_ref": b["source"],
                    },
                    run_id=run_id,
                    session=session,
                    build_docs=False,  # rendered once for the whole task below
                    suite=mapping.spec.expectation_suite,
                    extra=own_expectations(mapping),
                    personal=mapping.spec.attribute_kinds(),
                )
                if len(outcome.accepted_df):
                    # which run, mapping content and suite accepted which records: kept past retention
                    record_batch(session, mapping, run_id=run_id, staged_ref=b["source"], records=outcome.accepted_df)
            kill_point("validate.batch")
            if not outcome.passed:
                verdict = outcome  # recorded in the ledger first, then the task fails
            good = outcome.accepted_df
            pulled += outcome.pulled
            accepted += len(good)
            quarantined += outcome.quarantined_count
            results.append(outcome.gx_result_ref)
            if len(good):
                out_refs.append(stage_frame(stager, object_name(mapping_name, run_id, "accepted", b["source"]), good))
                accepted_from[out_refs[-1]] = b["source"]
        if pulled != accepted + quarantined:
            raise StepError(f"{mapping_name}: pulled {pulled} != accepted {accepted} + quarantined {quarantined}")
        docs = build_docs_for(results)
    counts = Counts(pulled=pulled, accepted=accepted, quarantined=quarantined)
    record_step(run_id, mapping_name, mapping.department, "validate", counts, t[0])
    # the task log is where an operator looks first: counts, and the data-quality report one click on
    log.info(
        "%s: validated %d, accepted %d, quarantined %d; Data Docs: %s",
        mapping_name,
        pulled,
        accepted,
        quarantined,
        docs or "not rendered",
    )
    if verdict is not None:
        verdict.raise_for_threshold()
    return {"mapping": mapping_name, "staged": out_refs, "sources": _sources(mapped), "deleted": _deleted(mapped),
            "gx_results": results, "data_docs": docs, "accepted_from": accepted_from, **vars(counts)}  # fmt: skip


# -- resolve --------------------------------------------------------------------------------


def resolve(mapping_name: str, validated: StepOutput, run_id: str, *, stager: ObjectStager | None = None) -> StepOutput:
    """Resolve every identifier against the master index (身份归一): create or link identities.

    When the matching model placed records of a batch, the batch's lineage row names the model's
    version (``accepted_from``: the extract's batch each validated object came from)."""
    from pipeline.identity_step import IDENTITY_KINDS, resolve_frame  # noqa: PLC0415 - DAG parse; ~0.4 s

    mapping = load_mapping(mapping_name)
    if mapping.spec.identity_kind not in IDENTITY_KINDS:  # a configuration error: no retry fixes it
        raise StepError(
            f"{mapping.name}: identity_kind {mapping.spec.identity_kind!r} is not person, enterprise or none"
        )
    stager = stager or open_stager()
    refs = _source_refs(validated.get("staged", []))
    counts = Counts()
    out_refs: list[str] = []
    with _timed() as t:
        for ref in refs:
            df = read_frame(stager, ref)
            with session_scope(get_engine()) as session:
                step = resolve_frame(df, mapping, session=session, run_id=run_id)
                source_ref = validated.get("accepted_from", {}).get(ref)
                if step.model_version and source_ref:
                    set_model_version(session, mapping, run_id=run_id, staged_ref=source_ref,
                                      model_version=step.model_version)  # fmt: skip
                # counted with the links they count: a retry re-resolving this batch adds nothing
                add_lasting(session, run_id, mapping_name, mapping.department, "resolve",
                            identities_created=step.created, identities_linked=step.linked)  # fmt: skip
                kill_point("resolve.before_commit")
            kill_point("resolve.after_commit")
            resolved = step.records
            counts.pulled += len(df)
            counts.accepted += len(resolved)
            counts.identities_created += step.created
            counts.identities_linked += step.linked
            counts.linked_by_code += step.linked_by_code
            counts.linked_by_match += step.linked_by_match
            counts.sent_to_review += step.sent_to_review
            counts.provisional += step.provisional
            out_refs.append(stage_frame(stager, object_name(mapping_name, run_id, "resolved", ref), resolved))
    # the lasting counts are in the ledger already (added batch by batch above): this attempt's own
    # go out in the step's output only
    ledger = replace(counts, **dict.fromkeys(LASTING_IDENTITIES, 0))
    record_step(run_id, mapping_name, mapping.department, "resolve", ledger, t[0], add=LASTING_IDENTITIES)
    return {"mapping": mapping_name, "staged": out_refs, "sources": _sources(validated),
            "deleted": _deleted(validated), **vars(counts)}  # fmt: skip


# -- publish --------------------------------------------------------------------------------


def publish(mapping_name: str, resolved: StepOutput, run_id: str, *, stager: ObjectStager | None = None) -> StepOutput:
    """Issue or change the licences and approval results the records yield (签发/变更).

    The licence service writes each version to the store, then updates the index and emits
    the outbox event in one transaction; issuing unchanged records again changes nothing.
    Then the staged batches the run carried are marked published (a crash between repeats
    work that changes nothing). A publish that fails part-way records what it issued before
    failing; a retry, or the run that carries its batches through again, adds what it issues.
    Then the rows deleted at the source are acted on (:mod:`pipeline.deletions`), before the
    batches are marked published, so a crash between leaves them to the next run (which finds
    the links already ended and adds nothing).
    """
    from e_license_store.service import default_service  # noqa: PLC0415 - DAG parse; ~0.3 s
    from pipeline.deletions import DeletionReport, act_on_deletions  # noqa: PLC0415 - DAG parse (identity, licences)
    from pipeline.publish import publish_frame  # noqa: PLC0415 - task body, lazy for DAG parse (licences ~0.3 s)

    mapping = load_mapping(mapping_name)
    stager = stager or open_stager()
    refs = _source_refs(resolved.get("staged", []))
    counts = Counts()
    issued_now = changed_now = 0
    deletions = DeletionReport()

    def count_indexed(session: Any, versions: Any) -> None:
        # in the transaction that indexes the versions: a killed attempt's licences stay counted
        first = sum(1 for v in versions if v.version == 1)
        revoked = sum(1 for v in versions if v.status == "revoked")
        add_lasting(session, run_id, mapping_name, mapping.department, "publish",
                    licenses_issued=first, licenses_changed=len(versions) - first,
                    licenses_revoked=revoked)  # fmt: skip

    with _timed() as t:
        try:
            service = default_service(create_keys=True)
            service.on_indexed = count_indexed
            for ref in refs:
                df = read_frame(stager, ref)
                issued, changed, skipped = publish_frame(df, mapping, service, run_id=run_id, staged_ref=ref)
                counts.pulled += len(df)
                counts.accepted += len(df) - skipped
                issued_now += issued
                changed_now += changed
                kill_point("publish.batch")
            tombstones = [read_frame(stager, ref) for ref in _deleted(resolved)]
            deletions = act_on_deletions(mapping, tombstones, run_id=run_id, store=service.store)
        except Exception:
            record_step(run_id, mapping_name, mapping.department, "publish", counts, 0.0, add=LASTING)
            raise
        kill_point("publish.before_mark")
        marked = mark_published(get_engine(), mapping_name, _sources(resolved), run_id)
    # licences issued and changed were counted as they were indexed (count_indexed)
    record_step(run_id, mapping_name, mapping.department, "publish", counts, t[0], add=LASTING)
    yields = ", ".join(lic.type_code for lic in mapping.licenses) or "no licence types"
    log.info(
        "%s: %d record(s) published, %d yielding a licence (%s): issued %d, changed %d",
        mapping_name,
        counts.pulled,
        counts.accepted,
        yields,
        issued_now,
        changed_now,
    )
    # ``records``/``yielding_licences``, not pulled/accepted: every record is published, only some yield licences
    return {
        "mapping": mapping_name,
        "batches_published": marked,
        "records": counts.pulled,
        "yielding_licences": counts.accepted,
        "licenses_issued": issued_now,
        "licenses_changed": changed_now,
        "source_deleted": deletions.as_dict(),
    }


# -- push and housekeeping (not per mapping) ------------------------------------------------


PUSH_LEDGER = ("_push", "_push", "push")


def _count_pushed(run_id: str) -> Any:
    """Adds a round's deliveries to the push step's ledger row, in the round's own transaction."""

    def count(session: Any, report: Any) -> None:
        mapping, department, step = PUSH_LEDGER
        row = session.get(PipelineStep, (run_id, mapping, step))
        if row is None:
            row = PipelineStep(run_id=run_id, mapping=mapping, step=step, department=department, notices_pushed=0)
            session.add(row)
        row.notices_pushed = (row.notices_pushed or 0) + int(report.delivered)

    return count


def push(run_id: str, *, max_rounds: int = 20) -> StepOutput:
    """Deliver outbox events to subscribed departments (推送) until nothing is ready.

    Each round's deliveries are counted in the ledger in the transaction that records them, so
    an attempt killed after some rounds leaves their count, and the retry adds its own."""
    from recognition.delivery import run_once  # noqa: PLC0415 - task body, lazy for DAG parse (delivery ~0.7 s)

    engine = get_engine()
    total: dict[str, int] = {"attempted": 0, "delivered": 0, "failed": 0, "dead": 0, "created": 0}
    with _timed() as t:
        for _ in range(max_rounds):
            report = run_once(engine, on_recorded=_count_pushed(run_id))
            for key in total:
                total[key] += int(getattr(report, key))
            if report.attempted == 0 and report.created == 0:
                break
    record_step(run_id, *PUSH_LEDGER, Counts(), t[0], add=("notices_pushed",))
    return total
