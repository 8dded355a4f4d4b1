"""A test-only stand-in for an EventStoreDB / KurrentDB server, over real gRPC.

No EventStoreDB server can be installed on the development machines, so the
``eventstoredb`` backend is tested against this: the ``Streams`` service the
official client (``kurrentdbclient``) talks to, built on the generated servicer
classes that ship inside that client, served by ``grpc.server`` on loopback.

Implemented, with the server's documented semantics:

* ``Append`` (client streaming) and ``BatchAppend`` (bidirectional; the client
  uses it for more than one event): expected revision / ``no_stream`` / ``any`` /
  ``stream_exists``; a wrong one answers ``wrong_expected_version`` with the current
  revision (or ``current_no_stream``). Re-appending the same event ids to a stream
  at the same expected revision is idempotent, as on the server.
* ``Read`` on a stream (by revision, from the start or the end) and on ``$all``
  (by position), forwards and backwards, with ``count``; ``$all`` filters on
  stream name or event type by prefix or regex; reading a missing stream answers
  ``stream_not_found``. Reads start *inclusively* at the given revision/position.
* Subscriptions (``Read`` with ``subscription``): a confirmation, the catch-up
  events, ``caught_up``, then live events as they are appended, until cancelled.
  Subscriptions start *after* the given revision/position (exclusive).
* Commit positions are byte offsets into an imaginary log: increasing, never
  contiguous (each record advances it by its size plus a header), and prepare
  position equals commit position, as on a single node.

Where it differs from the server (said plainly, so nobody mistakes it):

* no ``Delete``, ``Tombstone``, persistent subscriptions,
  projections, gossip or server-features services; no ACLs or authentication;
* no ``$``-system streams or system events except what a test appends itself, so
  the client's default filter that excludes ``$`` events never has anything to do;
* idempotency is checked only against the stream's whole history (the server
  uses a bounded cache), and a partly repeated batch is refused;
* checkpoints and ``fell_behind`` are never sent; everything is in memory.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from kurrentdbclient.protos.v1 import shared_pb2, streams_pb2, streams_pb2_grpc

__all__ = ["StandIn", "serve"]

_HEADER = 88  # bytes a record header would take in the log (makes positions sparse)


@dataclass(frozen=True)
class _Record:
    stream: str
    revision: int
    id: str
    type: str
    content_type: str
    created: int  # 100-ns ticks since the Unix epoch
    custom_metadata: bytes
    data: bytes
    position: int


@dataclass
class _Log:
    records: list[_Record] = field(default_factory=list)
    streams: dict[str, list[int]] = field(default_factory=dict)  # stream -> record indexes
    next_position: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)


def _uuid(message: shared_pb2.UUID) -> str:
    if message.WhichOneof("value") == "string":
        return str(uuid.UUID(message.string))
    s = message.structured
    raw = ((s.most_significant_bits & (2**64 - 1)) << 64) | (s.least_significant_bits & (2**64 - 1))
    return str(uuid.UUID(int=raw))


class StandIn(streams_pb2_grpc.StreamsServicer):
    """The ``Streams`` service, in memory."""

    def __init__(self) -> None:
        self.log = _Log()

    # -- Append ----------------------------------------------------------------------

    def _store(
        self, stream: str, expected: str, revision: int, proposed: list[Any]
    ) -> tuple[bool, int | None, int | None]:
        """Append atomically: ``(ok, revision, position)``; not ok: ``revision`` is the
        stream's current one (None: no stream)."""
        log = self.log
        with log.lock:
            indexes = log.streams.get(stream, [])
            current = len(indexes) - 1 if indexes else None
            ids = [_uuid(m.id) for m in proposed]
            stored = {log.records[i].id: i for i in indexes}
            if ids and all(i in stored for i in ids):  # a retry: idempotent
                last = log.records[stored[ids[-1]]]
                return True, last.revision, last.position
            wrong = (
                (expected in ("revision", "stream_position") and current != revision)
                or (expected == "no_stream" and current is not None)
                or (expected == "stream_exists" and current is None)
                or any(i in stored for i in ids)
            )
            if wrong:
                return False, current, None
            now = time.time_ns() // 100
            for message in proposed:
                meta = dict(message.metadata)
                record = _Record(
                    stream=stream,
                    revision=len(indexes),
                    id=_uuid(message.id),
                    type=meta.get("type", ""),
                    content_type=meta.get("content-type", "application/octet-stream"),
                    created=now,
                    custom_metadata=message.custom_metadata,
                    data=message.data,
                    position=log.next_position,
                )
                log.next_position += _HEADER + len(message.data) + len(message.custom_metadata)
                indexes.append(len(log.records))
                log.records.append(record)
            if indexes:
                log.streams[stream] = indexes
            log.lock.notify_all()
            if not indexes:
                return True, None, None
            last = log.records[indexes[-1]]
            return True, last.revision, last.position

    def Append(self, request_iterator: Iterator[Any], context: Any) -> Any:
        requests = iter(request_iterator)
        options = next(requests).options
        stream = options.stream_identifier.stream_name.decode()
        expected = options.WhichOneof("expected_stream_revision")
        proposed = [req.proposed_message for req in requests]
        ok, revision, position = self._store(stream, expected, options.revision, proposed)
        if ok:
            return self._success(revision, position)
        return self._wrong(revision, options, expected)

    def BatchAppend(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        pending: dict[str, tuple[Any, list[Any]]] = {}
        for req in request_iterator:
            key = _uuid(req.correlation_id)
            if req.HasField("options"):
                pending[key] = (req.options, [])
            options, proposed = pending[key]
            proposed.extend(req.proposed_messages)
            if not req.is_final:
                continue
            del pending[key]
            stream = options.stream_identifier.stream_name.decode()
            expected = options.WhichOneof("expected_stream_position")
            ok, revision, position = self._store(
                stream, expected, options.stream_position, proposed
            )
            resp = streams_pb2.BatchAppendResp(
                correlation_id=req.correlation_id,
                stream_identifier=options.stream_identifier,
            )
            if ok:
                _fill_success(resp.success, revision, position)
            else:
                wev = shared_pb2.WrongExpectedVersion()
                if revision is None:
                    wev.current_no_stream.SetInParent()
                else:
                    wev.current_stream_revision = revision
                if expected == "stream_position":
                    wev.expected_stream_position = options.stream_position
                elif expected == "no_stream":
                    wev.expected_no_stream.SetInParent()
                elif expected == "stream_exists":
                    wev.expected_stream_exists.SetInParent()
                else:
                    wev.expected_any.SetInParent()
                resp.error.code = 9  # FAILED_PRECONDITION, as the server sends
                resp.error.message = "WrongExpectedVersion"
                resp.error.details.Pack(wev)
            yield resp

    @staticmethod
    def _success(revision: int | None, position: int | None) -> Any:
        resp = streams_pb2.AppendResp()
        _fill_success(resp.success, revision, position)
        return resp

    @staticmethod
    def _wrong(current: int | None, options: Any, expected: str) -> Any:
        wev = streams_pb2.AppendResp.WrongExpectedVersion()
        if current is None:
            wev.current_no_stream.SetInParent()
        else:
            wev.current_revision = current
        if expected == "revision":
            wev.expected_revision = options.revision
        elif expected == "no_stream":
            wev.expected_no_stream.SetInParent()
        elif expected == "stream_exists":
            wev.expected_stream_exists.SetInParent()
        else:
            wev.expected_any.SetInParent()
        return streams_pb2.AppendResp(wrong_expected_version=wev)

    # -- Read --------------------------------------------------------------------------

    def Read(self, request: Any, context: Any) -> Iterator[Any]:
        options = request.options
        structured = options.uuid_option.WhichOneof("content") == "structured"
        backwards = options.read_direction == streams_pb2.ReadReq.Options.Backwards
        subscribing = options.HasField("subscription")
        count = options.count if options.WhichOneof("count_option") == "count" else None
        log = self.log
        if subscribing:
            yield streams_pb2.ReadResp(
                confirmation=streams_pb2.ReadResp.SubscriptionConfirmation(
                    subscription_id=str(uuid.uuid4())
                )
            )
        stream_name = None
        if options.WhichOneof("stream_option") == "stream":
            so = options.stream
            stream_name = so.stream_identifier.stream_name.decode()
            with log.lock:
                exists = stream_name in log.streams
            if not exists and not subscribing:
                yield streams_pb2.ReadResp(
                    stream_not_found=streams_pb2.ReadResp.StreamNotFound(
                        stream_identifier=so.stream_identifier
                    )
                )
                return
            which = so.WhichOneof("revision_option")
            start = so.revision if which == "revision" else None
            from_end = which == "end"
            key = "revision"
        else:
            ao = options.all
            which = ao.WhichOneof("all_option")
            start = ao.position.commit_position if which == "position" else None
            from_end = which == "end"
            key = "position"
        matches = self._filter(options)
        sent = 0
        last: int | None = None

        def candidates() -> list[_Record]:
            with log.lock:
                if stream_name is not None:
                    return [log.records[i] for i in log.streams.get(stream_name, [])]
                return list(log.records)

        records = candidates()
        if backwards:
            records.reverse()
        for rec in records:
            at = getattr(rec, key)
            if from_end and not backwards:
                break
            if start is not None:
                if backwards and at > start:
                    continue
                if not backwards and (at < start or (subscribing and at == start)):
                    continue
            if stream_name is None and not matches(rec):
                continue
            if count is not None and sent >= count and not subscribing:
                return
            yield self._event(rec, structured)
            sent += 1
            last = at
        if not subscribing:
            return
        if from_end:
            last = getattr(records[-1], key) if records else None
        elif last is None and start is not None:
            last = start
        yield streams_pb2.ReadResp(caught_up=streams_pb2.ReadResp.CaughtUp())
        while context.is_active():
            with log.lock:
                log.lock.wait(0.2)
            for rec in candidates():
                at = getattr(rec, key)
                if last is not None and at <= last:
                    continue
                last = at
                if stream_name is None and not matches(rec):
                    continue
                yield self._event(rec, structured)

    @staticmethod
    def _filter(options: Any) -> Any:
        if options.WhichOneof("filter_option") != "filter":
            return lambda rec: True
        f = options.filter
        which = f.WhichOneof("filter")
        expression = getattr(f, which)
        attr = "stream" if which == "stream_identifier" else "type"
        if expression.regex:
            pattern = re.compile(expression.regex)
            return lambda rec: pattern.search(getattr(rec, attr)) is not None
        prefixes = tuple(expression.prefix)
        return lambda rec: getattr(rec, attr).startswith(prefixes)

    @staticmethod
    def _event(rec: _Record, structured: bool) -> Any:
        ident = shared_pb2.UUID()
        if structured:
            raw = uuid.UUID(rec.id).int
            ident.structured.most_significant_bits = _signed(raw >> 64)
            ident.structured.least_significant_bits = _signed(raw & (2**64 - 1))
        else:
            ident.string = rec.id
        event = streams_pb2.ReadResp.ReadEvent.RecordedEvent(
            id=ident,
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=rec.stream.encode()),
            stream_revision=rec.revision,
            prepare_position=rec.position,
            commit_position=rec.position,
            metadata={
                "type": rec.type,
                "content-type": rec.content_type,
                "created": str(rec.created),
            },
            custom_metadata=rec.custom_metadata,
            data=rec.data,
        )
        return streams_pb2.ReadResp(
            event=streams_pb2.ReadResp.ReadEvent(event=event, commit_position=rec.position)
        )


def _fill_success(success: Any, revision: int | None, position: int | None) -> None:
    """Fill an ``AppendResp.Success`` or ``BatchAppendResp.Success`` (same field names)."""
    if revision is None:
        success.no_stream.SetInParent()
    else:
        success.current_revision = revision
    if position is None:
        success.no_position.SetInParent()
    else:
        success.position.commit_position = position
        success.position.prepare_position = position


def _signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


def serve(port: int = 0) -> tuple[grpc.Server, StandIn, int]:
    """Start a stand-in on loopback; returns the server, the servicer and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    standin = StandIn()
    streams_pb2_grpc.add_StreamsServicer_to_server(standin, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, standin, bound
