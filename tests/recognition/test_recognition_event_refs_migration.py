"""An upgraded database: events and deliveries stored before ``recognition_0003_event_refs`` get opaque
identifiers and proper regions (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from hub.db import make_engine, migrate
from hub.models import OutboxEvent
from hub.pseudonyms import is_opaque_ref, opaque_ref
from hub.settings import reset_settings
from recognition.tables import Delivery, Subscription
from rigs.testing import TempDatabase

PERSON = "330322198001011236"
USCC = "91330322MA2C8XYZ1K"


@pytest.fixture()
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    yield tmp_path
    reset_settings()


def _old_rows(url: str) -> None:
    """What 0002 left: identity keys and subjects with the resident id, regions from issuer codes."""
    now = dt.datetime.now(dt.UTC)
    old_key = f"identity.merged:{PERSON}:{hashlib.sha256(repr([PERSON]).encode()).hexdigest()[:16]}"
    events = [
        {"id": 1, "event_type": "identity.merged", "subject": PERSON, "holder_code": PERSON, "region_code": None,
         "payload": {"entity_kind": "person", "canonical_code": PERSON}, "idempotency_key": old_key},
        {"id": 2, "event_type": "identity.merged", "subject": PERSON, "holder_code": PERSON, "region_code": None,
         "payload": {"entity_kind": "person", "canonical_code": PERSON}, "idempotency_key": "identity.merged:merge:7"},
        {"id": 3, "event_type": "license.issued", "subject": "1101-113303220025678912-X", "holder_code": USCC,
         "region_code": "113303", "license_type_code": "1101", "idempotency_key": "license.issued:1101-X:v1",
         "payload": {"holder_kind": "enterprise", "holder_code": USCC, "issuer_code": "113303220025678912"}},
        {"id": 4, "event_type": "license.issued", "subject": "1102-13303220000-Y", "holder_code": "MA2C8XYZ1",
         "region_code": "133032", "license_type_code": "1102", "idempotency_key": "license.issued:1102-Y:v1",
         "payload": {"holder_kind": "enterprise", "holder_code": "MA2C8XYZ1", "issuer_code": "13303220000"}},
    ]  # fmt: skip
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(OutboxEvent), [{"created_at": now, "license_type_code": None, **e} for e in events])
        conn.execute(
            insert(Subscription),
            [
                {
                    "id": "s1",
                    "name": "n",
                    "origin": "api",
                    "event_types": ["identity.merged", "license.issued"],
                    "channel": "webhook",
                    "target_url": "https://hooks.example/in",
                    "start_event_id": 0,
                    "created_at": now,
                }
            ],
        )
        conn.execute(insert(Delivery), [
            {"subscription_id": "s1", "event_id": e["id"], "event_type": e["event_type"],
             "holder_key": e["holder_code"], "idempotency_key": e["idempotency_key"], "status": "delivered",
             "attempts": 1, "next_attempt_at": now, "created_at": now}
            for e in events
        ])  # fmt: skip
    engine.dispose()


def _check_upgrade(url: str) -> None:
    migrate(url, "recognition_0002_destinations")
    _old_rows(url)
    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        events = {e.id: e for e in conn.execute(select(OutboxEvent.__table__)).all()}
        keys = dict(conn.execute(select(Delivery.event_id, Delivery.idempotency_key)).all())
    engine.dispose()
    merged, by_merge, business, tax = events[1], events[2], events[3], events[4]
    assert merged.subject == by_merge.subject == opaque_ref(PERSON) and is_opaque_ref(merged.subject)
    assert merged.idempotency_key.startswith(f"identity.merged:{opaque_ref(PERSON)}:")
    assert PERSON not in merged.idempotency_key and PERSON[:6] + "19" not in merged.idempotency_key
    assert by_merge.idempotency_key == "identity.merged:merge:7"  # named no code: kept
    assert keys == {i: e.idempotency_key for i, e in events.items()}
    assert (merged.region_code, business.region_code, tax.region_code) == ("330322", "330322", "330322")
    assert business.idempotency_key == "license.issued:1101-X:v1"  # licence keys had no personal data


def test_upgrade_rewrites_stored_event_identifiers_sqlite(hub_home: Path) -> None:
    _check_upgrade(f"sqlite:///{hub_home / 'old.db'}")


@pytest.mark.postgres
def test_upgrade_rewrites_stored_event_identifiers_postgres(hub_home: Path, pg_database: TempDatabase) -> None:
    _check_upgrade(pg_database.sqlalchemy_url)
