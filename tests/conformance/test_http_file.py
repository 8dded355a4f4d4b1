"""The conformance kit on the http backend: a client of a real ``eventvault serve``
app (uvicorn in a thread) in front of a file store. The client cannot take copied
records (only the store behind the server may write hashes and times it did not
make) and retention runs in the server, so no ``ImportContract`` nor
``RetentionContract``: it refuses both, saying so (the core contract checks it)."""

from __future__ import annotations

import pytest

from eventvault import EventStore, MemoryEventStore
from eventvault.copy import copy_store
from eventvault.errors import NotSupportedError
from eventvault.testing import Reopen, StoreContract, StoreFactory, Tamper
from eventvault.testing._base import count, mixed

from .served import ServedStores, reopen_http
from .test_file import tamper_file


class HttpClientChecks:
    """What the http client says that other backends do not (both http modules)."""

    def test_a_copy_into_it_says_where_to_run_it(self, store: EventStore) -> None:
        src = MemoryEventStore()
        src.append(mixed(10))
        with pytest.raises(NotSupportedError, match="run `eventvault copy` on the server's host"):
            copy_store(src, store)
        assert count(store) == 0


class TestHttpFile(StoreContract, HttpClientChecks):
    @pytest.fixture
    def make_store(self, http_file_stores: ServedStores) -> StoreFactory:
        return http_file_stores.new

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        return reopen_http

    @pytest.fixture
    def tamper(self, http_file_stores: ServedStores) -> Tamper:
        return http_file_stores.tamper_behind(tamper_file)
