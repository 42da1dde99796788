"""The state-stored order of chapters 05 and 06: its rules, its unit of work, its wiring."""

from __future__ import annotations

import contextlib

import pytest

from eda_lesson import EventBus
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import CancelOrder, PayOrder, PlaceOrder, ShipOrder
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.services import Shop
from eda_lesson.shop.stored_order import (
    ItemAdded,
    Order,
    OrderTable,
    OrderUnitOfWork,
    StaleOrderError,
    UnknownOrderError,
    bootstrap,
    pay_order,
    place_order,
)

# ---------------------------------------------------------------------- rules


def paid_order() -> Order:
    order = Order.create("o-1", "c-7", 42.0)
    order.pay(42.0)
    return order


def test_a_new_order_records_that_it_was_created() -> None:
    order = Order.create("o-1", "c-7", 42.0, [LineItem("book", 2)])
    assert order.status == "created" and order.version == 0
    assert order.events == [OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),))]


@pytest.mark.parametrize("order_id", ["", None])
def test_an_order_needs_an_id(order_id: object) -> None:
    with pytest.raises(DomainError, match="needs an id"):
        Order.create(order_id, "c-7", 1.0)  # type: ignore[arg-type]


def test_a_cancelled_order_cannot_be_paid_and_stays_as_it_was() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    order.cancel("changed my mind")
    with pytest.raises(DomainError, match="Place a new order instead"):
        order.pay(42.0)
    assert order.status == "cancelled"
    assert order.events == [
        OrderCreated("o-1", "c-7", 42.0),
        OrderCancelled("o-1", "changed my mind"),
    ]


def test_an_order_is_paid_its_total_once() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    with pytest.raises(DomainError, match="Pay the total"):
        order.pay(40.0)
    order.pay()
    with pytest.raises(DomainError, match="cannot be paid twice"):
        order.pay(42.0)
    assert order.amount_paid == 42.0 and order.events[-1] == OrderPaid("o-1", 42.0)


def test_only_a_paid_order_ships_and_only_once() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    with pytest.raises(DomainError, match="Take the payment first"):
        order.ship()
    order.pay()
    order.ship("T-1")
    assert order.events[-1] == OrderShipped("o-1", "T-1")
    with pytest.raises(DomainError, match="ships once"):
        order.ship()


def test_a_shipped_order_cannot_be_cancelled() -> None:
    order = paid_order()
    order.ship()
    with pytest.raises(DomainError, match="Ask for a return instead"):
        order.cancel("too late")
    assert order.status == "shipped"


def test_items_are_added_through_the_order_before_payment_only() -> None:
    order = Order.create("o-1", "c-7", 0.0)
    order.add_item("book", 2, 15.0)
    order.add_item("book", 1, 15.0)
    assert order.items == (LineItem("book", 3),) and order.total == 45.0
    assert order.events[-1] == ItemAdded("o-1", "book", 1, 15.0)
    with pytest.raises(DomainError, match="at least 1"):
        order.add_item("pen", 0)
    order.pay()
    with pytest.raises(DomainError, match="before it is paid"):
        order.add_item("pen", 1, 2.0)
    assert order.items == (LineItem("book", 3),)


# ---------------------------------------------------------------------- unit of work


def stored(*orders: Order) -> OrderUnitOfWork:
    uow = OrderUnitOfWork()
    for order in orders:
        with uow:
            uow.orders.add(order)
            uow.commit()
        list(uow.collect_new_events())
    return uow


def test_commit_saves_a_new_version_and_hands_over_the_events_once() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    with uow:
        uow.orders.load("o-1").pay(42.0)
        uow.commit()
    assert uow.table.rows["o-1"].version == 2 and uow.table.rows["o-1"].status == "paid"
    assert list(uow.collect_new_events()) == [OrderPaid("o-1", 42.0)]
    assert list(uow.collect_new_events()) == []


def test_leaving_the_block_without_commit_saves_nothing_and_drops_the_events() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    with uow:
        order = uow.orders.load("o-1")
        order.pay(42.0)
    assert order.events == [] and list(uow.collect_new_events()) == []
    assert uow.table.rows["o-1"].status == "created"


def test_a_commit_after_the_block_is_refused_before_anything_is_saved() -> None:
    from eda_lesson.patterns.state_unit_of_work import BlockEndedError

    uow = stored(Order.create("o-1", "c-7", 42.0))
    commits = uow.commits
    for ending in ("normally", "with an error"):
        with contextlib.suppress(DomainError), uow:
            order = uow.orders.load("o-1")
            order.pay(42.0)
            if ending == "with an error":
                raise DomainError("the card was declined")
        with pytest.raises(BlockEndedError, match=r"OrderUnitOfWork.commit\(\) after its with"):
            uow.commit()  # would save the paid copy whose OrderPaid the block dropped
        assert uow.table.rows["o-1"].status == "created" and uow.commits == commits
        assert order.status == "paid" and list(uow.collect_new_events()) == []
    with uow:  # a new block loads afresh, decides again, and commits
        uow.orders.load("o-1").pay(42.0)
        uow.commit()
    assert uow.table.rows["o-1"].version == 2
    assert list(uow.collect_new_events()) == [OrderPaid("o-1", 42.0)]


