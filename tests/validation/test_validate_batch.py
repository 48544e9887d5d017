"""validate_batch: quarantine with reasons and masked payloads, reconciliation, threshold, re-runs.

Runs against the hub database on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.models import QuarantineRecord
from tests.validation.conftest import VALID_RID, VALID_RID_2, person_frame
from validation.quarantine import BatchRef, list_quarantine
from validation.run import ReconciliationError, ThresholdExceeded, reconcile, reconcile_run, validate_batch
from validation.tables import QuarantineReason

BATCH = BatchRef(department="public_security", dataset="person_registry", staged_ref="staging/ps/run1/part-0.parquet")


def _validate(session: Session, df: pd.DataFrame, *, threshold: float = 0.9, run_id: str = "run-1", **kw: object):
    kw.setdefault("build_docs", False)  # building HTML is slow; one test covers it
    return validate_batch(
        df,
        "person",
        mapping_name="public_security.person_registry",
        threshold=threshold,
        source_ref=BATCH,
        run_id=run_id,
        session=session,
        **kw,  # type: ignore[arg-type]
    )


def test_quarantine_rows_carry_reasons_and_source(session: Session) -> None:
    outcome = _validate(session, person_frame())
    assert outcome.pulled == 4
    assert outcome.quarantined_count == 3
    assert list(outcome.accepted_df.index) == [10]  # the caller's index is kept
    assert outcome.reasons == {
        "invalid_resident_id": 1,
        "missing_required_field": 1,
        "invalid_region_code": 1,
        "invalid_code_value": 1,
    }
    rows = {r.source_key: r for r in session.scalars(select(QuarantineRecord))}
    assert set(rows) == {"p2", "p3", "p4"}
    p3 = rows["p3"]
    assert p3.source == "public_security" and p3.dataset == "person_registry"
    assert p3.source_ref == BATCH.staged_ref and p3.run_id == "run-1"
    assert p3.source_version == "2026-01-01T00:00:00"
    # one quarantined record, three failed expectations
    reasons = session.execute(
        select(QuarantineReason.reason_code, QuarantineReason.column)
        .where(QuarantineReason.quarantine_id == p3.id)
        .order_by(QuarantineReason.id)
    ).all()
    assert [tuple(r) for r in reasons] == [
        ("missing_required_field", "resident_id"),
        ("missing_required_field", "name"),
        ("invalid_region_code", "region_code"),
    ]
    assert p3.reason_code == "missing_required_field"
    assert rows["p2"].reason_code == "invalid_resident_id"
    assert rows["p4"].reason_code == "invalid_code_value"


def test_payloads_are_masked(session: Session) -> None:
    _validate(session, person_frame())
    payloads = [r.payload for r in session.scalars(select(QuarantineRecord))]
    text = json.dumps(payloads, ensure_ascii=False)
    for raw in (VALID_RID, VALID_RID_2, "李四", "王五", "中心路12号", "13812345678", "1949-12-31"):
        assert raw not in text
    p2 = next(p for p in payloads if p and p["record"]["_source_key"] == "p2")
    assert p2["record"]["resident_id"] == "110105********0021"
    assert p2["record"]["name"] == "李*"
    assert p2["record"]["phone"] == "138****5678"
    assert p2["reason_codes"] == ["invalid_resident_id"]


def test_gx_results_and_data_docs_hold_no_raw_personal_data(session: Session, _private_home: Path) -> None:
    outcome = _validate(session, person_frame(), build_docs=True)
    gx_dir = _private_home / "gx"
    stored = list((gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 1
    result = json.loads(stored[0].read_text(encoding="utf-8"))
    assert result["meta"]["hub"]["quarantined"] == 3
    rid = next(r for r in result["results"] if r["expectation_config"]["type"].endswith("valid_resident_id"))
    assert rid["result"]["partial_unexpected_list"] == ["110105********0021"]
    assert outcome.docs_index is not None
    html = "".join(p.read_text(encoding="utf-8") for p in (gx_dir / "uncommitted" / "data_docs").rglob("*.html"))
    assert "110105********0021" in html
    for raw in (VALID_RID_2, "李四"):
        assert raw not in html
        assert raw not in stored[0].read_text(encoding="utf-8")


def test_threshold(session: Session) -> None:
    assert _validate(session, person_frame(), threshold=0.75).passed  # 3/4 = 0.75
    failed = _validate(session, person_frame(), threshold=0.5, run_id="run-2")
    assert not failed.passed
    with pytest.raises(ThresholdExceeded, match="3 of 4"):
        failed.raise_for_threshold()
    # past the threshold the rows are still quarantined, for the operator
    count = session.scalar(select(func.count()).select_from(QuarantineRecord).where(QuarantineRecord.run_id == "run-2"))
    assert count == 3


def test_rerun_of_a_batch_replaces_its_quarantine(session: Session) -> None:
    _validate(session, person_frame())
    _validate(session, person_frame())
    assert session.scalar(select(func.count()).select_from(QuarantineRecord)) == 3
    assert session.scalar(select(func.count()).select_from(QuarantineReason)) == 5


def test_clean_batch(session: Session) -> None:
    df = person_frame().iloc[[0]]
    outcome = _validate(session, df, threshold=0.0)
    assert outcome.passed and outcome.quarantined_count == 0 and len(outcome.accepted_df) == 1


def test_reconciliation_is_asserted() -> None:
    assert reconcile(10, 7, 3).pulled == 10
    with pytest.raises(ReconciliationError):
        reconcile(10, 7, 2)


def test_reconciliation_detects_lost_quarantine_rows(session: Session) -> None:
    outcome = _validate(session, person_frame())
    assert reconcile_run(session, BATCH, "run-1", pulled=4, accepted=len(outcome.accepted_df)).quarantined == 3
    session.execute(delete(QuarantineRecord).where(QuarantineRecord.source_key == "p4"))
    with pytest.raises(ReconciliationError, match="pulled 4 != accepted 1 \\+ quarantined 2"):
        reconcile_run(session, BATCH, "run-1", pulled=4, accepted=len(outcome.accepted_df))


def test_large_batch_sampled_evidence(session: Session) -> None:
    """Past the sample size GX sees the failing rows plus a sample, and still agrees with the fast path."""
    n = 3000
    base = person_frame().iloc[[0]]
    df = pd.concat([base] * n, ignore_index=True)
    df["_source_key"] = [f"k{i}" for i in range(n)]
    bad = np.arange(0, n, 100)  # 1% failing
    df.loc[bad, "resident_id"] = VALID_RID_2
    df.loc[bad, "birth_date"] = None  # nothing to match them on: quarantined
    outcome = _validate(session, df, sample_size=200)
    assert outcome.quarantined_count == len(bad)
    assert len(outcome.accepted_df) == n - len(bad)
    assert outcome.reasons == {"invalid_resident_id": len(bad)}


def test_operator_view_is_masked(session: Session) -> None:
    _validate(session, person_frame())
    session.flush()
    views = list_quarantine(session, department="public_security", limit=10)
    assert len(views) == 3
    assert list_quarantine(session, department="tax") == []
    p3 = next(v for v in views if v.source_key == "p3")
    assert p3.reason_codes == ["missing_required_field", "invalid_region_code"]


def test_empty_batch(session: Session) -> None:
    outcome = _validate(session, person_frame().iloc[0:0], threshold=0.0)
    assert outcome.passed and outcome.pulled == 0 and outcome.quarantined_count == 0
    assert outcome.accepted_df.empty


def test_two_writes_to_one_batch_keep_each_record_with_its_own_reasons(session: Session) -> None:
    """Validation failures and then the mapping's rejects of one batch in one run: every
    record's reasons are its own, whichever write it came from."""
    from validation.quarantine import Failure, QuarantinedRow, write

    def rows(prefix: str, n: int, code: str) -> list[QuarantinedRow]:
        return [
            QuarantinedRow(
                f"{prefix}{i}",
                "v1",
                {"name": f"n{i}"},
                [Failure(code, "expect_x", f"col{i}"), Failure(f"{code}_2", "expect_y", "other")],
            )
            for i in range(n)
        ]

    assert write(session, BATCH, "run-2", rows("a", 30, "first")) == 30
    assert write(session, BATCH, "run-2", rows("b", 20, "second")) == 20
    session.flush()
    got = session.execute(
        select(QuarantineRecord.source_key, QuarantineReason.reason_code, QuarantineReason.column)
        .join(QuarantineReason, QuarantineReason.quarantine_id == QuarantineRecord.id)
        .where(QuarantineRecord.run_id == "run-2")
    ).all()
    assert len(got) == 100
    for key, code, column in got:
        prefix, i = key[0], key[1:]
        assert code in ({"first", "first_2"} if prefix == "a" else {"second", "second_2"})
        assert column in (f"col{i}", "other")
        assert (column == "other") == code.endswith("_2")


