"""The checks of notebook 02: each fails on the notebook's stub and on other plausible wrong
answers, saying what to fix, and passes on the published solution."""

from __future__ import annotations

from typing import Any

from eda_lesson import EventBus
from eda_lesson.book.exercises import handlers_and_registration as check
from eda_lesson.shop.events import (
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.services import Shop

# ---------------------------------------------------------------------- exercise 1


def money_moved_unannotated(event):  # type: ignore[no-untyped-def]
    print("money moved for", event.order_id)


def money_moved_on_paid_only(event: OrderPaid) -> None:
    print("money moved for", event.order_id)


def money_moved_on_every_order_event(event: OrderEvent) -> None:
    print("money moved for", event.order_id)


def money_moved_but_broken(event: OrderPaid | OrderCancelled) -> None:
    print("money moved:", event.amount)  # type: ignore[union-attr]


def money_moved(event: OrderPaid | OrderCancelled) -> None:
    print("money moved for", event.order_id)


def test_ex1_the_stub_without_an_annotation_cannot_be_subscribed() -> None:
    feedback = check.ex1(money_moved_unannotated)
    assert not feedback
    assert "cannot tell which event money_moved_unannotated handles" in feedback.message
    assert "has no type annotation" in feedback.message
    assert "OrderPaid | OrderCancelled" in feedback.hint


def test_ex1_one_type_is_not_enough() -> None:
    feedback = check.ex1(money_moved_on_paid_only)
    assert not feedback
    assert feedback.message == "money_moved_on_paid_only does not hear OrderCancelled"
    assert "union" in feedback.hint


def test_ex1_the_base_class_is_too_wide() -> None:
    feedback = check.ex1(money_moved_on_every_order_event)
    assert not feedback
    assert "also hears OrderCreated" in feedback.message


def test_ex1_a_handler_that_fails_on_one_of_its_types_is_reported() -> None:
    feedback = check.ex1(money_moved_but_broken)
    assert not feedback
    assert "AttributeError" in feedback.message and "amount" in feedback.message


def test_ex1_a_union_annotation_passes() -> None:
    assert check.ex1(money_moved), check.ex1(money_moved)


# ---------------------------------------------------------------------- exercise 2


def listen_to_created_only(bus: EventBus, handler: Any) -> None:
    bus.register(OrderCreated, handler)


def listen_to_everything(bus: EventBus, handler: Any) -> None:
    bus.register(object, handler)


def listen_to_todays_types(bus: EventBus, handler: Any) -> None:
    for event_type in (OrderCreated, OrderPaid, OrderCancelled, ShipmentRequested, OrderShipped):
        bus.register(event_type, handler)


def listen_to_nothing(bus: EventBus, handler: Any) -> None:
    pass


def listen_to_orders(bus: EventBus, handler: Any) -> None:
    bus.register(OrderEvent, handler)


def test_ex2_the_stub_hears_only_created_orders() -> None:
    feedback = check.ex2(listen_to_created_only)
    assert not feedback
    assert feedback.message.endswith("the handler heard: none of them")
    assert "base class" in feedback.hint


def test_ex2_object_hears_events_that_are_not_about_orders() -> None:
    feedback = check.ex2(listen_to_everything)
    assert not feedback
    assert "also heard NewsletterSent" in feedback.message
    assert "object hears every event" in feedback.hint


def test_ex2_listing_todays_types_misses_a_type_added_later() -> None:
    feedback = check.ex2(listen_to_todays_types)
    assert not feedback
    assert "OrderGiftWrapped" in feedback.message
    assert "base class" in feedback.hint


def test_ex2_registering_nothing_is_pointed_out() -> None:
    feedback = check.ex2(listen_to_nothing)
    assert feedback.message == "listen_to_orders did not register the handler it was given"


def test_ex2_one_registration_on_the_base_class_passes() -> None:
    assert check.ex2(listen_to_orders), check.ex2(listen_to_orders)


# ---------------------------------------------------------------------- exercise 3


def connect_with_lambdas(bus: EventBus, shop: Shop) -> None:
    bus.register(OrderCreated, lambda event: shop.send_confirmation(event))
    bus.register(OrderCreated, lambda event: shop.reserve_stock(event))


def connect_with_inner_functions(bus: EventBus, shop: Shop) -> None:
    def confirm(event: OrderCreated) -> None:
        shop.send_confirmation(event)

    bus.register(OrderCreated, confirm)
    bus.register(OrderCreated, shop.reserve_stock)


def connect_email_only(bus: EventBus, shop: Shop) -> None:
    bus.register(OrderCreated, shop.send_confirmation)


def connect(bus: EventBus, shop: Shop) -> None:
    bus.register(OrderCreated, shop.send_confirmation)
    bus.register(OrderCreated, shop.reserve_stock)


def test_ex3_the_lambda_stub_sends_two_emails_after_two_runs() -> None:
    feedback = check.ex3(connect_with_lambdas)
    assert not feedback
    assert feedback.message == "after connect ran twice, one order got 2 confirmation emails"
    assert "a lambda" in feedback.hint and "shop.send_confirmation" in feedback.hint


def test_ex3_a_function_made_inside_connect_doubles_too() -> None:
    feedback = check.ex3(connect_with_inner_functions)
    assert not feedback
    assert "2 confirmation emails" in feedback.message
    assert "made inside connect" in feedback.hint


def test_ex3_forgetting_the_stock_is_pointed_out() -> None:
    feedback = check.ex3(connect_email_only)
    assert not feedback
    assert feedback.message == "the stock was not reserved"


def test_ex3_bound_methods_are_replaced_when_registered_again() -> None:
    assert check.ex3(connect), check.ex3(connect)
