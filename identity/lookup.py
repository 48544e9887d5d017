"""``hub identity lookup CODE`` (身份查询): who is behind any code.

Any code a department used — resident id (18 or 15 digits), USCC, organisation code,
registration number, taxpayer id — leads to the golden record, the legacy codes linked to it
and the department source records behind it. Personal data is masked unless asked otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hub.db import get_engine, session_factory
from hub.masking import Party, Personal, mask, mask_fields, mask_presented_code
from identity.golden import load_rules, own_golden_attributes
from identity.relations import relations_of
from identity.resolve import RESOLVED, resolve_codes
from identity.tables import (
    ENTERPRISE,
    PERSON,
    PROVISIONAL_PREFIX,
    IdentityCrosswalk,
    IdentityEnterprise,
    IdentityMerge,
    IdentityPerson,
    IdentitySourceRecord,
)
from mappings.canonical.models import personal_kinds


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def lookup(session: Session, code: str) -> dict[str, Any] | None:
    """The identity behind ``code`` with golden record, legacy codes and source records
    (unmasked; see :func:`masked`), or ``None`` when the index does not know the code."""
    for kind in (PERSON, ENTERPRISE):
        res = resolve_codes(session, [code], kind)
        if res["status"].iloc[0] == RESOLVED:
            return _view(
                session,
                kind,
                str(res["canonical_code"].iloc[0]),
                code,
                str(res["method"].iloc[0]),
                str(res["code_kind"].iloc[0]),
            )
    # a provisional identity's code is the hub's own (``P`` + 17 characters): no rule resolves it
    own = code.strip().upper()
    if own.startswith(PROVISIONAL_PREFIX) and len(own) == 18:
        person = session.get(IdentityPerson, own)
        if person is not None and person.provisional:
            return _view(session, PERSON, own, code, "provisional", "provisional")
    return None


def _view(session: Session, kind: str, canonical: str, query: str, method: str, code_kind: str) -> dict[str, Any]:
    row: IdentityPerson | IdentityEnterprise | None = (
        session.get(IdentityPerson, canonical) if kind == PERSON else session.get(IdentityEnterprise, canonical)
    )
    assert row is not None  # resolve_codes only answers "resolved" for codes in the index
    walks = session.scalars(
        select(IdentityCrosswalk)
        .where(IdentityCrosswalk.canonical_code == canonical, IdentityCrosswalk.entity_kind == kind)
        .order_by(IdentityCrosswalk.id)
    ).all()
    links = session.scalars(
        select(IdentitySourceRecord)
        .where(IdentitySourceRecord.canonical_code == canonical, IdentitySourceRecord.entity_kind == kind)
        .order_by(IdentitySourceRecord.id)
    ).all()
    merges = session.scalars(
        select(IdentityMerge)
        .where((IdentityMerge.into_code == canonical) | (IdentityMerge.from_code == canonical))
        .order_by(IdentityMerge.id)
    ).all()
    names, named_by = relations_of(session, canonical)
    return {
        "query": query,
        "query_kind": code_kind,
        "resolved_by": method,
        "entity_kind": kind,
        "canonical_code": canonical,
        "provisional": bool(row.provisional),
        "golden": dict(row.attributes or {}),
        "sources": dict(row.sources or {}),
        "legacy_codes": [
            {
                "legacy_code": w.legacy_code,
                "code_kind": w.code_kind,
                "source": w.source,
                "method": w.method,
                "linked_at": _iso(w.linked_at),
                "undone_at": _iso(w.undone_at),
            }
            for w in walks
        ],
        "source_records": [
            {
                "department": s.department,
                "dataset": s.dataset,
                "source_key": s.source_key,
                "source_version": s.source_version,
                "method": s.method,
                "score": s.score,
                # a link the matching model made: its probability and the model file's version
                "match_probability": s.match_probability,
                "model_version": s.model_version,
                "linked_at": _iso(s.linked_at),
                "unlinked_at": _iso(s.unlinked_at),
            }
            for s in links
        ],
        "merges": [
            {
                "id": m.id,
                "from_code": m.from_code,
                "into_code": m.into_code,
                "actor": m.actor,
                "merged_at": _iso(m.merged_at),
                "undone_at": _iso(m.undone_at),
            }
            for m in merges
        ],
        # the identities this one's records name by role (an insured person's employer) ...
        "relations": [
            {
                "role": r.role,
                "related_kind": r.related_kind,
                "related_code": r.related_code,
                "presented_code": r.presented_code,
                "method": r.method,
                "department": r.department,
                "dataset": r.dataset,
                "source_key": r.source_key,
                "linked_at": _iso(r.linked_at),
                "unlinked_at": _iso(r.unlinked_at),
            }
            for r in names
        ],
        # ... and the records naming this identity (the persons an enterprise employs)
        "related_from": [
            {
                "role": r.role,
                "entity_kind": r.entity_kind,
                "canonical_code": r.canonical_code,
                "department": r.department,
                "dataset": r.dataset,
                "source_key": r.source_key,
                "linked_at": _iso(r.linked_at),
                "unlinked_at": _iso(r.unlinked_at),
            }
            for r in named_by
        ],
    }


#: the canonical entities whose fields feed an identity kind's golden record
_FEEDS = {"person": ("person",), "enterprise": ("enterprise", "tax_registration")}


def _golden_kinds(entity_kind: str) -> dict[str, str]:
    """The personal-data kind of each golden attribute: its canonical field's (through the
    survivorship aliases, e.g. ``legal_rep_resident_id`` → ``legal_rep_id``)."""
    rules = load_rules()
    out: dict[str, str] = {}
    for entity in _FEEDS.get(entity_kind, (entity_kind,)):
        for column, kind in personal_kinds(entity).items():
            name = rules.golden_name(entity_kind, column)
            if name is not None:
                out[name] = kind
    # a department's own attributes, by the kind its mapping declares
    out.update(
        {
            a.spec.name: a.spec.personal
            for a in own_golden_attributes()
            if a.identity_kind == entity_kind and a.spec.personal
        }
    )
    return out


def masked(view: dict[str, Any]) -> dict[str, Any]:
    """A copy of a lookup result with personal data masked (个人信息脱敏), by the masking policy.

    Codes are masked when they are a person's; golden attributes by their canonical field's
    personal-data kind (a person's name, birth date, address and phone; an enterprise's
    legal representative and address; a sole proprietor's name).
    """
    out = json.loads(json.dumps(view, ensure_ascii=False))
    party = Party(out["entity_kind"], out["canonical_code"])
    for key in ("canonical_code", "query"):
        out[key] = mask(out[key], Personal.CODE, party=party)
    for walk in out["legacy_codes"]:
        walk["legacy_code"] = mask(walk["legacy_code"], Personal.CODE, party=party)
    for merge in out["merges"]:
        merge["from_code"] = mask(merge["from_code"], Personal.CODE, party=party)
        merge["into_code"] = mask(merge["into_code"], Personal.CODE, party=party)
    out["golden"] = mask_fields(out["golden"], _golden_kinds(out["entity_kind"]), party=party)
    for rel in out.get("relations", []):
        other = Party(rel["related_kind"], rel["related_code"] or rel["presented_code"])
        rel["related_code"] = mask(rel["related_code"], Personal.CODE, party=other)
        rel["presented_code"] = mask(rel["presented_code"], Personal.CODE, party=other)
    for rel in out.get("related_from", []):
        rel["canonical_code"] = mask(
            rel["canonical_code"], Personal.CODE, party=Party(rel["entity_kind"], rel["canonical_code"])
        )
    return out


def run_lookup(code: str, *, as_json: bool = False, unmasked: bool = False) -> int:
    """The CLI body: print the lookup of ``code``; exit status 0 if found, 1 if not."""
    from rich.console import Console  # noqa: PLC0415 - rich only prints the CLI table; the API's lookups never load it
    from rich.table import Table  # noqa: PLC0415 - rich only prints the CLI table; the API's lookups never load it

    console = Console(stderr=True)
    out = Console()
    try:
        with session_factory(get_engine())() as session:
            view = lookup(session, code)
    except OperationalError as exc:  # most often: the database was never migrated
        console.print(
            f"[red]cannot read the master index[/red] ({type(exc.orig).__name__}); "
            "run `hub migrate` first if the hub database is new"
        )
        return 2
    if view is None:
        if as_json:
            print(json.dumps({"query": mask_presented_code(code), "found": False}))
        else:
            out.print("[yellow]not in the master index[/yellow]")
        return 1
    shown = view if unmasked else masked(view)
    if as_json:
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return 0
    out.print(
        f"[bold]{shown['entity_kind']}[/bold] {shown['canonical_code']}  "
        f"(query {shown['query']} as {shown['query_kind']}, resolved by {shown['resolved_by']})"
    )
    golden_table = Table("attribute", "value", "source", title="golden record")
    for attribute, value in sorted(shown["golden"].items()):
        src = shown["sources"].get(attribute, {})
        golden_table.add_row(
            attribute, str(value), f"{src.get('department')}/{src.get('dataset')}:{src.get('source_key')}"
        )
    out.print(golden_table)
    legacy = Table("legacy code", "kind", "source", "method", "linked", "undone", title="legacy codes")
    for w in shown["legacy_codes"]:
        legacy.add_row(w["legacy_code"], w["code_kind"], w["source"], w["method"], w["linked_at"], w["undone_at"] or "")
    out.print(legacy)
    records = Table(
        "department", "dataset", "source key", "version", "method", "linked", "unlinked", title="source records"
    )
    for s in shown["source_records"]:
        records.add_row(
            s["department"],
            s["dataset"],
            s["source_key"],
            str(s["source_version"]),
            s["method"] if s["match_probability"] is None else f"{s['method']} ({s['match_probability']:.4f})",
            s["linked_at"],
            s["unlinked_at"] or "",
        )
    out.print(records)
    if shown["relations"] or shown["related_from"]:
        related = Table("role", "direction", "kind", "code", "as given", "source", "unlinked", title="relations")
        for r in shown["relations"]:
            related.add_row(
                r["role"],
                "names",
                r["related_kind"],
                r["related_code"] or "(not in the index yet)",
                r["presented_code"],
                f"{r['department']}/{r['dataset']}:{r['source_key']}",
                r["unlinked_at"] or "",
            )
        for r in shown["related_from"]:
            related.add_row(
                r["role"],
                "named by",
                r["entity_kind"],
                r["canonical_code"],
                "",
                f"{r['department']}/{r['dataset']}:{r['source_key']}",
                r["unlinked_at"] or "",
            )
        out.print(related)
    return 0
