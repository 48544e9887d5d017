"""The verification page remembers a licence version's verified objects for a while (VerifiedVersions):
a repeat view reads the index but not the store; the status is the index's on every view; after the
time-to-live the objects are read and checked again, so a rewritten object is still caught; versions
without a file or without a recorded object hash are never remembered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat

import pytest

from e_license_store.files import FileBinding
from e_license_store.index import LicenseIndexRow
from e_license_store.model import Envelope, object_key
from e_license_store.render import ensure_file
from e_license_store.verify import IntegrityFailure
from recognition.directory import LicenseDirectory, license_by_id_dbapi
from recognition.verify_page import VerifiedVersions
from tests.recognition.rec_helpers import World

TODAY = dt.date(2026, 12, 3)


class Counting:
    """A licence directory that counts the store reads of the page."""

    def __init__(self, directory: LicenseDirectory) -> None:
        self.directory = directory
        self.reads = 0

    def envelope(self, row: LicenseIndexRow) -> Envelope:
        self.reads += 1
        return self.directory.envelope(row)

    def file_binding(self, row: LicenseIndexRow) -> FileBinding | None:
        self.reads += 1
        return self.directory.file_binding(row)


def _row(world: World, lid: str) -> LicenseIndexRow:
    conn = world.engine.raw_connection()
    try:
        row = license_by_id_dbapi(conn, world.engine.dialect, lid)
    finally:
        conn.close()
    assert row is not None
    return row


def test_a_repeat_view_reads_the_store_once_until_the_time_to_live_ends(world: World) -> None:
    lid = world.licenses["property"]
    ensure_file(lid, store=world.store, sessions=world.sessions, keyring=world.keyring)
    row = _row(world, lid)
    assert row.object_sha256 is not None
    now = [0.0]
    remembered = VerifiedVersions(ttl=60.0, clock=lambda: now[0])
    reader = Counting(LicenseDirectory(world.store, world.keyring))

    first = remembered.facts(reader, row, row, TODAY)
    assert reader.reads == 2 and first.status == "valid" and first.holder_name == "李**"
    assert remembered.facts(reader, row, row, TODAY) == first and reader.reads == 2
    # what the index says is read on every view: a suspension shows at once, without the store
    suspended = dataclasses.replace(row, status="suspended")
    assert remembered.facts(reader, suspended, row, TODAY).status == "suspended" and reader.reads == 2
    assert remembered.facts(reader, row, row, dt.date(2099, 1, 1)).status == "valid"  # no end date
    assert (remembered.hits, remembered.misses) == (3, 1)

    # the object rewritten in the store: the next read after the time-to-live refuses it
    path = world.store.root / "objects" / object_key(lid, 1)
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    path.write_bytes(path.read_bytes().replace("李小龙".encode(), "李大龙".encode()))
    now[0] = 59.0
    assert remembered.facts(reader, row, row, TODAY) == first and reader.reads == 2
    now[0] = 61.0
    with pytest.raises(IntegrityFailure):
        remembered.facts(reader, row, row, TODAY)
    with pytest.raises(IntegrityFailure):  # and nothing was remembered of it
        remembered.facts(reader, row, row, TODAY)


def test_versions_without_a_file_or_a_recorded_hash_are_read_every_time(world: World) -> None:
    remembered = VerifiedVersions(ttl=60.0, clock=lambda: 0.0)
    reader = Counting(LicenseDirectory(world.store, world.keyring))
    no_file = _row(world, world.licenses["tax"])  # never rendered: a file may come any moment
    for _ in range(2):
        assert remembered.facts(reader, no_file, no_file, TODAY).file_sha256 is None
    assert reader.reads == 4
    lid = world.licenses["business"]
    ensure_file(lid, store=world.store, sessions=world.sessions, keyring=world.keyring)
    unrecorded = dataclasses.replace(_row(world, lid), object_sha256=None)  # its seal is checked instead
    for _ in range(2):
        assert remembered.facts(reader, unrecorded, unrecorded, TODAY).file_sha256 is not None
    assert reader.reads == 8 and remembered.hits == 0
