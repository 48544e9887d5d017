"""The crash harness's smoke: every kill point once (at least 10) with a fixed seed, each re-run converging."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.odbc
@pytest.mark.timeout(2400)  # 17 points, the API started for each: 16 min with two jobs at load 5-13 on 2 cores
def test_ten_kill_points_converge_to_the_clean_run() -> None:
    from bench.bench_crash import SMOKE_CASES, SMOKE_SIZES, choose, run
    from hub.killpoints import POINTS

    # what `--smoke` runs: two worlds side by side, each its own process, city, receivers and reference
    f = run(30, 20, SMOKE_SIZES, SMOKE_CASES, every_point=True, jobs=2)
    assert f["failure"] == "" and f["invariant_problems"] == [] and f["clean_ok"]
    assert f["audit_ok"]  # the clean run's digest: its audit chain verifies
    outcomes = f["outcomes"]
    assert f["tried"] == len(outcomes) >= 10
    not_converged = [(o.point, o.hit, o.problems[:5]) for o in outcomes if not o.converged]
    assert f["converged"] == f["tried"] and not not_converged, not_converged
    # every kill point a clean run passes was tried (the push's and the API's points included)
    assert all(f["tally"].get(name, 0) > 0 for name in POINTS), f["tally"]
    assert {o.point for o in outcomes} == set(POINTS)
    assert all(1 <= o.hit <= f["tally"][o.point] for o in outcomes)
    # the outcomes of both jobs merged in the order of the points, chosen as one job would
    assert [(o.point, o.hit) for o in outcomes] == choose(f["tally"], len(outcomes), 20)


def test_points_are_chosen_in_turn_among_those_a_clean_run_reaches() -> None:
    from bench.bench_crash import choose

    tally = {"a": 3, "b": 0, "c": 1, "d": 5}
    picked = choose(tally, 7, seed=1)
    assert len(picked) == 7
    assert {p for p, _ in picked[:3]} == {"a", "c", "d"}  # every reached point once before any twice
    assert all(p != "b" and 1 <= hit <= tally[p] for p, hit in picked)
    assert choose(tally, 7, seed=1) == picked  # the seed fixes the choice
