"""Scopes (授权范围): which licence types, which fields, which purposes a consumer may use.

Scope strings:

- ``licenses:read:<type>`` / ``licenses:read:*`` — read licences of a type (metadata, status);
- ``licenses:file`` — download licence files (of the types it may read);
- ``licenses:verify`` — verify a licence by id or file;
- ``recognitions:read`` — cross-department results of a holder (of the types it may read);
- ``fields:<surface field>`` / ``fields:*`` — surface fields released (others omitted);
- ``personal:read`` — personal data unmasked (resident ids, names, addresses, phones);
- ``purpose:<name>`` — a purpose the consumer may state (the first is its default);
- ``subscriptions:manage``, ``deliveries:read``, ``deliveries:admin``;
- ``metrics:read`` — the Prometheus metrics at ``/metrics`` (for the monitoring system's key).

>>> s = ScopeSet.parse(["licenses:read:1101", "fields:enterprise_name", "purpose:tax_registration"])
>>> s.can_read_type("1101"), s.can_read_type("2101")
(True, False)
>>> s.field_allowed("enterprise_name"), s.field_allowed("address")
(True, False)
>>> s.default_purpose
'tax_registration'
>>> ScopeSet.parse(["bogus"])
Traceback (most recent call last):
...
recognition.scopes.InvalidScope: unknown scope 'bogus'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

FIXED = {
    "licenses:file",
    "licenses:verify",
    "recognitions:read",
    "personal:read",
    "subscriptions:manage",
    "deliveries:read",
    "deliveries:admin",
    "metrics:read",
}
PATTERNS = (
    re.compile(r"^licenses:read:(\*|[0-9A-Za-z_.-]{1,40})$"),
    re.compile(r"^fields:(\*|[a-z0-9_]{1,60})$"),
    re.compile(r"^purpose:[a-z0-9_.-]{1,60}$"),
)


class InvalidScope(ValueError):
    pass


def validate_scope(scope: str) -> str:
    scope = scope.strip()
    if scope in FIXED or any(p.match(scope) for p in PATTERNS):
        return scope
    raise InvalidScope(f"unknown scope {scope!r}")


@dataclass(frozen=True)
class ScopeSet:
    """A consumer's granted scopes, with the questions the API asks of them.

    The derived answers are worked out once per set (the set is immutable and the API asks
    them on every request).
    """

    scopes: tuple[str, ...]

    @classmethod
    def parse(cls, scopes: Iterable[str]) -> ScopeSet:
        return cls(tuple(validate_scope(s) for s in scopes))

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def can_read_type(self, license_type_code: str) -> bool:
        return "licenses:read:*" in self.scopes or f"licenses:read:{license_type_code}" in self.scopes

    @cached_property
    def can_read_any(self) -> bool:
        return any(s.startswith("licenses:read:") for s in self.scopes)

    @cached_property
    def readable_types(self) -> frozenset[str] | None:
        """The licence types it may read; ``None`` means every type."""
        if "licenses:read:*" in self.scopes:
            return None
        return frozenset(s.split(":", 2)[2] for s in self.scopes if s.startswith("licenses:read:"))

    def field_allowed(self, field: str) -> bool:
        return "fields:*" in self.scopes or f"fields:{field}" in self.scopes

    @cached_property
    def personal(self) -> bool:
        return "personal:read" in self.scopes

    @cached_property
    def purposes(self) -> tuple[str, ...]:
        return tuple(s.split(":", 1)[1] for s in self.scopes if s.startswith("purpose:"))

    @cached_property
    def default_purpose(self) -> str | None:
        return self.purposes[0] if self.purposes else None
