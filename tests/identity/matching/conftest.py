"""A small generated city and a model trained on it once per session (training is the slow part)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from identity.matching import train_model
from sandbox.generator import Sizes, generate

SEED = 2016


@dataclass
class City:
    master: pd.DataFrame  # canonical_code + person attributes
    registry: pd.DataFrame  # population-registry records (dirty), with true_code
    model: dict[str, Any]


def _incoming(registry: pd.DataFrame) -> pd.DataFrame:
    return registry.rename(columns={"person_no": "incoming_key"})


@pytest.fixture(scope="session")
def city() -> City:
    pop = generate(seed=SEED, sizes=Sizes(persons=3000, enterprises=20, properties=20))
    master = pop.persons.rename(columns={"resident_id": "canonical_code"})
    truth = pop.ground_truth[pop.ground_truth["dataset"] == "person_registry"].set_index("source_key")
    registry = pop.person_registry.assign(
        true_code=truth.loc[pop.person_registry["person_no"].astype(str), "canonical_id"].to_numpy()
    )
    model = train_model(master, _incoming(registry))
    return City(master=master, registry=registry, model=model)
