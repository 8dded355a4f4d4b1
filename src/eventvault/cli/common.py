"""What every ``eventvault`` command shares: exit codes, the context, errors, filters."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import msgspec

from .. import errors
from ..backends.file.config import FileConfig
from ..config import Config
from ..cursor import cursor_resolved_at
from ..model import Query
from ..registry import load_config, open_store
from ..store import EventStore
from ..timeutil import parse_time
from ..tlog.note import InvalidSignatureError, NoteError, UnverifiedNoteError
from ..tlog.proofs import ProofError

F = TypeVar("F", bound=Callable[..., Any])

(
    EXIT_OK,
    EXIT_INTERNAL,
    EXIT_INPUT,
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_UNAVAILABLE,
    EXIT_INTEGRITY,
    EXIT_NO_STORE,
) = range(8)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2), as shells report it
#: Most specific first: the first matching class decides the exit code.
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (errors.ConfigError, EXIT_CONFIG),
    (errors.MissingExtraError, EXIT_CONFIG),
    (errors.ValidationError, EXIT_INPUT),
    (errors.EventNotFoundError, EXIT_INPUT),  # (a proof of an id no event has)
    (errors.ConflictError, EXIT_CONFLICT),
    (errors.CorruptionError, EXIT_INTEGRITY),
    # A proof or a signature that does not verify is an integrity failure; a note
    # that is not one at all is bad input.
    (ProofError, EXIT_INTEGRITY),
    (InvalidSignatureError, EXIT_INTEGRITY),
    (UnverifiedNoteError, EXIT_INTEGRITY),
    (NoteError, EXIT_INPUT),
    (errors.StoreNotFoundError, EXIT_NO_STORE),
    (errors.StoreError, EXIT_UNAVAILABLE),
    (errors.AccessError, EXIT_CONFIG),
    (errors.NotSupportedError, EXIT_INPUT),
    (errors.EventVaultError, EXIT_INTERNAL),
]


def _encodable_name(
    kind: click.Path | click.File,
    value: Any,
    param: click.Parameter | None,
    ctx: click.Context | None,
) -> None:
    """A usage error (exit 2) for a file name the OS cannot take — a lone surrogate
    can reach argv through Python callers — rather than a traceback from ``stat``."""
    if isinstance(value, str):
        try:
            os.fsencode(value)
        except UnicodeEncodeError:
            kind.fail(f"{value!r} cannot be a file name (it is not valid text)", param, ctx)


class PathArg(click.Path):
    """``click.Path`` that refuses names the file system cannot encode."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        _encodable_name(self, value, param, ctx)
        return super().convert(value, param, ctx)


class FileArg(click.File):
    """``click.File`` that refuses names the file system cannot encode."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        _encodable_name(self, value, param, ctx)
        return super().convert(value, param, ctx)


class Ctx:
    """What the top-level options decided, handed to every command."""

    def __init__(
        self, config: str | None, backend: str | None, quiet: bool, url: str | None = None
    ) -> None:
        self.config_path = config
        self.backend = backend
        self.quiet = quiet
        self.url = url  # --url: the server of the http backend
        self.read_only = False  # --read-only (readers)

    def config(self) -> Config:
        env = dict(os.environ)
        if self.url:
            env["EVENTVAULT_URL"] = self.url
            env.setdefault("EVENTVAULT_BACKEND", "http")  # (--url alone means a server)
        if self.backend:
            env["EVENTVAULT_BACKEND"] = self.backend
        cfg = load_config(self.config_path, env=env)
        if self.read_only:
            file_cfg = msgspec.structs.replace(cfg.store.options(FileConfig), read_only=True)
            cfg = msgspec.structs.replace(cfg, store=cfg.store.with_options(file_cfg))
        return cfg

    @contextmanager
    def store(self, *, create: bool = False) -> Iterator[EventStore]:
        """The configured store. Only commands that write pass ``create=True``: a
        reader on a path with no store fails (exit 7) instead of creating one."""
        with open_store(self.config(), create=create) as store:
            self.tell(store)
            yield store

    def tell(self, store: EventStore) -> None:
        """What the backend says about how it opened the store (a read-only open, a
        recovery it could not write) — on stderr, before any output."""
        for notice in getattr(store, "notices", ()):
            if "opened read-only" in notice:
                self.say(f"note: {notice}")
            else:  # a warning even with -q: the store needs a writer's attention
                click.echo(f"warning: {notice}", err=True)

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (only on a terminal, and not with --quiet)."""
        if self.quiet or not sys.stderr.isatty():
            yield lambda done: None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   _rate_column(), TimeRemainingColumn()]  # fmt: skip
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda done: bar.update(task, completed=done)


