"""The licence lifecycle's rules and errors (证照状态): which transition may start from which status,
the status each one leaves, and what the service raises when a change is refused.

Shared by :mod:`e_license_store.service` (one licence at a time) and :mod:`e_license_store.batch_moves`
(many at once); callers import the errors from the service as before.
"""

from __future__ import annotations

from e_license_store.model import Transition
from mappings.canonical.models import LicenseStatus


class LicenseNotFound(LookupError):
    """No licence with that id."""


class InvalidTransition(ValueError):
    """The lifecycle does not allow this change from the licence's current status."""


class InvalidDraft(ValueError):
    """The draft does not fit its catalogue type."""


class VersionTaken(Exception):
    """The store already holds the version about to be written."""


#: which statuses each transition may start from
ALLOWED: dict[Transition, set[LicenseStatus]] = {
    Transition.amended: {LicenseStatus.valid, LicenseStatus.suspended},
    Transition.suspended: {LicenseStatus.valid},
    Transition.reinstated: {LicenseStatus.suspended},
    Transition.revoked: {LicenseStatus.valid, LicenseStatus.suspended, LicenseStatus.expired},
    Transition.expired: {LicenseStatus.valid, LicenseStatus.suspended},
}
STATUS_AFTER: dict[Transition, LicenseStatus | None] = {
    Transition.issued: LicenseStatus.valid,
    Transition.amended: None,  # keeps the status it had
    Transition.suspended: LicenseStatus.suspended,
    Transition.reinstated: LicenseStatus.valid,
    Transition.revoked: LicenseStatus.revoked,
    Transition.expired: LicenseStatus.expired,
}
