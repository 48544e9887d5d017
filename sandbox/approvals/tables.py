"""Approval systems that keep their steps in a table of the department's database (commerce over
ODBC, public security, the development-and-reform commission's platform over ODBC), each with its
own column names and step codes — the hub's mapping files translate them.

Times are local (Asia/Shanghai) without a zone, whole seconds, as these systems store them;
``updated_at`` is when the row was entered (the reader's watermark), which is later than the
step's own time for a step entered the next morning (补录).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from lxml import etree

from sandbox.approvals.behaviour import SHANGHAI, PlannedStep
from sandbox.land.packages import NS, SENDER, serialise, write_package


@dataclass(frozen=True)
class Layout:
    """A department's step table: its name, its columns (role → column) and its step codes."""

    table: str
    columns: Mapping[str, str]
    codes: Mapping[str, str]
    schema: str | None = None


#: 市场监管 登记审批系统: 受理 SL, 审查 SC, 补正 BZ, 补正后恢复 BZHF, 核准 HZ, 不予核准 BYHZ, 发照 FZ
COMMERCE = Layout(
    "approval_case_steps",
    {"id": "step_id", "code": "case_code", "seq": "dept_step_no", "step": "step_code", "at": "step_time",
     "note": "opinion", "missing": "missing_items", "entered": "updated_at"},
    {"accepted": "SL", "in_review": "SC", "correction_requested": "BZ", "resumed": "BZHF", "approved": "HZ",
     "rejected": "BYHZ", "result_issued": "FZ"},
)  # fmt: skip
#: 公安 治安管理审批 (印章刻制备案): steps named in Chinese
PUBLIC_SECURITY = Layout(
    "approval_steps",
    {"id": "row_id", "code": "supervision_code", "seq": "step_no", "step": "step_type", "at": "happened_at",
     "note": "remark", "missing": "missing_json", "entered": "updated_at"},
    {"accepted": "受理", "in_review": "审核", "correction_requested": "补正告知", "resumed": "补正恢复",
     "approved": "准予备案", "rejected": "不予备案", "result_issued": "办结"},
    schema="population",
)  # fmt: skip
#: 发展和改革局 投资项目在线审批监管平台 (KingbaseES, PostgreSQL-compatible, at the department): its
#: processing record 项目办理记录 ``tzxm.xm_bljl`` with pinyin-initial column names — 流水号 lsh, 统一服务监管码 jgm,
#: 环节序号 hjxh, 办理状态 blzt, 办理时间 blsj, 办理意见 blyj, 补正材料清单 bzclqd, 更新时间 gxsj; its status
#: codes 101 受理, 201 审查, 301 补正告知, 302 补正恢复, 401 核准, 402 不予核准, 501 出具核准文件 (办结)
DEVELOPMENT_REFORM = Layout(
    "xm_bljl",
    {"id": "lsh", "code": "jgm", "seq": "hjxh", "step": "blzt", "at": "blsj", "note": "blyj", "missing": "bzclqd",
     "entered": "gxsj"},
    {"accepted": "101", "in_review": "201", "correction_requested": "301", "resumed": "302", "approved": "401",
     "rejected": "402", "result_issued": "501"},
    schema="tzxm",
)  # fmt: skip


def step_table(layout: Layout, metadata: sa.MetaData, *, dialect: str) -> sa.Table:
    c = layout.columns
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    return sa.Table(
        layout.table, metadata,
        sa.Column(c["id"], ident, primary_key=True, autoincrement=True),
        sa.Column(c["code"], sa.String(24), nullable=False),
        sa.Column(c["seq"], sa.Integer, nullable=False),
        sa.Column(c["step"], sa.String(16), nullable=False),
        sa.Column(c["at"], sa.DateTime, nullable=False),
        sa.Column(c["note"], sa.String(500)),
        sa.Column(c["missing"], sa.String(2000)),
        sa.Column(c["entered"], sa.DateTime, nullable=False),
        sa.Index(f"{layout.table}_entered", c["entered"], c["id"]),
        schema=None if dialect == "sqlite" else layout.schema,
    )  # fmt: skip


