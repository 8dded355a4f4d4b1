"""The ``http`` backend: a client of ``eventvault serve`` (``pip install
'eventvault[http]'``).

* :class:`~.store.HttpEventStore` — the store API over HTTP (threads).
* :class:`~.aio.AsyncHttpEventStore` — the same methods as coroutines.
* :class:`~.producer.Producer` — a batching, non-blocking sender for hot loops.
* :class:`~.loghandler.EventLogHandler` — ``logging`` records as events.

httpx is imported only when one of them is used, so ``import eventvault`` never
needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ...config import Config
from ...errors import MissingExtraError
from ...timeutil import parse_duration
from .config import HttpConfig

if TYPE_CHECKING:
    from .aio import AsyncHttpEventStore
    from .loghandler import EventLogHandler
    from .producer import Producer
    from .store import HttpEventStore

__all__ = ["AsyncHttpEventStore", "EventLogHandler", "HttpEventStore", "Producer", "from_config"]

_WHERE = {
    "HttpEventStore": ".store",
    "AsyncHttpEventStore": ".aio",
    "Producer": ".producer",
    "EventLogHandler": ".loghandler",
}


def _need_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("http", exc.name or "httpx") from None


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _need_httpx()
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


def store_options(config: Config) -> dict[str, Any]:
    """The keyword arguments of both clients, from ``[store.http]``."""
    from .protocol import check_url

    http = config.store.options(HttpConfig)
    return {
        "url": check_url(http.url, f"{config.source}: store.http.url"),
        "token": http.token or None,
        "timeout": parse_duration(http.timeout).total_seconds(),
        "retries": http.retries,
        "ca_file": http.ca_file,
        "verify_tls": http.verify_tls,
    }


def from_config(config: Config, *, create: bool = True) -> HttpEventStore:
    """The store ``[store.http]`` names (``create`` does not apply: the server's store
    exists while it serves)."""
    options = store_options(config)
    _need_httpx()
    from .store import HttpEventStore

    return HttpEventStore(**options)
