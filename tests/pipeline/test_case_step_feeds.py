"""The departments' approval systems and their case-step feeds, end to end on a simulated clock:
a back-dated history of applications taken in at the window through the API (enterprise
registrations, property transfers, investment-project approvals), each dispatch pushed to the
department's approval system (a webhook; the tax bureau's SOAP notice), the system playing it out over the days
(most on time, some needing correction, some late, a few rejected) in its own protocol, the hub
pulling the steps through the feed's task bodies every evening — and every case's timeline
through the API equals the approval systems' ground truth, step for step and time for time.
Pulling the same steps again changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from cases import supervision
from cases.catalogue import load_catalogue
from cases.supervision_tables import CaseClock
from cases.tables import CaseRecord, CaseStep
from hub.airflow_env import connection_uri_env
from hub.clock import clock_at
from hub.db import session_scope
from hub.models import OutboxEvent, SyncState
from pipeline.case_feed import run_feed, step_feeds
from recognition import delivery as dlv
from recognition import subscriptions as subs_mod
from recognition.tables import Consumer
from rigs.connections import odbc_connection
from rigs.testing import TempDatabase
from sandbox.approvals.behaviour import SHANGHAI, Profile, _days
from sandbox.approvals.clock import SimClock
from sandbox.approvals.history import MATERIALS, applications
from sandbox.approvals.system import ApprovalSystem, ApprovalSystems, Outlet, Truth
from sandbox.approvals.tables import COMMERCE, DEVELOPMENT_REFORM, PUBLIC_SECURITY, LandOutlet, SqlOutlet, TaxOutlet
from sandbox.commerce.registry import sqlalchemy_url_for, sqlite_connection_string
from sandbox.development_reform.platform import Platform
from sandbox.faults import FaultFile
from sandbox.tax.server import TaxServer
from sandbox.tax.store import TaxStore
from sandbox.tax.wsgi import Credentials
from tests.cases import world as w
from tests.cases.world import E1, E2, NAMES, P1, P2, World, auth
from tests.recognition.rec_helpers import Receiver, allow_destination

FEEDS = (
    "commerce_case_steps",
    "tax_case_steps",
    "public_security_case_steps",
    "land_case_steps",
    "development_reform_case_steps",
)
DEPARTMENTS = ("commerce", "tax", "public_security", "land", "development_reform")
#: the department each item's dispatches reach first
FIRST = {"XK00101001": "commerce", "XK00102000": "commerce", "QR00401000": "tax", "XK00501000": "development_reform"}
START = dt.date(2026, 9, 1)
WORKDAYS = 6
#: more of the rarer behaviours than a real year has, so a short history shows each of them
PROFILE = Profile(correction=0.2, late=0.15, rejected=0.1)
SEED = 16
POLICY = dlv.DeliveryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=5.0, concurrency=2)


@dataclass
class Departments:
    """The departments' databases and the tax bureau's service, as their Connections name them."""

    connections: dict[str, dict[str, Any]]
    commerce_url: str
    population_url: str
    tax: TaxStore
    tax_password: str
    land_outbox: Path
    #: the development-and-reform commission's approval platform (SQLite or PostgreSQL, over ODBC)
    platform_url: str


@pytest.fixture(params=["embedded", pytest.param("servers", marks=[pytest.mark.mariadb, pytest.mark.postgres])])
def departments(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Departments]:
    """Commerce over ODBC (SQLite or MariaDB), public security and the development-and-reform commission
    (SQLite or PostgreSQL, over ODBC), the tax SOAP service, the land bureau's package directory."""
    if request.param == "embedded":
        commerce = (sqlite_connection_string(str(tmp_path / "commerce.db")), "sqlite")
        population = (sqlite_connection_string(str(tmp_path / "population.db")), "sqlite")
        population_url = f"sqlite:///{tmp_path / 'population.db'}"
        platform = Platform.embedded(tmp_path)
    else:
        request.getfixturevalue("odbc_mariadb")
        request.getfixturevalue("odbc_postgres")
        maria: TempDatabase = request.getfixturevalue("mariadb_database")
        pg: TempDatabase = request.getfixturevalue("pg_database")
        commerce = (maria.odbc_connection_string, "mariadb")
        population, population_url = (pg.odbc_connection_string, "postgresql"), pg.sqlalchemy_url
        platform = Platform(pg.sqlalchemy_url, pg.odbc_connection_string)  # its own schema, tzxm
    password = "pw-approvals"
    store = TaxStore(tmp_path / "tax.db")
    store.create()
    server = TaxServer(store, FaultFile(tmp_path / "faults.json"), Credentials("hub", password)).start()
    tax = {"conn_type": "http", "host": "127.0.0.1", "port": server.port, "login": "hub", "password": password,
           "extra": {"wsdl_path": "/tax?wsdl"}}  # fmt: skip
    land = tmp_path / "land" / "case_outbox"
    connections = {
        "commerce_registry": odbc_connection(*commerce),
        "population_registry": odbc_connection(*population),
        "tax_soap": tax,
        "land_case_exchange": {"conn_type": "fs", "extra": {"path": str(land)}},
        "development_reform_approvals": odbc_connection(platform.odbc_connection_string, platform.dialect),
    }
    for conn_id, conn in connections.items():
        monkeypatch.setenv(*connection_uri_env(conn_id, conn))
    monkeypatch.setenv("HUB_TEST_TAX_PASSWORD", password)
    try:
        yield Departments(
            connections, sqlalchemy_url_for(*commerce), population_url, store, password, land, platform.sqlalchemy_url
        )
    finally:
        server.stop()


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
                 inboxes: dict[str, Callable[[], list[dict[str, Any]]]]) -> None:  # fmt: skip
        self.city, self.api, self.systems, self.clock, self.inboxes = city, api, systems, clock, inboxes
        self.seen: dict[str, int] = dict.fromkeys(inboxes, 0)
        self.codes: list[str] = []
        self.runs: list[dict[str, Any]] = []
        #: the evenings whose lights were compared with the ground truth, and the clocks compared
        self.compared: list[pd.DataFrame] = []

    def push(self) -> None:
        """The hub's push, then each approval system takes what reached its inbox."""
        _deliver(self.city, self.clock.now())
        for department, inbox in self.inboxes.items():
            got = inbox()
            self.systems.take(body for body in got[self.seen[department] :] if body["type"] == "case.dispatched")
            self.seen[department] = len(got)

    def intake(self, at: dt.datetime, body: dict[str, Any]) -> None:
        self.clock.set(at)
        with clock_at(self.clock.now):
            res = self.api.post("/v1/cases", json=body, headers=auth(self.city.tokens["window"]))
            assert res.status_code == 201, res.text
            self.codes.append(str(res.json()["code"]))
            self.systems.truth.receive(self.codes[-1], body["item_code"], at)  # the window's acceptance
            self.push()

    def evening(self, day: dt.date) -> None:
        self.clock.set(dt.datetime.combine(day, dt.time(20), tzinfo=SHANGHAI))
        with clock_at(self.clock.now):
            self.push()
            self.systems.tick(self.clock.now())
            for feed in FEEDS:
                self.runs.append(run_feed(feed, f"sim-{day.isoformat()}"))
            self.push()  # the stages the steps released
            with session_scope(self.city.engine) as s:  # the supervision task, as of the evening
                supervision.recompute_lights(s, today=day)
        self.compared.append(assert_lights_are_the_truth(self.city, self.systems.truth, self.clock.now()))


