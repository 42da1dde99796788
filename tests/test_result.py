"""The dispatch result tells the whole story of a cascade, as records and as text."""

from __future__ import annotations

from eda_lesson import EventBus
from eda_lesson.shop.events import (
    LineItem,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.services import Shop


def shop_bus() -> tuple[EventBus, Shop]:
    bus, shop = EventBus(), Shop(stock={"book": 5})
    shop.register(bus)
    bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),)))
    return bus, shop


def test_a_simple_dispatch_records_every_call_in_order() -> None:
    bus, _ = shop_bus()
    result = bus.dispatch(OrderCreated("o-2", "c-8", 10.0))
    assert result.ok and result.is_complete()
    assert [call.name for call in result.calls] == [
        "Shop.record_order",
        "Shop.send_confirmation",
        "Shop.reserve_stock",
    ]
    assert [call.step for call in result.calls] == [1, 2, 3]
    (record,) = result.events
    assert (record.index, record.depth, record.caused_by, record.handled_by) == (
        0,
        0,
        None,
        (1, 2, 3),
    )
    assert result.depth == 0 and len(result) == 1


def test_a_cascade_records_who_produced_what() -> None:
    bus, _ = shop_bus()
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert [type(r.event) for r in result.events] == [OrderPaid, ShipmentRequested, OrderShipped]
    assert [r.depth for r in result.events] == [0, 1, 2]
    request_shipment = result.handled("Shop.request_shipment")[0]
    assert request_shipment.produced == (1,)
    assert result.events[1].caused_by == request_shipment.step
    ship = result.calls[result.events[1].handled_by[0] - 1]
    assert ship.name == "Shop.ship_order" and ship.produced == (2,)
    assert result.depth == 2


def test_handled_accepts_the_function_or_its_name() -> None:
    bus, shop = shop_bus()
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert result.handled(shop.mark_paid) == result.handled("Shop.mark_paid")
    assert len(result.handled(shop.mark_paid)) == 1


def test_unhandled_events_are_listed() -> None:
    bus = EventBus()
    bus.register(OrderPaid, lambda e: ShipmentRequested(e.order_id))
    result = bus.dispatch(OrderPaid("o-1"))
    assert [r.type_name for r in result.unhandled] == ["ShipmentRequested"]
    assert result.ok  # nothing failed: an unhandled event is not an error
    assert repr(result) == "DispatchResult(OrderPaid: 2 events, 1 handler call, 1 unhandled)"


def test_an_event_nobody_listens_to_is_its_own_story() -> None:
    result = EventBus().dispatch(OrderPaid("o-1"))
    assert result.calls == ()
    assert [r.unhandled for r in result.events] == [True]
    assert "-- no handler" in result.describe()


def test_describe_tells_the_cascade_as_a_step_table() -> None:
    bus = EventBus()

    def request_shipment(event: OrderPaid) -> ShipmentRequested:
        return ShipmentRequested(event.order_id)

    def charge(event: OrderPaid) -> None:
        raise RuntimeError("card declined")

    bus.register(OrderPaid, request_shipment)
    bus.register(OrderPaid, charge)
    result = bus.dispatch(OrderPaid("o-1", 5.0))
    assert result.describe().splitlines() == [
        "DispatchResult(OrderPaid: 2 events, 2 handler calls, 1 failure, 1 unhandled)",
        "#0 OrderPaid(order_id='o-1', amount=5.0)  -> 1. "
        "test_describe_tells_the_cascade_as_a_step_table.request_shipment: ok, produced #1",
        "                                          -> 2. "
        "test_describe_tells_the_cascade_as_a_step_table.charge: "
        "FAILED RuntimeError: card declined",
        "  #1 ShipmentRequested(order_id='o-1')      -- no handler",
    ]


def test_records_are_built_once_and_reused() -> None:
    bus, _ = shop_bus()
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert result.calls is result.calls
    assert result.events is result.events


def test_iterating_a_result_walks_its_events() -> None:
    bus, _ = shop_bus()
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert [r.index for r in result] == [0, 1, 2]
