"""Matching inside resolution, on SQLite and PostgreSQL: person records without a usable code are
linked by the model (probability and model version on the link), sent to the review queue with
their candidates, or made provisional identities; the model file is trained from the index when
there is none, and used as it is when there is one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from hub.models import LineageBatch
from hub.settings import reset_settings
from identifiers import resident_id
from identifiers.vectorized import normalize_many
from identity.lookup import lookup
from identity.matching_model import latest, model_dir
from identity.matching_step import PROBABILISTIC, PROVISIONAL, provisional_code
from identity.matching_tables import OPEN, IdentityReviewQueue
from identity.resolve import link_batch
from identity.tables import IdentityPerson, IdentitySourceRecord
from sandbox.generator import Sizes, generate

COLUMNS = ["resident_id", "name", "sex", "birth_date", "address", "region_code"]
TWIN_NAME = "欧阳明轩"
TWINS = [
    "33032220010101003" + resident_id.calc_check_digit("33032220010101003"),
    "33032220010101005" + resident_id.calc_check_digit("33032220010101005"),
]


def _twin(code: str, key: str) -> dict[str, object]:
    return {
        "_source_key": key,
        "resident_id": code,
        "name": TWIN_NAME,
        "sex": "1",
        "birth_date": "2001-01-01",
        "address": "浙江省温州市洞头区北岙街道海霞路8号",
        "region_code": "330322",
    }


def _damage(code: str) -> str:
    """The id with a wrong check character."""
    wrong = "0" if code[-1] != "0" else "1"
    return code[:-1] + wrong


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4242, sizes=Sizes(persons=1500, enterprises=10, properties=10))


def _seed(session: object, pop: object) -> pd.Series:
    """The index: every person by code (public security), twins among them, and a second
    department showing many of them again by valid code with its own values (the labels)."""
    persons = pop.persons  # type: ignore[attr-defined]
    first = persons.assign(_source_key=persons["person_key"].astype(str))[["_source_key", *COLUMNS]]
    first = pd.concat([first, pd.DataFrame([_twin(TWINS[0], "t1"), _twin(TWINS[1], "t2")])], ignore_index=True)
    link_batch(session, first, "person", "public_security", "persons")  # type: ignore[arg-type]
    reg = pop.person_registry  # type: ignore[attr-defined]
    valid = normalize_many(reg["resident_id"].tolist(), "resident_id")["valid"].to_numpy(dtype=bool)
    seen = reg[valid].assign(_source_key=reg["person_no"].astype(str))[["_source_key", *COLUMNS]]
    link_batch(session, seen, "person", "social_insurance", "insured_persons")  # type: ignore[arg-type]
    return persons.iloc[10]


def _incoming(known: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {  # a known person whose id lost its check character
                "_source_key": "damaged",
                "resident_id": _damage(str(known["resident_id"])),
                "name": known["name"],
                "sex": known["sex"],
                "birth_date": known["birth_date"],
                "address": known["address"],
                "region_code": known["region_code"],
            },
            {**_twin("", "ambiguous"), "resident_id": None},  # one of two twins: which?
            {  # nobody the index knows
                "_source_key": "unknown",
                "resident_id": "3303221931",  # a wrong length
                "name": "司马无名",
                "sex": "2",
                "birth_date": "1931-07-15",
                "address": "浙江省温州市洞头区元觉街道沙角村1号",
                "region_code": "330322",
            },
        ]
    )


def _scenario(url: str, pop: object, home: Path) -> None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            known = _seed(s, pop)
        assert latest() is None  # every seeded record had its code: no model file yet
        with session_scope(engine) as s:
            result = link_batch(s, _incoming(known), "person", "tax", "legal_representatives")
            model = latest()
            assert model is not None and model_dir() == home / "matching"
            assert model.labels > 100  # pairs sharing a valid code, from the index itself
            assert (result.linked_by_match, result.sent_to_review, result.provisional) == (1, 1, 1)
            assert result.model_version == model.version
            status = dict(zip(result.records["_source_key"], result.records["identity_status"], strict=True))
            assert status == {"damaged": "resolved", "ambiguous": "unresolved", "unknown": "new"}
        with session_scope(engine) as s:
            links = {
                link.source_key: link
                for link in s.scalars(select(IdentitySourceRecord).where(IdentitySourceRecord.department == "tax"))
            }
            # the damaged id: linked to the right identity, with probability and model version
            damaged = links["damaged"]
            assert damaged.canonical_code == known["resident_id"]
            assert damaged.method == PROBABILISTIC
            assert damaged.match_probability is not None and damaged.match_probability >= model.thresholds.match
            assert damaged.model_version == model.version
            # the twin: no link, a review item with both twins as candidates, masked
            assert "ambiguous" not in links
            (item,) = s.scalars(select(IdentityReviewQueue).where(IdentityReviewQueue.incoming_key == "ambiguous"))
            assert item.status == OPEN and item.department == "tax"
            assert {item.candidate_code, item.runner_up_code} == set(TWINS)
            assert item.runner_up_probability is not None and item.runner_up_probability >= model.thresholds.review
            assert item.details is not None and item.details["name"] != TWIN_NAME
            assert item.details["name"].startswith(TWIN_NAME[0])
            # nobody: a provisional identity, marked as such, with the record's values
            unknown = links["unknown"]
            assert unknown.method == PROVISIONAL and unknown.match_probability is None
            assert unknown.canonical_code == provisional_code("tax", "legal_representatives", "unknown")
            person = s.get(IdentityPerson, unknown.canonical_code)
            assert person is not None and person.provisional and person.name == "司马无名"
            found = lookup(s, unknown.canonical_code.lower())  # found by its own code
            assert found is not None and found["provisional"] and found["resolved_by"] == "provisional"
            assert [r["source_key"] for r in found["source_records"]] == ["unknown"]
            assert s.get(IdentityPerson, known["resident_id"]).provisional is False  # type: ignore[union-attr]
            # ``hub identity lookup`` shows the matched link's probability and model version
            view = lookup(s, str(known["resident_id"]))
            assert view is not None and view["provisional"] is False
            (shown,) = [r for r in view["source_records"] if r["source_key"] == "damaged"]
            assert shown["match_probability"] == damaged.match_probability
            assert shown["model_version"] == model.version
        with session_scope(engine) as s:
            # the same batch again: links kept, nothing new queued, the same model file used
            again = link_batch(s, _incoming(known), "person", "tax", "legal_representatives")
            assert again.records["canonical_code"].tolist()[0] == known["resident_id"]
            # counted as a first attempt counts them (a batch retried after a crash past its commit:
            # resolve.after_commit), the linked and provisional records by how they were placed
            assert (again.linked_by_match, again.sent_to_review, again.provisional) == (1, 1, 1)
            assert len(list((home / "matching").glob("person-*.json"))) == 1
        with session_scope(engine) as s:
            tax = select(IdentitySourceRecord).where(IdentitySourceRecord.department == "tax")
            assert len(s.scalars(tax).all()) == 2
            assert len(s.scalars(select(IdentityReviewQueue)).all()) == 1
    finally:
        engine.dispose()


def test_matching_in_resolve_on_sqlite(hub_db_url: str, city: object, tmp_path: Path) -> None:
    _scenario(hub_db_url, city, tmp_path / "home")


@pytest.mark.postgres
def test_matching_in_resolve_on_postgres(
    pg_hub_db_url: str, city: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    _scenario(pg_hub_db_url, city, tmp_path / "home")


def test_train_command_writes_a_model_version(hub_db_url: str, city: object, tmp_path: Path) -> None:
    """``hub identity matching train``: exit 1 on an empty index; then a new version per run."""
    from identity.cli import app

    runner = CliRunner()
    empty = runner.invoke(app, ["matching", "train"])
    assert empty.exit_code == 1 and "no person" in empty.output
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _seed(s, city)
    engine.dispose()
    first = runner.invoke(app, ["matching", "train"])
    assert first.exit_code == 0, first.output
    shown = json.loads(first.output)
    assert shown["entity"] == "person" and shown["labels"] > 100 and shown["master_records"] == 1502
    assert Path(shown["path"]).parent == tmp_path / "home" / "matching"
    second = json.loads(runner.invoke(app, ["matching", "train"]).output)
    assert second["version"] != shown["version"]
    found = latest()
    assert found is not None and found.version == second["version"]
    assert found.thresholds.match == shown["thresholds"]["match"]


def test_pipeline_resolve_step_counts_how_records_found_their_identity(
    hub_db_url: str, city: object, tmp_path: Path
) -> None:
    """The pipeline's resolve step over a staged batch: the run ledger and the summary count
    records linked by code, by match, sent to review and made provisional."""
    from pipeline import staging
    from pipeline.lineage import record_batch
    from pipeline.steps import load_mapping, resolve
    from pipeline.summary import summarize

    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        known = _seed(s, city)
    engine.dispose()
    persons = city.persons  # type: ignore[attr-defined]
    coded = persons.iloc[20:25].assign(_source_key=[f"c{i}" for i in range(5)])[["_source_key", *COLUMNS]]
    batch = pd.concat([_incoming(known), coded], ignore_index=True)
    batch["birth_date"] = pd.to_datetime(batch["birth_date"])  # as the mapping's date normaliser gives it
    stager = staging.FileStager(tmp_path / "staging")
    ref = staging.stage_frame(stager, "public_security/persons/batch-1.parquet", batch)
    source = "file:///staged/public_security/persons/extract-1.parquet"  # the extract's batch validate read
    mapping = load_mapping("public_security_persons")
    with session_scope(engine) as s:
        lineage_id = record_batch(s, mapping, run_id="run-match-1", staged_ref=source, records=batch)
    validated = {"staged": [ref], "accepted_from": {ref: source}}
    out = resolve("public_security_persons", validated, "run-match-1", stager=stager)
    assert (out["linked_by_code"], out["linked_by_match"], out["sent_to_review"], out["provisional"]) == (5, 1, 1, 1)
    # the model placed records of the batch: its lineage names the model's version, as the links do
    model = latest()
    assert model is not None
    with session_scope(engine) as s:
        assert s.get(LineageBatch, lineage_id).model_version == model.version  # type: ignore[union-attr]
        versions = set(s.scalars(select(IdentitySourceRecord.model_version).where(
            IdentitySourceRecord.model_version.is_not(None))))  # fmt: skip
    assert versions == {model.version}
    engine.dispose()
    (row,) = summarize(["run-match-1"])
    assert row.department == "public_security"
    assert (row.linked_by_code, row.linked_by_match, row.sent_to_review, row.provisional) == (5, 1, 1, 1)


def test_a_key_twice_in_a_batch_is_one_review_item(hub_db_url: str, city: object) -> None:
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _seed(s, city)
    with session_scope(engine) as s:
        twice = pd.DataFrame([{**_twin("", "ambiguous"), "resident_id": None}] * 2)
        result = link_batch(s, twice, "person", "tax", "legal_representatives")
        assert result.records["identity_method"].tolist() == ["review", "review"]
    with session_scope(engine) as s:
        (item,) = s.scalars(select(IdentityReviewQueue))
        assert item.incoming_key == "ambiguous" and {item.candidate_code, item.runner_up_code} == set(TWINS)
    engine.dispose()
