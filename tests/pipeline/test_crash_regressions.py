"""Divergences the crash harness found, each fixed and kept fixed: one test per kill point."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from e_license_store.model import HolderKind, LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from e_license_store.tables import LicenseIndexEntry, LicenseVersionEntry
from hub.db import make_engine, session_factory
from hub.models import OutboxEvent
from tests.e_license_store.conftest import business_draft, source

REPO = Path(__file__).resolve().parents[2]

_ISSUE = """
import sys
from e_license_store.model import HolderKind, LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory
from tests.e_license_store.conftest import business_draft, source
from tests.pipeline.test_crash_regressions import approval_draft

db, store, keys, batch, kind = sys.argv[1:]
service = LicenseService(LocalStore(__import__("pathlib").Path(store)), session_factory(make_engine(db)),
                         load_keyring(__import__("pathlib").Path(keys)))
draft = approval_draft() if kind == "approval" else business_draft()
if batch == "batch":
    service.issue_many([(draft, source())])
else:
    service.issue(draft, source())
"""


def approval_draft() -> LicenseDraft:
    """A land-use pre-review opinion (3101) whose area is a whole number held as a float, as a
    department's numeric column yields it: the stored document writes it ``12000`` (RFC 8785)."""
    return LicenseDraft(
        license_type_code="3101",
        license_number="洞自然资预〔2022〕17号",
        holder_name="温州洞明贸易股份有限公司",
        holder_code="91330305829532033H",
        holder_kind=HolderKind.enterprise,
        issuer_code="113303220025679671",
        issue_date=dt.date(2022, 3, 15),
        surface={"project_name": "洞明仓储项目", "conclusion": "同意", "land_area_m2": 12000.0},
    )


def _killed_while_issuing(db_url: str, tmp_path: Path, how: str, kind: str = "business") -> None:
    env = {**os.environ, "HUB_KILL_POINT": "license.stored_not_indexed:1"}
    done = subprocess.run(
        [sys.executable, "-c", _ISSUE, db_url, str(tmp_path / "store"), str(tmp_path / "keys"), how, kind],
        env=env, cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _issue_again_and_check(db_url: str, tmp_path: Path, *, batch: bool, kind: str = "business") -> None:
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LicenseIndexEntry)) == 0  # the kill left no index
    service = LicenseService(LocalStore(tmp_path / "store"), sessions, load_keyring(tmp_path / "keys"))
    draft = approval_draft() if kind == "approval" else business_draft()
    if batch:
        (result,) = service.issue_many([(draft, source())])
    else:
        result = service.issue(draft, source())
    assert not isinstance(result, Exception)
    assert result.version == 1  # the stored version stands: no amendment of a licence to itself
    event_type = "approval.issued" if kind == "approval" else "license.issued"
    with sessions() as session:
        events = list(session.scalars(select(OutboxEvent)))
        assert [(e.event_type, e.idempotency_key.rsplit(":", 1)[-1]) for e in events] == [(event_type, "v1")]
        assert session.get(LicenseIndexEntry, result.license_id).version == 1  # type: ignore[union-attr]
    engine.dispose()


def test_license_stored_not_indexed_the_rerun_announces_the_stored_version(hub_db_url: str, tmp_path: Path) -> None:
    """Killed between the store write and the index commit (one by one): the re-run indexes the stored
    version and emits its ``license.issued`` event, which nothing had announced."""
    rotate(tmp_path / "keys")
    _killed_while_issuing(hub_db_url, tmp_path, "one")
    _issue_again_and_check(hub_db_url, tmp_path, batch=False)


def test_license_stored_not_indexed_in_a_batch_the_rerun_announces_the_stored_version(
    hub_db_url: str, tmp_path: Path
) -> None:
    """The same kill on the batch path (a publish task's ``issue_many``)."""
    rotate(tmp_path / "keys")
    _killed_while_issuing(hub_db_url, tmp_path, "batch")
    _issue_again_and_check(hub_db_url, tmp_path, batch=True)


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
def test_license_stored_not_indexed_an_approval_with_a_whole_number_is_not_amended_to_itself(
    hub_db_url: str, tmp_path: Path, batch: bool
) -> None:
    """Found by the 30-point crash run at ``license.stored_not_indexed`` hit 14 (a land 3101 approval):
    the re-run indexed the stored version (its fingerprint computed from the document read back, where
    ``12000.0`` is ``12000``) and compared it with the draft's (``12000.0``): "changed", so the same
    content became version 2, ``approval.amended``, and reached the subscribers."""
    rotate(tmp_path / "keys")
    _killed_while_issuing(hub_db_url, tmp_path, "batch" if batch else "one", "approval")
    _issue_again_and_check(hub_db_url, tmp_path, batch=batch, kind="approval")


_PUSH = """
from pipeline import steps
steps.push("push-run")
"""


