"""``[store.http]``: the http backend's options, a store behind ``eventvault serve``
(msgspec only: read whenever any configuration loads, without httpx)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import msgspec

__all__ = ["HttpConfig"]


class HttpConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A store behind ``eventvault serve`` (``backend = "http"``)."""

    url: str | None = None  # required with backend = "http", e.g. https://ev.example:8730
    token: str | None = None  # a bearer token; keep it out of the file: "${EVENTVAULT_TOKEN}"
    timeout: str = "30s"  # connect / read / write, each
    retries: int = 3  # extra attempts, only where safe (see eventvault.backends.http)
    ca_file: str | None = None  # a PEM bundle to trust instead of the system's
    verify_tls: bool = True

    INTEGERS: ClassVar[dict[str, tuple[int, int]]] = {"retries": (0, 100)}
    DURATIONS: ClassVar[dict[str, timedelta]] = {"timeout": timedelta(days=1)}
    PATHS: ClassVar[tuple[str, ...]] = ("ca_file",)
