"""The model kept up: thresholds chosen on held-out labels of the hub's own (and stewards'
decisions), a new version per training, links an older version placed elsewhere proposed for
review and moved only by a steward's decision."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from identity.matching import Thresholds
from identity.matching_maintenance import (
    GRID,
    MIN_LABELS,
    choose_thresholds,
    decision_labels,
    held_out,
    retrain,
    wilson_lower,
)
from identity.matching_model import latest
from identity.matching_tables import LINKED, OPEN, REJECTED, RELINK, IdentityReviewQueue
from identity.tables import IdentitySourceRecord
from recognition.identity_review import accept
from sandbox.generator import Sizes, generate
from tests.identity.matching.test_resolve_matching import _seed


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4244, sizes=Sizes(persons=1500, enterprises=10, properties=10))


def test_wilson_lower_bound() -> None:
    assert wilson_lower(0, 0) == 0.0
    assert 0.99 < wilson_lower(1000, 1000) < 1.0  # a thousand right of a thousand: not quite certain
    assert wilson_lower(100, 100) < 0.995 < wilson_lower(2000, 2000)  # a hundred are too few to promise 0.995
    assert wilson_lower(990, 1000) < 0.99


def test_held_out_split_is_stable_and_by_identity() -> None:
    codes = pd.Series([f"3303022000010100{i:02d}" for i in range(300)] * 2)
    first, again = held_out(codes), held_out(codes)
    assert (first == again).all()
    assert (first[:300] == first[300:]).all()  # the same identity always on the same side
    assert 0.2 < first[:300].mean() < 0.45


def test_thresholds_hold_precision_on_labels() -> None:
    rng = np.random.default_rng(1)
    right = pd.DataFrame({"p": rng.uniform(0.995, 1.0, 3000), "true": True})
    # false matches score up to 0.975: the threshold must climb above them
    wrong = pd.DataFrame({"p": rng.uniform(0.96, 0.975, 60), "true": False})
    thresholds, report = choose_thresholds(pd.concat([right, wrong]))
    assert report["chosen_from_labels"] and thresholds.match == 0.98
    assert thresholds.review < thresholds.match
    # clean labels: the lowest grid point
    clean, _ = choose_thresholds(right)
    assert clean.match == GRID[0]
    # too few labels: the defaults stand
    few, report = choose_thresholds(right.head(MIN_LABELS - 1))
    assert few == Thresholds() and not report["chosen_from_labels"]


def test_retrain_proposes_relinks_and_a_steward_moves_the_link(hub_db_url: str, city: object) -> None:
    persons = city.persons  # type: ignore[attr-defined]
    engine = make_engine(hub_db_url)
    a, b = persons.iloc[5], persons.iloc[6]
    try:
        with session_scope(engine) as s:
            _seed(s, city)
            # an older model placed B's record on A (a link by probability, an old version)
            values = {c: (str(b[c])[:10] if c == "birth_date" else str(b[c])) for c in
                      ("name", "sex", "birth_date", "address", "region_code")}  # fmt: skip
            s.add(IdentitySourceRecord(
                department="tax", dataset="legal_representatives", source_key="old-1", entity_kind="person",
                canonical_code=a["resident_id"], method="probabilistic", score=0.991, match_probability=0.991,
                model_version="person-20200101T000000000000Z-00000000", attributes=values,
            ))  # fmt: skip
        with session_scope(engine) as s:
            report = retrain(s)
        assert report is not None
        model = latest()
        assert model is not None and model.version == report["version"]
        assert report["held_out_labels"] > 100 and report["labels"] > 2 * report["held_out_labels"] * 0.8
        assert report["chosen_from_labels"] and model.thresholds.match in GRID
        assert report["relinks"] == {"links_scored": 1, "proposed": 1, "agree": 0}
        with session_scope(engine) as s:
            (item,) = s.scalars(select(IdentityReviewQueue).where(IdentityReviewQueue.reason == RELINK))
            assert (item.candidate_code, item.runner_up_code, item.status) == (b["resident_id"], a["resident_id"], OPEN)
            assert item.details is not None and item.details["name"] != b["name"]  # masked
            # proposed, not done: the link is where the old model put it
            link = s.scalar(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "old-1"))
            assert link is not None and link.canonical_code == a["resident_id"] and link.unlinked_at is None
            item_id = item.id
        with session_scope(engine) as s:
            again = retrain(s)
            assert again is not None and again["relinks"]["proposed"] == 0  # the same proposal is not queued twice
        with session_scope(engine) as s:
            decision = accept(s, item_id, actor="steward-1", reason="the record's birth date and address are B's")
            assert (decision.from_code, decision.into_code) == (a["resident_id"], b["resident_id"])
        with session_scope(engine) as s:
            links = s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.source_key == "old-1")).all()
            active = [(x.canonical_code, x.method) for x in links if x.unlinked_at is None]
            assert active == [(b["resident_id"], "probabilistic_review")]
            assert [x.canonical_code for x in links if x.unlinked_at is not None] == [a["resident_id"]]
            assert s.get(IdentityReviewQueue, item_id).status == LINKED  # type: ignore[union-attr]
            # the steward's decision is a label for the next training: true at its probability
            assert decision_labels(s).empty  # relink items are not grey-zone match labels
    finally:
        engine.dispose()


def test_stewards_decisions_are_labels(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    try:
        with session_scope(engine) as s:
            for key, status, p in (("k1", LINKED, 0.93), ("k2", REJECTED, 0.88), ("k3", OPEN, 0.9)):
                s.add(IdentityReviewQueue(
                    department="tax", dataset="reps", incoming_key=key, candidate_code=f"C{key}",
                    match_probability=p, status=status, created_at=now,
                ))  # fmt: skip
        with session_scope(engine) as s:
            labels = decision_labels(s).sort_values("p").reset_index(drop=True)
        assert labels.to_dict("records") == [{"p": 0.88, "true": False}, {"p": 0.93, "true": True}]
    finally:
        engine.dispose()


def test_train_command_reports_thresholds_and_relinks(hub_db_url: str, city: object) -> None:
    from identity.cli import app

    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _seed(s, city)
    engine.dispose()
    shown = json.loads(CliRunner().invoke(app, ["matching", "train"]).output)
    assert shown["relinks"] == {"links_scored": 0, "proposed": 0, "agree": 0}
    assert [row["threshold"] for row in shown["threshold_grid"]] == list(GRID)
    assert shown["thresholds"]["match"] == latest().thresholds.match  # type: ignore[union-attr]
