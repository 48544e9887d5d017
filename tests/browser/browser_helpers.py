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