def test_delivery_recorded_the_retried_push_counts_what_the_killed_attempt_delivered(
    hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after a delivery round was recorded, before the push step's ledger row was written:
    the retry (same run) delivers nothing more, and the ledger still says what the run pushed."""
    from bench.bench_crash import WebhookReceiver
    from hub.db import get_engine, session_scope
    from hub.outbox import emit
    from pipeline.tables import PipelineStep
    from recognition.subscriptions import sync_yaml

    receiver = WebhookReceiver()
    try:
        subs = tmp_path / "subs.yaml"
        subs.write_text(
            yaml.safe_dump(
                {
                    "subscriptions": [
                        {
                            "id": "all",
                            "name": "all",
                            "channel": "webhook",
                            "event_types": ["license.*"],
                            "url": receiver.url,
                            "secret_env": "CRASH_TEST_SECRET",
                        }
                    ]
                }
            )
        )
        monkeypatch.setenv("CRASH_TEST_SECRET", "whsec_Y3Jhc2gtaGFybmVzcy13ZWJob29rLXNlY3JldA==")
        with session_scope(get_engine()) as session:
            sync_yaml(session, subs)
        with session_scope(get_engine()) as session:
            for n in (1, 2):
                emit(session, "license.issued", f"L{n}", {"license_id": f"L{n}"}, f"license.issued:L{n}:v1",
                     holder_code=f"H{n}")  # fmt: skip
        env = {**os.environ, "HUB_KILL_POINT": "delivery.recorded:1"}
        done = subprocess.run(
            [sys.executable, "-c", _PUSH], env=env, cwd=REPO, capture_output=True, text=True, check=False
        )
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        assert sorted(k for k, _ in receiver.events()) == ["license.issued:L1:v1", "license.issued:L2:v1"]
        from pipeline import steps

        steps.push("push-run")  # the operator's retry of the task
        assert len(receiver.events()) == 2  # nothing sent twice: the outcomes were recorded
        with session_scope(get_engine()) as session:
            row = session.get(PipelineStep, ("push-run", "_push", "push"))
            assert row is not None and row.notices_pushed == 2
    finally:
        receiver.close()


COMMERCE = "commerce_enterprises"
_FEED = """
import sys
from pathlib import Path
from bench.bench_crash import run_job
run_job(Path(sys.argv[1]), only=[sys.argv[2]])
"""


@pytest.fixture()
def city(tmp_path: Path, hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandboxes of a small city, their Connections in the environment, on a fresh hub."""
    from hub.airflow_env import connection_uri_env
    from rigs.connections import sandbox_connections
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    with start_sandboxes(tmp_path / "sb", 2016, Sizes(persons=60, enterprises=30, properties=20)) as sb:
        for conn_id, conn in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn)
            monkeypatch.setitem(os.environ, key, value)
        yield sb


def _feed_killed_then_finished(tmp_path: Path, point: str) -> None:
    """The commerce feed killed at ``point`` in a child, then finished here as an operator's retry would."""
    from bench.bench_crash import run_job

    journal = tmp_path / "job"
    journal.mkdir()
    env = {**os.environ, "HUB_KILL_POINT": point}
    done = subprocess.run(
        [sys.executable, "-c", _FEED, str(journal), COMMERCE], env=env, cwd=REPO, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    run_job(journal, only=[COMMERCE])


def _ledger(step: str) -> Any:
    from hub.db import get_engine, session_scope
    from pipeline.tables import PipelineStep

    with session_scope(get_engine()) as session:
        row = session.get(PipelineStep, (f"crash__{COMMERCE}", COMMERCE, step))
        assert row is not None
        session.expunge(row)
        return row


@pytest.mark.slow
@pytest.mark.odbc
def test_resolve_after_commit_the_retry_still_counts_the_identities_the_killed_attempt_created(
    city: Any, tmp_path: Path
) -> None:
    """Killed after resolve committed a batch's identities, before the step's ledger row: the retry
    re-resolves the batch (nothing new to create) and the ledger still counts every identity."""
    from hub.db import get_engine, session_scope
    from identity.tables import IdentityEnterprise

    _feed_killed_then_finished(tmp_path, "resolve.after_commit:1")
    with session_scope(get_engine()) as session:
        identities = session.scalar(select(func.count()).select_from(IdentityEnterprise))
    assert identities and _ledger("resolve").identities_created == identities


@pytest.mark.slow
@pytest.mark.odbc
def test_publish_before_mark_the_retry_still_counts_the_licences_the_killed_attempt_issued(
    city: Any, tmp_path: Path
) -> None:
    """Killed after publish issued every licence, before its ledger row: the retry issues nothing
    new, and the ledger still counts every licence the run issued and changed."""
    from hub.db import get_engine, session_scope

    _feed_killed_then_finished(tmp_path, "publish.before_mark:1")
    with session_scope(get_engine()) as session:
        licences = session.scalar(select(func.count()).select_from(LicenseIndexEntry))
        versions = session.scalar(select(func.count()).select_from(LicenseVersionEntry))
    row = _ledger("publish")
    assert licences and (row.licenses_issued, row.licenses_changed) == (licences, versions - licences)
