"""The review queue: grey-zone decisions stored (masked, idempotently), decided and undone,
on SQLite and PostgreSQL; the ORM model matches the migration."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import inspect, select

from hub.db import make_engine, session_scope
from identity.matching import MATCH, NO_MATCH, REVIEW
from identity.matching_review import ReviewStateError, decide, enqueue_reviews, history, open_reviews, reopen
from identity.matching_tables import LINKED, OPEN, REJECTED, IdentityReviewEvent, IdentityReviewQueue
from identity.tables import IdentitySourceRecord

DECISIONS = pd.DataFrame(
    {
        "incoming_key": ["k1", "k2", "k3"],
        "canonical_code": ["330322198001011234", "33032219750505002X", None],
        "match_probability": [0.9, 0.995, 0.1],
        "decision": [REVIEW, MATCH, NO_MATCH],
        "runner_up_code": ["330322198001011242", None, None],
        "runner_up_probability": [0.85, None, None],
    }
)
INCOMING = pd.DataFrame(
    {
        "incoming_key": ["k1", "k2", "k3"],
        "name": ["张三丰", "李四", "王五"],
        "resident_id": ["330322198001011230", None, None],
        "address": ["浙江省温州市洞头区北岙街道中心路12号", None, None],
        "birth_date": ["1980-01-01", None, None],
        "sex": ["1", "2", "1"],
        "region_code": ["330322", None, None],
    }
)


def _exercise(url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as s:
        n = enqueue_reviews(
            s, DECISIONS, department="public_security", dataset="persons", incoming=INCOMING, run_id="r1"
        )
        assert n == 1
    with session_scope(engine) as s:
        # The same batch again (a re-run) adds nothing.
        assert enqueue_reviews(s, DECISIONS, department="public_security", dataset="persons", incoming=INCOMING) == 0
        (item,) = open_reviews(s)
        assert item.incoming_key == "k1" and item.candidate_code == "330322198001011234"
        assert item.runner_up_code == "330322198001011242"
        # Personal data is masked for the reviewer.
        assert item.details is not None
        assert item.details["name"] == "张**"
        assert item.details["resident_id"] == "330322********1230"
        assert "中心路" not in item.details["address"]
        review_id = item.id
    with session_scope(engine) as s:
        assert decide(s, review_id, link=True, actor="reviewer-a").status == LINKED
        with pytest.raises(ReviewStateError):
            decide(s, review_id, link=False, actor="reviewer-b")
    with session_scope(engine) as s:
        # The link is in the master index...
        (link,) = s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).all()
        assert link.canonical_code == "330322198001011234" and link.method == "probabilistic_review"
        assert link.unlinked_at is None
    with session_scope(engine) as s:
        assert reopen(s, review_id, actor="reviewer-b", note="wrong person").status == OPEN
        # ...and undoing the decision undoes the link, keeping it on record.
        (link,) = s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "k1")).all()
        assert link.unlinked_at is not None
        assert decide(s, review_id, link=False, actor="reviewer-b").status == REJECTED
        assert history(s, review_id) == [
            ("enqueued", "matcher"),
            ("linked", "reviewer-a"),
            ("reopened", "reviewer-b"),
            ("rejected", "reviewer-b"),
        ]
        assert open_reviews(s) == []
    engine.dispose()


def test_review_queue_on_sqlite(hub_db_url: str) -> None:
    _exercise(hub_db_url)


def test_match_decisions_become_links(hub_db_url: str) -> None:
    from identity.matching_review import link_matches

    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        assert link_matches(s, DECISIONS, department="land", dataset="property_rights") == 1
        links = s.scalars(select(IdentitySourceRecord)).all()
        assert [(x.source_key, x.canonical_code, x.method) for x in links] == [
            ("k2", "33032219750505002X", "probabilistic")
        ]
    engine.dispose()


@pytest.mark.postgres
def test_review_queue_on_postgres(pg_hub_db_url: str) -> None:
    _exercise(pg_hub_db_url)


@pytest.mark.postgres
@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_model_matches_migration(which: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("hub_db_url" if which == "sqlite" else "pg_hub_db_url")
    engine = make_engine(url)
    insp = inspect(engine)
    for model in (IdentityReviewQueue, IdentityReviewEvent):
        table = model.__table__
        db_cols = {c["name"]: c for c in insp.get_columns(table.name)}
        assert set(db_cols) == {c.name for c in table.columns}, table.name
        for col in table.columns:
            assert db_cols[col.name]["nullable"] == col.nullable, (table.name, col.name)
        db_indexes = {tuple(i["column_names"]) for i in insp.get_indexes(table.name)}
        for index in table.indexes:
            assert tuple(c.name for c in index.columns) in db_indexes, (table.name, index.name)
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("identity_review_queue")}
    assert ("department", "dataset", "incoming_key", "candidate_code") in uniques
    engine.dispose()
