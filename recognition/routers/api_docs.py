"""The API's own documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served without a CDN.

FastAPI's default pages load Swagger UI and ReDoc from a public CDN (and ReDoc's fonts from
Google), so on a closed government network they stay blank. The same bundles come here from a
package, ``fastapi-offline`` (Swagger UI 5 and ReDoc's standalone bundle, MIT, pinned in
``pyproject.toml``), and are served by the API under ``/static/docs/``; the HTML around them is
FastAPI's own. The app is created with ``docs_url=None, redoc_url=None`` and includes this router.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from recognition.problems import not_found

ASSETS = "/static/docs"
_BUNDLES = Path(str(files("fastapi_offline").joinpath("static")))
_MEDIA = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS + "/{name}")
async def asset(name: str) -> FileResponse:
    """One of the vendored bundles (a fixed list: the name never reaches the file system otherwise)."""
    media = _MEDIA.get(name)
    if media is None:
        raise not_found("no such asset")
    return FileResponse(_BUNDLES / name, media_type=media, headers={"Cache-Control": "public, max-age=86400"})
