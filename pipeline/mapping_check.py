"""Everything ``hub mappings check`` and ``hub run`` check in a mapping file before a run.

The mapping's own checks (JSON Schema, canonical fields, normalisers, identity kind, licence
types against ``e_license_store/catalogue.yaml``: :mod:`mappings.check`) and what validation
needs of it (the expectation suite's required columns and allowed values:
:mod:`validation.mapping_fit`). They are put together here, above both rooms.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hub import safe_yaml
from mappings.check import Problem, check_file
from mappings.yamlmarks import load_marked_file
from validation.mapping_fit import suite_problems


def check_mapping(path: str | Path) -> list[Problem]:
    """Every problem of one mapping file, each with file and line (empty: good)."""
    problems = check_file(path)
    if any(p.message.startswith(("schema:", "cannot read")) for p in problems):
        return problems  # the suite cannot be judged on a file of the wrong shape
    try:
        doc = load_marked_file(Path(path))
    except (OSError, safe_yaml.YamlError):
        return problems
    return sorted(set(problems) | set(suite_problems(doc, str(path))))


def check_mappings(paths: Iterable[str | Path]) -> list[Problem]:
    out: list[Problem] = []
    for p in paths:
        out.extend(check_mapping(p))
    return out
