"""Probabilistic matching finds planted duplicates, sends grey-zone pairs to review and never
links clearly different people."""

from __future__ import annotations

import pandas as pd
import pytest

from identity.matching import MATCH, NO_MATCH, RESULT_COLUMNS, REVIEW, Thresholds, decide, match_batch, name_pinyin
from mappings.normalizers import simplify
from sandbox.generator import Sizes, generate
from tests.identity.matching.conftest import City


def _typo(name: str) -> str:
    """Change the last character of a name to another character (one edit away)."""
    return name[:-1] + ("甲" if name[-1] != "甲" else "乙")


def planted(city: City, n: int = 40) -> pd.DataFrame:
    """Copies of master persons with no usable id: typos, traditional names, damaged or no id."""
    src = city.master.sample(n=n, random_state=5).reset_index(drop=True)
    inc = pd.DataFrame(
        {
            "incoming_key": [f"p{i}" for i in range(n)],
            "name": src["name"],
            "birth_date": src["birth_date"],
            "sex": src["sex"],
            "address": src["address"],
            "region_code": src["region_code"],
            "resident_id": None,
        }
    )
    inc.loc[0::4, "name"] = [_typo(v) for v in src.loc[0::4, "name"]]
    # A wrong check character: the id is unusable, but 17 of 18 characters still agree.
    bad_check = src.loc[1::4, "canonical_code"].map(lambda c: c[:17] + ("0" if c[17] != "0" else "1"))
    inc.loc[1::4, "resident_id"] = bad_check
    inc.loc[2::4, "address"] = None
    inc.loc[3::4, "name"] = ["  " + v[0] + " " + v[1:] for v in src.loc[3::4, "name"]]
    inc["true_code"] = src["canonical_code"]
    return inc


def test_planted_duplicates_with_typos_are_found(city: City) -> None:
    inc = planted(city)
    res = match_batch(city.master, inc.drop(columns="true_code"), model=city.model)
    assert list(res.columns) == RESULT_COLUMNS
    assert len(res) == len(inc)
    merged = res.merge(inc[["incoming_key", "true_code"]], on="incoming_key")
    linked = merged[merged["decision"] == MATCH]
    # Every link is right, and nearly all planted copies are linked (a few may wait in review).
    assert (linked["canonical_code"] == linked["true_code"]).all()
    assert len(linked) >= 0.9 * len(inc)
    assert not (merged["decision"] == NO_MATCH).any()


def test_registry_records_without_usable_id_are_linked_correctly(city: City) -> None:
    reg = city.registry
    no_id = reg[reg["resident_id"].isna() | (reg["resident_id"].astype(str).str.len() != 18)].head(60)
    assert len(no_id) > 10
    inc = no_id.rename(columns={"person_no": "incoming_key"}).drop(columns="true_code")
    res = match_batch(city.master, inc, model=city.model)
    merged = res.merge(
        no_id.assign(incoming_key=no_id["person_no"].astype(str))[["incoming_key", "true_code"]], on="incoming_key"
    )
    linked = merged[merged["decision"] == MATCH]
    assert (linked["canonical_code"] == linked["true_code"]).all()
    assert len(linked) >= 0.9 * len(merged)


def test_clearly_different_people_are_never_linked(city: City) -> None:
    strangers = generate(seed=99, sizes=Sizes(persons=300, enterprises=5, properties=5)).persons
    known = set(city.master["canonical_code"])
    strangers = strangers[~strangers["resident_id"].isin(known)]
    inc = strangers.rename(columns={"person_key": "incoming_key"}).drop(columns="resident_id")
    res = match_batch(city.master, inc, model=city.model)
    assert (res["decision"] != MATCH).all()
    # Strangers sharing nothing but chance are not even worth a reviewer's time, mostly.
    assert (res["decision"] == NO_MATCH).mean() > 0.95


def test_grey_zone_goes_to_review(city: City) -> None:
    """A mistyped name, the same birth date, sex and county, nothing else: a person must look.

    (Three-character names: in a two-character name one changed character leaves only the
    surname, which the model rightly treats as weak evidence.)
    """
    three = city.master[city.master["name"].str.len() == 3]
    src = three.sample(n=10, random_state=11).reset_index(drop=True)
    inc = pd.DataFrame(
        {
            "incoming_key": [f"g{i}" for i in range(len(src))],
            "name": [_typo(n) for n in src["name"]],
            "birth_date": src["birth_date"],
            "sex": src["sex"],
            "address": None,
            "region_code": src["region_code"],
            "resident_id": None,
        }
    )
    res = match_batch(city.master, inc, model=city.model)
    assert (res["decision"] == REVIEW).all(), res
    assert (res["canonical_code"] == src["canonical_code"]).all()


