"""``eventvault serve``: run the HTTP service (uvicorn) on the configured store."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from typing import Any

import click

from .. import errors
from ..config import Config
from ..registry import open_store
from ..spi import Retaining
from ..timeutil import parse_duration
from .common import Ctx, _handle_errors, pass_ctx

log = logging.getLogger("eventvault.server")


@click.command("serve")
@click.option("--host", default=None, help="Interface to bind (default: server.host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Default: server.port.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (each a store client; file and postgres take several writers).",
)
@click.option(
    "--log-format", type=click.Choice(("json", "text")), default="json", show_default=True
)
@pass_ctx
@_handle_errors
def serve(ctx: Ctx, /, host: str | None, port: int | None, workers: int, log_format: str) -> None:
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
        from ..server.process import limit_heads, setup_logging, tune_gc
        from ..server.protocol import HeadDeadlineProtocol
        from ..server.startup import check_serving
    except ImportError as exc:
        raise errors.MissingExtraError("server", getattr(exc, "name", None) or "fastapi") from None

    config = ctx.config()
    if config.backend == "http":  # (a server in front of a server: say so, do not proxy)
        raise errors.NotSupportedError(
            "serve needs a store of its own (file, postgres, ...): the http backend is a "
            "client of another `eventvault serve`"
        )
    bind_host = host or config.server.host
    bind_port = config.server.port if port is None else port
    tokens = check_serving(config, bind_host, workers=workers)
    setup_logging(log_format)
    srv = config.server
    limit_heads(srv)
    options: dict[str, Any] = {
        "host": bind_host,
        "port": bind_port,
        "http": HeadDeadlineProtocol,
        "loop": "uvloop" if _have("uvloop") else "asyncio",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(parse_duration(srv.graceful_timeout).total_seconds()),
        "timeout_keep_alive": 5,
        "server_header": False,
    }
    mode = "tokens required" if tokens.enabled else "no tokens: loopback only"
    if workers > 1:
        _serve_workers(ctx, config, options, workers, mode)
        return
    # Bind before anything is announced: a busy port is one clear error, not a
    # "listening on…" line followed by a failure.
    sock = bind(bind_host, bind_port)
    try:
        store = open_store(config)
    except BaseException:
        sock.close()
        raise
    app = create_app(store, config, tokens=tokens, host=bind_host)
    service = app.state.service
    server = _server_class()(uvicorn.Config(app, **options), service)

    def reload() -> None:
        log.info("SIGHUP: reloading the configuration")
        asyncio.get_running_loop().run_in_executor(None, service.reload, ctx.config, open_store)

    server.on_hup = reload
    bound_port = sock.getsockname()[1]
    log.info("eventvault %s backend on http://%s:%d (%s)", store.backend_name, bind_host,
             bound_port, mode)  # fmt: skip
    tune_gc()
    # uvicorn re-raises the signal that stopped it once it has shut down; after a
    # graceful shutdown (SIGTERM or Ctrl-C) we exit 0 instead of dying of the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    server.run(sockets=[sock])


def _serve_workers(
    ctx: Ctx, config: Config, options: dict[str, Any], workers: int, mode: str
) -> None:
    """Several worker processes behind one socket (uvicorn's supervisor). Each builds
    the app from the same configuration (``eventvault.server.factory``). Scheduled
    retention runs here, in the supervisor, once. SIGHUP replaces the workers one by
    one (a new worker must start — i.e. its configuration load — before the old one
    stops gracefully) and reloads the retention schedule."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from ..retention.schedule import RetentionScheduler
    from ..server.startup import check_serving

    os.environ["EVENTVAULT_SERVE_CONFIG"] = (
        "" if config.source == "built-in default" else (config.source)
    )
    if ctx.backend:
        os.environ["EVENTVAULT_BACKEND"] = ctx.backend
    os.environ["EVENTVAULT_SERVE_HEADER_TIMEOUT"] = str(options["http"].header_timeout)
    os.environ["EVENTVAULT_SERVE_HOST"] = options["host"]  # (workers check against it)
    uv_config = uvicorn.Config(
        "eventvault.server.factory:app", factory=True, workers=workers, **options
    )
    state: dict[str, Any] = {}

    def start_retention(cfg: Config) -> None:
        store = open_store(cfg)
        policy = store.retention_policy
        if policy is None or cfg.retention is None or not isinstance(store.backend, Retaining):
            store.close()
            return
        sched = RetentionScheduler(store, policy, parse_duration(cfg.retention.check_interval))
        sched.start()
        state.update(store=store, scheduler=sched)

    def stop_retention() -> None:
        if "scheduler" in state:
            state.pop("scheduler").stop()
            state.pop("store").close()

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            try:
                fresh = ctx.config()
                # What start-up would refuse, a reload refuses too (each new worker
                # checks again, in the factory).
                check_serving(fresh, options["host"], workers=workers)
            except errors.EventVaultError as exc:
                log.error("SIGHUP: keeping the current configuration: %s", exc)  # noqa: TRY400
                return
            stop_retention()
            start_retention(fresh)
            super().handle_hup()

    sock = bind(options["host"], options["port"])
    start_retention(config)
    log.info("eventvault %s backend on http://%s:%d (%s), %d workers", config.backend,
             options["host"], sock.getsockname()[1], mode, workers)  # fmt: skip
    try:
        Supervisor(uv_config, sockets=[sock]).run()
    finally:
        stop_retention()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (as uvicorn would bind it), or a
    :class:`~eventvault.errors.StoreUnavailableError` saying why not (exit 5)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        busy = exc.errno == errno.EADDRINUSE
        hint = " (another server is using it: choose another --port)" if busy else ""
        raise errors.StoreUnavailableError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
        ) from None
    sock.set_inheritable(True)
    return sock


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, plus: SIGHUP reloads; shutdown first ends the live tails
        (they would otherwise hold the graceful shutdown for its whole timeout)."""

        on_hup: Any = None

        def __init__(self, config: Any, service: Any) -> None:
            super().__init__(config)
            self.service = service

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.on_hup is not None:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.on_hup)

        async def shutdown(self, sockets: Any = None) -> None:
            self.service.shutdown.set()
            await super().shutdown(sockets)

    return Server
