"""The connector benchmarks still run (tiny sizes) and their figures add up; no timing asserted."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_xml_benchmark_smoke() -> None:
    from bench.bench_xml import run

    f = run(smoke=True, repeats=1)
    big, small = f["records"]["big"], f["records"]["small"]
    assert (f["big_mb"], f["small_mb"]) == (2, 1) and big > small > 0
    # every path read every record of the big package, once per round; the connector every one of the small one
    assert {mode: len(runs) for mode, runs in f["runs"].items()} == {"connector": 1, "bare": 1, "walk": 1, "small": 1}
    assert [int(f["best"][mode]["rows"]) for mode in ("connector", "bare", "walk")] == [big, big, big]
    assert int(f["best"]["small"]["rows"]) == small
    assert f["ratio"] == f["best"]["connector"]["rate"] / f["best"]["bare"]["rate"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.odbc
def test_sql_pull_benchmark_smoke(odbc_postgres: None) -> None:
    from bench.bench_sql_pull import run
    from rigs.testing import ServiceMissing
    from tests.conftest import require

    try:
        f = run(20_000, 2_000)
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    # the connector, bare pyodbc and COPY read the same rows; the connector at the small size its own
    assert [int(f[path]["rows"]) for path in ("connector", "pyodbc", "copy")] == [20_000, 20_000, 20_000]
    assert int(f["connector_small"]["rows"]) == 2_000
    assert f["ratio"] == f["connector"]["rate"] / f["pyodbc"]["rate"]
    assert f["growth_mb"] == f["connector"]["peak_mb"] - f["connector_small"]["peak_mb"]
