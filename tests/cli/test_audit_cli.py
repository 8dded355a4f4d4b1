"""The auditor's commands (issue 20): keygen, checkpoint, prove, verify --checkpoint,
log watch, export --bundle, verify-bundle, upgrade.

Each flow runs on two stores:

* ``memory``: the memory backend (Proving) registered as a plugin whose store
  outlives each command, driven in-process through click's runner — it runs today;
* ``file``: the default file backend, through the real ``eventvault`` command in a
  subprocess — skipped until the file backend is Proving (issue 20, branch wt-file).

Tests that need no Proving store (keygen, verify-bundle, the errors) run as they are.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventvault import EventStore, NewEvent, Query, open_store, register_backend
from eventvault.backends.memory import MemoryBackend
from eventvault.cli.main import cli
from eventvault.integrity.bundle import write_bundle
from eventvault.registry import _REGISTRY
from eventvault.tlog import NoteSigner

from ..test_spi import Core
from .helpers import ev

pytest.importorskip("cryptography")


@dataclass
class Out:
    """What one command did, the same shape in-process and in a subprocess."""

    returncode: int
    stdout: str
    stderr: str


class KeptOpen(MemoryBackend):
    """A memory store that each command's close leaves as it was (one per test)."""

    def close(self) -> None:
        pass


