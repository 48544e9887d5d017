"""The outbox is archived, never silently pruned (发件箱归档).

An outbox event moves out of the database once it is older than ``HUB_OUTBOX_ARCHIVE_DAYS``
(default 180), the fan-out has passed it and every delivery of it is finished (delivered or
skipped; none pending or dead-lettered). It goes with its deliveries to a gzip-compressed JSON
Lines file under ``$HUB_HOME/archive/outbox/`` — one line per event, its deliveries inside —
with personal data masked as for a subscriber without ``personal:read`` (the archive outlives
``HUB_RETENTION_DAYS``; the licences themselves stay in the store). ``manifest.jsonl`` beside
the files lists each file with its SHA-256, counts and event id range; every manifest line
carries the hash of the line before, so :func:`verify_archive` finds a file or line that was
altered, removed or reordered.

Order of writes: the file (written aside, flushed, renamed), then its manifest line (appended,
flushed), then the rows are deleted in one transaction. A crash before the delete leaves the rows
in the database and the next run archives them again: an event id may then be in two files
(the later one counts).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.masking import mask_resident_id
from hub.models import OutboxEvent, utcnow
from recognition.delivery import FANOUT_CURSOR, UNFINISHED, mask_payload
from recognition.holders import is_resident_id
from recognition.tables import Cursor, Delivery

MANIFEST = "manifest.jsonl"
GENESIS = "0" * 64
#: Ids per ``IN (…)`` list (SQLite bounds the parameters of one statement).
ID_CHUNK = 500


@dataclass
class ArchiveReport:
    files: int = 0
    events: int = 0
    deliveries: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield list(ids[start : start + ID_CHUNK])


def _record(event: OutboxEvent, deliveries: list[Delivery]) -> dict[str, Any]:
    """One archived event: masked payload and holder, its deliveries (without the ordering key)."""
    payload = mask_payload(dict(event.payload or {}))
    person = (payload.get("holder_kind") or payload.get("entity_kind")) == "person"
    holder = event.holder_code
    if holder is not None and (person or is_resident_id(holder)):
        holder = mask_resident_id(holder)
    return {
        "id": event.id, "event_type": event.event_type, "subject": event.subject,
        "idempotency_key": event.idempotency_key, "holder": holder, "region_code": event.region_code,
        "license_type_code": event.license_type_code, "created_at": _iso(event.created_at), "payload": payload,
        "deliveries": [
            {"id": d.id, "subscription_id": d.subscription_id, "status": d.status, "attempts": d.attempts,
             "last_error": d.last_error, "created_at": _iso(d.created_at), "delivered_at": _iso(d.delivered_at)}
            for d in sorted(deliveries, key=lambda d: d.id)
        ],
    }  # fmt: skip


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _last_hash(directory: Path) -> str:
    manifest = directory / MANIFEST
    if not manifest.exists():
        return GENESIS
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return str(json.loads(lines[-1])["hash"]) if lines else GENESIS


def _line_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _write_file(directory: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write one archive file and append its manifest line; returns the line."""
    first, last = records[0]["id"], records[-1]["id"]
    name = f"outbox-{first:012d}-{last:012d}-{utcnow():%Y%m%dT%H%M%S}.jsonl.gz"
    lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    data = gzip.compress(lines.encode("utf-8"), mtime=0)
    _fsync_write(directory / name, data)
    entry: dict[str, Any] = {
        "file": name, "sha256": hashlib.sha256(data).hexdigest(), "events": len(records),
        "deliveries": sum(len(r["deliveries"]) for r in records), "first_event_id": first, "last_event_id": last,
        "archived_at": _iso(utcnow()), "prev": _last_hash(directory),
    }  # fmt: skip
    entry["hash"] = _line_hash(entry)
    with open(directory / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def _archivable(session: Session, older_than: dt.datetime, after: int, limit: int) -> tuple[int, list[OutboxEvent]]:
    """The next ``limit`` old, fanned-out events after ``after``: the last id looked at (``after`` when
    none is left) and those of them without an open delivery."""
    cursor = session.get(Cursor, FANOUT_CURSOR)
    fanned_up_to = int(cursor.value) if cursor is not None else 0
    events = list(
        session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.id > after, OutboxEvent.id <= fanned_up_to, OutboxEvent.created_at < older_than)
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )
    if not events:
        return after, []
    # open deliveries are few and indexed by status: find them rather than test every event
    open_ids = set(
        session.scalars(
            select(Delivery.event_id).where(
                Delivery.status.in_(UNFINISHED), Delivery.event_id.between(events[0].id, events[-1].id)
            )
        )
    )
    return events[-1].id, [e for e in events if e.id not in open_ids]


def archive_outbox(
    engine: Engine, *, older_than: dt.datetime, directory: Path, batch_size: int = 5000
) -> ArchiveReport:
    """Move finished events older than ``older_than`` and their deliveries to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    report = ArchiveReport()
    after = 0
    while True:
        with session_scope(engine) as session:
            scanned_to, events = _archivable(session, older_than, after, batch_size)
            if scanned_to == after:
                return report
            after = scanned_to
            if not events:
                continue  # every event looked at still has an open delivery
            ids = [e.id for e in events]
            deliveries: dict[int, list[Delivery]] = {i: [] for i in ids}
            for chunk in _chunks(ids):
                for d in session.scalars(select(Delivery).where(Delivery.event_id.in_(chunk))):
                    deliveries[d.event_id].append(d)
            entry = _write_file(directory, [_record(e, deliveries[e.id]) for e in events])
            for chunk in _chunks(ids):
                session.execute(delete(Delivery).where(Delivery.event_id.in_(chunk)))
                session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(chunk)))
        report.files += 1
        report.events += int(entry["events"])
        report.deliveries += int(entry["deliveries"])


def verify_archive(directory: Path) -> list[str]:
    """Problems with the archive under ``directory`` (empty when every file and line is intact)."""
    manifest = directory / MANIFEST
    if not manifest.exists():
        return []
    problems: list[str] = []
    prev = GENESIS
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        entry = json.loads(line)
        if entry.get("prev") != prev or entry.get("hash") != _line_hash(entry):
            problems.append(f"{MANIFEST} line {n}: chain broken (altered, removed or reordered)")
        prev = str(entry.get("hash"))
        path = directory / str(entry["file"])
        if not path.exists():
            problems.append(f"{entry['file']}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['file']}: SHA-256 differs from the manifest")
    return problems


def read_archive(directory: Path) -> Iterator[dict[str, Any]]:
    """Every archived event, file by file in manifest order."""
    manifest = directory / MANIFEST
    if not manifest.exists():
        return
    for line in manifest.read_text(encoding="utf-8").splitlines():
        with gzip.open(directory / json.loads(line)["file"], "rt", encoding="utf-8") as fh:
            for record in fh:
                yield json.loads(record)
