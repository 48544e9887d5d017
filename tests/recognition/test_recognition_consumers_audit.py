"""Consumers and keys (hashed at rest, rotatable, revocable) and the hash-chained audit log."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from recognition import audit
from recognition.audit_cli import app as audit_app
from recognition.consumers import ConsumerError, add_consumer, authenticate, revoke, rotate_key
from recognition.consumers_cli import app as consumers_app
from recognition.scopes import InvalidScope
from recognition.tables import ApiKey, AuditEntry


def test_keys_are_hashed_at_rest_and_rotate_and_revoke(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _, token = add_consumer(s, "portal", ["licenses:read:*", "purpose:service_portal"])
    secret = token.split("_", 2)[2]
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM recognition_api_key")) for v in row)
    assert secret not in dump
    with session_scope(engine) as s:
        p = authenticate(s, token)
        assert p is not None and p.name == "portal" and p.scopes.can_read_type("1101")
        assert authenticate(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert authenticate(s, "Bearer nonsense") is None
    with session_scope(engine) as s:
        new = rotate_key(s, "portal")
    with session_scope(engine) as s:
        assert authenticate(s, token) is None  # old key revoked by rotation
        assert authenticate(s, new) is not None
    with session_scope(engine) as s:
        kept = rotate_key(s, "portal", keep_old=True)
    with session_scope(engine) as s:
        assert authenticate(s, new) is not None and authenticate(s, kept) is not None
        assert revoke(s, "portal") == 2
    with session_scope(engine) as s:
        assert authenticate(s, kept) is None
        with pytest.raises(ConsumerError):
            rotate_key(s, "portal")
        with pytest.raises(InvalidScope):
            add_consumer(s, "bad", ["licenses:write"])
    engine.dispose()


def test_consumers_cli(hub_db_url: str) -> None:
    runner = CliRunner()
    res = runner.invoke(consumers_app, ["add", "tax_bureau", "--scope", "licenses:read:1101", "--scope", "purpose:tax"])
    assert res.exit_code == 0, res.output
    token = json.loads(res.stdout)["api_key"]
    listed = [json.loads(line) for line in runner.invoke(consumers_app, ["list"]).stdout.splitlines()]
    assert listed[0]["consumer"] == "tax_bureau" and listed[0]["scopes"] == ["licenses:read:1101", "purpose:tax"]
    assert token not in runner.invoke(consumers_app, ["list"]).stdout
    key_id = listed[0]["keys"][0]["key_id"]
    rotated = json.loads(runner.invoke(consumers_app, ["rotate", "tax_bureau"]).stdout)["api_key"]
    assert rotated != token
    res = runner.invoke(consumers_app, ["revoke", "tax_bureau", "--key", key_id])
    assert json.loads(res.stdout)["revoked_keys"] == 0  # rotation already revoked it
    res = runner.invoke(consumers_app, ["revoke", "tax_bureau"])
    assert json.loads(res.stdout)["revoked_keys"] == 1
    assert runner.invoke(consumers_app, ["add", "x", "--scope", "bogus"]).exit_code == 1


def _records(n: int, start: int = 0) -> list[audit.AuditRecord]:
    return [
        audit.AuditRecord(consumer="portal", action="read", resource=f"GET /v1/licenses/L{i}", subject=f"L{i}",
                          outcome="ok", fields=["metadata"], purpose="service_portal", detail={"i": i})
        for i in range(start, start + n)
    ]  # fmt: skip


def _drop_append_only_guard(engine: Engine) -> None:
    """What an attacker with DDL rights would do first; the hash chain must still catch the edits."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER recognition_audit_no_update"))
            conn.execute(text("DROP TRIGGER recognition_audit_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER recognition_audit_append_only ON recognition_audit"))


def _check_chain_and_tampering(url: str) -> None:
    engine = make_engine(url)
    audit.write_now(engine, _records(5))
    # the database refuses edits and deletions outright
    for stmt in (update(AuditEntry).where(AuditEntry.seq == 1).values(subject="x"),
                 AuditEntry.__table__.delete().where(AuditEntry.seq == 1)):  # fmt: skip
        with pytest.raises(DBAPIError, match="append-only"), session_scope(engine) as s:
            s.execute(stmt)
    _drop_append_only_guard(engine)
    # group commit from many threads: numbering stays gap-free and the chain intact
    writer = audit.AuditWriter(engine)
    results: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for rec in _records(10, 100 + 10 * k):
            seq = writer.write_sync(rec)
            with lock:
                results.append(seq)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert sorted(results) == list(range(6, 66))
    assert writer.commits <= 60
    report = audit.verify(engine)
    assert report.ok and report.checked == 65 and report.head_seq == 65, report.problems

    # altered entry
    with session_scope(engine) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(subject="L999"))
    report = audit.verify(engine)
    assert not report.ok and any("entry 3: content altered" in p for p in report.problems)
    with session_scope(engine) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(subject="L2"))
    assert audit.verify(engine).ok

    # reordered entries: swap the content of 10 and 11, keeping their numbers
    with session_scope(engine) as s:
        a = s.get(AuditEntry, 10)
        b = s.get(AuditEntry, 11)
        assert a is not None and b is not None
        va = {c: getattr(a, c) for c in ("at", "resource", "subject", "detail", "prev_hash", "hash")}
        vb = {c: getattr(b, c) for c in ("at", "resource", "subject", "detail", "prev_hash", "hash")}
        s.execute(update(AuditEntry).where(AuditEntry.seq == 10).values(**vb))
        s.execute(update(AuditEntry).where(AuditEntry.seq == 11).values(**va))
    report = audit.verify(engine)
    assert not report.ok and any("entry 10" in p for p in report.problems)
    with session_scope(engine) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 10).values(**va))
        s.execute(update(AuditEntry).where(AuditEntry.seq == 11).values(**vb))
    assert audit.verify(engine).ok

    # removed entry in the middle, then a cut-off tail
    with session_scope(engine) as s:
        s.execute(AuditEntry.__table__.delete().where(AuditEntry.seq == 20))
    report = audit.verify(engine)
    assert not report.ok and any("missing" in p for p in report.problems)
    with session_scope(engine) as s:
        s.execute(AuditEntry.__table__.delete().where(AuditEntry.seq >= 20))
    report = audit.verify(engine)
    assert not report.ok and any("tail removed" in p for p in report.problems)
    with session_scope(engine) as s:
        assert s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) == 19
    engine.dispose()


def test_audit_chain_detects_altered_reordered_removed_sqlite(hub_db_url: str) -> None:
    _check_chain_and_tampering(hub_db_url)


@pytest.mark.postgres
def test_audit_chain_detects_altered_reordered_removed_postgres(pg_hub_db_url: str) -> None:
    _check_chain_and_tampering(pg_hub_db_url)


def test_audit_cli_verify_exit_code(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    audit.write_now(engine, _records(3))
    _drop_append_only_guard(engine)
    runner = CliRunner()
    res = runner.invoke(audit_app, ["verify"])
    assert res.exit_code == 0 and json.loads(res.stdout)["entries"] == 3
    with session_scope(engine) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(outcome="denied"))
    res = runner.invoke(audit_app, ["verify"])
    assert res.exit_code == 1 and "entry 2" in res.stdout
    engine.dispose()


def test_api_key_rows_keep_no_secret(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        _, token = add_consumer(s, "p", ["licenses:verify"])
        row = s.scalars(select(ApiKey)).one()
        assert len(row.secret_sha256) == 64 and row.secret_sha256 not in token
    engine.dispose()
