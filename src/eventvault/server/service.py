"""What the app's routes share (:class:`Service`): the store holder, tokens,
metrics, the worker threads every storage call runs in, the live-tail caps and the
settings — and the append itself, which the ``POST /v1/events`` route calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..config import Config
from ..model import RecordedEvent
from ..retention.plan import RetentionReport
from ..retention.schedule import RetentionScheduler
from ..spi import Proving, Retaining
from ..store import EventStore
from ..timeutil import parse_duration
from .auth import Principal, TokenBook
from .checkpoints import Checkpointer, load_signer, load_witnesses
from .holder import StoreHolder
from .metrics import Metrics
from .requests import (
    DEFAULTED_HEADER,
    HTTPError,
    error_response,
    events_from_body,
    expected_revision,
    from_store_error,
    json_response,
    mark_defaulted,
    read_body,
)
from .startup import check_serving
from .tails import Tails

__all__ = ["Appended", "Service", "Written"]

log = logging.getLogger("eventvault.server")


class Written(msgspec.Struct, frozen=True, gc=False):
    """What an append answers per event."""

    id: UUID
    position: int
    stream: str
    stream_revision: int
    recorded_at: datetime
    hash: str


class Appended(msgspec.Struct, frozen=True, gc=False):
    events: list[Written]
    first_position: int
    last_position: int


def _written(ev: RecordedEvent) -> Written:
    return Written(ev.id, ev.position, ev.stream, ev.stream_revision, ev.recorded_at, ev.hash)


def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(64, thread_name_prefix="eventvault-io")


class _Shutdown(threading.Event):
    """Set when the service stops; setting it also ends every live tail at once."""

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        super().set()
        self._on_set()


class Service:
    """What the app's routes share: the store (swappable), tokens, metrics, settings."""

    def __init__(self, holder: StoreHolder, config: Config, tokens: TokenBook, host: str) -> None:
        self.holder = holder
        self.host = host  # where the server listens: a reload is checked against it
        self.config = config
        self.tokens = tokens
        self.metrics = Metrics()
        srv = config.server
        self.tails = Tails(total=srv.max_subscribers, per_token=srv.max_subscribers_per_token)
        self.shutdown = _Shutdown(self.tails.close)
        # Worker threads for storage calls (many at once: they meet in group commit).
        self.executor = _pool()
        self._executor_closed = False
        self.scheduler: RetentionScheduler | None = None
        # (Loaded here, so a key that cannot sign refuses to serve: ConfigError.)
        self.signer = load_signer(config)
        load_witnesses(config)  # (a bad entry refuses the start, naming it)
        self.checkpointer: Checkpointer | None = None
        srv = config.server
        self.max_body = srv.max_body_bytes
        self.body_timeout = parse_duration(srv.body_timeout).total_seconds()
        self.heartbeat = parse_duration(srv.heartbeat).total_seconds()
        self.max_response = srv.max_response_bytes

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor_closed:  # a request that arrives as the service stops
            raise errors.StoreUnavailableError("the service is shutting down")
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except RuntimeError as exc:  # shut down between the check and the submit
            if not self._executor_closed:
                raise
            raise errors.StoreUnavailableError("the service is shutting down") from exc

    def open_executor(self) -> None:
        """The app's lifespan starts: fresh worker threads if a previous lifespan of
        the same app shut them down (a test harness may run it more than once)."""
        if self._executor_closed:
            self.executor = _pool()
            self._executor_closed = False

    def close_executor(self) -> None:
        """The lifespan ends: the worker threads stop once the calls they run return
        (queued ones are dropped: nobody awaits them any more)."""
        self._executor_closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)

    def authorize(self, request: Request, scope: str) -> Principal:
        principal = self.tokens.who(request.headers.get("authorization"))
        if principal is None:
            raise HTTPError(
                401,
                "Unauthorized",
                "send 'Authorization: Bearer <token>' with a token from server.tokens",
                {"WWW-Authenticate": 'Bearer realm="eventvault"'},
            )
        request.state.principal = principal.name
        if not principal.may(scope):
            raise HTTPError(403, "Forbidden", f"token {principal.name!r} lacks the {scope!r} scope")
        return principal

    def anonymous(self, endpoint: str) -> bool:
        """Whether ``endpoint`` answers without a token (``server.anonymous``)."""
        return endpoint in self.config.server.anonymous

    def gate(self, request: Request, endpoint: str, scope: str = "read") -> Principal | None:
        """The caller of an operations endpoint: None when it came without a token to an
        endpoint open to anonymous callers; otherwise as :meth:`authorize`."""
        if self.anonymous(endpoint) and not request.headers.get("authorization"):
            return self.tokens.who(None)  # (LOCAL when no tokens are configured)
        return self.authorize(request, scope)

    # -- appending -------------------------------------------------------------------

    async def append(self, request: Request, expected: str | None) -> Response:
        """POST /v1/events (also reached by :class:`_Edge`'s fast path)."""
        m = self.metrics
        try:
            self.authorize(request, "append")
            body = await read_body(request, self.max_body, self.body_timeout)
            started = time.perf_counter()
            batch, _single = events_from_body(
                request.headers.get("content-type", ""), request.headers, body
            )
            marked = request.headers.get(DEFAULTED_HEADER)
            if marked:
                mark_defaulted(batch, marked)
            revision = expected_revision(expected)
            with self.holder.lease() as store:
                result = await self.run(partial(store.append, batch, expected_revision=revision))
        except HTTPError as exc:
            m.append_requests.labels(exc.kind).inc()
            return error_response(exc.status, exc.kind, exc.message, exc.headers)
        except errors.EventVaultError as exc:
            mapped = from_store_error(exc)
            m.append_requests.labels(mapped.kind).inc()
            return error_response(mapped.status, mapped.kind, mapped.message, None, mapped.details)
        m.append_latency.observe(time.perf_counter() - started)
        m.appends_ok.inc()
        written = len(batch) if result.written is None else result.written
        m.events_appended.inc(written)
        checkpointer = self.checkpointer
        if checkpointer is not None and written:
            checkpointer.appended(written)
        if written < len(batch):
            m.events_retried.inc(len(batch) - written)
        if "return=representation" in request.headers.get("prefer", ""):  # (RFC 7240)
            # The whole records and how many were new: what the http backend returns.
            return json_response({"events": result.events, "written": written}, 201)
        out = Appended(
            [_written(e) for e in result.events], result.first_position, result.last_position
        )
        return json_response(out, 201)

    # -- retention -------------------------------------------------------------------

    def start_retention(self) -> None:
        store = self.holder.current
        policy = store.retention_policy
        if policy is None or self.config.retention is None:
            return
        if not isinstance(store.backend, Retaining):
            log.warning(
                "retention: the %s backend cannot apply it; not scheduled", store.backend_name
            )
            return
        every = parse_duration(self.config.retention.check_interval)
        self.scheduler = RetentionScheduler(store, policy, every, on_report=self._retention_ran)
        self.scheduler.start()
        log.info("retention: applied every %s", self.config.retention.check_interval)

    def stop_retention(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None

    def _retention_ran(self, report: RetentionReport) -> None:
        self.metrics.retention_runs.labels("ok").inc()
        self.metrics.events_removed.inc(report.removed)

    # -- checkpoints -----------------------------------------------------------------

    def start_checkpoints(self) -> None:
        """Sign checkpoints (``[audit]``) of the current store in a thread, if a key
        is configured and the backend keeps a tree."""
        if self.signer is None:
            return
        store = self.holder.current
        if not isinstance(store.backend, Proving):
            log.warning(
                "checkpoints: the %s backend keeps no Merkle tree; serving without signed "
                "checkpoints (audit.signing_key is ignored)",
                store.backend_name,
            )
            return
        m = self.metrics

        def signed(size: int) -> None:
            m.checkpoints.labels("ok").inc()
            m.checkpoint_size.set(size)

        self.checkpointer = Checkpointer.from_config(
            self.holder, self.signer, self.config, signed, m.checkpoints.labels("failed").inc
        )
        self.checkpointer.start()
        audit = self.config.audit
        log.info(
            "checkpoints: signed by key %s+%08x every %d events or %s",
            self.signer.name,
            self.signer.key_id,
            audit.checkpoint_events,
            audit.checkpoint_interval,
        )

    def stop_checkpoints(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None

    # -- reload ----------------------------------------------------------------------

    def reload(self, load: Callable[[], Config], opener: Callable[[Config], EventStore]) -> bool:
        """Swap in a new configuration's store and tokens (SIGHUP). A bad configuration
        (or an unreachable backend) keeps the old one, and so does one that start-up
        would refuse (:func:`check_serving`: e.g. no tokens on a public bind); the
        reason is logged and counted (``eventvault_config_reloads{outcome}``)."""
        try:
            config = load()
        except Exception as exc:  # keep serving, say why
            self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        try:
            tokens = check_serving(config, self.host)
            signer = load_signer(config)  # (a key that cannot sign keeps the old one)
            load_witnesses(config)
        except (errors.ConfigError, errors.MissingExtraError) as exc:
            self.metrics.reloads.labels("refused").inc()
            log.error("reload refused, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        try:
            store = opener(config)
        except Exception as exc:  # keep serving, say why
            self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        if (config.server.host, config.server.port) != (
            self.config.server.host,
            self.config.server.port,
        ):
            log.warning("reload: server.host/port changes need a restart; still listening")
        self.stop_retention()
        self.stop_checkpoints()
        if self.signer is not None and signer is None:
            log.warning("reload: audit.signing_key is no longer set: no more signed checkpoints")
        old = self.holder.current
        self.tokens = tokens
        self.config = config
        self.signer = signer
        self.holder.swap(store, config)
        self.start_retention()
        self.start_checkpoints()
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reloaded %s: %s backend (was %s); in-flight requests finish on the old one",
            config.source,
            store.backend_name,
            old.backend_name,
        )
        return True
