"""Schemathesis over the OpenAPI document: no 5xx, every status, content type and body as documented.

Every operation's strategy is driven by Hypothesis against the ASGI app (bounded examples,
derandomised so CI runs are repeatable).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.settings import get_settings
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.directory import LicenseDirectory
from tests.recognition.rec_helpers import World, auth

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_openapi_conformance(world: World, tokens: dict[str, str], app_config: RecognitionSettings) -> None:
    app = create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring), config=app_config
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = auth(tokens["admin"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    tried: list[str] = []
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.append(response.status_code)

        run()
        tried.append(operation.label)
    assert len(statuses) >= 3 * len(operations)
    # both accepted and rejected inputs were exercised. Which inputs are rejected, and how, moves with the
    # examples: Hypothesis also draws strings from the literals of the loaded modules, so new code elsewhere
    # changes them (a 400 from a form without its file, a 422 from a body that does not match)
    assert 200 in statuses and {400, 422} & set(statuses), sorted(set(statuses))
    assert "POST /v1/licenses/verify" in tried and "GET /v1/holders/{code}/recognitions" in tried
