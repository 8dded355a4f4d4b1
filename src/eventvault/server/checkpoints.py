"""Signed checkpoints kept by the service (``[audit]``, docs/audit.md).

When ``audit.signing_key`` names a signing key, ``eventvault serve`` loads it at
start-up (and on every reload: a key that cannot be loaded refuses the start, or
keeps the old configuration on a reload — the service never drops to unsigned
without saying so) and a :class:`Checkpointer` thread signs the store's tree and
keeps the checkpoint in the store (``store.log.checkpoint(signer, save=True)``):

* at start-up, if the tree grew since the latest kept checkpoint;
* once ``checkpoint_events`` events were appended since the last one;
* ``checkpoint_interval`` after the last one, if anything was appended meanwhile.

The thread decides from the tree's size (``store.log.state()``, one cheap read per
tick), so appends by another process (``--workers``, a CLI) count too; appends
through this service wake it at once when they reach ``checkpoint_events``. It
signs off the event loop and outside every append: an append never waits for it.
Several workers may each sign the same size; before signing, a thread re-reads
the latest kept checkpoint and skips a size already kept.

The key is never logged: only its name and id (public, in every signature line).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import ConfigError, EventVaultError, MissingExtraError, ValidationError
from ..spi import Proving
from ..timeutil import parse_duration
from ..tlog.checkpoint import Checkpoint
from ..tlog.note import NoteSigner, read_key_file
from ..tlog.witness import CosignatureVerifier, WitnessRefusal, request_cosignature
from .holder import StoreHolder

if TYPE_CHECKING:
    from ..store import EventStore

__all__ = ["Checkpointer", "kept_size", "load_signer", "load_witnesses"]

log = logging.getLogger("eventvault.server")

_PRIVATE = "PRIVATE+KEY+"


def load_signer(config: Config) -> NoteSigner | None:
    """The signer ``audit.signing_key`` names (None when unset); ConfigError, saying
    what to fix, if the file is missing, unreadable, accessible by other users, or
    not a signing key. The key's text never appears in a message."""
    name = config.audit.signing_key
    if not name:
        return None
    path = Path(name).expanduser()
    what = f"audit.signing_key {path}"
    try:
        text = read_key_file(path)  # (refuses a signer key others can read or write)
    except ValidationError as exc:  # (the message names the file)
        raise ConfigError(f"audit.signing_key: {exc}") from None
    if not text.startswith(_PRIVATE):
        raise ConfigError(
            f"{what} is not a signing key (it must start with {_PRIVATE}; a verifier key "
            "cannot sign). Create one with `eventvault keygen`"
        )
    try:
        return NoteSigner.from_key(text)
    except MissingExtraError:
        raise
    except ImportError:
        raise MissingExtraError("audit", "cryptography") from None
    except ValidationError as exc:
        raise ConfigError(f"{what} is not a valid signing key: {exc}") from None


def load_witnesses(config: Config) -> list[tuple[str, float, CosignatureVerifier]]:
    """``audit.witnesses`` as (url, timeout, key); ConfigError naming a bad entry."""
    out = []
    for k, w in enumerate(config.audit.witnesses):
        where = f"audit.witnesses[{k}]"
        if not w.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url {w.url!r} must be an http:// or https:// URL")
        try:
            key = CosignatureVerifier.from_key(w.key)
            timeout = parse_duration(w.timeout).total_seconds()
        except ValidationError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{where}.timeout: {exc}") from None
        out.append((w.url, timeout, key))
    return out


def kept_size(note: str | None) -> int | None:
    """The tree size of a kept checkpoint (its signature unchecked: only the size is
    used, to choose what to sign or prove against), or None."""
    if not note:
        return None
    body, sep, _ = note.partition("\n\n")
    if not sep:
        return None
    try:
        return Checkpoint.from_text(body + "\n").size
    except ValidationError:
        return None


