"""``eventvault serve``'s app in a thread, for the ``http`` backend's conformance runs.

A real uvicorn server on 127.0.0.1 (a port of the OS's choosing) serving
:func:`eventvault.server.create_app` over a backing store; the http backend then
talks to it over real TCP, as it would to a remote ``eventvault serve``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from eventvault import EventStore


class Served:
    """``backing`` served over HTTP at :attr:`url` until :meth:`stop`."""

    def __init__(self, backing: EventStore, config: Any = None, port: int = 0) -> None:
        import uvicorn

        from eventvault.server import create_app

        self.app = create_app(backing, config, retention=False, close_store=False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    @property
    def backing(self) -> EventStore:
        """The store the server serves now."""
        current: EventStore = self.app.service.holder.current
        return current

    def swap(self, store: EventStore) -> None:
        """Serve ``store`` instead (after tampering reopened it)."""
        if store is not self.backing:
            self.app.service.holder.swap(store)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()
        self.backing.close()


class ServedStores:
    """Each :meth:`new` store is an http client of its own server, serving a fresh
    store from ``backing``; :meth:`stop_all` stops every server (and closes what it
    serves)."""

    def __init__(self, backing: Callable[[], EventStore]) -> None:
        self._backing = backing
        self.by_url: dict[str, Served] = {}

    def new(self) -> EventStore:
        from .backends import open_http

        served = Served(self._backing())
        self.by_url[served.url] = served
        return open_http(served.url)

    def tamper_behind(self, inner: Callable[[EventStore, int], EventStore]) -> Any:
        """Tamper with the store behind the client's server; the client stays the same."""

        def tamper(store: EventStore, position: int) -> EventStore:
            served = self.by_url[store.url]  # type: ignore[attr-defined]
            served.swap(inner(served.backing, position))
            return store

        return tamper

    def stop_all(self) -> None:
        for served in self.by_url.values():
            served.stop()


def reopen_http(store: EventStore) -> EventStore:
    """A new client of the same server."""
    from .backends import open_http

    url: str = store.url  # type: ignore[attr-defined]
    store.close()
    return open_http(url)
