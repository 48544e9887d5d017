"""The hub's DAGs (交换 DAG), built from ``mappings/*.yaml`` by one factory.

One exchange DAG per department feed, the push DAG scheduled on their Assets, and the
housekeeping DAG. No logic here: see ``pipeline/factory.py``.
"""

from __future__ import annotations

from hub.airflow_env import ensure_airflow_env

ensure_airflow_env()

from hub.odbcenv import ensure_odbc_env  # noqa: E402
from pipeline.factory import build_all  # noqa: E402

ensure_odbc_env()

for _dag_id, _dag in build_all().items():
    globals()[_dag_id] = _dag
