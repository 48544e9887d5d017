"""The map + validate + resolve benchmark still runs (tiny size; no timing asserted), also with
the hub's state on PostgreSQL beside SQLite."""

from __future__ import annotations

import pytest

from rigs.testing import ServiceMissing
from tests.conftest import require


def test_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_map_validate_resolve import main

    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "END TO END" in out and "peer: GX alone" in out
    assert "quarantined" in out


@pytest.mark.postgres
def test_bench_smoke_on_postgresql_beside_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_map_validate_resolve import main

    try:
        code = main(["--smoke", "--db", "postgresql"])
    except ServiceMissing as exc:
        require(False, str(exc))
        raise
    assert code == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("hub state in"))
    assert header.split()[3:] == ["SQLite", "PostgreSQL"]
    end_to_end = next(line for line in out.splitlines() if line.startswith("END TO END"))
    assert end_to_end.count("rec/s") == 2  # one figure per database
    assert "resolve" in out and "991 records resolved to an identity" in out
