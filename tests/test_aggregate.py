"""The event-sourced Order: rules enforced, events recorded (not published), state replayed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson.patterns.aggregate import Aggregate, DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.shop.events import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
)
from eda_lesson.shop.order import Order, order_registry


def paid_order() -> Order:
    order = Order.create("o-1", "c-7", 42.0, [LineItem("book", 2)])
    order.pay()
    return order


def test_creating_an_order_records_order_created() -> None:
    order = Order.create("o-1", "c-7", 42.0, [LineItem("book", 2)])
    assert order.pending == [OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),))]
    assert (order.id, order.status, order.version, order.saved_version) == ("o-1", "created", 1, 0)
    assert order.stream_id == "order-o-1"


def test_commands_record_events_and_change_state_through_them() -> None:
    order = paid_order()
    order.ship("TRACK-1")
    assert order.pending[1:] == [OrderPaid("o-1", 42.0), OrderShipped("o-1", "TRACK-1")]
    assert (order.status, order.amount_paid, order.tracking_code, order.version) == (
        "shipped",
        42.0,
        "TRACK-1",
        3,
    )


def test_a_cancelled_order_cannot_be_paid() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    order.cancel("changed my mind")
    before = (order.state(), list(order.pending))
    with pytest.raises(DomainError, match=r"o-1 was cancelled \(changed my mind\).*cannot be paid"):
        order.pay()
    assert (order.state(), order.pending) == before


def test_an_order_cannot_be_paid_twice() -> None:
    order = paid_order()
    with pytest.raises(DomainError, match="already paid; it cannot be paid twice"):
        order.pay()
    assert order.version == len(order.pending) == 2


def test_a_shipped_order_cannot_be_cancelled() -> None:
    order = paid_order()
    order.ship()
    with pytest.raises(DomainError, match="a shipped order cannot be cancelled"):
        order.cancel()
    assert (order.status, order.version) == ("shipped", 3)


def test_an_order_is_paid_its_total_and_shipped_only_when_paid() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    with pytest.raises(DomainError, match="costs 42; a payment of 40 does not match"):
        order.pay(40.0)
    with pytest.raises(DomainError, match="o-1 is created; only a paid order can be shipped"):
        order.ship()
    assert order.version == 1


def test_an_order_never_created_refuses_every_command() -> None:
    for command in (Order().pay, Order().cancel, Order().ship):
        with pytest.raises(DomainError, match=r"never created.*Order.create"):
            command()
    with pytest.raises(DomainError, match="negative"):
        Order.create("o-1", "c-7", -1.0)


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    live = paid_order()
    replayed = Order.from_events(live.pending)
    assert replayed == live
    assert replayed.pending == []  # replay records nothing new
    assert replayed.saved_version == replayed.version == 2


def test_history_gives_the_state_after_every_event() -> None:
    order = paid_order()
    order.ship("TRACK-1")
    frames = Order.history(order.pending)
    assert [(type(event).__name__, state.status, state.version) for event, state in frames] == [
        ("OrderCreated", "created", 1),
        ("OrderPaid", "paid", 2),
        ("OrderShipped", "shipped", 3),
    ]
    assert frames[0][1].tracking_code == "" and frames[2][1].tracking_code == "TRACK-1"


def test_replay_applies_without_checking_rules() -> None:
    # History is what happened: replay must not refuse it, even if today's rules would.
    events = [OrderCreated("o-1", "c", 1.0), OrderCancelled("o-1"), OrderPaid("o-1", 1.0)]
    assert Order.from_events(events).status == "paid"


def test_an_event_without_an_applier_is_a_clear_error() -> None:
    @dataclass(frozen=True)
    class OrderRefunded(OrderEvent):
        pass

    with pytest.raises(TypeError, match=r"add a method marked @applies\(OrderRefunded\)"):
        Order.from_events([OrderCreated("o-1", "c", 1.0), OrderRefunded("o-1")])


def test_an_applier_for_a_base_class_hears_its_subclasses() -> None:
    class Counter(Aggregate):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        @applies(OrderEvent)
        def _any(self, event: OrderEvent) -> None:
            self.seen.append(type(event).__name__)

    counter = Counter.from_events([OrderPaid("o-1"), OrderCancelled("o-1")])
    assert counter.seen == ["OrderPaid", "OrderCancelled"]
    assert Counter.stream_for("x") == "counter-x"


def test_every_order_event_is_in_the_order_registry() -> None:
    registry = order_registry()
    order = paid_order()
    order.ship()
    for event in order.pending:
        assert registry.from_json(*registry.to_json(event)) == event


def test_repr_is_short_and_stable() -> None:
    assert repr(paid_order()) == "Order('o-1', status='paid', total=42.0, version=2)"


commands = st.lists(
    st.sampled_from(["pay", "pay-wrong", "cancel", "ship"]),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(commands)
def test_any_command_sequence_replays_to_the_live_state(names: list[str]) -> None:
    order = Order.create("o-1", "c-7", 10.0)
    actions = {
        "pay": lambda: order.pay(),
        "pay-wrong": lambda: order.pay(9.0),
        "cancel": lambda: order.cancel("because"),
        "ship": lambda: order.ship("T"),
    }
    for name in names:
        before = order.state()
        try:
            actions[name]()
        except DomainError:
            assert order.state() == before  # a refused command changes nothing
    assert Order.from_events(order.pending) == order
    assert order.version == len(order.pending)
