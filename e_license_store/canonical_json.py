"""RFC 8785 canonical JSON (JSON Canonicalization Scheme): the exact bytes signatures cover.

The ``rfc8785`` package is the reference here. It is pure Python and was a measurable
part of issuing, so values that the standard library's encoder provably serialises the
same way (sorted keys, no whitespace, UTF-8, the same string escapes) go through
``json.dumps``; anything else — floats outside the range where Python's shortest repr
equals ECMAScript's, integers beyond 2**53, keys outside the Basic Multilingual Plane's
lower part (where UTF-16 and code-point order could differ) — goes to ``rfc8785``.
tests/e_license_store/test_license_canonical_json.py checks both paths agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from itertools import accumulate, count
from typing import Any

import rfc8785

_MAX_SAFE_INT = 2**53 - 1  # rfc8785 refuses integers a double cannot hold exactly
#: Deepest nesting of presented JSON (a licence envelope nests 5 levels). The parser and
#: ``rfc8785`` recurse per level: 100,000 ``[`` uploaded to /v1/licenses/verify raised
#: RecursionError (a 500).
MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
#: an opening bracket counts 2, a closing one 0: the depth after k brackets is their sum minus k
_BRACKET_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class JsonTooDeep(ValueError):
    """Presented JSON nests deeper than :data:`MAX_DEPTH`; refused before it is parsed."""


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` yields exactly the RFC 8785 bytes for ``value``."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or isinstance(v, (bool, str)):
            continue
        if isinstance(v, int):
            if abs(v) > _MAX_SAFE_INT:
                return False
        elif isinstance(v, float):
            # ECMAScript and Python both print the shortest round-trip digits; they agree on the
            # layout for non-integral values in [1e-4, 1e16)
            a = abs(v)
            if v != v or v.is_integer() or not (1e-4 <= a < 1e16):
                return False
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str) or any(ord(c) >= 0xD800 for c in k):
                    return False
                stack.append(item)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            return False
    return True


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 form of a JSON-compatible value (dates must already be strings)."""
    if _plain(value):
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode(
                "utf-8"
            )
        except UnicodeEncodeError:  # lone surrogates: let the reference decide
            pass
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def nesting_depth(data: bytes) -> int:
    """How deep the arrays and objects of JSON ``data`` nest (brackets inside strings ignored).

    One pass in C-speed steps, whatever the depth: no recursion.

    >>> nesting_depth(b'{"a": "[[[", "b": [1, {"c": "\\\\"]"}]}'), nesting_depth(b"[" * 100_000)
    (3, 100000)
    """
    brackets = _STRING.sub(b"", data).translate(_BRACKET_WEIGHTS, _NOT_BRACKETS)
    return max(map(operator.sub, accumulate(brackets), count(1)), default=0)


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and insist it is already canonical, so no byte can change unnoticed.

    Raises ValueError when ``data`` is not JSON or not in RFC 8785 form, :class:`JsonTooDeep`
    (a ValueError) when it nests deeper than :data:`MAX_DEPTH`.
    """
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and (depth := nesting_depth(data)) > MAX_DEPTH:
        raise JsonTooDeep(f"not a licence: JSON nested {depth} levels deep (at most {MAX_DEPTH})")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if canonical_bytes(value) != data:
        raise ValueError("not in RFC 8785 canonical form")
    return value
