"""Verification (证照核验): a licence by id, or an uploaded licence file, checked against its seal."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from e_license_store.verify import MAX_FILE_BYTES
from recognition.dependencies import CallerDep, SessionDep, context, id_type, readable_row, record, require
from recognition.problems import ProblemError, missing_scope, responses
from recognition.schemas import Verification, VerifyById

router = APIRouter()

MAX_UPLOAD = MAX_FILE_BYTES  # an uploaded licence file (the body limit adds room for the form around it)


VERIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/VerifyById"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "/v1/licenses/verify",
    response_model=Verification,
    responses=responses(400, 401, 403, 404, 415, 503),
    openapi_extra=VERIFY_BODY,
    tags=["licences"],
    summary="Verify a licence by id or an uploaded licence file (证照核验)",
)
async def verify(request: Request, c: CallerDep, session: SessionDep) -> Verification:
    require(c, "licenses:verify")
    ctx = context(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ProblemError(400, "file_missing", "No file", "send the licence file in the form field 'file'")
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise ProblemError(400, "file_too_large", "File too large", f"at most {MAX_UPLOAD} bytes")
        result = ctx.directory.verify_bytes(session, data)
        how = "file"
    elif ctype == "application/json":
        try:
            body = VerifyById.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_input=False)) from exc
        row = readable_row(request, c, body.license_id)
        result = ctx.directory.verify_current(session, row)
        how = "id"
    else:
        raise ProblemError(415, "unsupported_media_type", "Unsupported media type",
                           "send application/json {license_id} or multipart/form-data with a file")  # fmt: skip
    named = result.license_id and id_type(result.license_id)
    if named and not c.principal.scopes.can_read_type(named):
        # the presented file names its type: verifying it needs that type's scope like reading it
        raise missing_scope(f"licenses:read:{named}")
    out = Verification.model_validate(result.to_dict())
    await record(
        request, c, "verify", subject=out.license_id, fields=["verification"],
        outcome="ok" if out.ok else "not_ok", detail={"by": how, "problems": out.problems[:10]},
    )  # fmt: skip
    return out
