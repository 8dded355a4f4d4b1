"""``/v1/log``: the store as a transparency log over HTTP (read scope) — the latest
signed checkpoint, the current tree head, inclusion and consistency proofs.

The proof bodies are :meth:`InclusionProof.to_dict
<eventvault.tlog.InclusionProof.to_dict>` and :meth:`ConsistencyProof.to_dict
<eventvault.tlog.ConsistencyProof.to_dict>` (hex hashes; audit paths in RFC 9162
order), what ``eventvault prove`` prints. A proof's tree size defaults to the latest
kept checkpoint's, so it checks against a root someone signed; with no checkpoint
yet, the current tree's. ``X-Tree-Size-Source`` says which (``checkpoint``,
``current``, or ``request`` when the size was given). A backend that keeps no tree
answers ``501``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi import Query as Param
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..store import EventStore, as_uuid
from .checkpoints import kept_size
from .requests import HTTPError, json_response

if TYPE_CHECKING:
    from .service import Service

__all__ = ["SOURCE_HEADER", "add_log_routes"]

#: Which tree size a proof is for when the request named none.
SOURCE_HEADER = "X-Tree-Size-Source"

_HEX = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, hex"}
_SIZE = {"type": "integer", "minimum": 0}
_TREE_HEAD = {
    "title": "TreeHead",
    "type": "object",
    "required": ["size", "base", "root_hash"],
    "properties": {
        "size": {**_SIZE, "description": "Leaves (events) in the tree."},
        "base": {**_SIZE, "description": "Leaf i is the event at position base + 1 + i."},
        "root_hash": _HEX,
    },
}
_INCLUSION = {
    "title": "InclusionProof",
    "type": "object",
    "required": ["leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash"],
    "properties": {
        "leaf_index": _SIZE,
        "tree_size": _SIZE,
        "leaf_hash": _HEX,
        "audit_path": {"type": "array", "items": _HEX, "description": "RFC 9162 order."},
        "root_hash": _HEX,
    },
}
_CONSISTENCY = {
    "title": "ConsistencyProof",
    "type": "object",
    "required": ["first", "second", "first_root", "second_root", "proof"],
    "properties": {
        "first": _SIZE,
        "second": _SIZE,
        "first_root": _HEX,
        "second_root": _HEX,
        "proof": {"type": "array", "items": _HEX, "description": "RFC 9162 order."},
    },
}
_SOURCE = {
    SOURCE_HEADER: {
        "description": "Which tree size the proof is for: checkpoint, current or request.",
        "schema": {"type": "string", "enum": ["checkpoint", "current", "request"]},
    }
}
_ERROR_BODY = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_ERROR = {"application/json": {"schema": _ERROR_BODY}}
_NOT_PROVING = {"description": "The backend keeps no Merkle tree.", "content": _ERROR}
_BAD = {
    "description": "A tree size that is not an integer from 0 to the tree's.",
    "content": _ERROR,
}


def _json(schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _size_param(value: str | None, name: str) -> int | None:
    """A tree size from the query string: digits only (``+1``, ``1.0``, ``١`` refused)."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        shown = repr(value) if len(value) <= 40 else f"{len(value)} characters"
        raise errors.ValidationError(f"{name} must be a tree size (an integer >= 0), got {shown}")
    return int(value)


def _not_proving(exc: errors.NotSupportedError) -> HTTPError:
    return HTTPError(501, "NotSupportedError", str(exc))


def _default_size(store: EventStore, current: int) -> tuple[int, str]:
    """The latest kept checkpoint's size (if the tree has it), else the current size."""
    size = kept_size(store.log.latest_checkpoint())
    if size is not None and size <= current:
        return size, "checkpoint"
    return current, "current"


def _tree_head(store: EventStore) -> dict[str, Any]:
    state = store.log.state()
    return {"size": state.size, "base": state.base, "root_hash": store.log.root(state.size).hex()}


def _inclusion(store: EventStore, event_id: str, size: int | None) -> tuple[dict[str, Any], str]:
    state = store.log.state()  # (first: a backend without a tree answers 501 for any id)
    event = store.get(event_id)
    if event is None:
        raise HTTPError(404, "NotFound", f"no event {event_id}")
    source = "request"
    if size is None:
        size, source = _default_size(store, state.size)
    elif size > state.size:
        raise errors.ValidationError(
            f"size must be from 0 to {state.size} (the tree's), got {size}"
        )
    index = event.position - 1 - state.base
    if not 0 <= index < size:
        where = (
            "before the tree began"
            if index < 0
            else f"leaf {index}, appended after the tree had {size} leaves"
        )
        hint = "" if source == "request" else f" (the {source} tree; ask with ?size=)"
        raise HTTPError(
            409,
            "ConflictError",
            f"event {event_id} is not in the tree of size {size}{hint}: {where}",
        )
    return store.log.inclusion_proof(event, size=size).to_dict(), source


