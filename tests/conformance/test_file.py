"""The conformance kit on the file backend (small segments, so tests cross sealed
segments and their indexes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventvault import EventStore
from eventvault.backends.file import FileEventStore
from eventvault.testing import (
    ImportContract,
    ProvingContract,
    Reopen,
    RetentionContract,
    StatefulContract,
    StoreContract,
    StoreFactory,
    Tamper,
)

from .backends import fresh_paths, open_file


def tamper_file(store: EventStore, position: int) -> EventStore:
    """Change one byte of the event's payload on disk (same length), then reopen."""
    assert isinstance(store, FileEventStore)
    path = store.path
    store.close()
    for seg in sorted((path / "segments").iterdir()):
        lines = seg.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(b'{"position":%d,' % position):
                assert b'"v":"aaaa"' in line, "tamper expects data {'v': 'aaaa'}"
                lines[i] = line.replace(b'"v":"aaaa"', b'"v":"aaab"')
                seg.write_bytes(b"\n".join(lines))
                return open_file(path)
    raise AssertionError(f"position {position} not found")


def reopen_file(store: EventStore) -> EventStore:
    assert isinstance(store, FileEventStore)
    store.close()
    return open_file(store.path)


class TestFile(StoreContract, ImportContract, RetentionContract, StatefulContract, ProvingContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return fresh_paths(tmp_path)

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        return reopen_file

    @pytest.fixture
    def tamper(self) -> Tamper:
        return tamper_file
