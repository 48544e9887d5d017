"""Does Playwright drive Debian's Chromium on this machine? ``make bootstrap`` runs this; so do the
browser tests, through :func:`launch_options`.

Playwright's own browser download cannot run here (and is never called: no ``playwright install``).
The pinned Playwright release (``pyproject.toml``) is the one whose driver was built for the
Chromium version Debian ships (``chromium --version``), launched by path; as root, Chromium's
sandbox cannot start, so it runs with ``--no-sandbox``.

    .venv/bin/python tests/recognition/browser/smoke.py   # prints both versions; exit 1 if they do not work together
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

#: Debian's Chromium (``HUB_CHROMIUM`` for another build)
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")


def available() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium missing at {CHROMIUM} (Debian package chromium; make bootstrap installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python missing (dev extras; make bootstrap installs them)"
    return None


def launch_options() -> dict[str, Any]:
    """How Playwright launches Debian's Chromium here (headless; no sandbox as root)."""
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return {"executable_path": CHROMIUM, "args": args, "headless": True}


def main() -> int:
    missing = available()
    if missing:
        print(f"browser smoke: {missing}", file=sys.stderr)
        return 1
    from importlib.metadata import version

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        try:
            page = browser.new_page()
            page.set_content('<html lang="zh-CN"><title>smoke</title><h1>证照核验</h1></html>')
            heading = page.inner_text("h1")
            chromium = browser.version
        finally:
            browser.close()
    ok = heading == "证照核验"
    print(f"browser smoke: Playwright {version('playwright')} drives Chromium {chromium}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
