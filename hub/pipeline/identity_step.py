"""The identity step (身份归一) as the pipeline calls it: a thin adapter over ``identity.resolve``.

Calls ``identity.resolve.link_mapping_batch(session, df, mapping, run_id=)``, which resolves the
records as the identity kind the mapping declares (``identity_kind``: person, enterprise, or
none for records that only name identities inside them), returning the frame with resolved
identity columns added and the counts. Until it lands, records pass through unresolved and the
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
    """(records with identities, identities created, records linked to identities already in the index).

    A record that creates an identity is linked to it too; it is counted once, as created."""
    if not identity_available():
        log.warning("%s: identity.resolve not installed; %d records pass unresolved", mapping.name, len(df))
        return df, 0, 0
    from hub.pipeline.steps import StepError
    from identity.resolve import ENTERPRISE, NO_IDENTITY, PERSON, link_mapping_batch

    kind = mapping.spec.identity_kind
    if kind not in (PERSON, ENTERPRISE, NO_IDENTITY):  # a configuration error: no retry fixes it
        raise StepError(f"{mapping.name}: identity_kind {kind!r} is not person, enterprise or none")
    result = link_mapping_batch(session, df, mapping, run_id=run_id)
    return result.records, int(result.created), int(result.linked - result.linked_to_new)
