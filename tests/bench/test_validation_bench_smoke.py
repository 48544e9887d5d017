"""The map + validate + resolve benchmark still runs (tiny size) and its figures add up, also with the
hub's state on PostgreSQL beside SQLite; no timing asserted."""

from __future__ import annotations

from typing import Any

import pytest

from rigs.testing import ServiceMissing
from tests.conftest import require


def _adds_up(f: dict[str, Any], run: dict[str, Any]) -> None:
    assert run["mapped"] + run["rejected"] == f["n"] == 1_000
    # the fast path quarantines exactly what GX alone flags: the rows failing by construction
    assert run["quarantined"] == f["gx_flagged"] == f["bad"] > 0
    assert run["quarantined"] + run["accepted"] == run["mapped"] and run["passed"]
    assert run["resolved"] == run["accepted"]  # every accepted record resolved to an identity


def test_bench_smoke() -> None:
    from bench.bench_map_validate_resolve import run

    f = run(1_000)  # what `--smoke` runs
    (sqlite,) = f["runs"]
    assert sqlite["database"] == "SQLite"
    _adds_up(f, sqlite)


@pytest.mark.postgres
def test_bench_smoke_on_postgresql_beside_sqlite() -> None:
    from bench.bench_map_validate_resolve import run

    try:
        f = run(1_000, db="postgresql")
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    assert [r["database"] for r in f["runs"]] == ["SQLite", "PostgreSQL"]
    for r in f["runs"]:
        _adds_up(f, r)
    assert f["runs"][0]["resolved"] == f["runs"][1]["resolved"] == 991
