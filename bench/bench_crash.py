"""Crash harness: kill -9 the main job at random kill points; a re-run must converge to a clean run.

``python -m bench crash --points N [--seed S] [--jobs J]``:

1. Generates a small city (about 500 records over every feed) and serves its sandboxes, with two
   receivers of pushed events: the tax bureau's SOAP notice service and a webhook receiver that
   records every POST. Prepares a fresh hub (migrated, signing key, subscriptions of both
   receivers) and snapshots its home directory (the SQLite files, the licence store, staging)
   and the land department's package directory (reading a package acknowledges and moves it).
2. Runs the main job's task bodies directly (extract → map → validate → resolve → publish per
   feed, in the main job's waves, then push), in a child process counting the hits of every kill
   point (``HUB_KILL_POINT=tally``), and takes the reference digest (:mod:`rigs.digest`).
3. For each of N points chosen at random (a kill point among those a clean run passes, a hit
   count up to the number of its hits): restores the snapshot, runs the job in a child armed with
   that point (it dies with SIGKILL), then re-runs as an operator would — the task that died
   again, then the rest (a journal of finished tasks stands in for Airflow's task states) — until
   the job completes. Then the digest must equal the reference, and: pulled = accepted +
   quarantined for every feed, no licence version written twice, no event accepted twice per
   idempotency key by a receiver.

``--jobs J`` (default: one per core, 2 to 4) tries the points in J worlds side by side
(:mod:`bench.crash_jobs`): each job a process of its own doing steps 1 and 2 on its own copy of
the city (the same seed, the same data), its own receivers and sandboxes on ports of their own,
its own hub, snapshot and reference digest (the digests of two worlds differ where ports and
paths are stored, so each job's crashes are compared with its own clean run). The points are
chosen from the first job's tally exactly as with one job (the same seed gives the same points
whatever J) and handed out one at a time to whichever job is free. ``--jobs 1`` runs everything
in this process, as before.

Prints points tried, converged, each failure with its point and difference, and the time a
re-run took to converge per point kind. Exits 1 unless every point converged. ``--smoke``: every
kill point a clean run reaches once (at least 10 points), seed 20, a smaller city (the test
suite's run, with two jobs).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: the city: about 500 records over the six feeds (``--smoke``: about 300)
SIZES = {"persons": 160, "enterprises": 45, "properties": 70}
SMOKE_SIZES = {"persons": 90, "enterprises": 28, "properties": 40}
STEPS = ("extract", "map", "validate", "resolve", "publish")
PUSH = "push"
#: the case repository's tasks, after the feeds and before the push: the departments' steps into
#: the step log, then supervision lighting every running clock as of today
CASE_STEPS, SUPERVISE = "cases.steps", "cases.supervise"
#: cases the window takes in before the job (in the snapshot): a land transfer each, its tax stage
#: first, then the land bureau's (``--smoke``: fewer)
CASES, SMOKE_CASES = 24, 12
#: when the window took them in (a Monday); the departments report their steps three days later,
#: so supervision, run as of today, finds their clocks run on since
RECEIVED = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
STEPS_REPORTED = RECEIVED + dt.timedelta(days=3)
#: steps per frame the case-step task writes (several frames: a kill can fall between two)
FRAME_STEPS = 10
#: land transfers the window takes in through the API while the job runs, each with its
#: idempotency key; the case tasks wait until they are in (the window's marker in the hub's home)
INTAKES = 6
INTAKES_DONE = "intakes.done"
CLIENT_ENV = "HUB_CRASH_WINDOW_CLIENT"
#: the API's kill point: the API process dies there, the window client asks again
API_POINT = "api.audited"
#: what an answer to an intake holds that differs between two runs doing the same work (a
#: retried intake's answer says it is a replay: checked on its own)
ANSWER_VOLATILE = {"code", "printed_code", "recorded_at", "replayed"}
WEBHOOK_SECRET_ENV = "HUB_CRASH_WEBHOOK_SECRET"
WEBHOOK_SECRET = "whsec_Y3Jhc2gtaGFybmVzcy13ZWJob29rLXNlY3JldA=="
TAX_SECRET_ENV = "HUB_SANDBOX_TAX_PASSWORD"
#: rows per batch of the SQL feeds and per land package: several batches per feed, so a kill can
#: fall between batches of one task (the shipped mappings read 10,000 rows a batch)
BATCH_ROWS = 40
#: where the job's processes read the mapping files with those batch sizes
MAPPINGS_ENV = "HUB_CRASH_MAPPINGS_DIR"
#: re-runs an operator makes before giving up on a point
MAX_RERUNS = 3
#: seconds a SOAP call may take (the shipped default is 30): a department's slow answer is told
#: from a dead one in seconds
SOAP_TIMEOUT = 10
REPO = Path(__file__).resolve().parent.parent


# -- the child: the main job's task bodies, resumable from a journal ---------------------------------


def run_job(home: Path, only: Sequence[str] | None = None) -> None:
    """Run (or finish) the main job on the hub in ``home``: every task not yet in the journal
    (``only``: the feeds named, without the push).

    The journal (``home/journal.json``) holds each finished task's output, as Airflow holds a
    finished task's state and XCom; a task that died is not in it and runs again with the same
    run id and the same input, as Airflow's retry of the task would.
    """
    from hub.killpoints import tally
    from mappings.engine import load_all
    from pipeline import housekeeping, steps
    from rigs.main_job import ordered

    journal_path = home / "journal.json"
    journal: dict[str, Any] = json.loads(journal_path.read_text()) if journal_path.exists() else {}

    def done(key: str, out: Any) -> None:
        journal[key] = out
        tmp = journal_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(journal, default=str))
        os.replace(tmp, journal_path)

    for wave in ordered(only if only is not None else load_all()):
        for name in wave:
            run_id = f"crash__{name}"
            out: Any = None
            for step in STEPS:
                key = f"{name}.{step}"
                if key in journal:
                    out = journal[key]
                    continue
                if step == "extract":
                    out = steps.extract(name, run_id)
                else:
                    body = {"map": steps.map_batches, "validate": steps.validate, "resolve": steps.resolve,
                            "publish": steps.publish}[step]  # fmt: skip
                    out = body(name, out, run_id)
                done(key, out)
    if only is None:
        if os.environ.get(CLIENT_ENV):  # the window's intakes through the API are in before the case tasks
            _wait_for(home / INTAKES_DONE)
        if CASE_STEPS not in journal:
            done(CASE_STEPS, case_steps_task(json.loads((home / "cases.json").read_text())))
        if SUPERVISE not in journal:
            done(SUPERVISE, housekeeping.supervise("crash__supervise"))
    if PUSH not in journal and only is None:
        done(PUSH, steps.push("crash__push"))
    (home / "tally.json").write_text(json.dumps(tally()))


def _wait_for(path: Path, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} did not appear in {timeout:.0f}s")
        time.sleep(0.2)


StepRow = tuple[str, str, int, str, dt.datetime, str | None]


def step_rows(codes: Sequence[str]) -> list[list[StepRow]]:
    """The departments' steps of the window's cases, in the order they report them: the tax
    bureau's (concluding two cases in three, which releases the land bureau's stage), then the
    land bureau's on the released cases.

    >>> [[(d, s, st) for _, d, s, st, _, _ in rows] for rows in step_rows(["a", "b", "c"])][1:]
    [[('tax', 1, 'accepted'), ('tax', 2, 'approved')], [('tax', 1, 'accepted'), ('tax', 2, 'approved')], [], \
[('land', 1, 'accepted')], [('land', 1, 'accepted'), ('land', 2, 'in_review')]]
    """
    tax: list[list[StepRow]] = []
    land: list[list[StepRow]] = []
    for i, code in enumerate(codes):
        at = RECEIVED + dt.timedelta(minutes=i)
        mine: list[StepRow] = [(code, "tax", 1, "accepted", at + dt.timedelta(hours=2), None)]
        if i % 3:
            mine.append((code, "tax", 2, "approved", at + dt.timedelta(days=1), "税费已核定"))
        tax.append(mine)
        theirs: list[StepRow] = [(code, "land", 1, "accepted", at + dt.timedelta(days=2), None)] if i % 3 else []
        if i % 3 == 2:
            theirs.append((code, "land", 2, "in_review", at + dt.timedelta(days=2, hours=3), None))
        land.append(theirs)
    return tax + land


def case_steps_task(codes: Sequence[str]) -> dict[str, int]:
    """The case-step task: the departments' steps (:func:`step_rows`) through the pipeline's task
    body, ``FRAME_STEPS`` a frame (the land bureau's after the tax bureau's frames are settled)."""
    import pandas as pd

    from hub.db import get_engine, session_factory
    from pipeline.case_steps import COLUMNS, ingest_case_steps

    per_case = step_rows(codes)
    half = len(per_case) // 2
    out = {"appended": 0, "resent": 0, "refused": 0}
    sessions = session_factory(get_engine())
    for part in (per_case[:half], per_case[half:]):
        rows = [r for case in part for r in case]
        for start in range(0, len(rows), FRAME_STEPS):
            frame = pd.DataFrame(rows[start : start + FRAME_STEPS], columns=list(COLUMNS))
            batch = ingest_case_steps(sessions, frame, actor="crash-departments", now=STEPS_REPORTED)
            out["appended"] += batch.ingested.appended
            out["resent"] += batch.ingested.resent
            out["refused"] += sum(batch.ingested.refused.values())
    return out


def _person(i: int) -> str:
    """A resident id from elsewhere (Beijing, born 1950): no feed of the city knows it."""
    from identifiers import resident_id

    body = f"11010119500{1 + i // 100 % 9}{1 + i % 28:02d}{900 + i % 100:03d}"
    return body + resident_id.calc_check_digit(body)


def intake_body(i: int) -> dict[str, Any]:
    """The window's ``i``-th land transfer taken in through the API (buyer and seller from elsewhere)."""
    return {
        "item_code": "QR00401000", "applicant": {"code": _person(500 + 2 * i), "name": f"窗口买受人{i}"},
        "parties": [{"role": "transferor", "code": _person(501 + 2 * i), "name": f"窗口转让人{i}"}],
        "materials": [{"code": c, "provided": "paper"} for c in ("M01", "M02", "M03", "M04", "M05", "M06")],
        "received_at": (RECEIVED + dt.timedelta(days=1, minutes=i)).isoformat(),
    }  # fmt: skip


