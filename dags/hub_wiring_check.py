"""Wiring check (接线检查): proves Airflow finds the hub's DAGs folder and can import the hub."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task


@dag(
    dag_id="hub_wiring_check",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["hub", "wiring"],
    default_args={"owner": "hub-platform"},
    doc_md=__doc__,
)
def hub_wiring_check() -> None:
    @task
    def hub_importable() -> str:
        """Import the hub's settings from a task process; return where the hub keeps its files."""
        from hub.settings import get_settings  # noqa: PLC0415 - the check is this import, in a task process

        return str(get_settings().home)

    hub_importable()


hub_wiring_check()
