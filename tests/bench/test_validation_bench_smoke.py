"""The map + validate + resolve benchmark still runs (tiny size; no timing asserted)."""

from __future__ import annotations

import pytest


def test_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_map_validate_resolve import main

    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "END TO END" in out and "peer: GX alone" in out
    assert "quarantined" in out
