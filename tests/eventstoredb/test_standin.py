"""The stand-in behaves as the official client expects of a server (real gRPC)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import NotFoundError, WrongCurrentVersionError

from .standin import serve


@pytest.fixture
def client() -> Iterator[KurrentDBClient]:
    server, _standin, port = serve()
    c = KurrentDBClient(f"kurrentdb://127.0.0.1:{port}?tls=false")
    yield c
    c.close()
    server.stop(None)


def ev(type: str = "t.x", data: bytes = b"{}") -> NewEvent:
    return NewEvent(type=type, data=data, metadata=b'{"m":1}')


def test_append_and_read_a_stream(client: KurrentDBClient) -> None:
    events = [ev(data=b'{"i":%d}' % i) for i in range(3)]
    pos = client.append_to_stream("s-1", events=events, current_version=StreamState.NO_STREAM)
    got = client.get_stream("s-1")
    assert [e.id for e in got] == [e.id for e in events]
    assert [e.stream_position for e in got] == [0, 1, 2]
    assert got[-1].commit_position == pos
    assert got[0].metadata == b'{"m":1}'
    assert got[0].recorded_at is not None
    assert [e.stream_position for e in client.get_stream("s-1", backwards=True)] == [2, 1, 0]
    assert [e.stream_position for e in client.get_stream("s-1", stream_position=1)] == [1, 2]
    with pytest.raises(NotFoundError):
        client.get_stream("missing")


def test_expected_versions_and_idempotent_retries(client: KurrentDBClient) -> None:
    first = [ev(), ev()]
    client.append_to_stream("s", events=first, current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("s", events=[ev()], current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("s", events=[ev()], current_version=0)
    client.append_to_stream("s", events=[ev()], current_version=1)
    # The same ids again: stored once.
    client.append_to_stream("s", events=first, current_version=StreamState.NO_STREAM)
    assert len(client.get_stream("s")) == 3
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream("t", events=[ev()], current_version=StreamState.EXISTS)


def test_all_positions_filters_and_directions(client: KurrentDBClient) -> None:
    for i in range(6):
        client.append_to_stream(
            f"s-{i % 2}", events=[ev(type=f"k.{i % 3}")], current_version=StreamState.ANY
        )
    everything = list(client.read_all())
    positions = [e.commit_position for e in everything]
    assert positions == sorted(positions)
    assert all(b - a > 1 for a, b in itertools.pairwise(positions))  # sparse
    assert [e.commit_position for e in client.read_all(backwards=True)] == positions[::-1]
    assert [e.commit_position for e in client.read_all(commit_position=positions[2])] == positions[
        2:
    ]
    assert len(list(client.read_all(limit=2))) == 2
    by_type = list(client.read_all(filter_include=["k.1"], filter_by_stream_name=False))
    assert {e.type for e in by_type} == {"k.1"}
    by_stream = list(client.read_all(filter_include=["s-1"], filter_by_stream_name=True))
    assert {e.stream_name for e in by_stream} == {"s-1"}
    assert client.get_commit_position() == positions[-1]


def test_subscription_catches_up_then_follows(client: KurrentDBClient) -> None:
    client.append_to_stream("s", events=[ev(), ev()], current_version=StreamState.ANY)
    first = next(iter(client.read_all())).commit_position
    sub = client.subscribe_to_all(commit_position=first)  # exclusive
    got: list[int] = []

    def appender() -> None:
        client.append_to_stream("s", events=[ev()], current_version=StreamState.ANY)

    for e in sub:
        got.append(e.stream_position)
        if len(got) == 1:
            threading.Thread(target=appender).start()
        if len(got) == 2:
            break
    sub.stop()
    assert got == [1, 2]
    assert uuid.UUID(str(e.id))
