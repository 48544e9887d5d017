"""The crash harness's smoke: every kill point once (at least 10) with a fixed seed, each re-run converging."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(2400)  # 17 points, the API started for each: 18 min at load 14 on 2 cores
def test_ten_kill_points_converge_to_the_clean_run(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_crash import main

    rc = main(["--smoke"])
    out = capsys.readouterr().out
    assert "audit chain verified" in out  # the clean run's digest
    from hub.killpoints import POINTS

    tried = int(out.split("points tried ")[1].split(",")[0])
    assert tried >= 10 and f"points tried {tried}, converged {tried}/{tried}" in out, out[-4000:]
    # every kill point a clean run passes was tried (the push's points once the events are out)
    assert all(f"] {name}:" in out for name in POINTS), out[-4000:]
    assert "time to converge after" in out
    assert rc == 0


def test_points_are_chosen_in_turn_among_those_a_clean_run_reaches() -> None:
    from bench.bench_crash import choose

    tally = {"a": 3, "b": 0, "c": 1, "d": 5}
    picked = choose(tally, 7, seed=1)
    assert len(picked) == 7
    assert {p for p, _ in picked[:3]} == {"a", "c", "d"}  # every reached point once before any twice
    assert all(p != "b" and 1 <= hit <= tally[p] for p, hit in picked)
    assert choose(tally, 7, seed=1) == picked  # the seed fixes the choice
