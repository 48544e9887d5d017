"""Enterprise matching inside resolution, on SQLite and PostgreSQL: enterprise records without a
usable code (a USCC with a wrong check character, no code at all) are linked by the enterprise model
(probability and model version on the link), sent to the review queue with their candidates (the
legal representative's name and the address masked, the enterprise's name not), or made provisional
enterprise identities under the hub's own code; the enterprise model file is trained from the
index's own labels (records sharing a valid code) when there is none."""

from __future__ import annotations

import json
from pathlib import Path

import opencc
import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from hub.settings import reset_settings
from identifiers import org_code
from identity.matching_model import latest
from identity.matching_step import PROBABILISTIC, PROVISIONAL, provisional_code
from identity.matching_tables import OPEN, IdentityReviewQueue
from identity.resolve import link_batch
from identity.tables import IdentityEnterprise, IdentitySourceRecord
from recognition.identity_review import show
from sandbox.generator import Sizes, generate

TWIN_NAME = "温州瓯江精密机械有限公司"
TWIN_REP = "欧阳明轩"
TWINS = ["91330322MA2TWYN00G", "91330322MA2TWYN19D"]  # valid, embedded organisation codes too
UNKNOWN_NAME = "哈尔滨北极星冷链物流有限公司"
WAITING_ORG = "MA7WAIT0" + org_code.calc_check_digit("MA7WAIT0")


def _twin(code: str, key: str) -> dict[str, object]:
    return {
        "_source_key": key,
        "uscc": code,
        "name": TWIN_NAME,
        "legal_rep_name": TWIN_REP,
        "address": "浙江省温州市洞头区北岙街道海霞路8号",
        "region_code": "330322",
    }


def _damage(code: str) -> str:
    """The USCC with a wrong check character."""
    wrong = "0" if code[-1] != "0" else "1"
    return code[:-1] + wrong


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4242, sizes=Sizes(persons=1500, enterprises=400, properties=10))


def _seed(session: object, pop: object) -> pd.DataFrame:
    """The index: every enterprise by its USCC (commerce), twins among them, and tax showing many
    of them again by valid code with its own values under its own column names (the labels)."""
    ents = pop.enterprises  # type: ignore[attr-defined]
    first = pd.DataFrame(
        {
            "_source_key": ents["ent_key"].astype(str),
            "uscc": ents["uscc"],
            "name": ents["ent_name"],
            "legal_rep_name": ents["legal_rep_name"],
            "legal_rep_resident_id": ents["legal_rep_id"],
            "address": ents["address"],
            "region_code": ents["region_code"],
        }
    )
    first = pd.concat([first, pd.DataFrame([_twin(TWINS[0], "t1"), _twin(TWINS[1], "t2")])], ignore_index=True)
    link_batch(session, first, "enterprise", "commerce", "enterprises")  # type: ignore[arg-type]
    tax = pop.taxpayers  # type: ignore[attr-defined]
    seen = pd.DataFrame(
        {
            "_source_key": tax["taxpayer_code"].astype(str),
            "taxpayer_code": tax["taxpayer_code"].astype(str).str.replace(" ", ""),
            "taxpayer_name": tax["taxpayer_name"],
            "legal_rep_name": tax["legal_rep_name"],
            "address": tax["reg_address"],
        }
    )
    link_batch(session, seen, "enterprise", "tax", "taxpayers")  # type: ignore[arg-type]
    return ents


def _incoming(ents: pd.DataFrame) -> pd.DataFrame:
    damaged, variant = ents.iloc[10], ents.iloc[20]
    to_traditional = opencc.OpenCC("s2t")
    traditional = to_traditional.convert(str(variant["ent_name"]))
    assert traditional != variant["ent_name"]
    return pd.DataFrame(
        [
            {  # a known enterprise whose USCC lost its check character
                "_source_key": "damaged",
                "uscc": _damage(str(damaged["uscc"])),
                "name": damaged["ent_name"],
                "legal_rep_name": damaged["legal_rep_name"],
                "address": damaged["address"],
                "region_code": damaged["region_code"],
            },
            {  # a known enterprise written in traditional characters, no code at all
                "_source_key": "traditional",
                "uscc": None,
                "name": traditional,
                "legal_rep_name": to_traditional.convert(str(variant["legal_rep_name"])),
                "address": to_traditional.convert(str(variant["address"])),
                "region_code": variant["region_code"],
            },
            {**_twin("", "ambiguous"), "uscc": None},  # one of two twins: which?
            {  # a valid old organisation code nobody holds yet, a name nobody bears: it waits (relink)
                "_source_key": "waiting",
                "org_code": WAITING_ORG,
                "name": "洞头区未登记渔业合作社",
                "region_code": "330322",
            },
            {  # nobody the index knows, a USCC of the wrong length
                "_source_key": "unknown",
                "uscc": "91230102MA1",
                "name": UNKNOWN_NAME,
                "legal_rep_name": "司马无名",
                "address": "黑龙江省哈尔滨市道里区友谊路1号",
                "region_code": "230102",
            },
        ]
    )


