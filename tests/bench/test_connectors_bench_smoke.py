"""The connector benchmarks still run (tiny sizes; no timing asserted)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_xml_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_xml import main

    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "bare lxml iterparse + XSD + extract" in out and "connector / bare" in out


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.odbc
def test_sql_pull_benchmark_smoke(odbc_postgres: None, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_sql_pull import main
    from rigs.testing import ServiceMissing
    from tests.conftest import require

    try:
        assert main(["--smoke"]) == 0
    except ServiceMissing as exc:
        require(False, str(exc))
    out = capsys.readouterr().out
    assert "bare pyodbc fetchmany" in out and "psycopg COPY TO" in out and "connector / bare pyodbc" in out
