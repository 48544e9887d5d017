"""Keep the ODBC driver and DSN configuration inside the repository.

unixODBC reads ``odbcinst.ini`` and ``odbc.ini`` from ``ODBCSYSINI``; pointing it at
``etc/odbc`` means the drivers the hub uses are declared in version control, not in
``/etc``. Call :func:`ensure_odbc_env` before the first ``pyodbc`` import.
"""

from __future__ import annotations

import os

from hub.settings import REPO_ROOT

ODBC_DIR = REPO_ROOT / "etc" / "odbc"


def ensure_odbc_env() -> None:
    os.environ.setdefault("ODBCSYSINI", str(ODBC_DIR))
    os.environ.setdefault("ODBCINI", str(ODBC_DIR / "odbc.ini"))
