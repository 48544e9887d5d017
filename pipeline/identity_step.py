"""The identity step (身份归一) as the pipeline calls it: a thin adapter over ``identity.resolve``.

Calls ``identity.resolve.link_mapping_batch(session, df, mapping, run_id=)``, which resolves the
records as the identity kind the mapping declares (``identity_kind``: person, enterprise, or
none for records that only name identities inside them), returning the frame with resolved
identity columns added and the counts.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from identity.resolve import ENTERPRISE, NO_IDENTITY, PERSON, link_mapping_batch

IDENTITY_KINDS = (PERSON, ENTERPRISE, NO_IDENTITY)


def resolve_frame(df: pd.DataFrame, mapping: Any, *, session: Session, run_id: str) -> tuple[pd.DataFrame, int, int]:
    """(records with identities, identities created, records linked to identities already in the index).

    A record that creates an identity is linked to it too; it is counted once, as created."""
    result = link_mapping_batch(session, df, mapping, run_id=run_id)
    return result.records, int(result.created), int(result.linked - result.linked_to_new)