class Checkpointer:
    """Signs and keeps checkpoints of the store ``holder`` holds now, in a thread."""

    def __init__(
        self,
        holder: StoreHolder,
        signer: NoteSigner,
        every_events: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_signed: Callable[[int], None] | None = None,
        on_failed: Callable[[], None] | None = None,
        witnesses: Sequence[tuple[str, float, CosignatureVerifier]] = (),
    ) -> None:
        if every_events < 1 or interval <= 0:
            raise ValueError("checkpoint_events and checkpoint_interval must be positive")
        self.holder = holder
        self.signer = signer
        self.every_events = every_events
        self.interval = interval
        self.poll = min(interval, 1.0)  # (the interval's accuracy; a tick is one read)
        self._clock = clock
        self._on_signed = on_signed
        self._on_failed = on_failed
        self._lock = threading.Lock()
        self._pending = 0  # appended through this service since the last checkpoint
        self._last_size: int | None = None  # the latest kept checkpoint's size
        self._last_at = clock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.signed = 0
        self.failures = 0
        self.witnesses = list(witnesses)
        #: The size each witness co-signed last, as far as this process knows (a
        #: witness that knows better answers 409 with its size, and is asked again).
        self._witnessed: dict[str, int] = {}
        #: Cosignatures refused or not obtained (each logged).
        self.witness_failures = 0

    @classmethod
    def from_config(
        cls,
        holder: StoreHolder,
        signer: NoteSigner,
        config: Config,
        on_signed: Callable[[int], None] | None = None,
        on_failed: Callable[[], None] | None = None,
    ) -> Checkpointer:
        """Every ``audit.checkpoint_events`` events or ``audit.checkpoint_interval``."""
        every = parse_duration(config.audit.checkpoint_interval).total_seconds()
        return cls(holder, signer, config.audit.checkpoint_events, every,
                   on_signed=on_signed, on_failed=on_failed,
                   witnesses=load_witnesses(config))  # fmt: skip

    def appended(self, count: int) -> None:
        """``count`` events were appended through the service (called after each append)."""
        with self._lock:
            self._pending += count
            due = self._pending >= self.every_events
        if due:
            self._wake.set()

    def run_once(self, *, startup: bool = False) -> str | None:
        """Sign and keep a checkpoint if one is due; the note, or None."""
        try:
            return self._run_once(startup)
        except EventVaultError as exc:
            self.failures += 1
            if self._on_failed is not None:
                self._on_failed()
            # The reason, not a traceback: operational (e.g. a database restart).
            log.error("checkpoint failed (will retry): %s", exc)  # noqa: TRY400
            return None

    def _run_once(self, startup: bool) -> str | None:
        with self.holder.lease() as store:
            if not isinstance(store.backend, Proving):
                return None
            tree = store.log
            size = tree.state().size
            now = self._clock()
            if self._last_size is None:
                self._last_size = kept_size(tree.latest_checkpoint()) or 0
            grown = size - self._last_size
            if grown <= 0:
                return None
            with self._lock:
                pending = self._pending
            due = (
                startup
                or grown >= self.every_events
                or pending >= self.every_events
                or now - self._last_at >= self.interval
            )
            if not due:
                return None
            kept = kept_size(tree.latest_checkpoint()) or 0  # (another worker's?)
            if kept >= size:
                self._last_size, self._last_at = kept, now
                return None
            note = tree.checkpoint(self.signer, size=size)
            note = self._cosigned(store, note, size)
            store.backend.save_checkpoint(size, note)
        with self._lock:
            self._pending = max(0, self._pending - pending)
        self._last_size, self._last_at = size, now
        self.signed += 1
        log.info("checkpoint: signed and kept the tree of %d events", size)
        if self._on_signed is not None:
            self._on_signed(size)
        return note

    def _cosigned(self, store: EventStore, note: str, size: int) -> str:
        """``note`` with the cosignature of every witness that gives one."""
        for url, timeout, key in self.witnesses:
            try:
                line = request_cosignature(
                    url,
                    note,
                    witness=key,
                    prove=lambda m: store.log.consistency_proof(m, size).proof,
                    old_size=self._witnessed.get(url, 0),
                    timeout=timeout,
                )
            except (WitnessRefusal, EventVaultError) as exc:
                self.witness_failures += 1
                log.warning("witness %s did not co-sign the tree of %d events: %s", url, size, exc)
                continue
            self._witnessed[url] = size
            note += line
        return note

    def _forever(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self.run_once(startup=first)
            except Exception:  # never let the thread die: the next tick retries
                self.failures += 1
                log.exception("checkpoint failed (will retry)")
            first = False
            self._wake.wait(self.poll)
            self._wake.clear()

    def start(self) -> None:
        """Sign now if the tree grew since the latest kept checkpoint, then as due."""
        self._thread = threading.Thread(
            target=self._forever, name="eventvault-checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30) -> None:
        """Stop the thread (a signing in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
