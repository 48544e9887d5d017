"""What a request passes before the API answers it (门禁): its address's rate, then its key's expiry,
binding and rate.

:class:`GateMiddleware` counts every request against its client address (see
:mod:`recognition.clientaddr`) before anything else runs, so a flood of bad keys from one
address is throttled like any other; ``HUB_RATE_LIMIT_TRUSTED`` addresses are exempt. Once the
key is known, :meth:`AccessGate.admit` (called by the authentication dependency) refuses an
expired key (401 ``key_expired``), a key presented from outside its binding (403
``source_not_allowed``) and a consumer over its rate (429 ``rate_limited``, ``Retry-After``).
Refused requests are not counted against the consumer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from recognition import clientaddr
from recognition.config import RecognitionSettings
from recognition.consumers import KeyExpired, Principal, SourceNotAllowed
from recognition.problems import (
    ProblemError,
    key_expired,
    problem_response,
    rate_limit_unavailable,
    rate_limited,
    source_not_allowed,
)
from recognition.throttle import BackendUnavailable, Limit, Throttle, open_backend
from recognition.trail import PROBLEM_CODE, masked_path


class AccessGate:
    """The limits of one API process; ``clock`` (seconds since the epoch) is replaceable in tests."""

    def __init__(
        self,
        config: RecognitionSettings,
        throttle: Throttle,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.throttle = throttle
        self.clock = clock
        self.address_limit = Limit(config.rate_limit_address_rate, config.rate_limit_address_burst)
        self.key_limit = Limit(config.rate_limit_key_rate, config.rate_limit_key_burst)
        self.trusted = config.rate_limit_trusted
        self.proxies = config.trusted_proxies
        self.refused = Counter(
            "hub_api_throttled_total", "Requests refused by a rate limit", ["limit"], registry=registry
        )
        self._refused_address = self.refused.labels("address")
        self._refused_consumer = self.refused.labels("consumer")
        failures = Gauge(
            "hub_rate_limit_backend_failures", "Counts the shared counters failed since start", registry=registry
        )
        failures.set_function(lambda: throttle.failures)

    @classmethod
    def from_settings(
        cls, config: RecognitionSettings, home: Path, *, registry: CollectorRegistry | None = None
    ) -> AccessGate:
        backend = open_backend(
            config.rate_limit_url, home, prefix=config.rate_limit_prefix, timeout=config.rate_limit_timeout
        )
        return cls(config, Throttle(backend, on_error=config.rate_limit_on_backend_error), registry=registry)

    def address(self, scope: Scope) -> clientaddr.IPAddress | None:
        return clientaddr.from_scope(scope, self.proxies)

    async def _count(self, bucket: str, limit: Limit) -> float:
        try:
            return await self.throttle.acquire(bucket, limit, self.clock())
        except BackendUnavailable as exc:
            raise rate_limit_unavailable() from exc

    async def check_address(self, scope: Scope) -> None:
        """Count the request against its client address; raise 429 (or 503, see ``on_error``) if over."""
        if self.address_limit.unlimited:
            return
        addr = self.address(scope)
        if self.trusted and clientaddr.contains(self.trusted, addr):
            return
        wait = await self._count("a:" + clientaddr.bucket(addr), self.address_limit)
        if wait > 0:
            self._refused_address.inc()
            raise rate_limited(wait, "too many requests from this address")

    async def admit(self, scope: Scope, principal: Principal) -> None:
        """The key's expiry and binding, then its consumer's rate; raises the problem that refuses it."""
        try:
            principal.check(dt.datetime.fromtimestamp(self.clock(), dt.UTC), self.address(scope))
        except KeyExpired as exc:
            raise key_expired() from exc
        except SourceNotAllowed as exc:
            raise source_not_allowed() from exc
        own = principal.rate_limit
        limit = self.key_limit if own is None else Limit.of(own, principal.rate_burst)
        if limit.unlimited:
            return
        wait = await self._count("c:" + principal.consumer_id, limit)
        if wait > 0:
            self._refused_consumer.inc()
            raise rate_limited(wait, "this consumer's rate limit is reached")

    async def aclose(self) -> None:
        await self.throttle.aclose()


class GateMiddleware:
    """Counts each HTTP request against its client address before routing and authentication
    (inside the audit trail: a throttled request is recorded too)."""

    def __init__(self, app: ASGIApp, gate: AccessGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self.gate.check_address(scope)
            except ProblemError as exc:
                # the audit trail around it records the refusal with this code
                scope.setdefault("state", {})[PROBLEM_CODE] = exc.code
                response: Any = problem_response(
                    exc.status, exc.code, exc.title, exc.detail, instance=masked_path(scope), headers=exc.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
