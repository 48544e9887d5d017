"""``hub lineage``: where a licence field or a golden attribute came from (数据血缘), as a tree or JSON.

``hub lineage licence ID [--field F]`` and ``hub lineage identity CODE [--attribute A]`` print
what :mod:`recognition.lineage` finds — source record, run, mapping file and its SHA-256, the
normalisers applied, the expectation suite version, the identity link's rule — with personal
values masked; ``--json`` for tools. Exit 1 when there is no such licence, identity, field or
attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from e_license_store.index import get_license
from e_license_store.model import LicenseDocument, object_key, parse_envelope
from e_license_store.store import open_store
from hub.db import get_engine, session_factory
from recognition.lineage import LineageNotFound, identity_lineage, license_lineage

app = typer.Typer(no_args_is_help=True, help="Where a licence field or golden attribute came from.")
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object instead of the tree")]


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(1)


def _leaf(tree: Tree, label: str, values: Mapping[str, Any] | None) -> None:
    if not values:
        tree.add(f"[bold]{label}[/bold]: [yellow]not recorded[/yellow]")
        return
    shown = ", ".join(f"{k}={v}" for k, v in values.items() if v not in (None, [], ""))
    tree.add(f"[bold]{label}[/bold]: {escape(shown)}")


def _record(tree: Tree, record: Mapping[str, Any] | None, identity: Mapping[str, Any] | None) -> None:
    if record is None:
        tree.add("[yellow]no source record (made by hand)[/yellow]")
        return
    _leaf(tree, "source record", record.get("source"))
    _leaf(tree, "mapping", record.get("mapping"))
    _leaf(tree, "validation", record.get("validation"))
    if record.get("model_version"):
        tree.add(f"[bold]model[/bold]: {escape(str(record['model_version']))}")
    if record.get("runs"):
        tree.add(f"[bold]runs that accepted it[/bold]: {escape(', '.join(map(str, record['runs'])))}")
    _leaf(tree, "identity link", identity)


def _field(tree: Tree, name: str, f: Mapping[str, Any]) -> Tree:
    node = tree.add(f"[cyan]{escape(name)}[/cyan] = {escape(str(f.get('value')))}")
    if f.get("from") is not None or f.get("normalizers") is not None:
        node.add(
            f"from {escape(', '.join(f.get('from') or []))}"
            + (f" as {escape(str(f['canonical_field']))}" if f.get("canonical_field") else "")
            + f", normalisers: {escape(', '.join(f.get('normalizers') or []) or 'none')}"
        )
    elif f.get("origin"):
        node.add(escape(str(f["origin"])))
    return node


def _read_version(license_id: str) -> Any:
    store = open_store()

    def read(version: int) -> LicenseDocument:
        return parse_envelope(store.get(object_key(license_id, version))).document

    return read


@app.command("licence")
def licence(
    license_id: str,
    field: Annotated[
        str | None, typer.Option("--field", help="Only this field (holder_name, surface.address, ...)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The lineage of a licence's current version: its source record, run, mapping, suite and identity link."""
    with session_factory(get_engine())() as session:
        row = get_license(session, license_id)
        if row is None:
            _fail(f"no licence {license_id}")
        try:
            out = license_lineage(session, license_id, row.version, _read_version(license_id), field=field)
        except LineageNotFound as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    tree = Tree(
        f"[bold]licence {escape(license_id)}[/bold] v{out['version']} {escape(out['license_type_code'])} "
        f"{escape(out['status'])} holder {escape(str(out['holder_code']))}"
    )
    if out["source_of_version"] not in (None, out["version"]):
        tree.add(
            f"[yellow]version {out['version']} was made by hand; source of version {out['source_of_version']}[/yellow]"
        )
    _record(tree, out["record"], out["identity"])
    fields = tree.add("[bold]fields[/bold]")
    for name, f in out["fields"].items():
        _field(fields, name, f)
    console.print(tree)


@app.command("identity")
def identity(
    code: str,
    attribute: Annotated[str | None, typer.Option("--attribute", help="Only this golden attribute")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The lineage of an identity's golden record: each attribute's source record, run, mapping and link."""
    with session_factory(get_engine())() as session:
        try:
            out = identity_lineage(session, code.strip().upper(), attribute=attribute)
        except LineageNotFound as exc:
            _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    tree = Tree(f"[bold]{escape(out['entity_kind'])} {escape(str(out['canonical_code']))}[/bold]")
    # attributes drawn from the same source record under one node
    by_record: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for name, a in out["attributes"].items():
        key = json.dumps([a.get("record"), a.get("identity")], sort_keys=True, default=str)
        by_record.setdefault(key, []).append((name, a))
    for group in by_record.values():
        first = group[0][1]
        source = (first.get("record") or {}).get("source") or {}
        label = "/".join(str(source.get(k)) for k in ("department", "dataset", "source_key")) if source else "no source"
        node = tree.add(f"[bold]{escape(label)}[/bold]")
        if first.get("record") is not None:
            _record(node, first.get("record"), first.get("identity"))
        attributes = node.add("[bold]attributes[/bold]")
        for name, a in group:
            _field(attributes, name, a)
    console.print(tree)
