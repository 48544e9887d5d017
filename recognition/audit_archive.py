"""Audit log retention and archive (审计日志留存与归档).

Entries stay in the database for ``HUB_AUDIT_RETENTION_DAYS`` (190 by default, never fewer than
183: China's Cybersecurity Law, art. 21, keeps network logs no less than six months). Then the
housekeeping DAG (or ``hub audit archive``) moves them, oldest first and in chunks, to archive
files under ``HUB_AUDIT_ARCHIVE_DIR`` (``$HUB_HOME/archive/audit``). Per chunk, in this order:

1. read the next run of entries older than the cut-off, contiguous from the last archived one,
   and check that they chain onto the last archive's head and onto each other: a broken chain
   is never archived (``hub audit verify`` says where it broke);
2. write them as JSON lines, gzip, to ``audit-<first>-<last>.jsonl.gz`` (a temporary name,
   flushed to disk, then renamed) and a manifest beside it (``….manifest.json``: range, count,
   the chain hash before the first and of the last entry, the file's SHA-256 and size);
3. in one transaction, add the chunk's ``recognition_audit_archive`` row and delete its entries
   (the database refuses to delete an entry no such row covers), then commit.

A crash between 2 and 3 leaves a file that no row names; the next run removes it and writes
that range again. The rows are the record: ``hub audit verify`` starts from the last row's
chain head, checks that the rows chain onto each other and that every file's SHA-256 is the
one recorded, and with ``--deep`` re-walks the chain through every archived entry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gzip
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.models import utcnow
from recognition import audit
from recognition.config import MIN_AUDIT_RETENTION_DAYS, RecognitionSettings
from recognition.tables import AuditArchive, AuditEntry

log = logging.getLogger(__name__)

CHUNK = 10_000  # entries per file and transaction: on SQLite the API's audit writers wait for one chunk's commit
_ENTRY: Table = AuditEntry.__table__  # type: ignore[assignment]
_ARCHIVE: Table = AuditArchive.__table__  # type: ignore[assignment]
_FIELDS = ("seq", "at", "consumer", "key_id", "action", "resource", "subject", "fields", "purpose", "outcome",
           "detail", "prev_hash", "hash")  # fmt: skip


class ArchiveRefused(RuntimeError):
    """Archiving would lose or hide something (a broken chain, a cut-off inside the retention period)."""


@dataclass
class ArchiveReport:
    files: list[str] = field(default_factory=list)
    entries: int = 0
    through_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "entries": self.entries, "through_seq": self.through_seq}


def archive_dir(config: RecognitionSettings, home: Path) -> Path:
    return config.audit_archive_dir or home / "archive" / "audit"


def retention_cutoff(retention_days: int, now: dt.datetime | None = None) -> dt.datetime:
    """Entries written before this moment are past retention."""
    if retention_days < MIN_AUDIT_RETENTION_DAYS:
        raise ArchiveRefused(f"retention of {retention_days} days is below {MIN_AUDIT_RETENTION_DAYS} (six months)")
    return (now or utcnow()) - dt.timedelta(days=retention_days)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _line(row: AuditEntry) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in _FIELDS}
    out["at"] = _utc(row.at).isoformat(timespec="microseconds")
    out["fields"], out["detail"] = list(row.fields or []), dict(row.detail or {})
    return out


def _entry_hash(prev: str, entry: dict[str, Any]) -> str:
    return audit.entry_hash(
        prev, int(entry["seq"]), dt.datetime.fromisoformat(entry["at"]), entry["consumer"], entry["key_id"],
        entry["action"], entry["resource"], entry["subject"], list(entry["fields"]), entry["purpose"],
        entry["outcome"], dict(entry["detail"]),
    )  # fmt: skip


def _last_archive(session: Session | Any) -> tuple[int, str]:
    row = session.execute(
        select(_ARCHIVE.c.last_seq, _ARCHIVE.c.last_hash).order_by(_ARCHIVE.c.last_seq.desc()).limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, audit.GENESIS)


def _next_chunk(session: Session, after: int, before: dt.datetime, chunk: int) -> list[dict[str, Any]]:
    """The entries after ``after``, in order, up to the first one not older than ``before``."""
    rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(chunk))
    out = []
    for row in rows:
        if _utc(row.at) >= before:
            break
        out.append(_line(row))
    return out


def _check_chain(entries: list[dict[str, Any]], seq: int, prev: str) -> None:
    for entry in entries:
        if entry["seq"] != seq + 1 or entry["prev_hash"] != prev or _entry_hash(prev, entry) != entry["hash"]:
            raise ArchiveRefused(f"audit entry {seq + 1} does not chain on (run hub audit verify); nothing archived")
        seq, prev = entry["seq"], entry["hash"]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(directory: Path, name: str, entries: list[dict[str, Any]]) -> tuple[str, int]:
    """Write the archive file durably; returns its SHA-256 and size."""
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as raw:
        # mtime 0 and no file name in the header: the same entries give the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for entry in entries:
                gz.write(json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, directory / name)
    _fsync_dir(directory)
    return file_sha256(directory / name), (directory / name).stat().st_size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """One archiver at a time per archive directory (the DAG runs one at a time too)."""
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(directory: Path, archived_through: int) -> None:
    """Files of a run that crashed before its commit: their range starts after the last archived entry."""
    for path in directory.glob("audit-*"):
        try:
            first = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if first > archived_through:
            log.warning("removing %s: written by an archive run that did not commit", path.name)
            path.unlink()
    for tmp in directory.glob(".audit-*.tmp"):
        tmp.unlink()


def archive(engine: Engine, directory: Path, *, before: dt.datetime, chunk: int = CHUNK) -> ArchiveReport:
    """Move the entries written before ``before`` to archive files (see the module's doc for the order)."""
    directory.mkdir(parents=True, exist_ok=True)
    report = ArchiveReport()
    with _directory_lock(directory):
        with session_scope(engine) as session:
            _remove_leftovers(directory, _last_archive(session)[0])
        while True:
            with session_scope(engine) as session:
                last_seq, last_hash = _last_archive(session)
                entries = _next_chunk(session, last_seq, before, chunk)
            if not entries:
                break
            _check_chain(entries, last_seq, last_hash)
            first, last = entries[0], entries[-1]
            name = f"audit-{first['seq']:012d}-{last['seq']:012d}.jsonl.gz"
            sha, size = _write_file(directory, name, entries)
            record = {
                "first_seq": first["seq"], "last_seq": last["seq"], "entries": len(entries),
                "first_prev_hash": first["prev_hash"], "last_hash": last["hash"],
                "first_at": dt.datetime.fromisoformat(first["at"]), "last_at": dt.datetime.fromisoformat(last["at"]),
                "file_name": name, "file_sha256": sha, "file_bytes": size, "archived_at": utcnow(),
            }  # fmt: skip
            manifest = {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in record.items()}
            (directory / name.replace(".jsonl.gz", ".manifest.json")).write_text(json.dumps(manifest, indent=1) + "\n")
            # the audit writers' lock on SQLite: they wait for this commit instead of SQLite's sleeping busy handler
            with audit._sqlite_writer_lock(engine), engine.begin() as conn:
                if _last_archive(conn) != (last_seq, last_hash):
                    raise ArchiveRefused("another archive run got there first")
                conn.execute(_ARCHIVE.insert().values(**record))
                conn.execute(_ENTRY.delete().where(_ENTRY.c.seq >= first["seq"], _ENTRY.c.seq <= last["seq"]))
            report.files.append(name)
            report.entries += len(entries)
            report.through_seq = last["seq"]
            log.info("archived audit entries %d..%d to %s", first["seq"], last["seq"], name)
    return report


def _deep_problems(path: Path, row: AuditArchive) -> list[str]:
    problems: list[str] = []
    seq, prev, count = row.first_seq - 1, row.first_prev_hash, 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for text in fh:
            entry = json.loads(text)
            count += 1
            if entry["seq"] != seq + 1 or entry["prev_hash"] != prev or _entry_hash(prev, entry) != entry["hash"]:
                problems.append(f"archive {row.file_name}: entry {entry['seq']} does not chain on")
                break
            seq, prev = entry["seq"], entry["hash"]
    if not problems and (count != row.entries or seq != row.last_seq or prev != row.last_hash):
        problems.append(f"archive {row.file_name}: holds entries up to {seq}, its record says {row.last_seq}")
    return problems


def check(session: Session, directory: Path, *, deep: bool = False) -> tuple[int, int, str, list[str]]:
    """The archives as recorded: (entries archived, last archived seq, its hash, problems found)."""
    problems: list[str] = []
    seq, prev, archived = 0, audit.GENESIS, 0
    for row in session.scalars(select(AuditArchive).order_by(AuditArchive.first_seq)):
        if row.first_seq != seq + 1 or row.first_prev_hash != prev:
            problems.append(f"archive {row.file_name} does not follow on from entry {seq}")
        path = directory / row.file_name
        if not path.is_file():
            problems.append(f"archive {row.file_name} missing from {directory}")
        elif path.stat().st_size != row.file_bytes or file_sha256(path) != row.file_sha256:
            problems.append(f"archive {row.file_name} altered (SHA-256 does not match its record)")
        elif deep:
            problems.extend(_deep_problems(path, row))
        seq, prev, archived = row.last_seq, row.last_hash, archived + row.entries
    return archived, seq, prev, problems
