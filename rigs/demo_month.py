"""The demo's back-dated month of the city's cases (演示: 一个月的办件), replayed day by day.

Over the last 22 working days the window takes in applications and the departments report their
steps, each on its own day; after each day the supervision task lights every running clock as of
that day, so lights change during the run: a stage left open past its promise turns yellow, then
red, and is escalated (督办). The joint enterprise registration (多证联办) is concluded with its three
licences issued together (each naming the case), picked up at the window and evaluated (好差评).

Afterwards the delivery worker pushes: the supervision office (a consumer with ``supervision:read``
subscribed to ``supervision.light_changed`` and ``supervision.escalated``) receives them on its own
receiver, and the applicants' notices go to the sandbox SMS gateway through the subscription the
demo declares with ``channel: sms``. The summary prints the lights, the pushes, the texts the
gateway sent for the joint registration, and the figures table (:func:`cases.cli.figures_table`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from stdnum.cn import uscc

from cases import conclusion, evaluation, intake, service, supervision
from cases.cli import figures_table
from cases.schemas import IntakeIn, StepIn
from cases.stats import figures
from cases.steps import Step
from cases.supervision_tables import CaseLightChange
from cases.workdays import WorkCalendar
from connectors.webhook import WebhookVerificationError, generate_secret, verify
from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from hub.db import session_scope
from hub.masking import mask_name
from hub.models import local_today
from identity.tables import IdentityPerson
from mappings.canonical.models import HolderKind, SourceRef
from recognition import delivery
from recognition.consumers import add_consumer
from recognition.destinations import allow
from recognition.subscriptions import create as subscribe
from recognition.subscriptions import sync_yaml
from recognition.tables import Consumer
from sandbox.sms import SmsGatewayServer, start_gateway

CST = dt.timezone(dt.timedelta(hours=8))
DAYS = 22
#: the supervision office's consumer: the month is replayed once per hub database
OFFICE = "supervision-office-demo"
SMS_TOKEN_ENV = "HUB_DEMO_SMS_TOKEN"  # noqa: S105 - the name of a variable
JOINT, TAX_PROOF = "XK00101001", "GG00201000"
#: the licences of the joint registration: type → (department, issuer, surface)
JOINT_LICENCES = {
    "1101": ("commerce", "113303220025678958", "enterprise_name"),
    "1102": ("tax", "11330322002567334J", "taxpayer_name"),
    "1103": ("public_security", "113303220025675452", "enterprise_name"),
}


class OfficeReceiver:
    """The supervision office's webhook receiver: verifies each signature, keeps each event once."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.events: dict[str, dict[str, Any]] = {}
        #: the idempotency key (``webhook-id``) of every verified post, repeats included
        self.keys: list[str] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    verify(receiver.secret, dict(self.headers.items()), body)
                except WebhookVerificationError:
                    self.send_response(401)
                    self.end_headers()
                    return
                with lock:
                    receiver.keys.append(self.headers["webhook-id"])
                    receiver.events.setdefault(self.headers["webhook-id"], json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="supervision-office", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/supervision"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MonthReplayed(RuntimeError):
    """The month was replayed on this hub database before (its cases would be taken in twice)."""


@dataclass
class MonthReport:
    cases: int = 0
    joint_code: str = ""
    #: changes of light during the run, by the light turned to
    turned: Counter[str] = field(default_factory=Counter)
    escalations: int = 0
    #: events the supervision office received, by type (each once)
    office: Counter[str] = field(default_factory=Counter)
    #: the idempotency key of every post the office received (a repeat would show twice)
    office_keys: list[str] = field(default_factory=list)
    #: the idempotency key (``out_id``) of every message the SMS gateway sent, and its requests by outcome
    sms_keys: list[str] = field(default_factory=list)
    sms_outcomes: dict[str, int] = field(default_factory=dict)
    #: texts the SMS gateway sent for the joint registration
    joint_texts: list[str] = field(default_factory=list)
    sms_sent: int = 0
    figures: list[Any] = field(default_factory=list)


def _phone(code: str) -> str:
    return "138" + str(int(hashlib.sha256(code.encode()).hexdigest(), 16))[-8:]


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST)