class SqlOutlet:
    """Steps as rows of the department's step table (written through the database's own client)."""

    def __init__(self, sqlalchemy_url: str, layout: Layout) -> None:
        self.url = sqlalchemy_url
        self.layout = layout
        self.engine = sa.create_engine(sqlalchemy_url, poolclass=sa.pool.NullPool)
        self.table = step_table(layout, sa.MetaData(), dialect=self.engine.dialect.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.table.schema}.{self.table.name}" if self.table.schema else self.table.name

    def create(self) -> None:
        with self.engine.begin() as conn:
            if self.table.schema:
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {self.table.schema}"))
            self.table.create(conn, checkfirst=True)

    def write(self, steps: Sequence[PlannedStep]) -> None:
        c, codes = self.layout.columns, self.layout.codes

        def local(at: object) -> object:
            return at.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)  # type: ignore[attr-defined]

        rows = [
            {c["code"]: s.code, c["seq"]: s.seq, c["step"]: codes[s.step], c["at"]: local(s.occurred_at),
             c["note"]: s.note, c["entered"]: local(s.visible_at),
             c["missing"]: json.dumps([{"code": m, "name": n} for m, n in s.missing], ensure_ascii=False)
             if s.missing else None}
            for s in steps
        ]  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(self.table)) or 0)


#: 税务 涉税审批: 01 受理, 02 审核, 03 补正告知, 04 补正恢复, 05 核准, 06 不予核准, 07 办结
TAX_CODES = {"accepted": "01", "in_review": "02", "correction_requested": "03", "resumed": "04", "approved": "05",
             "rejected": "06", "result_issued": "07"}  # fmt: skip


class TaxOutlet:
    """The tax bureau's steps, listed by its SOAP service's ``ListCaseSteps`` (its store's ``case_steps``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def create(self) -> None:
        self.store.create()

    def write(self, steps: Sequence[PlannedStep]) -> None:
        self.store.add_case_steps([
            {"step_key": f"{s.code}-{s.seq:03d}", "case_code": s.code, "step_no": s.seq, "step_code": TAX_CODES[s.step],
             "step_time": s.occurred_at, "opinion": s.note, "updated_at": s.visible_at,
             "missing_json": json.dumps([{"code": m, "name": n} for m, n in s.missing], ensure_ascii=False)
             if s.missing else None}
            for s in steps
        ])  # fmt: skip


#: 不动产登记 审批: ACCEPT 受理, REVIEW 审核, CORRECT 补正告知, RESUME 补正恢复, APPROVE 核准, REJECT 不予登记,
#: ISSUE 发证
LAND_CODES = {"accepted": "ACCEPT", "in_review": "REVIEW", "correction_requested": "CORRECT", "resumed": "RESUME",
              "approved": "APPROVE", "rejected": "REJECT", "result_issued": "ISSUE"}  # fmt: skip


class LandOutlet:
    """The land bureau's steps as ``<CaseStep>`` elements of exchange packages in a directory of their own
    (``land_steps_NNNNNN.xml`` with their ``.sha256`` sidecars, the land package format)."""

    def __init__(self, outbox_dir: Path) -> None:
        self.outbox_dir = Path(outbox_dir)

    def create(self) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)

    def _next_seq(self) -> int:
        done = [*self.outbox_dir.glob("land_steps_*.xml"), *self.outbox_dir.parent.glob("archive/*/land_steps_*.xml")]
        return max((int(p.stem.rsplit("_", 1)[1]) for p in done), default=0) + 1

    def write(self, steps: Sequence[PlannedStep]) -> None:
        seq = self._next_seq()
        entered = max(s.visible_at for s in steps).astimezone(SHANGHAI)
        root = etree.Element(f"{{{NS}}}ExchangePackage", nsmap={None: NS}, packageId=f"LAND-{SENDER}-S{seq:06d}",
                             createdAt=entered.isoformat(), sender=SENDER)  # fmt: skip
        for s in steps:
            el = etree.SubElement(root, f"{{{NS}}}CaseStep", stepKey=f"{s.code}-{s.seq:03d}", version="1")
            values = [("CaseCode", s.code), ("StepNo", str(s.seq)), ("StepType", LAND_CODES[s.step]),
                      ("StepTime", s.occurred_at.astimezone(SHANGHAI).isoformat()), ("Opinion", s.note),
                      ("MissingJson", json.dumps([{"code": m, "name": n} for m, n in s.missing], ensure_ascii=False)
                       if s.missing else None)]  # fmt: skip
            for tag, value in values:
                if value is not None:
                    etree.SubElement(el, f"{{{NS}}}{tag}").text = value
        write_package(self.outbox_dir, f"land_steps_{seq:06d}.xml", serialise(root, "UTF-8"))
