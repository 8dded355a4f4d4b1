"""The conformance kit on the http backend in front of PostgreSQL (see test_http_file)."""

from __future__ import annotations

import pytest

from eventvault.testing import Reopen, StoreContract, StoreFactory, Tamper

from .served import ServedStores, reopen_http
from .test_http_file import HttpClientChecks
from .test_postgres import tamper_postgres


class TestHttpPostgres(StoreContract, HttpClientChecks):
    @pytest.fixture
    def make_store(self, http_postgres_stores: ServedStores) -> StoreFactory:
        return http_postgres_stores.new

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        return reopen_http

    @pytest.fixture
    def tamper(self, http_postgres_stores: ServedStores) -> Tamper:
        return http_postgres_stores.tamper_behind(tamper_postgres)