def _applicants(session: Session, n: int) -> list[tuple[str, str]]:
    q = select(IdentityPerson.resident_id, IdentityPerson.name).order_by(IdentityPerson.resident_id).limit(n)
    rows = session.execute(q).all()
    return [(str(code), str(name or "某某")) for code, name in rows]


def _joint_body(applicant: tuple[str, str], received: dt.datetime) -> dict[str, Any]:
    code, name = applicant
    provided = {"M01": "upload", "M02": "upload", "M03": "paper", "M04": "commitment", "M05": "paper",
                "M06": "upload"}  # fmt: skip
    return {
        "item_code": JOINT, "received_at": received.isoformat(), "subject": f"温州洞头{name[:1]}氏科技有限公司",
        "applicant": {"code": code, "name": name, "phone": _phone(code)},
        "materials": [{"code": m, "provided": p} for m, p in provided.items()],
    }  # fmt: skip


def _tax_body(applicant: tuple[str, str], received: dt.datetime) -> dict[str, Any]:
    code, name = applicant
    return {"item_code": TAX_PROOF, "received_at": received.isoformat(),
            "applicant": {"code": code, "name": name, "phone": _phone(code)},
            "materials": [{"code": "M01", "provided": "upload"}]}  # fmt: skip


@dataclass
class _Plan:
    """What happens on each day: (time, action) pairs; an action takes the session and the codes so far."""

    days: dict[dt.date, list[tuple[dt.datetime, Any]]] = field(default_factory=dict)

    def on(self, at: dt.datetime, action: Any) -> None:
        self.days.setdefault(at.date(), []).append((at, action))


def _take_in(name: str, body: dict[str, Any], codes: dict[str, str]) -> Any:
    def act(s: Session, at: dt.datetime) -> None:
        codes[name] = intake.take_in(s, IntakeIn.model_validate(body), actor="window:demo", now=at).case.code

    return act


def _step(name: str, department: str, seq: int, kind: Step, codes: dict[str, str], **extra: Any) -> Any:
    def act(s: Session, at: dt.datetime) -> None:
        body = StepIn(seq=seq, step=kind, occurred_at=at, **extra)
        service.record_step(s, codes[name], department, body, actor=f"{department}:demo", now=at)

    return act


def _stage(plan: _Plan, name: str, department: str, day: dt.date, codes: dict[str, str], *, first: int = 1,
           done: bool = True, hour: int = 10) -> None:  # fmt: skip
    plan.on(_at(day, hour), _step(name, department, first, Step.ACCEPTED, codes))
    if done:
        plan.on(_at(day, hour + 3), _step(name, department, first + 1, Step.APPROVED, codes))
        plan.on(_at(day, hour + 4), _step(name, department, first + 2, Step.RESULT_ISSUED, codes))


