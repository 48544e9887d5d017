"""The demo's story on a small city: after the feeds have run (their task bodies, in the main job's
order), the joint registration finds the legal representative's identity card and the premises'
property certificate as licences, commerce then tax and public security conclude through their
approval systems and case-step feeds, and the project approval reads the land-use pre-review
opinion without paper and is played out by the development-and-reform commission's approval platform,
its steps pulled through the commission's case-step feed — the printed timelines say so, with
personal data masked. A second demo on the same hub tells the story again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from cases.tables import CaseMaterial, CaseRecord, CaseStep
from hub.airflow_env import connection_uri_env
from hub.db import get_engine, session_scope
from hub.models import SyncState
from mappings.engine import load_all
from pipeline import steps
from rigs.connections import sandbox_connections
from rigs.demo_story import run_story
from rigs.main_job import ordered
from sandbox.generator import Sizes
from sandbox.runtime import start_sandboxes, summary


def _main_job() -> None:
    for wave in ordered(load_all()):
        for name in wave:
            out: Any = steps.extract(name, f"story-{name}")
            for step in (steps.map_batches, steps.validate, steps.resolve, steps.publish):
                out = step(name, out, f"story-{name}")


def test_the_demo_story_tells_both_cases(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with start_sandboxes(tmp_path / "sb", 2016, Sizes(persons=300, enterprises=60, properties=120)) as sb:
        connections = sandbox_connections(sb)
        for conn_id, conn in connections.items():
            key, value = connection_uri_env(conn_id, conn)
            monkeypatch.setitem(os.environ, key, value)
        _main_job()
        console = Console(record=True, width=200)
        assert run_story(summary(sb), connections, console)
        text = console.export_text()
        with session_scope(get_engine()) as s:  # every step each department took is on the timelines printed
            joint, project = s.scalars(select(CaseRecord).order_by(CaseRecord.id)).all()
            printed = {
                case.id: [(st.department, st.step) for st in s.scalars(select(CaseStep).where(
                    CaseStep.case_id == case.id).order_by(CaseStep.department, CaseStep.seq))]
                for case in (joint, project)
            }  # fmt: skip
        concluded = ["accepted", "in_review", "approved", "result_issued"]
        assert [step for d, step in printed[project.id] if d == "development_reform"] == concluded
        for department in ("commerce", "tax", "public_security"):
            assert [step for d, step in printed[joint.id] if d == department] == concluded
        # a second demo on the same hub and sandboxes tells it again, later on the simulated clock
        second = Console(record=True, width=200)
        assert run_story(summary(sb), connections, second), second.export_text()
    assert "joint registration (多证联办)" in text and "concluded" in text
    assert "project approval (用地预审 → 立项)" in text
    with session_scope(get_engine()) as s:
        joint, project, *again = s.scalars(select(CaseRecord).order_by(CaseRecord.id)).all()
        assert len(again) == 2 and {c.status for c in again} == {"concluded"}
        recognised = {
            (c.case_id, c.material_code)
            for c in s.scalars(select(CaseMaterial).where(CaseMaterial.provision == "licence"))
        }
        assert {(joint.id, "M03"), (joint.id, "M04"), (project.id, "M02")} <= recognised
        assert joint.status == "concluded" and project.status == "concluded"
        # the commission's platform decided the project; the hub read its steps through the feed
        steps = s.scalars(select(CaseStep).where(CaseStep.case_id == project.id).order_by(CaseStep.occurred_at)).all()
        commission = [st.step for st in steps if st.department == "development_reform"]
        assert commission == ["accepted", "in_review", "approved", "result_issued"]
        assert s.scalars(select(SyncState).where(SyncState.dataset == "case_steps",
                                                 SyncState.source.contains("development_reform"))).first()  # fmt: skip
        # no resident id and no full name of the parties in what the demo printed
        for code in (joint.applicant_code, *(p["code"] for p in (joint.parties or {}).values())):
            assert code not in text
