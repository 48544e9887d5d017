"""Does a mapping give its expectation suite what validation needs (映射与规则集核对)?

``hub mappings check`` asks this before a run does: validation refuses a batch that lacks a
column the suite requires (:class:`validation.suites.SuiteError`, every batch, whatever the
data) and quarantines every row whose value the suite does not allow. Each problem points at
the line of the mapping file to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.normalizers import possible_values
from mappings.spec import normalizer_ref
from mappings.yamlmarks import MarkedDocument, Path_, Problem, path_text
from validation.suites import SUITES_DIR, SuiteError, SuiteSpec, load_suite

IN_SET = "expect_column_values_to_be_in_set"
#: normalisers that translate a department's codes; ``map`` with ``keep_unknown`` says on purpose
#: that other values go on to validation (and are quarantined there)
TRANSLATING = ("status", "map", "sex")


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.json"))


def _where(name: str) -> str:
    return f"validation/suites/{name}.json"


def mapped_columns(data: Mapping[str, Any]) -> dict[str, Path_]:
    """The columns a mapping's records carry into validation, with the path that maps each."""
    out: dict[str, Path_] = {}
    for section in ("fields", "nested", "attributes"):
        block = data.get(section)
        if isinstance(block, Mapping):
            out.update({str(name): (section, str(name)) for name in block})
    return out


def suite_problems(doc: MarkedDocument, file: str) -> list[Problem]:
    """What validation would refuse in a (schema-valid) mapping: the suite it names, the columns
    that suite requires, the values it allows."""
    data = doc.data
    if not isinstance(data, Mapping) or not isinstance(data.get("expectation_suite"), str):
        return []  # the schema check says what is missing
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(Problem(file, doc.line_of(path), message, path_text(path)))

    name = data["expectation_suite"]
    if not (SUITES_DIR / f"{name}.json").exists():
        add(
            ("expectation_suite",),
            f"no expectation suite {name!r}: expected {_where(name)} (suites: {', '.join(suite_names())})",
        )
        return problems
    try:
        suite = load_suite(name)
    except SuiteError as exc:
        add(("expectation_suite",), f"expectation suite {name!r} cannot be read: {exc}")
        return problems
    entity = data.get("entity")
    if suite.entity != entity:
        add(
            ("expectation_suite",),
            f"expectation suite {name!r} ({_where(name)}) checks entity {suite.entity!r}, "
            f"this mapping maps entity {entity!r}",
        )
    problems.extend(_column_problems(doc, file, suite, name))
    return problems


def _column_problems(doc: MarkedDocument, file: str, suite: SuiteSpec, name: str) -> list[Problem]:
    data = doc.data
    columns = mapped_columns(data)
    problems: list[Problem] = []
    required = sorted({e.column for e in suite.expectations if not e.when_column_present})
    for column in required:
        if column not in columns:
            problems.append(
                Problem(
                    file,
                    doc.line_of(("fields",)),
                    f"expectation suite {name!r} ({_where(name)}) requires column {column!r}: map it under 'fields' "
                    "(validation refuses every batch without it)",
                    "fields",
                )
            )
    for exp in suite.expectations:
        if exp.type != IN_SET or exp.column not in columns:
            continue
        path = columns[exp.column]
        allowed = sorted(str(v) for v in exp.kwargs["value_set"])
        raw = _field_raw(data, path)
        chain = [normalizer_ref(n) for n in (raw.get("normalizers") or ())] if isinstance(raw, Mapping) else []
        if isinstance(raw, Mapping) and "const" in raw:
            values: frozenset[str] | None = frozenset() if raw["const"] is None else frozenset({str(raw["const"])})
        else:
            values = possible_values((n, dict(p)) for n, p in chain)
        where = f"expectation suite {name!r} ({_where(name)}) allows {exp.column!r} only {allowed}"
        if values is None and not any(n in TRANSLATING for n, _ in chain):
            problems.append(
                Problem(
                    file,
                    doc.line_of(path),
                    f"{where}, but this field passes source values through unchanged: translate them with a "
                    "'status' table or a 'map' normaliser (other values are quarantined)",
                    path_text(path),
                )
            )
        elif values is not None and values - set(allowed):
            problems.append(
                Problem(
                    file,
                    doc.line_of(path),
                    f"{where}; this field can yield {sorted(values - set(allowed))} (those rows would be quarantined)",
                    path_text(path),
                )
            )
    return problems


def _field_raw(data: Mapping[str, Any], path: Path_) -> Any:
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node