def plan_month(
    today: dt.date, calendar: WorkCalendar, people: Sequence[tuple[str, str]], licences: LicenseService
) -> tuple[_Plan, dict[str, str]]:
    """The month's applications and steps; ``codes`` fills with each case's supervision code as it runs."""
    d = [calendar.add(today, -k) for k in range(DAYS, -1, -1)]  # d[-1] is today, d[0] 22 working days ago
    plan, codes = _Plan(), dict[str, str]()

    def person(i: int) -> tuple[str, str]:
        return people[i % len(people)]

    # the joint registration: commerce in a day, then tax and public security in parallel; picked up
    plan.on(_at(d[8], 9), _take_in("joint", _joint_body(person(0), _at(d[8], 9)), codes))
    _stage(plan, "joint", "commerce", d[8], codes)
    _stage(plan, "joint", "tax", d[9], codes)
    _stage(plan, "joint", "public_security", d[9], codes, hour=11)
    plan.on(_at(d[9], 16), lambda _s, at: _issue_joint(licences, codes["joint"], at.date()))
    plan.on(_at(d[10], 15), _step("joint", "window", 3, Step.DELIVERED, codes))
    plan.on(_at(d[10], 15, 5), lambda s, at: evaluation.evaluate(
        s, service.find_case(s, codes["joint"]), "very_satisfied", "一次办好", channel="window", by="window:demo",
        now=at))  # fmt: skip
    # a correction requested and supplied, then concluded late
    plan.on(_at(d[4], 9), _take_in("corrected", _joint_body(person(1), _at(d[4], 9)), codes))
    plan.on(_at(d[4], 10), _step("corrected", "commerce", 1, Step.ACCEPTED, codes))
    plan.on(_at(d[4], 11), _step("corrected", "commerce", 2, Step.CORRECTION_REQUESTED, codes,
                                 missing=[{"code": "M02", "name": "公司章程（签字页）"}]))  # fmt: skip
    plan.on(_at(d[6], 10), _step("corrected", "commerce", 3, Step.RESUMED, codes))
    plan.on(_at(d[7], 10), _step("corrected", "commerce", 4, Step.APPROVED, codes))
    plan.on(_at(d[7], 11), _step("corrected", "commerce", 5, Step.RESULT_ISSUED, codes))
    _stage(plan, "corrected", "tax", d[8], codes)
    _stage(plan, "corrected", "public_security", d[8], codes, hour=11)
    # commerce accepts and then lets it lie: yellow, then red and escalated during the run
    plan.on(_at(d[14], 9), _take_in("stalled", _joint_body(person(2), _at(d[14], 9)), codes))
    plan.on(_at(d[14], 10), _step("stalled", "commerce", 1, Step.ACCEPTED, codes))
    # accepted yesterday: yellow at the end of the run
    plan.on(_at(d[-2], 9), _take_in("fresh", _joint_body(person(3), _at(d[-2], 9)), codes))
    plan.on(_at(d[-2], 10), _step("fresh", "commerce", 1, Step.ACCEPTED, codes))
    # tax certificates on the spot (即办件), every other working day
    for i, day in enumerate(d[:-1:2]):
        name = f"proof-{i}"
        plan.on(_at(day, 9, 30), _take_in(name, _tax_body(person(4 + i), _at(day, 9, 30)), codes))
        plan.on(_at(day, 10, 30), _step(name, "tax", 1, Step.ACCEPTED, codes))
        plan.on(_at(day, 11, 30), _step(name, "tax", 2, Step.APPROVED, codes))
    return plan, codes


def _issue_joint(licences: LicenseService, code: str, day: dt.date) -> None:
    """The three departments' licences of the joint registration, each naming the case (并联出件)."""
    name = "温州洞头示范科技有限公司"
    holder = _uscc("330322", str(int(hashlib.sha256(code.encode()).hexdigest(), 16) % 10**8).zfill(8))
    for type_code, (department, issuer, field_name) in JOINT_LICENCES.items():
        surface = {field_name: name} | ({"seal_types": "公章"} if type_code == "1103" else {})
        draft = LicenseDraft(
            license_type_code=type_code, license_number=f"{type_code}-{code}", holder_name=name, holder_code=holder,
            holder_kind=HolderKind.enterprise, issuer_code=issuer, issue_date=day, surface=surface, case_code=code,
        )  # fmt: skip
        source = SourceRef(department=department, dataset="demo_month", source_key=f"{code}-{type_code}",
                           source_version="1", run_id="demo-month")  # fmt: skip
        licences.issue(draft, source)


def _uscc(region: str, org8: str) -> str:
    """A USCC of ``region`` around an organisation code body: its check (GB 11714), then the USCC's (GB 32100)."""
    values = [int(c) for c in org8]
    check = 11 - sum(w * v for w, v in zip((3, 7, 9, 10, 5, 8, 4, 2), values, strict=True)) % 11
    full = "91" + region + org8 + {10: "X", 11: "0"}.get(check, str(check))
    return full + uscc.calc_check_digit(full)


def _subscribe(engine: Engine, home: Path, office: OfficeReceiver, gateway: SmsGatewayServer) -> None:
    """The supervision office's subscription (a consumer) and the demo's declared SMS subscription."""
    with session_scope(engine) as s:
        consumer, _token = add_consumer(s, OFFICE, ["supervision:read", "subscriptions:manage"])
        allow(s, OFFICE, office.url.rsplit("/", 1)[0] + "/", private=True)
        sub = subscribe(s, consumer_id=consumer.id, name="电子监察 黄灯红灯督办",
                        event_types=["supervision.light_changed", "supervision.escalated"], url=office.url)  # fmt: skip
        office.secret = str(sub.secret)
    path = home / "demo_subscriptions.yaml"
    declared: list[dict[str, Any]] = []
    if path.exists():
        declared = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("subscriptions", [])
    declared = [s for s in declared if s.get("id") != "demo-applicant-sms"] + [{
        "id": "demo-applicant-sms", "name": "办件短信通知 (demo)", "event_types": ["case.notice"], "channel": "sms",
        "url": gateway.url, "secret_env": SMS_TOKEN_ENV,
    }]  # fmt: skip
    path.write_text(yaml.safe_dump({"subscriptions": declared}, allow_unicode=True), encoding="utf-8")
    with session_scope(engine) as s:
        sync_yaml(s, path)


