"""``POST /v1/events``: the hottest route, as a plain Starlette route.

It is registered before every FastAPI route (so it is matched first) and runs
inside the application's middleware stack like any other route — a middleware a
user adds (CORS, tracing, rate limits) sees it — but skips FastAPI's request
layers: no dependency solving, no pydantic model. It reads the raw body itself
and hands it to :meth:`Service.append`, which decodes it with msgspec (those
layers took a third of the time of a 100-event append, more of a single-event
one). FastAPI does not document a plain route, so :func:`describe_append` writes
its operation into the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from .. import errors
from ..strict import check_names
from .cloudevents import BATCH_TYPE, STRUCTURED_TYPE
from .requests import error_response
from .service import Appended, Service

__all__ = ["append_route", "describe_append"]

PATH = "/v1/events"
_PARAMS = ["expected_revision"]


class _Append:
    """The route's endpoint, as plain ASGI (a class, so Starlette does not wrap it in
    its request/response adapter)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        try:
            # (What FastAPI's routes get from the app's ``_known_params_only``.)
            check_names("query parameter", request.query_params.keys(), _PARAMS)
        except errors.ValidationError as exc:
            response = error_response(400, "ValidationError", str(exc))
        else:
            expected = request.query_params.get("expected_revision")
            response = await self.service.append(request, expected)
        await response(scope, receive, send)


def append_route(service: Service) -> Route:
    """The route; insert it first in the app's router."""
    return Route(PATH, _Append(service), methods=["POST"], name="append")


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _operation() -> dict[str, Any]:
    revision = (
        "A revision number, any, no_stream or stream_exists (all events must then share "
        "one stream)."
    )
    return {
        "tags": ["events"],
        "summary": "Append one event, an atomic batch, or CloudEvents (structured, batch, binary)",
        "operationId": "append_v1_events_post",
        "parameters": [
            {
                "name": "expected_revision",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "title": "Expected Revision"},
                "description": revision,
            },
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "return=representation: the whole records and how many "
                "were new (what the http backend asks for).",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/NewEvent"},
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/NewEvent"},
                                "minItems": 1,
                            },
                        ]
                    }
                },
                STRUCTURED_TYPE: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
                BATCH_TYPE: {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/CloudEvent"},
                    }
                },
            },
        },
        "responses": {
            "201": {
                "description": "Stored (durably): positions and hashes, in input order.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Appended"}}
                },
            },
            "400": _problem("Invalid event(s); nothing was stored."),
            "401": _problem("No or unknown token."),
            "403": _problem("The token lacks the append scope."),
            "409": _problem("Wrong expected revision, or an id reused with other content."),
            "413": _problem("Body over server.max_body_bytes."),
            "415": _problem("Unsupported Content-Type."),
        },
    }


def describe_append(doc: dict[str, Any]) -> None:
    """Add the route's operation (and the schemas it names but FastAPI does not know:
    ``Appended``, ``Problem``) to an OpenAPI document FastAPI generated."""
    doc.setdefault("paths", {}).setdefault(PATH, {})["post"] = _operation()
    _, components = msgspec.json.schema_components(
        [Appended], ref_template="#/components/schemas/{name}"
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    schemas.setdefault(
        "Problem",
        {
            "type": "object",
            "description": "An error: its kind and a message saying what to do.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {
                        "type": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            },
        },
    )
