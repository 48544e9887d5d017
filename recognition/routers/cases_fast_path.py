"""The measured fast path of case intake, ``POST /v1/cases`` (``fast_paths``, on by default).

FastAPI's dependency and body solving costs a share of an intake's CPU comparable to a database read, so a plain request
skips it (:class:`CaseIntakeRoute`); every other request takes FastAPI's full path.
``create_app(fast_paths=False)`` turns it off; ``tests/recognition/test_case_intake_fast_path.py``
checks both paths answer and audit alike (docs/decisions/0043).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from cases.schemas import IntakeIn
from recognition.dependencies import caller, context

#: An ``Idempotency-Key`` as the declared header accepts it (1..200 printable ASCII characters, no space)
_PLAIN_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class CaseIntakeRoute(APIRoute):
    """The intake route, with FastAPI's dependency and parameter solving skipped for a plain request.

    Plain: ``Content-Type: application/json``, a body FastAPI would read as JSON and validate as
    :class:`~cases.schemas.IntakeIn` the same way (``json.loads``, then the model's validation of the
    decoded value), at most one ``Idempotency-Key`` that the declared header accepts, and no
    dependency overrides. The handler then authenticates with the same dependency, opens the
    session as the session dependency does and calls the same endpoint function. Anything else —
    an invalid body, another content type, a key the declaration refuses — and every request when
    the app was built with ``fast_paths=False`` (``app.state.fast_paths``) takes FastAPI's full
    path, which answers or refuses it as it always did. The OpenAPI document is FastAPI's, from the
    same declaration. A test checks both paths answer and audit alike.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        overrides = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            headers = request.headers
            keys = headers.getlist("idempotency-key")
            if (
                getattr(overrides, "dependency_overrides", None)
                or not getattr(request.app.state, "fast_paths", True)
                or headers.get("content-type") != "application/json"
                or len(keys) > 1
                or (keys and not _PLAIN_KEY.fullmatch(keys[0]))
            ):
                return await full(request)
            try:  # as FastAPI reads a JSON body (request.json()) and validates it
                body = IntakeIn.model_validate(json.loads(await request.body()))
            except (ValueError, ValidationError):  # not JSON, or not valid: FastAPI's own refusal
                return await full(request)
            c = await caller(request)
            with context(request).sessions() as s:  # as the session dependency opens and closes it
                response: Response = await endpoint(request, c, s, body, keys[0] if keys else None)
            return response

        return handler
