"""RFC 8785 canonical JSON (JSON Canonicalization Scheme): the exact bytes signatures cover."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 form of a JSON-compatible value (dates must already be strings)."""
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
