"""What the ``http`` backend needs from the service beyond the public routes: the
store's identity and head, and a bounded wait for the head to move.

``GET /v1/head`` answers ``{"head", "store_id", "backend"}``. With ``after`` and
``wait`` it first waits (at most ``wait`` seconds, at most :data:`MAX_WAIT`) until
the head moves past ``after`` — the long poll a remote ``subscribe`` follows the
log with. Waits run on their own few threads, so followers never take the threads
appends and reads need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from anyio import to_thread
from fastapi import FastAPI
from fastapi import Query as Param
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..model import MAX_POSITION
from .requests import json_response

if TYPE_CHECKING:
    from .service import Service

__all__ = ["MAX_WAIT", "remote_routes"]

#: The longest one long poll waits (seconds); a follower asks again.
MAX_WAIT = 30.0


def _position(value: str) -> int:
    if value.isascii() and value.isdigit() and int(value) <= MAX_POSITION:
        return int(value)
    shown = repr(value) if len(value) <= 40 else f"{len(value)} characters"
    raise errors.ValidationError(f"after must be a position (0 to 2**63-1), got {shown}")


def _seconds(value: str) -> float:
    try:
        seconds = float(value) if value.isascii() else -1.0
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT:  # (also NaN)
        shown = repr(value) if len(value) <= 40 else f"{len(value)} characters"
        raise errors.ValidationError(f"wait must be 0 to {MAX_WAIT:g} seconds, got {shown}")
    return seconds


def remote_routes(app: FastAPI, svc: Service) -> None:
    waits = anyio.CapacityLimiter(16)

    @app.get("/v1/head", tags=["events"], summary="The head position and the store's id")
    async def head(
        request: Request,
        after: str | None = Param(None, description="Wait until the head passes this."),
        wait: str | None = Param(None, description=f"Seconds to wait, 0-{MAX_WAIT:g}."),
    ) -> Response:
        svc.authorize(request, "read")
        since = None if after in (None, "") else _position(after)
        seconds = 0.0 if wait in (None, "") else _seconds(wait)
        with svc.holder.lease() as store:
            if since is not None and seconds > 0:
                await to_thread.run_sync(store.wait_for_head, since, seconds, limiter=waits)
            position = await svc.run(store.head)
            return json_response(
                {
                    "head": position,
                    "store_id": store.store_id,
                    "backend": store.backend_name,
                    "hash_format": store.hash_format,
                }
            )
