"""``hub connectors list|check|read`` and ``hub connector new``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.base import Connector
from connectors.cli import app
from connectors.scaffold import app as scaffold_app
from hub.settings import REPO_ROOT
from tests.connectors.conftest import SqlHarness

runner = CliRunner()


@pytest.fixture()
def mapping_dir(tmp_path: Path, pg_harness: SqlHarness) -> Path:
    d = tmp_path / "mappings"
    d.mkdir()
    ok = pg_harness.block(f"{pg_harness.name}_ok")
    down = pg_harness.block(f"{pg_harness.name}_down")
    # the population mapping with this test's source: its fields say which columns are personal
    mapping = yaml.safe_load((REPO_ROOT / "mappings" / "public_security_persons.yaml").read_text(encoding="utf-8"))
    mapping.update(source=ok, dataset=next(iter(ok["datasets"])))
    (d / "population_persons.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True))
    (d / "population_offline.yaml").write_text(yaml.safe_dump({"source": down}, allow_unicode=True))
    return d


@pytest.mark.postgres
@pytest.mark.odbc
def test_list_check_and_masked_preview(mapping_dir: Path) -> None:
    listed = runner.invoke(app, ["list", "--json", "--mappings", str(mapping_dir)])
    assert listed.exit_code == 0, listed.output
    names = [json.loads(line)["name"] for line in listed.output.splitlines()]
    assert names == ["population_offline", "population_persons"]

    ok = runner.invoke(app, ["check", "population_persons", "--mappings", str(mapping_dir)])
    assert ok.exit_code == 0 and "OK" in ok.output
    down = runner.invoke(app, ["check", "population_offline", "--mappings", str(mapping_dir)])
    assert down.exit_code == 1 and "what to do" in down.output

    preview = runner.invoke(
        app, ["read", "population_persons", "person_registry", "--limit", "3", "--json", "--mappings", str(mapping_dir)]
    )
    assert preview.exit_code == 0, preview.output
    rows = [json.loads(line) for line in preview.output.splitlines()]
    assert len(rows) == 3
    assert rows[0]["name"] == "张*" and rows[0]["resident_id"].startswith("330322****")
    assert "13812345678" not in preview.output


def test_unknown_mapping_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "nope", "--mappings", str(tmp_path)])
    assert result.exit_code == 2 and "no mapping named" in result.output


def test_scaffold_writes_a_working_module_and_its_acceptance_test(tmp_path: Path) -> None:
    pkg, tests = tmp_path / "pkg", tmp_path / "tests"
    result = runner.invoke(
        scaffold_app, ["new", "tax_v2", "--protocol", "soap", "--package-dir", str(pkg), "--tests-dir", str(tests)]
    )
    assert result.exit_code == 0, result.output
    module_path, test_path = pkg / "tax_v2.py", tests / "test_acceptance_tax_v2.py"
    spec = importlib.util.spec_from_file_location("scaffolded_tax_v2", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    block = {
        "protocol": "tax_v2",
        "conn_id": "x",
        "datasets": {"d": {"operation": "Op", "items": "i", "key": "k", "watermark": "w"}},
    }
    instance = module.CONNECTOR("tax_v2", block)
    assert isinstance(instance, Connector) and instance.protocol == "tax_v2"
    assert instance.spec()["properties"]["protocol"] == {"const": "soap"}
    compile(test_path.read_text(), str(test_path), "exec")
    again = runner.invoke(
        scaffold_app, ["new", "tax_v2", "--protocol", "soap", "--package-dir", str(pkg), "--tests-dir", str(tests)]
    )
    assert again.exit_code == 2 and "exists" in again.output


def test_scaffold_refuses_bad_names(tmp_path: Path) -> None:
    result = runner.invoke(
        scaffold_app,
        ["new", "Bad-Name", "--protocol", "sql", "--package-dir", str(tmp_path), "--tests-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
