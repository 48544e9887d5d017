"""Housekeeping task bodies (日常维护): re-linking, licence expiry, re-delivery, outbox archiving,
reconciliation, retention purge, audit log archive."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select

from hub.db import get_engine, session_scope
from hub.killpoints import kill_point
from hub.models import QuarantineRecord, local_today, utcnow
from hub.settings import get_settings
from pipeline.staging import FileStager, open_stager, purge_older_than
from pipeline.steps import push
from pipeline.tables import PipelineStep
from recognition.config import RecognitionSettings

# Each task body imports the rooms only it needs inside the function (`noqa: PLC0415 - DAG parse`): the DAG
# file imports this module at parse, and identity, licences, delivery and cases cost 0.2-0.7 s each.
log = logging.getLogger(__name__)


class ReconciliationFailed(AssertionError):
    """A run's ledger and the quarantine table disagree (对账不平)."""


def relink(run_id: str) -> dict[str, Any]:
    """Link records filed under an old code whose enterprise arrived later; move their licences (补链);
    place relations (a person's employer) named by an old code the cross-walk has learnt since."""
    from identity.relations import resolve_pending  # noqa: PLC0415 - task body, lazy for DAG parse (identity ~0.2 s)
    from identity.resolve import resolve_codes  # noqa: PLC0415 - task body, lazy for DAG parse (identity ~0.2 s)
    from pipeline.relink import relink_legacy_holders  # noqa: PLC0415 - lazy for DAG parse

    report = relink_legacy_holders().as_dict()
    with session_scope(get_engine()) as session:
        report["relations_placed"] = resolve_pending(session, resolve_codes)
    return report


def train_matching_model(run_id: str) -> dict[str, Any]:
    """Retrain the person and the enterprise matching models from the hub's own labels (records
    sharing a valid code, stewards' decisions), thresholds chosen on held-out labels, a new model
    file version each; links an older version placed that the new one would place elsewhere go to
    review (reason ``relink``). The person model's report at the top, the enterprise one's under
    ``enterprise``."""
    from identity.matching_maintenance import retrain  # noqa: PLC0415 - task body, lazy for DAG parse (splink ~1 s)

    reports: dict[str, dict[str, Any]] = {}
    for kind in ("person", "enterprise"):
        with session_scope(get_engine()) as session:
            report = retrain(session, entity=kind)
        if report is None:
            reports[kind] = {"trained": False, "why": f"the master index holds no {kind}"}
            continue
        report.pop("threshold_grid", None)
        reports[kind] = {"trained": True, **report}
    return {"run_id": run_id, **reports["person"], "enterprise": reports["enterprise"]}


def expire_licenses(run_id: str, today: dt.date | None = None) -> dict[str, Any]:
    """Mark expired every licence whose validity ended (证照到期)."""
    from e_license_store.service import default_service  # noqa: PLC0415 - task body, lazy for DAG parse (~0.3 s)

    expired = default_service(create_keys=True).expire_due(today or local_today())
    return {"expired": len(expired)}


def redeliver(run_id: str) -> dict[str, Any]:
    """Retry deliveries that failed and are due again (重新投递); dead letters stay for operators."""
    return push(run_id)


def archive_outbox(run_id: str, older_than: dt.datetime | None = None) -> dict[str, Any]:
    """Archive delivered outbox events past ``HUB_OUTBOX_ARCHIVE_DAYS`` with their deliveries
    (发件箱归档): compressed JSON Lines under ``$HUB_HOME/archive/outbox`` and a hash-chained
    manifest; nothing leaves the outbox unarchived."""
    from recognition.archive import archive_outbox as archive  # noqa: PLC0415 - task body, lazy for DAG parse (~0.5 s)

    limit = older_than or utcnow() - dt.timedelta(days=RecognitionSettings().outbox_archive_days)
    directory = get_settings().home / "archive" / "outbox"
    return archive(get_engine(), older_than=limit, directory=directory).as_dict()


