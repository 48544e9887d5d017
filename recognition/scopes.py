"""Scopes (授权范围): which licence types, which fields, which purposes a consumer may use.

Scope strings:

- ``licenses:read:<type>`` / ``licenses:read:*`` — read licences of a type (metadata, status);
- ``licenses:file`` — download licence files (of the types it may read);
- ``licenses:verify`` — verify a licence by id or file;
- ``recognitions:read`` — cross-department results of a holder (of the types it may read);
- ``fields:<surface field>`` / ``fields:*`` — surface fields released (others omitted);
- ``personal:read`` — personal data unmasked (resident ids, names, addresses, phones);
- ``purpose:<name>`` — a purpose the consumer may state (the first is its default);
- ``identities:read`` — receive identity events (``identity.merged``, ``identity.split``): which
  codes became one person or enterprise; a person's codes in them stay masked without
  ``personal:read``;
- ``subscriptions:manage``, ``deliveries:read``, ``deliveries:admin``;
- ``metrics:read`` — the Prometheus metrics at ``/metrics`` (for the monitoring system's key);
- ``lineage:read`` — where a licence's fields came from (``GET /v1/licenses/{id}/lineage``, of the
  types it may read): source record, run, mapping file and hash, suite version, identity link;
  personal values in it always masked;
- ``cases:write`` — take in applications (``POST /v1/cases``, the front desk 一窗受理) and record
  the window's steps (resumed after a correction, withdrawn, delivered);
- ``cases:read`` — read cases: a case's timeline by its supervision code and an applicant's cases
  (applicant, agent and party data masked without ``personal:read``);
- ``cases:steps:<department>`` — report that department's steps of the cases it takes part in
  (``POST /v1/cases/{code}/steps``);
- ``supervision:read`` — the supervision office (电子监察): receive the changes of light and the
  escalations of every case (``supervision.light_changed``, ``supervision.escalated``) and read
  the figures;
- ``identity:review`` — the data stewards' review queue (``/v1/identity/review``): list and show items
  (person data masked without ``personal:read``), accept, reject and split them; each decision moves
  licences to their right holder (:mod:`recognition.identity_review`).

A consumer may also be *bound to a department* (:attr:`recognition.consumers.Principal.department`):
its keys then act for that department only — they report only its steps, whatever their scopes
say, read only the cases it takes part in, and take in only the items it leads (its own counter).

Pushed events are released like reads (:func:`event_scope`): a licence or approval event needs
``licenses:read`` for that event's licence type, an identity event ``identities:read``; an event
of any other kind goes to no consumer. Subscribing asks for the scopes of every event type named
(:meth:`ScopeSet.missing_for_subscription`), and every delivery asks again, so a scope withdrawn
later stops the events it covered.

>>> s = ScopeSet.parse(["licenses:read:1101", "fields:enterprise_name", "purpose:tax_registration"])
>>> s.can_read_type("1101"), s.can_read_type("2101")
(True, False)
>>> s.field_allowed("enterprise_name"), s.field_allowed("address")
(True, False)
>>> s.default_purpose
'tax_registration'
>>> s.may_receive("license.issued", "1101"), s.may_receive("identity.merged", None)
(True, False)
>>> s.missing_for_subscription(["license.issued", "identity.merged"], ["1101"])
'identities:read'
>>> d = ScopeSet.parse(["cases:read", "cases:steps:tax"])
>>> d.may_report_steps("tax"), d.may_report_steps("commerce"), d.has("cases:write")
(True, False, False)
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
    "identities:read",
    "subscriptions:manage",
    "deliveries:read",
    "deliveries:admin",
    "metrics:read",
    "lineage:read",
    "cases:write",
    "cases:read",
    "supervision:read",
    "identity:review",
}
PATTERNS = (
    re.compile(r"^licenses:read:(\*|[0-9A-Za-z_.-]{1,40})$"),
    re.compile(r"^fields:(\*|[a-z0-9_]{1,60})$"),
    re.compile(r"^purpose:[a-z0-9_.-]{1,60}$"),
    re.compile(r"^cases:steps:[a-z][a-z0-9_]{1,39}$"),
)
CASES_WRITE = "cases:write"
CASES_READ = "cases:read"


#: Event kinds (the event type before its dot) released like licence reads, and like identity data.
LICENCE_EVENT_KINDS = frozenset({"license", "approval"})
IDENTITY_EVENT_KINDS = frozenset({"identity"})
IDENTITIES_READ = "identities:read"
SUPERVISION_EVENT_KINDS = frozenset({"supervision"})
SUPERVISION_READ = "supervision:read"
LINEAGE_READ = "lineage:read"
IDENTITY_REVIEW = "identity:review"
#: case events pushed to the departments (dispatch, 分办): each to the department it names only
DEPARTMENT_CASE_EVENTS = frozenset({"case.dispatched", "case.recalled"})


class InvalidScope(ValueError):
    pass


def event_scope(event_type: str, license_type_code: str | None, department: str | None = None) -> str | None:
    """The scope a consumer needs to receive one event; ``None``: no consumer receives it.
    ``department``: the department a case event is addressed to.

    >>> event_scope("license.revoked", "1101"), event_scope("approval.issued", "3101")
    ('licenses:read:1101', 'licenses:read:3101')
    >>> event_scope("license.issued", None), event_scope("identity.split", None), event_scope("case.opened", None)
    ('licenses:read:*', 'identities:read', None)
    >>> event_scope("supervision.light_changed", None)
    'supervision:read'
    >>> event_scope("case.dispatched", None, "tax"), event_scope("case.dispatched", None)
    ('cases:steps:tax', None)
    >>> event_scope("case.step", None, "tax") is None
    True
    """
    if event_type in DEPARTMENT_CASE_EVENTS:
        return f"cases:steps:{department}" if department else None
    kind = event_type.partition(".")[0]
    if kind in LICENCE_EVENT_KINDS:
        # a licence event without a type is released only to whoever may read every type
        return f"licenses:read:{license_type_code or '*'}"
    if kind in IDENTITY_EVENT_KINDS:
        return IDENTITIES_READ
    if kind in SUPERVISION_EVENT_KINDS:
        return SUPERVISION_READ
    return None


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

    def may_receive(self, event_type: str, license_type_code: str | None, department: str | None = None) -> bool:
        """May a subscription of this consumer be pushed this event? (see :func:`event_scope`)"""
        needed = event_scope(event_type, license_type_code, department)
        if needed is None:
            return False
        if needed.startswith("licenses:read:"):
            return self.can_read_type(needed.split(":", 2)[2])
        return self.has(needed)

    def missing_for_subscription(self, event_types: Iterable[str], license_types: Iterable[str] | None) -> str | None:
        """The first scope missing to subscribe to ``event_types`` (filtered by ``license_types``), if any.

        Licence events need the scope of every licence type filtered on, or ``licenses:read:*``
        without a filter; identity events need ``identities:read``, supervision events ``supervision:read``.
        """
        types = list(license_types or [])
        for event_type in event_types:
            kind = event_type.partition(".")[0]
            if kind in LICENCE_EVENT_KINDS:
                for t in types or ["*"]:
                    if not self.can_read_type(t):
                        return f"licenses:read:{t}"
            elif kind in IDENTITY_EVENT_KINDS:
                if not self.has(IDENTITIES_READ):
                    return IDENTITIES_READ
            elif event_type in DEPARTMENT_CASE_EVENTS:
                if not any(s.startswith("cases:steps:") for s in self.scopes):
                    return "cases:steps:<department>"
            elif kind in SUPERVISION_EVENT_KINDS:
                if not self.has(SUPERVISION_READ):
                    return SUPERVISION_READ
            else:  # event types are validated before; no scope releases an unknown kind
                raise ValueError(f"no scope releases {event_type!r} events")
        return None

    def may_report_steps(self, department: str) -> bool:
        """May it report ``department``'s steps of a case? (``cases:steps:<department>``; the window's
        steps are ``cases:write``'s.) A department binding narrows this further (see the module)."""
        return f"cases:steps:{department}" in self.scopes

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
