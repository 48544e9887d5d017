"""The matching benchmark still runs end to end at toy size and prints its figures beside the peer."""

from __future__ import annotations

import pytest

from bench import bench_matching


@pytest.mark.slow
def test_bench_matching_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_matching.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "hub (exact + probabilistic)" in out and "exact-code-only baseline" in out
    assert "peak memory" in out and "Splink headline" in out


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
