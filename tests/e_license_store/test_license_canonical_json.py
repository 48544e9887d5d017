"""Canonical JSON: the fast path must produce exactly the RFC 8785 reference bytes."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from e_license_store.canonical_json import JsonTooDeep, _plain, canonical_bytes, nesting_depth, parse_canonical

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def _reference(value: object) -> bytes | None:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception:  # values the standard does not allow (e.g. lone surrogates, huge ints)
        return None


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_same_bytes_as_the_reference(value: object) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(Exception):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1, 2, {"d": None, "c": True}]},
        {"名称": "营业执照", "text": 'line\nbreak\t"quoted" \\ \u0001 \u007f \u2028'},
        {"area": 12000.5, "share": 0.5, "ratio": 0.0001},
        {"\U0001f600": 1, "\ue000": 2},  # astral vs private-use key: UTF-16 order differs
        {"x": 1.0, "y": 1e21, "z": 1e-7, "edge": 2**53 - 1, "neg": -(2**53 - 1)},
    ],
)
def test_known_tricky_values(value: object) -> None:
    assert canonical_bytes(value) == bytes(rfc8785.dumps(value))


@pytest.mark.parametrize("big", [2**53, -(2**53), 2**53 + 1])
def test_integers_beyond_doubles_are_refused_like_the_reference(big: int) -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_bytes({"n": big})


def test_fast_path_is_taken_for_licence_like_documents() -> None:
    assert _plain({"license": {"surface": {"area_m2": 89.5, "name": "洞头"}, "version": 1}})
    assert not _plain({"x": 1.0})


def test_parse_canonical_refuses_other_spellings() -> None:
    data = canonical_bytes({"a": 1, "b": "x"})
    assert parse_canonical(data) == {"a": 1, "b": "x"}
    for other in (b'{"b":"x","a":1}', b'{"a": 1,"b":"x"}', json.dumps({"a": 1, "b": "x"}).encode()):
        with pytest.raises(ValueError, match="canonical"):
            parse_canonical(other)


@pytest.mark.parametrize(
    ("data", "depth"),
    [
        (b"[" * 100_000, 100_000),
        (b'{"a":' * 40 + b"1" + b"}" * 40, 40),
        (b'["' + b"[" * 100 + b'"]', 1),  # brackets inside a string do not nest
        (b'["\\"' + b"[" * 100 + b'"]', 1),  # nor after an escaped quote
    ],
)
def test_nesting_depth_is_measured_without_recursion(data: bytes, depth: int) -> None:
    assert nesting_depth(data) == depth


def test_json_nested_deeper_than_the_bound_is_refused_before_parsing() -> None:
    with pytest.raises(JsonTooDeep, match="JSON nested 33 levels deep"):
        parse_canonical(b"[" * 33 + b"]" * 33)
    assert parse_canonical(b"[" * 32 + b"]" * 32) == json.loads("[" * 32 + "]" * 32)
