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