def take_in_cases(n: int) -> list[str]:
    """``n`` land transfers taken in at the window before the job (their buyers and sellers from
    elsewhere: provisional applicants whatever the feeds bring); their supervision codes."""
    from cases.intake import take_in
    from cases.schemas import IntakeIn
    from hub.db import get_engine, session_scope

    rng = random.Random(2020)
    codes = []
    person = _person
    with session_scope(get_engine()) as session:
        for i in range(n):
            at = RECEIVED + dt.timedelta(minutes=i)
            body = IntakeIn.model_validate({
                "item_code": "QR00401000", "applicant": {"code": person(2 * i), "name": f"买受人{i}"},
                "parties": [{"role": "transferor", "code": person(2 * i + 1), "name": f"转让人{i}"}],
                "materials": [{"code": c, "provided": "paper"} for c in ("M01", "M02", "M03", "M04", "M05", "M06")],
                "received_at": at.isoformat(),
            })  # fmt: skip
            case = take_in(session, body, actor="crash-window", now=at, rng=rng).case
            codes.append(case.code)
    return codes


# -- receivers -----------------------------------------------------------------------------------------


class WebhookReceiver:
    """A webhook receiver that answers 204 and records every POST (``webhook-id`` and body); while
    ``failing`` holds a status (500), it answers that instead and only counts the POST (``refused``)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.failing: int | None = None
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    status = receiver.failing
                    if status is None:
                        receiver.received.append((self.headers.get("webhook-id", ""), json.loads(body)))
                    else:
                        receiver.refused += 1
                self.send_response(status or 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the delivery worker pushes many at once: no reset connections

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.refused = 0

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ApiServer:
    """The API (``recognition.serve``) on the hub's home, in its own process group: started armed
    with a kill point or not, restarted as a supervisor would after it died."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, kill_point: str | None = None) -> None:
        import httpx

        self.stop()
        env = {**self.env, **({"HUB_KILL_POINT": kill_point} if kill_point else {})}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "recognition.serve", "--port", str(self.port)],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited {self.proc.returncode} on start")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the API did not answer /healthz in 180 s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_dead(self, timeout: float) -> None:
        """Give a dying API ``timeout`` seconds to be gone (a connection dropped as it died)."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """End the API's process group (the server and its audit writer): SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=15)
                os.killpg(self.proc.pid, signal.SIGKILL)  # what is left of the group (the audit writer)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                pass
            break
        self.proc.wait()
        self.proc = None


