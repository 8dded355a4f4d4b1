"""The web console (``/ui``) and the API documentation (``/docs``, ``/redoc``), served
from files inside the package — no CDN, so both work on an air-gapped host.

The console is a handful of hand-written ES modules (``server/ui/``; no build step).
Its pages hold no data: the browser fetches everything from the JSON API with an
``Authorization`` header (the token lives in the tab's ``sessionStorage``, never in a
URL), so the shell itself is served to anyone, like a login page. Everything an event
carries is inserted as text, and a strict Content-Security-Policy (scripts from this
origin only, no inline script, no ``eval``) backs that up.

Swagger UI and Redoc come from the ``fastapi-offline`` package (part of the
``server`` extra), which ships their distribution files; without it ``/docs`` says
how to install it.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from .requests import HTTPError

if TYPE_CHECKING:
    from .service import Service

__all__ = ["CONSOLE_CSP", "add_console"]

#: Scripts, styles and requests to this origin only; no inline script or eval; no
#: frames, forms, plugins or <base>.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Swagger UI sets inline styles and shows data: images; its scripts still come
#: from this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; worker-src 'self' blob:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png"}


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def _files(folder: Path) -> dict[str, tuple[bytes, str]]:
    """Every file of ``folder`` by name, read once (a fixed set: no path from a
    request ever reaches the file system)."""
    out: dict[str, tuple[bytes, str]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.is_file():
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            out[path.name] = (path.read_bytes(), kind or "application/octet-stream")
    return out


def _swagger_folder() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    return Path(fastapi_offline.__file__).parent / "static"


def add_console(app: FastAPI, svc: Service) -> None:
    """Register ``/ui``, ``/ui/{asset}``, ``/docs``, ``/redoc`` and their assets."""
    ui_dir = Path(str(resources.files("eventvault.server") / "ui"))
    ui = _files(ui_dir)
    swagger_dir = _swagger_folder()
    docs = _files(swagger_dir) if swagger_dir is not None else {}

    def asset(files: dict[str, tuple[bytes, str]], name: str, csp: str) -> Response:
        found = files.get(name)
        if found is None:
            raise HTTPError(404, "NotFound", f"no asset {name[:80]!r}")
        body, kind = found
        return Response(body, media_type=kind, headers=_headers(csp))

    async def console(request: Request) -> Response:
        return asset(ui, "index.html", CONSOLE_CSP)

    async def console_asset(request: Request, name: str) -> Response:
        return asset(ui, name, CONSOLE_CSP)

    async def docs_page(request: Request) -> Response:
        if not docs:
            raise HTTPError(
                404,
                "NotFound",
                "the API documentation needs Swagger UI's files: "
                "pip install 'eventvault[server]' (it brings fastapi-offline)",
            )
        return asset(ui, "docs.html" if request.url.path == "/docs" else "redoc.html", DOCS_CSP)

    async def docs_asset(request: Request, name: str) -> Response:
        return asset(docs, name, DOCS_CSP)

    for path, endpoint in (
        ("/ui", console),
        ("/ui/", console),
        ("/ui/{name}", console_asset),
        ("/docs", docs_page),
        ("/redoc", docs_page),
        ("/docs/assets/{name}", docs_asset),
    ):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
