"""Kill points: inert unless armed, the armed hit kills with SIGKILL, every point in the one registry."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hub import killpoints

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("hub", "connectors", "identifiers", "mappings", "validation", "identity", "e_license_store", "cases",
           "recognition", "pipeline")  # fmt: skip

_SCRIPT = """
from hub.killpoints import kill_point
for i in range(1, 4):
    print(f"hit {i}", flush=True)
    kill_point("publish.batch")
print("survived", flush=True)
"""


def _run(env_value: str | None, once: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (killpoints.ENV, killpoints.ONCE_ENV)}
    if env_value is not None:
        env[killpoints.ENV] = env_value
    if once is not None:
        env[killpoints.ONCE_ENV] = str(once)
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )


def test_an_unarmed_process_passes_every_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(killpoints.ENV, raising=False)
    for name in killpoints.POINTS:
        killpoints.kill_point(name)
    assert killpoints.armed() is None
    done = _run(None)
    assert done.returncode == 0 and "survived" in done.stdout


def test_the_armed_hit_kills_the_process_with_sigkill() -> None:
    done = _run("publish.batch:2")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["hit", "1", "hit", "2"]


def test_armed_once_the_point_fires_in_the_first_process_only(tmp_path: Path) -> None:
    """What Airflow's task processes need: every try inherits the same environment."""
    marker = tmp_path / "fired"
    first = _run("publish.batch:2", once=marker)
    assert first.returncode == -signal.SIGKILL and first.stdout.split() == ["hit", "1", "hit", "2"]
    assert marker.read_text().startswith("publish.batch:2 pid ")
    retry = _run("publish.batch:2", once=marker)  # the retry: same environment, the marker is there
    assert retry.returncode == 0 and "survived" in retry.stdout


def test_a_point_armed_elsewhere_does_not_kill_here() -> None:
    done = _run("map.batch:1")
    assert done.returncode == 0 and "survived" in done.stdout


def test_tally_counts_hits_and_kills_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(killpoints.ENV, "tally")
    killpoints.kill_point("map.batch")
    killpoints.kill_point("map.batch")
    killpoints.kill_point("publish.batch")
    assert killpoints.tally() == {"map.batch": 2, "publish.batch": 1}
    monkeypatch.delenv(killpoints.ENV)
    assert killpoints.armed() is None and killpoints.tally() == {}


def test_an_unknown_point_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(killpoints.ENV, "no.such_point:1")
    with pytest.raises(ValueError, match="no kill point named"):
        killpoints.kill_point("map.batch")


def _points_in_product() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for room in PRODUCT:
        for path in sorted((REPO / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "kill_point"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    found.setdefault(str(node.args[0].value), []).append(str(path.relative_to(REPO)))
    return found


def test_every_point_in_the_product_is_registered_and_every_registered_point_is_placed() -> None:
    found = _points_in_product()
    assert set(found) == set(killpoints.POINTS), set(found) ^ set(killpoints.POINTS)
    # the places the crash harness relies on
    assert "recognition/delivery.py" in found["delivery.sent_not_recorded"]
    assert "e_license_store/service.py" in found["license.stored_not_indexed"]
    assert "identity/resolve.py" in found["resolve.bulk_write"]
    assert "connectors/sync.py" in found["extract.batch_staged"]
