"""The benchmarks still run (tiny sizes; no timed assertions)."""

from __future__ import annotations

import pytest

from bench import bench_index, bench_issue, bench_signing


@pytest.mark.slow
def test_signing_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_signing.main(["--smoke", "--procs", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("openssl-ctypes", "gmssl", "ed25519", "openssl speed"):
        assert name in out


@pytest.mark.slow
def test_issue_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_issue.main(["--smoke", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "issue_batch" in out and "bare minio-SDK PUTs" in out and "PDF" in out


def test_index_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_index.main(["--smoke", "--rows", "3000", "--lookups", "50"]) == 0
    out = capsys.readouterr().out
    assert "USING INDEX ix_license_index_holder" in out and "raw sqlite3" in out
