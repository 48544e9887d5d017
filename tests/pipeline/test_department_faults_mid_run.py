"""Department faults in the middle of the main job (the crash harness's city, its task bodies,
the window taking in cases through the API alongside): the tax bureau's SOAP service answering
503s, SOAP faults or too slowly, the registries' database connections dropped mid-fetch. Each
run either completes or stops with a clear error, and the next run completes with everything:
the same digest as a run without the fault, counts reconciled (pulled = accepted + quarantined).

A subscriber's webhook answering 500 for a whole run, then recovering: the job completes, its push
says how many deliveries failed (they wait in backoff, none lost), and the next push delivers each
event exactly once.

The land bureau's exchange packages: one still being written when the job runs (no sidecar yet,
half its bytes) is left waiting and read whole once complete; one cut in transit (its sidecar
names the whole package's hash) is quarantined whole with the reason, and once the bureau resends
it the next run has everything. (At the connector's own level: ``tests/connectors``' acceptance
kit, ``test_fault_midway_then_resume_loses_and_duplicates_nothing``.) The SMS gateway down or timing
out is at the delivery worker's level: ``tests/cases/test_notice_delivery.py``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@contextlib.contextmanager
def dropping(faults: Any, department: str) -> Iterator[None]:
    """The department database's connections killed every 0.3 s while the block runs."""
    stop = threading.Event()
    dropped: list[int] = []

    def drop() -> None:
        while not stop.wait(0.3):
            dropped.append(faults.drop_connections(department))

    t = threading.Thread(target=drop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _pending(db: Path) -> int:
    """Deliveries still waiting (in backoff) in the hub's database."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM recognition_delivery WHERE status = 'pending'").fetchone()[0])


#: fault → (switch it on for one run, what its clear error says when the run stops)
FAULTS: dict[str, tuple[Callable[[Any], contextlib.AbstractContextManager[Any]], tuple[str, ...]]] = {
    "tax answers 503": (lambda f: f.tax_fault(http_503=-1), ("503",)),
    "tax answers SOAP faults": (lambda f: f.tax_fault(soap_fault=True), ("fault",)),
    "tax answers past the timeout": (lambda f: f.tax_fault(slow_seconds=12.0), ("timeout", "timed out")),
    "commerce's connections dropped": (lambda f: dropping(f, "commerce"), ("connection", "lost", "server")),
    "the person registry's connections dropped": (
        lambda f: dropping(f, "public_security"), ("connection", "terminat", "server"),
    ),
}  # fmt: skip


class City:
    """The crash harness's city and its clean run: the reference every faulted run is compared with."""

    def __init__(self, w: Any) -> None:
        from bench.bench_crash import run_faulted

        self.w = w
        first, log, rc, self.window = run_faulted(w, contextlib.nullcontext())
        assert first == 0 and rc == 0, log
        self.reference = self.digest(self.window.aliases())
        assert self.reference.invariant_problems() == []

    def digest(self, aliases: dict[str, str]) -> Any:
        from rigs.digest import take_digest

        w = self.w
        return take_digest(f"sqlite:///{w.home / 'hub.db'}", w.home / "store", w.receivers(), aliases=aliases)


@pytest.fixture(scope="module")
def city() -> Iterator[City]:
    from bench.bench_crash import SMOKE_CASES, SMOKE_SIZES, world

    with tempfile.TemporaryDirectory(prefix="faults_") as tmp, world(Path(tmp), SMOKE_SIZES, 2016, SMOKE_CASES) as w:
        yield City(w)


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(3000)
def test_department_faults_mid_run_end_complete_or_with_a_clear_error_then_a_complete_rerun(city: City) -> None:
    from bench.bench_crash import run_faulted, window_problems, without_replays

    w, reference, window, digest = city.w, city.reference, city.window, city.digest
    outcomes: dict[str, str] = {}
    for name, (switch, says) in FAULTS.items():
        first, log, rc, run = run_faulted(w, switch(w.faults))
        assert first in (0, 1), f"{name}: the faulted run ended {first}: {log}"
        if first == 1:  # it stopped: with an error that says what went wrong
            assert any(s in log.lower() for s in says), f"{name}: no clear error in {log}"
        outcomes[name] = "completed" if first == 0 else "stopped, then completed"
        assert rc == 0, f"{name}: the re-run did not complete: {w.launcher.log_tail()}"
        now = digest(run.aliases())
        assert now.invariant_problems() == [], name  # counts reconcile for every feed, nothing twice
        assert window_problems(window, run, w.home / "hub.db") == [], name
        assert reference.differences(without_replays(now)) == [], name
    # the tax faults outlast the connector's retries: those runs stop
    assert outcomes["tax answers 503"] == outcomes["tax answers SOAP faults"] == "stopped, then completed"

    # the webhook answers 500 for the whole run, then recovers
    w.restore()
    w.webhook.failing = 500
    with w.window() as run:
        first = w.launcher.run(w.env)
    w.webhook.failing = None
    assert first == 0, w.launcher.log_tail()
    journal_path = w.home / "journal.json"
    journal = json.loads(journal_path.read_text())
    assert journal["push"]["failed"] > 0 and w.webhook.refused > 0  # said, not silent
    assert w.webhook.events() == []
    for _ in range(5):  # the next push runs (as the push DAG's next run would), after the backoff
        if not _pending(w.home / "hub.db"):
            break
        time.sleep(2.5)  # the first backoff: 2 s
        journal.pop("push", None)
        journal_path.write_text(json.dumps(journal))
        assert w.launcher.run(w.env) == 0, w.launcher.log_tail()
        journal = json.loads(journal_path.read_text())
    assert _pending(w.home / "hub.db") == 0
    now = digest(run.aliases())
    assert now.invariant_problems() == [] and now.audit_ok  # every event once per idempotency key
    # what differs is only how the deliveries got there: their tries and the audit of the refused ones
    tried = {"table recognition_delivery", "table recognition_audit", "table recognition_audit_head"}
    differing = {k for k, v in reference.parts().items() if without_replays(now).parts().get(k) != v}
    assert differing <= tried, reference.differences(now)
    assert now.received == reference.received  # the receivers got exactly what they got without the fault
    times = Counter(key for key, _ in w.webhook.events())
    assert times and set(times.values()) == {1}  # each event once, though its first push was refused


def _waiting_packages(w: Any) -> list[Path]:
    outbox: Path = w.faults.prepared.land.outbox_dir
    return sorted(p for p in outbox.glob("land_*.xml") if p.with_name(p.name + ".sha256").exists())


#: What a second run of the job changes beside the clean single run's state, with the same data: the
#: run ledger (its counts split over two runs) and the order in which the outbox numbered the
#: events (a delivery of an event without a holder is ordered under its event's number).
NEXT_RUN = {"table pipeline_step", "table recognition_delivery"}


def _differing(reference: Any, now: Any) -> set[str]:
    ref, got = reference.parts(), now.parts()
    return {k for k in ref.keys() | got.keys() if ref.get(k) != got.get(k)}


def _delivered_once_each(db: Path) -> None:
    """Every delivery done (delivered, or skipped by its subscription's filter), none twice: one row
    per (subscription, idempotency key)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        q = "SELECT status, count(*) FROM recognition_delivery GROUP BY status"
        assert dict(conn.execute(q).fetchall()).keys() <= {"delivered", "skipped"}  # none pending, none dead
        q = "SELECT count(*) FROM recognition_delivery GROUP BY subscription_id, idempotency_key HAVING count(*) > 1"
        assert conn.execute(q).fetchall() == []


def _without_refs(rows: Counter[str]) -> Counter[str]:
    """Quarantine rows without where the staged copy lay; a refused package as its name and reason."""
    out: Counter[str] = Counter()
    for text, n in rows.items():
        row = json.loads(text)
        if (row.get("payload") or {}).get("package"):
            row = {"package": row["source_key"], "reason_code": row["reason_code"]}
        else:
            row.pop("source_ref", None)
        out[json.dumps(row, sort_keys=True)] += n
    return out


def _next_run(w: Any) -> None:
    """The job's next run (the schedule's next interval): a fresh journal of finished tasks."""
    (w.home / "journal.json").unlink()


def _quarantined(db: Path, package: str) -> list[tuple[str, str, str]]:
    """(dataset, reason code, reason) of each quarantine record of ``package``."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        q = "SELECT dataset, reason_code, reason FROM quarantine WHERE source_key = ? ORDER BY id"
        return [tuple(r) for r in conn.execute(q, (package,)).fetchall()]


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(1800)
def test_a_land_package_still_being_written_waits_and_is_read_whole_once_complete(city: City) -> None:
    from bench.bench_crash import window_problems, without_replays

    w = city.w
    w.restore()
    packages = _waiting_packages(w)
    assert len(packages) >= 2
    victim = packages[-1]
    whole, sidecar = victim.read_bytes(), victim.with_name(victim.name + ".sha256")
    side = sidecar.read_text()
    sidecar.unlink()  # the bureau writes the sidecar last: this one is still being copied
    victim.write_bytes(whole[: len(whole) // 2])
    with w.window() as run:
        assert w.launcher.run(w.env) == 0, w.launcher.log_tail()
        assert victim.exists() and victim.read_bytes() == whole[: len(whole) // 2]  # not read, not moved
        partial = city.digest({})
        assert partial.invariant_problems() == []  # what was read reconciles
        assert _quarantined(w.home / "hub.db", victim.name) == []  # waiting is not a refusal
        victim.write_bytes(whole)  # the copy completes, then its sidecar
        sidecar.write_text(side)
        _next_run(w)
        assert w.launcher.run(w.env) == 0, w.launcher.log_tail()
    assert not victim.exists()  # read, acknowledged and archived
    now = city.digest(run.aliases())
    assert now.invariant_problems() == []
    assert window_problems(city.window, run, w.home / "hub.db") == []
    assert _differing(city.reference, without_replays(now)) <= NEXT_RUN, city.reference.differences(now)
    _delivered_once_each(w.home / "hub.db")


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(1800)
def test_a_land_package_cut_in_transit_is_quarantined_whole_and_its_resend_completes_the_job(city: City) -> None:
    from bench.bench_crash import window_problems, without_replays
    from sandbox.land.packages import write_package

    w = city.w
    w.restore()
    victim = _waiting_packages(w)[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[: len(whole) * 2 // 3])  # cut in transit; its sidecar names the whole package
    with w.window() as run:
        first = w.launcher.run(w.env)
        assert first == 0, w.launcher.log_tail()  # a refused package is quarantined, not a stop
        refused = _quarantined(w.home / "hub.db", victim.name)
        # once, under the first of the package's datasets to read it (property rights, approval results)
        assert [code for _, code, _ in refused] == ["xml_truncated"], refused
        assert "resend" in refused[0][2]  # the reason says what the department must do
        assert city.digest({}).invariant_problems() == []  # the refused package is counted, nothing lost silently
        # the bureau resends the package whole, under a new name
        write_package(victim.parent, victim.stem + "_resent.xml", whole)
        _next_run(w)
        assert w.launcher.run(w.env) == 0, w.launcher.log_tail()
    now = city.digest(run.aliases())
    assert now.invariant_problems() == []
    assert window_problems(city.window, run, w.home / "hub.db") == []
    # everything the clean run has. Beside it: the quarantine's record of the cut package; the
    # connector's provenance (the packages' hashes read, the staged files' names); and the golden
    # records' history, which tells the order values arrived in (the resend came a run later), a
    # part of the clean run's history — the golden records themselves are equal
    again = without_replays(now)
    differing = _differing(city.reference, again)
    arrival = {"table quarantine", "table identity_golden_history", "table sync_state", "table staged_batch",
               "table lineage_batch"}  # fmt: skip
    assert differing <= NEXT_RUN | arrival, city.reference.differences(again)
    assert not differing & {"table identity_person", "table identity_enterprise", "licence objects"}
    assert _without_refs(again.tables["quarantine"]) - _without_refs(city.reference.tables["quarantine"]) == Counter(
        {json.dumps({"package": victim.name, "reason_code": "xml_truncated"}): 1})  # fmt: skip
    assert _without_refs(city.reference.tables["quarantine"]) - _without_refs(again.tables["quarantine"]) == Counter()
    history = again.tables["identity_golden_history"]
    assert history - city.reference.tables["identity_golden_history"] == Counter()
    _delivered_once_each(w.home / "hub.db")
