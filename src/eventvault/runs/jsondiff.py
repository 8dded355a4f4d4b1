"""Field-level differences between two JSON values, as JSON Pointer (RFC 6901) paths.

Objects are compared key by key, arrays index by index (a shorter array's missing
items are ``removed``/``added``); everything else by value, where ``1`` and ``1.0``
are equal but ``1`` and ``true`` are not. Iterative, so nesting depth is no risk.
"""

from __future__ import annotations

from typing import Any

from .model import FieldChange

__all__ = ["json_changes", "pointer"]


def pointer(parent: str, key: str | int) -> str:
    """``parent`` extended by one reference token, escaped per RFC 6901."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{parent}/{token}"


def _same_scalar(a: Any, b: Any) -> bool:
    # bool is an int in Python: True == 1, but not in JSON.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def json_changes(a: Any, b: Any, *, limit: int = 100) -> tuple[list[FieldChange], bool]:
    """The differences from ``a`` to ``b`` (at most ``limit``), and whether there
    were more than that."""
    out: list[FieldChange] = []
    stack: list[tuple[str, Any, Any]] = [("", a, b)]
    while stack:
        path, x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            for key in reversed([*x, *(k for k in y if k not in x)]):
                if key not in y:
                    stack.append((pointer(path, key), x[key], _REMOVED))
                elif key not in x:
                    stack.append((pointer(path, key), _ADDED, y[key]))
                else:
                    stack.append((pointer(path, key), x[key], y[key]))
            continue
        if isinstance(x, list) and isinstance(y, list):
            longest = max(len(x), len(y))
            for k in range(longest - 1, -1, -1):
                stack.append(
                    (
                        pointer(path, k),
                        x[k] if k < len(x) else _ADDED,
                        y[k] if k < len(y) else _REMOVED,
                    )
                )
            continue
        if y is _REMOVED:
            change = FieldChange(path=path, kind="removed", a=x)
        elif x is _ADDED:
            change = FieldChange(path=path, kind="added", b=y)
        elif _same_scalar(x, y):
            continue
        else:
            change = FieldChange(path=path, kind="changed", a=x, b=y)
        if len(out) >= limit:
            return out, True
        out.append(change)
    return out, False


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return self.name


_ADDED = _Marker("<added>")
_REMOVED = _Marker("<removed>")