@dataclass
class WindowRun:
    """What the window client got: each intake's (status, answer), the intakes whose request
    died without an answer (asked again with the same idempotency key)."""

    answers: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    died: list[int] = field(default_factory=list)
    error: str | None = None

    def aliases(self) -> dict[str, str]:
        """Each case's supervision code (drawn at random by the API), compact and as printed → the
        intake that made it."""
        out = {}
        for i, (_, body) in self.answers.items():
            for form in ("code", "printed_code"):
                if form in body:
                    out[body[form]] = f"window-intake-{i}"
        return out


def window_client(server: ApiServer, token: str, done: Path, out: WindowRun) -> None:
    """Take in :data:`INTAKES` land transfers through the API, one after another, each with its
    idempotency key; a request that dies without an answer is asked again with the same key
    once the API is back (restarted unarmed). Writes ``done`` when every intake is answered."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for i in range(INTAKES):
                for _ in range(10):
                    try:
                        r = http.post("/v1/cases", json=intake_body(i),
                                      headers={**headers, "Idempotency-Key": f"crash-intake-{i}"})  # fmt: skip
                    except httpx.TransportError as exc:
                        if not isinstance(exc, httpx.ConnectError):  # sent, and no answer came back
                            out.died.append(i)
                        server.wait_dead(timeout=10)
                        if not server.alive():
                            server.start()
                        continue
                    if r.status_code == 503:  # the audit or the database busy: ask again
                        time.sleep(0.5)
                        continue
                    out.answers[i] = (r.status_code, r.json())
                    break
                else:
                    raise RuntimeError(f"intake {i}: no answer in 10 tries")
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        done.write_text(json.dumps({"answered": sorted(out.answers)}))


def _stable_answer(body: Any) -> Any:
    """An intake's answer without what two runs doing the same work differ in."""
    if isinstance(body, dict):
        return {k: _stable_answer(v) for k, v in body.items() if k not in ANSWER_VOLATILE}
    if isinstance(body, list):
        return [_stable_answer(v) for v in body]
    return body


