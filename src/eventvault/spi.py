"""The backend contract: what a storage engine provides to :class:`~eventvault.EventStore`.

:class:`~eventvault.EventStore` is the façade users call. It validates input, keeps
cursors and pages, runs the live tail loop, verifies the chain and runs the
retention algorithm — the same for every backend. Behind it sits one
:class:`Backend`: a handful of methods that store and find records. A backend that
can do more says so by *type*, not by a flag:

- :class:`Importing` — it takes records another store recorded (``eventvault copy``,
  ``eventvault import``);
- :class:`Retaining` — it can remove the events a retention plan names;
- :class:`Proving` — it keeps the RFC 9162 Merkle tree over its events, so the
  façade can give roots, inclusion and consistency proofs (``store.log``).

``isinstance(store.backend, Retaining)`` is the question every caller asks; nothing
else decides whether a capability is there. A backend may say why it lacks one
(:attr:`Backend.lacks`); :func:`require_importing` / :func:`require_retaining`
raise :class:`~eventvault.errors.NotSupportedError` with that reason.

Every method here is called by the façade with its arguments already checked
(events validated and bounded, queries well-formed, ``limit`` >= 1). A backend
never needs to re-validate them, and must not raise anything but an
``eventvault.errors`` type for a failure it knows about — the façade's error
boundary translates the rest, with the backend's :meth:`Backend.translate_error`
tried first.

Writing a backend
-----------------
A backend is a class deriving from :class:`Backend` (and the capabilities it has),
handed to the façade: ``EventStore(MyBackend(...))``. Its :meth:`Backend.commit`
does not decide ids, revisions, positions, times or hashes itself: under its write
lock it calls the sequencer with its current head —

- :func:`stamp_batch` (one batch) or :func:`stamp_group` (several, group commit)
  for :meth:`Backend.commit`, :func:`stamp_import` for
  :meth:`Importing.import_records`;
- they take a :class:`ChainHead` (``GENESIS`` as the hash of an empty store) and two
  look-ups (a stream's last revision, a stored event by id), and return what to
  write (``.new``), the records to return (``.results``, a :class:`Results` that
  knows how many were written) and the new head;
- the backend writes all of ``.new`` or none of it, then returns ``.results``.

So every backend shares one definition of idempotency, expected revisions and the
hash chain. Everything such a backend needs is importable from here (plus
:mod:`eventvault.model` and :mod:`eventvault.errors`); the built-in backends
(:mod:`eventvault.backends.memory` is the shortest) are examples.

Status: this is the contract every built-in backend implements and that
:mod:`eventvault.testing` checks. It is public; its names keep their meaning
across minor releases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from .errors import EventVaultError, NotSupportedError
from .integrity.chain import CHAIN, GENESIS, LEAF
from .model import MAX_BATCH, ExpectedRevision, Import, NewEvent, Query, RecordedEvent, StoreStats
from .retention import Policy
from .retention.plan import EventHead, GroupEvents, GroupPlan, plan_groups
from .retention.receipts import Run
from .retention.receipts import RunIndex as RemovedRuns
from .sequencer import (
    DEFAULT_MAX_EVENT_BYTES,
    ChainHead,
    Results,
    StampedBatch,
    StampedGroup,
    stamp_batch,
    stamp_group,
    stamp_import,
)
from .timeutil import from_us, to_us

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "CHAIN",
    "GENESIS",
    "LEAF",
    "Backend",
    "ChainHead",
    "EventHead",
    "GroupEvents",
    "GroupPlan",
    "ExpectedRevision",
    "Import",
    "Importing",
    "MAX_BATCH",
    "Proving",
    "ProgressCallback",
    "Results",
    "Retaining",
    "RemovedRuns",
    "Run",
    "StampedBatch",
    "StampedGroup",
    "TreeState",
    "lacking",
    "require_importing",
    "require_proving",
    "require_retaining",
    "stamp_batch",
    "stamp_group",
    "stamp_import",
]

#: Called with (events done, events in all, or None when unknown).
ProgressCallback = Callable[[int, int | None], None]

_SCAN_PAGE = 5000


class Backend(ABC):
    """The storage engine behind one :class:`~eventvault.EventStore`.

    Thread-safe: the façade calls these methods from any thread, concurrently.
    """

    #: The backend's registered name ("file", "postgres", …): in errors and stats.
    name: ClassVar[str] = "abstract"
    #: Whether positions are assigned 1, 2, 3… with no gap but removed events
    #: (``verify`` then reports a gap nothing accounts for as damage). A backend
    #: that only knows once connected may make it a property.
    contiguous_positions: bool = True
    #: What each event's stored ``hash`` is (see :mod:`eventvault.integrity.chain`):
    #: 1, a hash chain (the default, and every store made before format 2 existed);
    #: 2, the event's Merkle-tree leaf hash, for backends that keep the tree
    #: (:class:`Proving`). Fixed when a store is made; pass it to the sequencer.
    hash_format: int = CHAIN
    #: The largest event (canonical JSON bytes) :meth:`commit` takes: pass it to the
    #: sequencer, which refuses larger ones. Retention sizes its receipts by it.
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    #: Why this backend lacks a capability, by capability type (:class:`Importing`,
    #: :class:`Retaining`): the end of the :class:`~eventvault.errors.NotSupportedError`
    #: message callers raise (see :func:`lacking`). Absent: a generic reason.
    lacks: ClassVar[Mapping[type, str]] = {}

    @property
    @abstractmethod
    def store_id(self) -> str:
        """A stable identifier of this store: the same every time it is opened, and
        different from every other store's. Cursors are tied to it."""

    @abstractmethod
    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        """Store ``batch`` (1 to ``MAX_BATCH`` events) atomically.

        A batch may span several streams (only with ``expected`` ANY: the façade
        refuses a revision check over more than one stream); revisions are per
        stream, as the sequencer assigns them.

        Returns one record per input event, in order. Atomic: after a crash at any
        instant, either every event of the batch is stored or none is. Durable: once
        this returns, the records survive a crash of the process (and, for backends
        that promise it, of the machine). Stamping — ids, revisions, positions,
        hashes, the idempotent retry of a batch already stored — is
        :mod:`eventvault.sequencer`'s job; a backend calls it under its write lock
        with its current head. ``expected`` is checked against the stream's last
        revision as stored, inside the same atomic step.
        """

    @abstractmethod
    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        """Up to ``limit`` stored events matching ``query``, in its direction
        (ascending positions, or descending when ``query.reverse``), starting after
        ``query.after`` / before ``query.before``. "Matching" is exactly
        :meth:`Query.matches <eventvault.model.Query.matches>` (type patterns,
        ``since`` inclusive, ``until`` exclusive, …): a backend may filter with its
        indexes, but must answer what that method would. ``limit`` is the one to
        honour, not ``query.limit`` (the façade asks for one more to know whether a
        next page exists). Every event returned was stored by
        a :meth:`commit` that returned (or is being returned): never a partial batch.
        """

    @abstractmethod
    def get(self, event_id: UUID) -> RecordedEvent | None:
        """The stored event with this id, or None."""

    @abstractmethod
    def head(self) -> int:
        """The last position in use (0 for an empty store). Never goes back, even when
        retention removes the newest events' neighbours."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """A summary of the store."""

    @abstractmethod
    def wait(self, head: int, timeout: float) -> None:
        """Block until the head moves past ``head`` (possibly by another process's
        append), or ``timeout`` seconds pass. Spurious returns are allowed; the caller
        reads again either way."""

    def head_state(self) -> tuple[int, str | None] | None:
        """The head this backend keeps apart from the events — ``(position, hex hash)``
        of the newest event, ``(0, None)`` when empty — or None when its head is
        derived from the events themselves (nothing separate for ``verify`` to
        check)."""
        return None

    def translate_error(self, exc: Exception, action: str) -> EventVaultError | None:
        """The eventvault error the driver's ``exc`` (raised while doing ``action``)
        stands for, or None when it is not the driver's (the façade's last-resort
        translation then applies). The one place a backend maps its driver's errors."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's resources. Called once, by the façade, after which
        no other method is called — except that a :meth:`wait` in progress must
        return promptly."""


class Importing(ABC):
    """A backend that writes records another store recorded, as they are."""

    @abstractmethod
    def import_records(self, imp: Import) -> list[RecordedEvent]:
        """Write ``imp.records`` with this store's positions and everything else kept
        (ids, streams, revisions, times; hashes too unless ``imp.rechain``). Atomic and
        durable like :meth:`Backend.commit`; a record whose id is already stored with
        the same content is skipped, with different content refused."""


class Retaining(ABC):
    """A backend that can remove the events a retention plan names.

    The retention algorithm (:mod:`eventvault.retention.apply`) is the façade's; the
    backend provides the scans it plans from and the removal it applies. The
    defaults here scan through :meth:`Backend.read`; backends with indexes override
    them.
    """

    def retention_limit(self) -> int:
        """The highest position retention may remove now (default: the head)."""
        assert isinstance(self, Backend)
        return self.head()

    def group_events(self, policy: Policy) -> dict[int, GroupEvents]:
        """Every stored event of each retention group of ``policy``, in position order."""
        out: dict[int, tuple[list[int], list[int]]] = {}
        memo: dict[tuple[str, str], int | None] = {}
        for ev in self._scan(None):
            key = (ev.type, ev.stream)
            gid = memo[key] if key in memo else memo.setdefault(key, policy.group_of(*key))
            if gid is not None:
                positions, times = out.setdefault(gid, ([], []))
                positions.append(ev.position)
                times.append(to_us(ev.recorded_at))
        return {gid: GroupEvents(p, t) for gid, (p, t) in out.items()}

    def plan_groups(self, policy: Policy, now: datetime, limit: int) -> list[GroupPlan]:
        """Cut every group of ``policy`` at ``now`` (nothing above position ``limit``)."""
        return plan_groups(
            policy, self.group_events(policy), now_us=to_us(now), limit=limit, to_time=from_us
        )

    def walk_heads(self, before: int) -> Iterator[EventHead]:
        """Every stored event below position ``before``, in order — at least the fields
        of :class:`~eventvault.retention.plan.EventHead` (the default yields whole
        events)."""
        return self._scan(before)

    def whole(self, heads: list[EventHead]) -> list[RecordedEvent]:
        """The whole events behind ``heads`` (from :meth:`walk_heads`), in order."""
        whole = [h for h in heads if isinstance(h, RecordedEvent)]
        if len(whole) != len(heads):  # walk_heads yields less: override this too
            raise NotSupportedError(f"{type(self).__name__} must implement whole()")
        return whole

    def check_can_remove(self) -> None:  # noqa: B027 - optional hook
        """Raise if removing would fail for a reason known in advance (checked before
        any receipt is appended, so a refusal leaves the store untouched)."""

    @abstractmethod
    def remove_runs(
        self,
        runs: list[Run],
        tails: dict[str, int],
        receipts: list[RecordedEvent],
        progress: ProgressCallback | None,
    ) -> None:
        """Remove every stored event inside ``runs``, **newest run first**, each run's
        removal atomic (a crash leaves each run wholly there or wholly gone). ``tails``:
        the last removed revision per stream, which the backend must keep so that
        revisions never restart. ``receipts``: the stored receipts naming the runs
        (``verify`` bridges the holes with them)."""

    def _scan(self, before: int | None) -> Iterator[RecordedEvent]:
        assert isinstance(self, Backend)
        after = 0
        while True:
            page = self.read(Query(after=after, before=before, limit=_SCAN_PAGE), _SCAN_PAGE)
            yield from page
            if len(page) < _SCAN_PAGE:
                return
            after = page[-1].position


@dataclass(frozen=True, slots=True)
class TreeState:
    """How far a backend's Merkle tree reaches.

    ``size`` leaves, leaf ``i`` being the event at position ``base + 1 + i`` — the
    order of append, 0-based. ``base`` is 0 for a store that kept its tree from its
    first event; a store upgraded after retention removed events starts its tree
    after its last hole (the events before it are covered by the hash chain only).
    """

    size: int
    base: int = 0


class Proving(ABC):
    """A backend that keeps the Merkle tree (RFC 9162) of every event it appended.

    The tree's hashes are stored at dense, append-only indexes
    (:mod:`eventvault.tlog.layout`): appending an event writes its leaf hash —
    :attr:`StampedBatch.leaves <eventvault.sequencer.StampedBatch.leaves>`, from the
    same canonical bytes as the chain — and the hash of every perfect subtree it
    completes (:meth:`eventvault.tlog.MerkleTree.append_leaf_hashes` computes them
    from the tree's right edge). Retention removes events, **never** tree hashes, so
    every root and proof stays valid. A backend on positions that are not contiguous
    cannot map positions to leaves and is not :class:`Proving`.

    Invariants the façade relies on:

    * the tree grows with the events, in the same order, and never shrinks or
      changes (``tree_state().size`` only grows; stored hashes are never rewritten);
    * after :meth:`tree_state` returns ``TreeState(n, base)``, every stored hash of
      a tree of ``n`` leaves can be read (``stored_hash_count(n)`` of them), and
      leaves ``0..n-1`` are the events at positions ``base+1..base+n``, which were
      durable before their leaves were (a crash can leave the tree behind the
      events, never ahead: the backend catches up by recomputing the missing leaves).
    """

    @abstractmethod
    def tree_state(self) -> TreeState:
        """The tree's size now (at most ``head() - base``; equal once caught up)."""

    @abstractmethod
    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """The stored tree hashes at ``indexes`` (each below ``stored_hash_count``
        of the size :meth:`tree_state` last returned), in order, 32 bytes each."""

    @abstractmethod
    def save_checkpoint(self, size: int, note: str) -> None:
        """Keep a signed checkpoint (C2SP ``signed-note`` text) of the tree at ``size``
        leaves, so readers can fetch the latest one (:meth:`latest_checkpoint`). The
        store keeps them for convenience only: their trust comes from the signature,
        and verifiers keep their own copies."""

    @abstractmethod
    def latest_checkpoint(self) -> str | None:
        """The signed checkpoint :meth:`save_checkpoint` kept last (largest size), or None."""


def lacking(backend: Backend, capability: type) -> str | None:
    """The message saying ``backend`` is not a ``capability`` (:class:`Importing`,
    :class:`Retaining`), or None when it is one."""
    if isinstance(backend, capability):
        return None
    why = backend.lacks.get(capability)
    if capability is Importing:
        return f"the {backend.name} backend cannot take copied events" + (f" {why}" if why else "")
    if capability is Retaining:
        return f"retention is not available on the {backend.name} backend {why or 'yet'}"
    if capability is Proving:
        return f"the {backend.name} backend keeps no Merkle tree, so it has no proofs" + (
            f" {why}" if why else ""
        )
    return f"the {backend.name} backend is not {capability.__name__}" + (f" {why}" if why else "")


def require_importing(backend: Backend) -> Importing:
    """``backend`` as an :class:`Importing`, or :class:`~eventvault.errors.NotSupportedError`
    saying why it is not one (:attr:`Backend.lacks`)."""
    if not isinstance(backend, Importing):
        raise NotSupportedError(str(lacking(backend, Importing)))
    return backend


def require_proving(backend: Backend) -> Proving:
    """``backend`` as a :class:`Proving`, or :class:`~eventvault.errors.NotSupportedError`
    saying why it is not one (:attr:`Backend.lacks`)."""
    if not isinstance(backend, Proving):
        raise NotSupportedError(str(lacking(backend, Proving)))
    return backend


def require_retaining(backend: Backend) -> Retaining:
    """``backend`` as a :class:`Retaining`, or :class:`~eventvault.errors.NotSupportedError`
    saying why it is not one (:attr:`Backend.lacks`)."""
    if not isinstance(backend, Retaining):
        raise NotSupportedError(str(lacking(backend, Retaining)))
    return backend
