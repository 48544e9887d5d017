"""Step ingestion (环节汇聚): department steps into the step log in the pipeline's task body, against
plain ``executemany`` of the same rows.

Target (the case-repository issue), on the embedded default (SQLite): ≥ 50,000 steps/s into the
step log in the task body (``pipeline.case_steps.ingest_case_steps``: cases resolved, dispatches and
logged steps checked, resends recognised, out-of-order arrivals flagged, every new step written
and announced through the outbox in one transaction), not counting Airflow's per-task start.
The peer writes the very same rows with the DB-API's ``executemany`` into an identical hub
database: no checks, no events.

Printed beside it, not part of the target: settling the touched cases (status, clocks, released
stages) — :func:`cases.ingest.settle` works case by case — measured on a sample and scaled, and a
resend of the whole batch (nothing appended, every step recognised).

    python -m bench case_steps [--smoke] [--steps N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_STEPS_S = 50_000.0
#: the stages of the joint registration (多证联办) and the steps each department reports
DEPARTMENTS = ("commerce", "tax", "public_security")
STEPS = ("accepted", "in_review", "opinion_given", "approved", "result_issued")
RECEIVED = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)

CASE_COLUMNS = (
    "id, code, item_code, item_name, implementation_code, lead_department, region_code, statutory_days, "
    "promised_days, received_by, received_at, received_on, intake_outcome, outcome_detail, status, applicant_kind, "
    "applicant_code, applicant_identity, applicant_name, applicant_phone, applicant_address, agent, parties, "
    "delivery_method, delivery_address, subject, intake_fingerprint, created_by, updated_at"
)
DISPATCH_COLUMNS = (
    'id, case_id, department, stage_name, "after", statutory_days, promised_days, status, created_at, dispatched_at'
)


def _ts(value: dt.datetime) -> str:
    """A timestamp as SQLAlchemy stores it in SQLite."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def load_cases(path: Path, n: int, *, seed: int = 20261102) -> list[str]:
    """``n`` accepted joint-registration cases, each dispatched to its three departments; their codes."""
    from identifiers import supervision_code

    rnd = random.Random(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    codes: list[str] = []
    seen: set[str] = set()
    now = _ts(RECEIVED)
    cases, dispatches = [], []
    for i in range(1, n + 1):
        day = RECEIVED.date() - dt.timedelta(days=i % 300)
        code = supervision_code.generate("330322", day, rng=rnd)
        while code in seen:
            code = supervision_code.generate("330322", day, rng=rnd)
        seen.add(code)
        codes.append(code)
        received = _ts(dt.datetime.combine(day, dt.time(1), tzinfo=dt.UTC))
        cases.append((i, code, "XK00101001", "企业设立登记（多证联办）", "x", "commerce", "330322", 20, 3, "window",
                      received, day.isoformat(), "accepted", "{}", "in_progress", "person", "P", "I", "N", None, None,
                      None, None, "window", None, None, "f", "bench", now))  # fmt: skip
        for k, dept in enumerate(DEPARTMENTS):
            after = "[]" if dept == "commerce" else '["commerce"]'
            dispatches.append((3 * i + k, i, dept, "stage", after, 5, 1, "dispatched", received, received))
    con.executemany(f"INSERT INTO case_record ({CASE_COLUMNS}) VALUES ({', '.join('?' * 29)})", cases)
    con.executemany(f"INSERT INTO case_dispatch ({DISPATCH_COLUMNS}) VALUES ({', '.join('?' * 10)})", dispatches)
    con.execute("ANALYZE")
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return codes


def step_frame(codes: list[str], per_case: int) -> Any:
    """``per_case`` steps of every case (its departments' steps in turn), arriving in a shuffled order
    within each case, so some are out of order."""
    import pandas as pd

    rnd = random.Random(7)
    rows = []
    for code in codes:
        day = dt.datetime.combine(dt.date.fromisoformat(f"{code[6:10]}-{code[10:12]}-{code[12:14]}"), dt.time(1),
                                  tzinfo=dt.UTC)  # fmt: skip
        mine = []
        for k in range(per_case):
            dept = DEPARTMENTS[k % len(DEPARTMENTS)]
            seq = k // len(DEPARTMENTS) + 1
            at = day + dt.timedelta(hours=2 + 3 * seq, minutes=k)
            mine.append((code, dept, seq, STEPS[(seq - 1) % len(STEPS)], at, None))
        if rnd.random() < 0.05:
            rnd.shuffle(mine)
        rows += mine
    return pd.DataFrame(rows, columns=["code", "department", "seq", "step", "occurred_at", "note"])


def peer(path: Path, frame: Any, codes: list[str]) -> tuple[float, float]:
    """Plain ``executemany`` of the same rows (case ids looked up in memory first); seconds (wall, CPU)."""
    ids = {c: i for i, c in enumerate(codes, start=1)}
    now = _ts(dt.datetime.now(dt.UTC))
    rows = [
        (ids[c], d, int(s), st, _ts(at.to_pydatetime()), now, "bench", None, "{}", 0, "0" * 64)
        for c, d, s, st, at in zip(frame["code"], frame["department"], frame["seq"], frame["step"],
                                   frame["occurred_at"], strict=True)
    ]  # fmt: skip
    con = sqlite3.connect(path)
    started = time.perf_counter()
    cpu = time.process_time()
    con.executemany(
        "INSERT INTO case_step (case_id, department, seq, step, occurred_at, recorded_at, actor, note, detail, "
        "arrived_out_of_order, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.commit()
    seconds = time.perf_counter() - started, time.process_time() - cpu
    con.close()
    return seconds


def run(steps: int, *, per_case: int = 12, settle_sample: int = 500) -> dict[str, Any]:
    """The benchmark; returns its figures (what ``main`` prints, and the smoke test asserts on)."""
    from sqlalchemy import func, select

    from cases.ingest import settle
    from cases.tables import CaseStep
    from hub import sqlite_wal
    from hub.db import make_engine, migrate, session_factory
    from hub.models import OutboxEvent
    from pipeline.case_steps import ingest_case_steps

    n_cases = max(1, steps // per_case)
    with tempfile.TemporaryDirectory(prefix="bench-case-steps-") as tmp:
        hub_db, peer_db = Path(tmp) / "hub.db", Path(tmp) / "peer.db"
        for path in (hub_db, peer_db):
            migrate(f"sqlite:///{path}")
        started = time.perf_counter()
        codes = load_cases(hub_db, n_cases)
        load_cases(peer_db, n_cases)
        frame = step_frame(codes, per_case)
        loaded = time.perf_counter() - started
        engine = make_engine(f"sqlite:///{hub_db}")
        sessions = session_factory(engine)
        now = dt.datetime(2027, 1, 4, tzinfo=dt.UTC)
        started, cpu = time.perf_counter(), time.process_time()
        batch = ingest_case_steps(sessions, frame, actor="bench", now=now, settle_cases=False)
        body_s, body_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        # the WAL checkpoint the commit left to a worker thread (hub.sqlite_wal): waited for here, so
        # that it runs beside nothing else measured, and printed on its own
        checkpoint_s = sqlite_wal.wait()
        started = time.perf_counter()
        again = ingest_case_steps(sessions, frame, actor="bench", now=now, settle_cases=False)
        resend_s = time.perf_counter() - started
        sqlite_wal.wait()
        sample = sorted(batch.ingested.case_ids)[:settle_sample]
        started = time.perf_counter()
        with sessions() as s:
            settled = settle(s, sample, now=now)
            s.commit()
        settle_per_case = (time.perf_counter() - started) / max(settled, 1)
        with sessions() as s:
            logged = int(s.scalar(select(func.count()).select_from(CaseStep)) or 0)
            events = int(s.scalar(select(func.count()).where(OutboxEvent.event_type == "case.step")) or 0)
            out_of_order = int(s.scalar(select(func.count()).where(CaseStep.arrived_out_of_order.is_(True))) or 0)
        engine.dispose()
        peer_s, peer_cpu_s = peer(peer_db, frame, codes)
    n = len(frame)
    return {
        "steps": n, "cases": n_cases, "load_s": loaded,
        "body_s": body_s, "steps_per_s": n / body_s, "log_s": batch.log_seconds, "body_cpu_s": body_cpu_s,
        "checkpoint_s": checkpoint_s,
        "appended": batch.ingested.appended, "refused": dict(batch.ingested.refused),
        "logged": logged, "events": events, "out_of_order": out_of_order,
        "resend_s": resend_s, "resend_appended": again.ingested.appended, "resent": again.ingested.resent,
        "settle_ms_per_case": settle_per_case * 1000, "settled": settled,
        "peer_s": peer_s, "peer_steps_per_s": n / peer_s, "peer_cpu_s": peer_cpu_s,
    }  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench case_steps")
    parser.add_argument("--smoke", action="store_true", help="tiny run; target not evaluated")
    parser.add_argument("--steps", type=int, default=None, help="default 1,200,000 (100,000 cases × 12 steps)")
    args = parser.parse_args(argv)
    steps = args.steps or (2_400 if args.smoke else 1_200_000)
    f = run(steps, settle_sample=50 if args.smoke else 500)
    load = os.getloadavg()
    print(f"{f['steps']:,} steps of {f['cases']:,} cases (loaded in {f['load_s']:.1f}s); load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':58}{'seconds':>10}{'steps/s':>12}{'CPU s':>8}")
    print(f"{'task body: checked, logged and announced (one transaction)':58}{f['body_s']:>10.2f}"
          f"{f['steps_per_s']:>12,.0f}{f['body_cpu_s']:>8.2f}")  # fmt: skip
    print(f"{'  then: WAL checkpoint on a worker thread (not in the body)':58}{f['checkpoint_s']:>10.2f}")
    print(f"{'plain executemany of the same rows (peer)':58}{f['peer_s']:>10.2f}{f['peer_steps_per_s']:>12,.0f}"
          f"{f['peer_cpu_s']:>8.2f}")  # fmt: skip
    print(f"{'the same batch resent (nothing appended)':58}{f['resend_s']:>10.2f}{f['steps'] / f['resend_s']:>12,.0f}")
    print(f"logged {f['logged']:,}, announced {f['events']:,}, flagged out of order {f['out_of_order']:,}, "
          f"refused {f['refused']}; resend appended {f['resend_appended']:,}, recognised {f['resent']:,}")  # fmt: skip
    print(f"settling the touched cases (status, clocks, stages), not in the target: {f['settle_ms_per_case']:.2f} ms "
          f"per case on {f['settled']:,} cases, scaled to {f['cases']:,}: "
          f"{f['settle_ms_per_case'] * f['cases'] / 1000:.1f}s")  # fmt: skip
    ok = f["logged"] == f["steps"] == f["events"] and f["resend_appended"] == 0 and f["resent"] == f["steps"]
    if args.smoke:
        return 0 if ok else 1
    met = f["steps_per_s"] >= TARGET_STEPS_S
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()}, ensure_ascii=False))
    print(f"target ≥ {TARGET_STEPS_S:,.0f} steps/s: {'met' if met else 'MISSED'}")
    return 0 if ok and met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