def window_problems(reference: WindowRun, run: WindowRun, db: Path) -> list[str]:
    """Converged for the window: every intake answered with the reference's case (its retried
    request, same idempotency key, answered as a replay), and the audit holds each attempt."""
    import sqlite3

    out = [f"window client: {run.error}"] if run.error else []
    con = sqlite3.connect(db)
    try:
        for i, (status, body) in sorted(reference.answers.items()):
            got = run.answers.get(i)
            if got is None:
                out.append(f"intake {i}: no answer")
                continue
            retried = i in run.died
            if got[0] != (200 if retried else status) or got[1].get("replayed") is not retried:
                out.append(f"intake {i}: answered {got[0]} (reference {status}, retried {retried}): {got[1]}")
            if _stable_answer(got[1]) != _stable_answer(body):
                out.append(f"intake {i}: another result than the reference's")
            outcomes = sorted(o for (o,) in con.execute(
                "SELECT outcome FROM recognition_audit WHERE action = 'case_intake' AND subject = ?",
                (got[1].get("code"),),
            ))  # fmt: skip
            expected = ["ok"] + ["replayed"] * run.died.count(i)
            if outcomes != expected:
                out.append(f"intake {i}: audited {outcomes}, expected {expected}")
    finally:
        con.close()
    return out


def without_replays(digest: Any) -> Any:
    """The digest without the audit entries of replayed intakes: a client whose answer was lost
    asked again, which the reference's client never had to (:func:`window_problems` checks them)."""
    rows = digest.tables.get("recognition_audit")
    if rows is not None:
        for text in list(rows):
            row = json.loads(text)
            if row.get("action") == "case_intake" and row.get("outcome") == "replayed":
                del rows[text]
    return digest


