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
from typing import Any

import rfc8785

_MAX_SAFE_INT = 2**53 - 1  # rfc8785 refuses integers a double cannot hold exactly


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
            return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: let the reference decide
            pass
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and insist it is already canonical, so no byte can change unnoticed.

    Raises ValueError when ``data`` is not JSON or not in RFC 8785 form.
    """
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if canonical_bytes(value) != data:
        raise ValueError("not in RFC 8785 canonical form")
    return value
