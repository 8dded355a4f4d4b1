"""Issue 17.12: extreme times, durations and integers end in a typed error (CLI exit
2/3, HTTP 400, ``ValidationError``/``ConfigError``) — never OverflowError, a raw
ValueError, exit 1 or a 500.

The named cases first (each one of the issue's reports), then Hypothesis over every
time, duration and integer input surface: library, configuration, HTTP and CLI.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventvault import ConfigError, MemoryEventStore, NewEvent, Query, ValidationError, load_config
from eventvault.backends.file import FileEventStore
from eventvault.model import parse_expected_revision
from eventvault.timeutil import parse_duration, parse_time

from ..server.conftest import ClientMaker

EXE = [sys.executable, "-m", "eventvault.cli"]
EXAMPLES = int(os.environ.get("EV_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    return subprocess.run(
        [*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


# -- the reported cases, through the real command ----------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "--since", "999999999d"],
        ["query", "--since", "9999-12-31T23:59:59-23:59"],
        ["query", "--until", "+99999999999w"],
        ["query", "--since", "1" + "0" * 400 + "s"],
        ["append", "--type", "a.b", "--occurred-at", "0001-01-01T00:00:00+14:00"],
        ["append", "--type", "a.b", "--expected-revision", "²"],
        ["append", "--type", "a.b", "--expected-revision", "9" * 5000],
        ["query", "--after", str(2**64)],
        ["retention", "plan", "--at", "+99999999999w"],
    ],
)
def test_cli_extremes_are_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "eventvault.toml").write_text('[retention]\nmax_age = "30d"\n')
    r = sh(tmp_path, *argv)
    assert r.returncode == 2, (argv, r.returncode, r.stderr)
    assert "internal error" not in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "toml",
    [
        '[retention]\nmax_age = "99999999999999d"\n',
        f'[server]\nheader_timeout = "{"9" * 40}s"\n',
        '[server]\nbody_timeout = "999999999d"\n',
        '[store.file]\nfsync_interval = "1e400s"\n',
        f"[store.file]\nsegment_max_bytes = {2**62}\n",
        f"[retention]\nmax_count = {2**63}\n",
        "[store.postgres]\npool_max = 100000000\n",
        '[store.postgres]\nstatement_timeout = "30d"\n',
    ],
)
def test_config_extremes_are_config_errors(tmp_path: Path, toml: str) -> None:
    (tmp_path / "eventvault.toml").write_text(toml)
    r = sh(tmp_path, "retention", "show")
    assert r.returncode == 3, (toml, r.returncode, r.stderr)
    assert "internal error" not in r.stderr


@pytest.mark.parametrize("command", [["plan"], ["apply", "--yes"]], ids=["plan", "apply"])
def test_a_bad_at_is_refused_even_without_a_policy(tmp_path: Path, command: list[str]) -> None:
    r = sh(tmp_path, "retention", *command, "--at", "+99999999999w")
    assert r.returncode == 2, r.stderr
    assert "--at" in r.stderr


def test_library_refuses_an_integer_no_json_reader_can_take() -> None:
    with pytest.raises(ValidationError, match="digits"):
        NewEvent(type="a.b", data={"k": 10**5000})
    with pytest.raises(ValidationError, match="digits"):
        NewEvent(type="a.b", metadata={"deep": [{"k": -(10**5000)}]})
    NewEvent(type="a.b", data={"k": 10**3000})  # big, but every reader takes it


def test_library_refuses_times_outside_the_utc_range() -> None:
    east = timezone(timedelta(hours=14))
    with pytest.raises(ValidationError, match="occurred_at"):
        NewEvent(type="a.b", occurred_at=datetime(1, 1, 1, tzinfo=east))
    with pytest.raises(ValidationError, match="since"):
        Query(since=datetime(1, 1, 1, tzinfo=east))
    with pytest.raises(ValidationError, match="after"):
        Query(after=2**63)


@pytest.mark.anyio
async def test_http_extremes_are_400(make_client: ClientMaker) -> None:
    async with make_client() as c:
        for url in (
            "/v1/events?since=999999999d",
            "/v1/events?until=%2B99999999999w",
            "/v1/events?since=9999-12-31T23:59:59-23:59",
            f"/v1/events?after={2**64}",
            f"/v1/events?limit={'9' * 5000}",
        ):
            r = await c.get(url)
            assert r.status_code == 400, (url, r.text)
            assert r.json()["error"]["type"] == "ValidationError"
        r = await c.post(
            "/v1/events", json={"type": "a.b", "occurred_at": "0001-01-01T00:00:00+14:00"}
        )
        assert r.status_code == 400, r.text
        r = await c.post(
            "/v1/events",
            content=b"{}",
            headers={
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "s",
                "ce-type": "a.b",
                "ce-time": "0001-01-01T00:00:00+14:00",
                "content-type": "application/json",
            },
        )
        assert r.status_code == 400, r.text
        for resume in ("%C2%B2", str(2**64), "9" * 5000, "-1"):
            r = await c.get(f"/v1/events/stream?after={resume}")
            assert r.status_code == 400, (resume, r.text)
        r = await c.post("/v1/events?expected_revision=%C2%B2", json={"type": "a.b"})
        assert r.status_code == 400, r.text
        assert (await c.get("/v1/stats")).json()["events"] == 0


# -- Hypothesis over every surface ---------------------------------------------------------

UNITS = st.sampled_from(["ms", "s", "m", "h", "d", "w"])
huge_number = st.one_of(
    st.integers(0, 10**30).map(str),
    st.integers(300, 5000).map(lambda n: "9" * n),
    st.floats(0, 1e308).map(repr),
    st.sampled_from(["²", "٣", "1²", "¹⁰", "1e400", "0", "00", "-1", "1_000"]),
)
durations = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", huge_number, UNITS),
    st.builds(lambda n, u: f"+{n}{u}", huge_number, UNITS),
)
iso_times = st.one_of(
    st.builds(
        lambda y, h, m, sign: f"{y:04d}-12-31T23:59:59{sign}{h:02d}:{m:02d}",
        st.sampled_from([1, 2, 9998, 9999]),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(["+", "-"]),
    ),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59", "0001-01-01",
                     "9999-12-31", "now", "99999-01-01", "0000-01-01"]),
)  # fmt: skip
time_texts = st.one_of(durations, iso_times)
int_texts = st.one_of(huge_number, st.integers(-(2**70), 2**70).map(str))
big_ints = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30, -1])
)
extreme_datetimes = st.one_of(
    st.datetimes(timezones=st.timezones()),
    st.builds(
        lambda d, h: d.replace(tzinfo=timezone(timedelta(hours=h))),
        st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)]),
        st.integers(-23, 23),
    ),
)


@FUZZ
@given(text=st.one_of(time_texts, st.text(max_size=20)))
def test_times_and_durations_parse_or_raise_value_error(text: str) -> None:
    now = datetime.now(UTC)
    for parse in (parse_duration, lambda t: parse_time(t, now=now)):
        with contextlib.suppress(ValueError):  # (ValidationError is a ValueError too)
            value = parse(text)
            assert isinstance(value, timedelta | datetime)


@FUZZ
@given(text=int_texts)
def test_expected_revision_text(text: str) -> None:
    with contextlib.suppress(ValidationError):
        value = parse_expected_revision(text)
        assert not isinstance(value, int) or 0 <= value < 2**63


@FUZZ
@given(
    after=st.one_of(st.none(), big_ints),
    before=st.one_of(st.none(), big_ints),
    limit=big_ints,
    since=st.one_of(st.none(), extreme_datetimes),
)
def test_query_values(after: Any, before: Any, limit: int, since: Any) -> None:
    store = MemoryEventStore()
    store.append(NewEvent(type="a.b"))
    try:
        query = Query(after=after, before=before, limit=limit, since=since)
    except ValidationError:
        return
    store.read(query)


@FUZZ
@given(
    occurred=extreme_datetimes,
    number=st.one_of(big_ints, st.integers(10**4000, 10**4000 * 10**10), st.just(-(10**5000))),
)
def test_event_values(occurred: datetime, number: int) -> None:
    store = MemoryEventStore()
    try:
        event = NewEvent(type="a.b", occurred_at=occurred, data={"n": number})
    except ValidationError:
        return
    stored = store.append(event).events[0]
    assert msgspec.json.decode(msgspec.json.encode(stored))["data"]["n"] == number


DURATION_KEYS = [
    ("store", "file", "fsync_interval"),
    ("store", "postgres", "connect_timeout"),
    ("store", "postgres", "statement_timeout"),
    ("store", "eventstoredb", "timeout"),
    ("server", "heartbeat"),
    ("server", "header_timeout"),
    ("server", "body_timeout"),
    ("server", "graceful_timeout"),
    ("retention", "max_age"),
    ("retention", "check_interval"),
]
INT_KEYS = [
    ("store", "max_event_bytes"),
    ("store", "file", "segment_max_bytes"),
    ("store", "file", "file_mode"),
    ("store", "file", "dir_mode"),
    ("store", "postgres", "pool_min"),
    ("store", "postgres", "pool_max"),
    ("server", "port"),
    ("server", "max_body_bytes"),
    ("retention", "max_count"),
]


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        out = {key: out}
    if path[0] == "retention" and "max_age" not in out["retention"]:
        out["retention"].setdefault("max_count", 10)
    return out


@FUZZ
@given(key=st.sampled_from(DURATION_KEYS), value=time_texts)
def test_config_durations(key: tuple[str, ...], value: str) -> None:
    with contextlib.suppress(ConfigError):
        load_config(_nest(key, value), env={})


@FUZZ
@given(key=st.sampled_from(INT_KEYS), value=big_ints)
def test_config_integers(key: tuple[str, ...], value: int) -> None:
    with contextlib.suppress(ConfigError):
        load_config(_nest(key, value), env={})


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["since", "until", "after", "before", "limit"]),
        st.one_of(time_texts, int_texts),
        min_size=1,
    )
)
def test_http_query_parameters(params: dict[str, str]) -> None:
    from starlette.datastructures import QueryParams

    from eventvault.server.requests import query_from_params

    store = MemoryEventStore()
    with contextlib.suppress(ValidationError):
        store.read(query_from_params(QueryParams(params)))


@FUZZ
@given(when=time_texts, number=st.one_of(big_ints, st.integers(300, 5000).map(lambda n: "9" * n)))
def test_http_bodies_and_ce_time(when: str, number: Any) -> None:
    from eventvault.server.requests import HTTPError, events_from_body, expected_revision

    store = MemoryEventStore()
    body = f'{{"type": "a.b", "occurred_at": "{when}", "data": {{"n": {number}}}}}'.encode()
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "a.b",
               "ce-time": when}  # fmt: skip
    for hdrs, content in (({}, body), (headers, b"{}")):
        with contextlib.suppress(ValidationError, HTTPError):
            store.append(events_from_body("application/json", hdrs, content)[0])
    with contextlib.suppress(ValidationError):
        expected_revision(str(number))


@FUZZ
@given(
    argv=st.one_of(
        st.builds(lambda o, v: ["query", o, v], st.sampled_from(["--since", "--until"]),
                  time_texts),
        st.builds(lambda o, v: ["query", o, v], st.sampled_from(["--after", "--before",
                                                                  "--limit"]), int_texts),
        st.builds(lambda v: ["append", "--type", "a.b", "--occurred-at", v], time_texts),
        st.builds(lambda v: ["append", "--type", "a.b", "--expected-revision", v], int_texts),
        st.builds(lambda v: ["retention", "plan", "--at", v], time_texts),
        st.builds(lambda v: ["tail", "--since", v], time_texts),
    )
)  # fmt: skip
def test_cli_values(argv: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    from eventvault.cli.main import cli

    workdir = tmp_path_factory.mktemp("cli")
    config = workdir / "eventvault.toml"
    config.write_text(f'[store.file]\npath = "{workdir / "d"}"\n[retention]\nmax_age = "30d"\n')
    FileEventStore(workdir / "d").close()  # (readers do not create a store)
    result = CliRunner().invoke(cli, ["--config", str(config), *argv], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{argv!r} raised {result.exception!r}") from result.exception
    assert result.exit_code in (0, 2, 4), (argv, result.exit_code, result.output)  # 4: conflict
