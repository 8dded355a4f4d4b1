"""Small, careful file-system helpers: atomic replace, directory fsync, the writer
lock, and the one place where ``OSError`` becomes :class:`StoreUnavailableError`."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ...errors import CorruptionError, StoreUnavailableError

__all__ = ["WriterLock", "atomic_write", "backend_errors", "dir_lock", "fsync_dir"]

_HINTS = {
    errno.ENOSPC: "the disk is full; free space and retry (nothing partial was kept)",
    errno.EDQUOT: "the disk quota is exhausted; free space and retry",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "I/O error from the device",
    errno.EFBIG: "the file would exceed the size limit (RLIMIT_FSIZE or file system)",
}


@contextlib.contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """The file backend's error boundary: what the OS and the decoder raise becomes
    an :mod:`eventvault.errors` type naming the action.

    ``OSError`` → :class:`StoreUnavailableError` (with a hint a person can act on);
    a record the decoder rejects outside the places that name it already →
    :class:`CorruptionError`. Every public entry point of the backend runs inside
    one of these; :class:`~eventvault.errors.EventVaultError` passes through.
    """
    try:
        yield
    except OSError as exc:
        hint = _HINTS.get(exc.errno or 0, exc.strerror or str(exc))
        raise StoreUnavailableError(f"{what}: {hint} ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise CorruptionError(f"{what}: stored data does not decode ({exc})") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old or the new file:
    temp file -> fsync -> rename -> fsync the directory."""
    replace_with(write_temp(path, data, mode), path)


def write_temp(path: Path, data: bytes, mode: int) -> Path:
    """The first half of :func:`atomic_write`: ``data`` durable in a temp file beside
    ``path`` (named ``.<name>.tmp-<pid>``, which directory scans ignore)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    return tmp


def replace_with(tmp: Path, path: Path) -> None:
    """The second half: rename ``tmp`` over ``path`` and make the rename durable."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


class WriterLock:
    """An exclusive ``flock`` on a lock file, serialising writers across processes.

    The kernel drops the lock when the holding process dies (even by SIGKILL),
    so a crashed writer never leaves the store locked.
    """

    def __init__(self, path: Path, mode: int) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)

    def acquire(self, *, blocking: bool = True) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


@contextlib.contextmanager
def dir_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the directory itself: serialises the creation of a
    store, so concurrent first opens agree on one store (the kernel drops it if the
    holder dies)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
