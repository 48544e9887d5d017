"""Every request leaves a trace (全程留痕), and no request body is larger than its limit.

Two ASGI middlewares wrap the API:

- :class:`AuditTrail` writes an audit entry for every answer that no handler recorded —
  refusals (401, 403, 404, 405, 413, 415, 422, 429), errors (500, 503) and public pages —
  with the problem's stable ``code`` as the reason, the caller (or ``anonymous``), the key id
  presented and the client address, before the answer leaves. Answers that release data are
  recorded by their handlers with what they released (:func:`recognition.dependencies.record`), and
  are not recorded twice. ``/healthz`` (a load balancer's probe, every few seconds) is the
  one path left out.
- :class:`BodyLimit` refuses a body over its limit with ``413`` before reading it when its
  ``Content-Length`` says so, and stops reading a streamed (chunked) body at the limit, so
  neither a JSON body nor a multipart upload is ever held whole beyond it.

Paths are recorded and echoed with their parameters masked (:func:`masked_path`): a holder
code in a URL may be a resident id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from e_license_store import identifier as license_ids
from hub.masking import mask_presented_code, scrub_text
from identifiers import supervision_code
from recognition.problems import ProblemError, problem_response

log = logging.getLogger(__name__)

#: request state keys (``request.state.<name>``, ``scope["state"][name]``)
AUDITED = "hub_audited"
PROBLEM_CODE = "hub_problem_code"
CALLER = "hub_caller"
KEY_ID = "hub_key_id"

UNAUDITED_PATHS = frozenset({"/healthz"})

_OPAQUE_PARAMS = {"subscription_id", "delivery_id"}


def mask_param(name: str, value: str) -> str:
    """A path parameter as logs, audit entries and problem details repeat it.

    A licence id and a supervision code (20 characters with a check: never a person's code) stay.
    """
    if name == "license_id" and license_ids.is_valid(value):
        return value
    if name == "code" and supervision_code.is_valid(value):
        return supervision_code.compact(value)
    if name in _OPAQUE_PARAMS and value.isascii() and value.isalnum():
        return value
    return mask_presented_code(value) or ""


def masked_path(scope: Scope) -> str:
    """The request's path with every parameter masked (the route's template when it matched)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    params = scope.get("path_params") or {}
    if template:
        try:
            return str(template.format(**{k: mask_param(k, str(v)) for k, v in params.items()}))
        except (KeyError, IndexError, ValueError):
            return str(template)
    # no route matched: any segment may be anything a caller typed
    return "/".join(mask_param("", seg) if (seg and not seg.isascii()) or _suspect(seg) else seg
                    for seg in str(scope.get("path", "")).split("/"))[:300]  # fmt: skip


def _suspect(segment: str) -> bool:
    return sum(ch.isdigit() for ch in segment) >= 6 or scrub_text(segment) != segment


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


TrailWriter = Callable[[Scope, int, dict[str, Any]], Awaitable[None]]


class AuditTrail:
    """Audits every answer its handler did not (see the module docstring)."""

    def __init__(self, app: ASGIApp, write: TrailWriter) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_trail(message: Message) -> None:
            if message["type"] == "http.response.start" and not state.get(AUDITED):
                state[AUDITED] = True
                await self._write(scope, message["status"], state)
            await send(message)

        try:
            await self.app(scope, receive, send_with_trail)
        except Exception:
            if not state.get(AUDITED):
                state[AUDITED] = True
                state.setdefault(PROBLEM_CODE, "internal_error")
                await self._write(scope, 500, state)
            raise

    async def _write(self, scope: Scope, status: int, state: dict[str, Any]) -> None:
        try:
            await self.write(scope, status, state)
        except Exception as exc:  # the refusal itself releases nothing: it is sent, and the loss logged
            log.error("audit entry of a %s answer to %s could not be written: %s", status, masked_path(scope),
                      type(exc).__name__)  # fmt: skip


class BodyTooLarge(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", "Request body too large", f"at most {limit} bytes")


class BodyLimit:
    """Limits request bodies: ``limit_for(content_type)`` bytes (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        limit = self.limit_for(ctype)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = True
            if too_large:
                await _refuse(scope, send, BodyTooLarge(limit))
                return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, capped, send)


async def _refuse(scope: Scope, send: Send, exc: ProblemError) -> None:
    scope.setdefault("state", {})[PROBLEM_CODE] = exc.code
    response = problem_response(exc.status, exc.code, exc.title, exc.detail, instance=masked_path(scope))
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
