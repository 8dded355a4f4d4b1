"""What ``NewEvent`` validated is what every backend stores (issue 15, item 6):
the payload is copied when the event is built, so a caller who changes their dict
afterwards cannot reach the store, and stored records do not alias the caller's
objects either."""

from __future__ import annotations

import copy
import math

from ..model import NewEvent, Query
from ..store import EventStore
from ._base import ContractBase

__all__ = ["FrozenPayloadContract"]


class FrozenPayloadContract(ContractBase):
    def test_changing_the_callers_dict_after_validation_does_not_reach_the_store(
        self,
        store: EventStore,
    ) -> None:
        data = {"v": "aaaa", "n": 1.5, "items": [1, {"k": "x"}]}
        meta = {"m": "ok"}
        event = NewEvent(type="t", data=data, metadata=meta)
        # After validation: values no backend may store, and plain changes.
        data["v"] = math.nan
        data["nul"] = "a\x00b"
        data["items"][1]["k"] = math.inf  # type: ignore[index]
        data["items"].append("later")  # type: ignore[attr-defined]
        meta["m"] = "changed"
        rec = store.append(event).events[0]
        expected = {"v": "aaaa", "n": 1.5, "items": [1, {"k": "x"}]}
        assert rec.data == expected
        assert rec.metadata == {"m": "ok"}
        (got,) = store.read().events
        assert got.data == expected
        assert got.metadata == {"m": "ok"}
        assert store.verify().ok
        # A retry of the same event is still idempotent (same content as validated).
        assert store.append(event).events[0].position == rec.position
        assert store.append(NewEvent(type="t")).events[0].position > rec.position
        assert store.verify().ok

    def test_a_tuple_in_data_behaves_as_a_list_everywhere(self, store: EventStore) -> None:
        event = NewEvent(type="t", data={"pair": (1, "a"), "nested": {"t": ((2,), 3)}})
        rec = store.append(event).events[0]
        assert rec.data == {"pair": [1, "a"], "nested": {"t": [[2], 3]}}
        again = store.append(event).events[0]  # a retry: idempotent, not a conflict
        assert again.position == rec.position
        assert store.get(event.id).data == rec.data  # type: ignore[union-attr]
        assert store.verify().ok

    def test_copies_of_a_new_event_can_be_appended(self, store: EventStore) -> None:
        event = NewEvent(type="t", data={"a": [1, 2]})
        shallow = copy.copy(event)
        deep = copy.deepcopy(event)
        assert shallow == event
        assert deep == event
        first = store.append(shallow).events[0]
        assert store.append(deep).events[0].position == first.position  # the same event
        assert store.append(event).events[0].position == first.position
        other = copy.deepcopy(NewEvent(type="t", data={"b": 2}))
        assert store.append(other).events[0].data == {"b": 2}
        assert store.verify().ok

    def test_records_do_not_alias_what_the_store_holds(self, store: EventStore) -> None:
        event = NewEvent(type="t", data={"list": [1], "obj": {"k": "v"}})
        rec = store.append(event).events[0]
        rec.data["list"].append(2)
        rec.data["obj"]["k"] = "changed"
        rec.metadata["new"] = 1
        event.data["list"].append(3)
        (got,) = store.read().events
        assert got.data == {"list": [1], "obj": {"k": "v"}}
        assert got.metadata == {}
        got.data["list"].append(4)
        fetched = store.get(event.id)
        assert fetched is not None
        assert fetched.data == {"list": [1], "obj": {"k": "v"}}
        assert [e.data for e in store.iter(Query())] == [{"list": [1], "obj": {"k": "v"}}]
        assert store.verify().ok
