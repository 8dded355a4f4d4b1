"""Queries are checked when they are built, before any backend sees them."""

from __future__ import annotations

import pytest

from eventvault import Query, ValidationError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"types": ["a*b"]},
        {"after": -1},
        {"types": [""]},
        {"actors": [3]},
        {"types": "task.*", "limit": "3"},
    ],
)
def test_bad_query_is_a_validation_error(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        Query(**kwargs)


def test_naive_time_in_query_is_rejected() -> None:
    from datetime import datetime

    with pytest.raises(ValidationError, match="timezone"):
        Query(since=datetime(2026, 1, 1))
