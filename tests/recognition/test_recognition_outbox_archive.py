"""The outbox is archived, never silently pruned: finished events past the archive age move with
their deliveries to compressed JSON Lines with a hash-chained manifest; open ones stay."""

from __future__ import annotations

import datetime as dt
import gzip
import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from hub.db import session_scope
from hub.models import OutboxEvent
from hub.settings import get_settings
from pipeline.housekeeping import archive_outbox
from recognition import delivery as dlv
from recognition import delivery_ops
from recognition.archive import read_archive, verify_archive
from recognition.tables import Delivery
from tests.recognition.rec_helpers import RESIDENT_ID, Receiver, World, allow_destination, auth, issue_business

HOLDERS = ["91330322MA2C8XYZ3M", "91330322MA2C8XYZ4N"]


def _age_everything(world: World, days: int) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with session_scope(world.engine) as s:
        s.execute(update(OutboxEvent).values(created_at=old))


def test_outbox_is_archived_never_silently_pruned(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    allow_destination(world.engine, "admin", receiver.origin)
    res = client.post("/v1/subscriptions", headers=auth(tokens["admin"]), json={
        "name": "all", "event_types": ["license.issued", "license.revoked"], "url": receiver.url})  # fmt: skip
    receiver.secret = res.json()["secret"]
    delivered = issue_business(world.service, "ent-arch-1", holder=HOLDERS[0])
    failing = issue_business(world.service, "ent-arch-2", holder=HOLDERS[1])
    with world.sessions() as s:
        keys = {e.subject: e.idempotency_key for e in s.scalars(select(OutboxEvent))}
    receiver.fail_ids = {keys[failing]}
    _age_everything(world, 200)
    dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(max_attempts=1, concurrency=1))  # one delivered, one dead
    recent = issue_business(world.service, "ent-arch-3", holder=HOLDERS[0])
    with world.sessions() as s:
        before = int(s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)

    report = archive_outbox("hk-1")
    # the world's licences (no subscriber) and the delivered one: archived; the dead letter and the
    # recent event stay (the first for an operator, the second for its archive age)
    assert report == {"files": 1, "events": before - 2, "deliveries": 1}
    with world.sessions() as s:
        left = {e.subject for e in s.scalars(select(OutboxEvent))}
        deliveries = {(d.event_type, d.status) for d in s.scalars(select(Delivery))}
    assert left == {failing, recent} and deliveries == {("license.issued", "dead")}
    directory = get_settings().home / "archive" / "outbox"
    assert verify_archive(directory) == []
    archived = {r["subject"]: r for r in read_archive(directory)}
    assert delivered in archived and failing not in archived
    assert [d["status"] for d in archived[delivered]["deliveries"]] == ["delivered"]
    # personal data masked as for a subscriber without personal:read
    person = archived[world.licenses["property"]]
    assert person["holder"] == "330322********1231" and person["payload"]["holder_name"] == "李**"
    text = "".join(gzip.decompress(p.read_bytes()).decode("utf-8") for p in directory.glob("*.jsonl.gz"))
    assert RESIDENT_ID not in text and "李小龙" not in text

    # nothing more to do: a second run archives nothing and keeps the manifest chain
    assert archive_outbox("hk-2") == {"files": 0, "events": 0, "deliveries": 0}
    # the dead letter, once skipped by an operator, is archived on the next run
    with session_scope(world.engine) as s:
        delivery_ops.skip(s, next(d.id for d in s.scalars(select(Delivery))))
    assert archive_outbox("hk-3")["events"] == 1
    assert verify_archive(directory) == [] and len((directory / "manifest.jsonl").read_text().splitlines()) == 2

    # tampering shows: an altered file, a removed manifest line
    [first, second] = (directory / "manifest.jsonl").read_text().splitlines()
    path = directory / json.loads(first)["file"]
    path.write_bytes(gzip.compress(b'{"id": 1}\n'))
    assert any("SHA-256" in p for p in verify_archive(directory))
    (directory / "manifest.jsonl").write_text(second + "\n")
    assert any("chain broken" in p for p in verify_archive(directory))
