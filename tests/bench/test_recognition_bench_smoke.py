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
    f = bench_push.run(300, 60, 32)  # what `--smoke` runs
    # every event delivered exactly once, each signature good, nothing failed for good, the audit chain intact
    assert f["delivered"] == f["unique"] == 300 and f["received"] >= 300
    assert f["bad_signature"] == 0 and f["dead"] == 0
    assert f["audit_ok"] and f["audit_checked"] > 0
    assert f["bare_posts"] == 300


@pytest.mark.slow
def test_bench_api_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    import argparse

    from bench import bench_api
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    reset_settings()
    # what `--smoke --workers 1` runs
    options = argparse.Namespace(licenses=2_000, seconds=2, sealed=200, workers=1, db_url=None, throttled=False,
                                 rate_limit_url="", smoke=True)  # fmt: skip
    f = bench_api.run(options, [8])
    reset_settings()
    assert f["licenses"] == 2_000 and f["sealed"] == 200 and f["holders"] > 0
    assert [(r["endpoint"], r["connections"]) for r in f["runs"]] == [("holder", 8), ("licence", 8)]
    for r in f["runs"]:
        # every request answered 2xx and audited
        assert r["requests"] > 0 and r["non2xx"] == 0 and r["audited"] >= r["requests"], r
    assert f["audit_ok"] and f["audit_checked"] >= f["audit_before"] + sum(r["audited"] for r in f["runs"])
    assert f["direct_lookup"]["reads"] > 0 and f["direct_get"]["reads"] > 0


@pytest.mark.slow
def test_bench_verify_page_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("wrk") is None:
        if in_ci():
            pytest.fail("wrk (Debian package wrk) missing in CI")
        pytest.skip("wrk not installed")
    import argparse

    from bench import bench_verify_page
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_DB_URL", raising=False)
    # the benchmark sets its own link key and base for its run; restored after it
    monkeypatch.setenv("HUB_VERIFY_KEY", "00" * 32)
    monkeypatch.setenv("HUB_VERIFY_BASE_URL", "http://127.0.0.1")
    reset_settings()
    # what `--smoke --workers 1` runs
    options = argparse.Namespace(licenses=2_000, sealed=100, rendered=100, seconds=2, workers=1, db_url=None,
                                 throttled=False, smoke=True)  # fmt: skip
    f = bench_verify_page.run(options, [8])
    reset_settings()
    assert f["licenses"] == 2_000 and f["driven"] == 100
    (level,) = f["runs"]
    # every page answered 2xx and audited
    assert level["connections"] == 8 and level["requests"] > 0 and level["non2xx"] == 0
    assert level["audited"] >= level["requests"]
    assert f["audit_ok"] and f["audit_checked"] >= f["audit_before"] + level["audited"]
    assert f["direct"]["reads"] > 0 and f["direct_cold"]["reads"] > 0


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
    assert level["intakes_audited"] == level["cases"] >= level["requests"]  # every case written has its entry
    assert level["recognised"] == 2 * level["cases"]  # the business licence and the premises' certificate, each time
    assert level["rps"] > 0 and figures["direct_cases"] > 0


@pytest.mark.slow
def test_bench_throttle_smoke() -> None:
    import os

    from bench import bench_throttle

    f = bench_throttle.figures(2_000, os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))  # `--smoke`
    if not f["redis"] and in_ci():
        pytest.fail("Redis not reachable in CI")
    backends = ["memory", "shared", "sqlite"] + (["redis"] if f["redis"] else [])
    # every backend measured with one and two processes (each acquire granted: the limit is never reached)
    assert [(r["backend"], r["procs"]) for r in f["rows"]] == [(b, p) for b in backends for p in (1, 2)]
    shared_two = next(r for r in f["rows"] if (r["backend"], r["procs"]) == ("shared", 2))
    assert f["default_ms"] == shared_two["p99_per_request_ms"] == 2 * shared_two["p99_us"] / 1000
