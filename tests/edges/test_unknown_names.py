"""Issue 17.1: unknown event fields and unknown query parameters are refused, naming
the unknown key, the known ones and the likely intended one — never ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventvault import ConfigError, NewEvent, Query, ValidationError, load_config
from eventvault.strict import unknown_name

from ..server.conftest import ClientMaker

EXE = [sys.executable, "-m", "eventvault.cli"]


def sh(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    return subprocess.run(
        [*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, input=input, check=False
    )


def test_the_message_names_the_key_the_hint_and_the_known_names() -> None:
    msg = unknown_name("field", "strem", ["type", "stream", "data"])
    assert "'strem'" in msg
    assert "did you mean 'stream'?" in msg
    assert "type, stream, data" in msg
    assert "did you mean" not in unknown_name("field", "zzzzzz", ["type", "stream"])


def test_append_file_refuses_a_line_with_an_unknown_field(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"type": "ok.a"}\n{"type": "ok.a", "strem": "typo"}\n')
    assert sh(tmp_path, "init").returncode == 0
    r = sh(tmp_path, "append", "--file", str(src))
    assert r.returncode == 2, r.stderr
    assert "line 2" in r.stderr
    assert "unknown field 'strem'" in r.stderr
    assert "did you mean 'stream'?" in r.stderr
    assert "causation_id" in r.stderr  # the known names are listed
    stats = sh(tmp_path, "stats", "--format", "json")
    assert json.loads(stats.stdout)["events"] == 0  # nothing was stored


def test_a_stored_event_line_says_which_fields_the_store_assigns(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"type": "ok.a", "position": 3, "hash": "ab"}\n')
    r = sh(tmp_path, "append", "--file", str(src))
    assert r.returncode == 2
    assert "assigned by the store" in r.stderr


def test_library_refuses_unknown_fields_from_a_dict() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="unknown field `strem`"):
        msgspec.convert({"type": "a.b", "strem": "x"}, NewEvent)


@pytest.mark.anyio
async def test_post_with_an_unknown_field_is_400_and_stores_nothing(
    make_client: ClientMaker,
) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events", json={"type": "ok.a", "strem": "typo"})
        assert r.status_code == 400, r.text
        msg = r.json()["error"]["message"]
        assert "unknown field 'strem'" in msg
        assert "did you mean 'stream'?" in msg
        r = await c.post("/v1/events", json=[{"type": "ok.a"}, {"type": "ok.b", "atcor": "x"}])
        assert r.status_code == 400
        assert "$[1]" in r.json()["error"]["message"]
        assert "did you mean 'actor'?" in r.json()["error"]["message"]
        assert (await c.get("/v1/stats")).json()["events"] == 0


@pytest.mark.anyio
async def test_cloudevents_extensions_are_not_unknown_fields(make_client: ClientMaker) -> None:
    body = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "ci",
        "type": "ok.a",
        "myextension": "kept",
        "data": {"k": 1},
    }
    async with make_client() as c:
        r = await c.post(
            "/v1/events", json=body, headers={"content-type": "application/cloudevents+json"}
        )
        assert r.status_code == 201, r.text
        (stored,) = (await c.get("/v1/events")).json()["events"]
        assert stored["metadata"]["cloudevents"]["myextension"] == "kept"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "typo", "hint"),
    [
        ("/v1/events?typ=x.y", "typ", "type"),
        ("/v1/events?strem=s", "strem", "stream"),
        ("/v1/events?causationid=c", "causationid", "causation_id"),
        ("/v1/events/stream?typ=x.y", "typ", "type"),
        ("/v1/stats?verbose=1", "verbose", None),
        ("/healthz?x=1", "x", None),
        ("/readyz?x=1", "x", None),
        ("/metrics?x=1", "x", None),
        ("/v1/events/00000000-0000-0000-0000-000000000000?fromat=x", "fromat", None),
    ],
)
async def test_get_with_an_unknown_parameter_is_400(
    make_client: ClientMaker, url: str, typo: str, hint: str | None
) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json={"type": "a.b"})
        r = await c.get(url)
        assert r.status_code == 400, (url, r.text)
        err = r.json()["error"]
        assert err["type"] == "ValidationError"
        assert f"unknown query parameter {typo!r}" in err["message"]
        if hint:
            assert f"did you mean {hint!r}?" in err["message"]


@pytest.mark.anyio
async def test_post_with_an_unknown_parameter_is_400(make_client: ClientMaker) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events?expected_revison=3", json={"type": "a.b"})
        assert r.status_code == 400, r.text
        assert "did you mean 'expected_revision'?" in r.json()["error"]["message"]
        r = await c.post("/v1/verify?x=1")
        assert r.status_code == 400
        assert (await c.get("/v1/stats")).json()["events"] == 0


@pytest.mark.anyio
async def test_known_parameters_still_work(make_client: ClientMaker) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json=[{"type": "a.b"}, {"type": "c.d", "causation_id": "x"}])
        r = await c.get("/v1/events?type=a.b&limit=5&order=desc&since=1h")
        assert r.status_code == 200, r.text
        assert [e["type"] for e in r.json()["events"]] == ["a.b"]
        r = await c.get("/v1/events?causation_id=x")
        assert [e["type"] for e in r.json()["events"]] == ["c.d"]


def test_config_unknown_key_gets_the_same_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"store": {"file": {"pth": "x"}}})
    msg = str(info.value)
    assert "store.file.pth" in msg
    assert "did you mean 'path'?" in msg
    assert "fsync" in msg  # the known keys of [store.file]
    with pytest.raises(ConfigError, match="did you mean 'backend'"):
        load_config({"store": {"backnd": "file"}})
    with pytest.raises(ConfigError, match="did you mean 'scopes'"):
        load_config({"server": {"tokens": [{"name": "a", "token": "t", "scope": ["read"]}]}})


def test_query_filters_by_causation_id_in_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"type": "a.b", "causation_id": "c-1"}\n{"type": "a.b"}\n'
        '{"type": "a.c", "causation_id": "c-2"}\n'
    )
    assert sh(tmp_path, "append", "--file", str(src)).returncode == 0
    r = sh(tmp_path, "query", "--causation-id", "c-1", "--causation-id", "c-2", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [e["causation_id"] for e in json.loads(r.stdout)] == ["c-1", "c-2"]


def test_query_causation_ids_are_checked_like_the_other_names() -> None:
    assert Query(causation_ids=["a", "a", "b"]).causation_ids == ("a", "b")
    with pytest.raises(ValidationError):
        Query(causation_ids=[""])


def test_a_tokens_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """A typo'd ``[[token]]`` table must not leave the service without its tokens."""
    tokens = tmp_path / "tokens.toml"
    cfg = {"server": {"tokens_file": str(tokens)}}
    tokens.write_text('[[token]]\nname = "ci"\ntoken = "t"\nscopes = ["read"]\n')
    with pytest.raises(ConfigError, match="did you mean 'tokens'"):
        load_config(cfg)
    tokens.write_text('[[tokens]]\nname = "ci"\ntoken = "t"\nscope = ["read"]\n')
    with pytest.raises(ConfigError, match="did you mean 'scopes'"):
        load_config(cfg)
    tokens.write_text('[[tokens]]\nname = "ci"\ntoken = "t"\nscopes = ["read"]\n')
    assert [t.name for t in load_config(cfg).server.tokens] == ["ci"]
