"""The open clocks by department and light (督办看板), as the supervision task last counted them: what
``/metrics`` and the supervision API show, read from a small table the task rewrites
(:func:`count_open`), so a scrape never scans the cases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cases import clock as ck
from cases.supervision_tables import CaseClock, CaseLightGauge
from hub.models import utcnow


def open_by_light(session: Session) -> dict[tuple[str, str], int]:
    """Open clocks by (department, light): what the ``/metrics`` gauges show (``*``: cases)."""
    rows = session.execute(
        select(CaseClock.department, CaseClock.light, func.count())
        .where(CaseClock.state != ck.ENDED)
        .group_by(CaseClock.department, CaseClock.light)
    ).all()
    return {(d, light): int(n) for d, light, n in rows}


def count_open(
    session: Session,
    today: dt.date,
    *,
    running: tuple[Sequence[str], npt.NDArray[np.int8], npt.NDArray[np.int64]] | None = None,
) -> None:
    """Store :func:`open_by_light` for ``/metrics`` (every department and light, zeros included).

    ``running``: the running clocks as the task has just lit them, in groups (each group's
    department, light code and number of clocks); then only the clocks not running are counted
    in SQL.
    """
    if running is None:
        counted = open_by_light(session)
    else:
        rows = session.execute(
            select(CaseClock.department, CaseClock.light, func.count())
            .where(CaseClock.state.in_([ck.NOT_STARTED, ck.STOPPED]))
            .group_by(CaseClock.department, CaseClock.light)
        ).all()
        counted = {(d, light): int(n) for d, light, n in rows}
        departments, codes, clocks = running
        which, names = pd.factorize(pd.Series(departments, dtype=object))
        counts = np.bincount(
            which * len(ck.LIGHTS) + codes, weights=clocks, minlength=len(names) * len(ck.LIGHTS)
        ).astype(np.int64)
        for i, n in enumerate(counts.tolist()):
            if n:
                key = (str(names[i // len(ck.LIGHTS)]), ck.LIGHTS[i % len(ck.LIGHTS)])
                counted[key] = counted.get(key, 0) + n
    session.execute(delete(CaseLightGauge))
    departments_all = {d for d, _ in counted} | {ck.CASE}
    now = utcnow()
    session.execute(
        insert(CaseLightGauge),
        [
            {"department": d, "light": light, "open_clocks": counted.get((d, light), 0), "as_of": today,
             "counted_at": now}
            for d in sorted(departments_all) for light in (ck.GREEN, ck.YELLOW, ck.RED, ck.UNKNOWN)
        ],
    )  # fmt: skip
    session.flush()


def gauges(session: Session) -> list[tuple[str, str, int]]:
    """What the supervision task last counted: (department, light, open clocks)."""
    rows = session.execute(select(CaseLightGauge.department, CaseLightGauge.light, CaseLightGauge.open_clocks))
    return [(d, light, int(n)) for d, light, n in rows]
