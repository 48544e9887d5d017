"""Per-department Airflow pools (部门并发池): how many tasks may hit one department at once.

Each mapping file names its pool (the case-step feeds' too: a department whose only feed is its
case steps, such as the development-and-reform commission, has a pool all the same); departments'
systems are small, so a pool holds few slots
(``HUB_POOL_SLOTS``, default 2). ``python -m pipeline.pools`` creates or updates them
(compose's airflow-init and ``hub up`` run it after ``airflow db migrate``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hub.airflow_env import ensure_airflow_env
from mappings.engine import STEP_FEEDS_DIR, load_all

DEFAULT_SLOTS = 2
#: the push DAG's pool: outbound deliveries to departments
PUSH_POOL = "hub_push"


def department_pools(mappings: Iterable[Any], slots: int | None = None) -> dict[str, int]:
    """Pool name → slots for the given mappings (anything with a ``pool`` or ``spec.pool``).

    >>> class M:
    ...     pool = "commerce"
    >>> department_pools([M(), M()], slots=3)
    {'commerce': 3, 'hub_push': 3}
    """
    n = slots if slots is not None else int(os.environ.get("HUB_POOL_SLOTS", DEFAULT_SLOTS))
    names = {getattr(m, "pool", None) or m.spec.pool for m in mappings}
    return {name: n for name in sorted(names | {PUSH_POOL})}


def ensure_pools(mapping_dir: Path | None = None) -> dict[str, int]:
    """Create or update the pools in Airflow's metadata database."""
    ensure_airflow_env()
    from airflow.models.pool import Pool  # noqa: PLC0415 - after ensure_airflow_env

    feeds = STEP_FEEDS_DIR if mapping_dir is None else Path(mapping_dir) / "case_steps"
    pools = department_pools([*load_all(mapping_dir).values(), *load_all(feeds).values()])
    for name, slots in pools.items():
        Pool.create_or_update_pool(name, slots, f"hub: at most {slots} concurrent tasks", False)
    return pools


if __name__ == "__main__":
    for pool, slots in ensure_pools().items():
        print(f"pool {pool}: {slots} slots")
