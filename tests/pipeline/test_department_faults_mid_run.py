"""Department faults in the middle of the main job (the crash harness's city, its task bodies,
the window taking in cases through the API alongside): the tax bureau's SOAP service answering
503s, SOAP faults or too slowly, the registries' database connections dropped mid-fetch. Each
run either completes or stops with a clear error, and the next run completes with everything:
the same digest as a run without the fault, counts reconciled (pulled = accepted + quarantined).

A subscriber's webhook answering 500 for a whole run, then recovering: the job completes, its push
says how many deliveries failed (they wait in backoff, none lost), and the next push delivers each
event exactly once. Covered at its own level: a truncated XML package completed later
(``tests/connectors``' acceptance kit, ``test_fault_midway_then_resume_loses_and_duplicates_nothing``).
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


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(3000)
def test_department_faults_mid_run_end_complete_or_with_a_clear_error_then_a_complete_rerun() -> None:
    from bench.bench_crash import SMOKE_CASES, SMOKE_SIZES, run_faulted, window_problems, without_replays, world
    from rigs.digest import take_digest

    with tempfile.TemporaryDirectory(prefix="faults_") as tmp, world(Path(tmp), SMOKE_SIZES, 2016, SMOKE_CASES) as w:

        def digest(aliases: dict[str, str]) -> Any:
            return take_digest(f"sqlite:///{w.home / 'hub.db'}", w.home / "store", w.receivers(), aliases=aliases)

        first, log, rc, window = run_faulted(w, contextlib.nullcontext())
        assert first == 0 and rc == 0, log
        reference = digest(window.aliases())
        assert reference.invariant_problems() == []
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
