"""How a presented code came out of resolution: ``resolved`` to an identity the index holds, ``new``
(an identity made for it), or ``unresolved``. Shared by resolution and the relations it keeps."""

from __future__ import annotations

RESOLVED, NEW, UNRESOLVED = "resolved", "new", "unresolved"
#: statuses under which a code names an identity
PLACED = (RESOLVED, NEW)
