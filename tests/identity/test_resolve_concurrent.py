"""Two workers resolving feeds that name the same holder at the same moment, on PostgreSQL.

Worker A resolves its batch and holds its transaction open (the step's commit not yet done);
worker B then resolves another department's batch naming the same enterprise or person, on
its own connection. The test waits until PostgreSQL shows B blocked behind A (a lock wait in
``pg_stat_activity``, so the overlap is forced, not hoped for), then lets A commit. B must
finish without error and link its record to A's identity: one identity, one cross-walk row per
legacy code, both source records linked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.db import make_engine, session_factory
from identity.resolve import resolve_batch
from identity.tables import ENTERPRISE, PERSON, IdentityCrosswalk, IdentityEnterprise, IdentityPerson
from identity.tables import IdentitySourceRecord as Link
from tests.identity.test_resolve import LEGACY_P2, P2, make_uscc

E3 = make_uscc("330322", "55667788")
ORG_E3 = E3[8:17]

#: (entity kind, A's code, B's code, the canonical code both name, its identity table)
CASES = {
    ENTERPRISE: (ENTERPRISE, {"uscc": E3}, {"org_code": ORG_E3, "uscc": E3}, E3, IdentityEnterprise),
    PERSON: (PERSON, {"resident_id": P2}, {"resident_id": LEGACY_P2}, P2, IdentityPerson),
}
WAIT_SECONDS = 60


def _batch(key: str, codes: dict[str, str], name: str) -> pd.DataFrame:
    return pd.DataFrame([{"_source_key": key, "_source_version": "v1", **codes, "name": name}])


def _blocked_backends(engine: Engine, database: str) -> int:
    """Backends of ``database`` waiting for a lock another transaction holds."""
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock'"
                ).bindparams(db=database)
            )
            or 0
        )


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.parametrize("kind", [ENTERPRISE, PERSON])
def test_same_holder_resolved_at_once_on_two_workers_makes_one_identity(pg_hub_db_url: str, kind: str) -> None:
    entity_kind, codes_a, codes_b, canonical, table = CASES[kind]
    database = sa.engine.make_url(pg_hub_db_url).database
    assert database
    engines = [make_engine(pg_hub_db_url) for _ in range(3)]  # worker A, worker B, the observer
    a_wrote, release_a = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def worker_a() -> None:
        try:
            with session_factory(engines[0])() as s:
                outcome["a"] = resolve_batch(s, _batch("a-1", codes_a, "甲"), entity_kind, "commerce", "feed_a")
                a_wrote.set()
                if not release_a.wait(WAIT_SECONDS):
                    raise TimeoutError("worker A was never released")
                s.commit()
        except BaseException as exc:
            outcome["a_error"] = exc
            a_wrote.set()

    def worker_b() -> None:
        try:
            with session_factory(engines[1])() as s:
                outcome["b"] = resolve_batch(s, _batch("b-1", codes_b, "乙"), entity_kind, "tax", "feed_b")
                s.commit()
        except BaseException as exc:
            outcome["b_error"] = exc

    threads = [threading.Thread(target=worker_a), threading.Thread(target=worker_b)]
    try:
        threads[0].start()
        assert a_wrote.wait(WAIT_SECONDS) and "a_error" not in outcome, outcome.get("a_error")
        threads[1].start()
        # B is now inside its resolve while A's identity is written but not committed
        _until(lambda: _blocked_backends(engines[2], database) >= 1, "worker B blocked behind worker A")
        release_a.set()
        for t in threads:
            t.join(WAIT_SECONDS)
        assert not any(t.is_alive() for t in threads)
        assert "a_error" not in outcome and "b_error" not in outcome, (outcome.get("a_error"), outcome.get("b_error"))

        assert list(outcome["a"]["identity_status"]) == ["new"]
        assert list(outcome["b"]["identity_status"]) == ["resolved"]
        assert list(outcome["b"]["canonical_code"]) == [canonical]
        with engines[2].connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 1
            links = conn.execute(sa.select(Link.department, Link.canonical_code).order_by(Link.department)).all()
            assert [tuple(r) for r in links] == [("commerce", canonical), ("tax", canonical)]
            walk = conn.execute(
                sa.select(IdentityCrosswalk.legacy_code, sa.func.count()).group_by(IdentityCrosswalk.legacy_code)
            ).all()
            assert all(n == 1 for _code, n in walk), walk
    finally:
        release_a.set()
        for t in threads:
            if t.ident is not None:
                t.join(WAIT_SECONDS)
        for engine in engines:
            engine.dispose()
