"""The benchmarks still run end to end (tiny sizes; no timing asserted here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rigs.testing import in_ci


@pytest.mark.slow
def test_bench_push_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import bench_push

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    assert bench_push.main(["--smoke"]) == 0


@pytest.mark.slow
def test_bench_api_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    from bench import bench_api
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    reset_settings()
    assert bench_api.main(["--smoke", "--workers", "1"]) == 0
    reset_settings()


@pytest.mark.slow
def test_bench_verify_page_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    from bench import bench_verify_page
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    # the benchmark sets its own link key and base for its run; restored after it
    monkeypatch.setenv("HUB_VERIFY_KEY", "00" * 32)
    monkeypatch.setenv("HUB_VERIFY_BASE_URL", "http://127.0.0.1")
    reset_settings()
    assert bench_verify_page.main(["--smoke", "--workers", "1"]) == 0
    reset_settings()


@pytest.mark.slow
def test_bench_case_timeline_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    from bench import bench_case_timeline
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    reset_settings()
    figures = bench_case_timeline.run(300, 10, seconds=4, levels=[2], workers=1, work=tmp_path)
    reset_settings()
    assert figures["cases"] == 300 and figures["steps"] == 3_000
    (level,) = figures["runs"]
    assert level["connections"] == 2 and level["requests"] > 0 and level["non2xx"] == 0
    assert level["audited"] >= level["requests"] and figures["audit_ok"]  # every answer audited, chain intact
    assert level["rps"] > 0 and level["p99_ms"] > 0 and figures["direct_reads"] > 0


@pytest.mark.slow
def test_bench_case_intake_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    from bench import bench_case_intake
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    reset_settings()
    figures = bench_case_intake.run(2_000, 100, seconds=4, levels=[2], workers=1, work=tmp_path)
    reset_settings()
    (level,) = figures["runs"]
    assert level["cases"] > 0 and level["non2xx"] == 0 and figures["audit_ok"]
    assert level["audited"] >= level["requests"]  # every answered intake audited
    assert level["recognised"] == 2 * level["cases"]  # the business licence and the premises' certificate, each time
    assert level["rps"] > 0 and figures["direct_cases"] > 0
