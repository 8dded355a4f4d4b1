"""Fuzz every input surface with Hypothesis: each input ends in a typed error or a
correct result — never another exception, a hang, or a store changed by a refusal.

Bounded for CI: ``EV_FUZZ_EXAMPLES`` per test (default 200).
"""

from __future__ import annotations

import contextlib
import math
import os
import string
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from eventvault import MemoryEventStore, NewEvent, Query, load_config
from eventvault.cursor import decode_cursor
from eventvault.errors import ConfigError, EventVaultError, ValidationError

pytestmark = pytest.mark.system  # see README, "Tests"

EXAMPLES = int(os.environ.get("EV_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- values that break naive JSON handling --------------------------------------------

nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "../../etc/passwd", "'; DROP TABLE x;--",
                     "\u202e", "%00", "${HOME}"]),
    st.integers(150, 70_000).map(lambda n: "é" * n),  # (huge, kept out of reprs)
)  # fmt: skip
numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(nasty_text, st.integers(), st.none()), inner, max_size=4),
    ),
    max_leaves=20,
)


def deep(n: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(n):
        value = {"d": value}
    return value


AWARE = st.datetimes(timezones=st.timezones())

# -- NewEvent construction ------------------------------------------------------------------


@FUZZ
@given(
    type_=st.one_of(nasty_text, st.sampled_from(["task.done", "a", "a.b/c:d-e_f"]), st.integers()),
    stream=st.one_of(nasty_text, st.none(), st.integers()),
    actor=st.one_of(nasty_text, st.none()),
    data=st.one_of(json_like, st.just(deep(70)), st.just(deep(63))),
    metadata=st.one_of(json_like, st.just({})),
    occurred=st.one_of(st.none(), st.datetimes(), AWARE, nasty_text),
    event_id=st.one_of(st.none(), st.uuids(), nasty_text),
)  # fmt: skip
def test_new_event_construction(
    type_: Any, stream: Any, actor: Any, data: Any, metadata: Any, occurred: Any, event_id: Any
) -> None:
    kw: dict[str, Any] = {"type": type_, "data": data, "metadata": metadata, "actor": actor}
    if stream is not None:
        kw["stream"] = stream
    if occurred is not None:
        kw["occurred_at"] = occurred
    if event_id is not None:
        kw["id"] = event_id
    store = MemoryEventStore()
    try:
        event = NewEvent(**kw)
    except (ValidationError, TypeError):
        return  # a typed refusal (TypeError: a wrong Python type handed to the library)
    # Whatever was accepted can be stored, read back equal, and verified.
    try:
        stored = store.append(event).events[0]
    except ValidationError:  # e.g. over max_event_bytes
        assert store.head() == 0
        return
    assert store.get(stored.id) == stored
    assert stored.data == event.data
    assert store.verify().ok


# -- JSON bodies, as the HTTP service decodes them --------------------------------------


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_like.map(lambda v: msgspec.json.encode(v) if _encodable(v) else b"{}"),
        st.sampled_from([
            b'{"type": "a.b", "data": {"x": 1, "x": 2}}',  # duplicate keys
            b'{"type": "a.b", "data": {"x": NaN}}',
            b'{"type": "a.b", "data": {"s": "\\ud800"}}',  # a lone surrogate escape
            b'{"type": "a.b", "data": {"s": "\xff\xfe"}}',  # invalid UTF-8
            b'[' * 5000 + b']' * 5000,
            b'{"type": "a.b", "data": ' + b'{"d": ' * 100 + b"1" + b"}" * 100 + b"}",
            b'{"type": "a.b", "data": {"n": 1e999}}',
        ]),
    ),
    content_type=st.sampled_from([
        "application/json", "application/cloudevents+json",
        "application/cloudevents-batch+json", "", "text/plain",
    ]),
)  # fmt: skip
def test_http_bodies_decode_or_are_refused(body: bytes, content_type: str) -> None:
    from eventvault.server.requests import HTTPError, events_from_body

    store = MemoryEventStore()
    try:
        events, _ = events_from_body(content_type, {}, body)
        store.append(events)
    except (ValidationError, HTTPError):
        assert store.head() == 0
        return
    assert store.verify().ok


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject",
                         "ce-time", "ce-actor", "ce-correlationid", "ce-x", "ce-Bad_Name"]),
        st.one_of(nasty_text, st.sampled_from(["1.0", "%ZZ", "%C3%A9", "2026-01-01T00:00:00Z"])),
    ),
    body=st.binary(max_size=100),
)  # fmt: skip
def test_binary_cloudevent_headers(headers: dict[str, str], body: bytes) -> None:
    from eventvault.server.requests import HTTPError, events_from_body

    headers = {"ce-specversion": "1.0", **headers}
    store = MemoryEventStore()
    try:
        events, _ = events_from_body("application/json", headers, body)
        store.append(events)
    except (ValidationError, HTTPError):
        assert store.head() == 0


# -- queries and cursors ------------------------------------------------------------------


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["type", "actor", "correlation_id", "stream", "since", "until",
                         "after", "before", "limit", "order"]),
        nasty_text,
    )
)  # fmt: skip
def test_query_parameters(params: dict[str, str]) -> None:
    from starlette.datastructures import QueryParams

    from eventvault.server.requests import query_from_params

    store = MemoryEventStore()
    store.append([NewEvent(type="a.b"), NewEvent(type="c.d")])
    try:
        query = query_from_params(QueryParams(params))
    except ValidationError:
        return
    page = store.read(query)
    assert all(query.matches(e) for e in page.events)


