"""uvicorn's httptools protocol with bounds on the request head: a deadline
(slow-loris) and a size (memory).

uvicorn closes idle keep-alive connections, but a client that trickles a request
head one byte at a time would hold a connection (and its memory) forever. Here
every request head must be complete within ``header_timeout`` of its first byte
(or of the connection opening); otherwise the connection is closed.

Nor does anything bound a head's size: headers of megabytes were buffered and
parsed before any authentication. Here a head larger than ``max_head_bytes``
(request line and header fields) or with more than ``max_headers`` fields is
answered ``431 Request Header Fields Too Large`` and the connection closed. The
parser buffers a header it has not finished, so the bytes of a head still in
progress are counted as they arrive: the memory a connection can make the server
hold is at most the bound plus one read.
"""

from __future__ import annotations

import asyncio

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadDeadlineProtocol"]


#: Seconds a refused connection is drained before it is closed.
_LINGER = 2.0


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the bounds."""


class HeadDeadlineProtocol(HttpToolsProtocol):
    """Hand the class to uvicorn (``Config(http=HeadDeadlineProtocol)``); set
    ``header_timeout``, ``max_head_bytes`` and ``max_headers`` on it first (class
    attributes: worker processes import it)."""

    header_timeout: float = 10.0
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True  # the bytes arriving now belong to a request head
    _head_arrived = 0  # bytes received in earlier reads while the head was in progress
    _head_bytes = 0  # of the head in progress, as parsed (request target + fields)
    _head_fields = 0
    _refused: str | None = None

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

    def data_received(self, data: bytes) -> None:
        # (uvicorn's own, plus the head bounds.)
        if self._refused is not None:
            return
        if self._in_head:
            if self._head_arrived > self.max_head_bytes:  # (earlier reads: all head)
                self._refuse(f"the request head is over {self.max_head_bytes} bytes")
                return
            self._head_arrived += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused is not None:  # one of our callbacks stopped the parser
                self._send_431(self._refused)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._refused = f"the request head is over {self.max_head_bytes} bytes"
            raise _HeadTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_arrived = self._head_bytes = self._head_fields = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > self.max_headers:
            self._refused = f"the request has over {self.max_headers} header fields"
            raise _HeadTooLarge
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def _refuse(self, reason: str) -> None:
        self._refused = reason
        self._send_431(reason)

    def _send_431(self, reason: str) -> None:
        self._disarm()
        key = "max_headers" if "fields" in reason else "max_head_bytes"
        body = msgspec.json.encode(
            {
                "error": {
                    "type": "RequestHeaderFieldsTooLarge",
                    "message": f"{reason} (server.{key}); send a smaller request head",
                }
            }
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        # Half-close and read (and drop) what the client is still sending for a
        # moment: closing with unread bytes would reset the connection, and the
        # client could lose the answer.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER, self.transport.close)
        else:  # pragma: no cover - (TCP transports can)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
