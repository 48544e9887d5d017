"""Single-code access to the master index (主索引), for callers holding one code at a time
(the recognition API's holder lookup). Batches go through :mod:`identity.resolve`.

>>> import inspect; list(inspect.signature(resolve_code).parameters)
['session', 'code', 'entity_kind']
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from identity.resolve import RESOLVED, resolve_codes
from identity.tables import ENTERPRISE, PERSON


def resolve_code(session: Session, code: str, entity_kind: str | None = None) -> str | None:
    """The canonical code (18-digit resident id or USCC) in the index behind any code, or ``None``.

    Without ``entity_kind`` both persons and enterprises are tried (persons first for codes
    that read as resident ids).
    """
    kinds = [entity_kind] if entity_kind else [PERSON, ENTERPRISE]
    for kind in kinds:
        res = resolve_codes(session, [code], kind)
        if res["status"].iloc[0] == RESOLVED:
            return str(res["canonical_code"].iloc[0])
    return None
