"""The docs stay findable: decision records are numbered one way, and every link to a doc resolves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ROOT / "docs" / "decisions"
NAME = re.compile(r"^(\d{4})-[a-z0-9]+(?:-[a-z0-9]+)*\.md$")
#: a reference to a doc file from code, config or docs (``docs/x.md`` or, inside docs/, ``decisions/x.md``)
REFERENCE = re.compile(r"(?:docs/|\(|\b)(decisions/[A-Za-z0-9_.-]+\.md|docs/[A-Za-z0-9_.-]+\.md)")
SCANNED = (".md", ".py", ".yaml", ".toml")
PLACEHOLDERS = ("NNNN-", "/x.md")  # how the docs name the pattern itself


def test_decision_records_are_numbered_in_sequence() -> None:
    names = sorted(p.name for p in DECISIONS.glob("*.md"))
    assert names, "no decision records"
    bad = [n for n in names if not NAME.match(n)]
    assert not bad, f"decision records must be named NNNN-lower-case-words.md: {bad}"
    numbers = [int(NAME.match(n).group(1)) for n in names]  # type: ignore[union-attr]
    assert numbers == list(range(1, len(names) + 1)), numbers  # no gap, no number used twice


def _files() -> list[Path]:
    """The repository's own files (what git tracks or would add), not the venv's or the var directory's."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    return [ROOT / name for name in listed if name.endswith(SCANNED) or name == "Makefile"]


def test_every_reference_to_a_doc_resolves() -> None:
    missing: list[str] = []
    for path in _files():
        for match in REFERENCE.finditer(path.read_text(encoding="utf-8", errors="replace")):
            ref = match.group(1)
            if any(p in ref for p in PLACEHOLDERS):
                continue
            target = ROOT / "docs" / ref if ref.startswith("decisions/") else ROOT / ref
            if not target.exists():
                missing.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not missing, missing
