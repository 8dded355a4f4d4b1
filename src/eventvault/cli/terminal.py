"""Text for a person's terminal (shared by the table and text formats)."""

from __future__ import annotations

__all__ = ["shown"]


def shown(value: str) -> str:
    """``value`` for a person's terminal: every character that is not printable —
    C0/C1 controls (escape sequences), bidi overrides, zero-width and format
    characters, line/paragraph separators, unusual spaces, unassigned code points —
    as a ``\\uXXXX`` escape, so a name can neither drive the terminal nor look like
    another. (The machine formats — JSON, JSON lines, CSV — keep values exact.)"""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else _escape(c) for c in value)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