def test_a_unit_of_work_used_without_a_block_still_commits() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    fresh = OrderUnitOfWork(uow.table)
    fresh.orders.load("o-1").pay(42.0)
    fresh.commit()
    assert uow.table.rows["o-1"].status == "paid"


def test_a_second_unit_of_work_with_an_old_copy_is_refused_and_saves_nothing() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    clerk, customer = OrderUnitOfWork(uow.table), OrderUnitOfWork(uow.table)
    clerk.orders.load("o-1").cancel("out of stock")
    customer.orders.load("o-1").pay(42.0)
    clerk.commit()
    with pytest.raises(StaleOrderError, match=r"version 2 in the table.*loaded at version 1"):
        customer.commit()
    assert uow.table.rows["o-1"].status == "cancelled"
    assert list(customer.collect_new_events()) == []


def test_loading_twice_in_one_unit_of_work_gives_one_copy_and_no_conflict() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    with uow:
        first, second = uow.orders.load("o-1"), uow.orders.load("o-1")
        first.pay(42.0)
        uow.commit()
    assert first is second and uow.table.rows["o-1"].version == 2


def test_the_same_unit_of_work_commits_one_command_after_another() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    for change in (lambda o: o.pay(42.0), lambda o: o.ship()):
        with uow:
            change(uow.orders.load("o-1"))
            uow.commit()
    assert uow.table.rows["o-1"].version == 3


def test_adding_an_order_that_exists_is_a_mistake_not_a_conflict() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    with uow, pytest.raises(DomainError, match="already exists"):
        uow.orders.add(Order.create("o-1", "c-7", 42.0))


def test_a_commit_that_changed_two_orders_is_refused() -> None:
    uow = stored(Order.create("o-1", "c-7", 1.0), Order.create("o-2", "c-7", 1.0))
    with uow:
        uow.orders.load("o-1").cancel()
        uow.orders.load("o-2").cancel()
        with pytest.raises(DomainError, match="one command changes one order"):
            uow.commit()
    assert {row.status for row in uow.table.rows.values()} == {"created"}


def test_loading_an_unknown_order_says_so() -> None:
    with OrderUnitOfWork() as uow, pytest.raises(UnknownOrderError, match="no order 'o-9'"):
        uow.orders.load("o-9")


def test_table_describes_itself_in_stable_lines() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    assert uow.table.describe() == "OrderTable: 1 order\n  o-1  version 1  created    total 42"
    assert OrderTable().describe() == "OrderTable: empty"


# ---------------------------------------------------------------------- on the bus


def test_the_bus_collects_only_committed_events() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    heard: list[object] = []
    bus = EventBus(dependencies={"uow": uow}, collect_from=[uow])
    bus.register(PayOrder, pay_order)
    bus.register(OrderPaid, heard.append)
    assert bus.dispatch(PayOrder("o-1", 42.0)).returned == "paid"
    assert heard == [OrderPaid("o-1", 42.0)]


def test_a_handler_that_fails_before_its_commit_publishes_nothing() -> None:
    uow = stored(Order.create("o-1", "c-7", 42.0))
    heard: list[object] = []

    def pay_then_fail(command: PayOrder, uow: OrderUnitOfWork) -> None:
        with uow:
            uow.orders.load(command.order_id).pay(command.amount)
            raise ConnectionError("the card terminal hung up")

    bus = EventBus(dependencies={"uow": uow}, collect_from=[uow])
    bus.register(PayOrder, pay_then_fail)
    bus.register(OrderPaid, heard.append)
    with pytest.raises(ConnectionError):
        bus.dispatch(PayOrder("o-1", 42.0))
    assert heard == [] and uow.table.rows["o-1"].status == "created"


def test_bootstrap_ships_through_the_order_and_refuses_cancelling_a_shipped_one() -> None:
    uow, shop = OrderUnitOfWork(), Shop()
    bus = bootstrap(uow, shop)
    assert bus.dispatch(PlaceOrder("o-1", "c-7", 42.0)).returned == "created"
    paying = bus.dispatch(PayOrder("o-1", 42.0))
    assert [type(m).__name__ for m, _ in paying.queue] == [
        "PayOrder",
        "OrderPaid",
        "ShipOrder",
        "OrderShipped",
    ]
    assert uow.table.rows["o-1"].status == "shipped" and shop.shipping.shipped == ["o-1"]
    with pytest.raises(DomainError, match="has shipped"):
        bus.dispatch(CancelOrder("o-1", "changed my mind"))
    assert shop.payments.refunds == [] and shop.orders.status["o-1"] == "shipped"


def test_an_event_nobody_decided_does_not_make_the_order_ship() -> None:
    uow, shop = OrderUnitOfWork(), Shop()
    bus = bootstrap(uow, shop)
    bus.dispatch(PlaceOrder("o-1", "c-7", 42.0))
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert [type(call.error) for call in result.failures] == [DomainError]
    assert uow.table.rows["o-1"].status == "created" and shop.shipping.shipped == []


def test_placing_and_shipping_commands_have_their_handlers() -> None:
    bus = bootstrap(OrderUnitOfWork(), Shop())
    assert [h.__name__ for h in bus.handlers_for(PlaceOrder)] == [place_order.__name__]
    assert bus.handlers_for(ShipOrder)
