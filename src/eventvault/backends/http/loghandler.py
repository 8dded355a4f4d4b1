"""``EventLogHandler``: standard-library log records as events, through a
:class:`~.producer.Producer` (so logging never waits for the server).

Each record becomes an event of type ``<prefix><logger name>`` (``log.myapp.db``)
with ``data = {"level", "message", "logger", "module", "line"}`` (and
``"exception"`` when the record carries one), ``occurred_at`` the record's time,
and the correlation id the context variable :data:`correlation_id` (or the one
given) holds when the record is made — set it per request, job or agent run.
"""

from __future__ import annotations

import contextvars
import logging
import re
from datetime import UTC, datetime

from ... import errors
from ...model import NewEvent
from .producer import Producer

__all__ = ["EventLogHandler", "correlation_id"]

#: The correlation id log records are stamped with (None: none).
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "eventvault_correlation_id", default=None
)

_UNFIT = re.compile(r"[^A-Za-z0-9_.:-]+")


class EventLogHandler(logging.Handler):
    """Send log records to ``producer``. A record that cannot be taken (the buffer is
    full with ``when_full="raise"``) is counted in :attr:`dropped`, never raised."""

    def __init__(
        self,
        producer: Producer,
        *,
        type_prefix: str = "log.",
        stream: str = "logs",
        actor: str | None = None,
        context: contextvars.ContextVar[str | None] = correlation_id,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.producer = producer
        self.type_prefix = type_prefix
        self.stream = stream
        self.actor = actor
        self.context = context
        self.dropped = 0

    def event_type(self, record: logging.LogRecord) -> str:
        name = _UNFIT.sub("_", record.name).strip("._") or "root"
        return f"{self.type_prefix}{name}"

    def to_event(self, record: logging.LogRecord) -> NewEvent:
        data = {
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "module": record.module,
            "line": record.lineno,
        }
        if record.exc_info:
            data["exception"] = logging.Formatter().formatException(record.exc_info)
        return NewEvent(
            type=self.event_type(record),
            stream=self.stream,
            actor=self.actor,
            correlation_id=self.context.get(),
            occurred_at=datetime.fromtimestamp(record.created, UTC),
            data=data,
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.producer.append(self.to_event(record))
        except errors.BufferFullError:
            self.dropped += 1
        except Exception:
            self.handleError(record)
