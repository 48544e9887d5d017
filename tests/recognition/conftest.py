"""Fixtures of the recognition tests: a licence repository with licences of three holders,
consumers with different scopes, the API app, and a real local webhook receiver."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory, session_scope
from mappings.canonical.models import HolderKind
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from tests.cases.world import api, city  # noqa: F401  (the case world's fixtures, for the case API tests)
from tests.recognition.rec_helpers import CONSUMERS, RESIDENT_ID, USCC, Receiver, World, issue_business, source_ref


@pytest.fixture(autouse=True)
def _unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's tests run without rate limits (hundreds of requests a second from one test client);
    the throttling tests (test_recognition_limits.py) pass their limits explicitly."""
    monkeypatch.setenv("HUB_RATE_LIMIT_KEY_RATE", "0")
    monkeypatch.setenv("HUB_RATE_LIMIT_ADDRESS_RATE", "0")


@pytest.fixture()
def world(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    key_dir = tmp_path / "keys"
    rotate(key_dir)
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(key_dir))
    root = tmp_path / "store"
    monkeypatch.setenv("HUB_STORE_URL", f"file://{root}")
    store = LocalStore(root)
    keyring = load_keyring(key_dir)
    engine = make_engine(hub_db_url)
    sessions = session_factory(engine)
    service = LicenseService(store, sessions, keyring)
    w = World(engine, sessions, store, keyring, service)
    w.licenses["business"] = issue_business(service, "ent-00001")
    w.licenses["tax"] = service.issue(
        LicenseDraft(
            license_type_code="1102",
            license_number="330322MA2C8XYZ1",
            holder_name="温州洞头海景餐饮有限公司",
            holder_code=USCC,
            holder_kind=HolderKind.enterprise,
            issuer_code="133032200000000001",
            issue_date=dt.date(2016, 6, 1),
            surface={"taxpayer_name": "温州洞头海景餐饮有限公司", "legal_rep_name": "张三丰"},
        ),
        source_ref("tax-1", "tax"),
    ).license_id
    w.licenses["property"] = service.issue(
        LicenseDraft(
            license_type_code="2101",
            license_number="浙(2016)洞头区不动产权第0001234号",
            holder_name="李小龙",
            holder_code=RESIDENT_ID,
            holder_kind=HolderKind.person,
            issuer_code="113303220025670000",
            issue_date=dt.date(2016, 5, 4),
            surface={"unit_no": "330322001001GB00001F00010001", "location": "浙江省温州市洞头区北岙街道海滨路8号"},
        ),
        source_ref("unit-1", "land"),
    ).license_id
    w.licenses["approval"] = service.issue(
        LicenseDraft(
            license_type_code="3101",
            license_number="洞自然资预〔2024〕12号",
            holder_name="温州洞头海景餐饮有限公司",
            holder_code=USCC,
            holder_kind=HolderKind.enterprise,
            issuer_code="113303220025671111",
            issue_date=dt.date.today() - dt.timedelta(days=30),
            surface={"project_name": "海景餐厅扩建", "conclusion": "approved"},
        ),
        source_ref("appr-1", "land"),
    ).license_id
    yield w
    engine.dispose()


@pytest.fixture()
def tokens(world: World) -> dict[str, str]:
    out = {}
    with session_scope(world.engine) as session:
        for name, scopes in CONSUMERS.items():
            out[name] = add_consumer(session, name, scopes)[1]
    return out


@pytest.fixture()
def app_config() -> RecognitionSettings:
    return RecognitionSettings(api_key_cache_seconds=0.0)


@pytest.fixture()
def client(world: World, tokens: dict[str, str], app_config: RecognitionSettings) -> Iterator[TestClient]:
    from hub.settings import get_settings

    app = create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring), config=app_config
    )
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()
