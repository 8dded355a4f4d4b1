"""``eventvault.testing`` itself: an optional extra, and usable the way a third party
uses it (a ``Test…`` subclass with one fixture, under plain pytest)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_core_never_imports_the_kit() -> None:
    done = _python(
        """
        import sys
        import eventvault, eventvault.copy, eventvault.backends.file
        assert "eventvault.testing" not in sys.modules
        assert "pytest" not in sys.modules and "hypothesis" not in sys.modules
        """
    )
    assert done.returncode == 0, done.stderr


def test_without_pytest_the_kit_names_the_extra() -> None:
    done = _python(
        """
        import sys
        sys.modules["pytest"] = None  # as if it were not installed
        from eventvault.errors import MissingExtraError
        try:
            import eventvault.testing
        except MissingExtraError as exc:
            print(exc)
        else:
            raise SystemExit("imported without pytest")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'eventvault[testing]'" in done.stdout
    assert "'pytest'" in done.stdout


def test_a_third_party_subclass_runs_under_plain_pytest(tmp_path: Path) -> None:
    """One fixture is enough; without a ``tamper`` fixture the tamper tests skip,
    saying why, and so do a capability's tests on a store without it; the base
    classes themselves are not collected."""
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent(
            """
            import pytest

            from eventvault import MemoryEventStore
            from eventvault.testing import RetentionContract, StoreContract

            class TestMine(StoreContract):
                @pytest.fixture
                def make_store(self):
                    return lambda: MemoryEventStore()

            from eventvault import EventStore
            from eventvault.backends.memory import MemoryBackend
            from eventvault.spi import Backend

            class Keeper(Backend):  # a backend that is not Retaining
                name = "keeper"

                def __init__(self):
                    self.inner = MemoryBackend()

                store_id = property(lambda self: self.inner.store_id)

                def commit(self, batch, expected):
                    return self.inner.commit(batch, expected)

                def read(self, query, limit):
                    return self.inner.read(query, limit)

                def get(self, event_id):
                    return self.inner.get(event_id)

                def head(self):
                    return self.inner.head()

                def stats(self):
                    return self.inner.stats()

                def wait(self, head, timeout):
                    self.inner.wait(head, timeout)

            class TestKeeper(RetentionContract):
                @pytest.fixture
                def make_store(self):
                    return lambda: EventStore(Keeper())
            """
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-k",
            "tamper or closed_store or round_trip or no_policy",
            "test_mine.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no `tamper` fixture on this test class" in done.stdout
    assert "does not apply retention" in done.stdout
    assert "4 passed, 3 skipped" in done.stdout, done.stdout
