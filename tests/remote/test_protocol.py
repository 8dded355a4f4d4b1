"""The http backend's sans-I/O layer: every answer maps to the error it stands for,
and retries happen only where they are safe."""

from __future__ import annotations

import ssl
from uuid import uuid4

import msgspec
import pytest

from eventvault import ExpectedRevision, NewEvent, Query
from eventvault import errors as e
from eventvault.backends.http.protocol import (
    RetryPolicy,
    append_call,
    check_url,
    connection_error,
    error_from_answer,
    get_call,
    head_call,
    read_call,
    verify_call,
)

URL = "http://ev.example:8730"


def body(kind: str, message: str = "why", **details: object) -> bytes:
    err: dict[str, object] = {"type": kind, "message": message}
    if details:
        err["details"] = details
    return msgspec.json.encode({"error": err})


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (400, "ValidationError", e.ValidationError),
        (400, "NotSupportedError", e.NotSupportedError),
        (409, "ConflictError", e.ConflictError),
        (401, "Unauthorized", e.AuthenticationError),
        (403, "Forbidden", e.PermissionDeniedError),
        (413, "PayloadTooLarge", e.ValidationError),
        (415, "UnsupportedMediaType", e.ValidationError),
        (431, "RequestHeaderFieldsTooLarge", e.ValidationError),
        (429, "TooManyRequests", e.StoreUnavailableError),
        (503, "StoreUnavailableError", e.StoreUnavailableError),
        (503, "StoreClosedError", e.StoreUnavailableError),
        (503, "NotReady", e.StoreUnavailableError),
        (500, "CorruptionError", e.CorruptionError),
        (500, "EventVaultError", e.StoreError),
        (500, "ValidationError", e.StoreError),  # (a 5xx is never the caller's input)
        (507, "Whatever", e.StoreError),
    ],
)
def test_every_answer_maps_to_its_error(status: int, kind: str, cls: type) -> None:
    exc = error_from_answer(URL, "GET", "/v1/events", status, body(kind, "the reason"))
    assert type(exc) is cls
    assert "the reason" in str(exc)


def test_conflicts_come_back_with_their_fields() -> None:
    exc = error_from_answer(
        URL, "POST", "/v1/events", 409,
        body("WrongExpectedRevisionError", "m", stream="s", expected="no_stream", actual=4),
    )  # fmt: skip
    assert isinstance(exc, e.WrongExpectedRevisionError)
    assert (exc.stream, exc.expected, exc.actual) == ("s", ExpectedRevision.NO_STREAM, 4)
    event_id = uuid4()
    dup = error_from_answer(
        URL, "POST", "/v1/events", 409,
        body("DuplicateEventError", "m", event_id=str(event_id), position=7),
    )  # fmt: skip
    assert isinstance(dup, e.DuplicateEventError)
    assert (dup.event_id, dup.position) == (event_id, 7)


def test_an_answer_that_is_not_eventvaults() -> None:
    proxy = error_from_answer(URL, "GET", "/v1/head", 502, b"<html>Bad Gateway</html>")
    assert isinstance(proxy, e.StoreUnavailableError)
    other = error_from_answer(URL, "GET", "/v1/head", 404, b'{"detail": "Not Found"}')
    assert isinstance(other, e.ConfigError)
    assert "EVENTVAULT_URL" in str(other)
    call = head_call()
    with pytest.raises(e.StoreUnavailableError, match="not eventvault's"):
        call.parse(URL, 200, {}, b'{"something": "else"}')


def test_a_get_of_nothing_is_none_but_a_404_of_something_else_is_not() -> None:
    call = get_call(uuid4())
    assert call.parse(URL, 404, {}, body("NotFound")) is None
    with pytest.raises(e.StoreUnavailableError):
        call.parse(URL, 404, {}, body("Elsewhere"))
    assert verify_call().accept == frozenset({409})


def test_calls_carry_the_query_and_the_revision() -> None:
    q = Query(types=["a.*"], causation_ids=["c"], after=3, before=9, limit=5, reverse=True)
    params = dict(read_call(q, 5, "CUR").params)
    assert params == {
        "type": "a.*", "causation_id": "c", "after": "3", "before": "9",
        "limit": "5", "order": "desc", "cursor": "CUR",
    }  # fmt: skip
    call = append_call([NewEvent(type="t", stream="s")], 4)
    assert dict(call.params) == {"expected_revision": "4"}
    assert call.headers["prefer"] == "return=representation"
    assert call.headers["eventvault-occurred-defaulted"] == "all"
    lean = append_call([NewEvent(type="t")], ExpectedRevision.NO_STREAM, records=False)
    assert dict(lean.params) == {"expected_revision": "no_stream"}
    assert "prefer" not in lean.headers
    answer = b'{"events":[],"first_position":1,"last_position":1}'
    assert lean.parse(URL, 201, {}, answer).written == 1
    from datetime import UTC, datetime

    mixed = append_call([NewEvent(type="t"), NewEvent(type="t", occurred_at=datetime.now(UTC))], 0)
    assert mixed.headers["eventvault-occurred-defaulted"] == "0"


def test_retries_only_where_safe() -> None:
    policy = RetryPolicy(retries=2)
    call = head_call()
    assert policy.again(call, 1, None)
    assert policy.again(call, 2, 503)
    assert not policy.again(call, 3, 503)  # (retries spent)
    for status in (400, 401, 403, 404, 409, 413, 500):
        assert not policy.again(call, 1, status)
    assert policy.delay(1, "3") == 3.0
    assert 0.05 <= policy.delay(1) <= 0.1
    assert policy.delay(30) <= policy.max_delay


def test_transport_failures_say_what_to_do() -> None:
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    err, again = connection_error(URL, ConnectionError(wrong), timeout=5, kind="connect")
    assert "plain HTTP" in str(err)
    assert not again
    err, _ = connection_error(
        URL, ssl.SSLCertVerificationError(1, "CERTIFICATE_VERIFY_FAILED"), timeout=5, kind="tls"
    )
    assert "ca_file" in str(err)
    err, again = connection_error(URL, TimeoutError(), timeout=5, kind="timeout")
    assert "within 5s" in str(err)
    assert again


def test_urls_are_checked() -> None:
    assert check_url("https://ev.example:8730/") == "https://ev.example:8730"
    for bad in ("https://ev.example:99999", "ev.example", "file:///x", None):
        with pytest.raises(e.ConfigError):
            check_url(bad)
