"""The outbox and its relay under bad input: nothing is dropped silently, nothing stops the flow.

An outbox row is the promise that an event will be published. Two faults used to break that
promise: an event id taken twice (a consumer then drops the second event as a duplicate) and
one row the publisher can never publish (the relay then stopped on it at every restart, and
every row after it waited for ever).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from eda_lesson import EventBus
from eda_lesson.core.messages import Message, SequentialIds, use_ids
from eda_lesson.patterns.outbox import (
    BusPublisher,
    Outbox,
    OutboxMessage,
    Relay,
    UndeliverableError,
)
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.order import order_registry


@dataclass(frozen=True)
class Noted(Message):
    """An event that carries ids of its own (``event_id``), as every Message does."""

    note: str


class ListPublisher:
    """Keeps what it is given; refuses the messages whose event id is in ``refuse``."""

    def __init__(self, refuse: Sequence[str] = ()) -> None:
        self.refuse = set(refuse)
        self.sent: list[str] = []

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            if message.event_id in self.refuse:
                raise UndeliverableError(f"the broker refuses {message.event_id}")
        self.sent += [message.event_id for message in messages]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteEventStore:
    registry = order_registry()
    registry.register(Noted)
    return SQLiteEventStore(tmp_path / "shop.db", registry)


def _created(number: int) -> OrderCreated:
    return OrderCreated(f"o-{number}", "c-7", float(number))


# ---------------------------------------------------------------------- ids taken twice


def test_an_events_own_id_that_collides_with_a_generated_one_is_refused_before_anything_is_written(
    store: SQLiteEventStore,
) -> None:
    """``SequentialIds("evt")`` names events evt-1, evt-2...; an outbox with the prefix
    "evt-" names plain events evt-<position>. The second to claim an id is refused."""
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [_created(1)], expected_version=0)  # gets evt-1
    with use_ids(SequentialIds("evt")):
        clash = Noted("hello")  # evt-1 as well
    with pytest.raises(sqlite3.IntegrityError, match=r"already in the outbox.*id_prefix"):
        store.append("notes-n-1", [Noted("first"), clash], expected_version=0)
    assert [stored.type_name for stored in store.read_all()] == ["OrderCreated"]
    assert [message.event_id for message in outbox.messages()] == ["evt-1"]


def test_the_same_event_appended_twice_is_refused_rather_than_delivered_once(
    store: SQLiteEventStore,
) -> None:
    outbox = Outbox(store, id_prefix="row-")
    with use_ids(SequentialIds("evt")):
        event = Noted("once")
    store.append("notes-n-1", [event], expected_version=0)
    with pytest.raises(sqlite3.IntegrityError, match="the same event was appended twice"):
        store.append("notes-n-2", [event], expected_version=0)
    assert len(outbox) == 1 and len(list(store.read_all())) == 1


def test_prefixes_that_do_not_collide_keep_every_event(store: SQLiteEventStore) -> None:
    outbox = Outbox(store, id_prefix="row-")
    with use_ids(SequentialIds("evt")):
        store.append("notes-n-1", [Noted("a"), Noted("b")], expected_version=0)
    store.append("order-o-1", [_created(1)], expected_version=0)
    assert [m.event_id for m in outbox.messages()] == ["evt-1", "evt-2", "row-3"]


# ---------------------------------------------------------------------- rows that cannot go out


def test_a_row_the_publisher_refuses_is_parked_and_the_rows_after_it_are_sent(
    store: SQLiteEventStore,
) -> None:
    outbox = Outbox(store, id_prefix="evt-")
    for number in range(1, 6):
        store.append(f"order-o-{number}", [_created(number)], expected_version=0)
    publisher = ListPublisher(refuse=["evt-3"])
    relay = Relay(outbox, publisher, batch_size=10)
    assert relay.publish_pending() == 5
    assert publisher.sent == ["evt-1", "evt-2", "evt-4", "evt-5"]
    (parked,) = outbox.parked()
    assert parked.message.event_id == "evt-3" and parked.message.state == "parked"
    assert parked.reason == "UndeliverableError: the broker refuses evt-3"
    assert outbox.counts() == (4, 0) and len(outbox) == 5
    assert "1 parked" in repr(outbox) and "1 parked" in repr(relay)


def test_a_relay_restarted_after_a_refusal_does_not_stop_on_it_again(
    store: SQLiteEventStore,
) -> None:
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [_created(1)], expected_version=0)
    Relay(outbox, ListPublisher(refuse=["evt-1"])).publish_pending()
    store.append("order-o-2", [_created(2)], expected_version=0)
    publisher = ListPublisher(refuse=["evt-1"])
    stop = threading.Event()
    relay = Relay(outbox, publisher)
    relay.before_mark = lambda batch: stop.set()  # run one round, then stop
    relay.run(stop, poll_seconds=0.01)
    assert publisher.sent == ["evt-2"] and outbox.counts() == (1, 0)


def test_an_unreadable_payload_is_parked_by_a_bus_publisher_and_no_event_of_its_batch_is_lost(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    """The bus publisher decodes the whole batch before dispatching any of it, so the
    one-by-one retry dispatches each good event exactly once."""
    outbox = Outbox(store, id_prefix="evt-")
    for number in range(1, 4):
        store.append(f"order-o-{number}", [_created(number)], expected_version=0)
    with sqlite3.connect(store.path) as db:  # a row damaged behind the library's back
        db.execute("UPDATE outbox SET payload = '{not json' WHERE event_id = 'evt-2'")
    bus, heard = EventBus(), []
    bus.register(OrderCreated, lambda event: heard.append(event.order_id))
    publisher = BusPublisher(bus, store.registry)
    Relay(outbox, publisher).publish_pending()
    assert heard == ["o-1", "o-3"]
    (parked,) = outbox.parked()
    assert parked.message.event_id == "evt-2" and parked.reason.startswith("MalformedEventError")


def test_a_parked_message_goes_out_once_it_is_requeued(store: SQLiteEventStore) -> None:
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [_created(1), OrderPaid("o-1", 1.0)], expected_version=0)
    publisher = ListPublisher(refuse=["evt-1"])
    Relay(outbox, publisher).publish_pending()
    assert publisher.sent == ["evt-2"]
    publisher.refuse.clear()  # the broker was fixed
    assert outbox.requeue() == 1 and outbox.parked() == []
    Relay(outbox, publisher).publish_pending()
    assert publisher.sent == ["evt-2", "evt-1"] and outbox.counts() == (2, 0)
    assert outbox.requeue() == 0


def test_a_passing_fault_still_stops_the_relay_with_nothing_parked_or_marked(
    store: SQLiteEventStore,
) -> None:
    class Down:
        def publish(self, messages: Sequence[OutboxMessage]) -> None:
            raise ConnectionError("broker down")

    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(ConnectionError):
        Relay(outbox, Down()).publish_pending()
    assert outbox.parked() == [] and outbox.counts() == (0, 1)


def test_an_outbox_file_from_before_parking_gains_the_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = SQLiteEventStore(path, EventRegistry.of(OrderCreated))
    Outbox(store, id_prefix="evt-").close()
    store.append("order-o-1", [_created(1)], expected_version=0)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE outbox DROP COLUMN failure")
    outbox = Outbox(store)
    assert [m.event_id for m in outbox.waiting()] == ["evt-1"]
    outbox.park(outbox.waiting()[0], "testing")
    assert outbox.parked()[0].reason == "testing"
