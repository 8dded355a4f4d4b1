"""The app's own middleware (plain ASGI, so streams pass through untouched): the
structured access log and the gate in front of the interactive documentation.

:func:`~eventvault.server.app.create_app` adds both; a middleware a user adds
afterwards wraps them (Starlette puts the last one added outermost).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from .requests import HTTPError, error_response
from .service import Service

__all__ = ["DOC_PATHS", "AccessLog", "DocsGate"]

access_log = logging.getLogger("eventvault.access")

ASGIApp = Callable[..., Awaitable[None]]

#: The interactive documentation and the schema: ``server.anonymous`` "docs".
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class DocsGate:
    """The documentation and the schema answer only to a token with the read scope,
    unless ``server.anonymous`` lists "docs"."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in DOC_PATHS:
            try:
                self.service.gate(Request(scope, receive), "docs")
            except HTTPError as exc:
                response = error_response(exc.status, exc.kind, exc.message, exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AccessLog:
    """One structured access-log line per request — never the token, only its name."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        target = self.app
        if scope["type"] != "http" or not self.service.config.server.access_log:
            await target(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await target(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            client = scope.get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                    "principal": state.get("principal"),
                },
            )
