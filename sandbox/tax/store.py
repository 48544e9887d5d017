"""The tax registry's own storage (税务登记库): a SQLite file behind the SOAP service.

The SOAP service, the test process and ``hub sandbox`` mutations all reach the same file,
so changes made by a test are visible through the protocol at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

TAXPAYER_FIELDS = (
    "taxpayer_code",
    "taxpayer_name",
    "legal_rep_id",
    "legal_rep_name",
    "reg_address",
    "tax_authority_code",
    "tax_authority_name",
    "registration_date",
    "taxpayer_status",
    "credit_rating",
    "updated_at",
)
NOTICE_FIELDS = (
    "idempotency_key",
    "event_type",
    "license_id",
    "license_type_code",
    "holder_code",
    "holder_name",
    "status",
    "issued_at",
    "payload_json",
    "signature",
)

_DDL = """
CREATE TABLE IF NOT EXISTS taxpayers (
    taxpayer_code TEXT PRIMARY KEY,
    taxpayer_name TEXT NOT NULL,
    legal_rep_id TEXT,
    legal_rep_name TEXT,
    reg_address TEXT,
    tax_authority_code TEXT,
    tax_authority_name TEXT,
    registration_date TEXT,
    taxpayer_status TEXT NOT NULL,
    credit_rating TEXT,
    updated_at TEXT NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS taxpayers_changed ON taxpayers (updated_us, taxpayer_code);
CREATE TABLE IF NOT EXISTS case_steps (
    step_key TEXT PRIMARY KEY,
    case_code TEXT NOT NULL,
    step_no INTEGER NOT NULL,
    step_code TEXT NOT NULL,
    step_time TEXT NOT NULL,
    opinion TEXT,
    missing_json TEXT,
    updated_at TEXT NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS case_steps_changed ON case_steps (updated_us, step_key);
CREATE TABLE IF NOT EXISTS notices (
    idempotency_key TEXT PRIMARY KEY,
    notice_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    notice_json TEXT NOT NULL
);
"""


def local_aware(value: dt.datetime) -> dt.datetime:
    """A timestamp in Asia/Shanghai; naive values are taken as local time already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(LOCAL_TZ)


def _micros(value: dt.datetime) -> int:
    return int(local_aware(value).timestamp() * 1_000_000)


def encode_page_token(updated_us: int, code: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_us, code]).encode()).decode()


def decode_page_token(token: str) -> tuple[int, str]:
    try:
        us, code = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(us), str(code)
    except Exception as exc:
        raise ValueError(f"bad page token: {token!r}") from exc


