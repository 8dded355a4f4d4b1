"""``/v1/log`` and ``/v1/events/{id}/proof`` over memory stores, and the service's
signed checkpoints (``[audit]``): shapes, every error, scopes, proofs checked by the
literal RFC 9162 transcription (not by the code that made them), the checkpointing
thread's triggers, key refusals and reloads."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventvault import load_config
from eventvault.backends.memory import MemoryBackend
from eventvault.cli.common import EXIT_CONFIG
from eventvault.config import Config
from eventvault.errors import ConfigError
from eventvault.integrity.chain import event_leaf_hash
from eventvault.model import NewEvent, Query
from eventvault.server import create_app
from eventvault.server.checkpoints import Checkpointer, kept_size
from eventvault.server.holder import StoreHolder
from eventvault.store import EventStore
from eventvault.testing import _rfc9162 as rfc
from eventvault.tlog import (
    ConsistencyProof,
    InclusionProof,
    NoteSigner,
    open_checkpoint,
    write_key_file,
)
from tests.test_spi import Core

from .conftest import running
from .test_process import EV, answers, free_port

pytestmark = pytest.mark.anyio

TOKENS = [
    {"name": "reader", "token": "reader-token-0123456789", "scopes": ["read"]},
    {"name": "writer", "token": "writer-token-0123456789", "scopes": ["append"]},
]
READ = {"authorization": "Bearer reader-token-0123456789"}
WRITE = {"authorization": "Bearer writer-token-0123456789"}


def memory_store() -> EventStore:
    return EventStore(MemoryBackend())


def fill(store: EventStore, n: int) -> None:
    for i in range(n):
        store.append([NewEvent(type=f"t.{i}", data={"i": i})])


def leaves(store: EventStore) -> list[bytes]:
    return [event_leaf_hash(e) for e in store.iter(Query())]


def key_file(
    tmp_path: Path, name: str = "example.com/log", mode: int = 0o600
) -> tuple[Path, NoteSigner]:
    signer = NoteSigner.generate(name)
    path = tmp_path / f"{name.replace('/', '_')}.key"
    write_key_file(path, signer.key_text)
    os.chmod(path, mode)
    return path, signer


def config(key: Path | None = None, **audit: Any) -> Config:
    doc: dict[str, Any] = {"server": {"tokens": TOKENS}}
    if key is not None:
        doc["audit"] = {"signing_key": str(key), **audit}
    return load_config(doc)


async def wait_for(check: Callable[[], Any], seconds: float = 10) -> Any:
    for _ in range(int(seconds / 0.05)):
        got = check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


# -- endpoints ------------------------------------------------------------------------


async def test_tree_and_no_checkpoint_yet() -> None:
    store = memory_store()
    fill(store, 3)
    async with running(create_app(store, config(), close_store=False)) as c:
        r = await c.get("/v1/log/tree", headers=READ)
        assert r.status_code == 200
        assert r.json() == {"size": 3, "base": 0, "root_hash": rfc.mth(leaves(store)).hex()}
        r = await c.get("/v1/log/checkpoint", headers=READ)
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "NotFound"
        assert "audit.signing_key" in r.json()["error"]["message"]


async def test_checkpoint_is_served_verbatim_as_text(tmp_path: Path) -> None:
    store = memory_store()
    fill(store, 4)
    _, signer = key_file(tmp_path)
    note = store.log.checkpoint(signer, save=True)
    async with running(create_app(store, config(), close_store=False)) as c:
        r = await c.get("/v1/log/checkpoint", headers=READ)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == note
    cp = open_checkpoint(r.text, [signer.verifier()])
    assert (cp.size, cp.root_hash) == (4, rfc.mth(leaves(store)))


async def test_inclusion_proofs_check_against_the_signed_root(tmp_path: Path) -> None:
    store = memory_store()
    fill(store, 7)
    _, signer = key_file(tmp_path)
    cp = open_checkpoint(store.log.checkpoint(signer, save=True), [signer.verifier()])
    fill(store, 3)  # (after the checkpoint: the default size stays 7)
    events = list(store.iter(Query()))
    hashes = leaves(store)
    async with running(create_app(store, config(), close_store=False)) as c:
        for i, ev in enumerate(events[:7]):
            r = await c.get(f"/v1/events/{ev.id}/proof", headers=READ)
            assert r.status_code == 200, r.text
            assert r.headers["x-tree-size-source"] == "checkpoint"
            body = r.json()
            assert body == {
                "leaf_index": i,
                "tree_size": 7,
                "leaf_hash": hashes[i].hex(),
                "audit_path": [h.hex() for h in rfc.path(i, hashes[:7])],
                "root_hash": rfc.mth(hashes[:7]).hex(),
            }
            InclusionProof.from_dict(body).verify(root_hash=cp.root_hash, leaf_hash=hashes[i])
        # Every size an event is in, asked for explicitly.
        for size in (1, 2, 3, 8, 10):
            for i in range(size):
                r = await c.get(f"/v1/events/{events[i].id}/proof?size={size}", headers=READ)
                assert r.headers["x-tree-size-source"] == "request"
                assert r.json()["audit_path"] == [h.hex() for h in rfc.path(i, hashes[:size])]
                assert r.json()["root_hash"] == rfc.mth(hashes[:size]).hex()
        # Newer than the checkpoint: 409 by default, a proof with ?size=.
        late = events[8].id
        r = await c.get(f"/v1/events/{late}/proof", headers=READ)
        assert r.status_code == 409
        assert r.json()["error"]["type"] == "ConflictError"
        assert "not in the tree of size 7" in r.json()["error"]["message"]
        r = await c.get(f"/v1/events/{late}/proof?size=10", headers=READ)
        assert r.status_code == 200
        assert r.json()["leaf_index"] == 8


async def test_without_a_checkpoint_proofs_are_against_the_current_tree() -> None:
    store = memory_store()
    fill(store, 5)
    events = list(store.iter(Query()))
    async with running(create_app(store, config(), close_store=False)) as c:
        r = await c.get(f"/v1/events/{events[2].id}/proof", headers=READ)
        assert r.headers["x-tree-size-source"] == "current"
        assert r.json()["tree_size"] == 5
        InclusionProof.from_dict(r.json()).verify(root_hash=rfc.mth(leaves(store)))
        r = await c.get("/v1/log/consistency?first=2", headers=READ)
        assert r.headers["x-tree-size-source"] == "current"
        assert r.json()["second"] == 5


async def test_consistency_proofs(tmp_path: Path) -> None:
    store = memory_store()
    fill(store, 8)
    _, signer = key_file(tmp_path)
    store.log.checkpoint(signer, save=True)
    fill(store, 3)
    hashes = leaves(store)
    async with running(create_app(store, config(), close_store=False)) as c:
        r = await c.get("/v1/log/consistency?first=3", headers=READ)
        assert r.headers["x-tree-size-source"] == "checkpoint"
        assert r.json() == {
            "first": 3,
            "second": 8,
            "first_root": rfc.mth(hashes[:3]).hex(),
            "second_root": rfc.mth(hashes[:8]).hex(),
            "proof": [h.hex() for h in rfc.proof(3, hashes[:8])],
        }
        for first in range(1, 12):
            for second in range(first, 12):
                r = await c.get(f"/v1/log/consistency?first={first}&second={second}", headers=READ)
                body = r.json()
                assert body["proof"] == [h.hex() for h in rfc.proof(first, hashes[:second])]
                ConsistencyProof.from_dict(body).verify(
                    first_root=rfc.mth(hashes[:first]), second_root=rfc.mth(hashes[:second])
                )
        r = await c.get("/v1/log/consistency?first=0&second=4", headers=READ)
        assert r.json()["proof"] == []
        assert r.json()["first_root"] == rfc.mth([]).hex()


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/v1/events/{id}/proof?size=abc", 400, "ValidationError"),
        ("/v1/events/{id}/proof?size=-1", 400, "ValidationError"),
        ("/v1/events/{id}/proof?size=%2B1", 400, "ValidationError"),
        ("/v1/events/{id}/proof?size=1.0", 400, "ValidationError"),
        ("/v1/events/{id}/proof?size=99999999999999999999999", 400, "ValidationError"),
        ("/v1/events/{id}/proof?size=4", 400, "ValidationError"),  # beyond the tree
        ("/v1/events/{id}/proof?size=0", 409, "ConflictError"),
        ("/v1/events/{id}/proof?sise=2", 400, "ValidationError"),  # a typo'd parameter
        ("/v1/events/{unknown}/proof", 404, "NotFound"),
        ("/v1/events/not-a-uuid/proof", 404, "NotFound"),
        ("/v1/log/consistency", 400, "ValidationError"),
        ("/v1/log/consistency?first=", 400, "ValidationError"),
        ("/v1/log/consistency?first=x", 400, "ValidationError"),
        ("/v1/log/consistency?first=3&second=2", 400, "ValidationError"),
        ("/v1/log/consistency?first=1&second=4", 400, "ValidationError"),
        ("/v1/log/consistency?first=1&frist=2", 400, "ValidationError"),
        ("/v1/log/tree?size=1", 400, "ValidationError"),
        ("/v1/log/checkpoint?x=1", 400, "ValidationError"),
    ],
)
async def test_errors(path: str, status: int, kind: str) -> None:
    store = memory_store()
    fill(store, 3)
    first = next(iter(store.iter(Query())))
    url = path.format(id=first.id, unknown=uuid.uuid4())
    async with running(create_app(store, config(), close_store=False)) as c:
        r = await c.get(url, headers=READ)
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == kind
    assert r.json()["error"]["message"]


async def test_read_scope_is_required() -> None:
    store = memory_store()
    fill(store, 2)
    ev = next(iter(store.iter(Query())))
    paths = ["/v1/log/tree", "/v1/log/checkpoint", f"/v1/events/{ev.id}/proof",
             "/v1/log/consistency?first=1"]  # fmt: skip
    async with running(create_app(store, config(), close_store=False)) as c:
        for path in paths:
            assert (await c.get(path)).status_code == 401
            r = await c.get(path, headers=WRITE)
            assert r.status_code == 403, path
            assert "'read' scope" in r.json()["error"]["message"]
            assert (await c.get(path, headers=READ)).status_code in (200, 404)


async def test_a_backend_without_a_tree_answers_501_and_serves_unsigned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EventStore(Core())  # (the memory backend's core: no tree)
    fill(store, 2)
    ev = next(iter(store.iter(Query())))
    key, _ = key_file(tmp_path)
    caplog.set_level(logging.INFO, "eventvault.server")
    async with running(create_app(store, config(key), close_store=False)) as c:
        for path in ["/v1/log/tree", "/v1/log/checkpoint", f"/v1/events/{ev.id}/proof",
                     "/v1/log/consistency?first=1"]:  # fmt: skip
            r = await c.get(path, headers=READ)
            assert r.status_code == 501, path
            assert r.json()["error"]["type"] == "NotSupportedError"
            assert "keeps no Merkle tree" in r.json()["error"]["message"]
        assert (await c.get("/healthz")).status_code == 200
    said = [r.getMessage() for r in caplog.records if "keeps no Merkle tree" in r.getMessage()]
    assert len(said) == 1
    assert "without signed checkpoints" in said[0]


async def test_the_openapi_document_describes_the_log() -> None:
    async with running(create_app(memory_store(), config())) as c:
        doc = (await c.get("/openapi.json", headers=READ)).json()
    paths = doc["paths"]
    proof = paths["/v1/events/{event_id}/proof"]["get"]
    schema = proof["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash"]
    assert "X-Tree-Size-Source" in proof["responses"]["200"]["headers"]
    assert {"409", "404", "400", "501"} <= set(proof["responses"])
    cons = paths["/v1/log/consistency"]["get"]["responses"]["200"]["content"]
    assert cons["application/json"]["schema"]["required"][0] == "first"
    tree = paths["/v1/log/tree"]["get"]["responses"]["200"]["content"]
    assert set(tree["application/json"]["schema"]["properties"]) == {"size", "base", "root_hash"}
    assert "text/plain" in paths["/v1/log/checkpoint"]["get"]["responses"]["200"]["content"]


# -- the checkpointing thread -----------------------------------------------------------


async def _post(c: httpx.AsyncClient, n: int) -> None:
    for i in range(n):
        r = await c.post("/v1/events", json={"type": "x", "data": {"i": i}}, headers=WRITE)
        assert r.status_code == 201


async def test_a_checkpoint_every_n_events(tmp_path: Path) -> None:
    store = memory_store()
    key, signer = key_file(tmp_path)
    app = create_app(
        store, config(key, checkpoint_events=5, checkpoint_interval="1h"), close_store=False
    )
    async with running(app) as c:
        await _post(c, 4)
        await asyncio.sleep(0.3)
        assert store.log.latest_checkpoint() is None  # (4 < 5, and not an hour yet)
        await _post(c, 1)
        note = await wait_for(store.log.latest_checkpoint)
        cp = open_checkpoint(note, [signer.verifier()], origin="example.com/log")
        assert (cp.size, cp.root_hash) == (5, rfc.mth(leaves(store)))
        r = await c.get("/v1/log/checkpoint", headers=READ)
        assert r.text == note
        await _post(c, 5)
        await wait_for(lambda: kept_size(store.log.latest_checkpoint()) == 10)
        metrics = (await c.get("/metrics", headers=READ)).text
    assert 'eventvault_checkpoints_total{outcome="ok"} 2.0' in metrics
    assert "eventvault_checkpoint_tree_size 10.0" in metrics


async def test_a_checkpoint_after_the_interval_if_anything_was_appended(tmp_path: Path) -> None:
    store = memory_store()
    key, signer = key_file(tmp_path)
    app = create_app(
        store, config(key, checkpoint_events=1000, checkpoint_interval="300ms"), close_store=False
    )
    async with running(app) as c:
        await asyncio.sleep(0.5)
        assert store.log.latest_checkpoint() is None  # (nothing appended: nothing signed)
        await _post(c, 2)
        note = await wait_for(store.log.latest_checkpoint, 5)
        assert open_checkpoint(note, [signer.verifier()]).size == 2


async def test_a_checkpoint_at_start_up_if_the_tree_grew(tmp_path: Path) -> None:
    store = memory_store()
    key, signer = key_file(tmp_path)
    fill(store, 3)
    store.log.checkpoint(signer, save=True)
    fill(store, 2)
    app = create_app(
        store, config(key, checkpoint_events=1000, checkpoint_interval="1h"), close_store=False
    )
    async with running(app):
        await wait_for(lambda: kept_size(store.log.latest_checkpoint()) == 5)


def test_checkpointer_triggers_with_a_clock(tmp_path: Path) -> None:
    store = memory_store()
    _, signer = key_file(tmp_path)
    now = [100.0]
    cp = Checkpointer(StoreHolder(store), signer, 3, 60.0, clock=lambda: now[0])
    assert cp.run_once(startup=True) is None  # an empty tree: nothing to sign
    fill(store, 2)
    cp.appended(2)
    assert cp.run_once() is None  # 2 < 3 events, 0 s < 60 s
    now[0] += 59
    assert cp.run_once() is None
    now[0] += 1
    assert open_checkpoint(cp.run_once() or "", [signer.verifier()]).size == 2
    now[0] += 3600
    assert cp.run_once() is None  # nothing appended since
    fill(store, 3)  # (by another process: the tree's size counts, not only the service's)
    assert kept_size(cp.run_once()) == 5


# -- the key ----------------------------------------------------------------------------


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key, signer = key_file(tmp_path, mode=0o644)
    with pytest.raises(ConfigError) as info:
        create_app(memory_store(), config(key))
    assert "chmod 600" in str(info.value)
    assert "audit.signing_key" in str(info.value)
    assert signer.key_text.split("+")[-1] not in str(info.value)


def test_a_missing_or_wrong_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the key file"):
        create_app(memory_store(), config(tmp_path / "nope.key"))
    _, signer = key_file(tmp_path)
    public = tmp_path / "public.vkey"
    public.write_text(signer.verifier().key_text + "\n")
    with pytest.raises(ConfigError, match="is not a signing key"):
        create_app(memory_store(), config(public))
    broken = tmp_path / "broken.key"
    write_key_file(broken, "PRIVATE+KEY+example.com+00000000+AQ==")
    with pytest.raises(ConfigError, match="not a valid signing key"):
        create_app(memory_store(), config(broken))


async def test_a_reload_keeps_checkpoints_signed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key, signer = key_file(tmp_path)
    audit = {"checkpoint_events": 2, "checkpoint_interval": "1h"}
    app = create_app(memory_store(), config(key, **audit))
    svc = app.state.service
    opened: list[EventStore] = []

    def opener(_cfg: Config) -> EventStore:
        opened.append(memory_store())
        return opened[-1]

    async def signed_by(verifier_signer: NoteSigner, size: int) -> None:
        store = svc.holder.current
        note = await wait_for(
            lambda: (
                kept_size(store.log.latest_checkpoint()) == size and store.log.latest_checkpoint()
            )
        )
        open_checkpoint(note, [verifier_signer.verifier()])

    caplog.set_level(logging.INFO, "eventvault.server")
    async with running(app) as c:
        # The same key: signed on after the reload (on the new store).
        assert await asyncio.to_thread(svc.reload, lambda: config(key, **audit), opener)
        await _post(c, 2)
        await signed_by(signer, 2)
        # A key file that became readable by others: the reload is refused, and the
        # old key goes on signing.
        bad, _ = key_file(tmp_path, "bad.example", mode=0o640)
        assert not await asyncio.to_thread(svc.reload, lambda: config(bad, **audit), opener)
        assert any("reload refused" in r.getMessage() for r in caplog.records)
        await _post(c, 2)
        await signed_by(signer, 4)
        # Another key: what is signed after the reload is signed by it.
        other, other_signer = key_file(tmp_path, "other.example")
        assert await asyncio.to_thread(svc.reload, lambda: config(other, **audit), opener)
        await _post(c, 2)
        await signed_by(other_signer, 2)
        # No key at all: said, loudly.
        assert await asyncio.to_thread(svc.reload, lambda: config(None), opener)
        assert svc.checkpointer is None
        assert any("no more signed checkpoints" in r.getMessage() for r in caplog.records)
    assert all(r.levelno < logging.ERROR or "reload refused" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert not any(signer.key_text in r.getMessage() for r in caplog.records)


# -- a real `eventvault serve` -----------------------------------------------------------


def _serve(tmp_path: Path, key: Path, audit: str = "") -> tuple[subprocess.Popen[str], str]:
    cfg = tmp_path / "eventvault.toml"
    cfg.write_text(
        f'[store]\nbackend = "memory"\n[server]\ngraceful_timeout = "5s"\n'
        f'[audit]\nsigning_key = "{key}"\n{audit}'
    )
    port = free_port()
    proc = subprocess.Popen(
        [*EV, "--config", str(cfg), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    _, err = proc.communicate(timeout=20)
    return err


def _kept(url: str, size: int, signer: NoteSigner) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/log/checkpoint", timeout=5)
        if r.status_code == 200 and open_checkpoint(r.text, [signer.verifier()]).size == size:
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of size {size}")


def test_serve_signs_checkpoints_and_a_sighup_keeps_signing(tmp_path: Path) -> None:
    key, signer = key_file(tmp_path)
    proc, url = _serve(tmp_path, key, 'checkpoint_events = 3\ncheckpoint_interval = "1h"\n')
    try:
        assert answers(f"{url}/healthz", 30)
        events = [{"type": "x", "data": {"i": i}} for i in range(3)]
        assert httpx.post(f"{url}/v1/events", json=events, timeout=10).status_code == 201
        _kept(url, 3, signer)
        first = httpx.get(f"{url}/v1/events", timeout=5).json()["events"][0]["id"]
        proof = httpx.get(f"{url}/v1/events/{first}/proof", timeout=5)
        assert proof.headers["x-tree-size-source"] == "checkpoint"
        cp = open_checkpoint(httpx.get(f"{url}/v1/log/checkpoint").text, [signer.verifier()])
        InclusionProof.from_dict(proof.json()).verify(root_hash=cp.root_hash)
        proc.send_signal(signal.SIGHUP)  # (the memory backend: a new, empty store)
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v1/log/tree", timeout=5).json()["size"] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert httpx.post(f"{url}/v1/events", json=events, timeout=10).status_code == 201
        _kept(url, 3, signer)
    finally:
        err = _stop(proc)
    assert "reloaded" in err
    assert "checkpoints: signed by key example.com/log+" in err
    assert signer.key_text not in err


def test_serve_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    key, signer = key_file(tmp_path, mode=0o644)
    proc, _ = _serve(tmp_path, key)
    try:
        code = proc.wait(30)
    finally:
        err = _stop(proc)
    assert code == EXIT_CONFIG, err
    assert f"chmod 600 {key}" in err
    assert signer.key_text not in err


def test_a_relative_signing_key_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    key, signer = key_file(tmp_path / "etc")
    cfg_file = tmp_path / "etc" / "eventvault.toml"
    cfg_file.write_text(f'[store]\nbackend = "memory"\n[audit]\nsigning_key = "{key.name}"\n')
    cfg = load_config(str(cfg_file))
    assert cfg.audit.signing_key == str(key)
    app = create_app(memory_store(), cfg)
    assert app.state.service.signer.key_id == signer.key_id
