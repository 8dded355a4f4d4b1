"""``[store.file]``: the file backend's options (msgspec only: read whenever any
configuration loads, without the backend).

The class variables are the conventions :mod:`eventvault.config` validates every
backend's options by (see :class:`eventvault.config.NoOptions`)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

import msgspec

__all__ = ["FileConfig"]

DEFAULT_DATA_DIR = "eventvault-data"


class FileConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: str = DEFAULT_DATA_DIR
    fsync: Literal["always", "interval", "never"] = "always"
    fsync_interval: str = "200ms"
    segment_max_bytes: int = 64 * 1024 * 1024
    file_mode: int = 0o600
    dir_mode: int = 0o700
    read_only: bool = False  # true: never write (false: still read-only if unwritable)

    #: Integer keys: (lowest, highest).
    INTEGERS: ClassVar[dict[str, tuple[int, int]]] = {
        "segment_max_bytes": (4096, 2**40),
        "file_mode": (0, 0o7777),
        "dir_mode": (0, 0o7777),
    }
    #: Duration keys: the longest allowed.
    DURATIONS: ClassVar[dict[str, timedelta]] = {"fsync_interval": timedelta(days=1)}
    #: Path keys, relative to the config file's directory.
    PATHS: ClassVar[tuple[str, ...]] = ("path",)
