"""A run's outcome, read from the type of its last event (``deploy.failed`` → failed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from ..errors import ValidationError

__all__ = ["DEFAULT_OUTCOMES", "Outcomes", "outcome_of", "parse_outcomes"]

#: (type pattern, outcome) pairs; the first pattern that matches decides.
Outcomes = tuple[tuple[str, str], ...]

DEFAULT_OUTCOMES: Outcomes = (
    ("*.failed", "failed"),
    ("*.errored", "failed"),
    ("*.succeeded", "succeeded"),
    ("*.cancelled", "cancelled"),
    ("*.canceled", "cancelled"),
    ("*.timed_out", "timed_out"),
)


def parse_outcomes(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> Outcomes:
    """Outcome patterns from a mapping or pairs, checked (``*`` and ``?`` are wildcards;
    event type names cannot hold either, so a pattern never matches by accident)."""
    pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    out: list[tuple[str, str]] = []
    for item in pairs:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ValidationError(f"outcomes: {item!r} is not a (type pattern, outcome) pair")
        pattern, outcome = item
        if not isinstance(pattern, str) or not pattern:
            raise ValidationError(f"outcomes: the pattern {pattern!r} must be a non-empty string")
        if not isinstance(outcome, str) or not outcome:
            raise ValidationError(
                f"outcomes: the outcome for {pattern!r} must be a non-empty string"
            )
        out.append((pattern, outcome))
    return tuple(out)


def outcome_of(last_type: str, outcomes: Outcomes = DEFAULT_OUTCOMES) -> str | None:
    """The outcome of the first pattern ``last_type`` matches, or None."""
    for pattern, outcome in outcomes:
        if fnmatchcase(last_type, pattern):
            return outcome
    return None
