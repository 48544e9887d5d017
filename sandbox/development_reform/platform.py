"""The development-and-reform commission's approval platform (投资项目在线审批监管平台) as a sandbox store.

It keeps one table, the processing record ``tzxm.xm_bljl`` (:data:`sandbox.approvals.tables.DEVELOPMENT_REFORM`):
KingbaseES (PostgreSQL-compatible) at the department, PostgreSQL in tests and CI (schema ``tzxm``), a
SQLite file in the embedded demo (no schema). Its approval system (:class:`sandbox.approvals.system.ApprovalSystem`
with a :class:`sandbox.approvals.tables.SqlOutlet` on this table) takes the project approvals the hub
dispatches (by webhook) and writes its steps here; the hub reads them over ODBC
(``mappings/case_steps/development_reform.yaml``, Connection ``development_reform_approvals``).

>>> import tempfile, pathlib
>>> p = Platform.embedded(pathlib.Path(tempfile.mkdtemp()))
>>> p.create().count(), p.table, p.dialect
(0, 'xm_bljl', 'sqlite')
"""

from __future__ import annotations

from pathlib import Path

from sandbox.approvals.tables import DEVELOPMENT_REFORM, SqlOutlet
from sandbox.commerce.registry import sqlite_connection_string


class Platform:
    """The platform's database: where its step table lives and how a reader reaches it."""

    def __init__(self, sqlalchemy_url: str, odbc_connection_string: str) -> None:
        self.outlet = SqlOutlet(sqlalchemy_url, DEVELOPMENT_REFORM)
        self.sqlalchemy_url = sqlalchemy_url
        self.odbc_connection_string = odbc_connection_string

    @classmethod
    def embedded(cls, data_dir: Path) -> Platform:
        path = Path(data_dir) / "development_reform.db"
        return cls(f"sqlite:///{path}", sqlite_connection_string(str(path)))

    @property
    def dialect(self) -> str:
        return str(self.outlet.engine.dialect.name)

    def create(self) -> Platform:
        """The schema and the step table, if missing (the steps on record stay)."""
        self.outlet.create()
        return self

    def count(self) -> int:
        return self.outlet.count()

    @property
    def table(self) -> str:
        """The step table's name as a reader names it (``tzxm.xm_bljl``; no schema on SQLite)."""
        return self.outlet.qualified_name
