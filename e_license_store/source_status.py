"""What a department's status of a record means for the licences it yields (来源状态 → 证照状态).

A source record's canonical ``status`` moves its licence: revoked, cancelled or deregistered
records — and a deceased holder's (a resident identity card is cancelled on death) — revoke it;
suspended, abnormal or sealed ones suspend a valid licence; any other status reinstates a
suspended one. A revoked licence stays revoked.

>>> transition("cancelled", "valid"), transition("abnormal", "valid"), transition("active", "suspended")
('revoke', 'suspend', 'reinstate')
>>> transition("deceased", "valid")
'revoke'
>>> transition("active", "valid"), transition("sealed", "revoked"), transition(None, "suspended")
(None, None, None)
"""

from __future__ import annotations

from typing import Any

#: canonical source statuses → the licence status they call for (others: valid)
REVOKING = frozenset({"revoked", "cancelled", "deregistered", "deceased"})
SUSPENDING = frozenset({"suspended", "abnormal", "sealed"})


def transition(status: str | None, current: str) -> str | None:
    """The lifecycle move (``revoke``, ``suspend``, ``reinstate``) ``status`` calls for, or ``None``."""
    if status in REVOKING and current in {"valid", "suspended"}:
        return "revoke"
    if status in SUSPENDING and current == "valid":
        return "suspend"
    if status is not None and status not in REVOKING | SUSPENDING and current == "suspended":
        return "reinstate"
    return None


#: the service's transition for each move
TRANSITIONS = {"revoke": "revoked", "suspend": "suspended", "reinstate": "reinstated"}


def planned_move(issued: Any, status: str | None) -> tuple[str, str, str] | None:
    """``(license_id, transition, reason)`` of the move ``status`` calls for (for
    :meth:`LicenseService.move_many`), or ``None``: :func:`apply_source_status`'s move, not made yet.

    >>> from types import SimpleNamespace
    >>> planned_move(SimpleNamespace(license_id="L1", status="valid"), "abnormal")
    ('L1', 'suspended', 'source status abnormal')
    >>> planned_move(SimpleNamespace(license_id="L1", status="revoked"), "abnormal") is None
    True
    """
    move = transition(status, issued.status)
    if move is None:
        return None
    return issued.license_id, TRANSITIONS[move], f"source status {status}"


def apply_source_status(service: Any, issued: Any, status: str | None) -> Any:
    """Move the issued licence to what the source status calls for; the service's result, or ``None``."""
    move = transition(status, issued.status)
    if move is None:
        return None
    moves = {"revoke": service.revoke, "suspend": service.suspend, "reinstate": service.reinstate}
    return moves[move](issued.license_id, f"source status {status}")
