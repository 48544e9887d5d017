"""The identity step (身份归一) as the pipeline calls it: a thin adapter over ``identity.resolve``.

Calls ``identity.resolve.link_mapping_batch(session, df, mapping, run_id=)``, which resolves the
records as the identity kind the mapping declares (``identity_kind``: person, enterprise, or
none for records that only name identities inside them) — by code, and for person and enterprise
records without a usable code, and the holders named inside records, by the matching model
(``identity.matching_step``) — returning the frame
with resolved identity columns added and the counts the run ledger keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from identity.resolve import ENTERPRISE, NO_IDENTITY, PERSON, link_mapping_batch

IDENTITY_KINDS = (PERSON, ENTERPRISE, NO_IDENTITY)


@dataclass(frozen=True)
class ResolvedFrame:
    """The records with identities, and how they found them."""

    records: pd.DataFrame
    #: identities created (a record that creates one is linked to it too: counted once, here)
    created: int
    #: records linked to identities already in the index
    linked: int
    linked_by_code: int = 0
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    #: the matching model's version when the model placed records of the batch
    model_version: str | None = None


def resolve_frame(df: pd.DataFrame, mapping: Any, *, session: Session, run_id: str) -> ResolvedFrame:
    """Resolve and link one staged batch; see :class:`ResolvedFrame` for the counts."""
    result = link_mapping_batch(session, df, mapping, run_id=run_id)
    return ResolvedFrame(
        records=result.records,
        created=int(result.created),
        linked=int(result.linked - result.linked_to_new),
        linked_by_code=result.linked_by_code,
        linked_by_match=result.linked_by_match,
        sent_to_review=result.sent_to_review,
        provisional=result.provisional,
        model_version=result.model_version,
    )
