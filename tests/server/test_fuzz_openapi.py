"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis): any
request the document allows — and the mutations schemathesis derives from it —
must never get a 5xx. Bounded for CI: ``EV_API_EXAMPLES`` per operation (default 60)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from eventvault import EventStore, NewEvent, load_config
from eventvault.backends.file import FileEventStore
from eventvault.backends.memory import MemoryBackend
from eventvault.server import create_app
from eventvault.spi import Proving
from eventvault.tlog import NoteSigner

_DIR = Path(tempfile.mkdtemp(prefix="eventvault-fuzz-"))
atexit.register(shutil.rmtree, _DIR, True)
_store = FileEventStore(_DIR / "store")
app = create_app(
    _store,
    load_config({"server": {"max_body_bytes": 65536}}),
    close_store=False,  # schemathesis runs the app's lifespan around every call
)

# The live tail never ends by design: it is tested over a real socket instead.
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/v1/events/stream")
if not isinstance(_store.backend, Proving):  # (its /v1/log answers 501, by design)
    schema = schema.exclude(tag="log")

# The Merkle tree's routes, over a store that keeps one (events and a checkpoint).
_tree_store = EventStore(MemoryBackend())
for _i in range(9):
    _tree_store.append([NewEvent(type="t", data={"i": _i})])
_tree_store.log.checkpoint(NoteSigner.generate("fuzz.example"), save=True)
_tree_app = create_app(_tree_store, load_config({}), close_store=False)
log_schema = schemathesis.openapi.from_asgi("/openapi.json", _tree_app).include(tag="log")

EXAMPLES = int(os.environ.get("EV_API_EXAMPLES", "60"))


@pytest.mark.system
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_document_allows_gets_a_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


@pytest.mark.system
@log_schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_to_the_log_gets_a_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