class Env:
    """A working directory with a configured store and a way to run commands."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.dir = tmp_path
        self.names: list[str] = []

    def config(self, name: str = "ev") -> Path:
        path = self.dir / f"{name}.toml"
        if not path.exists():
            if self.kind == "file":
                path.write_text(f'[store.file]\npath = "./{name}-data"\n')
            else:
                backend_name = f"auditmem_{name}_{id(self)}"
                backend = KeptOpen()
                register_backend(backend_name, lambda cfg: EventStore(backend))
                self.names.append(backend_name)
                path.write_text(f'[store]\nbackend = "{backend_name}"\n')
        return path

    def run(self, *args: str, config: str = "ev", input: str | None = None) -> Out:
        full = ["--config", str(self.config(config)), *args]
        if self.kind == "file":
            r = ev(self.dir, *full, input=input)
            return Out(r.returncode, r.stdout, r.stderr)
        old = Path.cwd()
        os.chdir(self.dir)
        try:
            result = CliRunner().invoke(cli, full, input=input)
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Out(result.exit_code, result.stdout, result.stderr)

    def store(self, config: str = "ev") -> EventStore:
        return open_store(self.config(config))

    def append(self, n: int, config: str = "ev", tag: str = "a", corr: str = "run-7") -> None:
        with self.store(config) as store:
            for i in range(n):
                store.append(
                    NewEvent(type="step", stream=f"s{i % 3}", correlation_id=corr,
                             data={"i": i, "tag": tag})
                )  # fmt: skip

    def close(self) -> None:
        for name in self.names:
            _REGISTRY.pop(name, None)


@pytest.fixture(params=["memory", "file"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = Env(request.param, tmp_path)
    try:
        yield e
    finally:
        e.close()


def _keys(env: Env, name: str = "example.com/eventvault/test", prefix: str = "audit") -> str:
    r = env.run("keygen", "--name", name, "--out", prefix)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# keygen -------------------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_prints_only_the_verifier(tmp_path: Path) -> None:
    r = ev(tmp_path, "keygen", "--name", "example.com/log", "--out", "k")
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+example.com/log+")
    assert r.stdout.strip() == pub.read_text().strip()
    assert r.stdout.startswith("example.com/log+")
    secret = key.read_text().strip().rsplit("+", 1)[1]
    assert secret not in r.stdout + r.stderr
    assert "PRIVATE" not in r.stdout + r.stderr


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    assert ev(tmp_path, "keygen", "--name", "a.example/x", "--out", "k").returncode == 0
    before = (tmp_path / "k.key").read_text()
    r = ev(tmp_path, "keygen", "--name", "a.example/x", "--out", "k")
    assert r.returncode == 2
    assert "already exists; refusing to overwrite" in r.stderr
    assert (tmp_path / "k.key").read_text() == before


def test_keygen_without_a_store_needs_a_name(tmp_path: Path) -> None:
    r = ev(tmp_path, "keygen", "--out", "k")
    assert r.returncode == 2
    assert "pass --name" in r.stderr
    assert not (tmp_path / "k.key").exists()


def test_keygen_names_the_key_after_the_configured_store(env: Env) -> None:
    env.append(1)
    r = env.run("keygen", "--out", "k")
    assert r.returncode == 0, r.stderr
    with env.store() as store:
        assert r.stdout.startswith(f"eventvault.local/{store.store_id}+")


def test_keygen_refuses_a_bad_name(tmp_path: Path) -> None:
    r = ev(tmp_path, "keygen", "--name", "has space", "--out", "k")
    assert r.returncode == 2
    assert "key name" in r.stderr


# checkpoint, prove, verify --checkpoint ------------------------------------------


def test_checkpoint_prove_and_verify(env: Env) -> None:
    env.append(20)
    vkey = _keys(env)
    r = env.run("checkpoint", "--key", "audit.key", "--size", "10", "--out", "seen10")
    assert r.returncode == 0, r.stderr
    note = (env.dir / "seen10").read_text()
    assert note.startswith("example.com/eventvault/test\n10\n")
    r = env.run("checkpoint", "--key", "audit.key", "--save")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[1] == "20"
    with env.store() as store:
        assert store.log.latest_checkpoint() == r.stdout
        first = next(iter(store.iter(Query(limit=1))))
        root10 = store.log.root(10).hex()
    (env.dir / "seen").mkdir()
    (env.dir / "seen" / "20").write_text(r.stdout)

    r = env.run("prove", str(first.id), "--size", "10")
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert list(proof) == ["leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash"]
    assert (proof["leaf_index"], proof["tree_size"], proof["root_hash"]) == (0, 10, root10)
    r = env.run("prove", "--consistency", "10", "20")
    assert r.returncode == 0, r.stderr
    assert list(json.loads(r.stdout)) == ["first", "second", "first_root", "second_root", "proof"]

    r = env.run("verify", "--checkpoint", "seen10", "--checkpoint", "seen", "--key", vkey)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Merkle tree of 20 leaves" in r.stdout
    assert "consistent with 2 signed checkpoint(s)" in r.stdout
    r = env.run("verify")
    assert r.returncode == 0
    assert "no signed checkpoint given" in r.stdout


def test_verify_fails_on_a_fork_naming_it(env: Env) -> None:
    """Another store with the same first events, then others, signed by the same key:
    the checkpoint seen of the first does not hold for the second."""
    env.append(5, tag="same")
    env.append(10, tag="a")
    env.append(5, config="fork", tag="same")
    env.append(15, config="fork", tag="b")
    _keys(env)
    assert env.run("checkpoint", "--key", "audit.key", "--out", "seen").returncode == 0
    r = env.run("verify", "--checkpoint", "seen", "--key", "audit.pub", config="fork")
    assert r.returncode == 6
    assert "rewritten" in r.stdout
    assert "fork" in r.stdout


def test_verify_fails_on_a_checkpoint_of_a_longer_log(env: Env) -> None:
    """What the newest events removed looks like: a signed size the store lacks."""
    env.append(12)
    env.append(8, config="short")
    _keys(env)
    assert env.run("checkpoint", "--key", "audit.key", "--out", "seen").returncode == 0
    r = env.run("verify", "--checkpoint", "seen", "--key", "audit.pub", config="short")
    assert r.returncode == 6
    assert "commits to 12 events" in r.stdout


def test_verify_refuses_a_checkpoint_signed_by_another_key(env: Env) -> None:
    env.append(3)
    _keys(env)
    _keys(env, "evil.example/log", "evil")
    assert env.run("checkpoint", "--key", "evil.key", "--out", "seen").returncode == 0
    r = env.run("verify", "--checkpoint", "seen", "--key", "audit.pub")
    assert r.returncode == 6
    assert "signed by evil.example/log+" in r.stderr
    assert "not by a key given (example.com/eventvault/test+" in r.stderr


def test_verify_refuses_an_altered_checkpoint(env: Env) -> None:
    env.append(3)
    _keys(env)
    assert env.run("checkpoint", "--key", "audit.key", "--out", "seen").returncode == 0
    text = (env.dir / "seen").read_text().replace("\n3\n", "\n2\n", 1)
    (env.dir / "seen").write_text(text)
    r = env.run("verify", "--checkpoint", "seen", "--key", "audit.pub")
    assert r.returncode == 6
    assert "invalid signature" in r.stderr


def test_verify_checkpoint_options_are_checked(tmp_path: Path) -> None:
    r = ev(tmp_path, "verify", "--key", "x+00000000+AA==")
    assert r.returncode == 2
    assert "pass --checkpoint too" in r.stderr
    r = ev(tmp_path, "verify", "--checkpoint", "nowhere")
    assert r.returncode == 2
    assert "--key" in r.stderr
    (tmp_path / "cp").write_text("not a note\n")
    pub = NoteSigner.generate("a.example/x").verifier().key_text
    r = ev(tmp_path, "verify", "--checkpoint", "cp", "--key", pub)
    assert r.returncode == 2
    assert "malformed note" in r.stderr


def test_prove_needs_an_event_or_sizes(env: Env) -> None:
    env.append(2)
    assert env.run("prove").returncode == 2
    r = env.run("prove", "not-a-uuid")
    assert r.returncode == 2
    assert "not an event id" in r.stderr
    r = env.run("prove", "01a23257-3f0e-75d4-9791-669f19eceb00")
    assert r.returncode == 2
    assert "no event with id" in r.stderr
    r = env.run("prove", "--consistency", "1", "9")
    assert r.returncode == 2
    assert "from 0 to 2" in r.stderr


def test_signing_with_no_key_says_where_to_put_one(env: Env) -> None:
    env.append(1)
    r = env.run("checkpoint")
    assert r.returncode == 3
    assert "[audit] signing_key" in r.stderr


def test_the_configured_signing_key_is_used(env: Env) -> None:
    env.append(4)
    _keys(env)
    cfg = env.config()
    cfg.write_text(cfg.read_text() + '\n[audit]\nsigning_key = "audit.key"\n')
    r = env.run("checkpoint")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("example.com/eventvault/test\n4\n")


# a store that keeps no tree: clear errors ------------------------------------------


@pytest.fixture
def no_tree(tmp_path: Path) -> Iterator[Path]:
    """A configured store whose backend is not Proving (the memory backend's core)."""
    name = f"audit_core_{id(tmp_path)}"
    backend = Core()
    backend.close = lambda: None  # type: ignore[method-assign]  # (kept across commands)
    register_backend(name, lambda cfg: EventStore(backend))
    path = tmp_path / "core.toml"
    path.write_text(f'[store]\nbackend = "{name}"\n')
    try:
        yield path
    finally:
        _REGISTRY.pop(name, None)


@pytest.mark.parametrize(
    "args",
    [
        ("checkpoint", "--key", "k.key"),
        ("prove", "--consistency", "0", "0"),
        ("verify", "--checkpoint", "cp", "--key", "k.pub"),
        ("export", "--bundle", "b.evb", "--key", "k.key"),
        ("log", "watch", "--checkpoint-dir", "w", "--key", "k.pub", "--once"),
        ("upgrade", "--yes"),
    ],
)
def test_a_store_without_a_tree_says_so(no_tree: Path, args: tuple[str, ...]) -> None:
    d = no_tree.parent
    assert ev(d, "keygen", "--name", "a.example/x", "--out", "k").returncode == 0
    signer = NoteSigner.from_key((d / "k.key").read_text())
    from eventvault.tlog import EMPTY_ROOT, Checkpoint, sign_checkpoint

    (d / "cp").write_text(sign_checkpoint(Checkpoint(signer.name, 0, EMPTY_ROOT), [signer]))
    old = Path.cwd()
    os.chdir(d)
    try:
        result = CliRunner().invoke(cli, ["--config", str(no_tree), *args])
    finally:
        os.chdir(old)
    assert result.exit_code == 2, result.output
    assert "keeps no Merkle tree" in result.stderr
    assert "Traceback" not in result.output


# log watch ---------------------------------------------------------------------------


def _watch(env: Env, config: str = "ev") -> Out:
    args = ("log", "watch", "--checkpoint-dir", "w", "--key", "audit.pub", "--once")
    return env.run(*args, config=config)


def test_log_watch_keeps_the_newest_and_refuses_a_fork(env: Env) -> None:
    _keys(env)
    env.append(5, tag="same")
    r = _watch(env)
    assert r.returncode == 0, r.stderr
    assert "no signed checkpoint yet" in r.stderr
    assert env.run("checkpoint", "--key", "audit.key", "--save").returncode == 0
    r = _watch(env)
    assert r.returncode == 0, r.stderr
    assert "accepted: tree size 5" in r.stdout
    assert "the first one kept" in r.stdout
    assert _watch(env).returncode == 0
    env.append(4)
    assert env.run("checkpoint", "--key", "audit.key", "--save").returncode == 0
    r = _watch(env)
    assert r.returncode == 0, r.stderr
    assert "accepted: tree size 9" in r.stdout
    assert "(extends 5)" in r.stdout
    assert sorted(p.name for p in (env.dir / "w").iterdir()) == [
        "5.checkpoint", "9.checkpoint", "latest",
    ]  # fmt: skip
    kept = (env.dir / "w" / "latest").read_text()

    # Another store signed with the same key: same first 5 events, then others.
    env.append(5, config="fork", tag="same")
    env.append(7, config="fork", tag="other")
    assert env.run("checkpoint", "--key", "audit.key", "--save", config="fork").returncode == 0
    r = _watch(env, config="fork")
    assert r.returncode == 6
    assert "does not extend the one kept (size 9)" in r.stderr
    assert (env.dir / "w" / "latest").read_text() == kept

    # A shorter one: the log went backwards.
    env.append(3, config="short", tag="same")
    assert env.run("checkpoint", "--key", "audit.key", "--save", config="short").returncode == 0
    r = _watch(env, config="short")
    assert r.returncode == 6
    assert "went backwards" in r.stderr
    assert (env.dir / "w" / "latest").read_text() == kept


def test_log_watch_refuses_another_key(env: Env) -> None:
    _keys(env)
    _keys(env, "evil.example/log", "evil")
    env.append(2)
    assert env.run("checkpoint", "--key", "evil.key", "--save").returncode == 0
    r = _watch(env)
    assert r.returncode == 6
    assert "signed by evil.example/log+" in r.stderr
    assert not (env.dir / "w" / "latest").exists()


def test_log_watch_reports_an_unreachable_server(tmp_path: Path) -> None:
    pub = NoteSigner.generate("a.example/x").verifier().key_text
    r = ev(tmp_path, "log", "watch", "--checkpoint-dir", "w", "--key", pub, "--once",
           "--url", "http://127.0.0.1:9")  # fmt: skip
    assert r.returncode == 5
    assert "GET http://127.0.0.1:9/v1/log/checkpoint" in r.stderr


# bundles -----------------------------------------------------------------------------


def test_export_bundle_and_verify_it(env: Env) -> None:
    _keys(env)
    env.append(6, corr="run-7")
    env.append(4, corr="run-8")
    r = env.run("export", "--correlation-id", "run-7", "--bundle", "run-7.evb")
    assert r.returncode == 2
    assert "--key SIGNING_KEY" in r.stderr
    r = env.run(
        "export", "--correlation-id", "run-7", "--bundle", "run-7.evb", "--key", "audit.key"
    )
    assert r.returncode == 0, r.stderr
    assert "bundle of 6 events" in r.stderr
    doc = json.loads((env.dir / "run-7.evb").read_text())
    assert {e["event"]["correlation_id"] for e in doc["events"]} == {"run-7"}
    r = env.run("verify-bundle", "run-7.evb", "--key", "audit.pub")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: 6 events proven" in r.stdout

    # The kept checkpoint serves when it covers the selection.
    assert env.run("checkpoint", "--key", "audit.key", "--save").returncode == 0
    r = env.run("export", "--correlation-id", "run-8", "--bundle", "run-8.evb")
    assert r.returncode == 0, r.stderr
    assert env.run("verify-bundle", "run-8.evb", "--key", "audit.pub").returncode == 0


def _offline_bundle(tmp_path: Path) -> tuple[Path, str]:
    """A bundle written from a memory store, and the verifier key text."""
    signer = NoteSigner.generate("example.com/eventvault/test")
    with EventStore(MemoryBackend()) as store:
        for i in range(12):
            store.append(NewEvent(type="t", stream="s", correlation_id="r", data={"i": i}))
        note = store.log.checkpoint(signer)
        write_bundle(store, Query(), tmp_path / "b.evb", checkpoint=note)
    return tmp_path / "b.evb", signer.verifier().key_text


def _tamper(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_verify_bundle_needs_no_store(tmp_path: Path) -> None:
    path, vkey = _offline_bundle(tmp_path)
    (tmp_path / "k.pub").write_text(vkey + "\n")
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", "k.pub")
    assert r.returncode == 0, r.stderr
    assert "ok: 12 events proven" in r.stdout
    assert not (tmp_path / "eventvault-data").exists()
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", vkey, "--format", "json")
    assert json.loads(r.stdout)["ok"] is True
    r = ev(tmp_path, "verify-bundle", "-", "--key", vkey, input=path.read_text())
    assert r.returncode == 0, r.stderr


def _data(d: dict[str, Any]) -> None:
    d["events"][4]["event"]["data"]["i"] = 99


def _swap(d: dict[str, Any]) -> None:
    e = d["events"]
    e[4]["proof"], e[5]["proof"] = e[5]["proof"], e[4]["proof"]


def _checkpoint(d: dict[str, Any]) -> None:
    origin, _size, rest = d["checkpoint"].split("\n", 2)
    d["checkpoint"] = f"{origin}\n11\n{rest}"


@pytest.mark.parametrize(
    ("change", "names"),
    [(_data, "event 4"), (_swap, "event 4"), (_checkpoint, "checkpoint")],
    ids=["event-data", "swapped-proofs", "checkpoint"],
)
def test_verify_bundle_fails_on_tampering_naming_it(
    tmp_path: Path, change: Any, names: str
) -> None:
    path, vkey = _offline_bundle(tmp_path)
    doc = json.loads(path.read_text())
    _tamper(path, change)
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", vkey)
    assert r.returncode == 6, r.stdout + r.stderr
    assert r.stdout.startswith("FAILED: ")
    if names == "event 4":
        assert f"event {doc['events'][4]['event']['id']}" in r.stdout
        r = ev(tmp_path, "verify-bundle", "b.evb", "--key", vkey, "--format", "json")
        assert json.loads(r.stdout)["event_id"] == doc["events"][4]["event"]["id"]
    else:
        assert "checkpoint does not verify" in r.stdout


def test_verify_bundle_with_another_key_fails(tmp_path: Path) -> None:
    _offline_bundle(tmp_path)
    other = NoteSigner.generate("example.com/eventvault/test").verifier().key_text
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", other)
    assert r.returncode == 6
    assert "not signed by a key given" in r.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [("nope", "not JSON"), ('{"format": "x"}', "not an eventvault bundle")],
)
def test_verify_bundle_refuses_what_is_not_a_bundle(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "b.evb").write_text(content)
    vkey = NoteSigner.generate("a.example/x").verifier().key_text
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", vkey)
    assert r.returncode == 2
    assert message in r.stderr
    r = ev(tmp_path, "verify-bundle", "b.evb", "--key", "PRIVATE+KEY+a+00000000+AA==")
    assert r.returncode == 2
    assert "signer (private) key" in r.stderr


# upgrade -----------------------------------------------------------------------------


def test_upgrade_on_a_store_that_keeps_its_tree(env: Env) -> None:
    env.append(3)
    r = env.run("upgrade", "--yes")
    assert r.returncode == 0, r.stderr
    assert "3 leaves" in r.stdout
    r = env.run("upgrade")  # no terminal: asks for --yes (unless nothing to do)
    assert r.returncode in (0, 2)


class Upgradable(KeptOpen):
    """A backend with the upgrade hook the backends add (``build_tree(progress) ->
    leaves added``): the first call "adds" every leaf, the next ones none."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def build_tree(self, progress: Any) -> int:
        size = self.tree_state().size
        added = 0 if self.calls else size
        if progress is not None:
            progress(size, size)
        self.calls.append(added)
        return added


def test_upgrade_calls_the_backends_build_tree(tmp_path: Path) -> None:
    name = f"audit_upgradable_{id(tmp_path)}"
    backend = Upgradable()
    register_backend(name, lambda cfg: EventStore(backend))
    cfg = tmp_path / "up.toml"
    cfg.write_text(f'[store]\nbackend = "{name}"\n')
    try:
        with open_store(cfg) as store:
            for i in range(7):
                store.append(NewEvent(type="t", stream="s", data={"i": i}))
        runner = CliRunner()
        r = runner.invoke(cli, ["--config", str(cfg), "upgrade"])
        assert r.exit_code == 2
        assert "pass --yes" in r.stderr
        assert backend.calls == []
        r = runner.invoke(cli, ["--config", str(cfg), "upgrade", "--yes"])
        assert r.exit_code == 0, r.output
        assert "added 7 leaves: the tree has 7 leaves, root " in r.stdout
        r = runner.invoke(cli, ["--config", str(cfg), "upgrade", "--yes"])
        assert r.exit_code == 0, r.output
        assert "nothing left to build: the tree is complete, 7 leaves" in r.stdout
        assert backend.calls == [7, 0]
    finally:
        _REGISTRY.pop(name, None)


def test_verify_counts_a_watchers_directory_once_per_checkpoint(env: Env) -> None:
    _keys(env)
    env.append(4)
    assert env.run("checkpoint", "--key", "audit.key", "--save").returncode == 0
    assert _watch(env).returncode == 0  # w/4.checkpoint and w/latest: the same note
    r = env.run("verify", "--checkpoint", "w", "--key", "audit.pub", "--format", "json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["checkpoints_checked"] == 1
    assert [c["tree_size"] for c in body["checkpoints"]] == [4]