def _real_cursor() -> str:
    store = MemoryEventStore()
    store.append([NewEvent(type="a.b") for _ in range(5)])
    cursor = store.read(Query(limit=2)).next_cursor
    assert cursor is not None
    return cursor


@FUZZ
@given(
    mangle=st.one_of(
        st.text(alphabet=string.ascii_letters + string.digits + "-_=.", max_size=200),
        st.integers(0, 60).map(lambda n: _real_cursor()[:n]),  # truncated
        st.integers(0, 60).map(lambda n: _flip(_real_cursor(), n)),  # one character changed
        st.just(_real_cursor()),  # from another store
    )
)  # fmt: skip
def test_forged_truncated_and_foreign_cursors(mangle: str) -> None:
    store = MemoryEventStore()
    store.append([NewEvent(type="a.b") for _ in range(5)])
    before = store.head()
    with pytest.raises(ValidationError):
        store.read(Query(limit=2), cursor=mangle)
    assert store.head() == before


def _flip(cursor: str, k: int) -> str:
    k = k % len(cursor)
    return cursor[:k] + ("A" if cursor[k] != "A" else "B") + cursor[k + 1 :]


def test_a_cursor_decodes_only_in_its_own_store() -> None:
    with pytest.raises(ValidationError):
        decode_cursor("not-a-cursor", store_id="x", query=Query())


# -- configuration files ------------------------------------------------------------------

config_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), nasty_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)  # fmt: skip
config_keys = st.sampled_from([
    "store", "retention", "server", "backend", "file", "postgres", "path", "fsync", "dsn",
    "schema", "max_age", "max_count", "rules", "types", "keep", "tokens", "port", "host",
    "segment_max_bytes", "pool_max", "check_interval", "allow_short", "max_body_bytes",
])  # fmt: skip


@FUZZ
@given(
    raw=st.dictionaries(
        config_keys,
        st.one_of(config_values, st.dictionaries(config_keys, config_values, max_size=4)),
        max_size=4,
    ),
)
def test_configuration_dicts(raw: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        load_config(raw, env={})


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.sampled_from([
    "[store]\nbackend = 'file'\n[store.file]\nfsync = 'sometimes'\n",
    "[retention]\nmax_age = '-1d'\n", "[retention]\nmax_age = '5m'\n",
    "[server]\nport = 70000\n", "[[server.tokens]]\nname = 'x'\nscopes = ['root']\n",
    "[store]\nbackend = 'postgres'\n[store.postgres]\nschema = 'x; drop'\n",
    "\x00\x00", "[store\n", "store = 5\n", "[store]\nmax_event_bytes = -1\n",
])))  # fmt: skip
def test_configuration_files(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("cfg") / "eventvault.toml"
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        assume(False)
    with contextlib.suppress(ConfigError):
        load_config(path, env={})


# -- command-line arguments ------------------------------------------------------------------

cli_words = st.sampled_from([
    "append", "query", "tail", "stats", "verify", "retention", "plan", "show", "copy",
    "--type", "-t", "--stream", "--data", "--metadata", "--id", "--since", "--until",
    "--limit", "--after", "--cursor", "--format", "json", "csv", "--expected-revision",
    "--occurred-at", "--file", "-", "--at", "--from", "--to", "--against", "{", "{}",
    "[]", '{"a": NaN}', "0", "-1", "99999999999999999999", "2h", "yesterday", "a.b", "",
])  # fmt: skip


@FUZZ
@given(
    argv=st.lists(st.one_of(cli_words, nasty_text.filter(lambda s: "\x00" not in s)), max_size=7)
)
def test_cli_arguments(argv: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    from eventvault.cli.main import cli

    workdir = tmp_path_factory.mktemp("cli")
    config = workdir / "eventvault.toml"
    config.write_text(f'[store]\nbackend = "file"\n[store.file]\npath = "{workdir / "d"}"\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), *argv], input="", catch_exceptions=True)
    # 0 ok, 2 usage/bad input, 3 config, 4 conflict, 5 unavailable, 6 integrity,
    # 7 no store (a reading command before anything created it):
    # never 1 (an internal error) and never an exception escaping click.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{argv!r} raised {result.exception!r}") from result.exception
    assert result.exit_code in (0, 2, 3, 4, 5, 6, 7), (argv, result.exit_code, result.output)


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--against", "\ud800"],  # found by test_cli_arguments
        ["copy", "--from", "\ud800", "--to", "b.toml"],
        ["copy", "--from", "a.toml", "--to", "x\udfffy"],
        ["append", "--file", "\ud800"],
        ["bench", "--dir", "\ud800"],
    ],
)
def test_file_names_that_cannot_be_encoded_are_usage_errors(argv: list[str]) -> None:
    from eventvault.cli.main import cli

    result = CliRunner().invoke(cli, argv, input="")
    assert result.exit_code == 2, (result.exit_code, result.exception, result.output)
    assert "cannot be a file name" in result.output


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
        return False
    return True


def test_the_fuzzers_reach_refusals_and_acceptances(tmp_path: Path) -> None:
    """A guard against fuzzers that only ever hit one branch: a few known inputs."""
    with pytest.raises(EventVaultError):
        NewEvent(type="a.b", data={"x": math.nan})
    with pytest.raises(EventVaultError):
        NewEvent(type="a.b", data=deep(70))
    assert NewEvent(type="a.b", data=deep(60)).data
