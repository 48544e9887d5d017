"""Suites load, build as GX suites, and their fast path equals GX on dirty frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.validation.conftest import VALID_RID, VALID_RID_2, VALID_USCC, person_frame
from validation import gxrun
from validation.suites import ENTITIES, SuiteError, load_suite


@pytest.mark.parametrize("entity", ENTITIES)
def test_suite_builds_in_gx(entity: str) -> None:
    spec = load_suite(entity)
    suite = spec.to_gx()
    assert len(suite.expectations) == len(spec.expectations)
    assert all(e.meta["reason_code"] for e in suite.expectations)


def test_missing_required_column_is_an_error() -> None:
    with pytest.raises(SuiteError, match="resident_id"):
        load_suite("person").applicable(["name", "sex", "region_code", "status"])


def test_optional_expectation_only_when_column_present() -> None:
    spec = load_suite("tax_registration")
    base = ["taxpayer_code", "legal_rep_resident_id", "taxpayer_status", "credit_rating"]
    assert all(not e.when_column_present for e in spec.applicable(base))
    with_resolved = spec.applicable([*base, "uscc", "resolved_id"])
    assert [e.reason_code for e in with_resolved if e.when_column_present] == ["invalid_uscc", "unresolved_holder"]


def test_every_mapping_names_a_suite_its_records_satisfy() -> None:
    """The department mappings' canonical columns carry every column their suite requires."""
    from mappings.engine import STEP_FEEDS_DIR, load_all

    mappings = {**load_all(), **load_all(STEP_FEEDS_DIR)}
    assert mappings, "no mapping files found"
    for mapping in mappings.values():
        spec = load_suite(mapping.spec.expectation_suite)
        columns = [f.name for f in mapping.spec.fields] + [n.name for n in mapping.spec.nested]
        assert spec.applicable(columns), mapping.name


def _dirty_frames() -> dict[str, pd.DataFrame]:
    person_owner = {"name": "张三", "holder_code": VALID_RID, "holder_kind": "person"}
    return {
        "person": person_frame(),
        "enterprise": pd.DataFrame(
            {
                "name": ["甲公司", None, "丙公司", "丁公司"],
                "uscc": [VALID_USCC, None, "91110000600037342L", VALID_USCC],
                "legal_rep_resident_id": [VALID_RID, VALID_RID_2, None, VALID_RID],
                "region_code": ["330322", "330322", None, "33032"],
                "status": ["active", "moved_out", "存续", None],
                "resolved_id": ["E-1", None, "E-3", "E-4"],
            }
        ),
        "tax_registration": pd.DataFrame(
            {
                "taxpayer_code": [VALID_USCC, "330322600037341", None, "33032260003734"],
                "uscc": [VALID_USCC, None, None, "X"],
                "legal_rep_resident_id": [VALID_RID, None, VALID_RID_2, VALID_RID],
                "taxpayer_status": ["normal", "abnormal", "cancelled", "01"],
                "resolved_id": ["E-1", "E-2", None, ""],
                "credit_rating": ["A", "Z", None, "B"],
            }
        ),
        "property_right": pd.DataFrame(
            {
                "unit_no": ["3303221010010010001F00010001", "short", None, "3303221010010010001F00010002"],
                "owners": [[person_owner], [person_owner], [person_owner], []],
            }
        ),
        "approval_result": pd.DataFrame(
            {
                "approval_no": ["A1", None, "A3"],
                "applicant_code": [VALID_USCC, VALID_USCC, None],
                "issuer_code": ["330322", "330322", "330322"],
                "issue_date": ["2016-03-01", "2016-03-01", None],
                "conclusion": ["approved", "maybe", "rejected"],
            }
        ),
        "case_step": pd.DataFrame(
            {
                "code": ["33032220260901GT4583", None, "bad code", "33032220260901GT4583"],
                "seq": [1, 2, None, 3],
                "step": ["accepted", "approved", "approved", "stamped"],
                "occurred_at": [
                    "2026-09-01T10:00:00+08:00",
                    None,
                    "2026-09-01T11:00:00+08:00",
                    "2026-09-01T12:00:00+08:00",
                ],
            }
        ),
        "license": pd.DataFrame(
            {
                "license_type_code": ["BL", None, "BL"],
                "license_number": ["1", "2", "3"],
                "holder_code": [VALID_USCC, VALID_RID, None],
                "issuer_code": ["330322", "330322", "330322"],
                "issue_date": ["2016-03-01", "2016-03-01", "2016-03-01"],
                "holder_kind": ["enterprise", "person", "robot"],
                "status": ["valid", "void", "revoked"],
                "resolved_id": ["E-1", "P-1", ""],
            }
        ),
    }


@pytest.mark.parametrize("entity", ENTITIES)
def test_fast_path_equals_gx(entity: str) -> None:
    frame = _dirty_frames()[entity].reset_index(drop=True)
    spec = load_suite(entity)
    exps = spec.applicable(list(frame.columns))
    evidence = frame.copy()
    evidence[gxrun.ROW] = np.arange(len(frame))
    gx_rows = gxrun.unexpected_rows_by_expectation(gxrun.run_checkpoint(spec, exps, evidence, "equivalence"))
    any_failure = False
    for exp in exps:
        fast = set(np.flatnonzero(exp.unexpected(frame)).tolist())
        assert fast == gx_rows[exp.key], exp.key
        any_failure |= bool(fast)
    assert any_failure, "the dirty frame must exercise at least one failure"
