"""``hub connector new NAME --protocol soap|sql|xml``: scaffold a connector and its acceptance test (脚手架).

A new *department* never needs this (that is a mapping file and a Connection); a new
*protocol variant* does. The module starts as a subclass of the protocol's connector with
every verb in place, registered under ``protocol: NAME`` (the registry imports
``connectors.<NAME>`` and takes ``CONNECTOR``); the test runs the acceptance kit and fails
until its harness is written.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

import typer

from hub.settings import REPO_ROOT

app = typer.Typer(no_args_is_help=True, help="Scaffold a new connector protocol: new.")


@app.callback()
def _group() -> None:
    """Scaffold a new connector protocol (keeps ``new`` a sub-command: ``hub connector new``)."""


BASES = {
    "sql": ("connectors.sql", "SqlConnector"),
    "soap": ("connectors.soap", "SoapConnector"),
    "xml": ("connectors.xml_packages", "XmlPackageConnector"),
}

MODULE = '''"""The {name} connector ({protocol} protocol). Scaffolded by ``hub connector new``.

Say here which systems speak this variant and how it differs from the stock
{base_class}; override only what differs. Select it in a mapping file with
``source: {{protocol: {name}, ...}}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from connectors.base import Batch, CheckResult, State, WriteResult
from {base_module} import {base_class}


class {cls}({base_class}):
    """{title} connector."""

    protocol = "{name}"

    def spec(self) -> dict[str, Any]:
        return super().spec()

    def check(self) -> CheckResult:
        return super().check()

    def discover(self) -> dict[str, dict[str, Any]]:
        return super().discover()

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        yield from super().read(dataset, state, limit=limit)

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        return super().write(dataset, records)


CONNECTOR = {cls}
'''

TEST = '''"""Acceptance kit for the {name} connector. Write the harness against its sandbox."""

from __future__ import annotations

import pytest

from connectors.acceptance import AcceptanceSuite, SourceHarness


class Test{cls}(AcceptanceSuite):
    @pytest.fixture()
    def harness(self) -> SourceHarness:
        pytest.fail("write a SourceHarness for {name} (see tests/connectors/conftest.py for SQL, SOAP and XML)")
'''


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Connector"


def scaffold(name: str, protocol: str, *, package_dir: Path, tests_dir: Path, force: bool = False) -> list[Path]:
    """Write ``<package_dir>/<name>.py`` and ``<tests_dir>/test_acceptance_<name>.py``; return them."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"connector name {name!r} must be a lower-case Python identifier")
    if protocol not in BASES:
        raise ValueError(f"protocol must be one of {', '.join(BASES)}")
    base_module, base_class = BASES[protocol]
    cls = _class_name(name)
    files = {
        package_dir / f"{name}.py": MODULE.format(
            name=name,
            protocol=protocol,
            base_module=base_module,
            base_class=base_class,
            cls=cls,
            title=name.replace("_", " "),
        ),
        tests_dir / f"test_acceptance_{name}.py": TEST.format(name=name, cls=cls),
    }
    for path in files:
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists (use --force to overwrite)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


@app.command()
def new(
    name: str,
    protocol: str = typer.Option(..., "--protocol", help="soap | sql | xml"),
    package_dir: Path = typer.Option(REPO_ROOT / "connectors", help="Where the module goes"),
    tests_dir: Path = typer.Option(REPO_ROOT / "tests" / "connectors", help="Where its acceptance test goes"),
    force: bool = typer.Option(False, help="Overwrite existing files"),
) -> None:
    """Scaffold connector NAME for PROTOCOL with its acceptance test."""
    try:
        written = scaffold(name, protocol, package_dir=package_dir, tests_dir=tests_dir, force=force)
    except (ValueError, FileExistsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for path in written:
        typer.echo(f"created {path}")
    typer.echo(f"next: write the harness in {written[1].name}, then `pytest {written[1]}`")