@dataclass
class World:
    root: Path
    home: Path
    snapshot: Path
    env: dict[str, str]
    webhook: WebhookReceiver
    tax_store: Any
    #: the land department's package directory (outbox, archive: reading packages moves them)
    land_dir: Path
    launcher: Launcher
    api: ApiServer
    #: the window's API key (a consumer with ``cases:write``, in the snapshot)
    token: str
    #: the sandboxes' fault switches (:class:`sandbox.switches.Faults`)
    faults: Any = None

    @contextmanager
    def window(self, kill_point: str | None = None) -> Iterator[WindowRun]:
        """The API (armed with ``kill_point`` or not) and the window client taking in land transfers
        through it, alongside whatever runs in the block; both ended when it is left."""
        run = WindowRun()
        self.api.start(kill_point)
        client = threading.Thread(target=window_client, args=(self.api, self.token, self.home / INTAKES_DONE, run))
        client.start()
        try:
            yield run
        finally:
            client.join(timeout=600)
            self.api.stop()
            if client.is_alive():
                run.error = "the window client did not finish in 600 s"

    def receivers(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        return {
            "webhook": self.webhook.events(),
            # the notice carries the pushed message as it was sent; its other fields are taken from it
            "tax_soap": [(n["idempotency_key"], json.loads(n["payload_json"])) for n in self.tax_store.notices()],
        }

    def restore(self) -> None:
        """The starting snapshot back: the hub's home as it was, receivers emptied."""
        self.api.stop()
        shutil.rmtree(self.home)
        shutil.copytree(self.snapshot / "hub", self.home)
        shutil.rmtree(self.land_dir)
        shutil.copytree(self.snapshot / "land", self.land_dir)
        self.webhook.clear()
        with self.tax_store.connect() as conn:
            conn.execute("DELETE FROM notices")


def _subscriptions(path: Path, webhook_url: str, tax_wsdl: str) -> Path:
    import yaml

    subs = [
        {"id": "crash-webhook-all", "name": "every licence and identity event", "channel": "webhook",
         "event_types": ["license.*", "approval.*", "identity.*", "case.*", "supervision.*"], "url": webhook_url,
         "secret_env": WEBHOOK_SECRET_ENV},
        {"id": "crash-tax-business-licences", "name": "business licences to the tax bureau", "channel": "soap",
         "event_types": ["license.issued", "license.amended", "license.revoked"], "license_types": ["1101"],
         "url": tax_wsdl, "secret_env": TAX_SECRET_ENV},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"subscriptions": subs}, allow_unicode=True), encoding="utf-8")
    return path


def _mappings(target: Path, batch_rows: int) -> Path:
    """A copy of the shipped mapping files reading ``batch_rows`` rows a batch, SOAP calls timing
    out after :data:`SOAP_TIMEOUT` seconds."""
    target.mkdir()
    for path in sorted((REPO / "mappings").glob("*.yaml")):
        text = re.sub(r"batch_size: \d+", f"batch_size: {batch_rows}", path.read_text(encoding="utf-8"))
        text = text.replace("  protocol: soap\n", f"  protocol: soap\n  timeout_seconds: {SOAP_TIMEOUT}\n")
        (target / path.name).write_text(text, encoding="utf-8")
    return target


def _prepare_hub(home: Path, subscriptions: Path, cases: int) -> None:
    """A fresh hub in ``home`` with ``cases`` cases taken in (run in a child: this process keeps no
    engine on the files)."""
    from e_license_store.signing import load_keyring
    from hub.db import get_engine, migrate, session_scope
    from recognition.consumers import add_consumer
    from recognition.scopes import CASES_WRITE
    from recognition.subscriptions import sync_yaml

    migrate()
    load_keyring(create=True)
    with session_scope(get_engine()) as session:
        sync_yaml(session, subscriptions)
        _, token = add_consumer(session, "crash-window", [CASES_WRITE])
    (home / "window_api_key").write_text(token)
    (home / "cases.json").write_text(json.dumps(take_in_cases(cases)))
    get_engine().dispose()