def reconcile(run_id: str, since: dt.timedelta = dt.timedelta(days=2)) -> dict[str, Any]:
    """Re-check recent runs: pulled = accepted + quarantined, and the quarantine table agrees.

    Raises :class:`ReconciliationFailed` naming the first run and mapping that does not add up.
    """
    cutoff = dt.datetime.now(dt.UTC) - since
    checked = 0
    with session_scope(get_engine()) as session:
        steps = session.scalars(
            select(PipelineStep).where(
                PipelineStep.step == "validate",
                PipelineStep.finished_at >= cutoff,
                PipelineStep.superseded_by.is_(None),
            )  # a later run re-counted those rows
        ).all()
        for s in steps:
            if s.pulled != s.accepted + s.quarantined:
                raise ReconciliationFailed(
                    f"{s.mapping} run {s.run_id}: pulled {s.pulled} != "
                    f"accepted {s.accepted} + quarantined {s.quarantined}"
                )
            extract = session.get(PipelineStep, (s.run_id, s.mapping, "extract"))
            stored = (
                session.scalar(
                    select(func.count(QuarantineRecord.id)).where(
                        QuarantineRecord.run_id == s.run_id, QuarantineRecord.source == s.department
                    )
                )
                or 0
            )
            expected = s.quarantined + (extract.quarantined if extract else 0)
            if stored < expected:
                raise ReconciliationFailed(
                    f"{s.mapping} run {s.run_id}: ledger says {expected} quarantined, table holds {stored}"
                )
            checked += 1
    return {"runs_checked": checked}


def purge(run_id: str, older_than: dt.datetime | None = None) -> dict[str, Any]:
    """Purge staged Parquet, quarantine rows and GX results past ``HUB_RETENTION_DAYS`` (个人信息清理)."""
    from validation.retention import cutoff, pending_staged_refs, warn_kept  # noqa: PLC0415 - DAG parse
    from validation.retention import purge as purge_validation  # noqa: PLC0415 - task body, lazy for DAG parse

    limit = older_than or cutoff()
    with session_scope(get_engine()) as session:
        report = purge_validation(session, limit).as_dict()
        pending = pending_staged_refs(session)  # batches no run has carried through yet: kept
    stager = open_stager()
    if not isinstance(stager, FileStager):  # the file backend lives under $HUB_HOME/staging, purged above
        kept: list[str] = []
        report["staged_objects"] = purge_older_than(stager, limit, keep=pending, kept=kept)
        for ref in kept:
            warn_kept(ref)
        report["staged_kept"] += len(kept)
    return report


def archive_audit(run_id: str, before: dt.datetime | None = None) -> dict[str, Any]:
    """Archive audit entries older than ``HUB_AUDIT_RETENTION_DAYS`` (at least 183) to gzip JSON-lines files
    with a manifest, then remove them from the table; the chain stays verifiable (审计日志归档)."""
    from recognition import audit_archive  # noqa: PLC0415 - task body, lazy for DAG parse

    config = RecognitionSettings()
    cutoff = before or audit_archive.retention_cutoff(config.audit_retention_days)
    directory = audit_archive.archive_dir(config, get_settings().home)
    return audit_archive.archive(get_engine(), directory, before=cutoff).as_dict()


def supervise(run_id: str, today: dt.date | None = None) -> dict[str, Any]:
    """Bring every running case clock up to today and light it (电子监察): yellow and red changes are
    logged and announced to the supervision office, red stages escalated (督办); concluded cases still
    missing a promised licence looked at again, and flagged past their grace."""
    from cases.conclusion import check_missing  # noqa: PLC0415 - task body, lazy for DAG parse (cases ~0.15 s)
    from cases.supervision import recompute_lights  # noqa: PLC0415 - task body, lazy for DAG parse (cases ~0.15 s)

    with session_scope(get_engine()) as session:
        done = recompute_lights(session, today=today or local_today())
        checked = check_missing(session)
    kill_point("supervision.committed")  # a re-run finds every clock lit as of today: it writes nothing
    log.info(
        "supervision: %d running clocks, %d updated, %d changes of light", done.running, done.updated, done.changes
    )
    if checked.looked_at:
        log.info("supervision: %d conclusions missing a licence, %d now complete, %d flagged",
                 checked.looked_at, checked.completed, checked.flagged)  # fmt: skip
    return {"running": done.running, "updated": done.updated, "changes": done.changes}
