"""A small city for the case tests: persons and enterprises in the identity index (through the
identity part's own linking), their licences in the e-licence store (signed for real), consumers
with their scopes and departments, and the API app over it — on SQLite or PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from stdnum.cn import uscc as stdnum_uscc
from stdnum.iso7064 import mod_11_2, mod_11_10

from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory, session_scope
from hub.models import OutboxEvent
from hub.settings import get_settings
from identity.resolve import resolve_batch
from mappings.canonical.models import HolderKind, SourceRef
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory


def resident_id(body17: str) -> str:
    return body17 + mod_11_2.calc_check_digit(body17)


def org_code(body8: str) -> str:
    """GB 11714: weights 3 7 9 10 5 8 4 2, MOD 11 (10 → X, 11 → 0)."""
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in body8]
    check = 11 - sum(w * v for w, v in zip((3, 7, 9, 10, 5, 8, 4, 2), values, strict=True)) % 11
    return body8 + {10: "X", 11: "0"}.get(check, str(check))


def uscc(region: str, org_body8: str, prefix: str = "91") -> str:
    body = f"{prefix}{region}{org_code(org_body8)}"
    return body + stdnum_uscc.calc_check_digit(body)


def reg_no(body14: str) -> str:
    return body14 + mod_11_10.calc_check_digit(body14)


#: 陈海生: owns the premises (不动产权证书 filed under his resident id)
P1 = resident_id("33032219800101001")
#: 林晓梅: known by her old 15-digit card too; her certificate is filed under that old code
P2 = resident_id("33032219850202002")
LEGACY_P2 = "330322850202002"
#: 赵志远: from Beijing, not in the local population index
P3 = resident_id("11010519900303003")
#: 王建国: an agent (代办员)
AGENT = resident_id("33032219750505005")
E1 = uscc("330322", "12345678")
REG_E1 = reg_no("33032200001234")
E2 = uscc("330322", "87654321")
NAMES = {
    P1: "陈海生",
    P2: "林晓梅",
    P3: "赵志远",
    AGENT: "王建国",
    E1: "温州洞头海景餐饮有限公司",
    E2: "洞头蓝湾渔业有限公司",
}
PHONE = "13857712345"
ADDRESS = "浙江省温州市洞头区北岙街道海滨路8号"

#: consumer → (scopes, department)
CONSUMERS: dict[str, tuple[list[str], str | None]] = {
    "window": (["cases:write", "cases:read", "personal:read"], None),
    "portal": (["cases:read", "licenses:read:*", "recognitions:read"], None),
    "portal_writer": (["cases:write", "cases:read"], None),
    "commerce": (["cases:read", "cases:steps:commerce", "subscriptions:manage"], "commerce"),
    "tax": (["cases:read", "cases:steps:tax", "subscriptions:manage"], "tax"),
    "public_security": (["cases:read", "cases:steps:public_security", "subscriptions:manage"], "public_security"),
    "land": (["cases:read", "cases:steps:land"], "land"),
    "development_reform": (
        ["cases:read", "cases:steps:development_reform", "subscriptions:manage"],
        "development_reform",
    ),
    # a key with the tax step scope but bound to commerce: the binding wins
    "commerce_with_tax_scope": (["cases:read", "cases:steps:commerce", "cases:steps:tax"], "commerce"),
    # an unbound integration key that reports tax's steps
    "tax_bridge": (["cases:steps:tax"], None),
    "commerce_counter": (["cases:write", "cases:read", "personal:read"], "commerce"),
    "monitor": (["metrics:read"], None),
    "supervision_office": (["supervision:read"], None),
    "nobody": ([], None),
}


@dataclass
class World:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    service: LicenseService
    licences: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Rows of every table a case write touches (to prove a refusal wrote nothing)."""
        with self.sessions() as s:
            return {
                t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (CaseRecord, CaseMaterial, CaseDispatch, CaseStep, CaseAuthorisation, OutboxEvent)
            }


def _source(key: str, department: str) -> SourceRef:
    return SourceRef(department=department, dataset="ds", source_key=key, source_version="v1", run_id="run-1")


def _seed_identities(session: Session) -> None:
    people = pd.DataFrame(
        [
            {"_source_key": "p1", "_source_version": "1", "resident_id": P1, "name": NAMES[P1],
             "birth_date": "1980-01-01", "address": ADDRESS},
            {"_source_key": "p2", "_source_version": "1", "resident_id": LEGACY_P2, "name": NAMES[P2],
             "birth_date": "1985-02-02", "address": ADDRESS},
            {"_source_key": "a1", "_source_version": "1", "resident_id": AGENT, "name": NAMES[AGENT],
             "birth_date": "1975-05-05", "address": ADDRESS},
        ]
    )  # fmt: skip
    resolve_batch(session, people, "person", "public_security", "persons")
    firms = pd.DataFrame(
        [
            {"_source_key": "e1", "_source_version": "1", "uscc": E1, "reg_no": REG_E1, "org_code": E1[8:17],
             "name": NAMES[E1], "legal_rep_resident_id": P1, "legal_rep_name": NAMES[P1]},
            {"_source_key": "e2", "_source_version": "1", "uscc": E2, "org_code": E2[8:17], "name": NAMES[E2],
             "legal_rep_resident_id": P2, "legal_rep_name": NAMES[P2]},
        ]
    )  # fmt: skip
    resolve_batch(session, firms, "enterprise", "commerce", "enterprises")
    session.commit()


