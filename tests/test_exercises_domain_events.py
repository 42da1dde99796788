"""The checks of notebook 01: each fails on the notebook's stub and on other plausible wrong
answers, saying what to fix, and passes on the published solution."""

from __future__ import annotations

from dataclasses import dataclass, replace

from eda_lesson.book.exercises import domain_events as check
from eda_lesson.book.exercises.domain_events import Cart
from eda_lesson.shop.events import OrderCreated, OrderEvent

# ---------------------------------------------------------------------- exercise 1


class StubOrderRefunded(OrderEvent):  # the notebook's stub, named OrderRefunded there
    pass


StubOrderRefunded.__name__ = "OrderRefunded"


@dataclass
class OrderRefundedNotFrozen:
    order_id: str
    amount: float


OrderRefundedNotFrozen.__name__ = "OrderRefunded"


@dataclass(frozen=True)
class RefundOrder(OrderEvent):
    amount: float


@dataclass(frozen=True)
class OrderRefundedAlone:
    order_id: str
    amount: float


OrderRefundedAlone.__name__ = "OrderRefunded"


@dataclass(frozen=True)
class OrderRefundedWithExtras(OrderEvent):
    amount: float
    customer: object = None


OrderRefundedWithExtras.__name__ = "OrderRefunded"


@dataclass(frozen=True)
class OrderRefunded(OrderEvent):
    amount: float


class PlainOrderRefunded:
    pass


PlainOrderRefunded.__name__ = "OrderRefunded"


def test_ex1_the_stub_inherits_from_a_dataclass_without_being_one() -> None:
    feedback = check.ex1(StubOrderRefunded)
    assert not feedback
    assert (
        feedback.message == "OrderRefunded is not a dataclass (inheriting from one is not enough)"
    )
    assert "@dataclass(frozen=True)" in feedback.hint


def test_ex1_a_plain_class_is_not_a_dataclass() -> None:
    feedback = check.ex1(PlainOrderRefunded)
    assert not feedback
    assert feedback.message == "OrderRefunded is not a dataclass"


def test_ex1_a_dataclass_that_is_not_frozen_is_refused() -> None:
    feedback = check.ex1(OrderRefundedNotFrozen)
    assert not feedback
    assert "not a frozen one" in feedback.message
    assert feedback.hint == "write @dataclass(frozen=True)"


def test_ex1_a_command_name_is_refused() -> None:
    feedback = check.ex1(RefundOrder)
    assert not feedback
    assert "RefundOrder does not read as a fact in the past tense" in feedback.message
    assert "OrderRefunded" in feedback.hint


def test_ex1_an_event_outside_the_order_family_is_refused() -> None:
    feedback = check.ex1(OrderRefundedAlone)
    assert not feedback
    assert "does not inherit from OrderEvent" in feedback.message


def test_ex1_extra_fields_are_pointed_out() -> None:
    feedback = check.ex1(OrderRefundedWithExtras)
    assert not feedback
    assert "has the fields" in feedback.message and "customer" in feedback.message


def test_ex1_an_instance_instead_of_the_class_is_explained() -> None:
    feedback = check.ex1(OrderRefunded("o-1", 1.0))
    assert "pass the class itself" in feedback.message


def test_ex1_a_frozen_order_event_with_an_amount_passes() -> None:
    assert check.ex1(OrderRefunded), check.ex1(OrderRefunded)


# ---------------------------------------------------------------------- exercise 2


def stub_with_discount(event: OrderCreated, percent: float) -> OrderCreated:
    event.total = event.total * (1 - percent / 100)  # type: ignore[misc]
    return event


def discount_losing_the_items(event: OrderCreated, percent: float) -> OrderCreated:
    return OrderCreated(event.order_id, event.customer_id, event.total * (1 - percent / 100))


def discount_taking_off_the_percent_as_money(event: OrderCreated, percent: float) -> OrderCreated:
    return replace(event, total=event.total - percent)


def discount_that_forgets_to_return(event: OrderCreated, percent: float) -> None:
    replace(event, total=event.total * (1 - percent / 100))


def with_discount(event: OrderCreated, percent: float) -> OrderCreated:
    return replace(event, total=event.total * (1 - percent / 100))


def test_ex2_the_stub_tries_to_change_the_frozen_event() -> None:
    feedback = check.ex2(stub_with_discount)
    assert not feedback
    assert feedback.message.startswith("your function tried to change the event")
    assert "dataclasses.replace" in feedback.hint


def test_ex2_building_a_new_event_by_hand_can_lose_fields() -> None:
    feedback = check.ex2(discount_losing_the_items)
    assert not feedback
    assert feedback.message.startswith("the new event's items is ()")
    assert "replace copies every field" in feedback.hint


def test_ex2_a_wrong_total_is_shown_with_the_expected_one() -> None:
    feedback = check.ex2(discount_taking_off_the_percent_as_money)
    assert not feedback
    assert "should give a total of 60.0, your event says 55.0" in feedback.message


def test_ex2_forgetting_to_return_is_explained() -> None:
    feedback = check.ex2(discount_that_forgets_to_return)
    assert not feedback
    assert "returned None instead of an OrderCreated" in feedback.message


def test_ex2_replace_passes() -> None:
    assert check.ex2(with_discount), check.ex2(with_discount)


# ---------------------------------------------------------------------- exercise 3


def stub_order_created_from(cart: Cart, order_id: str) -> OrderCreated:
    return OrderCreated(order_id, cart.customer, cart.total, cart.lines)  # type: ignore[arg-type]


def event_sharing_the_cart_list(cart: Cart, order_id: str) -> OrderCreated:
    return OrderCreated(order_id, cart.customer.customer_id, cart.total, cart.lines)  # type: ignore[arg-type]


def event_with_a_copied_list(cart: Cart, order_id: str) -> OrderCreated:
    return OrderCreated(order_id, cart.customer.customer_id, cart.total, list(cart.lines))  # type: ignore[arg-type]


def order_created_from(cart: Cart, order_id: str) -> OrderCreated:
    return OrderCreated(order_id, cart.customer.customer_id, cart.total, tuple(cart.lines))


def test_ex3_the_stub_puts_the_whole_customer_in_the_event() -> None:
    feedback = check.ex3(stub_order_created_from)
    assert not feedback
    assert "not the customer's id 'c-4'" in feedback.message
    assert "(a Customer)" in feedback.message
    assert "ids in an event, not whole objects" in feedback.hint


def test_ex3_an_event_sharing_the_carts_list_is_refused() -> None:
    feedback = check.ex3(event_sharing_the_cart_list)
    assert not feedback
    assert "the event holds the cart's own list" in feedback.message
    assert "tuple(cart.lines)" in feedback.hint


def test_ex3_a_copied_list_is_still_a_mutable_collection() -> None:
    feedback = check.ex3(event_with_a_copied_list)
    assert not feedback
    assert "a list inside a frozen event can still change" in feedback.message


def test_ex3_ids_and_a_tuple_of_items_pass_and_the_shop_reserves_stock() -> None:
    feedback = check.ex3(order_created_from)
    assert feedback, feedback
    assert "reserved the stock" in feedback.message