def _rate_column() -> Any:
    """Events per second as a person reads it: ``62,471 ev/s`` (``– ev/s`` before
    there is a rate), not ``None`` or ``62470.989253523134``."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("– ev/s" if speed is None else f"{speed:,.0f} ev/s")

    return Rate()


def _handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.EventVaultError as exc:
            code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
            click.echo(f"error: {exc}", err=True)
            sys.exit(code)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(EXIT_OK)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


pass_ctx = click.make_pass_decorator(Ctx)


def read_only_option(fn: F) -> F:
    """``--read-only`` for the commands that only read (query, tail, stats, verify)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, read_only: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(Ctx)
        if read_only and ctx is not None:
            ctx.read_only = True
        return fn(*args, **kwargs)

    option = click.option(
        "--read-only",
        is_flag=True,
        help="Open the store for reading only: write nothing, not even a recovery "
        "(automatic when the store's files cannot be written).",
    )
    return option(wrapper)  # type: ignore[return-value]


def _time(value: str | None, name: str, now: datetime | None = None) -> Any:
    if value is None:
        return None
    try:
        return parse_time(value, now=now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def query_options(fn: F) -> F:
    """The filter options shared by query and tail."""
    options = [
        click.option(
            "--type",
            "-t",
            "types",
            multiple=True,
            help="Type or pattern with trailing * (repeat for OR).",
        ),
        click.option("--actor", "-a", "actors", multiple=True, help="Actor (repeat for OR)."),
        click.option(
            "--correlation-id",
            "correlation_ids",
            multiple=True,
            help="Correlation id (repeat for OR).",
        ),
        click.option("--stream", "-s", "streams", multiple=True, help="Stream (repeat for OR)."),
        click.option(
            "--causation-id",
            "causation_ids",
            multiple=True,
            help="Causation id: the event or command that caused it (repeat for OR).",
        ),
        click.option(
            "--since",
            default=None,
            metavar="TIME",
            help="Recorded at or after: ISO-8601, 'now', or ago like 2h, 30m, 7d.",
        ),
        click.option("--until", default=None, metavar="TIME", help="Recorded before TIME."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _query(
    types: tuple[str, ...],
    actors: tuple[str, ...],
    correlation_ids: tuple[str, ...],
    streams: tuple[str, ...],
    causation_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    cursor: str | None = None,
    resolved_at: datetime | None = None,
    **extra: Any,
) -> Query:
    """The query the filter options describe. Relative times (``2h``) resolve against
    now — or, continuing from ``cursor``, against the instant the cursor's query
    resolved them (``resolved_at`` when the cursor is not an event cursor: a runs
    listing's), so the same options name the same query on every page."""
    resolved = resolved_at or (cursor_resolved_at(cursor) if cursor else None)
    resolved = resolved or datetime.now(UTC)
    start = _time(since, "--since", resolved)
    end = _time(until, "--until", resolved)
    if start is not None and end is not None and start >= end:
        # (an empty answer would look like "nothing happened": say why instead)
        raise errors.ValidationError(
            f"--since {since} ({_iso(start)}) is not before --until {until} ({_iso(end)}): "
            "the range is empty (--since is the older end, e.g. --since 3h --until 2h)"
        )
    after, before = extra.get("after"), extra.get("before")
    if after is not None and before is not None and before <= after:
        raise errors.ValidationError(
            f"--before {before} is not above --after {after}: the range is empty"
        )
    return Query(
        types=types,
        actors=actors,
        correlation_ids=correlation_ids,
        streams=streams,
        causation_ids=causation_ids,
        since=start,
        until=end,
        resolved_at=resolved if since is not None or until is not None else None,
        **extra,
    )


def _iso(value: Any) -> str:
    return str(value.isoformat(timespec="seconds").replace("+00:00", "Z"))
