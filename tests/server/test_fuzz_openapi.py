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

from eventvault import load_config
from eventvault.backends.file import FileEventStore
from eventvault.server import create_app

_DIR = Path(tempfile.mkdtemp(prefix="eventvault-fuzz-"))
atexit.register(shutil.rmtree, _DIR, True)
app = create_app(
    FileEventStore(_DIR / "store"),
    load_config({"server": {"max_body_bytes": 65536}}),
    close_store=False,  # schemathesis runs the app's lifespan around every call
)

# The live tail never ends by design: it is tested over a real socket instead.
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/v1/events/stream")

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
