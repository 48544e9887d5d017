"""The measured fast path of the API's hot route, licences by holder (``fast_paths``, on by default).

FastAPI's generic dependency and parameter solving costs more than the lookup itself, so a
request whose parameters are all in their plain form skips it (:class:`HolderLicensesRoute`);
every other request takes FastAPI's full path. ``create_app(fast_paths=False)`` turns it off;
``tests/recognition/test_recognition_hot_path.py`` checks both paths answer alike.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from recognition.dependencies import caller
from recognition.schemas import LicenseStatusParam

_STATUS_VALUES = {s.value: s for s in LicenseStatusParam}
_PLAIN_INT = re.compile(r"(?:0|[1-9][0-9]{0,6})")
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def plain_holder_query(request: Request) -> dict[str, Any] | None:
    """The licences-by-holder parameters when every one is in its plain form, else ``None``.

    Plain means what FastAPI would accept without a doubt and read the same way: digits
    within the declared bounds, an ISO date, a listed status, at most 20 types, a code of
    1..64 characters, no repeated single-valued parameter. Anything else, valid or not,
    goes to FastAPI, which answers it (or rejects it) as it always did.
    """
    code = request.path_params.get("code")
    if not isinstance(code, str) or not 1 <= len(code) <= 64:
        return None
    args: dict[str, Any] = {"code": code, "type": None, "status": None, "valid_on": None, "limit": 50, "offset": 0}
    raw = request.scope.get("query_string", b"")
    if not raw:
        return args
    seen: set[str] = set()
    types: list[str] = []
    # the same reading of the query string as Starlette's QueryParams
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "type":
            types.append(value)
            continue
        if name not in args:
            continue  # FastAPI ignores parameters the route does not declare
        if name in seen:
            return None
        seen.add(name)
        if name == "status":
            if value not in _STATUS_VALUES:
                return None
            args["status"] = _STATUS_VALUES[value]
        elif name == "valid_on":
            if not _PLAIN_DATE.fullmatch(value):
                return None
            try:
                args["valid_on"] = dt.date.fromisoformat(value)
            except ValueError:
                return None
        elif name in ("limit", "offset"):
            if not _PLAIN_INT.fullmatch(value):
                return None
            number = int(value)
            low, high = (1, 200) if name == "limit" else (0, 1_000_000)
            if not low <= number <= high:
                return None
            args[name] = number
        else:
            return None
    if types:
        if len(types) > 20:
            return None
        args["type"] = types
    return args


class HolderLicensesRoute(APIRoute):
    """The licences-by-holder route, with FastAPI's parameter solving skipped for plain requests.

    It is the API's hot path, and FastAPI's generic dependency and parameter solving costs
    more than the lookup itself. For a request whose parameters are all plain
    (:func:`plain_holder_query`) the handler authenticates with the same dependency and
    calls the same endpoint function; every other request, and every request while
    dependency overrides are set, takes FastAPI's full path. The OpenAPI document is
    FastAPI's, generated from the same declaration. A test checks both paths answer alike.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        overrides = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            args = None if getattr(overrides, "dependency_overrides", None) else plain_holder_query(request)
            if args is None:
                return await full(request)
            c = await caller(request)
            response: Response = await endpoint(request, c, **args)
            return response

        return handler
