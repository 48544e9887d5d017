"""The acceptance kit for the SQL connector through ODBC: PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from connectors.acceptance import AcceptanceSuite
from tests.connectors.conftest import SqlHarness

pytestmark = [pytest.mark.odbc]


@pytest.mark.postgres
class TestOdbcPostgres(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, pg_harness: SqlHarness) -> SqlHarness:
        return pg_harness


@pytest.mark.mariadb
class TestOdbcMariaDB(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, mariadb_harness: SqlHarness) -> SqlHarness:
        return mariadb_harness
