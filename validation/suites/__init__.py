"""Expectation suites per canonical entity (数据质量规则集), kept as JSON beside this module.

A suite file lists GX expectations (``type`` and ``kwargs`` exactly as GX takes them) plus the
hub's own keys: ``reason_code`` (the quarantine reason a failing row gets) and
``when_column_present`` (the expectation applies only once a column exists — e.g. the
resolver's ``resolved_id``). :meth:`SuiteSpec.to_gx` builds the GX suite;
:meth:`ExpectationSpec.unexpected` computes the same expectation's failing rows with the
vectorised rule from :mod:`validation.rules` (the fast path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from validation import rules
from validation.gxcontext import ensure_context

if TYPE_CHECKING:
    import great_expectations as gx

SUITES_DIR = Path(__file__).parent
ENTITIES = ("person", "enterprise", "tax_registration", "property_right", "approval_result", "license")

Rule = Callable[[pd.Series, dict[str, Any]], np.ndarray]


def _value_length_equal(col: pd.Series, kw: dict[str, Any]) -> np.ndarray:
    return rules.value_lengths_between(col, kw["value"], kw["value"])


#: expectation type -> (vectorised rule, whether GX skips nulls for it)
FAST_RULES: dict[str, tuple[Rule, bool]] = {
    "expect_column_values_to_not_be_null": (lambda c, kw: rules.not_null(c), False),
    "expect_column_values_to_be_in_set": (lambda c, kw: rules.in_set(c, kw["value_set"]), True),
    "expect_column_values_to_match_regex": (lambda c, kw: rules.match_regex(c, kw["regex"]), True),
    "expect_column_value_lengths_to_equal": (_value_length_equal, True),
    "expect_column_value_lengths_to_be_between": (
        lambda c, kw: rules.value_lengths_between(c, kw.get("min_value"), kw.get("max_value")),
        True,
    ),
    "expect_column_values_to_be_valid_resident_id": (lambda c, kw: rules.resident_id_valid(c), True),
    "expect_column_values_to_be_valid_uscc": (lambda c, kw: rules.uscc_valid(c), True),
    "expect_column_values_to_resolve_to_identity": (lambda c, kw: rules.resolved(c), False),
    "expect_column_values_to_be_known_property_owner": (lambda c, kw: rules.known_property_owner(c), False),
}


class SuiteError(ValueError):
    """A suite file is malformed or a batch lacks a column the suite requires."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite and the quarantine reason its failures carry."""

    type: str
    kwargs: dict[str, Any]
    reason_code: str
    when_column_present: bool = False

    @property
    def column(self) -> str:
        return str(self.kwargs["column"])

    @property
    def key(self) -> str:
        """Stable identity of the expectation inside its suite (type + column)."""
        return f"{self.type}:{self.column}"

    def unexpected(self, df: pd.DataFrame) -> np.ndarray:
        """Rows of ``df`` this expectation fails, computed by the vectorised rule (fast path)."""
        rule, skips_nulls = FAST_RULES[self.type]
        column = df[self.column]
        expected = rule(column, self.kwargs)
        if skips_nulls:
            return rules.unexpected_rows(expected, ~rules.null_mask(column))
        return ~expected

    def to_gx(self) -> Any:
        from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415 - GX is heavy
            ExpectationConfiguration,
        )

        import validation.expectations  # noqa: F401, PLC0415 - registers the custom expectations; loads GX

        config = ExpectationConfiguration(
            type=self.type, kwargs=dict(self.kwargs), meta={"reason_code": self.reason_code}
        )
        return config.to_domain_obj()


@dataclass(frozen=True)
class SuiteSpec:
    """The expectation suite of one canonical entity."""

    entity: str
    description: str
    expectations: tuple[ExpectationSpec, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"hub.{self.entity}"

    def applicable(self, columns: Sequence[str]) -> tuple[ExpectationSpec, ...]:
        """The expectations that apply to a batch with ``columns``; a required column missing is an error."""
        present = set(columns)
        out: list[ExpectationSpec] = []
        missing: list[str] = []
        for exp in self.expectations:
            if exp.column in present:
                out.append(exp)
            elif not exp.when_column_present:
                missing.append(exp.column)
        if missing:
            raise SuiteError(f"suite {self.name}: batch lacks required column(s) {sorted(set(missing))}")
        return tuple(out)

    def to_gx(
        self, expectations: Sequence[ExpectationSpec] | None = None, name: str | None = None
    ) -> gx.ExpectationSuite:
        import great_expectations as gx  # noqa: PLC0415 - GX is heavy to import; only GX suites need it

        ensure_context()
        suite = gx.ExpectationSuite(name=name or self.name, meta={"description": self.description})
        for exp in expectations if expectations is not None else self.expectations:
            suite.add_expectation(exp.to_gx())
        return suite


def _parse(data: dict[str, Any], origin: str) -> SuiteSpec:
    try:
        exps = tuple(
            ExpectationSpec(
                type=e["type"],
                kwargs=dict(e["kwargs"]),
                reason_code=e["reason_code"],
                when_column_present=bool(e.get("when_column_present", False)),
            )
            for e in data["expectations"]
        )
        spec = SuiteSpec(entity=data["entity"], description=data.get("description", ""), expectations=exps)
    except (KeyError, TypeError) as exc:
        raise SuiteError(f"{origin}: malformed suite ({exc!r})") from exc
    for exp in spec.expectations:
        if exp.type not in FAST_RULES:
            raise SuiteError(f"{origin}: expectation type {exp.type!r} has no vectorised rule")
    return spec


@cache
def load_suite(entity: str) -> SuiteSpec:
    """The suite of a canonical entity (``person``, ``enterprise``, ...)."""
    path = SUITES_DIR / f"{entity}.json"
    if not path.exists():
        raise SuiteError(f"no expectation suite for entity {entity!r} (expected {path})")
    return _parse(json.loads(path.read_text(encoding="utf-8")), str(path))


def all_suites() -> list[SuiteSpec]:
    return [load_suite(e) for e in ENTITIES]
