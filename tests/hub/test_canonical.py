from __future__ import annotations

import datetime as dt

import jsonschema
import pytest
from pydantic import ValidationError

from mappings.canonical import ENTITIES, Person, SourceRef, json_schema

SRC = SourceRef(department="public_security", dataset="residents", source_key="1", source_version="v1")


def test_every_entity_has_a_versioned_json_schema() -> None:
    for name in ENTITIES:
        schema = json_schema(name)
        assert schema["$id"].startswith(f"urn:hub:canonical:{name}:")
        jsonschema.Draft202012Validator.check_schema(schema)


def test_person_rejects_malformed_resident_id_and_extra_fields() -> None:
    p = Person(resident_id="11010519491231002X", name="张三", birth_date=dt.date(1949, 12, 31), source=SRC)
    assert p.resident_id == "11010519491231002X"
    with pytest.raises(ValidationError):
        Person(resident_id="11010519491231002x", source=SRC)
    with pytest.raises(ValidationError):
        Person(resident_id="11010519491231002X", source=SRC, nickname="x")  # type: ignore[call-arg]


def test_model_dump_validates_against_generated_schema() -> None:
    p = Person(resident_id="11010519491231002X", name="张三", source=SRC)
    jsonschema.validate(p.model_dump(mode="json"), json_schema("person"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"resident_id": "123", "source": SRC.model_dump()}, json_schema("person"))
