"""``eventvault serve``: run the HTTP service (uvicorn) on the configured store."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from typing import Any

import click

from .. import errors
from ..config import Config
from ..registry import open_store
from ..store import EventStore
from ..timeutil import parse_duration
from .common import Ctx, _handle_errors, pass_ctx

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


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
        return json.dumps(out, default=str)


def _setup_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("uvicorn.access", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command("serve")
@click.option("--host", default=None, help="Interface to bind (default: server.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Default: server.port.")
@click.option(
    "--log-format", type=click.Choice(("json", "text")), default="json", show_default=True
)
@pass_ctx
@_handle_errors
def serve(ctx: Ctx, /, host: str | None, port: int | None, log_format: str) -> None:
    """Serve the store over HTTP: appends (JSON, CloudEvents), queries, a live tail
    (SSE), health, metrics and an OpenAPI document (/docs, /openapi.json).

    SIGTERM or Ctrl-C stop it gracefully (in-flight appends finish); SIGHUP reloads
    the configuration (a new backend takes new requests; a bad file is logged and
    the old configuration kept).

    \b
    Examples:
      eventvault serve                                   # 127.0.0.1:8730, no tokens
      EVENTVAULT_TOKEN_CI=... eventvault --config prod.toml serve --host 0.0.0.0
    """
    try:
        import uvicorn

        from ..server import create_app
        from ..server.auth import TokenBook, is_loopback
        from ..server.protocol import with_header_timeout
    except ImportError as exc:
        raise errors.MissingExtraError("server", getattr(exc, "name", None) or "fastapi") from None

    config = ctx.config()
    bind_host = host or config.server.host
    bind_port = config.server.port if port is None else port
    tokens = TokenBook.from_config(config.server)
    if not tokens.enabled and not is_loopback(bind_host):
        raise errors.ConfigError(
            f"refusing to listen on {bind_host} without tokens: anyone who can reach it could "
            "read and append. Add [[server.tokens]] (see README, 'HTTP service') or bind "
            "127.0.0.1."
        )
    _setup_logging(log_format)
    store = open_store(config)
    app = create_app(store, config, tokens=tokens)
    service = app.state.service
    srv = config.server
    uv_config = uvicorn.Config(
        app,
        host=bind_host,
        port=bind_port,
        http=with_header_timeout(parse_duration(srv.header_timeout).total_seconds()),
        loop="uvloop" if _have("uvloop") else "asyncio",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(parse_duration(srv.graceful_timeout).total_seconds()),
        timeout_keep_alive=5,
        server_header=False,
    )
    server = _Server(uv_config, service)

    def reload() -> None:
        def load() -> tuple[Config, EventStore]:
            fresh = ctx.config()
            return fresh, open_store(fresh)

        logging.getLogger("eventvault.server").info("SIGHUP: reloading the configuration")
        asyncio.get_running_loop().run_in_executor(None, service.reload, load)

    server.on_startup_hook = reload
    # Requests allocate many short-lived containers; the default gen-0 threshold (700)
    # made the collector take ~15% of the CPU under load. Long-lived objects from
    # start-up are frozen out of collections.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    logging.getLogger("eventvault.server").info(
        "eventvault %s backend on http://%s:%d (%s)",
        store.backend_name,
        bind_host,
        bind_port,
        "tokens required" if tokens.enabled else "no tokens: loopback only",
    )
    server.run()


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, plus: SIGHUP reloads; shutdown first ends the live tails
        (they would otherwise hold the graceful shutdown for its whole timeout)."""

        on_startup_hook: Any = None

        def __init__(self, config: Any, service: Any) -> None:
            super().__init__(config)
            self.service = service

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.on_startup_hook is not None:
                hook = self.on_startup_hook
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hook)

        async def shutdown(self, sockets: Any = None) -> None:
            self.service.shutdown.set()
            await super().shutdown(sockets)

    return Server


def _Server(config: Any, service: Any) -> Any:
    return _server_class()(config, service)
