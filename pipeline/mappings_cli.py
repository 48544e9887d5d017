"""``hub mappings check|preview``: a department's mapping files before they run (映射文件校验).

The group sits above the mappings, validation and the licence catalogue, as ``check`` asks all
three what they need of a mapping (:mod:`pipeline.mapping_check`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import typer
from rich.cells import cell_len

from connectors.registry import make_connector
from hub.masking import mask, scrub
from mappings.engine import MAPPINGS_DIR, STEP_FEEDS_DIR, mapping_files
from pipeline.mapping_check import check_mappings
from validation.payload import mask_row

app = typer.Typer(no_args_is_help=True, help="Department mappings: check, preview.")


@app.callback()
def _group() -> None:
    """Department mappings (部门数据映射)."""


@app.command()
def check(
    files: list[Path] = typer.Argument(
        None, help="Mapping files (default: mappings/*.yaml, mappings/case_steps/*.yaml)."
    ),
) -> None:
    """Check mapping files: schema, canonical model, identity kind, the expectation suite's required
    columns and allowed values, licence types in e_license_store/catalogue.yaml. Prints
    file:line: problem; exit 1 when there is any."""
    paths = list(files) if files else [*mapping_files(MAPPINGS_DIR), *mapping_files(STEP_FEEDS_DIR)]
    problems = check_mappings(paths)
    for p in problems:
        typer.echo(str(p))
    bad = {p.file for p in problems}
    typer.echo(f"{len(paths)} file(s) checked, {len(bad)} with problems, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(code=1)


def render(rows: list[dict[str, Any]], width: int, layout: str = "auto") -> str:
    """Rows as text: a table when every column fits ``width`` (or ``layout="table"``), else one
    record after another, a field a line (``psql``'s expanded display).

    >>> print(render([{"name": "张*", "sex": "1"}], 80))
    name  sex
    ----  ---
    张*   1
    >>> print(render([{"name": "张*", "sex": "1"}], 8))
    -[ record 1 ]-
    name | 张*
    sex  | 1
    """
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(cell_len(c), *(cell_len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    fits = sum(widths) + 2 * (len(widths) - 1) <= width
    if layout == "table" or (layout == "auto" and fits):

        def line(values: list[str]) -> str:
            return "  ".join(v + " " * (w - cell_len(v)) for v, w in zip(values, widths, strict=True)).rstrip()

        return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])
    label = max(cell_len(c) for c in columns)
    out: list[str] = []
    for n, row in enumerate(cells, 1):
        out.append(f"-[ record {n} ]-")
        out.extend(f"{c}{' ' * (label - cell_len(c))} | {v}" for c, v in zip(columns, row, strict=True))
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("\n", " ")


@app.command()
def preview(
    mapping: str = typer.Argument(..., help="A mapping's name: mappings/<MAPPING>.yaml."),
    limit: int = typer.Option(5, "--limit", "-n", min=1, help="Rows to read from the source."),
    layout: str = typer.Option(
        "auto",
        help="auto (a table when the columns fit the terminal, else one record after another), table or vertical.",
    ),
    source: bool = typer.Option(False, "--source", help="Show the rows as the department sends them, not mapped."),
) -> None:
    """Read a few rows through the mapping's Connection and show them mapped (canonical fields and
    the department's own attributes), personal values masked by what they are. Changes nothing:
    saves no read position, acknowledges nothing. Rows the mapping rejects are listed with why."""
    # pandas and the ledger's ORM, ~1 s; `hub --help` loads this module
    from pipeline.steps import connector_dataset, load_mapping, source_block  # noqa: PLC0415 - as above

    if layout not in ("auto", "table", "vertical"):
        raise typer.BadParameter("auto, table or vertical", param_hint="--layout")
    m = load_mapping(mapping)
    personal = m.spec.personal_source_columns()
    # every shipped connector reads a preview with ``limit`` (not part of the base protocol)
    connector: Any = make_connector(source_block(m), name=m.department, personal_columns=personal)
    tables = []
    for batch in connector.read(connector_dataset(m), None, limit=limit):
        tables.append(batch.table)
        if sum(t.num_rows for t in tables) >= limit:
            break
    raw = pa.concat_tables(tables).slice(0, limit) if tables else None
    width = shutil.get_terminal_size((100, 24)).columns
    if raw is None:
        typer.echo(f"{mapping}: no rows")
        return
    if source:
        rows = [
            {k: (mask(v, personal[k]) if k in personal else scrub(v)) for k, v in r.items()} for r in raw.to_pylist()
        ]
        typer.echo(render(rows, width, layout))
        return
    mapped = m.apply(raw)
    kinds = m.spec.attribute_kinds()
    records = mapped.records.drop(columns=["_department", "_dataset"])
    for column in records.columns:  # dates shown as dates (the engine keeps them as timestamps)
        if pd.api.types.is_datetime64_any_dtype(records[column].dtype):
            records[column] = records[column].dt.date
    rows = [mask_row(r, kinds) for r in records.to_dict("records")]
    typer.echo(render(rows, width, layout))
    for r in mapped.rejects.to_dict("records"):
        typer.echo(f"rejected {r['_source_key']}: {r['reason_code']}: {r['reason']}", err=True)
