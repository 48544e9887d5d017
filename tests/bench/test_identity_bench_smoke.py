"""The normalize benchmark still runs (tiny size; no timing asserted)."""

from __future__ import annotations

from bench.bench_normalize import make_data, run


def test_bench_normalize_smoke() -> None:
    f = run(5_000, 1_000)  # what `--smoke` runs
    assert f["rows"] == 5_000 and sum(f["kinds"].values()) == 5_000
    assert {"resident_id", "uscc", "org_code", "ambiguous"} <= set(f["kinds"])
    assert 0 < f["valid"] < 5_000
    # the vectorised path and the scalar normalize agree on the sample both read
    assert f["scalar_valid"] == f["sample_valid"]
    assert 0 < f["peer_valid"] <= 1_000  # python-stdnum's loop checked the same sample


def test_bench_data_is_mixed_and_mostly_valid() -> None:
    from identifiers.vectorized import normalize_many

    frame = normalize_many(make_data(3000))
    kinds = set(frame["kind"])
    assert {"resident_id", "uscc", "org_code", "ambiguous"} <= kinds
    assert 0.8 < frame["valid"].mean() < 1.0
