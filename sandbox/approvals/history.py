"""A back-dated history of applications (历史办件) for the approval systems to play out: what the
window took in on each working day of a period, as intake requests, in the order they came.

Applicants are (code, name) pairs the hub's identity index knows (the caller names them); every material is
brought on paper or uploaded, so each application is accepted at once and dispatched.

>>> who = {"persons": [("P", "张三")], "enterprises": [("E", "某公司")]}
>>> apps = applications(5, start=dt.date(2026, 9, 1), workdays=3, **who)
>>> all(a.received_at >= dt.datetime(2026, 9, 1, tzinfo=dt.UTC) for a in apps), len(apps) >= 3
(True, True)
>>> apps == applications(5, start=dt.date(2026, 9, 1), workdays=3, **who)
True
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.approvals.behaviour import _at, _days

#: item → (the applicant's kind, the materials as brought)
ITEMS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    # 企业设立登记（多证联办）: commerce, then tax and public security together
    "XK00101001": ("person", (("M01", "upload"), ("M02", "upload"), ("M03", "paper"), ("M04", "paper"),
                              ("M05", "paper"), ("M06", "upload"))),
    # 企业变更登记: commerce alone
    "XK00102000": ("enterprise", (("M01", "upload"), ("M02", "paper"), ("M03", "paper"))),
    # 不动产转移登记: tax first, then the land bureau (the seller a party)
    "QR00401000": ("person", (("M01", "upload"), ("M02", "paper"), ("M03", "upload"), ("M04", "paper"),
                              ("M05", "paper"), ("M06", "paper"))),
    # 企业投资项目核准: the development-and-reform commission alone (the pre-review opinion brought on paper here)
    "XK00501000": ("enterprise", (("M01", "upload"), ("M02", "paper"), ("M03", "paper"), ("M04", "paper"))),
}  # fmt: skip


#: the materials' names as the departments' systems list them (a correction request names them)
MATERIALS: dict[tuple[str, str], str] = {
    ("XK00101001", "M01"): "公司登记（备案）申请书", ("XK00101001", "M02"): "公司章程",
    ("XK00101001", "M03"): "法定代表人身份证件", ("XK00101001", "M04"): "住所使用证明",
    ("XK00101001", "M05"): "指定代表或者共同委托代理人授权委托书", ("XK00101001", "M06"): "印章印模",
    ("XK00102000", "M01"): "公司变更登记申请书", ("XK00102000", "M02"): "营业执照",
    ("XK00102000", "M03"): "新住所使用证明",
    ("QR00401000", "M01"): "不动产登记申请书", ("QR00401000", "M02"): "不动产权证书（转让方）",
    ("QR00401000", "M03"): "存量房买卖合同", ("QR00401000", "M04"): "转让方身份证明",
    ("QR00401000", "M05"): "受让方身份证明", ("QR00401000", "M06"): "婚姻状况证明",
    ("XK00501000", "M01"): "项目申请报告", ("XK00501000", "M02"): "建设项目用地预审与选址意见书",
    ("XK00501000", "M03"): "营业执照", ("XK00501000", "M04"): "节能审查意见",
}  # fmt: skip


@dataclass(frozen=True)
class Application:
    received_at: dt.datetime
    body: dict[str, Any] = field(compare=True)


def workdays_before(end: dt.date, n: int) -> dt.date:
    """The working day ``n`` working days before ``end``."""
    day = end
    while n > 0:
        day -= dt.timedelta(days=1)
        n -= _days().is_workday(day)
    return day


def applications(
    seed: int,
    *,
    start: dt.date,
    workdays: int,
    persons: Sequence[tuple[str, str]],
    enterprises: Sequence[tuple[str, str]],
    per_day: tuple[int, int] = (1, 3),
    items: Sequence[str] = ("XK00101001", "XK00102000"),
) -> list[Application]:
    """The applications of ``workdays`` working days from ``start``, in the order they came."""
    rng = random.Random(f"history:{seed}")
    out: list[Application] = []
    day = start if _days().is_workday(start) else _days().later(start, 1)
    for _ in range(workdays):
        for _ in range(rng.randint(*per_day)):
            item = rng.choice(list(items))
            kind, materials = ITEMS[item]
            code, name = rng.choice(list(persons if kind == "person" else enterprises))
            at = _at(day, rng.randint(0, 420))
            body: dict[str, Any] = {
                "item_code": item,
                "applicant": {"code": code, "name": name},
                "materials": [{"code": c, "provided": how} for c, how in materials],
                "received_at": at.isoformat(),
            }
            if item == "QR00401000":
                seller = rng.choice([p for p in persons if p[0] != code] or list(persons))
                body["parties"] = [{"role": "transferor", "code": seller[0], "name": seller[1]}]
            if item == "XK00101001":
                body["subject"] = f"洞头新设企业{rng.randint(100, 999)}有限公司（拟设立）"
            if item == "XK00501000":
                kind = rng.choice(("海岛旅游", "渔港", "海洋装备", "光伏"))
                body["subject"] = f"洞头{kind}项目（{rng.randint(1, 9)}期）"
            out.append(Application(at, body))
        day = _days().later(day, 1)
    return sorted(out, key=lambda a: a.received_at)
