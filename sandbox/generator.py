"""The population generator (模拟数据生成器): one consistent city across four departments.

From one seed it makes residents (公民), enterprises (企业) whose legal representatives are
residents, tax registrations of those enterprises, real-estate rights owned by residents or
enterprises and land-use pre-review opinions (建设项目用地预审意见) for enterprises'
projects; then writes each department's *source* records with real-world dirt at the rates
of a :class:`~sandbox.dirt.DirtProfile`, and a ground-truth table saying which true entity
every source record belongs to. Identifiers are real: GB 11643 resident ids, GB 32100 USCCs
with GB 11714 organisation codes, 15-digit registration numbers and taxpayer ids.

Columns are generated with numpy in one pass, so a million residents take seconds; only
the dirty few percent go through per-value Python.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sandbox import vocab
from sandbox.codes import (
    USCC_ALPHABET,
    int_strings,
    org_code_check,
    reg_no_check,
    resident_id_check,
    uscc_check,
)
from sandbox.dirt import (
    ENTERPRISE_ALPHABET,
    RESIDENT_ALPHABET,
    DirtProfile,
    DirtTally,
    dirty_identifiers,
    dirty_names,
)
from sandbox.regions import Region, all_regions, home_regions

#: The moment the generated city "was exported"; timestamps lie before it (deterministic).
REFERENCE_TIME = dt.datetime(2025, 6, 30, 18, 0, 0)
#: Enterprises established before this day were registered under the old three codes.
USCC_REFORM = np.datetime64("2015-10-01")
HOME_SHARE = 0.8

StrArray = npt.NDArray[np.str_]


@dataclass(frozen=True)
class Sizes:
    """How big the city is: residents, enterprises, real-estate units (demo default)."""

    persons: int = 2000
    enterprises: int = 500
    properties: int = 800

    @property
    def approvals(self) -> int:
        return max(1, round(self.enterprises * 0.3))


@dataclass
class Population:
    """The generated city: true entities, department source records, ground truth, dirt report."""

    seed: int
    sizes: Sizes
    profile: DirtProfile
    persons: pd.DataFrame
    enterprises: pd.DataFrame
    person_registry: pd.DataFrame
    enterprise_registry: pd.DataFrame
    taxpayers: pd.DataFrame
    property_rights: pd.DataFrame
    approval_results: pd.DataFrame
    ground_truth: pd.DataFrame
    dirt_report: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "persons": len(self.persons),
            "enterprises": len(self.enterprises),
            "person_registry": len(self.person_registry),
            "enterprise_registry": len(self.enterprise_registry),
            "taxpayers": len(self.taxpayers),
            "property_rights": len(self.property_rights),
            "approval_results": len(self.approval_results),
            "ground_truth": len(self.ground_truth),
        }


GROUND_TRUTH_COLUMNS = [
    "department",
    "dataset",
    "source_key",
    "role",
    "entity_kind",
    "canonical_id",
    "entity_key",
    "dirt",
]


def _where_else_none(mask: npt.NDArray[np.bool_], values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``values`` where ``mask`` holds, ``None`` elsewhere (an object column for pandas)."""
    out = values.astype(object)
    out[~mask] = None
    return out


def _pick(rng: np.random.Generator, n: int, pool: tuple[Any, ...] | list[Any], weights: Any = None) -> npt.NDArray[Any]:
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    return np.asarray(pool, dtype=object if not isinstance(pool[0], str) else None)[rng.choice(len(pool), n, p=p)]


@dataclass(frozen=True)
class RegionColumns:
    """Chosen regions as columns (one row per record), gathered from a lookup table."""

    codes: npt.NDArray[np.int64]
    prefixes: StrArray
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    cities: StrArray
    counties: StrArray


@lru_cache(maxsize=8)
def _region_table(born_by: int) -> tuple[tuple[Region, ...], npt.NDArray[np.int64]]:
    every = tuple(r for r in all_regions() if r.start <= born_by)
    local = np.array([i for i, r in enumerate(every) if r in home_regions()], dtype=np.int64)
    return every, local


