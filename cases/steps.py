"""The step vocabulary (办理环节) and how a case's timeline is read from its step log.

Every department reports its own steps, numbered by itself (``seq``); the window's steps are
the front desk's. Steps are placed on the timeline by the time they happened, whatever the
order they arrived in; a step that cannot have happened where its time puts it — approved
before the department accepted the case, a result before an approval, a decision while a
correction is outstanding — is *flagged* with the reason, never refused and never moved:
the log keeps what the department said. The flags are worked out from the whole log each
time it is read, so a step that arrives late and fills the gap clears the flag.

>>> t0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
>>> h = dt.timedelta(hours=1)
>>> log = [
...     LoggedStep("window", 1, Step.RECEIVED, t0),
...     LoggedStep("window", 2, Step.ACCEPTED, t0),
...     LoggedStep("tax", 2, Step.APPROVED, t0 + 2 * h),
...     LoggedStep("tax", 1, Step.ACCEPTED, t0 + 3 * h),
... ]
>>> [(s.department, s.step.value, s.impossible) for s in place(log, received_at=t0)]  # doctest: +NORMALIZE_WHITESPACE
[('window', 'received', None), ('window', 'accepted', None),
 ('tax', 'approved', 'before_accepted'), ('tax', 'accepted', None)]
>>> tax = [s for s in place(log, received_at=t0) if s.department == "tax"]
>>> stage_state(tax, yields_licences=True), stage_state(tax, yields_licences=False)
('approved', 'concluded')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cases.catalogue import WINDOW


class Step(StrEnum):
    """What happened (the issue's vocabulary, plus the window's 不予受理 and 送达)."""

    #: 收件: the window received the application
    RECEIVED = "received"
    #: 受理: the window accepted the application; a department accepted its stage
    ACCEPTED = "accepted"
    #: 不予受理: the window refused the application (with reasons)
    NOT_ACCEPTED = "not_accepted"
    #: 分办: the hub handed the department its stage (recorded by the dispatch, later)
    DISPATCHED = "dispatched"
    #: 审查中
    IN_REVIEW = "in_review"
    #: 补正告知: everything missing, listed at once (一次性告知); the clock stops
    CORRECTION_REQUESTED = "correction_requested"
    #: 补正后恢复: the missing material arrived
    RESUMED = "resumed"
    #: 出具意见 (e.g. a participating department's opinion to the lead)
    OPINION_GIVEN = "opinion_given"
    #: 准予 / 批准
    APPROVED = "approved"
    #: 不予批准
    REJECTED = "rejected"
    #: 出证: the result (licence, decision) issued
    RESULT_ISSUED = "result_issued"
    #: 送达: picked up at the window or posted
    DELIVERED = "delivered"
    #: 撤回: the applicant withdrew
    WITHDRAWN = "withdrawn"
    #: 特别程序: a period the law excludes from the time limit begins (hearing, testing, inspection,
    #: expert review …: Administrative Licensing Law art. 45); the clock stops
    SUSPENDED = "suspended"
    #: the excluded period ends; the clock runs again
    SUSPENSION_ENDED = "suspension_ended"
    #: 延期: the limit extended once, with the organ head's approval and a reason (art. 42)
    EXTENDED = "extended"


#: What a department may report of its stage.
DEPARTMENT_STEPS = frozenset({
    Step.ACCEPTED, Step.IN_REVIEW, Step.CORRECTION_REQUESTED, Step.RESUMED, Step.OPINION_GIVEN, Step.APPROVED,
    Step.REJECTED, Step.RESULT_ISSUED, Step.SUSPENDED, Step.SUSPENSION_ENDED, Step.EXTENDED,
})  # fmt: skip
#: What the window may report after intake (intake itself writes received and its outcome).
WINDOW_STEPS = frozenset({Step.RESUMED, Step.DELIVERED, Step.WITHDRAWN})
#: Steps that need the department's acceptance before them.
_AFTER_ACCEPTANCE = frozenset({
    Step.IN_REVIEW, Step.CORRECTION_REQUESTED, Step.OPINION_GIVEN, Step.APPROVED, Step.REJECTED, Step.SUSPENDED,
    Step.EXTENDED,
})  # fmt: skip
_DECISIONS = frozenset({Step.APPROVED, Step.REJECTED})
_HALTED_BY_CORRECTION = frozenset({Step.IN_REVIEW, Step.OPINION_GIVEN, Step.APPROVED, Step.REJECTED})


@dataclass(frozen=True)
class LoggedStep:
    """A step as logged, with what reading the timeline found (``impossible``: why it cannot be there)."""

    department: str
    seq: int
    step: Step
    occurred_at: dt.datetime
    #: the log's own order (the row id): ties in time keep it
    order: int = 0
    arrived_out_of_order: bool = False
    impossible: str | None = None
    #: what the step carried: an excluded period, an extension's days, the missing materials …
    detail: Mapping[str, object] | None = field(default=None, compare=False)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def place(steps: Iterable[LoggedStep], *, received_at: dt.datetime) -> list[LoggedStep]:
    """The timeline: steps by the time they happened (then log order), each checked against its
    department's earlier steps; ``impossible`` names the first rule it breaks."""
    ordered = sorted(steps, key=lambda s: (_utc(s.occurred_at), s.order, s.department, s.seq))
    history: dict[str, list[Step]] = {}
    out: list[LoggedStep] = []
    received = _utc(received_at)
    for s in ordered:
        before = history.setdefault(s.department, [])
        reason = _impossible(s, before, history, received)
        out.append(replace(s, impossible=reason))
        before.append(s.step)
    return out


