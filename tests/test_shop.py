"""The shop does what a short article on event-driven architecture in Go says its handlers do."""

from __future__ import annotations

import pytest

from eda_lesson import EventBus
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderEvent, OrderPaid
from eda_lesson.shop.services import Email, Inventory, OutOfStockError, Shop


@pytest.fixture
def shop_and_bus() -> tuple[Shop, EventBus]:
    bus, shop = EventBus(), Shop(stock={"book": 3, "pen": 10})
    shop.register(bus)
    return shop, bus


def test_creating_an_order_confirms_it_and_reserves_stock(shop_and_bus) -> None:  # type: ignore[no-untyped-def]
    shop, bus = shop_and_bus
    result = bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),)))
    assert result.ok
    assert shop.orders.status == {"o-1": "created"}
    assert shop.mailer.sent == [Email("c-7", "Order o-1 confirmed")]
    assert shop.inventory.stock == {"book": 1, "pen": 10}


def test_paying_marks_paid_sends_a_receipt_and_ships(shop_and_bus) -> None:  # type: ignore[no-untyped-def]
    shop, bus = shop_and_bus
    bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)))
    bus.dispatch(OrderPaid("o-1", 42.0))
    assert shop.orders.status == {"o-1": "shipped"}
    assert shop.payments.received == {"o-1": 42.0}
    assert [m.subject for m in shop.mailer.sent] == [
        "Order o-1 confirmed",
        "Receipt for order o-1",
        "Order o-1 is on its way",
    ]
    assert shop.shipping.shipped == ["o-1"]


def test_cancelling_refunds_and_restocks(shop_and_bus) -> None:  # type: ignore[no-untyped-def]
    shop, bus = shop_and_bus
    bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),)))
    shop.payments.received["o-1"] = 42.0
    bus.dispatch(OrderCancelled("o-1", "changed my mind"))
    assert shop.orders.status == {"o-1": "cancelled"}
    assert shop.payments.refunds == [("o-1", 42.0)]
    assert shop.inventory.stock["book"] == 3


def test_out_of_stock_fails_only_the_reservation(shop_and_bus) -> None:  # type: ignore[no-untyped-def]
    shop, bus = shop_and_bus
    result = bus.dispatch(OrderCreated("o-1", "c-7", 1.0, (LineItem("book", 9),)))
    (failure,) = result.failures
    assert failure.name == "Shop.reserve_stock"
    assert str(failure.error) == "order o-1 wants 9 x book, only 3 left"
    assert shop.orders.status == {"o-1": "created"}  # the other handlers still ran
    assert shop.inventory.stock["book"] == 3


def test_reservation_is_all_or_nothing() -> None:
    inventory = Inventory(stock={"book": 1, "pen": 1})
    with pytest.raises(OutOfStockError):
        inventory.reserve("o-1", [LineItem("book", 1), LineItem("pen", 2)])
    assert inventory.stock == {"book": 1, "pen": 1} and inventory.reserved == {}


def test_every_order_event_is_an_order_event() -> None:
    for event in (OrderCreated("o", "c", 1.0), OrderPaid("o"), OrderCancelled("o")):
        assert isinstance(event, OrderEvent)


def test_events_are_immutable() -> None:
    event = OrderPaid("o-1", 5.0)
    with pytest.raises(AttributeError):
        event.amount = 6.0  # type: ignore[misc]


def test_summary_is_stable_text(shop_and_bus) -> None:  # type: ignore[no-untyped-def]
    shop, bus = shop_and_bus
    bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)))
    assert shop.summary() == (
        "orders:    o-1=created\n"
        "stock:     book=2, pen=10\n"
        "emails:    c-7: Order o-1 confirmed\n"
        "payments:  -\n"
        "refunds:   -\n"
        "shipped:   -"
    )
