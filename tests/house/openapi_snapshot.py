"""The OpenAPI snapshot of the /v1 contract: what the document looked like before the house moved.

``python -m tests.house.openapi_snapshot`` rewrites ``openapi_snapshot.json`` from today's app;
do that only for a deliberate change of the contract, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def current() -> dict[str, Any]:
    """The paths (with their parameters, bodies and responses) and the schemas of today's document."""
    from recognition.app import openapi_document

    doc = openapi_document()
    return {"paths": doc["paths"], "schemas": doc.get("components", {}).get("schemas", {})}


def recorded() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def write() -> None:
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()
