"""Pytest fixtures for the department sandboxes (registered in tests/conftest.py).

- ``sandbox_embedded``: SQLite population, SQLite-over-ODBC commerce, tax SOAP, land outbox
  (module scope: start-up once per test module; tests must undo faults they switch on).
- ``sandbox_servers``: PostgreSQL population and MariaDB-over-ODBC commerce in throwaway
  databases from ``pg_database`` / ``mariadb_database`` (function scope, like those fixtures).

Sizes are small by default; override with ``HUB_SANDBOX_TEST_PERSONS`` etc. if needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rigs.testing import TempDatabase
from sandbox.generator import Sizes
from sandbox.runtime import Sandboxes, start_sandboxes

TEST_SEED = 2016


def fixture_sizes() -> Sizes:
    return Sizes(
        persons=int(os.environ.get("HUB_SANDBOX_TEST_PERSONS", "400")),
        enterprises=int(os.environ.get("HUB_SANDBOX_TEST_ENTERPRISES", "120")),
        properties=int(os.environ.get("HUB_SANDBOX_TEST_PROPERTIES", "150")),
    )


@pytest.fixture(scope="module")
def sandbox_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    home: Path = tmp_path_factory.mktemp("sandbox_home")
    with start_sandboxes(home, TEST_SEED, fixture_sizes(), backend="embedded", land_batch=50) as sb:
        yield sb


@pytest.fixture()
def sandbox_servers(
    tmp_path: Path, pg_database: TempDatabase, mariadb_database: TempDatabase, odbc_mariadb: None
) -> Iterator[Sandboxes]:
    with start_sandboxes(
        tmp_path / "home",
        TEST_SEED,
        fixture_sizes(),
        backend="servers",
        pg=pg_database,
        mariadb=mariadb_database,
        land_batch=50,
    ) as sb:
        yield sb
