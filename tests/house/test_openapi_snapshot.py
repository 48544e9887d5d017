"""The OpenAPI document stays equivalent to the committed snapshot in paths, parameters and schemas."""

from __future__ import annotations

from typing import Any

from tests.house.openapi_snapshot import current, recorded


def _parameters(doc: dict[str, Any]) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
    out: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            out[(path, method)] = sorted((p["name"], p["in"], bool(p.get("required"))) for p in params)
    return out


def test_paths_and_operations_are_the_snapshots() -> None:
    now, before = current(), recorded()
    assert sorted(now["paths"]) == sorted(before["paths"])
    for path, item in before["paths"].items():
        assert sorted(now["paths"][path]) == sorted(item), path


def test_parameters_are_the_snapshots() -> None:
    assert _parameters(current()) == _parameters(recorded())


def test_schemas_are_the_snapshots() -> None:
    now, before = current(), recorded()
    assert sorted(now["schemas"]) == sorted(before["schemas"])
    for name, schema in before["schemas"].items():
        assert now["schemas"][name] == schema, name


def test_operations_are_the_snapshots_in_every_detail() -> None:
    # request bodies, responses and their media types, operation ids, tags and summaries
    assert current()["paths"] == recorded()["paths"]
