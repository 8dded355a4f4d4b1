"""CloudEvents 1.0 over HTTP <-> eventvault events (structured, batch and binary modes).

=====================  =========================================================
CloudEvents            eventvault
=====================  =========================================================
``id``                 ``id`` when it is a UUID; otherwise a UUIDv5 of (source, id)
                       — CloudEvents identity is source + id, so a retry maps to
                       the same event — and the original kept in
                       ``metadata.cloudevents.id``
``source``             ``source``
``type``               ``type``
``subject``            ``stream`` (absent: ``default``)
``time``               ``occurred_at`` (absent: now)
``correlationid``      ``correlation_id`` (extension attribute)
``causationid``        ``causation_id`` (extension attribute)
``actor``              ``actor`` (extension attribute)
``data``               ``data`` (a JSON object; ``datacontenttype`` JSON or absent)
``datacontenttype``,   ``metadata.cloudevents`` (with every other extension
``dataschema``, …      attribute), so nothing is lost and the way back is exact
=====================  =========================================================

On the way out, ``specversion`` is ``1.0``, ``time`` is ``occurred_at``, and the
extensions ``recordedat``, ``position``, ``streamrevision`` and ``hash`` say where and
when the store recorded it. Those four are the store's alone: a CloudEvent that
carries one is refused, and nothing stored in ``metadata.cloudevents`` overrides
them (or any attribute derived from the event's own fields). eventvault's own
``metadata`` (other than what came from a CloudEvent) has no CloudEvents attribute
and is left out of that form.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from ..errors import ValidationError
from ..integrity.canonical import encodes_as_utf8, format_time
from ..model import NewEvent, RecordedEvent

__all__ = [
    "BATCH_TYPE",
    "STRUCTURED_TYPE",
    "from_batch",
    "from_binary",
    "from_structured",
    "to_cloudevent",
]

STRUCTURED_TYPE = "application/cloudevents+json"
BATCH_TYPE = "application/cloudevents-batch+json"

#: A fixed namespace: UUIDv5(namespace, source + "\n" + id) for non-UUID ids.
_NAMESPACE = uuid.UUID("4f0c3a5e-8a2e-4f43-9a4c-3d7f6f1c2b10")
_CORE = {"specversion", "id", "source", "type", "subject", "time", "data", "data_base64"}
_MAPPED = {"correlationid", "causationid", "actor"}
#: Attributes only the store may set (where and when it recorded the event): refused
#: on the way in, and on the way out nothing stored can override them.
RESERVED = frozenset({"recordedat", "position", "streamrevision", "hash"})
#: What a stored ``metadata.cloudevents`` may still say on the way out: the original
#: id and content type, and the producer's other extensions — never an attribute the
#: store derives from the event itself.
_DERIVED = _CORE | _MAPPED | RESERVED | {"datacontenttype"}
_JSON_TYPES = ("application/json", "text/json")


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    return base in _JSON_TYPES or base.endswith("+json")


def _text(attrs: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = attrs.get(name)
    if value is None:
        if required:
            raise ValidationError(f"CloudEvent attribute {name!r} is required")
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"CloudEvent attribute {name!r} must be a non-empty string")
    return value


def _event_id(ce_id: str, source: str) -> tuple[uuid.UUID, bool]:
    try:
        return uuid.UUID(ce_id), True
    except ValueError:
        return uuid.uuid5(_NAMESPACE, f"{source}\n{ce_id}"), False


_NAME = re.compile(r"[a-z0-9]{1,20}")
#: The spec's String type excludes controls (C0, DEL, C1); surrogates are checked apart.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _checked(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The context attributes, checked as the spec types them: names lowercase letters
    and digits (at most 20), values strings, integers or booleans; null means absent."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        if name in ("data", "data_base64") or value is None:
            continue
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError(
                f"CloudEvent attribute name {name!r}: use 1–20 lowercase letters or digits"
            )
        if name in RESERVED:
            raise ValidationError(
                f"CloudEvent attribute {name!r} is reserved: the store sets recordedat, "
                "position, streamrevision and hash itself (rename the extension)"
            )
        if not isinstance(value, str | int) or (
            isinstance(value, int) and not -(2**31) <= value < 2**31
        ):
            raise ValidationError(
                f"CloudEvent attribute {name!r} must be a string, a 32-bit integer or a boolean"
            )
        if isinstance(value, str) and (_CONTROLS.search(value) or not encodes_as_utf8(value)):
            raise ValidationError(
                f"CloudEvent attribute {name!r} holds control characters or unpaired surrogates"
            )
        out[name] = value
    return out


def _new_event(attrs: Mapping[str, Any], data: Any) -> NewEvent:
    attrs = _checked(attrs)
    spec = attrs.get("specversion")
    if spec != "1.0":
        raise ValidationError(f"CloudEvent specversion must be '1.0', got {spec!r}")
    ce_id = _text(attrs, "id", required=True)
    source = _text(attrs, "source", required=True)
    ce_type = _text(attrs, "type", required=True)
    assert ce_id is not None
    assert source is not None
    assert ce_type is not None
    event_id, is_uuid = _event_id(ce_id, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError(
            "CloudEvent data must be a JSON object (eventvault stores objects); got "
            f"{type(data).__name__}"
        )
    extra = {k: v for k, v in attrs.items() if k not in _CORE and k not in _MAPPED}
    if not is_uuid:
        extra["id"] = ce_id
    metadata = {"cloudevents": extra} if extra else {}
    occurred = attrs.get("time")
    fields: dict[str, Any] = {
        "id": event_id,
        "type": ce_type,
        "source": source,
        "stream": _text(attrs, "subject") or "default",
        "actor": _text(attrs, "actor"),
        "correlation_id": _text(attrs, "correlationid"),
        "causation_id": _text(attrs, "causationid"),
        "data": data,
        "metadata": metadata,
    }
    if occurred is not None:
        if not isinstance(occurred, str):
            raise ValidationError("CloudEvent attribute 'time' must be an RFC 3339 string")
        try:
            fields["occurred_at"] = msgspec.convert(occurred, datetime)
        except msgspec.ValidationError:
            raise ValidationError(f"CloudEvent time {occurred!r} is not RFC 3339") from None
        if fields["occurred_at"].tzinfo is None:
            raise ValidationError(f"CloudEvent time {occurred!r} has no time zone")
    return NewEvent(**fields)


def from_structured(obj: Any) -> NewEvent:
    """One event in structured mode (the decoded JSON body)."""
    if not isinstance(obj, dict):
        raise ValidationError("a structured CloudEvent must be a JSON object")
    if "data_base64" in obj:
        raise ValidationError("binary CloudEvent data (data_base64) is not supported")
    obj = {**obj, **_checked(obj)}  # (names and types first, so the checks below hold)
    if not _is_json_type(obj.get("datacontenttype")):
        raise ValidationError(
            f"CloudEvent datacontenttype {obj.get('datacontenttype')!r}: only JSON data is "
            "supported"
        )
    return _new_event(obj, obj.get("data"))


def from_batch(obj: Any) -> list[NewEvent]:
    if not isinstance(obj, list):
        raise ValidationError("a CloudEvents batch must be a JSON array")
    events = []
    for k, item in enumerate(obj):
        try:
            events.append(from_structured(item))
        except ValidationError as exc:
            raise ValidationError(f"batch item {k}: {exc}") from None
    return events


def from_binary(headers: Mapping[str, str], content_type: str | None, body: bytes) -> NewEvent:
    """Binary mode: attributes in ``ce-*`` headers, the body is the data."""
    attrs: dict[str, Any] = {}
    for key, value in headers.items():
        low = key.lower()
        if low.startswith("ce-"):
            attrs[low[3:]] = _percent_decode(value)
    if not _is_json_type(content_type):
        raise ValidationError(f"Content-Type {content_type!r}: only JSON data is supported")
    if content_type:
        attrs["datacontenttype"] = content_type
    data: Any = None
    if body.strip():
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValidationError(f"body is not valid JSON: {exc}") from None
    return _new_event(attrs, data)


def _percent_decode(value: str) -> str:
    """Header values are percent-encoded where they are not printable ASCII (spec 3.1.3.2)."""
    if "%" not in value:
        return value
    from urllib.parse import unquote

    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise ValidationError(f"header value {value!r}: percent-encoding is not UTF-8") from None


def to_cloudevent(ev: RecordedEvent) -> dict[str, Any]:
    """The structured-mode form of a stored event."""
    ce_extra = ev.metadata.get("cloudevents")
    out: dict[str, Any] = {}
    if isinstance(ce_extra, dict):
        # First, so the store's own attributes below always win over stored ones.
        for key, value in ce_extra.items():
            if key not in _DERIVED:
                out[key] = value  # the producer's extensions
        original = ce_extra.get("id")
        if isinstance(original, str) and original:
            out["id"] = original  # the producer's own id (ours is its UUIDv5)
        content_type = ce_extra.get("datacontenttype")
        if isinstance(content_type, str) and _is_json_type(content_type):
            out["datacontenttype"] = content_type
    out.setdefault("id", str(ev.id))
    out.setdefault("datacontenttype", "application/json")
    out |= {
        "specversion": "1.0",
        "source": ev.source or "eventvault",
        "type": ev.type,
        "subject": ev.stream,
        "time": format_time(ev.occurred_at),
        "data": ev.data,
        "recordedat": format_time(ev.recorded_at),
        "position": ev.position,
        "streamrevision": ev.stream_revision,
        "hash": ev.hash,
    }
    for key, value in (
        ("correlationid", ev.correlation_id),
        ("causationid", ev.causation_id),
        ("actor", ev.actor),
    ):
        if value is not None:
            out[key] = value
    return out
