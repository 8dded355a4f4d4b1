"""``[store.eventstoredb]``: the EventStoreDB / KurrentDB backend's options (msgspec
only: read whenever any configuration loads, without kurrentdbclient)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import msgspec

__all__ = ["EventStoreDBConfig"]


class EventStoreDBConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    uri: str = "kurrentdb://127.0.0.1:2113?tls=false"
    timeout: str = "10s"
    log_stream: str = "eventvault"
    use_correlation_projection: bool = False

    DURATIONS: ClassVar[dict[str, timedelta]] = {"timeout": timedelta(days=1)}