def test_refused_rows_are_read_as_to_dict_reads_them() -> None:
    from validation.run import _records

    frame = pd.DataFrame(
        {
            "text": pd.Series(["a", None, "丙"], dtype="str"),
            "when": pd.to_datetime(["2026-01-01", None, "1990-05-06"]),
            "count": pd.Series([1, None, 3], dtype="Int64"),
            "ratio": [0.5, float("nan"), 2.0],
            "flag": [True, False, True],
            "maybe": pd.Series([True, None, False], dtype="boolean"),
            "text_na": pd.Series(["x", None, "y"], dtype="string"),
            "owners": [[{"holder_code": "x"}], [], None],
        }
    ).iloc[[2, 0, 1]]
    want = frame.to_dict(orient="records")
    got = _records(frame)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w)
        for k in w:
            assert type(g[k]) is type(w[k]), (k, g[k], w[k])
            assert (pd.isna(g[k]) and pd.isna(w[k])) if not isinstance(w[k], list) and pd.isna(w[k]) else g[k] == w[k]


def _matchable_frame() -> pd.DataFrame:
    """Residents without a usable id: a wrong check character, a missing id, a wrong length, a 15-digit
    id — each with a name and a birth date (the resolver matches them) — and one with a name only."""
    return pd.DataFrame(
        {
            "resident_id": [VALID_RID_2, None, "11010519491231", "110105491231002", VALID_RID_2],
            "name": ["李四", "赵六", "钱七", "孙八", "周九"],
            "sex": ["2", "1", "1", "2", "1"],
            "birth_date": ["1949-12-31", "1950-01-02", "1951-03-04", "1949-12-31", None],
            "region_code": ["110105"] * 5,
            "status": ["alive"] * 5,
            "_source_key": ["m1", "m2", "m3", "m4", "m5"],
            "_source_version": ["2026-01-01T00:00:00"] * 5,
        }
    )


def test_records_the_resolver_can_match_pass_and_gx_agrees(session: Session) -> None:
    """A person without a usable id but with a name and a birth date goes on to the resolver's matching;
    one with a name only has nothing to match on and is quarantined. GX (a row condition) agrees row
    for row with the fast path, on the whole batch (sample size past the batch)."""
    outcome = _validate(session, _matchable_frame(), sample_size=1000)
    assert outcome.accepted_df["_source_key"].tolist() == ["m1", "m2", "m3", "m4"]
    assert outcome.quarantined_count == 1
    assert outcome.reasons == {"invalid_resident_id": 1}
    (row,) = session.scalars(select(QuarantineRecord)).all()
    assert row.source_key == "m5"


def test_without_a_birth_date_column_every_bad_id_is_quarantined(session: Session) -> None:
    """A feed that maps no birth date gives the resolver nothing to match on: the id checks apply to
    every row (GX runs the unconditioned variant of the suite and agrees)."""
    df = _matchable_frame().drop(columns=["birth_date"])
    outcome = _validate(session, df, sample_size=1000)
    assert outcome.accepted_df.empty
    assert outcome.reasons == {"invalid_resident_id": 4, "missing_required_field": 1}
