"""The API killed between the audit write and the answer (kill point ``api.audited``): the window,
which got no answer, asks again with the same idempotency key and gets the same case, as a replay;
the audit holds both attempts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.bench_crash import INTAKES, ApiServer, WindowRun, _free_port, window_client, window_problems
from hub.db import get_engine, session_scope
from recognition.consumers import add_consumer
from recognition.scopes import CASES_WRITE


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_api_audited_a_lost_answer_asked_again_with_the_same_key_gets_the_same_case_audited_twice(
    hub_db_url: str, tmp_path: Path
) -> None:
    db = Path(hub_db_url.removeprefix("sqlite:///"))
    with session_scope(get_engine()) as session:
        _, token = add_consumer(session, "window", [CASES_WRITE])
    get_engine().dispose()
    shutil.copy(db, tmp_path / "snapshot.db")
    api = ApiServer(dict(os.environ), _free_port(), tmp_path / "api.log")
    try:
        reference = WindowRun()
        api.start()
        window_client(api, token, tmp_path / "done", reference)
        api.stop()
        assert reference.error is None and reference.died == []
        assert [status for status, _ in reference.answers.values()] == [201] * INTAKES

        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copy(tmp_path / "snapshot.db", db)  # the same hub again, the API armed on the third intake
        run = WindowRun()
        api.start("api.audited:3")
        window_client(api, token, tmp_path / "done", run)
        api.stop()
        assert run.error is None and run.died == [2]  # the third intake's answer was lost, asked again
        status, answer = run.answers[2]
        assert status == 200 and answer["replayed"] is True
        assert window_problems(reference, run, db) == []  # the same cases; audited ok, then replayed
        # what the check looks at: the lost answer's case audited twice, every other once
        broken = WindowRun(answers=run.answers, died=[])
        assert window_problems(reference, broken, db) != []
    finally:
        api.stop()
