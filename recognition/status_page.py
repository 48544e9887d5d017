"""What the public case status page (办件进度公开查询) shows of a case, and nothing more.

Anyone holding the receipt may look a case up by its supervision code (统一服务监管码), so
the page releases only what the receipt's holder needs to follow it: the item, when the
window received it, its status, every department's stage with its steps and their times,
who holds it now, and the applicant's name as the hub's masking policy shows it
(:func:`hub.masking.mask`: a person's or a sole proprietor's name masked, an enterprise's kept).
Never a code of a person, a phone, an address, the subject, a department's notes, the
materials or the reasons: those may name people, and the window and the API (with a key) show
them. A light is shown only where e-supervision keeps a clock that runs (or stands still for a
correction): a stage not started or ended shows none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from cases.catalogue import WINDOW, load_catalogue
from cases.schemas import CaseOut
from hub.settings import get_settings

#: what the status page releases (the audit entry of a read names them)
RELEASED_FIELDS = ["item", "status", "stages", "steps", "held_by", "lights", "applicant_name_masked"]
#: the clock states whose light is shown (:mod:`cases.clock`)
SHOWN_CLOCKS = ("running", "stopped")
CASE_CLOCK = "*"


@dataclass(frozen=True)
class LightFacts:
    """A running clock's light (电子监察亮灯): green, yellow, red or unknown (the calendar ends)."""

    light: str
    state: str
    used: int
    promised_limit: int
    promised_due: str | None


@dataclass(frozen=True)
class StepFacts:
    step: str
    #: when it happened, in the hub's timezone (YYYY-MM-DD HH:MM)
    at: str


@dataclass(frozen=True)
class StageFacts:
    """One department's stage (环节) of the case, or the window's steps (``department == "window"``)."""

    department: str
    department_name: str
    stage_name: str
    state: str
    steps: list[StepFacts] = field(default_factory=list)
    light: LightFacts | None = None


@dataclass(frozen=True)
class CaseFacts:
    code: str
    printed_code: str
    item_code: str
    item_name: str
    status: str
    received_at: str
    applicant_name: str
    window: StageFacts
    stages: list[StageFacts]
    #: department names (or ``applicant`` / ``window``) holding the case now
    held_by: list[str]
    #: the case's own clock (its promised limit as a whole)
    light: LightFacts | None = None

    def audit_detail(self) -> dict[str, Any]:
        lights = {s.department: s.light.light for s in self.stages if s.light is not None}
        if self.light is not None:
            lights[CASE_CLOCK] = self.light.light
        return {"status": self.status, "stages": len(self.stages), "held_by": self.held_by, "lights": lights}


def _local(value: dt.datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(ZoneInfo(get_settings().source_timezone)).strftime("%Y-%m-%d %H:%M")


def _department_name(code: str) -> str:
    found = load_catalogue().departments.get(code)
    return found.name if found is not None else code


def _light(clock: Any) -> LightFacts | None:
    if clock is None or clock.state not in SHOWN_CLOCKS:
        return None
    due = clock.promised_due.isoformat() if clock.promised_due is not None else None
    return LightFacts(clock.light, clock.state, int(clock.used), int(clock.promised_limit), due)


def facts(case: CaseOut, clocks: Mapping[str, Any] | None = None) -> CaseFacts:
    """The page's facts of ``case`` as :func:`cases.views.case_out` gives it *masked* (``personal=False``),
    with the lights of its clocks (``case_clock`` rows by department, ``*`` the case's own)."""
    clocks = clocks or {}
    if not case.masked:
        raise ValueError("the status page is built from the masked view of a case only")
    steps: dict[str, list[StepFacts]] = {}
    for s in case.timeline:
        steps.setdefault(s.department, []).append(StepFacts(step=s.step, at=_local(s.occurred_at)))
    stages = [
        StageFacts(department=st.department, department_name=_department_name(st.department), stage_name=st.name,
                   state=st.state, steps=steps.get(st.department, []), light=_light(clocks.get(st.department)))
        for st in case.stages
    ]  # fmt: skip
    window = StageFacts(department=WINDOW, department_name="", stage_name="", state="", steps=steps.get(WINDOW, []))
    return CaseFacts(
        code=case.code, printed_code=case.printed_code, item_code=case.item.code, item_name=case.item.name,
        status=case.status, received_at=_local(case.received_at), applicant_name=case.applicant.name or "",
        window=window, stages=stages,
        held_by=[h if h in (WINDOW, "applicant") else _department_name(h) for h in case.held_by],
        light=_light(clocks.get(CASE_CLOCK)),
    )  # fmt: skip