def _issue(service: LicenseService, key: str, type_code: str, holder: str, kind: HolderKind, dept: str,
           surface: dict[str, Any], *, issued: dt.date | None = None) -> str:  # fmt: skip
    draft = LicenseDraft(
        license_type_code=type_code, license_number=f"N-{key}", holder_name=NAMES.get(holder, NAMES[P2]),
        holder_code=holder, holder_kind=kind, issuer_code="113303220025678958",
        issue_date=issued or dt.date.today() - dt.timedelta(days=30), surface=surface,
    )  # fmt: skip
    return service.issue(draft, _source(key, dept)).license_id


def build(url: str, tmp: Path) -> World:
    """The world on the migrated hub database at ``url``."""
    key_dir = tmp / "keys"
    rotate(key_dir)
    store, keyring = LocalStore(tmp / "store"), load_keyring(key_dir)
    engine = make_engine(url)
    sessions = session_factory(engine)
    world = World(url, engine, sessions, LicenseService(store, sessions, keyring))
    with sessions() as s:
        _seed_identities(s)
    svc = world.service
    world.licences["p1_property"] = _issue(
        svc,
        "u1",
        "2101",
        P1,
        HolderKind.person,
        "land",
        {"unit_no": "330322001001GB00001F00010001", "location": ADDRESS},
    )
    world.licences["p2_property_legacy"] = _issue(
        svc, "u2", "2101", LEGACY_P2, HolderKind.person, "land",
        {"unit_no": "330322001001GB00002F00010002", "location": ADDRESS},
    )  # fmt: skip
    world.licences["e1_business"] = _issue(
        svc, "b1", "1101", E1, HolderKind.enterprise, "commerce", {"enterprise_name": NAMES[E1]}
    )
    world.licences["e1_preview"] = _issue(
        svc, "a1", "3101", E1, HolderKind.enterprise, "land", {"project_name": "海景餐厅扩建", "conclusion": "同意"}
    )
    world.licences["e2_preview"] = _issue(
        svc, "a2", "3101", E2, HolderKind.enterprise, "land", {"project_name": "渔港改造", "conclusion": "同意"}
    )
    world.licences["e1_preview_expired"] = _issue(
        svc, "a3", "3101", E1, HolderKind.enterprise, "land", {"project_name": "旧项目", "conclusion": "同意"},
        issued=dt.date.today() - dt.timedelta(days=4 * 365),
    )  # fmt: skip
    with session_scope(engine) as s:
        for name, (scopes, department) in CONSUMERS.items():
            world.tokens[name] = add_consumer(s, name, scopes, department=department)[1]
    return world


def on_database(request: Any, tmp_path: Path, monkeypatch: Any) -> Iterator[World]:
    """The world on SQLite or PostgreSQL as ``request.param`` says (the body of a ``city`` fixture
    parametrised over both), disposed after the test."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = build(url, tmp_path)
    yield built
    built.engine.dispose()


def client(world: World) -> Iterator[TestClient]:
    """A client of the API app over the world (audit written from a thread: one process)."""
    app = create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.service.store, world.service.signer),
        config=RecognitionSettings(api_key_cache_seconds=0.0), audit_process=False,
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The case world, each test once on SQLite and once on PostgreSQL (the case tests' conftests
    offer it; a module that needs another world defines its own ``city``)."""
    yield from on_database(request, tmp_path, monkeypatch)


@pytest.fixture()
def api(city: World) -> Iterator[TestClient]:
    """A client of the API app over ``city``."""
    yield from client(city)


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def consent(*materials: str, holder: str = "applicant", days: int = 90, **extra: Any) -> dict[str, Any]:
    """A holder's authorisation to use their licences for ``materials`` of the case (授权)."""
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return {"holder": holder, "materials": list(materials), "purpose": "办理本事项", "valid_until": until.isoformat(),
            **extra}  # fmt: skip


def joint_registration(applicant: str = P1, **extra: Any) -> dict[str, Any]:
    """多证联办 at the window: everything brought except the premises proof, which the hub finds
    under the applicant's authorisation."""
    body: dict[str, Any] = {
        "item_code": "XK00101001",
        "applicant": {"code": applicant, "name": NAMES.get(applicant, "某某"), "phone": PHONE, "address": ADDRESS},
        "subject": "温州洞头海霞科技有限公司（拟设立）",
        "materials": [
            {"code": "M01", "provided": "upload"},
            {"code": "M02", "provided": "upload"},
            {"code": "M03", "provided": "paper"},
            {"code": "M05", "provided": "paper"},
            {"code": "M06", "provided": "upload"},
        ],
        "authorisations": [consent("M04")],
    }
    body.update(extra)
    return body