class TaxStore:
    """Taxpayer registrations and received licence notices in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        # notices arrive from many delivery threads at once, each a small write transaction: on a busy
        # machine the queue behind SQLite's one writer can outlast 30 s, so writers wait longer, and the
        # WAL is synced at checkpoints rather than on every commit (a killed process loses nothing; only
        # a power cut could lose the last commits of this simulated department)
        conn = sqlite3.connect(self.path, timeout=120)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def create(self) -> None:
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_DDL)

    def load(self, taxpayers: pd.DataFrame) -> int:
        """Replace all taxpayers with ``taxpayers`` (naive local ``updated_at``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.create()
        rows = [self._row(r) for r in taxpayers.to_dict("records")]
        with self.connect() as conn:
            conn.execute("DELETE FROM taxpayers")
            conn.execute("DELETE FROM notices")
            conn.executemany(f"INSERT INTO taxpayers VALUES ({','.join('?' * 12)})", rows)
        return len(rows)

    @staticmethod
    def _row(r: dict[str, Any]) -> tuple[Any, ...]:
        updated = pd.Timestamp(r["updated_at"]).to_pydatetime()
        reg = r.get("registration_date")
        reg_s = None if reg is None or pd.isna(reg) else pd.Timestamp(reg).date().isoformat()
        values = [
            None if (v is None or (isinstance(v, float) and pd.isna(v))) else v
            for v in (r.get(f) for f in TAXPAYER_FIELDS)
        ]
        values[7] = reg_s
        values[10] = local_aware(updated).isoformat()
        return (*values, _micros(updated))

    def upsert(self, record: dict[str, Any]) -> None:
        with self.connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO taxpayers VALUES ({','.join('?' * 12)})", self._row(record))

    def update_status(self, code: str, status: str, when: dt.datetime) -> bool:
        with self.connect() as conn:
            cur = conn.execute(
                "UPDATE taxpayers SET taxpayer_status = ?, updated_at = ?, updated_us = ? WHERE taxpayer_code = ?",
                (status, local_aware(when).isoformat(), _micros(when), code),
            )
            return cur.rowcount > 0

    def count(self) -> int:
        with self.connect() as conn:
            return int(conn.execute("SELECT count(*) FROM taxpayers").fetchone()[0])

    def get(self, code: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM taxpayers WHERE taxpayer_code = ?", (code,)).fetchone()
        return _public(row) if row else None

    def changed_since(
        self, since: dt.datetime | None, page_token: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of taxpayers with ``updated_at >= since``, ordered by (updated_at, taxpayer_code)."""
        page_size = max(1, min(int(page_size or 100), 1000))
        since_us = _micros(since) if since else 0
        after = decode_page_token(page_token) if page_token else (-1, "")
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM taxpayers WHERE updated_us >= ? AND (updated_us, taxpayer_code) > (?, ?) "
                "ORDER BY updated_us, taxpayer_code LIMIT ?",
                (since_us, after[0], after[1], page_size + 1),
            ).fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_page_token(rows[-1]["updated_us"], rows[-1]["taxpayer_code"]) if more else None
        return [_public(r) for r in rows], token

    def add_case_steps(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Steps of the tax approval system (涉税审批环节): ``step_key``, ``case_code``, ``step_no``,
        ``step_code``, ``step_time``, ``opinion``, ``missing_json``, ``updated_at`` (aware times)."""
        self.create()
        with self.connect() as conn:
            conn.executemany(
                "INSERT INTO case_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["step_key"], r["case_code"], int(r["step_no"]), r["step_code"],
                  local_aware(r["step_time"]).isoformat(), r.get("opinion"), r.get("missing_json"),
                  local_aware(r["updated_at"]).isoformat(), _micros(r["updated_at"])) for r in rows],
            )  # fmt: skip

    def case_steps_since(
        self, since: dt.datetime | None, page_token: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of case steps entered at or after ``since``, ordered by (updated_at, step_key)."""
        page_size = max(1, min(int(page_size or 100), 1000))
        since_us = _micros(since) if since else 0
        after = decode_page_token(page_token) if page_token else (-1, "")
        self.create()
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM case_steps WHERE updated_us >= ? AND (updated_us, step_key) > (?, ?) "
                "ORDER BY updated_us, step_key LIMIT ?",
                (since_us, after[0], after[1], page_size + 1),
            ).fetchall()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_page_token(rows[-1]["updated_us"], rows[-1]["step_key"]) if more else None
        out = []
        for r in rows:
            step = {k: r[k] for k in ("step_key", "case_code", "step_no", "step_code", "opinion", "missing_json")}
            step["step_time"] = dt.datetime.fromisoformat(r["step_time"])
            step["updated_at"] = dt.datetime.fromisoformat(r["updated_at"])
            out.append(step)
        return out, token

    def receive_notice(self, notice: dict[str, Any]) -> tuple[str, bool]:
        """Store a licence notice once per idempotency key; returns (notice_id, was_duplicate)."""
        key = str(notice.get("idempotency_key") or "")
        if not key:
            raise ValueError("idempotency_key is required")
        with self.connect() as conn:
            row = conn.execute("SELECT notice_id FROM notices WHERE idempotency_key = ?", (key,)).fetchone()
            if row:
                return str(row["notice_id"]), True
            notice_id = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO notices VALUES (?, ?, ?, ?)",
                (
                    key,
                    notice_id,
                    dt.datetime.now(LOCAL_TZ).isoformat(),
                    json.dumps(notice, default=str, ensure_ascii=False),
                ),
            )
            return notice_id, False

    def notices(self) -> list[dict[str, Any]]:
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM notices ORDER BY received_at, idempotency_key").fetchall()
        return [
            {"notice_id": r["notice_id"], "received_at": r["received_at"], **json.loads(r["notice_json"])} for r in rows
        ]


def _public(row: sqlite3.Row) -> dict[str, Any]:
    out = {f: row[f] for f in TAXPAYER_FIELDS}
    out["updated_at"] = dt.datetime.fromisoformat(row["updated_at"])
    out["registration_date"] = dt.date.fromisoformat(row["registration_date"]) if row["registration_date"] else None
    return out
