"""Birth dates become ``YYYY-MM-DD`` text for comparison exactly as Arrow's ``strftime`` writes them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.matching import _iso_dates
from mappings.normalizers import STR

_DATES = st.one_of(st.none(), st.dates(min_value=dt.date(1678, 1, 1), max_value=dt.date(2261, 12, 31)))


def _strftime(values: pd.Series) -> list[str | None]:
    arr = pa.array(values.to_numpy(dtype="datetime64[ns]"), pa.timestamp("ns"), from_pandas=True)
    return pc.strftime(arr.cast(pa.timestamp("s")), format="%Y-%m-%d").to_pylist()


@settings(max_examples=60, deadline=None)
@given(st.lists(_DATES, max_size=60))
def test_same_text_as_strftime(dates: list[dt.date | None]) -> None:
    values = pd.Series(pd.to_datetime(pd.Series(dates, dtype=object)), index=range(7, 7 + len(dates)))
    got = _iso_dates(values)
    assert got.dtype == STR
    assert list(got.index) == list(values.index)
    assert [None if pd.isna(v) else v for v in got] == _strftime(values)


def test_known_dates() -> None:
    values = pd.Series(pd.to_datetime(["1949-12-31", None, "2000-02-29", "1678-01-01"]))
    assert [None if pd.isna(v) else v for v in _iso_dates(values)] == ["1949-12-31", None, "2000-02-29", "1678-01-01"]
