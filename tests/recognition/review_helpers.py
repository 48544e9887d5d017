"""A review item to decide: two candidate persons in the master index, a grey-zone record of the
population registry waiting for a steward, and the licence that record yielded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService, default_service
from e_license_store.signing import rotate
from hub.db import session_scope
from hub.settings import reset_settings
from identity.matching import REVIEW
from identity.matching_review import enqueue_reviews, link_source_record
from identity.matching_tables import IdentityReviewQueue
from identity.tables import IdentityPerson
from mappings.canonical.models import HolderKind, SourceRef

CANDIDATE = "330322198001011234"
RUNNER_UP = "330322198001011242"
#: the record's own resident id, one digit wrong: it resolves to nobody
DAMAGED = "330322198001011230"
NAME = "张三丰"
ADDRESS = "浙江省温州市洞头区北岙街道中心路12号"
DEPARTMENT, DATASET = "public_security", "persons"


def licence_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LicenseService:
    """The store and signing keys as ``HUB_STORE_URL`` and ``HUB_SIGNING_KEY_DIR`` (what the CLI and
    ``hub serve`` open), and the service on them."""
    key_dir = tmp_path / "keys"
    rotate(key_dir)
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(key_dir))
    monkeypatch.setenv("HUB_STORE_URL", f"file://{tmp_path / 'store'}")
    reset_settings()
    return default_service()


def seed_review(
    engine: Engine, service: LicenseService, key: str = "k1", *, linked_to: str | None = None
) -> tuple[int, str]:
    """(review id, licence id) of a record ``key`` proposed for CANDIDATE (RUNNER_UP second); with
    ``linked_to`` the record already belongs to that identity (and so does its licence)."""
    with session_scope(engine) as s:
        for code, name in ((CANDIDATE, NAME), (RUNNER_UP, "张三峰")):
            if s.get(IdentityPerson, code) is None:
                s.add(IdentityPerson(resident_id=code, name=name, sex="1", birth_date="1980-01-01", address=ADDRESS,
                                     region_code="330322", stored_attributes={}))  # fmt: skip
        s.flush()
        decisions = pd.DataFrame({
            "incoming_key": [key], "canonical_code": [CANDIDATE], "match_probability": [0.9], "decision": [REVIEW],
            "runner_up_code": [RUNNER_UP], "runner_up_probability": [0.85],
        })  # fmt: skip
        incoming = pd.DataFrame({
            "incoming_key": [key], "name": [NAME], "resident_id": [DAMAGED], "address": [ADDRESS],
            "birth_date": ["1980-01-01"], "sex": ["1"], "region_code": ["330322"],
        })  # fmt: skip
        assert enqueue_reviews(s, decisions, department=DEPARTMENT, dataset=DATASET, incoming=incoming, run_id="r1")
        if linked_to is not None:
            link_source_record(s, department=DEPARTMENT, dataset=DATASET, source_key=key, entity_kind="person",
                               canonical_code=linked_to, score=1.0, method="rule")  # fmt: skip
        review_id = s.scalar(select(IdentityReviewQueue.id).where(IdentityReviewQueue.incoming_key == key))
    draft = LicenseDraft(
        license_type_code="2101", license_number=f"浙(2016)洞头区不动产权第{key:0>7}号", holder_name=NAME,
        holder_code=linked_to or DAMAGED, holder_kind=HolderKind.person, issuer_code="113303220025670000",
        issue_date=dt.date(2016, 5, 4), surface={"unit_no": "330322001001GB00001F00010001", "location": ADDRESS},
    )  # fmt: skip
    source = SourceRef(department=DEPARTMENT, dataset=DATASET, source_key=key, source_version="v1", run_id="r1")
    assert review_id is not None
    return int(review_id), service.issue(draft, source).license_id
