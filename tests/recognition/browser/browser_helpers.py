"""Pieces the browser tests share with their fixtures (a module of its own: every test folder has a ``conftest``)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Shots:
    """Screenshots of the pages a test saw, in order; kept in ``test-artifacts/`` if it fails."""

    folder: Path
    pages: list[Any] = field(default_factory=list)
    n: int = 0

    def watch(self, page: Any) -> Any:
        """``page``, to be photographed where it stands if the test fails."""
        if page not in self.pages:
            self.pages.append(page)
        return page

    def take(self, page: Any, name: str) -> None:
        self.watch(page)
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]


#: a phone's screen (the QR code and the receipt are read with one)
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    grave = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not grave, results.generate_report()


def assert_fits_a_phone(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "scrolls sideways"
