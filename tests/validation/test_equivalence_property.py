"""Property: on any dirty person or property batch, GX and the fast path flag the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.validation.conftest import VALID_RID, VALID_RID_2, VALID_USCC
from validation import gxrun, rules
from validation.suites import load_suite

codes = st.sampled_from(
    [VALID_RID, VALID_RID_2, "11010519491231002x", "110105491231002", VALID_USCC, "", " ", "abc", None]
)
maybe_text = st.one_of(st.none(), st.sampled_from(["", "张三", "1", "2", "3", "alive", "moved", "330322", "3303"]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(codes, maybe_text, maybe_text, maybe_text, maybe_text), min_size=1, max_size=12))
def test_person_suite_fast_path_equals_gx(rows: list[tuple[str | None, ...]]) -> None:
    frame = pd.DataFrame(rows, columns=["resident_id", "name", "sex", "region_code", "status"])
    spec = load_suite("person")
    exps = spec.applicable(list(frame.columns))
    evidence = frame.copy()
    evidence[gxrun.ROW] = np.arange(len(frame))
    gx_rows = gxrun.unexpected_rows_by_expectation(gxrun.run_checkpoint(spec, exps, evidence, "property"))
    for exp in exps:
        assert set(np.flatnonzero(exp.unexpected(frame)).tolist()) == gx_rows[exp.key], exp.key


def test_owners_as_arrays_after_parquet_round_trip(tmp_path: object) -> None:
    """Parquet gives nested owners back as numpy arrays of dicts; the rule reads them the same."""
    import pathlib

    person = {"name": "张三", "holder_code": VALID_RID, "holder_kind": "person"}
    bad = {"name": None, "holder_code": VALID_RID_2, "holder_kind": "person"}
    frame = pd.DataFrame({"owners": [[person], [person, bad], []]})
    path = pathlib.Path(str(tmp_path)) / "owners.parquet"
    frame.to_parquet(path)
    back = pd.read_parquet(path)
    assert isinstance(back["owners"].iloc[0], np.ndarray)
    assert rules.known_property_owner(back["owners"]).tolist() == [True, False, False]
