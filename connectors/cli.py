"""``hub connectors``: list department sources, check them, preview what they hold (连接器命令).

NAME is a mapping file's name (``mappings/<NAME>.yaml``); its ``source:`` block and the
Airflow Connection it names make the connector. Previews mask personal data, change nothing
at the source (no acknowledgement, no move, no state) and say why records or packages would
be refused (on stderr, so ``--json`` stays one row per line). ``state`` and ``reset`` (read
positions, audited) join this group from ``pipeline/positions_cli.py``: they need the
pipeline's staged-batch ledger and the audit log, rooms above this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from connectors.errors import BadRecord, ConnectorError
from hub import safe_yaml
from hub.masking import mask_record
from hub.settings import REPO_ROOT

app = typer.Typer(no_args_is_help=True, help="Department connectors: list, check, read.")
console = Console(soft_wrap=True)
errors = Console(soft_wrap=True, stderr=True)
#: refusals a preview lists one by one; the rest are counted
SHOWN_REFUSALS = 20
MAPPINGS_DIR = REPO_ROOT / "mappings"


def mapping_sources(directory: Path = MAPPINGS_DIR) -> dict[str, dict[str, Any]]:
    """Mapping name → its ``source:`` block, for every mapping file that has one.

    A mapping file that is not valid YAML or is refused (:mod:`hub.safe_yaml`) stops the
    command with its file and line (exit 1).
    """
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = safe_yaml.load_file(path) or {}
        except safe_yaml.YamlError as exc:
            console.print(f"[red]FAIL[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        if isinstance(data, dict) and isinstance(data.get("source"), dict):
            out[path.stem] = dict(data["source"])
    return out


def connector_for(name: str, directory: Path = MAPPINGS_DIR) -> Any:
    from connectors.registry import make_connector  # noqa: PLC0415 - pyarrow, ~0.15 s; `hub --help` loads this

    sources = mapping_sources(directory)
    if name not in sources:
        console.print(f"[red]no mapping named {name!r}[/red]; known: {', '.join(sources) or 'none'}")
        raise typer.Exit(2)
    return make_connector(sources[name], name=name, personal_columns=_personal_columns(directory / f"{name}.yaml"))


def _personal_columns(path: Path) -> dict[str, str]:
    """The mapping's source fields with a personal-data kind, so previews mask by what values are."""
    # the CLI reads the mapping; the SDK does not
    from mappings.engine import MappingError, load_mapping  # noqa: PLC0415 - pandas, ~0.4 s; `hub --help` loads this

    try:
        return load_mapping(path).spec.personal_source_columns()
    except (MappingError, OSError):  # `hub mappings check` says why; ids and phones are still scrubbed
        return {}


@app.command("list")
def list_sources(
    mappings: Path = typer.Option(MAPPINGS_DIR, help="Directory of mapping files"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line"),
) -> None:
    """Every department source: mapping name, protocol, Airflow Connection, datasets."""
    sources = mapping_sources(mappings)
    if as_json:
        for name, block in sources.items():
            typer.echo(
                json.dumps(
                    {
                        "name": name,
                        "protocol": block.get("protocol"),
                        "conn_id": block.get("conn_id"),
                        "datasets": sorted(block.get("datasets") or {}),
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("name", "protocol", "conn_id", "datasets")
    for name, block in sources.items():
        table.add_row(
            name,
            str(block.get("protocol")),
            str(block.get("conn_id") or "-"),
            ", ".join(sorted(block.get("datasets") or {})),
        )
    console.print(table)


@app.command()
def check(
    name: str,
    mappings: Path = typer.Option(MAPPINGS_DIR, help="Directory of mapping files"),
) -> None:
    """Connect, authenticate and probe every dataset of NAME; exit 1 when it fails."""
    try:
        result = connector_for(name, mappings).check()
    except ConnectorError as exc:
        console.print(f"[red]FAIL[/red] {name}: {exc}")
        raise typer.Exit(1) from exc
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]{'OK' if result.ok else 'FAIL'}[/{colour}] {name}: {result.message}")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def read(
    name: str,
    dataset: str,
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="Rows to preview"),
    mappings: Path = typer.Option(MAPPINGS_DIR, help="Directory of mapping files"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line"),
) -> None:
    """Preview the first rows of DATASET (personal data masked).

    Changes nothing: saves no state, acknowledges, moves or archives nothing. Records or
    packages a read would refuse are listed on stderr with their reason code and reason.
    """
    connector = connector_for(name, mappings)
    rows: list[dict[str, Any]] = []
    bad: list[BadRecord] = []
    try:
        for batch in connector.read(dataset, None, limit=limit):
            rows.extend(
                mask_record(r, connector.personal_columns) for r in batch.table.slice(0, limit - len(rows)).to_pylist()
            )
            bad.extend(batch.bad_records)
            if len(rows) >= limit:
                break
    except ConnectorError as exc:
        console.print(f"[red]FAIL[/red] {name}/{dataset}: {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False, default=str))
    elif not rows:
        console.print(f"{name}/{dataset}: no rows")
    else:
        table = Table(*rows[0].keys())
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r.values()))
        console.print(table)
    _print_refusals(bad)


def _print_refusals(bad: list[BadRecord]) -> None:
    """One line per refused record or package: where, reason code, reason (no record content)."""
    for record in bad[:SHOWN_REFUSALS]:
        _warn(f"refused {record.source_key or record.source_ref or '?'}: {record.reason_code}: {record.reason}")
    if len(bad) > SHOWN_REFUSALS:
        _warn(f"… and {len(bad) - SHOWN_REFUSALS} more")
    if bad:
        _warn(f"{len(bad)} bad record(s) or package(s) would be quarantined")


def _warn(text: str) -> None:
    errors.print(text, style="yellow", markup=False, highlight=False)