def _impossible(s: LoggedStep, before: Sequence[Step], history: Mapping[str, Sequence[Step]],
                received: dt.datetime) -> str | None:  # fmt: skip
    if _utc(s.occurred_at) < received and s.step is not Step.RECEIVED:
        return "before_received"
    if s.department == WINDOW:
        if s.step is Step.DELIVERED and not any(Step.RESULT_ISSUED in h for d, h in history.items() if d != WINDOW):
            return "delivered_before_result"
        return None
    if Step.WITHDRAWN in history.get(WINDOW, ()):
        return "after_withdrawal"
    if s.step in _AFTER_ACCEPTANCE and Step.ACCEPTED not in before:
        return "before_accepted"
    if s.step in _DECISIONS and any(b in _DECISIONS for b in before):
        return "decided_twice"
    if s.step is Step.RESULT_ISSUED and Step.APPROVED not in before and Step.REJECTED not in before:
        return "result_before_decision"
    if s.step is not Step.RESULT_ISSUED and Step.RESULT_ISSUED in before:
        return "after_result"
    open_corrections = before.count(Step.CORRECTION_REQUESTED) - before.count(Step.RESUMED)
    if s.step is Step.RESUMED and open_corrections <= 0:
        return "resumed_without_correction"
    if s.step in _HALTED_BY_CORRECTION and open_corrections > 0:
        return "while_correction_outstanding"
    open_suspensions = before.count(Step.SUSPENDED) - before.count(Step.SUSPENSION_ENDED)
    if s.step is Step.SUSPENSION_ENDED and open_suspensions <= 0:
        return "continued_without_suspension"
    if s.step in _DECISIONS and open_suspensions > 0:
        return "while_suspended"
    if s.step is Step.EXTENDED and Step.EXTENDED in before:
        return "extended_twice"
    return None


#: A stage's state, from its department's steps in time order.
WAITING, OPEN, CORRECTION, APPROVED, REJECTED, CONCLUDED = (
    "waiting", "open", "awaiting_correction", "approved", "rejected", "concluded",
)  # fmt: skip


def stage_state(steps: Sequence[LoggedStep], *, yields_licences: bool = False) -> str:
    """Where one department's stage stands: ``open``, ``awaiting_correction``, ``approved``,
    ``rejected`` or ``concluded`` (its result issued; a stage that issues nothing concludes when approved)."""
    kinds = [s.step for s in steps]
    if Step.RESULT_ISSUED in kinds:
        return REJECTED if Step.REJECTED in kinds and Step.APPROVED not in kinds else CONCLUDED
    if Step.REJECTED in kinds:
        return REJECTED
    if Step.APPROVED in kinds:
        return APPROVED if yields_licences else CONCLUDED
    if kinds.count(Step.CORRECTION_REQUESTED) > kinds.count(Step.RESUMED):
        return CORRECTION
    return OPEN


@dataclass(frozen=True)
class StageView:
    department: str
    after: tuple[str, ...]
    state: str


def stages(timeline: Sequence[LoggedStep], dispatch: Mapping[str, tuple[tuple[str, ...], bool]]) -> list[StageView]:
    """Each dispatched department's stage: ``dispatch`` maps a department to (its predecessors,
    whether it issues licences). A stage whose predecessors have not concluded is ``waiting``
    unless its department has already reported something."""
    by_dept: dict[str, list[LoggedStep]] = {}
    for s in timeline:
        by_dept.setdefault(s.department, []).append(s)
    raw = {d: stage_state(by_dept.get(d, []), yields_licences=y) for d, (_, y) in dispatch.items()}
    out = []
    for dept, (after, _) in dispatch.items():
        state = raw[dept]
        if state == OPEN and not by_dept.get(dept) and any(raw.get(a) != CONCLUDED for a in after):
            state = WAITING
        out.append(StageView(dept, after, state))
    return out


#: Case statuses (``case_record.status``).
CASE_STATUSES = (
    "awaiting_correction", "not_accepted", "in_progress", "approved", "rejected", "concluded", "withdrawn",
)  # fmt: skip


def case_status(intake_outcome: str, timeline: Sequence[LoggedStep], stage_views: Sequence[StageView]) -> str:
    """The case's status: what its window steps and its stages add up to."""
    window = [s.step for s in timeline if s.department == WINDOW]
    if Step.WITHDRAWN in window:
        return "withdrawn"
    if intake_outcome == "not_accepted":
        return "not_accepted"
    if not stage_views:  # not accepted yet: waiting for the applicant's correction
        return "awaiting_correction"
    states = {v.state for v in stage_views}
    if REJECTED in states:
        return "rejected"
    if states == {CONCLUDED}:
        return "concluded"
    if states <= {CONCLUDED, APPROVED}:
        return "approved"
    return "in_progress"


def held_by(status: str, stage_views: Sequence[StageView], *, delivered: bool = False) -> list[str]:
    """Who holds the case now: the departments whose stage is open (or approved, its result not yet
    issued), ``applicant`` while a correction is outstanding, ``window`` while the result waits to
    be picked up or posted; nobody once it is closed.

    >>> views = [StageView("commerce", (), APPROVED), StageView("tax", ("commerce",), WAITING)]
    >>> held_by("in_progress", views), held_by("concluded", [StageView("tax", (), CONCLUDED)])
    (['commerce'], ['window'])
    """
    if status in ("withdrawn", "not_accepted", "rejected") or (status == "concluded" and delivered):
        return []
    if status == "awaiting_correction":
        return ["applicant"]
    holders = [v.department for v in stage_views if v.state in (OPEN, APPROVED)]
    if any(v.state == CORRECTION for v in stage_views):
        holders.append("applicant")
    if status == "concluded":
        return [WINDOW]
    return holders
