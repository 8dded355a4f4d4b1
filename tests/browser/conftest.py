"""A real ``eventvault serve`` process over a filled file store, and Debian's
chromium driven headless by Playwright (never a browser Playwright downloads).

Screenshots go to ``$EVENTVAULT_SCREENSHOTS`` (default: a temporary directory),
with ``timings.json`` beside them (the console's measured load times).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventvault import NewEvent, open_store

from ..server.test_attacks import start, stop
from ..server.test_process import Served, write_config

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"  # append only: may not read
TOKENS = (
    f'[[tokens]]\nname = "reader"\ntoken = "{READER}"\nscopes = ["read"]\n'
    f'[[tokens]]\nname = "writer"\ntoken = "{WRITER}"\nscopes = ["append"]\n'
)

#: Names and data that would run script if they were ever parsed as HTML.
HOSTILE_RUN = "<script>window.__pwned=1</script>"
HOSTILE_ACTOR = '<img src=x onerror="window.__pwned=1;alert(1)">'
HOSTILE_STREAM = '"><svg onload=alert(1)>'
HOSTILE_DATA = {"html": "<b onmouseover=alert(1)>hi</b>", "js": "javascript:alert(1)"}

BIG = 1000  # events of the run whose page is timed
HUGE = 100_000  # events of the run that must be truncated

pytestmark = pytest.mark.browser


def _fill(data_dir: Path) -> None:
    store = open_store({"store": {"backend": "file", "file": {"path": str(data_dir)}}})
    with store:
        filler = [
            NewEvent(
                type=("task.started", "task.completed", "build.finished")[i % 3],
                actor=f"agent:{i % 3}",
                stream=f"loop-{i % 2}",
                correlation_id=f"loop-{i % 5}",
                data={"i": i},
            )
            for i in range(150)
        ]
        store.append(filler)
        for name, steps in (
            ("good-run", ["t.started", "t.built", "t.tested", "t.succeeded"]),
            ("bad-run", ["t.started", "t.built", "t.failed"]),
        ):
            ids = [uuid.uuid4() for _ in steps]
            store.append(
                [
                    NewEvent(
                        type=t,
                        id=ids[n],
                        correlation_id=name,
                        actor="ci",
                        causation_id=str(ids[n - 1]) if n else None,
                        data={"step": n, "run": name},
                    )
                    for n, t in enumerate(steps)
                ]
            )
        # A 1,000-event run: a tree (each event caused by event (i-1)//3), four actor
        # lanes, appended in 50 batches so the timeline has time in it.
        ids = [uuid.uuid4() for _ in range(BIG)]
        for b in range(0, BIG, 20):
            store.append(
                [
                    NewEvent(
                        type=f"big.step{i % 7}",
                        id=ids[i],
                        correlation_id="big-run",
                        actor=f"worker:{i % 4}",
                        data={"i": i},
                        causation_id=str(ids[(i - 1) // 3]) if i else "cmd:start",
                    )
                    for i in range(b, b + 20)
                ]
            )
        a, c = uuid.uuid4(), uuid.uuid4()
        store.append(
            [
                NewEvent(type="c.one", id=a, correlation_id="cycle-run", causation_id=str(c)),
                NewEvent(type="c.two", id=c, correlation_id="cycle-run", causation_id=str(a)),
            ]
        )
        store.append(
            [
                NewEvent(
                    type="x.started",
                    correlation_id=HOSTILE_RUN,
                    actor=HOSTILE_ACTOR,
                    stream=HOSTILE_STREAM,
                    data=HOSTILE_DATA,
                ),
                NewEvent(
                    type="x.failed",
                    correlation_id=HOSTILE_RUN,
                    actor=HOSTILE_ACTOR,
                    data={"error": "</pre><script>alert(2)</script>"},
                ),
            ]
        )
        for b in range(0, HUGE, 10_000):
            store.append(
                [
                    NewEvent(
                        type="h.step", correlation_id="huge-run", actor=f"h{i % 5}", data={"i": i}
                    )
                    for i in range(b, b + 10_000)
                ]
            )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("console")
    tokens = root / "tokens.toml"
    tokens.write_text(TOKENS)
    tokens.chmod(0o600)
    config = root / "eventvault.toml"
    write_config(
        config, root / "data", extra=f'tokens_file = "{tokens}"\nanonymous = ["healthz", "docs"]\n'
    )
    _fill(root / "data")
    srv = start(config)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("EVENTVAULT_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def timings(shots: Path) -> Iterator[dict[str, float]]:
    measured: dict[str, float] = {}
    yield measured
    (shots / "timings.json").write_text(json.dumps(measured, indent=2))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent context on a fresh user-data directory of Debian's chromium."""
    missing = None if Path(CHROMIUM).exists() else f"{CHROMIUM} is missing"
    try:
        from playwright import sync_api
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        # CI installs both (.ci/run), so there a missing browser fails instead of hiding
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"{missing} (apt-get install chromium; .ci/run does)"
        )
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 800},
        )
        yield context
        context.close()


class Tab:
    """One browser tab (its own sessionStorage) with what went wrong in it."""

    def __init__(self, context: Any, base: str) -> None:
        self.page = context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", self._route)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            # chromium logs every answer >= 400; the status page expects these two of
            # /v1/log (no checkpoint kept yet; a backend that keeps no tree).
            where = (message.location or {}).get("url") or ""
            expected = "status of 404" in message.text or "status of 501" in message.text
            if "/v1/log/" in where and expected:
                return
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:  # works offline: nothing may come from anywhere else
            self.outside.append(url)
            route.abort()

    def open(self, fragment: str = "#/events") -> None:
        self.page.goto(f"{self.base}/ui{fragment}")

    def login(self, token: str = READER) -> None:
        self.open()
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")
        self.page.wait_for_selector("body[data-ready=events]")
        assert self.page.locator("#login").is_hidden()
        # The first request went without a token: chromium logs its 401 (expected).
        self.errors = [e for e in self.errors if "status of 401" not in e]

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Tab]:
    t = Tab(browser, served.url)
    yield t
    t.close()
