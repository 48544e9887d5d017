"""Retries with exponential backoff and full jitter, for transient errors only (重试).

>>> policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=5.0)
>>> [policy.ceiling(n) for n in range(4)]
[1.0, 2.0, 4.0, 5.0]
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from connectors.errors import ConnectorError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait before retry ``attempt`` (0-based): base·2^n, capped."""
        return float(min(self.max_delay, self.base_delay * (2**attempt)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, ceiling]."""
        return (rng or random).uniform(0.0, self.ceiling(attempt))


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "call",
) -> T:
    """Call ``fn``; on a transient :class:`ConnectorError` wait and try again.

    Non-transient errors (auth, config, bad records, programming errors) propagate at once.
    """
    for attempt in range(policy.attempts):
        try:
            return fn()
        except ConnectorError as exc:
            if not exc.transient or attempt == policy.attempts - 1:
                raise
            wait = policy.delay(attempt)
            log.warning("%s failed (%s); retry %d/%d in %.2fs", what, exc.what, attempt + 1, policy.attempts - 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
