"""The departments' approval systems and their case-step feeds, end to end on a simulated clock:
a back-dated history of applications taken in at the window through the API, each dispatch
pushed to the department's approval system (a webhook), the system playing it out over the days
(most on time, some needing correction, some late, a few rejected) in its own protocol, the hub
pulling the steps through the feed's task bodies every evening — and every case's timeline
through the API equals the approval systems' ground truth, step for step and time for time.
Pulling the same steps again changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from cases.catalogue import load_catalogue
from cases.tables import CaseStep
from hub.airflow_env import connection_uri_env
from hub.clock import clock_at
from hub.db import session_scope
from hub.models import OutboxEvent, SyncState
from pipeline.case_feed import run_feed, step_feeds
from recognition import delivery as dlv
from rigs.connections import odbc_connection
from rigs.testing import TempDatabase
from sandbox.approvals.behaviour import SHANGHAI
from sandbox.approvals.clock import SimClock
from sandbox.approvals.history import MATERIALS, applications
from sandbox.approvals.system import ApprovalSystem, ApprovalSystems, Truth
from sandbox.approvals.tables import COMMERCE, SqlOutlet
from sandbox.commerce.registry import sqlalchemy_url_for, sqlite_connection_string
from tests.cases import world as w
from tests.cases.world import E1, E2, NAMES, P1, P2, World, auth
from tests.recognition.rec_helpers import Receiver, allow_destination

FEED = "commerce_case_steps"
START = dt.date(2026, 9, 1)
WORKDAYS = 12
SEED = 16
POLICY = dlv.DeliveryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=5.0, concurrency=2)


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def commerce_odbc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The commerce department's database: (ODBC connection string, dialect)."""
    if request.param == "sqlite":
        yield sqlite_connection_string(str(tmp_path / "commerce.db")), "sqlite"
        return
    request.getfixturevalue("odbc_mariadb")
    db: TempDatabase = request.getfixturevalue("mariadb_database")
    yield db.odbc_connection_string, "mariadb"


@pytest.fixture()
def city(hub_db_url: str, tmp_path: Path) -> Iterator[World]:
    built = w.build(hub_db_url, tmp_path)
    yield built
    built.engine.dispose()


def _deliver(city: World, now: dt.datetime) -> None:
    for _ in range(10):
        report = dlv.run_once(city.engine, policy=POLICY, now=now)
        if report.attempted == 0 and report.fanned_out == 0:
            return


