"""Fixtures of the e-licence repository tests: keys in tmp dirs, a local store, a service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing, load_keyring, rotate
from e_license_store.store.local import LocalStore
from mappings.canonical.models import HolderKind, SourceRef


@pytest.fixture()
def key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "keys"
    rotate(d)
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(d))
    return d


@pytest.fixture()
def keyring(key_dir: Path) -> KeyRing:
    return load_keyring(key_dir)


@pytest.fixture()
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    root = tmp_path / "store"
    monkeypatch.setenv("HUB_STORE_URL", f"file://{root}")
    from hub.settings import reset_settings

    reset_settings()
    return LocalStore(root)


@pytest.fixture()
def sessions(hub_db_url: str) -> Iterator[sessionmaker[Session]]:
    from hub.db import make_engine, session_factory

    engine = make_engine(hub_db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture()
def service(local_store: LocalStore, sessions: sessionmaker[Session], keyring: KeyRing) -> LicenseService:
    return LicenseService(local_store, sessions, keyring)


USCC = "91330322MA2C8XYZ1K"


def business_draft(**overrides: object) -> LicenseDraft:
    values: dict[str, object] = {
        "license_type_code": "1101",
        "license_number": "330322000012345",
        "holder_name": "温州洞头海景餐饮有限公司",
        "holder_code": USCC,
        "holder_kind": HolderKind.enterprise,
        "issuer_code": "113303220025678912",
        "issue_date": dt.date(2016, 5, 4),
        "surface": {
            "enterprise_name": "温州洞头海景餐饮有限公司",
            "legal_rep_name": "张三丰",
            "address": "浙江省温州市洞头区北岙街道中心路12号",
        },
    }
    values.update(overrides)
    return LicenseDraft.model_validate(values)


def source(key: str = "ent-1001", version: str = "2016-05-04T10:00:00+08:00") -> SourceRef:
    return SourceRef(
        department="commerce", dataset="enterprise_registry", source_key=key, source_version=version, run_id="run-1"
    )