def _consistency(store: EventStore, first: int, second: int | None) -> tuple[dict[str, Any], str]:
    current = store.log.state().size
    source = "request"
    if second is None:
        second, source = _default_size(store, current)
    if second > current:
        raise errors.ValidationError(
            f"second must be from 0 to {current} (the tree's size), got {second}"
        )
    if first > second:
        of = "" if source == "request" else f" (the {source} tree's size)"
        raise errors.ValidationError(f"first ({first}) must not exceed second ({second}{of})")
    return store.log.consistency_proof(first, second).to_dict(), source


def add_log_routes(app: FastAPI, svc: Service) -> None:
    """Register ``/v1/log/checkpoint``, ``/v1/log/tree``, ``/v1/log/consistency`` and
    ``/v1/events/{event_id}/proof``."""

    @app.get("/v1/log/checkpoint", tags=["log"], response_class=Response,
             summary="The latest signed checkpoint kept (C2SP signed note)",
             responses={200: {"description": "The note, verbatim.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        404: {"description": "No checkpoint kept yet.", "content": _ERROR},
                        501: _NOT_PROVING})  # fmt: skip
    async def checkpoint(request: Request) -> Response:
        svc.authorize(request, "read")
        with svc.holder.lease() as store:
            try:
                note = await svc.run(store.log.latest_checkpoint)
            except errors.NotSupportedError as exc:
                raise _not_proving(exc) from None
        if note is None:
            raise HTTPError(
                404,
                "NotFound",
                "no checkpoint kept yet: the service signs them when audit.signing_key is "
                "set (docs/audit.md)",
            )
        return Response(note, media_type="text/plain; charset=utf-8")

    @app.get("/v1/log/tree", tags=["log"], summary="The current tree: size, base, root hash",
             responses={200: _json(_TREE_HEAD), 501: _NOT_PROVING})  # fmt: skip
    async def tree(request: Request) -> Response:
        svc.authorize(request, "read")
        with svc.holder.lease() as store:
            try:
                body = await svc.run(_tree_head, store)
            except errors.NotSupportedError as exc:
                raise _not_proving(exc) from None
        return json_response(body)

    @app.get("/v1/events/{event_id}/proof", tags=["log"],
             summary="Inclusion proof of one event (RFC 9162)",
             responses={200: _json(_INCLUSION, _SOURCE), 400: _BAD,
                        404: {"description": "No such event.", "content": _ERROR},
                        409: {"description": "The event is not in the tree of that size.",
                              "content": _ERROR},
                        501: _NOT_PROVING})  # fmt: skip
    async def proof(
        request: Request,
        event_id: str,
        size: str | None = Param(
            None, description="Tree size to prove against (default: the latest checkpoint's)."
        ),
    ) -> Response:
        svc.authorize(request, "read")
        wanted = _size_param(size, "size")
        if as_uuid(event_id) is None:
            raise HTTPError(404, "NotFound", f"{event_id!r} is not an event id (a UUID)")
        with svc.holder.lease() as store:
            try:
                body, source = await svc.run(_inclusion, store, event_id, wanted)
            except errors.NotSupportedError as exc:
                raise _not_proving(exc) from None
        return json_response(body, headers={SOURCE_HEADER: source})

    @app.get("/v1/log/consistency", tags=["log"],
             summary="Consistency proof: the tree of size second extends the tree of size first",
             responses={200: _json(_CONSISTENCY, _SOURCE), 400: _BAD,
                        501: _NOT_PROVING})  # fmt: skip
    async def consistency(
        request: Request,
        first: str = Param(description="The older tree's size."),
        second: str | None = Param(
            None, description="The newer tree's size (default: the latest checkpoint's)."
        ),
    ) -> Response:
        svc.authorize(request, "read")
        older = _size_param(first, "first")
        if older is None:
            raise errors.ValidationError("first must be a tree size (an integer >= 0)")
        newer = _size_param(second, "second")
        with svc.holder.lease() as store:
            try:
                body, source = await svc.run(_consistency, store, older, newer)
            except errors.NotSupportedError as exc:
                raise _not_proving(exc) from None
        return json_response(body, headers={SOURCE_HEADER: source})
