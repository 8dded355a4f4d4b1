"""An app over a real file store, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventvault import load_config
from eventvault.backends.file import FileEventStore
from eventvault.config import Config
from eventvault.server import create_app

ClientMaker = Callable[..., Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server_config(**server: Any) -> Config:
    return load_config({"server": server})


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (start-up and shut-down) around a client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def make_client(tmp_path: Path) -> ClientMaker:
    def make(config: Config | None = None, **server: Any) -> Any:
        store = FileEventStore(tmp_path / "store")
        app = create_app(store, config if config is not None else server_config(**server))
        return running(app)

    return make
