"""Verification (tamper, revocation, rotation) and rebuilding the index from the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.index import reindex
from e_license_store.model import object_key
from e_license_store.service import LicenseService
from e_license_store.signing import Algorithm, load_keyring, rotate
from e_license_store.store.local import LocalStore
from e_license_store.tables import LicenseFileEntry, LicenseIndexEntry, LicenseVersionEntry
from e_license_store.verify import verify_file
from tests.e_license_store.conftest import business_draft, source


def test_a_genuine_licence_verifies(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    with sessions() as s:
        res = verify_file(local_store.get(issued.object_key), service.signer, session=s)
    assert res.ok, res.problems
    assert (res.signature_ok, res.hash_ok, res.status, res.revoked) == (True, True, "valid", False)
    assert res.key_id == issued.key_id and res.algorithm == "SM2-SM3"


def test_every_single_changed_byte_is_detected(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    data = local_store.get(service.issue(business_draft(), source()).object_key)
    # every position, flipping one bit of the byte (the file is canonical JSON: no slack bytes)
    with sessions() as s:
        for pos in range(len(data)):
            tampered = data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]
            res = verify_file(tampered, service.signer, session=s)
            assert not res.ok, pos
            assert res.problems


def test_non_canonical_base64_in_the_signature_is_refused(service: LicenseService, local_store: LocalStore) -> None:
    """The last base64 character has unused bits; flipping them must not slip through."""
    import base64
    import json

    for i in range(40):  # DER signatures are 70-72 bytes: find one whose base64 has padding
        data = local_store.get(service.issue(business_draft(), source(f"s{i}")).object_key)
        value = json.loads(data)["signature"]["value"]
        raw = base64.b64decode(value)
        if len(raw) % 3:
            break
    assert len(raw) % 3, "no padded signature in 40 tries"
    stripped = value.rstrip("=")
    last = stripped[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twins = [c for c in alphabet if c != last and base64.b64decode(stripped[:-1] + c + value[len(stripped) :]) == raw]
    tampered = data.replace(value.encode(), (stripped[:-1] + twins[0] + value[len(stripped) :]).encode())
    res = verify_file(tampered, service.signer)
    assert not res.ok and not res.well_formed


def test_a_changed_value_breaks_signature_and_hash(service: LicenseService, local_store: LocalStore) -> None:
    data = local_store.get(service.issue(business_draft(), source()).object_key)
    tampered = data.replace("海景餐饮".encode(), "海景酒店".encode(), 1)
    res = verify_file(tampered, service.signer)
    assert res.well_formed and not res.signature_ok and not res.hash_ok


def test_revoked_licence_is_reported_even_from_an_old_valid_copy(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    old_copy = local_store.get(issued.object_key)
    revoked = service.revoke(issued.license_id, "吊销")
    with sessions() as s:
        res_old = verify_file(old_copy, service.signer, session=s)
        res_new = verify_file(local_store.get(revoked.object_key), service.signer, session=s)
    for res in (res_old, res_new):
        assert res.signature_ok and res.hash_ok and res.revoked and res.status == "revoked" and not res.ok
    assert res_old.document_status == "valid"


def test_superseded_version_is_not_ok(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    service.amend(issued.license_id, {"license_number": "330322000099999"})
    with sessions() as s:
        res = verify_file(local_store.get(issued.object_key), service.signer, session=s)
    assert res.signature_ok and not res.ok and res.current_version == 2
    assert any("superseded" in p for p in res.problems)


def test_old_licences_verify_after_key_rotation(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session], key_dir: Path
) -> None:
    before = service.issue(business_draft(), source("a"))
    new_key = rotate(key_dir, Algorithm.ed25519)
    service.signer = load_keyring(key_dir)
    after = service.issue(business_draft(), source("b"))
    assert after.key_id == new_key != before.key_id
    ring = load_keyring(key_dir)
    with sessions() as s:
        for issued in (before, after):
            res = verify_file(local_store.get(issued.object_key), ring, session=s)
            assert res.ok, res.problems
    # after the old private key is retired, its public key still verifies
    (key_dir / f"{before.key_id}.key.pem").unlink()
    assert verify_file(local_store.get(before.object_key), load_keyring(key_dir)).signature_ok
    # a key ring without the old public key cannot vouch for the old licence
    (key_dir / f"{before.key_id}.pub.pem").unlink()
    res = verify_file(local_store.get(before.object_key), load_keyring(key_dir))
    assert not res.signature_ok and any("unknown key" in p for p in res.problems)


def test_signature_from_a_foreign_key_with_our_key_id_fails(
    service: LicenseService, local_store: LocalStore, tmp_path: Path
) -> None:
    data = local_store.get(service.issue(business_draft(), source()).object_key)
    other_dir = tmp_path / "other"
    rotate(other_dir)
    assert not verify_file(data, load_keyring(other_dir)).signature_ok


def _snapshot(sessions: sessionmaker[Session]) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    with sessions() as s:
        for table in (LicenseIndexEntry, LicenseVersionEntry, LicenseFileEntry):
            cols = [c.key for c in table.__table__.columns]
            rows = s.scalars(select(table)).all()
            out[table.__tablename__] = sorted(tuple(getattr(r, c) for c in cols) for r in rows)
    return out


def test_reindex_rebuilds_the_index_exactly(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    a = service.issue(business_draft(), source("a")).license_id
    service.issue(business_draft(license_type_code="1102", surface={"taxpayer_name": "x"}), source("b"))
    service.suspend(a, "check")
    service.revoke(a, "closed")
    before = _snapshot(sessions)
    assert len(before["license_version"]) == 4
    with sessions() as s:
        s.execute(LicenseIndexEntry.__table__.delete())
        s.execute(LicenseVersionEntry.__table__.delete())
        s.commit()
    assert _snapshot(sessions)["license_index"] == []
    with sessions() as s:
        assert reindex(s, local_store, keyring=service.signer) == 4
        s.commit()
    assert _snapshot(sessions) == before


def test_reindex_refuses_an_object_under_the_wrong_key(
    service: LicenseService, local_store: LocalStore, sessions: sessionmaker[Session]
) -> None:
    issued = service.issue(business_draft(), source())
    local_store.put(object_key(issued.license_id, 7), local_store.get(issued.object_key))
    with sessions() as s, pytest.raises(ValueError, match="another licence version"):
        reindex(s, local_store)


def test_index_rows_are_frozen_values(service: LicenseService, sessions: sessionmaker[Session]) -> None:
    from e_license_store.index import get_license

    issued = service.issue(business_draft(), source())
    with sessions() as s:
        row = get_license(s, issued.license_id)
    assert row is not None and row.updated_at.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = "revoked"  # type: ignore[misc]
