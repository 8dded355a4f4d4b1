"""Process set-up for a serving process — the single ``eventvault serve`` process and
each ``--workers`` worker (:mod:`.factory`): the log format, the garbage collector,
the HTTP parser's limits. (The command, ``eventvault.cli.serve``, imports these; the
server never imports from the CLI.)"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Any

import msgspec

from ..config import ServerConfig
from ..timeutil import parse_duration
from .protocol import HeadDeadlineProtocol

__all__ = ["JsonFormatter", "limit_heads", "setup_logging", "tune_gc"]

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

_encode = msgspec.json.Encoder(enc_hook=str).encode  # (4x json.dumps: one line per request)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _encode(out).decode()


def setup_logging(fmt: str) -> None:
    """Every log line to stderr, as JSON (``fmt`` "json") or text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("uvicorn.access", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def tune_gc() -> None:
    """Requests allocate many short-lived containers; with the default gen-0 threshold
    (700) the collector took ~15% of the CPU under load. What start-up built is
    frozen out of collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def limit_heads(server: ServerConfig, header_timeout: float | None = None) -> None:
    """The HTTP parser's limits on a request head (:class:`.protocol.HeadDeadlineProtocol`):
    size and header count from ``server``; the deadline from ``header_timeout`` or,
    if None, ``server.header_timeout``."""
    if header_timeout is None:
        header_timeout = parse_duration(server.header_timeout).total_seconds()
    HeadDeadlineProtocol.header_timeout = header_timeout
    HeadDeadlineProtocol.max_head_bytes = server.max_head_bytes
    HeadDeadlineProtocol.max_headers = server.max_headers
