"""Files that grant access must be private to their owner (as ssh insists).

A tokens file, or a configuration file holding tokens, decides who may append,
read and verify. If another local user may write it, that user can add an admin
token which takes effect on the next reload; such a file is refused, with the
command that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

__all__ = ["check_private"]


def check_private(path: Path, what: str) -> None:
    """Refuse ``path`` (a file that grants access) if others may change it: writable
    by its group or by everyone, or owned by someone other than this user or root."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read: {exc}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{what} {path} is writable by other users (mode {mode:04o}): anyone who can "
            f"write it can give themselves any scope. Fix: chmod go-w {path}"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigError(
            f"{what} {path} belongs to another user (uid {st.st_uid}), who could change who "
            f"may access the store. Fix: chown {os.geteuid()} {path} (or copy it)"
        )
