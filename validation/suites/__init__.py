"""Expectation suites per canonical entity (数据质量规则集), kept as JSON beside this module.

A suite file lists GX expectations (``type`` and ``kwargs`` exactly as GX takes them) plus the
hub's own keys: ``reason_code`` (the quarantine reason a failing row gets),
``when_column_present`` (the expectation applies only once a column exists — e.g. the
resolver's ``resolved_id``) and ``unless_matchable_by`` (columns that, all present in a row,
let the resolver match it without its code: the expectation then does not apply to that row;
GX gets it as a ``row_condition``). :meth:`SuiteSpec.to_gx` builds the GX suite;
:meth:`ExpectationSpec.unexpected` computes the same expectation's failing rows with the
vectorised rule from :mod:`validation.rules` (the fast path).
"""

from __future__ import annotations

import dataclasses
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
ENTITIES = ("person", "enterprise", "tax_registration", "property_right", "approval_result", "license", "case_step")

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
    #: columns that, every one present in a row, let the resolver match it without a code
    unless_matchable_by: tuple[str, ...] = ()

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
        failing = rules.unexpected_rows(expected, ~rules.null_mask(column)) if skips_nulls else ~expected
        if self.unless_matchable_by:
            failing = failing & ~self.matchable(df)
        return failing

    def matchable(self, df: pd.DataFrame) -> np.ndarray:
        """Rows carrying every ``unless_matchable_by`` column (what GX's row condition leaves out)."""
        present = np.ones(len(df), dtype=bool)
        for name in self.unless_matchable_by:
            present &= ~rules.null_mask(df[name])
        return present

    def row_condition(self) -> str | None:
        """The GX ``row_condition`` (pandas syntax) selecting the rows this expectation applies to."""
        if not self.unless_matchable_by:
            return None
        return " | ".join(f"{name}.isnull()" for name in self.unless_matchable_by)

    def for_columns(self, present: set[str]) -> ExpectationSpec:
        """This expectation for a batch with ``present`` columns: a matching column the batch lacks
        makes no row matchable, so the expectation then applies to every row."""
        if all(name in present for name in self.unless_matchable_by):
            return self
        return dataclasses.replace(self, unless_matchable_by=())

    def to_gx(self) -> Any:
        from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415 - GX is heavy
            ExpectationConfiguration,
        )

        import validation.expectations  # noqa: F401, PLC0415 - registers the custom expectations; loads GX

        kwargs = dict(self.kwargs)
        condition = self.row_condition()
        if condition is not None:
            kwargs.update(row_condition=condition, condition_parser="pandas")
        config = ExpectationConfiguration(type=self.type, kwargs=kwargs, meta={"reason_code": self.reason_code})
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
                out.append(exp.for_columns(present))
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
                unless_matchable_by=tuple(str(c) for c in e.get("unless_matchable_by", ())),
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
