"""Licences (证照): one licence with the surface fields the caller's scopes release, its file or
masked copy (副本), and where its fields came from (数据血缘). A licence of a type the caller may not
read answers like no licence."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from e_license_store.index import license_versions
from e_license_store.model import LicenseDocument
from e_license_store.render import copy_document, render_copy_pdf
from recognition import views
from recognition.dependencies import (
    CallerDep,
    LicenseId,
    SessionDep,
    context,
    readable_row,
    record,
    require,
    summary,
    verified,
)
from recognition.lineage import LineageNotFound, license_lineage
from recognition.problems import not_found, responses
from recognition.schemas import LicenseDetail, LicenseLineage
from recognition.scopes import LINEAGE_READ

router = APIRouter()


@router.get(
    "/v1/licenses/{license_id}",
    response_model=LicenseDetail,
    responses=responses(401, 403, 404, 503),
    tags=["licences"],
    summary="One licence with the surface fields the scope releases",
)
async def get_license(request: Request, c: CallerDep, license_id: LicenseId) -> LicenseDetail:
    row = readable_row(request, c, license_id)
    scopes = c.principal.scopes
    ctx = context(request)
    surface = await verified(request, c, row, lambda: ctx.directory.surface(row))
    released = views.release(row.license_type_code, surface, views.party_of(row.holder_kind, row.holder_code),
                             scopes)  # fmt: skip
    detail = LicenseDetail(
        **summary(row, scopes.personal), key_id=row.key_id, surface=released.surface,
        withheld_fields=released.withheld, masked=released.masked,
    )  # fmt: skip
    await record(
        request, c, "read", subject=row.license_id, fields=sorted(released.surface),
        detail={"withheld": released.withheld, "masked": released.masked},
    )  # fmt: skip
    return detail


@router.get(
    "/v1/licenses/{license_id}/file",
    response_class=Response,
    responses={
        200: {
            "description": (
                "The licence file (PDF, or the sealed JSON document when no PDF is rendered yet). A caller "
                "without `personal:read` or without every surface field gets a masked copy (副本) instead: "
                "the fields it may see, masked, marked as a copy and naming the original's id, version "
                "and verification link; a copy carries no seal."
            ),
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {"schema": {"type": "object"}}},
        },
        **responses(401, 403, 404, 503),
    },
    tags=["licences"],
    summary="The licence file, or its masked copy (副本)",
)  # fmt: skip
async def get_license_file(request: Request, c: CallerDep, session: SessionDep, license_id: LicenseId) -> Response:
    row = readable_row(request, c, license_id)
    require(c, "licenses:file")
    ctx = context(request)
    scopes = c.principal.scopes
    document = await verified(request, c, row, lambda: ctx.directory.document(row))
    shown = views.release_document(document, scopes)
    released = shown.released
    if released.complete:
        f = await verified(request, c, row, lambda: ctx.directory.file(session, row))
        content, media_type, filename = f.content, f.media_type, f.filename
    elif ctx.directory.has_pdf(session, row):
        content = render_copy_pdf(document, holder_name=shown.holder_name, holder_code=shown.holder_code,
                                  license_number=shown.license_number, surface=released.surface)  # fmt: skip
        media_type, filename = "application/pdf", f"{row.license_id}-v{row.version}-copy.pdf"
    else:
        copy = copy_document(
            document, content_sha256=row.content_sha256, holder_name=shown.holder_name,
            holder_code=shown.holder_code, license_number=shown.license_number, surface=released.surface,
            withheld=released.withheld,
        )  # fmt: skip
        content = json.dumps(copy, ensure_ascii=False, sort_keys=True).encode()
        media_type, filename = "application/json", f"{row.license_id}-v{row.version}-copy.json"
    kind = "original" if released.complete else "copy"
    await record(
        request, c, "file", subject=row.license_id,
        fields=["file"] if released.complete else sorted(released.surface),
        detail={"media_type": media_type, "rendering": kind, "withheld": released.withheld,
                "masked": released.masked},
    )  # fmt: skip
    return Response(
        content, media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
                 "X-Hub-Rendering": kind},
    )  # fmt: skip


@router.get(
    "/v1/licenses/{license_id}/lineage",
    response_model=LicenseLineage,
    responses=responses(401, 403, 404, 503),
    tags=["licences"],
    summary="Where the licence's fields came from (数据血缘), personal values masked",
)
async def get_license_lineage(
    request: Request,
    c: CallerDep,
    session: SessionDep,
    license_id: LicenseId,
    field: Annotated[
        str | None, Query(max_length=80, description="Only this field (holder_name, surface.address, ...)")
    ] = None,
) -> LicenseLineage:
    require(c, LINEAGE_READ)
    row = readable_row(request, c, license_id)
    ctx = context(request)
    recorded = {v.version: v.content_sha256 for v in license_versions(session, row.license_id)}

    def read_version(version: int) -> LicenseDocument:
        if version == row.version:
            return ctx.directory.document(row)
        return ctx.directory.version_document(row, version, recorded[version])

    try:
        out = await verified(
            request, c, row,
            lambda: license_lineage(session, row.license_id, row.version, read_version, field=field),
        )  # fmt: skip
    except LineageNotFound as exc:
        raise not_found(str(exc)) from None
    await record(request, c, "read", subject=row.license_id, fields=["lineage", *sorted(out["fields"])])
    return LicenseLineage.model_validate(out)
