"""The figures supervisors report, from the stored clocks and the step log; `hub cases stats`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cases import intake, service, supervision
from cases.cli import app
from cases.schemas import IntakeIn, MissingIn, StepIn
from cases.stats import _row, figures
from cases.steps import Step
from tests.cases import world as w
from tests.cases.world import World, joint_registration

CST = dt.timezone(dt.timedelta(hours=8))
runner = CliRunner()


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=CST)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = w.build(url, tmp_path)
    yield built
    built.engine.dispose()


def _commerce(city: World, *steps: tuple[Step, int]) -> str:
    """A joint registration received on 16 November; commerce reports ``steps`` (kind, day)."""
    with city.sessions() as s:
        body = IntakeIn.model_validate(joint_registration(received_at=at(16, 9).isoformat()))
        code = intake.take_in(s, body, actor="window", now=at(16, 9)).case.code
        for seq, (kind, day) in enumerate(steps, start=1):
            missing = [MissingIn(name="股东会决议", reason="未签字")] if kind is Step.CORRECTION_REQUESTED else None
            body_step = StepIn(seq=seq, step=kind, occurred_at=at(day), missing=missing)
            service.record_step(s, code, "commerce", body_step, actor="commerce", now=at(day, 11))
        s.commit()
    return code


def _three_cases(city: World) -> None:
    _commerce(city, (Step.ACCEPTED, 16), (Step.APPROVED, 16))  # the same day: on the spot
    _commerce(  # one working day, a correction, then one more: 2 of the promised 1
        city, (Step.ACCEPTED, 16), (Step.CORRECTION_REQUESTED, 17), (Step.RESUMED, 19), (Step.APPROVED, 20)
    )
    _commerce(city, (Step.ACCEPTED, 16))  # still open
    with city.sessions() as s:
        supervision.recompute_lights(s, today=dt.date(2026, 11, 18))
        s.commit()


def test_figures_by_department(city: World) -> None:
    _three_cases(city)
    with city.sessions() as s:
        rows = {r.key: r for r in figures(s, since=dt.date(2026, 11, 1), until=dt.date(2026, 11, 30), by="department")}
    commerce = rows["commerce"]
    assert (commerce.received, commerce.concluded, commerce.on_the_spot, commerce.early, commerce.overdue) == (
        3, 2, 1, 1, 2,
    )  # fmt: skip
    assert (commerce.median_days, commerce.p90_days) == (1.0, 1.8)
    assert commerce.corrections_per_case == round(1 / 3, 4)
    assert (commerce.on_the_spot_rate, commerce.early_rate) == (0.5, 0.5)
    tax = rows["tax"]
    assert (tax.received, tax.concluded, tax.overdue, tax.median_days, tax.on_the_spot_rate) == (3, 0, 0, None, None)
    assert rows["*"].received == 9 and rows["*"].concluded == 2


def test_figures_by_item_and_period(city: World) -> None:
    _three_cases(city)
    with city.sessions() as s:
        [item, total] = figures(s, since=dt.date(2026, 11, 16), until=dt.date(2026, 11, 16), by="item")
        assert item.key == "XK00101001" and item.received == 3 and total.key == "*"
        assert item.concluded == 0  # tax and the seal filing have not started: no case is concluded
        assert figures(s, since=dt.date(2026, 11, 17), until=dt.date(2026, 11, 30)) == []
        with pytest.raises(ValueError, match="before"):
            figures(s, since=dt.date(2026, 11, 30), until=dt.date(2026, 11, 1))


def test_cli_prints_a_table_or_json_lines(city: World) -> None:
    _three_cases(city)
    november = ["--since", "2026-11-01", "--until", "2026-11-30"]
    res = runner.invoke(app, ["stats", *november, "--by", "department", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    commerce = next(x for x in lines if x["key"] == "commerce")
    assert commerce["received"] == 3 and commerce["early_rate"] == 0.5 and commerce["p90_days"] == 1.8
    table = runner.invoke(app, ["stats", "--since", "2026-11-01", "--until", "2026-11-30"])
    assert table.exit_code == 0 and "XK00101001" in table.stdout and "received" in table.stdout
    bad = runner.invoke(app, ["stats", "--since", "2026-11-30", "--until", "2026-11-01"])
    assert bad.exit_code == 2 and "before" in bad.stderr
    assert runner.invoke(app, ["stats", "--by", "month"]).exit_code == 2


@settings(max_examples=100, deadline=None)
@given(
    clocks=st.lists(
        st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 20), st.integers(0, 5)), min_size=1, max_size=60
    )
)
def test_figures_from_counts_equal_figures_over_the_clocks(clocks: list[tuple[bool, int, int, int]]) -> None:
    """The grouped counts the database returns give what the clocks one by one give."""
    frame = pd.DataFrame(
        [(int(e), u, int(u < limit), int(late > 0)) for e, u, limit, late in clocks],
        columns=["ended", "used", "early", "late"],
    )
    counted = frame.groupby(["ended", "used", "early", "late"]).size().reset_index(name="n")
    row = _row("k", "name", counted, corrections=3)
    done = [(u, limit) for e, u, limit, _ in clocks if e]
    used = np.array([u for u, _ in done])
    assert (row.received, row.concluded) == (len(clocks), len(done))
    assert row.on_the_spot == sum(u == 0 for u, _ in done) and row.early == sum(u < limit for u, limit in done)
    assert row.overdue == sum(late > 0 for *_, late in clocks)
    assert row.median_days == (float(np.median(used)) if done else None)
    assert row.p90_days == (float(np.percentile(used, 90)) if done else None)
    assert row.corrections_per_case == round(3 / len(clocks), 4)
