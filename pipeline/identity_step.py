"""The identity step (身份归一) as the pipeline calls it: a thin adapter over ``identity.resolve``.

Calls ``identity.resolve.link_batch(session, df, entity_kind, department, dataset, mapping=, run_id=)``,
returning an object with ``records`` (the frame with resolved identity columns added),
``created`` and ``linked`` (counts).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from identity.resolve import ENTERPRISE, PERSON, link_batch


def resolve_frame(df: pd.DataFrame, mapping: Any, *, session: Session, run_id: str) -> tuple[pd.DataFrame, int, int]:
    """(records with identities, identities created, identities linked)."""
    kind = PERSON if mapping.entity == PERSON else ENTERPRISE
    result = link_batch(session, df, kind, mapping.department, mapping.dataset, mapping=mapping, run_id=run_id)
    return result.records, int(result.created), int(result.linked)
