"""Kill points (崩溃注入点): named places where a process may be made to die with SIGKILL.

The crash harness (``python -m bench crash``) kills the main job at random places and checks
that a re-run converges to what a clean run reaches. The product marks the places worth
killing with ``kill_point("name")``; each name is listed once in :data:`POINTS` with what a
kill there leaves behind.

Inert unless ``HUB_KILL_POINT=name:hits`` is set in the environment: then the ``hits``-th call
of ``kill_point(name)`` in this process sends SIGKILL to the process itself (no ``finally``,
no ``atexit``, no flush: a power cut). Unset, a call costs one dictionary lookup.
``HUB_KILL_POINT=tally`` kills nothing and counts every point's hits (:func:`tally`): how the
harness learns how often a clean run passes each point.

``HUB_KILL_ONCE=path`` makes the armed point fire once among all the processes that share the
environment: the first to reach it creates ``path`` and dies; the others, and every retry, find
the file and go on. That is how a point is armed through Airflow, whose task processes (a task's
retry too) all inherit one environment and count hits from zero each.

>>> kill_point("publish.batch")  # unarmed: nothing happens
>>> parse("publish.batch:3")
('publish.batch', 3)
>>> parse("publish.batch")
('publish.batch', 1)
>>> parse("tally")
('tally', 0)
"""

from __future__ import annotations

import os
import signal
import threading

#: the environment variable that arms one point: ``name:hits`` (``hits`` defaults to 1), or ``tally``
ENV = "HUB_KILL_POINT"
#: a file path: the armed point fires only in the process that creates it (once for all processes)
ONCE_ENV = "HUB_KILL_ONCE"
TALLY = "tally"

#: every kill point, with what a kill there interrupts (the harness chooses among these)
POINTS: dict[str, str] = {
    "extract.batch_staged": "extract: a batch is staged, its staged-batch entry and watermark not yet committed",
    "extract.batch_committed": "extract: a batch and its watermark are committed, later batches not yet read",
    "map.batch": "map: a batch's mapped records are staged, the next batch not yet mapped",
    "validate.batch": "validate: a batch's quarantine and results are committed, its accepted rows not yet staged",
    "resolve.bulk_write": "resolve: identities and links inserted in the batch's transaction, not committed",
    "resolve.before_commit": "resolve: a batch resolved and flushed, its transaction not yet committed",
    "resolve.after_commit": "resolve: a batch's identities committed, its resolved records not yet staged",
    "publish.batch": "publish: a batch's licences issued and indexed, the next batch not yet issued",
    "license.stored_not_indexed": "licence store: versions written to the store, index and outbox not committed",
    "publish.before_mark": "publish: every licence issued, the staged batches not yet marked published",
    "delivery.sent_not_recorded": "delivery worker: pushes sent and answered, their outcome not yet recorded",
    "delivery.recorded": "delivery worker: a round's outcomes recorded, the next round not yet begun",
    "case_steps.logged": "case-step task: a frame's steps and their events written, its cases not yet settled, "
    "nothing committed",
    "case_steps.committed": "case-step task: a frame's steps and settled cases committed, the next frame not yet read",
    "supervision.written": "supervision task: changes of light logged and announced, clocks written, not committed",
    "supervision.committed": "supervision task: the clocks, changes of light and their events committed, the task "
    "not yet finished",
    "api.audited": "API: a request's audit entry committed, its answer not yet sent",
}

_lock = threading.Lock()
_hits: dict[str, int] = {}
_armed: tuple[str, int] | None = None
_read_from: str | None = None


def parse(value: str) -> tuple[str, int]:
    """``name:hits`` → (name, hits); ``hits`` is 1 when absent."""
    name, _, hits = value.partition(":")
    if name.strip() == TALLY:
        return TALLY, 0
    return name.strip(), int(hits) if hits.strip() else 1


def armed() -> tuple[str, int] | None:
    """The point and hit count this process is armed with (read from the environment, cached)."""
    global _armed, _read_from
    value = os.environ.get(ENV)
    if value != _read_from:
        _read_from = value
        _armed = parse(value) if value else None
        if _armed is not None and _armed[0] not in POINTS and _armed[0] != TALLY:
            raise ValueError(f"{ENV}={value!r}: no kill point named {_armed[0]!r}; have {sorted(POINTS)}")
        _hits.clear()
    return _armed


def kill_point(name: str) -> None:
    """Die here with SIGKILL when this process is armed with ``name`` and this is the chosen hit."""
    target = armed()
    if target is None or target[0] not in (name, TALLY):
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if target[0] == TALLY or _hits[name] < target[1]:
            return
    once = os.environ.get(ONCE_ENV)
    if once:
        try:
            fd = os.open(once, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # fired already, in this process or another: inert from now on
        os.write(fd, f"{name}:{target[1]} pid {os.getpid()}\n".encode())
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def tally() -> dict[str, int]:
    """Hits of each point so far in this process (counted only when armed with ``tally`` or a point)."""
    with _lock:
        return dict(_hits)
