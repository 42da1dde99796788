"""The transactional outbox: events and their outgoing messages commit together; the relay
publishes them in order, at least once; the naive dual write loses one or the other."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lesson import EventBus
from eda_lesson.patterns.outbox import (
    BusPublisher,
    DualWriteUnitOfWork,
    Outbox,
    OutboxMessage,
    OutboxUnitOfWork,
    Relay,
    SimulatedCrash,
    simulate_crash,
)
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import ConcurrencyError, InMemoryEventStore, SQLiteEventStore
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.services import Shop


class ListPublisher:
    """A broker that is a list: what was published, in order, re-sends included."""

    def __init__(self, fail_times: int = 0) -> None:
        self.published: list[OutboxMessage] = []
        self.fail_times = fail_times

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("the broker is down")
        self.published.extend(messages)

    @property
    def ids(self) -> list[str]:
        return [message.event_id for message in self.published]


def _created(number: int) -> OrderCreated:
    return OrderCreated(f"o-{number}", "c-7", float(number))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteEventStore:
    return SQLiteEventStore(tmp_path / "shop.db", order_registry())


@pytest.fixture
def outbox(store: SQLiteEventStore) -> Outbox:
    return Outbox(store, id_prefix="evt-")


# ---------------------------------------------------------------------- one transaction


def test_every_appended_event_gets_its_outbox_row_with_the_stored_payload(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    store.append("order-o-1", [_created(1), OrderPaid("o-1", 1.0)], expected_version=0)
    store.append("order-o-2", [_created(2)], expected_version=0)
    waiting = outbox.waiting()
    rows = store.rows()
    assert [m.event_id for m in waiting] == ["evt-1", "evt-2", "evt-3"]
    assert [(m.stream_id, m.event_type, m.schema_version, m.payload) for m in waiting] == [
        (row.stream_id, row.event_type, row.schema_version, row.payload) for row in rows
    ]
    assert outbox.counts() == (0, 3)
    assert repr(outbox) == "Outbox('shop.db', 3 messages, 3 waiting)"


def test_an_append_that_fails_writes_no_outbox_row(store: SQLiteEventStore, outbox: Outbox) -> None:
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(ConcurrencyError):
        store.append("order-o-1", [OrderPaid("o-1", 1.0)], expected_version=0)
    assert [m.event_type for m in outbox.messages()] == ["OrderCreated"]


def test_events_appended_before_the_outbox_was_attached_get_no_row(
    store: SQLiteEventStore,
) -> None:
    store.append("order-o-1", [_created(1)], expected_version=0)
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-2", [_created(2)], expected_version=0)
    assert [m.event_id for m in outbox.messages()] == ["evt-2"]  # named by store position


_APPEND_FOREVER = """
import os, sys
from eda_lesson.shop.order import order_registry
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.patterns.store import SQLiteEventStore
store = SQLiteEventStore(sys.argv[1], order_registry())
number = 0
while True:
    number += 1
    store.append(f"order-{os.getpid()}-{number}", [OrderCreated(str(number), "c", 1.0),
                                     OrderPaid(str(number), 1.0)], expected_version=0)