def _named(missing: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if missing is None else [{k: v for k, v in m.items() if v is not None} for m in missing]


class Simulation:
    """The window, the push, the approval systems and the evening pulls, on one simulated clock."""

    def __init__(self, city: World, api: TestClient, systems: ApprovalSystems, clock: SimClock,
                 inboxes: dict[str, Receiver]) -> None:  # fmt: skip
        self.city, self.api, self.systems, self.clock, self.inboxes = city, api, systems, clock, inboxes
        self.seen: dict[str, int] = dict.fromkeys(inboxes, 0)
        self.codes: list[str] = []
        self.runs: list[dict[str, Any]] = []

    def push(self) -> None:
        """The hub's push, then each approval system takes what reached its inbox."""
        _deliver(self.city, self.clock.now())
        for department, inbox in self.inboxes.items():
            got = inbox.unique_in_order()
            self.systems.take(body for _, body in got[self.seen[department] :] if body["type"] == "case.dispatched")
            self.seen[department] = len(got)

    def intake(self, at: dt.datetime, body: dict[str, Any]) -> None:
        self.clock.set(at)
        with clock_at(self.clock.now):
            res = self.api.post("/v1/cases", json=body, headers=auth(self.city.tokens["window"]))
            assert res.status_code == 201, res.text
            self.codes.append(str(res.json()["code"]))
            self.push()

    def evening(self, day: dt.date) -> None:
        self.clock.set(dt.datetime.combine(day, dt.time(20), tzinfo=SHANGHAI))
        with clock_at(self.clock.now):
            self.push()
            self.systems.tick(self.clock.now())
            self.runs.append(run_feed(FEED, f"sim-{day.isoformat()}"))
            self.push()  # the stages the steps released


def test_a_back_dated_history_reaches_every_timeline_as_the_department_recorded_it(
    city: World, commerce_odbc: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odbc, dialect = commerce_odbc
    monkeypatch.setenv(*connection_uri_env("commerce_registry", odbc_connection(odbc, dialect)))
    assert FEED in step_feeds()
    truth = Truth(tmp_path / "approvals.db")
    outlet = SqlOutlet(sqlalchemy_url_for(odbc, dialect), COMMERCE)
    systems = ApprovalSystems([ApprovalSystem("commerce", outlet, truth, seed=SEED)], truth)
    clock = SimClock(tmp_path / "clock.json", start=dt.datetime.combine(START, dt.time(7), tzinfo=SHANGHAI))
    inbox = Receiver()
    inbox.start()
    api_gen = w.client(city)
    api = next(api_gen)
    try:
        allow_destination(city.engine, "commerce", inbox.origin)
        sub = {"name": "commerce approvals", "event_types": ["case.dispatched"], "url": inbox.url}
        res = api.post("/v1/subscriptions", headers=auth(city.tokens["commerce"]), json=sub)
        assert res.status_code == 201, res.text
        inbox.secret = str(res.json()["secret"])
        sim = Simulation(city, api, systems, clock, {"commerce": inbox})
        apps = applications(
            SEED,
            start=START,
            workdays=WORKDAYS,
            persons=[(P1, NAMES[P1]), (P2, NAMES[P2])],
            enterprises=[(E1, NAMES[E1]), (E2, NAMES[E2])],
        )
        day = START
        last = apps[-1].received_at.astimezone(SHANGHAI).date() + dt.timedelta(days=14)
        queue = list(apps)
        while day <= last:
            while queue and queue[0].received_at.astimezone(SHANGHAI).date() == day:
                app = queue.pop(0)
                sim.intake(app.received_at, app.body)
            sim.evening(day)
            day += dt.timedelta(days=1)

        recorded = truth.steps(department="commerce")
        fates = truth.fates()
        # the history has every behaviour, and every case got its dispatch
        assert {fates[(c, "commerce")] for c in sim.codes} >= {"on_time", "correction", "late"}
        assert set(recorded["code"]) == set(sim.codes) and len(sim.codes) == len(apps)
        assert sum(r["appended"] for r in sim.runs) == len(recorded)
        assert all(r["refused"] == {} for r in sim.runs)
        with clock_at(clock.now):
            for code, rows in recorded.groupby("code"):
                res = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["window"]))
                assert res.status_code == 200, res.text
                timeline = [s for s in res.json()["timeline"] if s["department"] == "commerce"]
                got = [(s["seq"], s["step"], dt.datetime.fromisoformat(s["occurred_at"]), s["note"],
                        _named(s["missing"])) for s in timeline]  # fmt: skip
                want = [(int(r.seq), r.step, r.occurred_at.to_pydatetime(), r.note,
                         json.loads(r.missing) if isinstance(r.missing, str) else None)
                        for r in rows.itertuples()]  # fmt: skip
                assert sorted(got) == sorted(want), code
                assert [g[2] for g in got] == sorted(g[2] for g in got)  # placed by their time
                if fates[(code, "commerce")] == "rejected":
                    assert res.json()["status"] == "rejected"
        # pulled again from the start: nothing changes
        with session_scope(city.engine) as s:
            steps_before = s.scalar(select(func.count()).select_from(CaseStep))
            events_before = s.scalar(select(func.count()).select_from(OutboxEvent))
            s.execute(delete(SyncState).where(SyncState.source == "commerce", SyncState.dataset == "case_steps"))
        with clock_at(clock.now):
            again = run_feed(FEED, "sim-again")
        assert (again["appended"], again["resent"], again["refused"]) == (0, len(recorded), {})
        with session_scope(city.engine) as s:
            assert s.scalar(select(func.count()).select_from(CaseStep)) == steps_before
            assert s.scalar(select(func.count()).select_from(OutboxEvent)) == events_before
    finally:
        api_gen.close()
        inbox.stop()


def test_the_approval_systems_name_materials_as_the_catalogue_does() -> None:
    catalogue = load_catalogue()
    for (item, code), name in MATERIALS.items():
        assert {m.code: m.name for m in catalogue.item(item).materials}[code] == name
