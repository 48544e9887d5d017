"""The vectorised path gives exactly the scalar path's answers (property-based)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from identifiers import org_code, resident_id, uscc
from identifiers.normalize import KINDS, normalize
from identifiers.vectorized import (
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    normalize_many,
    records,
)
from tests.identifiers.strategies import identifiers, org_codes, resident_ids, usccs

AS_KIND = st.sampled_from([None, *KINDS])


@settings(max_examples=150, deadline=None)
@given(st.lists(identifiers, max_size=40), AS_KIND)
def test_vectorised_equals_scalar(codes: list[str | None], as_kind: str | None) -> None:
    assert records(normalize_many(codes, as_kind)) == [normalize(c, as_kind) for c in codes]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(resident_ids(), usccs(), org_codes()), min_size=1, max_size=30))
def test_valid_predicates_equal_scalar(codes: list[str]) -> None:
    column = pd.Series(codes)
    assert is_valid_resident_id(column).tolist() == [len(c) == 18 and resident_id.is_valid(c) for c in codes]
    assert is_valid_uscc(column).tolist() == [uscc.is_valid(c) for c in codes]
    assert is_valid_org_code(column).tolist() == [org_code.is_valid(c) for c in codes]


def test_generators_make_valid_codes_often_enough() -> None:
    """The property test is only meaningful if it sees valid codes and each reason."""
    from hypothesis import find

    find(resident_ids(), lambda c: len(c) == 18 and resident_id.is_valid(c))
    find(usccs(), uscc.is_valid)
    find(identifiers, lambda c: c is not None and normalize(c)["kind"] == "ambiguous" and normalize(c)["valid"])


def test_mixed_batch_matches_scalar_on_known_codes() -> None:
    codes = [
        "11010519491231002X",
        "110105491231002",
        "330300000012343",
        "330322600037341",
        "91110000600037341L",
        "Y1330322MA2C00001B",
        "D2143569-X",
        "11010519491231002X01",
        "310103201501010011",
        "",
        None,
        "abc",
        "１１０１０５１９４９１２３１００２ｘ",
    ]
    for as_kind in (None, *KINDS):
        assert records(normalize_many(codes, as_kind)) == [normalize(c, as_kind) for c in codes]


@settings(max_examples=60, deadline=None)
@given(st.lists(identifiers, max_size=30))
def test_canonical_resident_ids_equal_scalar(codes: list[str | None]) -> None:
    from identifiers.vectorized import canonical_resident_ids

    got = canonical_resident_ids(pd.Series(codes, dtype=object)).tolist()
    assert got == [normalize(c, "resident_id")["canonical"] for c in codes]


#: Characters the column-wide clean-up must treat exactly as ``str.translate`` does: NUL,
#: the separator that joins values, a noncharacter, characters beyond the Basic Multilingual Plane,
#: characters just past ASCII, and the clean-up's own deletions and foldings.
_AWKWARD = "0123456789Xx \u0000\u001f\uffff\U0001f600\u0080\u00ff\u3000－ａＺ１é-./"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            identifiers,
            st.text(alphabet=_AWKWARD, max_size=60),
            st.text(max_size=25),
            st.integers(),
            st.just(float("nan")),
        ),
        max_size=30,
    ),
    AS_KIND,
)
def test_vectorised_equals_scalar_on_awkward_text(codes: list[object], as_kind: str | None) -> None:
    assert records(normalize_many(codes, as_kind)) == [normalize(c, as_kind) for c in codes]


def test_awkward_values_match_scalar() -> None:
    codes: list[object] = [
        "11010519491231002\u0000",
        "\u001f11010519491231002X",
        "\uffff11010519491231002X",
        "11010519491231002X\uffff",
        "1101051949123100\U0001f600X",
        "x" * 200,
        "１" * 100 + "-" * 50,
        "\u3000",
        "-",
        110105491231002,
        None,
        float("nan"),
        "D2143569-\u00e9",
        "d2143569x",
    ]
    for as_kind in (None, *KINDS):
        assert records(normalize_many(codes, as_kind)) == [normalize(c, as_kind) for c in codes]
    assert len(normalize_many([])) == 0
