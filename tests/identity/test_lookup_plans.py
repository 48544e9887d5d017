"""Lookups of many values on PostgreSQL stay linear: the values are a semi join the server hashes
or probes an index with, never a scan comparing every row with every value of an ``= ANY`` array,
and a load that grew a table much is analysed in its own transaction
(docs/decisions/0041-postgresql-lookups-of-many-values.md); the same answers on SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from identity import _bulk, _bulk_pg
from identity.resolve import link_batch
from identity.tables import IdentityPerson, IdentitySourceRecord
from tests.identity.test_resolve_bulk import batch, rid

#: values the array literal must escape, or a list of text that is no plain array literal
AWKWARD = ['李"四\\', "王,五", "{赵六}", " 钱七 ", "NULL", "张三"]


def _plan(session: Session, stmt: object) -> str:
    compiled = stmt.compile(dialect=session.get_bind().dialect)  # type: ignore[attr-defined]
    rows = session.connection().exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
    return "\n".join(r[0] for r in rows)


def _linear(plan: str) -> bool:
    """Each row meets the values through a hash or an index, never an array searched row by
    row (``= ANY`` in a filter) nor a nested loop comparing every pair (a join filter)."""
    lines = plan.splitlines()
    searched = any("Filter:" in line and "ANY" in line for line in lines)
    return not searched and ("Hash" in plan or "Index" in plan)


def _reltuples(session: Session, table: str) -> float:
    return float(session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}))


def _scenario_lookup_of_awkward_values(session: Session) -> None:
    df = batch(len(AWKWARD))
    df["name"] = AWKWARD
    link_batch(session, df, "person", "public_security", "persons")
    session.commit()
    wanted = [*AWKWARD[:4], "无此人"]
    for values in (wanted, [*wanted, None]):  # None: the driver's list, not the literal
        found = session.scalars(
            select(IdentityPerson.resident_id).where(_bulk.in_values(session, IdentityPerson.name, values))  # type: ignore[arg-type]
        )
        assert sorted(found) == sorted(rid(i) for i in range(4))


def test_lookup_of_awkward_values_on_sqlite(session: Session) -> None:
    _scenario_lookup_of_awkward_values(session)


@pytest.mark.postgres
def test_lookup_of_awkward_values_on_postgres(pg_session: Session) -> None:
    _scenario_lookup_of_awkward_values(pg_session)


@pytest.mark.postgres
def test_a_load_that_grows_a_table_is_analysed_and_lookups_probe_the_indexes_on_postgres(
    pg_session: Session,
) -> None:
    session = pg_session
    # a small load leaves the statistics to autovacuum
    link_batch(session, batch(_bulk_pg.ANALYZE_MIN_ROWS - 1), "person", "public_security", "persons")
    session.commit()
    assert _reltuples(session, "identity_person") < 0
    # a first large load: analysed before its transaction ends (its own rows counted)
    n = 4 * _bulk_pg.ANALYZE_MIN_ROWS
    df = batch(n)
    df["_source_key"] = [f"m{i}" for i in range(n)]
    df["name"] = [f"名{i}" for i in range(n)]
    link_batch(session, df, "person", "public_security", "persons")
    assert _reltuples(session, "identity_person") >= n
    assert _reltuples(session, "identity_source_record") >= n
    # many codes against the table just filled: not a scan comparing every row with every code
    # of an array (what the planner chose, for the table it took for empty or for many codes)
    codes = [rid(i) for i in range(0, n, 2)]
    person = IdentityPerson.__table__.c
    plan = _plan(session, select(person.resident_id).where(_bulk.in_values(session, person.resident_id, codes)))
    assert _linear(plan), plan[:300]
    link = IdentitySourceRecord.__table__.c
    keys = [f"m{i}" for i in range(0, n, 2)]
    plan = _plan(
        session,
        select(link.id).where(
            link.department == "public_security",
            link.dataset == "persons",
            _bulk.in_values(session, link.source_key, keys),
        ),
    )
    assert _linear(plan), plan[:300]
    # a column no index serves: the names are hashed once, each row looked up in the hash
    names = [f"名{i}" for i in range(0, n, 2)]
    plan = _plan(session, select(person.resident_id).where(_bulk.in_values(session, person.name, names)))
    assert _linear(plan) and "Hash" in plan, plan[:300]
    # more codes than the table holds rows: whatever the plan, no row is compared with every code
    codes = [rid(i) for i in range(2 * n)]
    plan = _plan(session, select(person.resident_id).where(_bulk.in_values(session, person.resident_id, codes)))
    assert _linear(plan), plan[:300]
    session.commit()


@pytest.mark.postgres
def test_the_analyze_after_a_load_samples_a_small_target_and_puts_the_setting_back_on_postgres(
    pg_session: Session,
) -> None:
    session = pg_session
    session.execute(text("SET default_statistics_target = 50"))  # the session's own setting
    n = 4 * _bulk_pg.ANALYZE_MIN_ROWS
    df = batch(n)
    df["_source_key"] = [f"s{i}" for i in range(n)]
    link_batch(session, df, "person", "public_security", "persons")
    assert _reltuples(session, "identity_person") >= n
    # the statistics of the small sample: a histogram of at most target + 1 bounds (50 would give 51)
    bounds = session.scalar(
        text(
            "SELECT array_length(CAST(histogram_bounds AS TEXT)::TEXT[], 1) FROM pg_stats"
            " WHERE tablename = 'identity_source_record' AND attname = 'source_key'"
        )
    )
    assert bounds is not None and bounds <= _bulk_pg.ANALYZE_STATISTICS_TARGET + 1
    # the setting the transaction had before, for whatever it runs next
    assert session.scalar(text("SELECT current_setting('default_statistics_target')")) == "50"
    session.commit()
    assert session.scalar(text("SELECT current_setting('default_statistics_target')")) == "50"


def _known(session: Session, table: str, column: str) -> list[str]:
    """The values of ``column`` that ``table``'s statistics list (its most common values)."""
    common = session.scalar(
        text(
            "SELECT most_common_vals::text::text[] FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = :t AND attname = :c"
        ),
        {"t": table, "c": column},
    )
    return list(common or [])


