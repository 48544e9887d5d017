"""``hub licenses``: list, get, verify and reindex the e-licence repository (电子证照库)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from e_license_store import verify_link
from e_license_store.catalogue import license_type, number_shown
from e_license_store.store import open_store
from hub.db import get_engine, session_factory
from hub.masking import Party, Personal, mask, mask_fields

app = typer.Typer(no_args_is_help=True, help="The e-licence repository: list, get, verify, reindex.")
console = Console()


def _session() -> Session:
    return session_factory(get_engine())()


def _shown(holder_kind: str, holder_code: str, holder_name: str) -> tuple[str, str]:
    """Holder as shown to an operator, masked by the masking policy (个人信息脱敏): a person's id
    and name, a sole proprietor's name."""
    party = Party(holder_kind, holder_code)
    return (
        str(mask(holder_code, Personal.CODE, party=party) or ""),
        str(mask(holder_name, Personal.PARTY_NAME, party=party) or ""),
    )


@app.command("list")
def list_licenses(
    holder: Annotated[str, typer.Option("--holder", help="Holder's resident id or USCC")],
    type_code: Annotated[list[str] | None, typer.Option("--type", help="Licence type code(s)")] = None,
    status: Annotated[str | None, typer.Option(help="valid, suspended, revoked, expired")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Licences held by a resident or enterprise."""
    from e_license_store.index import licenses_by_holder  # noqa: PLC0415 - ~0.1 s; `hub --help` loads this

    with _session() as session:
        rows = licenses_by_holder(session, holder.strip().upper(), type_codes=type_code, status=status, limit=1000)
    if as_json:
        for r in rows:
            code, name = _shown(r.holder_kind, r.holder_code, r.holder_name)
            print(
                json.dumps(
                    {
                        "license_id": r.license_id,
                        "license_type_code": r.license_type_code,
                        "license_type_name": r.license_type_name,
                        "license_number": number_shown(r.license_type_code, r.license_number, False),
                        "holder_code": code,
                        "holder_name": name,
                        "status": r.status,
                        "version": r.version,
                        "valid_until": r.valid_until.isoformat() if r.valid_until else None,
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = Table("licence id", "type", "number", "holder", "status", "v", "valid until")
    for r in rows:
        code, name = _shown(r.holder_kind, r.holder_code, r.holder_name)
        table.add_row(
            r.license_id,
            r.license_type_name,
            number_shown(r.license_type_code, r.license_number, False),
            f"{name} {code}",
            r.status,
            str(r.version),
            str(r.valid_until or "—"),
        )
    console.print(table)
    if not rows:
        console.print("[yellow]no licences for this holder[/yellow]")


@app.command()
def get(
    license_id: str,
    version: Annotated[int | None, typer.Option(help="A specific version (default: current)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the signed licence (envelope JSON) to this file")] = None,
) -> None:
    """Show a licence (personal data masked) with its public verification URL (the one its QR code carries);
    ``--out`` saves the signed copy for ``verify``."""
    from e_license_store.index import get_license, license_versions  # noqa: PLC0415 - ~0.1 s; `hub --help` loads this
    from e_license_store.model import object_key, parse_envelope  # noqa: PLC0415 - pydantic; `hub --help` loads this

    with _session() as session:
        row = get_license(session, license_id)
        versions = license_versions(session, license_id)
    if row is None:
        console.print(f"[red]no licence {license_id}[/red]")
        raise typer.Exit(1)
    store = open_store()
    data = store.get(object_key(license_id, version or row.version))
    doc = parse_envelope(data).document
    lic = doc.license
    code, name = _shown(str(lic.holder_kind), lic.holder_code, lic.holder_name)
    shown = {
        "license_id": lic.license_id,
        "version": lic.version,
        "current_version": row.version,
        "status": row.status,
        "type": f"{lic.license_type_code} {lic.license_type_name}",
        "license_number": number_shown(lic.license_type_code, lic.license_number, False),
        "holder": f"{name} ({code})",
        "issuer": f"{lic.issuer_name} ({lic.issuer_code})",
        "issue_date": str(lic.issue_date),
        "valid": f"{lic.valid_from} — {lic.valid_until or '长期'}",
        "key_id": row.key_id,
        # the public verification page of this version, with its token: what the version's QR code carries
        "verification_url": verify_link.url(lic.license_id, lic.version),
        "history": [
            f"v{v.version} {v.transition} {v.status}" + (f" ({v.reason})" if v.reason else "") for v in versions
        ],
    }
    shown["surface"] = mask_fields(
        lic.surface,
        license_type(lic.license_type_code).personal_kinds,
        party=Party(str(lic.holder_kind), lic.holder_code),
    )
    console.print_json(json.dumps(shown, ensure_ascii=False, default=str))
    if out is not None:
        out.write_bytes(data)
        console.print(f"[green]saved[/green] {out}")


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The licence file: its signed JSON envelope or its PDF.")],
) -> None:
    """Verify a licence file (signed JSON or PDF): signature, hash, status, revocation.

    Exit 0 when valid; 2 when the file is not a valid licence (altered, revoked, superseded,
    malformed); 1 when it cannot be read (missing, a directory, no permission).
    """
    from e_license_store.signing import load_keyring  # noqa: PLC0415 - cryptography; `hub --help`
    from e_license_store.verify import MAX_FILE_BYTES, verify_file  # noqa: PLC0415 - ~0.15 s; `hub --help` loads this

    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc
    if len(data) > MAX_FILE_BYTES:
        typer.echo(f"error: {file} is larger than {MAX_FILE_BYTES:,} bytes: not a licence file", err=True)
        raise typer.Exit(2)
    with _session() as session:
        result = verify_file(data, load_keyring(), session=session, store=open_store())
    print(json.dumps(result.to_dict(), ensure_ascii=False))
    if not result.ok:
        console.print(f"[red]NOT VALID[/red]: {'; '.join(result.problems) or 'verification failed'}", highlight=False)
        raise typer.Exit(2)
    console.print("[green]valid[/green]")


@app.command()
def reindex() -> None:
    """Rebuild the licence index from the object store (the source of truth)."""
    from e_license_store.index import reindex as run_reindex  # noqa: PLC0415 - ~0.1 s; `hub --help` loads this
    from e_license_store.signing import load_keyring  # noqa: PLC0415 - cryptography; `hub --help`

    with _session() as session:
        n = run_reindex(session, open_store(), keyring=load_keyring())
        session.commit()
    console.print(f"[green]reindexed[/green] {n} licence versions")


@app.command("rotate-key")
def rotate_key(
    algorithm: Annotated[str, typer.Option(help="SM2-SM3 or Ed25519")] = "SM2-SM3",
) -> None:
    """Make a new signing key active (old public keys stay, so old licences still verify)."""
    from e_license_store.signing import Algorithm, default_key_dir, rotate  # noqa: PLC0415 - cryptography; `hub --help`

    key_id = rotate(default_key_dir(), Algorithm(algorithm))
    console.print(f"[green]active key[/green] {key_id}")


@app.command()
def render(limit: Annotated[int, typer.Option(help="At most this many files")] = 1000) -> None:
    """Render pending licence files (PDF with QR code) and bind them by signature."""
    from e_license_store.render import render_pending_files  # noqa: PLC0415 - reportlab, qrcode: ~0.15 s

    n = render_pending_files(limit=limit)
    console.print(f"[green]rendered[/green] {n} files")


def main() -> None:  # pragma: no cover - convenience entry
    app(sys.argv[1:])
