"""The cheaper edit-distance condition the person model uses is the same truth value as
DuckDB's own ``damerau_levenshtein(l, r) <= k``, on the strings matching compares."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.matching import edit_distance_within

# Short strings over a small alphabet make near misses (transpositions, one edit) common;
# CJK characters are three bytes each in DuckDB's edit distances, digits and X one.
_TEXT = st.text(alphabet="01X王礼", max_size=8)


@st.composite
def _near(draw: st.DrawFn) -> tuple[str, str]:
    """A string and a copy a few edits away: transpositions, substitutions, insertions, deletions."""
    text = draw(st.text(alphabet="01X王", min_size=2, max_size=12))
    other = list(text)
    for _ in range(draw(st.integers(1, 3))):
        op, at = draw(st.sampled_from("tttsid")), draw(st.integers(0, max(len(other) - 1, 0)))
        if op == "t" and at + 1 < len(other):
            other[at], other[at + 1] = other[at + 1], other[at]
        elif op == "s" and other:
            other[at] = draw(st.sampled_from("01X王"))
        elif op == "i":
            other.insert(at, draw(st.sampled_from("01X王")))
        elif op == "d" and other:
            del other[at]
    return text, "".join(other)


#: Unrelated pairs, pairs sharing a prefix (as resident ids of one county and birth date do),
#: and near misses (where the two distances differ).
_PAIRS = (
    st.tuples(_TEXT, _TEXT)
    | st.tuples(_TEXT, _TEXT, _TEXT).map(lambda t: (t[0] + t[1], t[0] + t[2]))
    | _near()
    | st.tuples(_TEXT, _near()).map(lambda t: (t[0] + t[1][0], t[0] + t[1][1]))
)


def _both(
    pairs: Sequence[tuple[str | None, str | None]], distance: int, shared_prefix: int = 0
) -> list[tuple[bool | None, bool | None]]:
    frame = pd.DataFrame(pairs, columns=["v_l", "v_r"], dtype=object)
    con = duckdb.connect()
    con.register("pairs", frame)
    cheap = edit_distance_within("v", distance, shared_prefix=shared_prefix)
    sql = f'select {cheap}, damerau_levenshtein("v_l", "v_r") <= {distance} from pairs'
    return [tuple(row) for row in con.execute(sql).fetchall()]  # type: ignore[misc]


@settings(max_examples=80, deadline=None)
@given(st.lists(_PAIRS, min_size=20, max_size=300), st.sampled_from([1, 2, 3]), st.sampled_from([0, 1, 2, 4]))
def test_same_truth_value_as_damerau_levenshtein(
    pairs: list[tuple[str, str]], distance: int, shared_prefix: int
) -> None:
    for cheap, plain in _both(pairs, distance, shared_prefix):
        assert cheap == plain


def test_known_pairs() -> None:
    pairs: list[tuple[str | None, str | None]] = [
        ("ab", "ba"),  # one transposition: Levenshtein 2, Damerau-Levenshtein 1
        ("330322199001010001", "330322199001010010"),
        ("abcd", "badc"),  # two transpositions: Levenshtein 4, Damerau-Levenshtein 2
        ("330322199001010001", "3303221990010100"),
        ("330322199001010001", "330322199001019999"),
        ("王礼芳", "王桂芳"),
        ("abc", "abc"),
        (None, "abc"),
    ]
    for shared_prefix in (0, 14):
        got = _both(pairs, 1, shared_prefix)
        assert got[0] == (True, True)
        assert got[1] == (True, True)
        assert got[2] == (False, False)
        assert got[-1] == (None, None)
        for distance in (1, 2, 3):
            assert all(cheap == plain for cheap, plain in _both(pairs, distance, shared_prefix))