def _regions(rng: np.random.Generator, n: int, *, born_by: int = 9999) -> RegionColumns:
    """Regions for ``n`` records, mostly local; ``born_by`` keeps codes assigned by that year."""
    every, local = _region_table(born_by)
    home = rng.random(n) < HOME_SHARE
    idx_local = rng.integers(len(local), size=n)
    idx_all = rng.integers(len(every), size=n)
    idx = np.where(home, local[idx_local], idx_all)

    def col(values: list[Any], dtype: Any = None) -> npt.NDArray[Any]:
        return np.asarray(values, dtype=dtype)[idx]

    city_names = [r.county if r.city.endswith(("市辖区", "直辖县级行政单位")) else r.city for r in every]
    return RegionColumns(
        codes=col([int(r.code) for r in every], np.int64),
        prefixes=col([r.prefix for r in every]),
        starts=col([r.start for r in every], np.int64),
        ends=col([r.end for r in every], np.int64),
        cities=col(city_names),
        counties=col([r.county for r in every]),
    )


def _names(rng: np.random.Generator, n: int) -> StrArray:
    surname = _pick(rng, n, list(vocab.SURNAMES), vocab.SURNAME_WEIGHTS).astype("U2")
    g1 = _pick(rng, n, list(vocab.GIVEN_CHARS)).astype("U1")
    g2 = _pick(rng, n, list(vocab.GIVEN_CHARS)).astype("U1")
    g2 = np.where(rng.random(n) < 0.7, g2, "")
    return np.char.add(np.char.add(surname, g1), g2)


def _addresses(rng: np.random.Generator, prefixes: StrArray) -> StrArray:
    n = len(prefixes)
    town = _pick(rng, n, vocab.TOWNS)
    street = _pick(rng, n, vocab.STREETS)
    number = rng.integers(1, 300, size=n).astype(str)
    out = np.char.add(np.char.add(np.char.add(prefixes, town), street), number)
    return np.char.add(out, "号")


def _timestamps(rng: np.random.Generator, n: int, start: str = "2016-01-01") -> npt.NDArray[np.datetime64]:
    lo = np.datetime64(start, "s").astype(np.int64)
    hi = np.datetime64(REFERENCE_TIME, "s").astype(np.int64)
    return rng.integers(lo, hi, size=n).astype("datetime64[s]")


def _unique_resident_ids(
    rng: np.random.Generator,
    region: npt.NDArray[np.int64],
    birth: npt.NDArray[np.datetime64],
    male: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """17-digit bodies (region + birth date + sequence whose parity is the sex), all distinct."""
    ymd = birth.astype("datetime64[D]").astype(str)
    ymd_int = np.char.replace(ymd, "-", "").astype(np.int64)
    seq = rng.integers(0, 500, size=len(region)) * 2 + male.astype(np.int64)
    body = region * 10**11 + ymd_int * 1000 + seq
    for _ in range(100):
        dup = pd.Series(body).duplicated().to_numpy()
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 500, size=int(dup.sum())) * 2 + male[dup].astype(np.int64)
        body[dup] = region[dup] * 10**11 + ymd_int[dup] * 1000 + seq[dup]
    return body, seq


