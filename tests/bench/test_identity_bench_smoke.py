"""The normalize benchmark still runs (tiny size; no timing asserted)."""

from __future__ import annotations

import pytest

from bench.bench_normalize import main, make_data


def test_bench_normalize_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "hub vectorised normalize_many" in out and "python-stdnum is_valid loop" in out


def test_bench_data_is_mixed_and_mostly_valid() -> None:
    from identifiers.vectorized import normalize_many

    frame = normalize_many(make_data(3000))
    kinds = set(frame["kind"])
    assert {"resident_id", "uscc", "org_code", "ambiguous"} <= kinds
    assert 0.8 < frame["valid"].mean() < 1.0
