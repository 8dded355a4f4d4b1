"""The edge tests reuse the server tests' in-process app over a real file store."""

from __future__ import annotations

from ..server.conftest import anyio_backend, make_client

__all__ = ["anyio_backend", "make_client"]
