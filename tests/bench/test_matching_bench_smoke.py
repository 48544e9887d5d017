"""The matching benchmark still runs end to end at toy size and prints its figures beside the peer."""

from __future__ import annotations

import pytest

from bench import bench_matching


@pytest.mark.slow
def test_bench_matching_smoke() -> None:
    f = bench_matching.run(2_000, 20_000, 2_000)  # what `--smoke` runs
    assert list(f) == ["persons", "resolve", "resolve_enterprises", "enterprises", "speed"]
    for part in ("persons", "enterprises"):
        scores = f[part]["scores"]
        assert f[part]["references"] > 0 and f[part]["no_code"] > 0, part
        hub = next(
            s for (subset, method), s in scores.items() if subset == "all references" and method.startswith("hub")
        )
        exact = scores["all references", "exact-code-only baseline"]
        # the same truth for every method; the hub links at least what the exact-code baseline links
        assert hub.true_pairs == exact.true_pairs > 0, part
        assert hub.recall >= exact.recall, part
    r = f["resolve"]
    assert r["resolved_records"] == r["references"] and r["no_code"] > 0
    assert r["right"] <= r["linked"] and r["linked"] + r["review"] <= r["no_code"]
    assert r["by_code_right"] <= r["by_code"] > 0
    e = f["resolve_enterprises"]
    assert e["resolved_records"] == e["references"] and e["no_code"] > 0
    assert e["right"] <= e["linked"] and e["linked"] + e["review"] <= e["no_code"]
    s = f["speed"]
    assert (s["master"], s["incoming"]) == (20_000, 2_000)
    assert 0 < s["no_code"] < s["incoming"] and s["exact_hits"] + s["no_code"] <= s["incoming"]
    assert s["linked_no_code"] <= s["no_code"]


def test_pair_scores() -> None:
    import pandas as pd

    truth = pd.Series([1, 1, 1, 2, 2, 3])
    pred = pd.Series(["a", "a", "b", "c", "c", "c"])
    s = bench_matching.pair_scores(truth, pred)
    # true pairs: 3 + 1 = 4; predicted: 1 + 3 = 4; correct: (0,1) and (3,4) = 2
    assert (s.true_pairs, s.predicted_pairs, s.true_positive) == (4, 4, 2)
    flagged = bench_matching.pair_scores(truth, pred, pd.Series([False, False, True, False, False, False]))
    # pairs touching record 2: true (0,2), (1,2); predicted none; correct none
    assert (flagged.true_pairs, flagged.predicted_pairs, flagged.true_positive) == (2, 0, 0)