def _scenario(url: str, pop: object, home: Path) -> None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            ents = _seed(s, pop)
        assert latest("enterprise") is None  # every seeded record had its code: no model file yet
        with session_scope(engine) as s:
            result = link_batch(s, _incoming(ents), "enterprise", "market", "inspections")
            model = latest("enterprise")
            assert model is not None and model.entity == "enterprise"
            assert model.labels > 100  # pairs sharing a valid code, from the index itself
            assert latest("person") is None  # the person model is another file
            assert (result.linked_by_match, result.sent_to_review, result.provisional) == (2, 1, 1)
            assert result.model_version == model.version and result.linked_by_code == 0
            status = dict(zip(result.records["_source_key"], result.records["identity_status"], strict=True))
            assert status == {
                "damaged": "resolved", "traditional": "resolved", "ambiguous": "unresolved", "unknown": "new",
                "waiting": "unresolved",
            }  # fmt: skip
            methods = dict(zip(result.records["_source_key"], result.records["identity_method"], strict=True))
            assert methods["ambiguous"] == "review" and methods["waiting"] is None
        with session_scope(engine) as s:
            market = select(IdentitySourceRecord).where(IdentitySourceRecord.department == "market")
            links = {link.source_key: link for link in s.scalars(market)}
            # the damaged USCC and the traditional name: linked to the right enterprise
            for key, row in (("damaged", ents.iloc[10]), ("traditional", ents.iloc[20])):
                link = links[key]
                assert link.entity_kind == "enterprise" and link.canonical_code == row["uscc"]
                assert link.method == PROBABILISTIC and link.model_version == model.version
                assert link.match_probability is not None and link.match_probability >= model.thresholds.match
            # the twin: no link, a review item with both twins as candidates
            assert "ambiguous" not in links
            (item,) = s.scalars(select(IdentityReviewQueue).where(IdentityReviewQueue.incoming_key == "ambiguous"))
            assert item.status == OPEN and item.entity_kind == "enterprise"
            assert {item.candidate_code, item.runner_up_code} == set(TWINS)
            # the enterprise's name is no personal data; its legal representative's name and address are
            assert item.details is not None and item.details["name"] == TWIN_NAME
            assert item.details["legal_rep_name"] != TWIN_REP and item.details["legal_rep_name"].startswith("欧")
            assert item.details["address"] != _twin("", "x")["address"]
            # stewards see both sides: masked without personal:read, whole with it
            masked = show(s, item.id, personal=False)
            assert masked["entity_kind"] == "enterprise" and masked["candidate"] in TWINS
            assert {c["name"] for c in masked["candidates"]} == {TWIN_NAME}
            assert TWIN_REP not in str(masked) and "海霞路" not in str(masked)
            whole = show(s, item.id, personal=True)
            assert {c["legal_rep_name"] for c in whole["candidates"]} == {TWIN_REP}
            # nobody: a provisional enterprise, marked as such, under the hub's own code
            unknown = links["unknown"]
            assert unknown.method == PROVISIONAL and unknown.match_probability is None
            assert unknown.canonical_code == provisional_code("market", "inspections", "unknown")
            found = s.get(IdentityEnterprise, unknown.canonical_code)
            assert found is not None and found.provisional and found.name == UNKNOWN_NAME
            assert s.get(IdentityEnterprise, ents.iloc[10]["uscc"]).provisional is False  # type: ignore[union-attr]
        with session_scope(engine) as s:
            # the same batch again: links kept, nothing new queued, the same model file used
            again = link_batch(s, _incoming(ents), "enterprise", "market", "inspections")
            assert again.records["canonical_code"].tolist()[:2] == [ents.iloc[10]["uscc"], ents.iloc[20]["uscc"]]
            assert (again.linked_by_match, again.sent_to_review, again.provisional) == (2, 1, 1)
            assert len(list((home / "matching").glob("enterprise-*.json"))) == 1
        with session_scope(engine) as s:
            market = select(IdentitySourceRecord).where(IdentitySourceRecord.department == "market")
            assert len(s.scalars(market).all()) == 3
            assert len(s.scalars(select(IdentityReviewQueue)).all()) == 1
    finally:
        engine.dispose()


def test_enterprise_matching_in_resolve_on_sqlite(hub_db_url: str, city: object, tmp_path: Path) -> None:
    _scenario(hub_db_url, city, tmp_path / "home")


@pytest.mark.postgres
def test_enterprise_matching_in_resolve_on_postgres(
    pg_hub_db_url: str, city: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    _scenario(pg_hub_db_url, city, tmp_path / "home")


def test_train_command_trains_the_enterprise_model(hub_db_url: str, city: object, tmp_path: Path) -> None:
    """``hub identity matching train``: a model per kind the index holds; ``--entity enterprise``
    alone; exit 1 when the index holds none of the kind asked for."""
    from identity.cli import app

    runner = CliRunner()
    empty = runner.invoke(app, ["matching", "train", "--entity", "enterprise"])
    assert empty.exit_code == 1 and "no enterprise" in empty.output
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _seed(s, city)
    engine.dispose()
    both = runner.invoke(app, ["matching", "train"])
    assert both.exit_code == 0, both.output
    (shown,) = [json.loads(line) for line in both.output.splitlines() if line.startswith("{")]
    assert shown["entity"] == "enterprise" and shown["labels"] > 50 and shown["master_records"] == 402
    assert Path(shown["path"]).parent == tmp_path / "home" / "matching"
    assert Path(shown["path"]).name.startswith("enterprise-")
    found = latest("enterprise")
    assert found is not None and found.version == shown["version"]
    assert latest("person") is None
    # links the model placed are scored again by the next version: here it agrees, nothing proposed
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        placed = link_batch(s, _incoming(city.enterprises), "enterprise", "market", "inspections")  # type: ignore[attr-defined]
        assert placed.linked_by_match == 2 and placed.model_version == shown["version"]
    engine.dispose()
    again = runner.invoke(app, ["matching", "train", "--entity", "enterprise"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["version"] != shown["version"]
    assert report["relinks"] == {"links_scored": 2, "proposed": 0, "agree": 2}
