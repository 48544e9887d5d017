"""The licence benchmarks still run (tiny sizes) and their figures add up; no timing asserted."""

from __future__ import annotations

import pytest

from bench import bench_index, bench_issue, bench_signing


@pytest.mark.slow
def test_signing_bench_smoke() -> None:
    f = bench_signing.run([bench_signing.SEAL_LIBRARY, "gmssl", "ed25519"], 1, 0.2, 0.2)  # `--smoke --procs 1`
    assert list(f["libraries"]) == [bench_signing.SEAL_LIBRARY, "gmssl", "ed25519"]
    for lib, r in f["libraries"].items():
        # each worker signs and verifies at least 3 times (a failed verification fails the worker)
        assert r["signed"] >= 3 and r["verified"] >= 3, lib
    assert f["procs"] == 1 and f["seconds"] == f["peer_seconds"] == 0.2


@pytest.mark.slow
def test_issue_bench_smoke() -> None:
    f = bench_issue.run(20, 15, 2, 3)  # `--smoke --threads 2`
    local, s3 = f["local"], f["s3"]
    assert local["created"] == 20 and local["bare_objects"] == 20
    # on S3 every licence issued is one object, and the peer PUT the same objects again
    assert s3["created"] == s3["stored"] == s3["bare_objects"] == 15
    assert f["s3_ratio"] == s3["issue"] / s3["bare"]
    assert f["pdfs"] == 3 and f["pdf_ok"]


def test_index_bench_smoke() -> None:
    f = bench_index.run(3_000, 50)  # `--smoke --rows 3000 --lookups 50`
    assert f["indexed"] == 3_000
    assert "USING INDEX ix_license_index_holder" in f["plan"]
    # licenses_by_holder and the raw SQL found the same licences for the same holders
    assert f["found"] == f["raw_found"] > 0
