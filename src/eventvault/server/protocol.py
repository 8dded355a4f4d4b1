"""uvicorn's httptools protocol with a deadline for the request head (slow-loris).

uvicorn closes idle keep-alive connections, but a client that trickles a request
head one byte at a time would hold a connection (and its memory) forever. Here
every request head must be complete within ``header_timeout`` of its first byte
(or of the connection opening); otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadDeadlineProtocol"]


class HeadDeadlineProtocol(HttpToolsProtocol):
    """Hand the class to uvicorn (``Config(http=HeadDeadlineProtocol)``); set
    ``header_timeout`` on it first (a class attribute: worker processes import it)."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