@contextmanager
def world(root: Path, sizes: dict[str, int], seed: int, cases: int = CASES) -> Iterator[World]:
    from hub.airflow_env import connection_uri_env
    from rigs.connections import sandbox_connections
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    with ExitStack() as stack:
        sb = stack.enter_context(
            start_sandboxes(root / "sandbox", seed=seed, sizes=Sizes(**sizes), land_batch=BATCH_ROWS)
        )
        webhook = WebhookReceiver()
        stack.callback(webhook.close)
        home = root / "hub"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AIRFLOW_CONN_"))}
        env.update({"HUB_HOME": str(home), "HUB_LOG_LEVEL": "WARNING", WEBHOOK_SECRET_ENV: WEBHOOK_SECRET,
                    TAX_SECRET_ENV: sb.tax.password, "PYTHONHASHSEED": "0", CLIENT_ENV: "1",
                    # the receivers answer from this process on a shared machine: a slow answer is a
                    # department fault, which this harness does not inject (it kills the hub)
                    "HUB_WEBHOOK_READ_TIMEOUT_SECONDS": "120"})  # fmt: skip
        for conn_id, conn in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn)
            env[key] = value
        env[MAPPINGS_ENV] = str(_mappings(root / "mappings", BATCH_ROWS))
        subs = _subscriptions(root / "subscriptions.yaml", webhook.url, sb.tax.wsdl_url)
        _child(env, ["--prepare", str(subs), "--cases", str(cases)], check=True)
        snapshot = root / "snapshot"
        land_dir = sb.land.outbox_dir.parent
        shutil.copytree(home, snapshot / "hub")
        shutil.copytree(land_dir, snapshot / "land")
        launcher = Launcher(env, root / "job.log")
        stack.callback(launcher.close)
        api = ApiServer(env, _free_port(), root / "api.log")
        stack.callback(api.stop)
        token = (home / "window_api_key").read_text()
        yield World(
            root, home, snapshot, env, webhook, sb.prepared.tax_store, land_dir, launcher, api, token, sb.faults
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(env: dict[str, str], args: list[str], *, kill_point: str | None = None, check: bool = False) -> int:
    """Run ``args`` in a fresh interpreter (preparing the hub)."""
    child_env = dict(env)
    if kill_point:
        child_env["HUB_KILL_POINT"] = kill_point
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_crash", "--child", *args],
        env=child_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"child {args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.returncode


#: the modules the task bodies import (most of them inside the functions), loaded by the fork server
PRELOADED = (
    "connectors.registry", "connectors.sync", "e_license_store.service", "identity.resolve", "mappings.engine",
    "pipeline.carry", "pipeline.case_steps", "pipeline.housekeeping", "pipeline.identity_step", "pipeline.publish",
    "pipeline.steps", "cases.supervision", "recognition.delivery",
    "validation.gxrun", "validation.run",
)  # fmt: skip


class Launcher:
    """Starts job processes fast: a fork server that imported the hub once forks a process per run.

    Importing the task bodies' libraries (pandas, Great Expectations, SQLAlchemy, zeep) takes
    longer than the job on this city; each forked process starts with them loaded and nothing
    else shared: no thread, no open database (the server opens none), its own environment.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_crash", "--fork-server"],
            env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self, env: dict[str, str], *, kill_point: str | None = None) -> int:
        """Run the job (or what is left of it) once; the exit code (``-9``: killed)."""
        child_env = {**env, **({"HUB_KILL_POINT": kill_point} if kill_point else {})}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"env": child_env, "log": str(self.log)}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fork server died (exit {self.proc.poll()})")
        return int(json.loads(answer)["rc"])

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def fork_server() -> int:
    """Serve ``Launcher.run``: one request per line, a process forked per request, its exit code back."""
    import importlib
    import traceback

    from hub.db import get_engine
    from hub.settings import reset_settings
    from mappings import engine as mapping_engine

    for module in PRELOADED:  # what every run imports, loaded once here
        importlib.import_module(module)

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the job's process
            code = 1
            try:
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)  # never onto the server's answers
                os.dup2(fd, 2)
                os.environ.clear()
                os.environ.update(request["env"])
                reset_settings()
                get_engine.cache_clear()
                if os.environ.get(MAPPINGS_ENV):
                    mapping_engine.MAPPINGS_DIR = Path(os.environ[MAPPINGS_ENV])
                run_job(Path(os.environ["HUB_HOME"]))
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.stdout.write(json.dumps({"rc": rc}) + "\n")
        sys.stdout.flush()
    return 0


# -- one crash ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    point: str
    hit: int
    killed: bool
    converged: bool
    reruns: int
    seconds_to_converge: float
    problems: list[str] = field(default_factory=list)


def run_faulted(w: World, fault: contextlib.AbstractContextManager[Any]) -> tuple[int, str, int, WindowRun]:
    """From the snapshot, the job once with ``fault`` on, then re-run with it off until it
    completes (the window taking in alongside); (first exit code, its log's tail, last exit code,
    the window's run)."""
    w.restore()
    with w.window() as window:
        with fault:
            first = w.launcher.run(w.env)
        log = w.launcher.log_tail(4000)
        rc, reruns = first, 0
        while rc != 0 and reruns < MAX_RERUNS:
            reruns += 1
            rc = w.launcher.run(w.env)
    return first, log, rc, window


def crash_once(w: World, reference: Any, window_reference: WindowRun, point: str, hit: int) -> Outcome:
    """One point: the job (or the API, for :data:`API_POINT`) killed there, re-run until complete, compared."""
    from rigs.digest import take_digest

    w.restore()
    armed = f"{point}:{hit}"
    with w.window(armed if point == API_POINT else None) as window:
        rc = w.launcher.run(w.env, kill_point=None if point == API_POINT else armed)
        killed = rc == -signal.SIGKILL
        started = time.perf_counter()
        reruns = 0
        while rc != 0 and reruns < MAX_RERUNS:
            reruns += 1
            rc = w.launcher.run(w.env)
    if point == API_POINT:
        killed = bool(window.died)
    seconds = time.perf_counter() - started
    problems: list[str] = []
    if not killed:
        problems.append(f"the armed run was not killed (exit {rc}): the point was not reached")
    if rc != 0:
        problems.append(
            f"the job did not complete in {MAX_RERUNS} re-runs (last exit {rc}): {w.launcher.log_tail(600)}"
        )
        return Outcome(point, hit, killed, False, reruns, seconds, problems)
    digest = take_digest(f"sqlite:///{w.home / 'hub.db'}", w.home / "store", w.receivers(), aliases=window.aliases())
    problems += window_problems(window_reference, window, w.home / "hub.db")
    problems += digest.invariant_problems()
    problems += reference.differences(without_replays(digest))
    return Outcome(point, hit, killed, not problems, reruns, seconds, problems)


def choose(tally: dict[str, int], n: int, seed: int) -> list[tuple[str, int]]:
    """``n`` (point, hit) pairs: points in turn among those a clean run passes (shuffled), a random hit each.

    >>> choose({"a": 3, "b": 0, "c": 1}, 4, 1)
    [('c', 1), ('a', 2), ('c', 1), ('a', 2)]
    """
    rng = random.Random(seed)
    reached = sorted(p for p, hits in tally.items() if hits > 0)
    out: list[tuple[str, int]] = []
    while len(out) < n:
        order = list(reached)
        rng.shuffle(order)
        out += [(p, rng.randint(1, tally[p])) for p in order]
    return out[:n]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_crash", description=__doc__)
    parser.add_argument("--points", type=int, default=30, help="crash points to try")
    parser.add_argument("--seed", type=int, default=20, help="seed of the choice of points")
    parser.add_argument("--smoke", action="store_true", help="every kill point once (at least 10) on a smaller city")
    parser.add_argument("--at", action="append", default=[], metavar="POINT:HIT",
                        help="try this point at this hit (repeatable) instead of points chosen at random")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="worlds run side by side, each trying its share of the points (default: "
                             "one per core, 2 to 4)")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fork-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from hub.odbcenv import ensure_odbc_env

    ensure_odbc_env()
    if args.fork_server:
        return fork_server()
    if args.worker:
        from bench.crash_jobs import worker

        return worker(json.loads(args.worker), sys.modules[__name__])
    if args.child:
        home = Path(os.environ["HUB_HOME"])
        if args.prepare:
            _prepare_hub(home, Path(args.prepare), args.cases)
        else:
            run_job(home)
        return 0
    sizes, cases = (SMOKE_SIZES, SMOKE_CASES) if args.smoke else (SIZES, CASES)
    at = [(p, int(h)) for p, _, h in (a.rpartition(":") for a in args.at)]
    return run_harness(args.points, args.seed, sizes, cases, every_point=args.smoke, at=at or None, jobs=args.jobs)


def clean_run(w: World) -> tuple[dict[str, Any], Any, WindowRun]:
    """The clean run on ``w`` (the kill points tallied): its figures (``clean_ok``, ``failure``,
    ``invariant_problems``, ``clean_seconds``, ``tally``, ``audit_ok``, ``summary``), the reference
    digest and the window's reference run."""
    from rigs.digest import take_digest

    figures: dict[str, Any] = {"clean_ok": False, "failure": "", "invariant_problems": []}
    started = time.perf_counter()
    with w.window() as window:
        clean = w.launcher.run(w.env, kill_point="tally")
    if clean != 0 or window.error or len(window.answers) != INTAKES:
        figures["failure"] = f"(window: {window.error})\n" + w.launcher.log_tail()
        return figures, None, window
    figures["clean_seconds"] = time.perf_counter() - started
    tally = figures["tally"] = {p: int(tally_hits) for p, tally_hits in
                                json.loads((w.home / "tally.json").read_text()).items()}  # fmt: skip
    tally[API_POINT] = INTAKES  # one audited request per intake (the API's own process is not tallied)
    reference = take_digest(f"sqlite:///{w.home / 'hub.db'}", w.home / "store", w.receivers(), aliases=window.aliases())
    figures["audit_ok"] = reference.audit_ok
    figures["summary"] = reference.summary()
    figures["invariant_problems"] = reference.invariant_problems() + window_problems(window, window, w.home / "hub.db")
    figures["clean_ok"] = not figures["invariant_problems"]
    return figures, reference, window


def print_clean(figures: dict[str, Any], job: str = "", *, hits: bool = True) -> None:
    from hub.killpoints import POINTS

    tally = figures["tally"]
    print(f"clean run{job}: {figures['clean_seconds']:.1f}s, {figures['summary']}", flush=True)
    if hits:
        print(
            "kill point hits in a clean run: " + ", ".join(f"{p} {tally.get(p, 0)}" for p in sorted(POINTS)), flush=True
        )


def chosen_points(
    tally: dict[str, int], points: int, seed: int, every_point: bool, at: Sequence[tuple[str, int]] | None
) -> list[tuple[str, int]]:
    """The points to try, from the clean run's tally: ``at`` as given, else ``points`` chosen from the
    seed (``every_point``: at least 10, and as many as the clean run reaches)."""
    if at is not None:
        return list(at)
    if every_point:
        points = max(10, sum(1 for hits in tally.values() if hits > 0))
    return choose(tally, points, seed)


def print_outcome(o: Outcome, i: int, points: int) -> None:
    state = "converged" if o.converged else "DIVERGED"
    print(f"[{i:3d}/{points}] {o.point}:{o.hit:<4d} {state} after {o.reruns} re-run(s) in "
          f"{o.seconds_to_converge:5.1f}s", flush=True)  # fmt: skip
    for p in o.problems[:12]:
        print(f"        {p}", flush=True)


def default_jobs() -> int:
    """Jobs run side by side by default: one per core, at least 2 and at most 4."""
    return min(4, max(2, os.cpu_count() or 1))


def run(
    points: int,
    seed: int,
    sizes: dict[str, int],
    cases: int = CASES,
    *,
    every_point: bool = False,
    at: Sequence[tuple[str, int]] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """The figures of a clean run and of ``points`` crashes (each at a kill point, then re-run until the
    digest equals the clean run's); ``every_point``: at least 10 points, and as many as the clean run reaches
    (each once). Each crash prints its line as it ends (a full run takes long).

    ``jobs`` above 1: that many worlds side by side (:mod:`bench.crash_jobs`), each in its own process
    with its own city, receivers, hub and clean run; the same points whatever ``jobs``.

    ``clean_ok`` is False when the clean run failed (``failure`` holds its log's tail) or broke an
    invariant (``invariant_problems``); then no point is tried."""
    if jobs > 1:
        from bench.crash_jobs import run_jobs

        return run_jobs(
            points, seed, sizes, cases, every_point=every_point, at=at, jobs=jobs, harness=sys.modules[__name__]
        )
    with (
        tempfile.TemporaryDirectory(prefix="bench_crash_") as tmp,
        world(Path(tmp), sizes, seed=2016, cases=cases) as w,
    ):
        figures, reference, window = clean_run(w)
        figures["outcomes"] = []
        if figures["failure"]:
            return figures
        print_clean(figures)
        if not figures["clean_ok"]:
            return figures
        outcomes: list[Outcome] = figures["outcomes"]
        chosen = chosen_points(figures["tally"], points, seed, every_point, at)
        for i, (point, hit) in enumerate(chosen, 1):
            o = crash_once(w, reference, window, point, hit)
            outcomes.append(o)
            print_outcome(o, i, len(chosen))
    figures["tried"] = len(figures["outcomes"])
    figures["converged"] = sum(o.converged for o in figures["outcomes"])
    return figures


def run_harness(
    points: int,
    seed: int,
    sizes: dict[str, int],
    cases: int = CASES,
    *,
    every_point: bool = False,
    at: Sequence[tuple[str, int]] | None = None,
    jobs: int = 1,
) -> int:
    """:func:`run`, and its summary printed: 0 when every crash converged."""
    f = run(points, seed, sizes, cases, every_point=every_point, at=at, jobs=jobs)
    if f["failure"]:
        print("the clean run failed " + f["failure"])
        return 1
    if f["invariant_problems"]:
        print("the clean run itself breaks an invariant:\n  " + "\n  ".join(f["invariant_problems"]))
        return 1
    outcomes: list[Outcome] = f["outcomes"]
    converged = f["converged"]
    print(f"\npoints tried {len(outcomes)}, converged {converged}/{len(outcomes)}")
    kinds: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        if o.converged:
            kinds[o.point].append(o.seconds_to_converge)
    for point, secs in sorted(kinds.items()):
        print(f"  time to converge after {point:28s} n={len(secs):2d}  mean {sum(secs) / len(secs):5.1f}s  "
              f"max {max(secs):5.1f}s")  # fmt: skip
    for o in outcomes:
        if not o.converged:
            print(f"FAILED {o.point}:{o.hit}: " + "; ".join(o.problems[:5]))
    return 0 if converged == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