def _persons(rng: np.random.Generator, n: int) -> pd.DataFrame:
    regions = _regions(rng, n, born_by=1995)
    codes, prefixes = regions.codes, regions.prefixes
    # A resident id carries the region code in force when it was assigned (at birth), so the
    # birth date lies within the code's years, as python-stdnum checks.
    first = np.maximum(1935, regions.starts)
    last = np.minimum(2007, regions.ends)
    lo = (np.array(first - 1970, dtype="datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    hi = (np.array(last - 1970 + 1, dtype="datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    birth = (lo + (rng.random(n) * (hi - lo)).astype(np.int64)).astype("datetime64[D]")
    male = rng.random(n) < 0.51
    body, seq = _unique_resident_ids(rng, codes, birth, male)
    resident_id = np.char.add(body.astype(str), resident_id_check(body))
    years = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    # The old 15-digit form: region, 2-digit year, month, day, sequence (no check character).
    yymmdd = (body // 1000) % 1_000_000
    legacy = ((body // 10**11) * 10**9 + yymmdd * 1000 + seq).astype(str)
    phone = np.char.add(np.char.add("1", _pick(rng, n, list("35789"))), int_strings(rng.integers(0, 10**9, size=n), 9))
    status = _pick(rng, n, ("alive", "deceased", "moved"), (0.93, 0.04, 0.03))
    return pd.DataFrame(
        {
            "person_key": np.arange(1, n + 1, dtype=np.int64),
            "resident_id": resident_id,
            "legacy_resident_id": _where_else_none(years < 2000, legacy),
            "name": _names(rng, n),
            "sex": np.where(male, "1", "2"),
            "birth_date": birth,
            "ethnicity": _pick(rng, n, vocab.ETHNICITIES, vocab.ETHNICITY_WEIGHTS),
            "address": _addresses(rng, prefixes),
            "region_code": codes.astype(str),
            "status": status,
            "phone": phone,
        }
    )


def _base31(values: npt.NDArray[np.int64], width: int) -> StrArray:
    alphabet = np.array(list(USCC_ALPHABET))
    out = np.full(len(values), "", dtype="U1")
    for power in range(width - 1, -1, -1):
        out = np.char.add(out, alphabet[(values // 31**power) % 31])
    return out


def _enterprises(rng: np.random.Generator, m: int, persons: pd.DataFrame) -> pd.DataFrame:
    regions = _regions(rng, m)
    codes, prefixes = regions.codes, regions.prefixes
    lo, hi = np.datetime64("1992-01-01").astype(np.int64), np.datetime64("2025-03-31").astype(np.int64)
    established = rng.integers(lo, hi, size=m).astype("datetime64[D]")
    old = established < USCC_REFORM
    numeric = rng.choice(90_000_000, size=m, replace=False).astype(np.int64) + 10_000_000
    new_style = rng.choice(31**6, size=m, replace=False).astype(np.int64)
    body8 = np.where(old, numeric.astype(str), np.char.add("MA", _base31(new_style, 6)))
    org_code = np.char.add(body8, org_code_check(body8))
    form = rng.choice(len(vocab.ENT_FORMS), size=m, p=np.array(vocab.ENT_FORM_WEIGHTS) / sum(vocab.ENT_FORM_WEIGHTS))
    type_code = np.array([vocab.ENT_FORMS[f][2] for f in form.tolist()])
    body17 = np.char.add(np.char.add(np.char.add("9", type_code), codes.astype(str)), org_code)
    uscc = np.char.add(body17, uscc_check(body17))
    reg_body = codes * 10**8 + np.arange(1, m + 1, dtype=np.int64) * 7 % 10**7
    reg_no = np.char.add(reg_body.astype(str), reg_no_check(reg_body))
    industry = rng.integers(len(vocab.INDUSTRIES), size=m)
    trade = _pick(rng, m, vocab.TRADE_WORDS)
    city = regions.cities
    names = [
        f"{c}{t}{vocab.INDUSTRIES[i][0]}{vocab.ENT_FORMS[f][0]}"
        if k < 0.5
        else f"{c}市{t}{vocab.INDUSTRIES[i][0]}{vocab.ENT_FORMS[f][0]}"
        for c, t, i, f, k in zip(
            [x.removesuffix("市") for x in city.tolist()],
            trade.tolist(),
            industry.tolist(),
            form.tolist(),
            rng.random(m).tolist(),
            strict=True,
        )
    ]
    # Enterprise names must be unique within a registry: suffix a branch number on clashes.
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name}第{seen[name]}分公司" if name.endswith("公司") else f"{name}{seen[name]}"
    adults = persons.index[persons["birth_date"] < np.datetime64("2000-01-01")].to_numpy()
    pool = adults if len(adults) else persons.index.to_numpy()
    rep = rng.choice(pool, size=m)
    status = _pick(rng, m, ("存续", "在业", "吊销", "注销", "迁出"), (0.6, 0.2, 0.08, 0.1, 0.02))
    issue_lag = rng.integers(0, 30, size=m).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "ent_key": np.arange(1, m + 1, dtype=np.int64),
            "uscc": uscc,
            "org_code": org_code,
            "reg_no": _where_else_none(old, reg_no),
            "taxpayer_id": _where_else_none(old, np.char.add(codes.astype(str), org_code)),
            "ent_name": names,
            "legal_rep_key": persons["person_key"].to_numpy()[rep],
            "legal_rep_id": persons["resident_id"].to_numpy()[rep],
            "legal_rep_legacy_id": persons["legacy_resident_id"].to_numpy()[rep],
            "legal_rep_name": persons["name"].to_numpy()[rep],
            "ent_type": [vocab.ENT_FORMS[f][1] for f in form.tolist()],
            "reg_capital": np.round(rng.lognormal(5.0, 1.2, size=m), 2),
            "established_date": established,
            "business_scope": [vocab.INDUSTRIES[i][1] for i in industry.tolist()],
            "address": _addresses(rng, prefixes),
            "region_code": codes.astype(str),
            "region_name": regions.counties,
            "city_name": city,
            "status": status,
            "license_issue_date": established + issue_lag,
        }
    )


def _missing(
    frame: pd.DataFrame,
    columns: list[str],
    rng: np.random.Generator,
    profile: DirtProfile,
    tally: DirtTally,
    dataset: str,
    tags: list[list[str]],
) -> None:
    hit = np.flatnonzero(rng.random(len(frame)) < profile.missing_field)
    which = rng.integers(len(columns), size=len(hit))
    for row, col in zip(hit.tolist(), which.tolist(), strict=True):
        frame.iat[row, frame.columns.get_loc(columns[col])] = None
        tags[row].append(f"missing_field:{columns[col]}")
    tally.add(dataset, "missing_field", len(hit), len(frame))


def _duplicates(rng: np.random.Generator, n: int, profile: DirtProfile) -> npt.NDArray[np.int64]:
    """Indices of entities that get a second record."""
    return np.flatnonzero(rng.random(n) < profile.duplicate).astype(np.int64)


def _join(tags: list[list[str]]) -> list[str]:
    return [",".join(t) for t in tags]


def _person_registry(
    rng: np.random.Generator, persons: pd.DataFrame, profile: DirtProfile, tally: DirtTally
) -> tuple[pd.DataFrame, pd.DataFrame]:
    dup = _duplicates(rng, len(persons), profile)
    tally.add("person_registry", "duplicate", len(dup), len(persons))
    rows = np.concatenate([np.arange(len(persons)), dup])
    rows = rows[rng.permutation(len(rows))]
    src = persons.iloc[rows].reset_index(drop=True)
    is_dup = np.zeros(len(rows), dtype=bool)
    first_seen: set[int] = set()
    for i, r in enumerate(rows.tolist()):
        if r in first_seen:
            is_dup[i] = True
        first_seen.add(r)
    ids, id_tags = dirty_identifiers(
        src["resident_id"].tolist(),
        rng,
        profile,
        tally,
        "person_registry",
        alphabet=RESIDENT_ALPHABET,
        legacy=src["legacy_resident_id"].tolist(),
    )
    names, name_tags = dirty_names(src["name"].tolist(), rng, profile, tally, "person_registry")
    out = pd.DataFrame(
        {
            "person_no": np.arange(1, len(src) + 1, dtype=np.int64),
            "resident_id": ids,
            "name": names,
            "sex": src["sex"].to_numpy(),
            "birth_date": src["birth_date"].to_numpy(),
            "ethnicity": src["ethnicity"].to_numpy(),
            "address": src["address"].to_numpy(),
            "region_code": src["region_code"].to_numpy(),
            "status": src["status"].to_numpy(),
            "phone": src["phone"].to_numpy(),
            "updated_at": _timestamps(rng, len(src)),
        }
    ).astype({"ethnicity": object, "address": object, "phone": object})
    tags = [a + b + (["duplicate"] if d else []) for a, b, d in zip(id_tags, name_tags, is_dup.tolist(), strict=True)]
    _missing(out, ["phone", "address", "ethnicity"], rng, profile, tally, "person_registry", tags)
    truth = pd.DataFrame(
        {
            "department": "public_security",
            "dataset": "person_registry",
            "source_key": out["person_no"].astype(str),
            "role": "subject",
            "entity_kind": "person",
            "canonical_id": src["resident_id"].to_numpy(),
            "entity_key": src["person_key"].to_numpy(),
            "dirt": _join(tags),
        }
    )
    return out, truth


def _enterprise_refs(
    ents: pd.DataFrame, rng: np.random.Generator, profile: DirtProfile, tally: DirtTally, dataset: str
) -> npt.NDArray[np.bool_]:
    """Which references use the old codes: scaled so the share of all references meets the profile."""
    eligible = ents["reg_no"].notna().to_numpy()
    share = eligible.mean() if len(ents) else 0.0
    p = min(1.0, profile.old_enterprise_code / share) if share else 0.0
    old = eligible & (rng.random(len(ents)) < p)
    tally.add(dataset, "old_enterprise_code", int(old.sum()), len(ents))
    return old


def _legal_reps(
    src: pd.DataFrame, rng: np.random.Generator, profile: DirtProfile, tally: DirtTally, dataset: str
) -> tuple[list[str], list[str], list[list[str]]]:
    ids, id_tags = dirty_identifiers(
        src["legal_rep_id"].tolist(),
        rng,
        profile,
        tally,
        dataset,
        alphabet=RESIDENT_ALPHABET,
        legacy=src["legal_rep_legacy_id"].tolist(),
    )
    names, name_tags = dirty_names(src["legal_rep_name"].tolist(), rng, profile, tally, dataset)
    return ids, names, [a + b for a, b in zip(id_tags, name_tags, strict=True)]


def _enterprise_registry(
    rng: np.random.Generator, ents: pd.DataFrame, profile: DirtProfile, tally: DirtTally
) -> tuple[pd.DataFrame, pd.DataFrame]:
    dup = _duplicates(rng, len(ents), profile)
    tally.add("enterprise_registry", "duplicate", len(dup), len(ents))
    src = pd.concat([ents, ents.iloc[dup]], ignore_index=True)
    is_dup = np.r_[np.zeros(len(ents), dtype=bool), np.ones(len(dup), dtype=bool)]
    old = _enterprise_refs(src, rng, profile, tally, "enterprise_registry")
    uscc, uscc_tags = dirty_identifiers(
        src["uscc"].tolist(), rng, profile, tally, "enterprise_registry", alphabet=ENTERPRISE_ALPHABET
    )
    rep_ids, rep_names, rep_tags = _legal_reps(src, rng, profile, tally, "enterprise_registry")
    org = src["org_code"].to_numpy().astype(str)
    dashed = rng.random(len(src)) < 0.5
    org_written = np.array([f"{o[:8]}-{o[8]}" if d else o for o, d in zip(org.tolist(), dashed.tolist(), strict=True)])
    out = pd.DataFrame(
        {
            "ent_id": np.arange(1, len(src) + 1, dtype=np.int64) + 100000,
            "uscc": _where_else_none(~old, np.array(uscc, dtype=object)),
            "reg_no": src["reg_no"].to_numpy(),
            "org_code": org_written,
            "ent_name": src["ent_name"].to_numpy(),
            "legal_rep_id": rep_ids,
            "legal_rep_name": rep_names,
            "ent_type": src["ent_type"].to_numpy(),
            "reg_capital": src["reg_capital"].to_numpy(),
            "established_date": src["established_date"].to_numpy(),
            "business_scope": src["business_scope"].to_numpy(),
            "address": src["address"].to_numpy(),
            "region_code": src["region_code"].to_numpy(),
            "status": src["status"].to_numpy(),
            "reg_authority": [
                f"{c}{r}市场监督管理局" for c, r in zip(src["city_name"], src["region_name"], strict=True)
            ],
            "license_issue_date": src["license_issue_date"].to_numpy(),
            "updated_at": _timestamps(rng, len(src)),
        }
    ).astype({"legal_rep_id": object, "reg_capital": object, "business_scope": object})
    # Dirt is recorded per role: the subject row carries the enterprise code's dirt, the
    # legal-representative row the resident id's and name's.
    tags = [
        (["old_enterprise_code"] if o else u) + (["duplicate"] if d else [])
        for o, u, d in zip(old.tolist(), uscc_tags, is_dup.tolist(), strict=True)
    ]
    _missing(out, ["legal_rep_id", "reg_capital", "business_scope"], rng, profile, tally, "enterprise_registry", tags)
    subject = pd.DataFrame(
        {
            "department": "commerce",
            "dataset": "enterprise_registry",
            "source_key": out["ent_id"].astype(str),
            "role": "subject",
            "entity_kind": "enterprise",
            "canonical_id": src["uscc"].to_numpy(),
            "entity_key": src["ent_key"].to_numpy(),
            "dirt": _join(tags),
        }
    )
    reps = subject.assign(
        role="legal_rep",
        entity_kind="person",
        canonical_id=src["legal_rep_id"].to_numpy(),
        entity_key=src["legal_rep_key"].to_numpy(),
        dirt=_join(rep_tags),
    )
    return out, pd.concat([subject, reps], ignore_index=True)


TAX_STATUS = {"存续": "01", "在业": "01", "吊销": "02", "注销": "03", "迁出": "03"}


def _taxpayers(
    rng: np.random.Generator, ents: pd.DataFrame, profile: DirtProfile, tally: DirtTally
) -> tuple[pd.DataFrame, pd.DataFrame]:
    registered = ents[rng.random(len(ents)) < 0.95].reset_index(drop=True)
    old = _enterprise_refs(registered, rng, profile, tally, "taxpayers")
    # A duplicate in the tax registry is the same enterprise registered again under its other code.
    eligible = registered["taxpayer_id"].notna().to_numpy()
    dup = np.flatnonzero(eligible & (rng.random(len(registered)) < profile.duplicate))
    tally.add("taxpayers", "duplicate", len(dup), len(registered))
    src = pd.concat([registered, registered.iloc[dup]], ignore_index=True)
    old = np.r_[old, ~old[dup]]
    is_dup = np.r_[np.zeros(len(registered), dtype=bool), np.ones(len(dup), dtype=bool)]
    code = np.where(old, src["taxpayer_id"].to_numpy(), src["uscc"].to_numpy())
    rep_ids, rep_names, rep_tags = _legal_reps(src, rng, profile, tally, "taxpayers")
    lag = rng.integers(1, 60, size=len(src)).astype("timedelta64[D]")
    out = pd.DataFrame(
        {
            "taxpayer_code": code.astype(str),
            "taxpayer_name": src["ent_name"].to_numpy(),
            "legal_rep_id": rep_ids,
            "legal_rep_name": rep_names,
            "reg_address": src["address"].to_numpy(),
            "tax_authority_code": np.char.add(np.char.add("1", src["region_code"].to_numpy().astype(str)), "0000"),
            "tax_authority_name": [
                f"国家税务总局{c}{r}税务局" for c, r in zip(src["city_name"], src["region_name"], strict=True)
            ],
            "registration_date": src["established_date"].to_numpy() + lag,
            "taxpayer_status": [TAX_STATUS[s] for s in src["status"]],
            "credit_rating": _pick(rng, len(src), ("A", "B", "M", "C", "D"), (0.3, 0.45, 0.15, 0.07, 0.03)),
            "updated_at": _timestamps(rng, len(src)),
        }
    ).astype({"legal_rep_id": object, "reg_address": object})
    tags = [
        (["old_enterprise_code"] if o else []) + (["duplicate"] if d else [])
        for o, d in zip(old.tolist(), is_dup.tolist(), strict=True)
    ]
    _missing(out, ["legal_rep_id", "reg_address"], rng, profile, tally, "taxpayers", tags)
    subject = pd.DataFrame(
        {
            "department": "tax",
            "dataset": "taxpayers",
            "source_key": out["taxpayer_code"],
            "role": "subject",
            "entity_kind": "enterprise",
            "canonical_id": src["uscc"].to_numpy(),
            "entity_key": src["ent_key"].to_numpy(),
            "dirt": _join(tags),
        }
    )
    reps = subject.assign(
        role="legal_rep",
        entity_kind="person",
        canonical_id=src["legal_rep_id"].to_numpy(),
        entity_key=src["legal_rep_key"].to_numpy(),
        dirt=_join(rep_tags),
    )
    return out, pd.concat([subject, reps], ignore_index=True)


def _owner_refs(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    ents: pd.DataFrame,
    n: int,
    person_share: float,
    profile: DirtProfile,
    tally: DirtTally,
    dataset: str,
) -> pd.DataFrame:
    """Owners/applicants as written in land records: resident id, USCC or organisation code."""
    is_person = rng.random(n) < person_share
    p_rows = rng.integers(len(persons), size=n)
    e_rows = rng.integers(len(ents), size=n)
    pers = persons.iloc[p_rows].reset_index(drop=True)
    ent = ents.iloc[e_rows].reset_index(drop=True)
    old = _enterprise_refs(ent, rng, profile, tally, dataset) & ~is_person
    pid, ptags = dirty_identifiers(
        pers["resident_id"].tolist(),
        rng,
        profile,
        tally,
        dataset,
        alphabet=RESIDENT_ALPHABET,
        legacy=pers["legacy_resident_id"].tolist(),
    )
    pname, ntags = dirty_names(pers["name"].tolist(), rng, profile, tally, dataset)
    eid, etags = dirty_identifiers(ent["uscc"].tolist(), rng, profile, tally, dataset, alphabet=ENTERPRISE_ALPHABET)
    id_type = np.where(is_person, "resident_id", np.where(old, "org_code", "uscc"))
    id_code = np.where(
        is_person, np.array(pid, dtype=object), np.where(old, ent["org_code"].to_numpy(), np.array(eid, dtype=object))
    )
    tags = [
        (a + b) if p else (["old_enterprise_code"] if o else c)
        for p, o, a, b, c in zip(is_person.tolist(), old.tolist(), ptags, ntags, etags, strict=True)
    ]
    return pd.DataFrame(
        {
            "owner_name": np.where(is_person, np.array(pname, dtype=object), ent["ent_name"].to_numpy()),
            "owner_id_type": id_type,
            "owner_id_code": id_code,
            "entity_kind": np.where(is_person, "person", "enterprise"),
            "canonical_id": np.where(is_person, pers["resident_id"].to_numpy(), ent["uscc"].to_numpy()),
            "entity_key": np.where(is_person, pers["person_key"].to_numpy(), ent["ent_key"].to_numpy()),
            "region_code": np.where(is_person, pers["region_code"].to_numpy(), ent["region_code"].to_numpy()),
            "dirt": _join(tags),
        }
    )


def _property_rights(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    ents: pd.DataFrame,
    p: int,
    profile: DirtProfile,
    tally: DirtTally,
    start: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    owners = _owner_refs(rng, persons, ents, p, 0.75, profile, tally, "property_rights")
    regions = [home_regions()[i] for i in rng.integers(len(home_regions()), size=p).tolist()]
    seq = np.arange(start, start + p, dtype=np.int64)
    zone = rng.integers(1, 20, size=p)
    unit_no = [
        f"{r.code}{z:03d}{(s % 997) + 1:03d}GB{s:05d}F{(s % 37) + 1:04d}{(s % 211) + 1:04d}"
        for r, z, s in zip(regions, zone.tolist(), seq.tolist(), strict=True)
    ]
    reg_dates = rng.integers(
        np.datetime64("2016-01-01").astype(np.int64), np.datetime64("2025-06-01").astype(np.int64), size=p
    )
    reg_dates = reg_dates.astype("datetime64[D]")
    years = reg_dates.astype("datetime64[Y]").astype(np.int64) + 1970
    cert = [
        f"浙({y}){r.county}不动产权第{s:07d}号" for y, r, s in zip(years.tolist(), regions, seq.tolist(), strict=True)
    ]
    location = _addresses(rng, np.array([r.prefix for r in regions]))
    out = pd.DataFrame(
        {
            "unit_no": unit_no,
            "version": rng.integers(1, 4, size=p),
            "certificate_no": cert,
            "right_type": _pick(rng, p, vocab.RIGHT_TYPES, (0.8, 0.15, 0.05)),
            "location": location,
            "area": np.round(rng.uniform(30, 300, size=p), 2),
            "land_use": _pick(rng, p, vocab.LAND_USES, (0.7, 0.1, 0.1, 0.05, 0.05)),
            "register_date": reg_dates,
            "status": _pick(rng, p, ("registered", "mortgaged", "cancelled"), (0.85, 0.12, 0.03)),
            "owner_name": owners["owner_name"],
            "owner_id_type": owners["owner_id_type"],
            "owner_id_code": owners["owner_id_code"],
            "owner_share": "100%",
        }
    ).astype({"land_use": object, "location": object})
    tags = [[t for t in d.split(",") if t] for d in owners["dirt"]]
    _missing(out, ["land_use", "location"], rng, profile, tally, "property_rights", tags)
    truth = pd.DataFrame(
        {
            "department": "land",
            "dataset": "property_rights",
            "source_key": out["unit_no"],
            "role": "owner",
            "entity_kind": owners["entity_kind"],
            "canonical_id": owners["canonical_id"],
            "entity_key": owners["entity_key"].astype(np.int64),
            "dirt": _join(tags),
        }
    )
    return out, truth


def _approval_results(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    ents: pd.DataFrame,
    a: int,
    profile: DirtProfile,
    tally: DirtTally,
    start: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    apps = _owner_refs(rng, persons, ents, a, 0.0, profile, tally, "approval_results")
    issue = rng.integers(
        np.datetime64("2016-01-01").astype(np.int64), np.datetime64("2025-06-01").astype(np.int64), size=a
    )
    issue = issue.astype("datetime64[D]")
    years = issue.astype("datetime64[Y]").astype(np.int64) + 1970
    conclusion = _pick(rng, a, vocab.CONCLUSIONS, vocab.CONCLUSION_WEIGHTS)
    regions = [home_regions()[i] for i in rng.integers(len(home_regions()), size=a).tolist()]
    seq = np.arange(start, start + a)
    out = pd.DataFrame(
        {
            "approval_no": [f"温自然资预〔{y}〕{s}号" for y, s in zip(years.tolist(), seq.tolist(), strict=True)],
            "version": 1,
            "approval_type": "land_use_pre_review",
            "project_name": [
                f"{n.split('有限')[0]}{p}"
                for n, p in zip(apps["owner_name"], _pick(rng, a, vocab.PROJECTS), strict=True)
            ],
            "applicant_name": apps["owner_name"],
            "applicant_id_type": apps["owner_id_type"],
            "applicant_id_code": apps["owner_id_code"],
            # the issuing bureau's own code (机关统一社会信用代码), as its approval system records it
            "issuer_code": vocab.LAND_APPROVAL_ISSUER[0],
            "issuer_name": vocab.LAND_APPROVAL_ISSUER[1],
            "opinion": [vocab.OPINIONS[c] for c in conclusion.tolist()],
            "conclusion": conclusion,
            "issue_date": issue,
            "valid_until": issue + np.timedelta64(3 * 365, "D"),
            "land_area": np.round(rng.uniform(500, 50000, size=a), 1),
            "location": _addresses(rng, np.array([r.prefix for r in regions])),
        }
    )
    truth = pd.DataFrame(
        {
            "department": "land",
            "dataset": "approval_results",
            "source_key": out["approval_no"],
            "role": "applicant",
            "entity_kind": "enterprise",
            "canonical_id": apps["canonical_id"],
            "entity_key": apps["entity_key"].astype(np.int64),
            "dirt": apps["dirt"],
        }
    )
    return out, truth


def generate(seed: int = 2016, sizes: Sizes | None = None, profile: DirtProfile | None = None) -> Population:
    """Generate the city for ``seed``: same seed and sizes, same data, byte for byte."""
    sizes = sizes or Sizes()
    profile = profile or DirtProfile()
    rng = np.random.default_rng(seed)
    tally = DirtTally()
    persons = _persons(rng, sizes.persons)
    ents = _enterprises(rng, sizes.enterprises, persons)
    registry, t_ps = _person_registry(rng, persons, profile, tally)
    commerce, t_com = _enterprise_registry(rng, ents, profile, tally)
    tax, t_tax = _taxpayers(rng, ents, profile, tally)
    props, t_prop = _property_rights(rng, persons, ents, sizes.properties, profile, tally)
    approvals, t_app = _approval_results(rng, persons, ents, sizes.approvals, profile, tally)
    truth = pd.concat([t_ps, t_com, t_tax, t_prop, t_app], ignore_index=True)[GROUND_TRUTH_COLUMNS]
    truth = truth.astype({"source_key": str, "canonical_id": str, "entity_key": np.int64})
    return Population(
        seed=seed,
        sizes=sizes,
        profile=profile,
        persons=persons,
        enterprises=ents,
        person_registry=registry,
        enterprise_registry=commerce,
        taxpayers=tax,
        property_rights=props,
        approval_results=approvals,
        ground_truth=truth,
        dirt_report=tally.report(profile),
    )


DATA_FILES = (
    "persons",
    "enterprises",
    "person_registry",
    "enterprise_registry",
    "taxpayers",
    "property_rights",
    "approval_results",
)


def write(population: Population, out_dir: Path) -> Path:
    """Write the population under ``out_dir``: data/*.parquet, ground_truth.parquet, dirt_report.json."""
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        getattr(population, name).to_parquet(data / f"{name}.parquet", index=False)
    population.ground_truth.to_parquet(out_dir / "ground_truth.parquet", index=False)
    (out_dir / "dirt_report.json").write_text(json.dumps(population.dirt_report, ensure_ascii=False, indent=2))
    manifest = {
        "seed": population.seed,
        "sizes": asdict(population.sizes),
        "profile": population.profile.as_dict(),
        "counts": population.counts(),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.generator --out DIR``: generate, write, print the realised dirt rates."""
    parser = argparse.ArgumentParser(description="Generate the sandbox city and its ground truth")
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--persons", type=int, default=Sizes.persons)
    parser.add_argument("--enterprises", type=int, default=Sizes.enterprises)
    parser.add_argument("--properties", type=int, default=Sizes.properties)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    population = generate(args.seed, Sizes(args.persons, args.enterprises, args.properties))
    write(population, args.out)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "counts": population.counts()}))
    print(f"{'dirt kind':22}{'profile':>9}{'realised':>10}")
    for kind, rate in sorted(population.dirt_report["realised"].items()):
        print(f"{kind:22}{population.dirt_report['profile'][kind]:>9.2%}{rate:>10.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