def hub_lights(city: World) -> pd.DataFrame:
    """Every clock the hub keeps that has started: code, department, state, used, limit, light, overdue."""
    with session_scope(city.engine) as s:
        rows = s.execute(
            select(CaseRecord.code, CaseClock.department, CaseClock.state, CaseClock.used, CaseClock.promised_limit,
                   CaseClock.light, CaseClock.overdue, CaseRecord.status)
            .join(CaseRecord, CaseRecord.id == CaseClock.case_id).where(CaseClock.state != "not_started")
        ).all()  # fmt: skip
    return pd.DataFrame([tuple(r) for r in rows], columns=[*COLUMNS, "status"])


COLUMNS = ["code", "department", "state", "used", "limit", "light", "overdue"]


def assert_lights_are_the_truth(city: World, truth: Truth, as_of: dt.datetime) -> pd.DataFrame:
    """The hub's lights and overdue working days of every case and stage equal the sandbox's truth as of
    ``as_of`` — every clock whose steps were all on record by then (the others wait for the steps
    entered the next morning: they are compared on the evening after)."""
    key = ["code", "department"]
    everything = truth.lights(as_of)
    want = everything[everything["on_record"]]
    waiting = set(everything.loc[~everything["on_record"], key].itertuples(index=False, name=None))
    got = hub_lights(city)
    got = got[[k not in waiting for k in got[key].itertuples(index=False, name=None)]]
    merged = got.merge(want, on=key, how="outer", suffixes=("_hub", "_truth"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    assert only.empty, f"as of {as_of}: clocks on one side only\n{only[[*key, '_merge']].to_string()}"
    differ = merged[[any(r[f"{c}_hub"] != r[f"{c}_truth"] for c in COLUMNS[2:]) for _, r in merged.iterrows()]]
    if not differ.empty:
        steps = truth.steps()
        shown = steps[steps["code"].isin(differ["code"])][["code", "department", "seq", "step", "occurred_at", "fate"]]
        raise AssertionError(
            f"as of {as_of}: the hub disagrees with the sandbox's truth\n{differ.to_string()}\n{shown.to_string()}"
        )
    return everything


def _subscribe(city: World, api: TestClient, departments: Departments) -> dict[str, Callable[[], list[Any]]]:
    """Commerce's, public security's, the land bureau's and the commission's systems take their dispatches
    by webhook, the tax bureau's through its SOAP notice operation; returns what each has received so
    far, in order."""
    inboxes: dict[str, Callable[[], list[Any]]] = {}
    for department in ("commerce", "public_security", "land", "development_reform"):
        receiver = Receiver()
        receiver.start()
        allow_destination(city.engine, department, receiver.origin)
        with session_scope(city.engine) as s:  # an operator's subscription for the department's key
            consumer = s.scalars(select(Consumer.id).where(Consumer.name == department)).one()
            sub = subs_mod.create(s, name=f"{department} approvals", event_types=["case.dispatched"],
                                  url=receiver.url, consumer_id=consumer)  # fmt: skip
            receiver.secret = str(sub.secret)
        inboxes[department] = lambda r=receiver: [body for _, body in r.unique_in_order()]  # type: ignore[misc]
    port = departments.connections["tax_soap"]["port"]
    allow_destination(city.engine, "tax", f"http://127.0.0.1:{port}/")
    with session_scope(city.engine) as s:
        tax_id = s.scalars(select(Consumer.id).where(Consumer.name == "tax")).one()
        sub = subs_mod.create(s, name="tax approvals", event_types=["case.dispatched"], consumer_id=tax_id,
                              url=f"http://127.0.0.1:{port}/tax?wsdl", channel="soap")  # fmt: skip
        sub.secret_env = "HUB_TEST_TAX_PASSWORD"
    inboxes["tax"] = lambda: [json.loads(n["payload_json"]) for n in departments.tax.notices()]
    return inboxes


def test_a_back_dated_history_reaches_every_timeline_as_the_departments_recorded_it(
    city: World, departments: Departments, tmp_path: Path
) -> None:
    assert set(FEEDS) <= set(step_feeds())
    truth = Truth(tmp_path / "approvals.db")
    platform = SqlOutlet(departments.platform_url, DEVELOPMENT_REFORM)
    outlets: dict[str, Outlet] = {
        "commerce": SqlOutlet(departments.commerce_url, COMMERCE), "tax": TaxOutlet(departments.tax),
        "public_security": SqlOutlet(departments.population_url, PUBLIC_SECURITY),
        "land": LandOutlet(departments.land_outbox), "development_reform": platform,
    }  # fmt: skip
    systems = ApprovalSystems(
        [ApprovalSystem(d, o, truth, seed=SEED, profile=PROFILE) for d, o in outlets.items()], truth
    )
    clock = SimClock(tmp_path / "clock.json", start=dt.datetime.combine(START, dt.time(7), tzinfo=SHANGHAI))
    api_gen = cast(Generator[TestClient], w.client(city))  # closed below: the app's resources released
    api = next(api_gen)
    try:
        sim = Simulation(city, api, systems, clock, _subscribe(city, api, departments))
        apps = applications(SEED, start=START, workdays=WORKDAYS, persons=[(P1, NAMES[P1]), (P2, NAMES[P2])],
                            enterprises=[(E1, NAMES[E1]), (E2, NAMES[E2])], per_day=(2, 4),
                            items=tuple(FIRST))  # fmt: skip
        day = START
        queue = list(apps)
        # until the window has taken every application in and no department has a step still to enter
        while queue or truth.pending():
            assert day < START + dt.timedelta(days=120), "the history never settled"
            while queue and queue[0].received_at.astimezone(SHANGHAI).date() == day:
                app = queue.pop(0)
                sim.intake(app.received_at, app.body)
            if _days().is_workday(day):  # the departments' systems take no steps on days off
                sim.evening(day)
            day += dt.timedelta(days=1)

        recorded = truth.steps()
        fates = truth.fates()
        # every case reached its first department; the history has every behaviour; every department acted
        assert len(sim.codes) == len(apps) and {c for c, _ in fates} == set(sim.codes)
        first = {code: FIRST[app.body["item_code"]] for code, app in zip(sim.codes, apps, strict=True)}
        assert all((code, department) in fates for code, department in first.items())
        # the commission's project approvals are in the history, each concluded or refused by it
        projects = {code for code, department in first.items() if department == "development_reform"}
        assert projects and {c for c, d in fates if d == "development_reform"} == projects
        assert {f for (_, d), f in fates.items() if d == "development_reform"} > {"on_time"}
        # every step the commission decided is a row of its platform's table, which the hub read over ODBC
        assert platform.count() == len(recorded[recorded["department"] == "development_reform"])
        assert set(fates.values()) >= {"on_time", "correction", "late", "rejected"}
        assert {d for _, d in fates} == set(DEPARTMENTS)
        assert sum(r["appended"] for r in sim.runs) == len(recorded)
        assert all(r["refused"] == {} for r in sim.runs)
        # every evening's lights equalled the truth; the history shows every light, on stages and on cases
        final = sim.compared[-1]
        assert len(sim.compared) >= WORKDAYS and set(final["code"]) == set(sim.codes)
        seen = pd.concat(sim.compared)
        for side in (seen[seen["department"] == "*"], seen[seen["department"] != "*"]):
            assert set(side["light"]) == {"green", "yellow", "red"}
        assert (final["overdue"] > 0).any() and set(final["state"]) == {"ended"} and final["on_record"].all()
        assert seen["on_record"].mean() > 0.8  # most clocks compared every evening, not only at the end
        with clock_at(clock.now):
            for code, rows in recorded.groupby("code"):
                res = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["window"]))
                assert res.status_code == 200, res.text
                timeline = [s for s in res.json()["timeline"] if s["department"] != "window"]
                got = [(s["department"], s["seq"], s["step"], dt.datetime.fromisoformat(s["occurred_at"]), s["note"],
                        _named(s["missing"])) for s in timeline]  # fmt: skip
                want = [(r.department, int(r.seq), r.step, r.occurred_at.to_pydatetime(), r.note,
                         json.loads(r.missing) if isinstance(r.missing, str) else None)
                        for r in rows.itertuples()]  # fmt: skip
                assert sorted(got) == sorted(want), code
                assert [g[3] for g in got] == sorted(g[3] for g in got)  # placed by their time
                if "rejected" in {fates[(code, d)] for d in DEPARTMENTS if (code, d) in fates}:
                    assert res.json()["status"] == "rejected"
        # pulled again from the start: nothing changes
        with session_scope(city.engine) as s:
            steps_before = s.scalar(select(func.count()).select_from(CaseStep))
            events_before = s.scalar(select(func.count()).select_from(OutboxEvent))
            s.execute(delete(SyncState).where(SyncState.dataset == "case_steps"))
        # the land bureau sends its steps again in new packages (the hub archived the ones it read)
        assert systems.systems["land"].resend() == len(recorded[recorded["department"] == "land"])
        with clock_at(clock.now):
            again = [run_feed(feed, "sim-again") for feed in FEEDS]
        assert sum(a["appended"] for a in again) == 0 and sum(a["resent"] for a in again) == len(recorded)
        assert all(a["refused"] == {} for a in again)
        with session_scope(city.engine) as s:
            assert s.scalar(select(func.count()).select_from(CaseStep)) == steps_before
            assert s.scalar(select(func.count()).select_from(OutboxEvent)) == events_before
    finally:
        next(api_gen, None)  # the client closes when its generator runs on


def test_the_approval_systems_name_materials_as_the_catalogue_does() -> None:
    catalogue = load_catalogue()
    for (item, code), name in MATERIALS.items():
        assert {m.code: m.name for m in catalogue.item(item).materials}[code] == name
