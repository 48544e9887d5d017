"""Retention of copies holding personal data (个人信息留存期限): quarantine rows, staged Parquet and
GX validation results are purged once older than ``HUB_RETENTION_DAYS``.

Age is the quarantine row's ``created_at`` and, for files, their modification time. The
housekeeping DAG calls :func:`purge`; ``hub validation purge`` does the same by hand.

A staged batch the pipeline has not yet carried through (``staged_batch.status = 'staged'``:
its run failed after extract, the next run carries it) is the only copy of its rows once the
read position moved past them: it is never purged, however old. Each one kept past retention
is logged by name and counted (``staged_kept``), for an operator to see why it is still there.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.models import QuarantineRecord, StagedBatch
from hub.settings import get_settings
from validation.gxrun import rebuild_data_docs
from validation.tables import QuarantineReason

log = logging.getLogger(__name__)

STAGED_SUFFIXES = (".parquet", ".parquet.tmp", ".arrow")


@dataclass(frozen=True)
class PurgeReport:
    quarantine_rows: int
    staged_files: int
    gx_results: int
    #: staged batches past retention kept because no run has carried them through yet
    staged_kept: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "quarantine_rows": self.quarantine_rows,
            "staged_files": self.staged_files,
            "gx_results": self.gx_results,
            "staged_kept": self.staged_kept,
        }


def pending_staged_refs(session: Session) -> set[str]:
    """References of staged batches not yet carried through (to keep, whatever their age)."""
    return set(session.scalars(select(StagedBatch.staged_ref).where(StagedBatch.status == "staged")))


def _local_path(ref: str) -> Path:
    return Path(urlparse(ref).path) if ref.startswith("file://") else Path(ref)


def warn_kept(ref: str) -> None:
    log.warning("retention: staged batch %s is past retention but not yet carried through; kept (the next run "
                "of its mapping carries it; `hub connectors state` lists it)", ref)  # fmt: skip


def cutoff(retention_days: int | None = None, now: dt.datetime | None = None) -> dt.datetime:
    """The instant before which copies are purged."""
    days = get_settings().retention_days if retention_days is None else retention_days
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def _purge_files(
    root: Path,
    older_than: dt.datetime,
    suffixes: tuple[str, ...],
    keep: Collection[Path] = (),
    kept: list[Path] | None = None,
) -> int:
    if not root.exists():
        return 0
    limit = older_than.timestamp()
    removed = 0
    for path in root.rglob("*"):
        if path.is_file() and path.name.endswith(suffixes) and path.stat().st_mtime < limit:
            if path.resolve() in keep:
                if kept is not None:
                    kept.append(path)
                continue
            path.unlink()
            removed += 1
    # Leave no empty run/partition folders behind.
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        p = Path(dirpath)
        if p != root and not any(p.iterdir()):
            p.rmdir()
    return removed


def purge_quarantine(session: Session, older_than: dt.datetime) -> int:
    """Delete quarantine rows (and their reasons) created before ``older_than``."""
    old = select(QuarantineRecord.id).where(QuarantineRecord.created_at < older_than)
    session.execute(delete(QuarantineReason).where(QuarantineReason.quarantine_id.in_(old)))
    result = session.execute(delete(QuarantineRecord).where(QuarantineRecord.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def purge(session: Session, older_than: dt.datetime | None = None) -> PurgeReport:
    """Purge quarantine rows, staged Parquet under ``$HUB_HOME/staging`` and GX validation results
    under ``$HUB_HOME/gx`` older than ``older_than`` (default: now − ``HUB_RETENTION_DAYS``).

    Database deletions join the caller's unit of work; files are removed at once. Staged
    batches not yet carried through are kept (see the module's docstring).
    """
    limit = older_than or cutoff()
    # SQLite keeps naive UTC; comparing in UTC is right on both databases.
    limit = limit.replace(tzinfo=dt.UTC) if limit.tzinfo is None else limit.astimezone(dt.UTC)
    home = get_settings().home
    rows = purge_quarantine(session, limit)
    pending = {_local_path(ref).resolve() for ref in pending_staged_refs(session)}
    kept: list[Path] = []
    staged = _purge_files(home / "staging", limit, STAGED_SUFFIXES, keep=pending, kept=kept)
    for path in kept:
        warn_kept(f"file://{path}")
    gx_results = _purge_files(home / "gx" / "uncommitted" / "validations", limit, (".json",))
    gx_results_docs = home / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations"
    _purge_files(gx_results_docs, limit, (".html",))
    if gx_results:
        rebuild_data_docs()  # the index must not link to purged results
    return PurgeReport(quarantine_rows=rows, staged_files=staged, gx_results=gx_results, staged_kept=len(kept))
