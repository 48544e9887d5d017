"""The enterprise profile: references with a broken code find their enterprise by name,
legal representative and place; different enterprises stay apart."""

from __future__ import annotations

import pandas as pd
import pytest

from identity.matching import MATCH, match_batch
from sandbox.generator import Sizes, generate


@pytest.fixture(scope="module")
def enterprises() -> pd.DataFrame:
    ents = generate(seed=2016, sizes=Sizes(persons=3000, enterprises=800, properties=10)).enterprises
    return ents.rename(columns={"uscc": "canonical_code", "ent_name": "name"})


def test_enterprise_with_mistyped_uscc_is_found(enterprises: pd.DataFrame) -> None:
    src = enterprises.sample(n=20, random_state=3).reset_index(drop=True)
    damaged = src["canonical_code"].map(lambda c: c[:17] + ("0" if c[17] != "0" else "1"))
    inc = pd.DataFrame(
        {
            "incoming_key": [f"e{i}" for i in range(len(src))],
            "name": src["name"],
            "legal_rep_name": src["legal_rep_name"],
            "address": src["address"].where(src.index % 2 == 0),
            "region_code": src["region_code"],
            "code": damaged,
        }
    )
    labelled = enterprises.drop(columns=["canonical_code"]).assign(canonical_code=enterprises["canonical_code"])
    res = match_batch(enterprises, inc, labelled=labelled, entity="enterprise")
    assert (res["decision"] == MATCH).all(), res
    assert res["canonical_code"].tolist() == src["canonical_code"].tolist()


def test_different_enterprises_are_not_linked(enterprises: pd.DataFrame) -> None:
    others = generate(seed=77, sizes=Sizes(persons=500, enterprises=100, properties=10)).enterprises
    others = others[~others["uscc"].isin(enterprises["canonical_code"])]
    inc = others.rename(columns={"ent_name": "name", "ent_key": "incoming_key"}).drop(columns=["uscc"])
    labelled = enterprises.copy()
    res = match_batch(enterprises, inc, labelled=labelled, entity="enterprise")
    merged = res.merge(
        others.assign(incoming_key=others["ent_key"].astype(str))[["incoming_key", "ent_name"]], on="incoming_key"
    )
    linked = merged[merged["decision"] == MATCH]
    # A link is only acceptable for a true namesake (the generator reuses enterprise names).
    names = enterprises.set_index("canonical_code")["name"]
    assert (linked["canonical_code"].map(names) == linked["ent_name"]).all()
    assert len(linked) <= 0.05 * len(merged)


def test_unknown_entity_kind_is_refused(enterprises: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        match_batch(enterprises, enterprises.rename(columns={"canonical_code": "incoming_key"}), entity="vehicle")
