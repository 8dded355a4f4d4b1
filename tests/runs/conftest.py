"""Stores for the run tests: every backend of the conformance suite, made the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventvault import EventStore

from ..conformance.backends import CLEANUP, FACTORIES, Place


@pytest.fixture(params=sorted(FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: object, request: pytest.FixtureRequest) -> Iterator[EventStore]:
    place = Place(tmp_path, request)  # type: ignore[arg-type]
    made = FACTORIES[backend](place)
    try:
        yield made
    finally:
        made.close()
        if backend in CLEANUP:
            CLEANUP[backend](place)