"""


def test_a_writer_killed_at_any_moment_leaves_events_and_outbox_rows_in_step(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    for round_number in range(3):
        writer = subprocess.Popen([sys.executable, "-c", _APPEND_FOREVER, store.path])
        try:
            deadline = time.monotonic() + 20
            while store.last_position() < 40 * (round_number + 1) and time.monotonic() < deadline:
                assert writer.poll() is None, "the writer stopped by itself"
                time.sleep(0.01)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
        positions = [row.position for row in store.rows()]
        assert positions, "the writer never appended"
        assert [m.event_id for m in outbox.messages()] == [f"evt-{p}" for p in positions]
        assert len(positions) % 2 == 0, "an append was cut in half"


# ---------------------------------------------------------------------- event ids


@dataclass(frozen=True)
class Noted:
    """An event carrying its own id, as eda_lesson.core.messages.Message events do."""

    note: str
    event_id: str = ""


def test_an_event_with_an_event_id_field_keeps_its_id(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "notes.db", EventRegistry.of(Noted))
    outbox = Outbox(store, id_prefix="evt-")
    store.append("notes", [Noted("a", event_id="n-42"), Noted("b")], expected_version=0)
    assert [m.event_id for m in outbox.messages()] == ["n-42", "evt-2"]


def test_the_default_prefix_is_random_chosen_once_and_kept_in_the_file(tmp_path: Path) -> None:
    first = SQLiteEventStore(tmp_path / "a.db", order_registry())
    second = SQLiteEventStore(tmp_path / "b.db", order_registry())
    prefix = Outbox(first).id_prefix
    assert Outbox(first).id_prefix == prefix
    assert Outbox(second).id_prefix != prefix
    first.append("order-o-1", [_created(1)], expected_version=0)
    assert Outbox(first).waiting()[0].event_id == f"{prefix}1"


def test_changing_the_prefix_of_an_existing_outbox_is_refused(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    with pytest.raises(ValueError, match="re-sent message a new id"):
        Outbox(store, id_prefix="other-")
    assert Outbox(store, id_prefix="evt-").id_prefix == "evt-"


def test_an_outbox_needs_a_store_file_it_can_share(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in-memory database cannot be shared"):
        Outbox(SQLiteEventStore(":memory:", order_registry()))
    with pytest.raises(TypeError, match="attaches to a SQLiteEventStore"):
        Outbox(InMemoryEventStore())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the relay


def test_the_relay_publishes_waiting_messages_in_order_in_batches_and_marks_them_sent(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    for number in range(1, 6):
        store.append(f"order-o-{number}", [_created(number)], expected_version=0)
    publisher = ListPublisher()
    relay = Relay(outbox, publisher, batch_size=2)
    assert relay.publish_pending() == 5
    assert publisher.ids == [f"evt-{n}" for n in range(1, 6)]
    assert outbox.counts() == (5, 0)
    assert all(message.sent for message in outbox.messages())
    assert repr(relay) == "Relay(5 messages published in 3 batches)"
    assert relay.publish_pending() == 0


def test_a_relay_crashing_between_publish_and_mark_makes_the_next_one_resend_the_same_ids(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    store.append("order-o-1", [_created(1), OrderPaid("o-1", 1.0)], expected_version=0)
    publisher = ListPublisher()
    with pytest.raises(SimulatedCrash):
        Relay(outbox, publisher, before_mark=simulate_crash).publish_pending()
    assert publisher.ids == ["evt-1", "evt-2"]
    assert outbox.counts() == (0, 2), "published, but never marked sent"
    Relay(outbox, publisher).publish_pending()
    assert publisher.ids == ["evt-1", "evt-2", "evt-1", "evt-2"]
    assert outbox.counts() == (2, 0)


def test_a_publisher_that_fails_leaves_everything_waiting(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(ConnectionError):
        Relay(outbox, ListPublisher(fail_times=1)).publish_pending()
    assert outbox.counts() == (0, 1)


def test_a_following_relay_retries_while_the_broker_is_down_then_catches_up(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    publisher = ListPublisher(fail_times=3)
    relay, stop = Relay(outbox, publisher), threading.Event()
    follower = threading.Thread(target=relay.run, args=(stop,), kwargs={"poll_seconds": 0.01})
    follower.start()
    try:
        for number in range(1, 4):
            store.append(f"order-o-{number}", [_created(number)], expected_version=0)
        deadline = time.monotonic() + 10
        while outbox.counts() != (3, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        follower.join(timeout=10)
    assert publisher.ids[-3:] == ["evt-1", "evt-2", "evt-3"]
    assert outbox.counts() == (3, 0)
    assert not follower.is_alive()


def test_a_following_relay_gives_up_after_retry_for_seconds(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(ConnectionError, match="broker is down"):
        Relay(outbox, ListPublisher(fail_times=10**6)).run(threading.Event(), retry_for=0.2)
    assert outbox.counts() == (0, 1)


def test_the_relay_refuses_what_cannot_work(outbox: Outbox) -> None:
    with pytest.raises(TypeError, match="publish\\(messages\\)"):
        Relay(outbox, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        Relay(outbox, ListPublisher(), batch_size=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 3)),
            st.tuples(st.just("relay"), st.booleans()),  # True: crash before marking
        ),
        max_size=12,
    ),
    st.integers(1, 3),
)
def test_whatever_crashes_happen_every_event_is_published_at_least_once_and_in_order(
    steps: list[tuple[str, object]], batch_size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteEventStore(Path(folder) / "shop.db", order_registry())
        outbox, publisher, number = Outbox(store, id_prefix="e"), ListPublisher(), 0
        for action, argument in steps:
            if action == "append":
                assert isinstance(argument, int)
                events = [_created(number + i) for i in range(argument)]
                store.append(f"order-{number}", events, expected_version=0)
                number += argument
            else:
                hook = simulate_crash if argument else None
                with contextlib.suppress(SimulatedCrash):
                    Relay(
                        outbox, publisher, batch_size=batch_size, before_mark=hook
                    ).publish_pending()
        Relay(outbox, publisher, batch_size=batch_size).publish_pending()
        every_id = [f"e{position}" for position in range(1, number + 1)]
        assert list(dict.fromkeys(publisher.ids)) == every_id  # first copies, in order
        assert outbox.counts() == (number, 0)
        store.close()
        outbox.close()


# ---------------------------------------------------------------------- in-process publishing


def test_the_bus_publisher_dispatches_each_message_and_can_drop_duplicates(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    bus, shop = EventBus(), Shop()
    shop.register(bus)
    publisher = BusPublisher(bus, order_registry(), deduplicate=True)
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(SimulatedCrash):
        Relay(outbox, publisher, before_mark=simulate_crash).publish_pending()
    Relay(outbox, publisher).publish_pending()
    assert publisher.deliveries == [("evt-1", "dispatched"), ("evt-1", "duplicate")]
    assert [mail.subject for mail in shop.mailer.sent] == ["Order o-1 confirmed"]
    assert repr(publisher) == "BusPublisher(1 dispatched, 1 duplicate dropped)"


def test_without_deduplication_a_resent_message_runs_the_handlers_twice(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    bus, shop = EventBus(), Shop()
    shop.register(bus)
    publisher = BusPublisher(bus, order_registry())
    store.append("order-o-1", [_created(1)], expected_version=0)
    with pytest.raises(SimulatedCrash):
        Relay(outbox, publisher, before_mark=simulate_crash).publish_pending()
    Relay(outbox, publisher).publish_pending()
    assert [mail.subject for mail in shop.mailer.sent] == ["Order o-1 confirmed"] * 2
    assert repr(publisher) == "BusPublisher(2 dispatched)"


# ---------------------------------------------------------------------- units of work


def _shop_bus() -> tuple[EventBus, Shop]:
    bus, shop = EventBus(), Shop()
    shop.register(bus)
    return bus, shop


def test_dual_write_saving_then_crashing_loses_the_event(store: SQLiteEventStore) -> None:
    bus, shop = _shop_bus()
    with DualWriteUnitOfWork(store, bus, between=simulate_crash) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        with pytest.raises(SimulatedCrash):
            uow.commit()
    assert store.version("order-o-1") == 1, "the state was saved"
    assert shop.mailer.sent == [], "the event never reached the handlers"
    assert [str(step) for step in uow.steps][-1] == "crash: after the save, before the publish"
    assert uow.status == "crashed"


def test_dual_write_publishing_then_crashing_announces_what_was_never_saved(
    store: SQLiteEventStore,
) -> None:
    bus, shop = _shop_bus()
    with DualWriteUnitOfWork(store, bus, publish_first=True, between=simulate_crash) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        with pytest.raises(SimulatedCrash):
            uow.commit()
    assert [mail.subject for mail in shop.mailer.sent] == ["Order o-1 confirmed"]
    assert store.version("order-o-1") == 0, "the order the customer was told of does not exist"


def test_dual_write_without_a_crash_saves_and_publishes(store: SQLiteEventStore) -> None:
    bus, shop = _shop_bus()
    with DualWriteUnitOfWork(store, bus) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        uow.commit()
    assert store.version("order-o-1") == 1
    assert len(shop.mailer.sent) == 1


def test_the_outbox_unit_of_work_loses_nothing_when_the_process_dies_after_the_save(
    store: SQLiteEventStore, outbox: Outbox
) -> None:
    with OutboxUnitOfWork(store, outbox, after_save=simulate_crash) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        with pytest.raises(SimulatedCrash):
            uow.commit()
    assert [str(step) for step in uow.steps] == [
        "add: new order-o-1",
        "save: OrderCreated to order-o-1, version 0 -> 1",
        "outbox: 1 message waiting for the relay",
        "crash: after the save",
    ]
    bus, shop = _shop_bus()
    Relay(outbox, BusPublisher(bus, order_registry())).publish_pending()
    assert [mail.subject for mail in shop.mailer.sent] == ["Order o-1 confirmed"]


def test_the_outbox_unit_of_work_needs_the_outbox_of_its_own_store(
    tmp_path: Path, outbox: Outbox
) -> None:
    other = SQLiteEventStore(tmp_path / "other.db", order_registry())
    with pytest.raises(ValueError, match="the outbox of this very store"):
        OutboxUnitOfWork(other, outbox)


def test_outbox_reprs_and_descriptions_are_stable(store: SQLiteEventStore, outbox: Outbox) -> None:
    store.append("order-o-1", [_created(1)], expected_version=0)
    Relay(outbox, ListPublisher()).publish_pending()
    store.append("order-o-2", [_created(2)], expected_version=0)
    assert outbox.describe() == (
        "Outbox('shop.db', 2 messages, 1 waiting)\n"
        "     1  evt-1  order-o-1  OrderCreated v1  sent\n"
        "     2  evt-2  order-o-2  OrderCreated v1  waiting"
    )
    assert repr(outbox.waiting()[0]) == "OutboxMessage(evt-2 OrderCreated from order-o-2, waiting)"
    outbox.close()
    assert repr(outbox) == "Outbox('shop.db', closed)"
