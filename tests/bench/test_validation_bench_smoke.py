"""The map + validate + resolve benchmark still runs (tiny size) and its figures add up; no timing asserted."""

from __future__ import annotations


def test_bench_smoke() -> None:
    from bench.bench_map_validate_resolve import run

    f = run(1_000)  # what `--smoke` runs
    assert f["n"] == 1_000 and f["mapped"] + f["rejected"] == 1_000
    # the fast path quarantines exactly what GX alone flags: the rows failing by construction
    assert f["quarantined"] == f["gx_flagged"] == f["bad"] > 0
    assert f["quarantined"] + f["accepted"] == f["mapped"] and f["passed"]
    assert f["resolved"] == f["accepted"]  # every accepted record resolved to an identity
