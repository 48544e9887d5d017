"""A legal representative's record without a usable id finds its person through the enterprise it
represents: the batch's other records of that enterprise, or the enterprise's golden record in
the index, name the representative by a valid id. The evidence stands beside the name, never
alone: the same name for an enterprise that names someone else, or no evidence at all, does
not link."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from hub.db import make_engine, session_scope
from hub.settings import reset_settings
from identifiers import org_code
from identifiers import uscc as uscc_code
from identity.matching_relations import organisation_codes
from identity.matching_step import PROBABILISTIC, PROVISIONAL
from identity.resolve import link_batch
from identity.tables import IdentityEnterprise, IdentitySourceRecord
from sandbox.generator import Sizes, generate

COLUMNS = ["resident_id", "name", "sex", "birth_date", "address", "region_code"]


def _uscc(org: str) -> str:
    body = "9133032" + "2" + org
    return body + uscc_code.calc_check_digit(body)


def _org(body: str) -> str:
    return body + org_code.calc_check_digit(body)


ORG_A, ORG_B, ORG_C = _org("MA2H1XK0"), _org("MA2H1XK1"), _org("MA2H1XK2")


@pytest.fixture(scope="module")
def city() -> object:
    return generate(seed=4243, sizes=Sizes(persons=1200, enterprises=10, properties=10))


def test_organisation_codes_from_any_enterprise_code() -> None:
    usc = _uscc(ORG_A)
    given = pd.Series([usc, usc[8:17], f"{usc[8:16]}-{usc[16]}", "330322" + usc[8:17], usc[:-1] + "0", None, "x"])
    assert organisation_codes(given).tolist() == [ORG_A, ORG_A, ORG_A, ORG_A, None, None, None]


def _rep(key: str, person: pd.Series, represents: str | None, *, with_id: bool) -> dict[str, object]:
    return {
        "_source_key": key,
        "resident_id": person["resident_id"] if with_id else None,
        "name": person["name"],
        "represents": represents,
    }


def _scenario(url: str, city: object) -> None:
    persons = city.persons  # type: ignore[attr-defined]
    engine = make_engine(url)
    x, y, z = persons.iloc[3], persons.iloc[7], persons.iloc[11]
    try:
        with session_scope(engine) as s:
            index = persons.assign(_source_key=persons["person_key"].astype(str))[["_source_key", *COLUMNS]]
            link_batch(s, index, "person", "public_security", "persons")
            # the index knows enterprise B with Y as its legal representative (commerce's record)
            ent = pd.DataFrame(
                [{"_source_key": "e-b", "uscc": _uscc(ORG_B), "name": "温州乙公司", "legal_rep_id": y["resident_id"]}]
            )
            link_batch(s, ent, "enterprise", "commerce", "enterprises")
        with session_scope(engine) as s:
            held = s.scalars(select(IdentityEnterprise.legal_rep_id).where(IdentityEnterprise.org_code == ORG_B)).all()
            assert held == [y["resident_id"]]
            batch = pd.DataFrame(
                [
                    # enterprise A: tax names X by a valid id; commerce's record of A has no id,
                    # and names A by its organisation code
                    _rep("tax-a", x, _uscc(ORG_A), with_id=True),
                    _rep("com-a", x, ORG_A, with_id=False),
                    # enterprise B: the index names Y; the record names B by its USCC
                    _rep("com-b", y, _uscc(ORG_B), with_id=False),
                    # Z's name, but enterprise C's other record names X: no link
                    _rep("tax-c", x, _uscc(ORG_C), with_id=True),
                    _rep("com-c", z, ORG_C, with_id=False),
                    # Z's name and nothing else: no link
                    _rep("bare", z, None, with_id=False),
                ]
            )
            result = link_batch(s, batch, "person", "commerce", "legal_representatives")
            assert result.linked_by_match == 2 and result.provisional == 2
        with session_scope(engine) as s:
            links = {
                link.source_key: link
                for link in s.scalars(
                    select(IdentitySourceRecord).where(IdentitySourceRecord.dataset == "legal_representatives")
                )
            }
            assert (links["com-a"].canonical_code, links["com-a"].method) == (x["resident_id"], PROBABILISTIC)
            assert (links["com-b"].canonical_code, links["com-b"].method) == (y["resident_id"], PROBABILISTIC)
            assert np.all([links[k].method == PROVISIONAL for k in ("com-c", "bare")])
            assert links["com-c"].canonical_code != z["resident_id"] and links["bare"].canonical_code.startswith("P")
    finally:
        engine.dispose()


def test_legal_rep_without_id_links_through_the_enterprise(hub_db_url: str, city: object) -> None:
    _scenario(hub_db_url, city)


@pytest.mark.postgres
def test_legal_rep_evidence_on_postgres(
    pg_hub_db_url: str, city: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    _scenario(pg_hub_db_url, city)