def test_two_equally_good_candidates_go_to_review(city: City) -> None:
    """Homonyms born the same day in the same county: never a guess."""
    a = city.master.iloc[0]
    twin = a.copy()
    twin["canonical_code"] = a["canonical_code"][:14] + ("0000" if a["canonical_code"][14:] != "0000" else "1111")
    twin["address"] = a["address"] + "附1"
    master = pd.concat([city.master, twin.to_frame().T], ignore_index=True)
    inc = pd.DataFrame(
        [
            {
                "incoming_key": "t",
                "name": a["name"],
                "birth_date": a["birth_date"],
                "sex": a["sex"],
                "address": None,
                "region_code": a["region_code"],
                "resident_id": None,
            }
        ]
    )
    res = match_batch(master, inc, model=city.model)
    assert res.loc[0, "decision"] == REVIEW


def test_traditional_names_match_their_simplified_master(city: City) -> None:
    src = city.master[city.master["name"].map(lambda n: any(c in "张陈刘杨黄赵吴郑孙马冯邓许" for c in n))].head(10)
    trad = {
        "张": "張",
        "陈": "陳",
        "刘": "劉",
        "杨": "楊",
        "黄": "黃",
        "赵": "趙",
        "吴": "吳",
        "郑": "鄭",
        "孙": "孫",
        "马": "馬",
        "冯": "馮",
        "邓": "鄧",
        "许": "許",
    }
    names = src["name"].map(lambda n: "".join(trad.get(c, c) for c in n))
    assert (simplify(names).to_numpy() == src["name"].to_numpy()).all()
    inc = src.assign(name=names).rename(columns={"person_key": "incoming_key"}).drop(columns="canonical_code")
    res = match_batch(city.master, inc, model=city.model)
    assert (res["decision"] == MATCH).all()
    assert res["canonical_code"].tolist() == src["canonical_code"].tolist()


def test_decide_is_a_pure_rule_over_scored_pairs() -> None:
    keys = pd.Series(["a", "b", "c", "d"])
    pairs = pd.DataFrame(
        {
            "source_dataset_l": ["master"] * 5,
            "unique_id_l": ["X", "Y", "Z", "W", "V"],
            "source_dataset_r": ["incoming"] * 5,
            "unique_id_r": ["a", "b", "c", "c", "d"],
            "match_probability": [0.999, 0.9, 0.995, 0.99, 0.3],
        }
    )
    res = decide(keys, pairs, Thresholds(match=0.99, review=0.8)).set_index("incoming_key")
    assert res.loc["a", "decision"] == MATCH and res.loc["a", "canonical_code"] == "X"
    assert res.loc["b", "decision"] == REVIEW
    assert res.loc["c", "decision"] == REVIEW  # two strong candidates, different codes
    assert res.loc["d", "decision"] == NO_MATCH and pd.isna(res.loc["d", "canonical_code"])


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError):
        Thresholds(match=0.5, review=0.9)


def test_empty_inputs() -> None:
    empty = pd.DataFrame({"incoming_key": [], "name": []})
    assert match_batch(pd.DataFrame({"canonical_code": []}), empty).empty


def _sound_alikes(city: City) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Master persons and two versions of each name: the last character replaced by one of the
    same sound (what a pinyin input method gives a clerk who picks wrong), and by one that sounds
    different — both one character off."""
    pool = sorted({c for n in city.master["name"] for c in n})
    sounds = dict(zip(pool, name_pinyin(pd.Series(pool)).tolist(), strict=True))
    by_sound: dict[str, list[str]] = {}
    for c, sound in sounds.items():
        by_sound.setdefault(sound, []).append(c)
    rows, same, other = [], [], []
    for _, person in city.master.sample(frac=1.0, random_state=11).iterrows():
        name, last = person["name"], person["name"][-1]
        alike = [c for c in by_sound[sounds[last]] if c != last]
        unlike = [c for c in pool if sounds[c] != sounds[last] and c not in name]
        if not alike or not unlike:
            continue
        rows.append(person)
        same.append(name[:-1] + alike[0])
        other.append(name[:-1] + unlike[len(rows) % len(unlike)])
        if len(rows) == 12:
            break
    return pd.DataFrame(rows).reset_index(drop=True), same, other


def test_a_same_sound_character_links_and_outscores_a_different_sound_one(city: City) -> None:
    src, same, other = _sound_alikes(city)
    assert len(src) == 12
    assert (name_pinyin(pd.Series(same)).to_numpy() == name_pinyin(src["name"]).to_numpy()).all()

    def records(names: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "incoming_key": [f"k{i}" for i in range(len(src))],
                "name": names,
                "birth_date": src["birth_date"].to_numpy(),
                "sex": src["sex"].to_numpy(),
                "address": None,
                "region_code": src["region_code"].to_numpy(),
                "resident_id": None,
            }
        )

    alike = match_batch(city.master, records(same), model=city.model)
    unlike = match_batch(city.master, records(other), model=city.model)
    assert (alike["decision"] == MATCH).all(), alike
    assert alike["canonical_code"].tolist() == src["canonical_code"].tolist()
    # the same slip with a character of another sound is weaker evidence, pair by pair
    scored = alike.merge(unlike, on="incoming_key", suffixes=("_alike", "_unlike"))
    unlike_p = scored["match_probability_unlike"].fillna(0.0)
    assert (scored["match_probability_alike"] > unlike_p).all(), scored
