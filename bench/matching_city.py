"""The frozen evaluation city of the matching benchmark and the references to persons and
enterprises in it.

``bench/matching_evaluation.json`` holds the evaluation's seed, size and dirt profile as frozen;
:func:`evaluation_city` generates from that profile whatever the generator's default becomes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The frozen evaluation: seed, size and dirt profile of the generated city (never trained on).
EVALUATION = json.loads((Path(__file__).with_name("matching_evaluation.json")).read_text(encoding="utf-8"))
ACCURACY_SEED = int(EVALUATION["seed"])


def usable_codes(resident_ids: pd.Series) -> pd.Series:
    """The canonical 18-digit id where the value is a valid resident id (15 or 18 digits)."""
    from identifiers.vectorized import normalize_many

    norm = normalize_many(resident_ids.tolist(), as_kind="resident_id")
    ok = norm["valid"].astype(bool) & norm["kind"].isin(["resident_id", "resident_id_15"])
    return pd.Series(np.where(ok, norm["canonical"], None), index=resident_ids.index, dtype=object)


PERSON_ATTRIBUTES = ["name", "resident_id", "birth_date", "sex", "address", "region_code"]


def evaluation_city(persons: int, seed: int) -> Any:
    """The generated city of ``persons`` persons with the frozen dirt profile
    (``bench/matching_evaluation.json``), whatever the generator's default is today."""
    from sandbox.dirt import DirtProfile
    from sandbox.generator import Sizes, generate

    sizes = Sizes(persons=persons, enterprises=max(10, persons // 4), properties=max(10, persons * 2 // 5))
    return generate(seed=seed, sizes=sizes, profile=DirtProfile(**EVALUATION["dirt_profile"]))


def person_references(pop: object) -> pd.DataFrame:
    """Every reference to a person in every department, with its true entity (ground truth).

    Population-registry records carry all attributes; legal representatives (commerce, tax)
    and property owners (land) carry a name and a resident id only.
    """
    gt = pop.ground_truth  # type: ignore[attr-defined]
    gt = gt[gt["entity_kind"] == "person"]
    reg = pop.person_registry.assign(source_key=lambda d: d["person_no"].astype(str))  # type: ignore[attr-defined]
    com = pop.enterprise_registry.assign(source_key=lambda d: d["ent_id"].astype(str))  # type: ignore[attr-defined]
    tax = pop.taxpayers.assign(source_key=lambda d: d["taxpayer_code"].astype(str))  # type: ignore[attr-defined]
    land = pop.property_rights  # type: ignore[attr-defined]
    land = land[land["owner_id_type"] == "resident_id"].assign(source_key=lambda d: d["unit_no"].astype(str))
    # a legal representative's record names the enterprise it represents, by the code the
    # department wrote (commerce: the USCC, or the organisation code where it has no USCC)
    com = com.assign(represents=com["uscc"].where(com["uscc"].notna(), com["org_code"]))
    tax = tax.assign(represents=tax["taxpayer_code"])
    parts = [
        ("person_registry", reg[["source_key", *PERSON_ATTRIBUTES]]),
        ("enterprise_registry", com.rename(columns={"legal_rep_name": "name", "legal_rep_id": "resident_id"})),
        ("taxpayers", tax.rename(columns={"legal_rep_name": "name", "legal_rep_id": "resident_id"})),
        ("property_rights", land.rename(columns={"owner_name": "name", "owner_id_code": "resident_id"})),
    ]
    frames = []
    for dataset, frame in parts:
        f = frame.reindex(columns=["source_key", *PERSON_ATTRIBUTES, "represents"]).copy()
        truth = gt[gt["dataset"] == dataset].drop_duplicates("source_key").set_index("source_key")["entity_key"]
        f["entity_key"] = f["source_key"].map(truth)
        f["dataset"] = dataset
        frames.append(f[f["entity_key"].notna()])
    refs = pd.concat(frames, ignore_index=True)
    refs["ref_id"] = refs["dataset"] + ":" + refs["source_key"]
    return refs


def enterprise_references(pop: object) -> pd.DataFrame:
    """Every reference to an enterprise, with its codes as written and its true entity."""
    gt = pop.ground_truth  # type: ignore[attr-defined]
    gt = gt[gt["entity_kind"] == "enterprise"]
    com = pop.enterprise_registry.assign(source_key=lambda d: d["ent_id"].astype(str))  # type: ignore[attr-defined]
    tax = pop.taxpayers.assign(source_key=lambda d: d["taxpayer_code"].astype(str))  # type: ignore[attr-defined]
    land = pop.property_rights  # type: ignore[attr-defined]
    land = land[land["owner_id_type"] != "resident_id"].assign(source_key=lambda d: d["unit_no"].astype(str))
    app = pop.approval_results.assign(source_key=lambda d: d["approval_no"].astype(str))  # type: ignore[attr-defined]
    cols = ["source_key", "name", "legal_rep_name", "address", "region_code", "uscc", "org_code", "reg_no", "tax_code"]
    parts = [
        ("enterprise_registry", com.rename(columns={"ent_name": "name"})),
        (
            "taxpayers",
            tax.rename(columns={"taxpayer_name": "name", "reg_address": "address", "taxpayer_code": "tax_code"}),
        ),
        (
            "property_rights",
            land.assign(
                name=land["owner_name"],
                uscc=land["owner_id_code"].where(land["owner_id_type"] == "uscc"),
                org_code=land["owner_id_code"].where(land["owner_id_type"] == "org_code"),
            ),
        ),
        (
            "approval_results",
            app.assign(
                name=app["applicant_name"],
                uscc=app["applicant_id_code"].where(app["applicant_id_type"] == "uscc"),
                org_code=app["applicant_id_code"].where(app["applicant_id_type"] == "org_code"),
            ),
        ),
    ]
    frames = []
    for dataset, frame in parts:
        f = frame.reindex(columns=cols).copy()
        truth = gt[gt["dataset"] == dataset].drop_duplicates("source_key").set_index("source_key")["entity_key"]
        f["entity_key"] = f["source_key"].map(truth)
        f["dataset"] = dataset
        frames.append(f[f["entity_key"].notna()])
    refs = pd.concat(frames, ignore_index=True)
    refs["ref_id"] = refs["dataset"] + ":" + refs["source_key"]
    return refs
