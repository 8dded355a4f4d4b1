"""The tree's hashes in one append-only file of 32-byte records.

Record ``i`` (bytes ``32·i`` to ``32·i + 31``) is the hash at stored index ``i``
(:mod:`eventvault.tlog.layout`), so the file needs no header, no framing and no
index: its size says how many hashes it holds, and a read is one ``pread`` per run
of adjacent indexes.

Durability. Appends are buffered in memory and written by :meth:`FileHashStore.flush`
(or when the buffer grows past ``buffer_bytes``); :meth:`FileHashStore.sync` also
fsyncs. The tree is *derived* data — every hash follows from the events' canonical
bytes — so a backend writes and syncs its events first and the tree after them.
After a crash the file can then only be *behind* the events (append the missing
leaves again) or end in a torn record (cut on open, and reported in
:attr:`FileHashStore.recovered_bytes`); if a backend ever syncs the tree first, it
must cut the tree back to its durable event count with
:meth:`~eventvault.tlog.tree.MerkleTree.truncate`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from ..errors import StoreClosedError, StoreUnavailableError, ValidationError
from .hashing import HASH_SIZE
from .storage import check_append, missing_hash

__all__ = ["FileHashStore"]


class FileHashStore:
    """An append-only file of stored hashes (see the module docstring).

    One process appends (the backend's writer lock already ensures that); any number
    may read, and a reader sees what the writer has flushed after :meth:`refresh`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        file_mode: int = 0o600,
        buffer_bytes: int = 1 << 20,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.readonly = readonly
        self._buffer_limit = max(HASH_SIZE, buffer_bytes)
        self._lock = threading.Lock()
        self._pending = bytearray()  # appended, not yet written to the file
        #: Bytes of a torn final record cut when the file was opened (0 if none).
        self.recovered_bytes = 0
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        with self._io("opening"):
            created = not readonly and not self.path.exists()
            self._fd: int | None = os.open(
                self.path, flags | getattr(os, "O_CLOEXEC", 0), file_mode
            )
            size = os.fstat(self._fd).st_size
            torn = size % HASH_SIZE
            if torn and not readonly:
                # A record only partly written when the process died: nothing can
                # have read it as a hash (the size never covered it), so cut it.
                os.ftruncate(self._fd, size - torn)
                os.fsync(self._fd)
                self.recovered_bytes = torn
            self._flushed = size // HASH_SIZE
            if created:
                self._sync_dir()

    # -- the HashStore protocol ---------------------------------------------------

    @property
    def hash_count(self) -> int:
        return self._flushed + len(self._pending) // HASH_SIZE

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        with self._lock:
            fd = self._check_open()
            flushed = self._flushed
            pending = self._pending
            count = flushed + len(pending) // HASH_SIZE
            # A walk over the tree (verify) asks for ranges of flushed hashes: one
            # pread, no loop.
            if (
                type(indexes) is range
                and indexes.step == 1
                and indexes.start >= 0
                and indexes.stop <= flushed
            ):
                return self._read_range(fd, indexes.start, indexes.stop, count)
            out: list[bytes] = []
            i = 0
            n = len(indexes)
            with self._io("reading"):
                while i < n:
                    first = indexes[i]
                    if not 0 <= first < count:
                        raise missing_hash(first, count)
                    if first >= flushed:
                        at = (first - flushed) * HASH_SIZE
                        out.append(bytes(pending[at : at + HASH_SIZE]))
                        i += 1
                        continue
                    # One pread for a run of adjacent indexes on disk.
                    j = i + 1
                    while j < n and indexes[j] == indexes[j - 1] + 1 and indexes[j] < flushed:
                        j += 1
                    want = (j - i) * HASH_SIZE
                    data = os.pread(fd, want, first * HASH_SIZE)
                    if len(data) != want:
                        raise missing_hash(first + len(data) // HASH_SIZE, count)
                    out.extend(data[k : k + HASH_SIZE] for k in range(0, want, HASH_SIZE))
                    i = j
            return out

    def _read_range(self, fd: int, lo: int, hi: int, count: int) -> list[bytes]:
        want = (hi - lo) * HASH_SIZE
        with self._io("reading"):
            data = os.pread(fd, want, lo * HASH_SIZE) if want else b""
        if len(data) != want:
            raise missing_hash(lo + len(data) // HASH_SIZE, count)
        return [data[k : k + HASH_SIZE] for k in range(0, want, HASH_SIZE)]

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        with self._lock:
            self._check_open()
            if self.readonly:
                raise ValidationError(f"{self.path} was opened read-only")
            check_append(self._flushed + len(self._pending) // HASH_SIZE, start, hashes)
            self._pending += b"".join(hashes)
            if len(self._pending) >= self._buffer_limit:
                self._write_pending()

    # -- durability -------------------------------------------------------------------

    def flush(self) -> None:
        """Write buffered hashes to the file (the OS's cache; see :meth:`sync`)."""
        with self._lock:
            self._check_open()
            self._write_pending()

    def sync(self) -> None:
        """Write buffered hashes and, if ``fsync`` is on, make them durable."""
        with self._lock:
            fd = self._check_open()
            self._write_pending()
            if self.fsync and not self.readonly:
                with self._io("syncing"):
                    os.fsync(fd)

    def truncate(self, count: int) -> None:
        """Drop every hash from index ``count`` on, durably (fsynced if ``fsync``)."""
        with self._lock:
            fd = self._check_open()
            total = self._flushed + len(self._pending) // HASH_SIZE
            if self.readonly or not 0 <= count <= total:
                raise ValidationError(f"cannot truncate {self.path} from {total} hashes to {count}")
            if count >= self._flushed:
                del self._pending[(count - self._flushed) * HASH_SIZE :]
                return
            self._pending.clear()
            with self._io("truncating"):
                os.ftruncate(fd, count * HASH_SIZE)
                if self.fsync:
                    os.fsync(fd)
            self._flushed = count

    def refresh(self) -> int:
        """Re-read the file's size (a reader following another process's appends);
        returns :attr:`hash_count`."""
        with self._lock:
            fd = self._check_open()
            if not self._pending:
                with self._io("reading the size of"):
                    self._flushed = os.fstat(fd).st_size // HASH_SIZE
            return self._flushed + len(self._pending) // HASH_SIZE

    def close(self) -> None:
        """Sync and close; closing twice is harmless."""
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            with self._lock:
                fd, self._fd = self._fd, None
                if fd is not None:
                    os.close(fd)

    def __enter__(self) -> FileHashStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> int:
        if self._fd is None:
            raise StoreClosedError()
        return self._fd

    def _write_pending(self) -> None:
        # Called with the lock held. A short write leaves what was written on disk
        # and the rest in the buffer, so the file never holds a record twice.
        if not self._pending:
            return
        fd = self._check_open()
        view = memoryview(self._pending)
        done = 0
        try:
            with self._io("writing"):
                while done < len(view):
                    done += os.pwrite(fd, view[done:], self._flushed * HASH_SIZE + done)
        finally:
            view.release()
            whole = done - done % HASH_SIZE
            del self._pending[:whole]
            self._flushed += whole // HASH_SIZE

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    @contextmanager
    def _io(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise StoreUnavailableError(
                f"{doing} the tree's hash file {self.path}: {exc.strerror or exc}"
            ) from exc
