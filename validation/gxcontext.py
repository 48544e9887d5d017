"""The process's ephemeral Great Expectations context (GX objects such as suites need an active one).

Its own module so that :mod:`validation.suites` (building GX suites) and :mod:`validation.gxrun`
(running them) both reach it without importing each other.
"""

from __future__ import annotations

from typing import Any

_ephemeral: Any = None


def quiet(context: Any) -> None:
    """No progress bars from GX in this context."""
    from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415 - GX is heavy to import

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)


def ensure_context() -> Any:
    """The process's ephemeral GX context, created on first use (with the ``hub`` pandas source)."""
    global _ephemeral
    if _ephemeral is None:
        import great_expectations as gx  # noqa: PLC0415 - GX is heavy to import

        _ephemeral = gx.get_context(mode="ephemeral")
        quiet(_ephemeral)
        _ephemeral.data_sources.add_pandas("hub")
    return _ephemeral