def run_month(
    engine: Engine,
    licences: LicenseService,
    home: Path,
    *,
    today: dt.date | None = None,
    sms_token: str = "demo-sms-token",  # noqa: S107 - the sandbox gateway's, set for this run
) -> MonthReport:
    """Replay the month on the hub database at ``engine``; push; return what happened."""
    today = today or local_today()
    calendar = WorkCalendar.default()
    report = MonthReport()
    with session_scope(engine) as s:
        if s.scalar(select(Consumer.id).where(Consumer.name == OFFICE)) is not None:
            raise MonthReplayed(f"the month was replayed on this database already ({OFFICE} exists)")
        people = _applicants(s, 16)
    if not people:
        raise RuntimeError("the identity index holds no person: run the main job first")
    office = OfficeReceiver(generate_secret())
    gateway = start_gateway(home / "sandbox_sms", token=sms_token)
    os.environ[SMS_TOKEN_ENV] = sms_token
    try:
        _subscribe(engine, home, office, gateway)
        plan, codes = plan_month(today, calendar, people, licences)
        for day in sorted(set(plan.days) | {calendar.add(today, -k) for k in range(DAYS + 1)}):
            for at, action in sorted(plan.days.get(day, []), key=lambda x: x[0]):
                with session_scope(engine) as s:
                    action(s, at)
            with session_scope(engine) as s:  # the supervision task of that day
                supervision.recompute_lights(s, today=day)
        with session_scope(engine) as s:
            conclusion.check_missing(s)
            report.turned.update(_turned(s))
            report.escalations = len(supervision.escalations(s, open_only=False))
            report.figures = figures(s, since=calendar.add(today, -DAYS), until=today)
        for _ in range(30):
            rep = delivery.run_once(engine)
            if rep.attempted == 0 and rep.fanned_out == 0:
                break
        report.cases, report.joint_code = len(codes), codes["joint"]
        report.office.update(e["type"] for e in office.events.values())
        report.office_keys = list(office.keys)
        sent = gateway.gateway.store.messages()
        report.sms_sent = len(sent)
        report.sms_keys = [m.out_id for m in sent]
        report.sms_outcomes = gateway.gateway.store.outcomes()
        # printed as the gateway logs them: the recipient's name masked (the texts themselves name them)
        report.joint_texts = [_masked_text(m.text, m.params) for m in sent if f":{codes['joint']}:" in m.out_id]
    finally:
        office.stop()
        gateway.stop()
    return report


def _turned(session: Session) -> Counter[str]:
    return Counter(str(r) for r in session.scalars(select(CaseLightChange.to_light)))


def _masked_text(text: str, params: dict[str, str]) -> str:
    """An SMS as the summary shows it: the recipient's name (the ``name`` parameter) masked.

    >>> _masked_text("【洞头政务服务】谢德华您好，您申请的…已受理。", {"name": "谢德华"})
    '【洞头政务服务】谢**您好，您申请的…已受理。'
    """
    name = params.get("name") or ""
    return text.replace(name, mask_name(name) or "") if name else text


def print_month(report: MonthReport, console: Console) -> None:
    table = Table(title=f"a back-dated month: {report.cases} cases")
    table.add_column("what")
    table.add_column("count", justify="right")
    for light in ("yellow", "red"):
        table.add_row(f"changes of light to {light}", str(report.turned.get(light, 0)))
    table.add_row("escalations (督办)", str(report.escalations))
    for kind in ("supervision.light_changed", "supervision.escalated"):
        table.add_row(f"supervision office received {kind}", str(report.office.get(kind, 0)))
    table.add_row("SMS sent by the gateway", str(report.sms_sent))
    console.print(table)
    console.print(f"the joint registration {report.joint_code}: SMS sent")
    for text in report.joint_texts:
        console.print(f"  {text}")
    console.print(figures_table(report.figures, "the month's figures, by item"))
