"""The column-wise linking path: stored forms, empty values, re-runs, big lookups and the
SQLite bulk load (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hub.models import OutboxEvent
from identifiers import resident_id
from identity import _bulk, _jsontext, golden
from identity.golden_sources import pack, unpack
from identity.resolve import link_batch
from identity.tables import IdentityGoldenHistory, IdentityPerson, IdentitySourceRecord


def rid(i: int) -> str:
    body = f"3303221980{(i % 12) + 1:02d}{(i % 28) + 1:02d}{i % 1000:03d}"
    return body + resident_id.calc_check_digit(body)


def batch(n: int, *, version: str = "2024-01-01", name: str = "张三") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_source_key": [f"k{i}" for i in range(n)],
            "_source_version": version,
            "resident_id": [rid(i) for i in range(n)],
            "name": name,
            "sex": ["1" if i % 2 else "2" for i in range(n)],
            "address": "浙江省温州市洞头区北岙街道中心路12号",
        }
    )


def count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _scenario_golden_from_one_record(session: Session) -> None:
    df = pd.DataFrame(
        [
            {
                "_source_key": "1",
                "_source_version": "v1",
                "resident_id": rid(1),
                "name": '李"四\\',
                "sex": "  ",
                "address": None,
            },
        ]
    )
    link_batch(session, df, "person", "public_security", "persons")
    session.commit()
    person = session.get(IdentityPerson, rid(1))
    assert person is not None
    # a blank value is no golden value, nor has it a source; the link keeps what came
    assert person.attributes == {"name": '李"四\\'} and person.sex is None and person.name == '李"四\\'
    assert person.sources == {
        "name": {"department": "public_security", "dataset": "persons", "source_key": "1", "source_version": "v1"}
    }
    link = session.scalars(select(IdentitySourceRecord)).one()
    assert link.attributes == {"name": '李"四\\', "sex": "  "}
    # stored once: the text value in its typed column only, the sources implied by the one link
    stored_attributes, stored_sources = session.execute(
        text("SELECT CAST(attributes AS TEXT), CAST(sources AS TEXT) FROM identity_person")
    ).one()
    assert json.loads(stored_attributes) == {} and json.loads(stored_sources) == "one_link"


def test_golden_from_one_record_on_sqlite(session: Session) -> None:
    _scenario_golden_from_one_record(session)


@pytest.mark.postgres
def test_golden_from_one_record_on_postgres(pg_session: Session) -> None:
    _scenario_golden_from_one_record(pg_session)


def _scenario_rerun_and_change(session: Session) -> None:
    first = link_batch(session, batch(300), "person", "public_security", "persons")
    session.commit()
    assert (first.created, first.linked) == (300, 300)
    again = link_batch(session, batch(300), "person", "public_security", "persons")
    session.commit()
    assert (again.created, again.linked) == (0, 0)
    assert count(session, IdentityPerson) == 300 and count(session, IdentitySourceRecord) == 300
    assert count(session, IdentityGoldenHistory) == 0 and count(session, OutboxEvent) == 0
    # a new version with a new name: links updated in place, golden records changed with history
    changed = link_batch(
        session, batch(300, version="2024-02-01", name="张三丰"), "person", "public_security", "persons"
    )
    session.commit()
    assert changed.linked == 0 and count(session, IdentitySourceRecord) == 300
    person = session.get(IdentityPerson, rid(7))
    assert person is not None
    session.refresh(person)
    assert person.name == "张三丰" and person.sources["name"]["source_version"] == "2024-02-01"
    history = golden.history(session, "person", rid(7))
    assert [(h.attribute, h.old_value, h.new_value) for h in history] == [("name", "张三", "张三丰")]


def test_rerun_and_change_on_sqlite(session: Session) -> None:
    _scenario_rerun_and_change(session)


@pytest.mark.postgres
def test_rerun_and_change_on_postgres(pg_session: Session) -> None:
    _scenario_rerun_and_change(pg_session)


def _scenario_lookup_beyond_parameter_limits(session: Session) -> None:
    # more values than SQLite allows bound parameters in one statement (32,766)
    codes = [rid(i) for i in range(40_000)]
    stmt = (
        select(func.count())
        .select_from(IdentityPerson)
        .where(_bulk.in_values(session, IdentityPerson.resident_id, codes))
    )
    assert session.scalar(stmt) == 0
    link_batch(session, batch(5), "person", "public_security", "persons")
    assert session.scalar(stmt) == 5


def test_lookup_beyond_parameter_limits_on_sqlite(session: Session) -> None:
    _scenario_lookup_beyond_parameter_limits(session)


@pytest.mark.postgres
def test_lookup_beyond_parameter_limits_on_postgres(pg_session: Session) -> None:
    _scenario_lookup_beyond_parameter_limits(pg_session)


def _indexes(session: Session, table: str) -> set[str]:
    rows = session.execute(
        text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"), {"t": table}
    )
    return {r[0] for r in rows}


def test_bulk_load_rebuilds_the_indexes_it_drops(session: Session) -> None:
    table = IdentitySourceRecord.__table__
    before = _indexes(session, "identity_source_record")
    assert before
    with _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}):  # type: ignore[dict-item]
        assert _indexes(session, "identity_source_record") == set()
        link_batch(session, batch(20), "person", "public_security", "persons")
    assert _indexes(session, "identity_source_record") == before
    with pytest.raises(RuntimeError), _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}):  # type: ignore[dict-item]
        raise RuntimeError("failed load")
    assert _indexes(session, "identity_source_record") == before
    session.commit()
    assert _indexes(session, "identity_source_record") == before
    assert count(session, IdentitySourceRecord) == 20


def test_bulk_load_keeps_the_indexes_of_a_larger_table(session: Session) -> None:
    table = IdentitySourceRecord.__table__
    link_batch(session, batch(30), "person", "public_security", "persons")
    session.commit()
    before = _indexes(session, "identity_source_record")
    with _bulk.bulk_load(session, {table: 20}):  # type: ignore[dict-item]
        assert _indexes(session, "identity_source_record") == before


def _pg_indexes(session: Session, table: str) -> dict[str, str]:
    rows = session.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table})
    return {r[0]: r[1] for r in rows}


PG_SECONDARY = {"ix_identity_source_record_key", "ix_identity_source_record_canonical_code"}


@pytest.mark.postgres
def test_bulk_load_rebuilds_the_indexes_it_drops_on_postgres(pg_session: Session) -> None:
    session = pg_session
    table = IdentitySourceRecord.__table__
    before = _pg_indexes(session, "identity_source_record")
    assert set(before) >= PG_SECONDARY
    with _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}) as load:  # type: ignore[dict-item]
        # the primary key's index stays (and the identities' tables keep theirs: nothing plain to drop)
        assert set(_pg_indexes(session, "identity_source_record")) == set(before) - PG_SECONDARY
        link_batch(session, batch(20), "person", "public_security", "persons")
        load.rebuild_in_background(table)  # type: ignore[arg-type]
        load.wait()
        assert _pg_indexes(session, "identity_source_record") == before
    assert _pg_indexes(session, "identity_source_record") == before
    # a failure inside the load: the indexes are built again before the error leaves
    with pytest.raises(RuntimeError), _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}):  # type: ignore[dict-item]
        assert set(_pg_indexes(session, "identity_source_record")) == set(before) - PG_SECONDARY
        raise RuntimeError("failed load")
    assert _pg_indexes(session, "identity_source_record") == before
    session.commit()
    assert _pg_indexes(session, "identity_source_record") == before
    assert count(session, IdentitySourceRecord) == 20
    # the rebuilt indexes answer: a lookup by source key goes through the key index
    session.execute(text("SET LOCAL enable_seqscan = off"))
    assert "ix_identity_source_record_key" in " ".join(
        session.execute(
            text(
                "EXPLAIN SELECT id FROM identity_source_record WHERE department = 'public_security'"
                " AND dataset = 'persons' AND source_key = 'k3'"
            )
        ).scalars()
    )


@pytest.mark.postgres
def test_a_failed_statement_in_the_load_rolls_the_drop_back_on_postgres(pg_session: Session) -> None:
    session = pg_session
    table = IdentitySourceRecord.__table__
    before = _pg_indexes(session, "identity_source_record")
    with pytest.raises(Exception, match="no_such_table"), _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}):  # type: ignore[dict-item]
        session.execute(text("SELECT 1 FROM no_such_table"))  # the transaction is aborted: the error leaves as it is
    session.rollback()
    assert _pg_indexes(session, "identity_source_record") == before


def _prepared_links(session: Session, keys: list[str], code: str) -> _bulk.Prepared:
    at = _bulk.timestamp(session, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    constants = {"department": "public_security", "dataset": "persons", "entity_kind": "person", "linked_at": at}
    return _bulk.prepare(
        session,
        IdentitySourceRecord.__table__,  # type: ignore[arg-type]
        ("source_key", "canonical_code", "method", "attributes"),
        [keys, [code] * len(keys), ["rule"] * len(keys), ["{}"] * len(keys)],
        constants,
    )


@pytest.mark.postgres
def test_a_copy_left_to_the_worker_lands_before_the_rebuild_and_its_error_at_wait_on_postgres(
    pg_session: Session,
) -> None:
    session = pg_session
    table = IdentitySourceRecord.__table__
    before = _pg_indexes(session, "identity_source_record")
    code = "11010519491231002X"
    with _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}) as load:  # type: ignore[dict-item]
        load.insert_in_background(session, _prepared_links(session, [f"k{i}" for i in range(500)], code))
        load.wait()  # the rows are in, and the indexes dropped for them built again after them
        assert _pg_indexes(session, "identity_source_record") == before
    assert count(session, IdentitySourceRecord) == 500
    assert session.scalar(select(func.count()).where(IdentitySourceRecord.canonical_code == code)) == 500
    session.commit()
    # a row the server refuses (a key longer than the column): the worker's error is raised by wait()
    too_long = _prepared_links(session, ["x" * 300], code)
    with (
        pytest.raises(Exception, match=r"(?i)too long"),
        _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}) as load,  # type: ignore[dict-item]
    ):
        load.insert_in_background(session, too_long)
        load.wait()
    session.rollback()
    assert count(session, IdentitySourceRecord) == 500
    assert _pg_indexes(session, "identity_source_record") == before


@pytest.mark.postgres
def test_lookups_in_an_empty_table_answer_without_reading_on_postgres(pg_session: Session) -> None:
    session = pg_session
    table = IdentitySourceRecord.__table__
    keys = [f"k{i}" for i in range(10)]
    assert list(_bulk.rows_for_keys(session, table, table.c.source_key, keys)) == []  # type: ignore[arg-type]
    _bulk.insert(session, _prepared_links(session, keys[:3], "110105194912310029"))
    got = _bulk.rows_for_keys(session, table, table.c.source_key, keys)  # type: ignore[arg-type]
    assert sorted(row[0] for row in got) == keys[:3]


@pytest.mark.postgres
def test_bulk_load_keeps_the_indexes_of_a_larger_table_on_postgres(
    pg_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pg_session
    table = IdentitySourceRecord.__table__
    link_batch(session, batch(30), "person", "public_security", "persons")
    session.commit()
    before = _pg_indexes(session, "identity_source_record")
    monkeypatch.setattr(_bulk, "REBUILD_MIN_ROWS", 10)  # the load is large enough; the table is larger
    with _bulk.bulk_load(session, {table: 29}):  # type: ignore[dict-item]
        assert _pg_indexes(session, "identity_source_record") == before
    with _bulk.bulk_load(session, {table: 30}):  # type: ignore[dict-item]
        assert set(_pg_indexes(session, "identity_source_record")) == set(before) - PG_SECONDARY
    session.rollback()


@pytest.mark.postgres
def test_bulk_load_keeps_the_indexes_while_another_transaction_reads_on_postgres(
    pg_session: Session, pg_hub_db_url: str
) -> None:
    import time

    from hub.db import make_engine

    session = pg_session
    table = IdentitySourceRecord.__table__
    before = _pg_indexes(session, "identity_source_record")
    session.commit()
    reader = make_engine(pg_hub_db_url)
    with reader.connect() as other:
        other.execute(text("SELECT count(*) FROM identity_source_record"))  # its lock is held until it ends
        started = time.monotonic()
        with _bulk.bulk_load(session, {table: _bulk.REBUILD_MIN_ROWS}):  # type: ignore[dict-item]
            # not queued behind the reader (nor the reader's next query behind the load): the indexes stay
            assert _pg_indexes(session, "identity_source_record") == before
            link_batch(session, batch(12), "person", "public_security", "persons")
        assert time.monotonic() - started < 10
        session.commit()
        assert other.execute(text("SELECT count(*) FROM identity_source_record")).scalar() == 12
    reader.dispose()
    assert count(session, IdentitySourceRecord) == 12
    assert _pg_indexes(session, "identity_source_record") == before


def _link_rows(session: Session) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(
            IdentitySourceRecord.source_key,
            IdentitySourceRecord.canonical_code,
            IdentitySourceRecord.method,
            IdentitySourceRecord.source_version,
            IdentitySourceRecord.fingerprint,
            text("CAST(attributes AS TEXT)"),
        ).order_by(IdentitySourceRecord.source_key)
    )
    return [tuple(r) for r in rows]


def _person_rows(session: Session) -> list[tuple[Any, ...]]:
    p = IdentityPerson
    rows = session.execute(
        select(p.resident_id, p.name, p.sex, p.address, text("CAST(attributes AS TEXT)"), text("CAST(sources AS TEXT)"))
        .select_from(p)
        .order_by(p.resident_id)
    )
    return [tuple(r) for r in rows]


@pytest.mark.postgres
def test_a_load_with_the_indexes_dropped_writes_what_sqlite_writes(
    session: Session, pg_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both databases drop and rebuild (the batch is as large as REBUILD_MIN_ROWS, the tables empty)
    monkeypatch.setattr(_bulk, "REBUILD_MIN_ROWS", 50)
    df = batch(80, name='李"四\\\t')
    df.loc[5, "address"] = "line\nbreak"
    df.loc[7, "name"] = None
    for s in (session, pg_session):
        link_batch(s, df, "person", "public_security", "persons")
        s.commit()
        again = link_batch(s, batch(80, version="2024-02-01"), "person", "public_security", "persons")  # a re-run
        s.commit()
        assert again.created == 0
    assert _link_rows(pg_session) == _link_rows(session)
    assert [r[:4] for r in _person_rows(pg_session)] == [r[:4] for r in _person_rows(session)]
    assert [json.loads(r[4]) for r in _person_rows(pg_session)] == [json.loads(r[4]) for r in _person_rows(session)]
    assert [json.loads(r[5]) for r in _person_rows(pg_session)] == [json.loads(r[5]) for r in _person_rows(session)]
    assert count(pg_session, IdentityPerson) == len({rid(i) for i in range(80)})


@pytest.mark.parametrize("value", ['a"b', "back\\slash", "tab\tnew\nline\x01", "{brace}", "张三", "😀", "", " "])
def test_json_text_reads_back_as_the_values(value: str) -> None:
    cols = _jsontext.encode_columns([[value, None, value], [1, 2.5, True]])
    out = _jsontext.objects(["s", "n{"], cols)
    assert [json.loads(o) for o in out] == [{"s": value, "n{": 1}, {"n{": 2.5}, {"s": value, "n{": True}]
    assert out[0] == _jsontext.dumps({"s": value, "n{": 1})


def test_objects_leave_out_values_marked_not_kept() -> None:
    cols = _jsontext.encode_columns([["x", "y"], ["1", "2"]])
    keep = np.array([[True, False], [False, False]])
    assert [json.loads(o) for o in _jsontext.objects(["a", "b"], cols, keep=keep)] == [{"a": "x"}, {}]


def test_sources_pack_round_trips() -> None:
    a = {"department": "tax", "dataset": "t", "source_key": "1", "source_version": None}
    b = {"department": "commerce", "dataset": "c", "source_key": "9", "source_version": "v"}
    sources = {"name": a, "status": b, "tax_status": a}
    packed = pack(sources)
    assert packed is not None and len(packed) == 2
    assert unpack(packed) == sources
    assert unpack(json.loads(json.dumps(sources))) == sources  # rows in the older per-attribute form


def test_an_alias_and_its_attribute_feed_one_value(session: Session) -> None:
    from identifiers import org_code, uscc

    org = "12345678" + org_code.calc_check_digit("12345678")
    code = f"91330322{org}" + uscc.calc_check_digit(f"91330322{org}")
    df = pd.DataFrame(
        [
            {"_source_key": "t1", "uscc": code, "taxpayer_name": "甲公司", "name": "乙公司"},
            {"_source_key": "t2", "uscc": None, "taxpayer_name": "丙公司", "name": None},
        ]
    )
    link_batch(session, df, "enterprise", "tax", "taxpayers")
    session.commit()
    link = session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "t1")).one()
    assert link.attributes == {"name": "乙公司"}
    # t2: no code, a name nobody bears — a provisional enterprise (identity.matching_step)
    other = session.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "t2")).one()
    assert other.method == "provisional" and other.canonical_code.startswith("P")
    from identity.tables import IdentityEnterprise

    enterprise = session.get(IdentityEnterprise, code)
    assert enterprise is not None and enterprise.name == "乙公司" and list(enterprise.sources) == ["name"]


def test_collector_paused_for_large_batches_only_and_restored() -> None:
    import gc

    assert gc.isenabled()
    with _bulk.collector_paused(_bulk.PAUSE_GC_ROWS - 1):
        assert gc.isenabled()
    with pytest.raises(RuntimeError), _bulk.collector_paused(_bulk.PAUSE_GC_ROWS):
        assert not gc.isenabled()
        raise RuntimeError("failed batch")
    assert gc.isenabled()


def test_a_later_batch_probes_its_keys_through_the_whole_index(session: Session) -> None:
    """A re-run or a later batch against a table larger than itself looks its keys up through
    the (department, dataset, source_key) index — one probe per key — and never reads every
    row of the department's dataset per key (a join with json_each let SQLite's planner do
    that: quadratic, minutes per batch of 10,000 at 200,000 links)."""
    from sqlalchemy import event

    link_batch(session, batch(60), "person", "public_security", "persons")
    session.commit()
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "identity_source_record" in statement and "json_each" in statement:
            statements.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        result = link_batch(session, batch(3, version="2024-02-01"), "person", "public_security", "persons")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert result.linked == 0 and len(statements) >= 1  # the 3 keys were found (updated, not linked anew)
    raw = session.connection().connection.driver_connection
    probes = 0
    for statement, parameters in statements:
        plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()]
        assert not any(step.startswith("SCAN") and "identity_source_record" in step for step in plan), plan
        if "source_key" in statement.split("WHERE", 1)[-1] or "source_key =" in statement:
            probes += 1
            assert any("ix_identity_source_record_key" in step and "source_key=?" in step for step in plan), plan
    assert probes >= 1, statements


def test_identities_are_stored_in_their_code_order_alone(session: Session) -> None:
    """SQLite keeps identities in the primary key's B-tree alone (no second index per code),
    and the bulk paths that size a table by its rowid still size these."""
    for table in ("identity_person", "identity_enterprise"):
        (sql,) = session.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).one()
        assert sql.rstrip().upper().endswith("WITHOUT ROWID"), table
        assert not session.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NULL"), {"t": table}
        ).first(), table
    people = IdentityPerson.__table__
    assert _bulk.table_size(session, people) == 0  # type: ignore[arg-type]
    link_batch(session, batch(30), "person", "public_security", "persons")
    assert _bulk.table_size(session, people) >= 30  # type: ignore[arg-type]
    found = {
        r[0]
        for r in _bulk.rows_for_keys(
            session,
            people,
            people.c.resident_id,  # type: ignore[arg-type]
            [rid(3), rid(4), "330322198001010000"],
        )
    }
    assert found == {rid(3), rid(4)}


def test_clustering_migration_keeps_every_identity(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """identity_0003 rebuilds the tables with their rows and indexes, and back."""
    from hub.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    migrate(url)
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            link_batch(s, batch(25), "person", "public_security", "persons")
            s.commit()
            before = s.execute(text("SELECT * FROM identity_person ORDER BY resident_id")).all()
        import alembic.command

        from hub.db import alembic_config

        cfg = alembic_config(url)
        alembic.command.downgrade(cfg, "identity_0002")
        with engine.connect() as c:
            (sql,) = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'identity_person'")).one()
            assert "WITHOUT ROWID" not in sql.upper()
            # identity_0005's ``provisional`` (the last column) is gone below it
            assert c.execute(text("SELECT * FROM identity_person ORDER BY resident_id")).all() == [
                tuple(r[:-1]) for r in before
            ]
        alembic.command.upgrade(cfg, "heads")
        with engine.connect() as c:
            (sql,) = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'identity_person'")).one()
            assert sql.rstrip().upper().endswith("WITHOUT ROWID")
            assert c.execute(text("SELECT * FROM identity_person ORDER BY resident_id")).all() == before
            names = {
                r[0]
                for r in c.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'identity_%'")
                )
            }
            assert {
                "ix_identity_person_merged_into",
                "ix_identity_enterprise_org_code",
                "ix_identity_enterprise_merged_into",
            } <= names
    finally:
        engine.dispose()


def test_new_identities_of_one_or_several_links_in_any_order_get_their_golden_records(session: Session) -> None:
    """A batch mixing codes seen once and codes seen twice, in no order: each identity is
    written once, and its golden record is what recomputing it from its links gives."""
    rng = np.random.default_rng(5)
    codes = [rid(i) for i in range(40)] + [rid(100 + i // 2) for i in range(20)]
    order = rng.permutation(len(codes))
    df = pd.DataFrame(
        {
            "_source_key": [f"k{i}" for i in order],
            "_source_version": "2024-01-01",
            "resident_id": [codes[i] for i in order],
            "name": [f"姓名{i}" for i in order],
            "sex": ["1" if i % 2 else "2" for i in order],
            "address": [None if i % 3 == 0 else f"地址{i}" for i in order],
        }
    )
    result = link_batch(session, df, "person", "public_security", "persons")
    assert result.created == 50 and result.linked == 60
    stored = {p.resident_id: (p.attributes, p.stored_sources) for p in session.scalars(select(IdentityPerson))}
    assert sorted(stored) == sorted(set(codes))
    one_link = {c for c in codes if codes.count(c) == 1}
    assert {c for c, (_a, src) in stored.items() if src == "one_link"} == one_link
    for c in one_link:
        i = codes.index(c)
        want = {"name": f"姓名{i}", "sex": "1" if i % 2 else "2"}
        if i % 3:
            want["address"] = f"地址{i}"
        assert {k: v for k, v in stored[c][0].items() if k in want} == want
    # recomputing every golden record from its links changes nothing
    assert golden.refresh(session, "person", sorted(set(codes)), cause="link") == 0
