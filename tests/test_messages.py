"""Messages and correlation, specified by example: every event of one business transaction
carries its correlation id and names the event that caused it."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson import EventBus
from eda_lesson.core.asyncbus import AsyncEventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import (
    Message,
    SequentialIds,
    caused_by,
    current_cause,
    new_id,
    random_id,
    set_ids,
    use_ids,
)
from eda_lesson.core.middleware import correlate


@dataclass(frozen=True)
class OrderPaid(Message):
    order_id: str
    amount: float = 0.0


@dataclass(frozen=True)
class ShipmentRequested(Message):
    order_id: str


@dataclass(frozen=True)
class OrderShipped(Message):
    order_id: str


@dataclass(frozen=True)
class PlainEvent:
    order_id: str


AnyBus = TypeVar("AnyBus", bound=EventBus)


@pytest.fixture
def ids() -> Iterator[SequentialIds]:
    factory = SequentialIds("evt")
    with use_ids(factory):
        yield factory


# ---------------------------------------------------------------------- the base class


def test_a_message_gets_its_event_id_from_the_factory_in_force(ids: SequentialIds) -> None:
    assert [OrderPaid("o-1").event_id, OrderPaid("o-2").event_id] == ["evt-1", "evt-2"]


def test_a_message_created_outside_a_handler_starts_its_own_transaction(
    ids: SequentialIds,
) -> None:
    paid = OrderPaid("o-1", 42.0)
    assert (paid.event_id, paid.correlation_id, paid.causation_id) == ("evt-1", "evt-1", None)


def test_inside_caused_by_a_message_joins_the_transaction_and_names_its_cause(
    ids: SequentialIds,
) -> None:
    paid = OrderPaid("o-1")
    with caused_by(paid):
        ship = ShipmentRequested("o-1")
        assert current_cause() is paid
        with caused_by(ship):
            shipped = OrderShipped("o-1")
    assert current_cause() is None
    assert (ship.correlation_id, ship.causation_id) == ("evt-1", "evt-1")
    assert (shipped.event_id, shipped.correlation_id, shipped.causation_id) == (
        "evt-3",
        "evt-1",
        "evt-2",
    )


def test_ids_given_explicitly_are_kept(ids: SequentialIds) -> None:
    paid = OrderPaid("o-1")
    with caused_by(paid):
        ship = ShipmentRequested("o-1", event_id="mine", correlation_id="tx-9", causation_id="x")
    assert (ship.event_id, ship.correlation_id, ship.causation_id) == ("mine", "tx-9", "x")


def test_subclasses_declare_positional_fields_and_stay_frozen(ids: SequentialIds) -> None:
    paid = OrderPaid("o-1", 42.0)
    assert (paid.order_id, paid.amount) == ("o-1", 42.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        paid.order_id = "o-2"  # type: ignore[misc]


def test_ids_stay_out_of_the_repr_but_tell_two_occurrences_apart(ids: SequentialIds) -> None:
    first, second = OrderPaid("o-1", 42.0), OrderPaid("o-1", 42.0)
    assert repr(first) == repr(second) == "OrderPaid(order_id='o-1', amount=42.0)"
    assert first != second
    assert first == dataclasses.replace(first)  # the same message, ids and all


def test_ids_tells_all_three_in_one_line(ids: SequentialIds) -> None:
    paid = OrderPaid("o-1")
    with caused_by(paid):
        ship = ShipmentRequested("o-1")
    assert paid.ids() == "evt-1 (correlation evt-1)"
    assert ship.ids() == "evt-2 (correlation evt-1, caused by evt-1)"


# ---------------------------------------------------------------------- id factories


def test_default_ids_are_random_and_unique() -> None:
    made = {random_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)


def test_sequential_ids_count_from_start_with_their_prefix() -> None:
    ids = SequentialIds("cmd", start=7)
    assert [ids(), ids()] == ["cmd-7", "cmd-8"]
    assert repr(ids) == "SequentialIds('cmd')"


def test_sequential_ids_stay_unique_across_threads() -> None:
    ids, made, lock = SequentialIds(), [], threading.Lock()

    def take() -> None:
        mine = [ids() for _ in range(2000)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8000


def test_use_ids_lasts_for_the_with_block_only() -> None:
    with use_ids(SequentialIds("a")):
        assert new_id() == "a-1"
        with use_ids(SequentialIds("b")):
            assert new_id() == "b-1"
        assert new_id() == "a-2"
    assert len(new_id()) == 32  # back to random ids


def test_set_ids_changes_the_default_from_now_on() -> None:
    try:
        set_ids(SequentialIds("nb"))
        assert [new_id(), OrderPaid("o-1").event_id] == ["nb-1", "nb-2"]
        with use_ids(SequentialIds("t")):
            assert new_id() == "t-1"  # a with block still wins
    finally:
        set_ids(random_id)
    assert len(new_id()) == 32


def test_bad_arguments_say_what_to_pass() -> None:
    with pytest.raises(TypeError, match="SequentialIds"):
        set_ids("evt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="derive the event class from"):
        caused_by(PlainEvent("o-1"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- correlate on a bus


def shipping_bus(bus: AnyBus, shipped: list[OrderShipped]) -> AnyBus:
    """OrderPaid -> ShipmentRequested (returned) -> OrderShipped (dispatched)."""
    bus.use(correlate)

    def request_shipment(event: OrderPaid) -> ShipmentRequested:
        return ShipmentRequested(event.order_id)

    def ship_order(event: ShipmentRequested) -> None:
        bus.dispatch(OrderShipped(event.order_id))

    bus.register(OrderPaid, request_shipment)
    bus.register(ShipmentRequested, ship_order)
    bus.register(OrderShipped, shipped.append)
    return bus


def test_events_returned_or_dispatched_by_handlers_carry_the_transaction(
    ids: SequentialIds,
) -> None:
    shipped: list[OrderShipped] = []
    bus = shipping_bus(EventBus(), shipped)
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    paid, ship, done = (record.event for record in result.events)
    assert isinstance(paid, OrderPaid) and isinstance(ship, ShipmentRequested)
    assert isinstance(done, OrderShipped) and shipped == [done]
    assert {paid.correlation_id, ship.correlation_id, done.correlation_id} == {"evt-1"}
    assert (ship.causation_id, done.causation_id) == (paid.event_id, ship.event_id)


def test_each_dispatch_from_outside_is_a_transaction_of_its_own(ids: SequentialIds) -> None:
    shipped: list[OrderShipped] = []
    bus = shipping_bus(EventBus(), shipped)
    bus.dispatch(OrderPaid("o-1"))
    bus.dispatch(OrderPaid("o-2"))
    assert [event.correlation_id for event in shipped] == ["evt-1", "evt-4"]


def test_a_generator_handlers_events_are_correlated_too(ids: SequentialIds) -> None:
    bus = EventBus(middleware=[correlate])

    def split(event: OrderPaid) -> Iterator[ShipmentRequested]:
        yield ShipmentRequested(event.order_id + "-a")
        yield ShipmentRequested(event.order_id + "-b")

    bus.register(OrderPaid, split)
    result = bus.dispatch(OrderPaid("o-1"))
    produced = [record.event for record in result.events[1:]]
    assert [event.causation_id for event in produced] == ["evt-1", "evt-1"]  # type: ignore[attr-defined]


def test_plain_events_pass_through_correlate_untouched() -> None:
    bus, seen = EventBus(middleware=[correlate]), []
    bus.register(PlainEvent, lambda event: seen.append((event, current_cause())))
    result = bus.dispatch(PlainEvent("o-1"))
    assert result.ok and seen == [(PlainEvent("o-1"), None)]


def test_correlation_works_on_the_async_bus_with_concurrent_handlers(
    ids: SequentialIds,
) -> None:
    shipped: list[OrderShipped] = []
    bus = shipping_bus(AsyncEventBus(concurrency="concurrent"), shipped)

    async def also_ship(event: OrderPaid) -> ShipmentRequested:
        await asyncio.sleep(0.1)  # overlaps request_shipment
        return ShipmentRequested(event.order_id + "-express")

    bus.register(OrderPaid, also_ship)
    result = VirtualClock().run(bus.dispatch(OrderPaid("o-1")))
    events = [record.event for record in result.events]
    assert len(events) == 5 and len(shipped) == 2
    assert all(isinstance(event, Message) for event in events)
    assert {event.correlation_id for event in events} == {"evt-1"}  # type: ignore[attr-defined]
    for record in result.events[1:]:
        assert record.caused_by is not None
        parent = result.events[result.calls[record.caused_by - 1].event_index].event
        assert record.event.causation_id == parent.event_id  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- an invariant


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=8))
def test_every_event_of_a_cascade_names_its_real_cause(fanout: list[int]) -> None:
    """However a cascade branches, each event's causation id is the event_id of the event whose
    handler produced it, and all share the first event's correlation id."""

    @dataclass(frozen=True)
    class Step(Message):
        level: int

    bus = EventBus(middleware=[correlate])

    def branch(event: Step) -> list[Step]:
        if event.level >= len(fanout):
            return []
        return [Step(event.level + 1) for _ in range(fanout[event.level])]

    bus.register(Step, branch)
    with use_ids(SequentialIds()):
        result = bus.dispatch(Step(0))
    root = result.events[0].event
    for record in result.events:
        event = record.event
        assert isinstance(event, Step) and isinstance(root, Step)
        assert event.correlation_id == root.event_id
        if record.caused_by is None:
            assert event.causation_id is None
        else:
            parent = result.events[result.calls[record.caused_by - 1].event_index].event
            assert event.causation_id == parent.event_id  # type: ignore[attr-defined]


def test_a_delivery_id_belongs_to_the_delivered_object_only() -> None:
    """Events a handler produces while a delivered event is handled are other events: they
    must not borrow its id, or a guard keyed by it would skip them."""
    from eda_lesson.core.messages import delivered_as, delivery_id

    delivered, produced = object(), object()
    assert delivery_id(delivered) is None
    with delivered_as(delivered, "evt-7"):
        assert delivery_id(delivered) == "evt-7"
        assert delivery_id(produced) is None
    assert delivery_id(delivered) is None