@pytest.mark.postgres
def test_a_new_datasets_first_small_batch_is_analysed_and_its_next_lookup_probes_the_index_on_postgres(
    pg_session: Session,
) -> None:
    session = pg_session
    n = 4 * _bulk_pg.ANALYZE_MIN_ROWS
    link_batch(session, batch(n), "person", "public_security", "persons")  # analysed: it grew the table
    session.commit()
    assert _known(session, "identity_source_record", "dataset") == ["persons"]
    # a second dataset's first batch, far smaller than a fifth of the links: its name is made known
    small = batch(100)
    small["_source_key"] = [f"t{i}" for i in range(100)]
    link_batch(session, small, "person", "civil_affairs", "marriages")
    assert sorted(_known(session, "identity_source_record", "dataset")) == ["marriages", "persons"]
    # its next batch's lookup by source key: the keys probe the index, not the dataset's rows read
    # as the outer side of a nested loop filtering every key again for each (the plan for a dataset
    # taken for one row: its keys times its rows, batch after batch)
    link = IdentitySourceRecord.__table__.c
    keys = [f"t{i}" for i in range(100, 150)]
    plan = _plan(
        session,
        select(link.id).where(
            link.department == "civil_affairs",
            link.dataset == "marriages",
            _bulk.in_values(session, link.source_key, keys),
        ),
    )
    assert "Join Filter" not in plan and _linear(plan), plan[:400]
    # a batch of a dataset the statistics know analyses nothing more
    more = batch(100)
    more["_source_key"] = [f"t{i}" for i in range(100, 200)]
    assert not _bulk.analyze_if_unknown(
        session, IdentitySourceRecord.__table__, {"department": "civil_affairs", "dataset": "marriages"}
    )
    link_batch(session, more, "person", "civil_affairs", "marriages")
    session.commit()
