"""The state digest: a changed row shows, a changed volatile column does not."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from sqlalchemy import text

from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory
from rigs.digest import FANNED_OUT, VOLATILE, take_digest, volatile_columns
from tests.e_license_store.conftest import business_draft, source


def _hub(hub_db_url: str, tmp_path: Path) -> tuple[str, Path]:
    """A hub with one business licence issued (and one outbox event) at a fixed time."""
    rotate(tmp_path / "keys")
    engine = make_engine(hub_db_url)
    service = LicenseService(
        LocalStore(tmp_path / "store"), session_factory(engine), load_keyring(tmp_path / "keys"),
        clock=lambda: dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC),
    )  # fmt: skip
    service.issue(business_draft(), source())
    engine.dispose()
    return hub_db_url, tmp_path / "store"


def _copy(db_url: str, store: Path, to: Path) -> tuple[str, Path]:
    to.mkdir()
    db = Path(db_url.removeprefix("sqlite:///"))
    shutil.copy(db, to / "hub.db")
    shutil.copytree(store, to / "store")
    return f"sqlite:///{to / 'hub.db'}", to / "store"


def _execute(db_url: str, sql: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_the_same_state_has_the_same_digest(hub_db_url: str, tmp_path: Path) -> None:
    db, store = _hub(hub_db_url, tmp_path)
    receivers = {"webhook": [("license.issued:x:v1", {"type": "license.issued", "timestamp": "t1"})]}
    first = take_digest(db, store, receivers)
    again = take_digest(
        db, store, {"webhook": [("license.issued:x:v1", {"type": "license.issued", "timestamp": "t2"})]}
    )
    assert first.hexdigest == again.hexdigest and first.differences(again) == []
    assert first.invariant_problems() == []
    assert len(first.licences) == 1 and first.audit_ok
    assert sum(first.tables["outbox_event"].values()) == 1


def test_a_changed_row_is_caught(hub_db_url: str, tmp_path: Path) -> None:
    db, store = _hub(hub_db_url, tmp_path)
    reference = take_digest(db, store)
    other_db, other_store = _copy(db, store, tmp_path / "other")
    _execute(other_db, "UPDATE license_index SET holder_name = '另一家公司'")
    now = take_digest(other_db, other_store)
    assert now.hexdigest != reference.hexdigest
    diff = reference.differences(now)
    assert diff[0].startswith("table license_index: 1 rows in the reference, 1 now; 1 only in the reference")
    assert any("另一家公司" in line for line in diff)


def test_a_changed_volatile_column_is_ignored(hub_db_url: str, tmp_path: Path) -> None:
    db, store = _hub(hub_db_url, tmp_path)
    reference = take_digest(db, store)
    other_db, other_store = _copy(db, store, tmp_path / "other")
    assert "created_at" in volatile_columns("outbox_event") and "id" in volatile_columns("outbox_event")
    _execute(other_db, "UPDATE outbox_event SET created_at = '2030-01-01 00:00:00', id = id + 100")
    _execute(other_db, "UPDATE license_index SET updated_at = '2030-01-01 00:00:00'")
    now = take_digest(other_db, other_store)
    assert now.hexdigest == reference.hexdigest and reference.differences(now) == []


def test_a_licence_sealed_again_at_another_time_has_the_same_document_but_a_missing_one_shows(
    hub_db_url: str, tmp_path: Path
) -> None:
    db, store = _hub(hub_db_url, tmp_path)
    reference = take_digest(db, store)
    # the same version sealed again later (a fresh signature, another recording time): the same state
    other_db, other_store = _copy(db, store, tmp_path / "other")
    shutil.rmtree(other_store)
    for table in ("license_index", "license_version", "outbox_event"):
        _execute(other_db, f"DELETE FROM {table}")
    engine = make_engine(other_db)
    LicenseService(
        LocalStore(other_store), session_factory(engine), load_keyring(tmp_path / "keys"),
        clock=lambda: dt.datetime(2026, 1, 6, 17, 30, tzinfo=dt.UTC),
    ).issue(business_draft(), source())  # fmt: skip
    engine.dispose()
    again = take_digest(other_db, other_store)
    assert again.hexdigest == reference.hexdigest, reference.differences(again)
    # an index entry whose object is gone is a problem whatever the reference says
    for key in list(LocalStore(other_store).list_keys()):
        (other_store / "objects" / key).unlink()
    broken = take_digest(other_db, other_store)
    assert any("in the index, not in the store" in p for p in broken.invariant_problems())
    assert any(line.startswith("licence objects: 1 only in the reference") for line in reference.differences(broken))


def test_every_volatile_column_has_a_reason() -> None:
    for table, columns in VOLATILE.items():
        for column, reason in columns.items():
            assert len(reason) > 10, (table, column)


def test_an_event_delivered_twice_to_one_subscription_is_a_problem(hub_db_url: str, tmp_path: Path) -> None:
    db, store = _hub(hub_db_url, tmp_path)
    _execute(db, "INSERT INTO recognition_subscription (id, name, origin, event_types, channel, target_url, "
                 "start_event_id, created_at) VALUES ('s1', 's1', 'yaml', '[]', 'webhook', 'http://x/', 0, "
                 "'2026-01-01')")  # fmt: skip
    columns = "subscription_id, event_id, event_type, holder_key, idempotency_key, status, attempts, next_attempt_at"
    for n in (1, 2):
        values = f"'s1', {n}, 'license.issued', 'h', 'license.issued:x:v1', 'delivered', 1, '2026-01-01'"
        _execute(db, f"INSERT INTO recognition_delivery ({columns}, created_at) VALUES ({values}, '2026-01-01')")
    problems = take_digest(db, store).invariant_problems()
    assert "subscription s1: event license.issued:x:v1 delivered 2 times" in problems


def test_publish_before_mark_fanout_folded_into_the_low_water_mark_is_the_same_fan_out(
    hub_db_url: str, tmp_path: Path
) -> None:
    """Crash point publish.before_mark (and every point before the push, once the snapshot's events
    were older than the fan-out's grace period): the re-run's fan-out folded its marks into the
    low-water mark, the clean run's had not yet; both fanned out the same events."""
    db, store = _hub(hub_db_url, tmp_path)
    _execute(db, "INSERT INTO recognition_fanout (event_id, fanned_at) SELECT id, '2026-01-05' FROM outbox_event")
    reference = take_digest(db, store)
    folded_db, folded_store = _copy(db, store, tmp_path / "folded")
    _execute(folded_db, "DELETE FROM recognition_fanout")
    _execute(folded_db, "INSERT INTO recognition_cursor (name, value) SELECT 'fanout', max(id) FROM outbox_event")
    folded = take_digest(folded_db, folded_store)
    assert reference.differences(folded) == [] and reference.hexdigest == folded.hexdigest
    assert sum(reference.tables[FANNED_OUT].values()) == 1
    # an event not fanned out at all is a difference
    unfanned_db, unfanned_store = _copy(db, store, tmp_path / "unfanned")
    _execute(unfanned_db, "DELETE FROM recognition_fanout")
    diff = reference.differences(take_digest(unfanned_db, unfanned_store))
    assert diff and diff[0].startswith(f"table {FANNED_OUT}: 1 rows in the reference, 0 now")


def test_api_audited_the_retried_intakes_extra_audit_entry_is_its_only_difference(
    hub_db_url: str, tmp_path: Path
) -> None:
    """Crash point api.audited: the window asked again after its answer was lost; the audit holds
    that attempt too (``replayed``), and the chain is one entry longer. Left out those, the state
    is the clean run's; any other extra entry still shows."""
    from bench.bench_crash import without_replays
    from recognition.audit import AuditRecord, write_now

    def intake(outcome: str) -> AuditRecord:
        return AuditRecord(consumer="window", key_id=None, action="case_intake", resource="POST /v1/cases",
                           subject="330322202611032B2977", fields=["case"], purpose=None, outcome=outcome,
                           detail={"item": "QR00401000"})  # fmt: skip

    db, store = _hub(hub_db_url, tmp_path)
    engine = make_engine(db)
    write_now(engine, [intake("ok")])
    engine.dispose()
    reference = take_digest(db, store)
    retried_db, retried_store = _copy(db, store, tmp_path / "retried")
    engine = make_engine(retried_db)
    write_now(engine, [intake("replayed")])
    engine.dispose()
    retried = take_digest(retried_db, retried_store)
    assert retried.audit_ok and reference.differences(retried) != []
    assert reference.differences(without_replays(retried)) == []
    engine = make_engine(retried_db)
    write_now(engine, [intake("ok")])  # an intake audited twice as taken in: not a retry
    engine.dispose()
    assert reference.differences(without_replays(take_digest(retried_db, retried_store))) != []


def test_a_volatile_key_is_left_out_at_any_depth_of_a_json_column() -> None:
    """A connector's state keeps one object per stream: its deletion check's time is volatile wherever
    it sits, the rest of the state is compared."""
    from rigs.digest import _without_keys

    state = '{"insured_persons": {"cursor": ["2025-06-20", 1], "last_reconcile": "2026-12-04T04:20:39+00:00"}}'
    assert _without_keys(state, {"last_reconcile"}) == {"insured_persons": {"cursor": ["2025-06-20", 1]}}
    assert _without_keys([{"last_reconcile": 1, "a": [{"last_reconcile": 2}]}], {"last_reconcile"}) == [{"a": [{}]}]


_PUSH_STEP = (
    "INSERT INTO pipeline_step (run_id, mapping, step, department, pulled, accepted, quarantined, identities_created,"
    " identities_linked, licenses_issued, licenses_changed, notices_pushed, seconds, finished_at) VALUES"
    " ('{run}', '_push', 'push', '_push', 0, 0, 0, 0, 0, 0, 0, {n}, 0.5, '2026-01-05 09:00:00')"
)


def test_push_runs_are_compared_by_what_they_pushed_together(hub_db_url: str, tmp_path: Path) -> None:
    """Two push runs pushing 3 and 2 notices stand as one pushing 5; 4 in all is a difference."""
    db, store = _hub(hub_db_url, tmp_path)
    one_db, one_store = _copy(db, store, tmp_path / "one")
    _execute(one_db, _PUSH_STEP.format(run="asset_triggered__a", n=5))
    two_db, two_store = _copy(db, store, tmp_path / "two")
    _execute(two_db, _PUSH_STEP.format(run="asset_triggered__b", n=3))
    _execute(two_db, _PUSH_STEP.format(run="asset_triggered__c", n=2))
    one = take_digest(one_db, one_store)
    assert one.differences(take_digest(two_db, two_store)) == []
    assert sum(one.tables["pipeline_step"].values()) == 1
    _execute(two_db, "UPDATE pipeline_step SET notices_pushed = 1 WHERE run_id = 'asset_triggered__c'")
    diff = one.differences(take_digest(two_db, two_store))
    assert diff and diff[0].startswith("table pipeline_step")
