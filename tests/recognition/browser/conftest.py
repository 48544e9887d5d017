"""Fixtures of the browser tests: Debian's Chromium through Playwright, a hub served by a real
uvicorn process, and screenshots of every page kept under ``test-artifacts/browser/<test>/`` when a
test fails (or always, with ``HUB_KEEP_SCREENSHOTS=1``).

On a laptop without Chromium the tests skip; under ``CI=true`` they fail (``tests.conftest.require``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory
from hub.settings import REPO_ROOT
from tests.conftest import require
from tests.recognition.browser.browser_helpers import Served, Shots
from tests.recognition.browser.smoke import available, launch_options

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(available() is None, available() or "")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(**launch_options())
        yield chromium
        chromium.close()


@pytest.fixture()
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shots]:
    taken = Shots(tmp_path / "screenshots")
    taken.folder.mkdir()
    yield taken
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    if failed:
        for i, page in enumerate(taken.pages):  # where each page stood when the test failed
            try:
                page.screenshot(path=str(taken.folder / f"zz-at-failure-{i}.png"), full_page=True)
            except Exception as exc:  # a closed page: the earlier screenshots remain
                print(f"no screenshot at failure of page {i}: {type(exc).__name__}")
    if failed or os.environ.get("HUB_KEEP_SCREENSHOTS"):  # set it to look at the pages of a passing run
        kept = ARTIFACTS / request.node.name
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(taken.folder, kept)
        print(f"screenshots kept in {kept}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def service(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LicenseService:
    """The licence repository the served hub reads (signing keys, store and database of the test)."""
    keys = tmp_path / "keys"
    rotate(keys)
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(keys))
    monkeypatch.setenv("HUB_STORE_URL", f"file://{tmp_path / 'store'}")
    return LicenseService(LocalStore(tmp_path / "store"), session_factory(make_engine(hub_db_url)), load_keyring(keys))


@pytest.fixture()
def served_hub(service: LicenseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """``hub serve`` (recognition.serve, one worker) on a free port over the test's database and store;
    ``HUB_VERIFY_BASE_URL`` points at it, in this process (which renders the PDFs) and in the server."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HUB_VERIFY_BASE_URL", base)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env={**os.environ, "HUB_RATE_LIMIT_ADDRESS_RATE": "0"}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start; see {tmp_path / 'server.log'}")
            time.sleep(0.1)  # polling the port until it answers, with a deadline
        yield Served(base, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
