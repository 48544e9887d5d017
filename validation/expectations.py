"""The hub's custom Great Expectations (自定义数据质量期望): real GX 1.x column-map expectations.

Each expectation names a metric whose pandas implementation is one vectorised rule from
:mod:`validation.rules` — the same function the fast path uses — so a row GX flags is exactly a
row the fast path quarantines. Importing this module registers the expectations with GX; suites
refer to them by their snake-case type (``expect_column_values_to_be_valid_resident_id``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from validation import rules


class ColumnValuesValidResidentId(ColumnMapMetricProvider):
    """Metric: the value is a valid 18-digit resident id (公民身份号码)."""

    condition_metric_name = "column_values.valid_resident_id"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return pd.Series(rules.resident_id_valid(column), index=column.index)


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    """Metric: the value is a valid unified social credit code (统一社会信用代码)."""

    condition_metric_name = "column_values.valid_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return pd.Series(rules.uscc_valid(column), index=column.index)


class ColumnValuesResolveToIdentity(ColumnMapMetricProvider):
    """Metric: the resolver set an identity in this column (身份已归集). Nulls count as failures."""

    condition_metric_name = "column_values.resolve_to_identity"
    # A missing resolution is exactly what this rule is about, so nulls are evaluated, not skipped.
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return pd.Series(rules.resolved(column), index=column.index)


class ColumnValuesKnownPropertyOwner(ColumnMapMetricProvider):
    """Metric: every owner of a property right (不动产权利人) is a known party."""

    condition_metric_name = "column_values.known_property_owner"
    filter_column_isnull = False

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return pd.Series(rules.known_property_owner(column), index=column.index)


class ExpectColumnValuesToBeValidResidentId(ColumnMapExpectation):
    """Expect column values to be valid 18-digit resident ids (公民身份号码, GB 11643-1999).

    Nulls are not evaluated (pair with ``expect_column_values_to_not_be_null`` when required).
    """

    map_metric: ClassVar[str] = "column_values.valid_resident_id"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Expect column values to be valid unified social credit codes (统一社会信用代码, GB 32100-2015).

    Nulls are not evaluated.
    """

    map_metric: ClassVar[str] = "column_values.valid_uscc"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToResolveToIdentity(ColumnMapExpectation):
    """Expect the holder to resolve to an identity in the master index (主索引): the column the
    resolver sets (``resolved_id``) holds an id. Nulls and blanks fail."""

    map_metric: ClassVar[str] = "column_values.resolve_to_identity"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


class ExpectColumnValuesToBeKnownPropertyOwner(ColumnMapExpectation):
    """Expect every owner of a property right (不动产权利人) to be a known person or enterprise:
    a valid resident id, USCC or organisation code, resolved where the resolver annotated it.
    An empty owner list fails."""

    map_metric: ClassVar[str] = "column_values.known_property_owner"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly",)


CUSTOM_EXPECTATIONS: dict[str, type[ColumnMapExpectation]] = {
    "expect_column_values_to_be_valid_resident_id": ExpectColumnValuesToBeValidResidentId,
    "expect_column_values_to_be_valid_uscc": ExpectColumnValuesToBeValidUscc,
    "expect_column_values_to_resolve_to_identity": ExpectColumnValuesToResolveToIdentity,
    "expect_column_values_to_be_known_property_owner": ExpectColumnValuesToBeKnownPropertyOwner,
}
