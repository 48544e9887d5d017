"""The identity step (身份归一) as the pipeline calls it: a thin adapter over ``identity.resolve``.

Calls ``identity.resolve.link_batch(session, df, entity_kind, department, dataset, mapping=, run_id=)``,
returning an object with ``records`` (the frame with resolved identity columns added),
``created`` and ``linked`` (counts). Until it lands, records pass through unresolved and the
step says so in its log (never silently in CI: the end-to-end test checks identities exist).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def identity_available() -> bool:
    try:
        return importlib.util.find_spec("identity.resolve") is not None
    except ModuleNotFoundError:
        return False


def resolve_frame(df: pd.DataFrame, mapping: Any, *, session: Session, run_id: str) -> tuple[pd.DataFrame, int, int]:
    """(records with identities, identities created, identities linked)."""
    if not identity_available():
        log.warning("%s: identity.resolve not installed; %d records pass unresolved", mapping.name, len(df))
        return df, 0, 0
    from identity.resolve import ENTERPRISE, PERSON, link_batch

    kind = PERSON if mapping.entity == PERSON else ENTERPRISE
    result = link_batch(session, df, kind, mapping.department, mapping.dataset, mapping=mapping, run_id=run_id)
    return result.records, int(result.created), int(result.linked)
