"""The checks of notebook 05's exercises: each fails on the notebook's starting point and on
plausible wrong answers, each with its own message, and passes on the published solution."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from feedback import correct, not_yet

from eda_lesson import DispatchResult, EventBus
from eda_lesson.book.exercises import aggregates as check
from eda_lesson.book.exercises.aggregates import MAX_UNITS, OrderReturned
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderPaid
from eda_lesson.shop.stored_order import Order

# ---------------------------------------------------------------------- exercise 1


class StubOrder(Order):
    def return_parcel(self, reason: str) -> None:
        self.status = "returned"


class Solution1(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError(f"order {self.id} is {self.status}; only a shipped order returns")
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))


class NoRule(Order):
    def return_parcel(self, reason: str) -> None:
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))


class CheckAfterTheChange(Order):
    def return_parcel(self, reason: str) -> None:
        was = self.status
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))
        if was != "shipped":
            raise DomainError("only a shipped order can be returned")


class WrongError(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise ValueError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))


class StatusForgotten(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.events.append(OrderReturned(self.id, reason))


def test_exercise_1_passes_the_solution() -> None:
    correct(check.ex1(Solution1))


def test_exercise_1_says_the_starting_point_records_nothing() -> None:
    not_yet(check.ex1(StubOrder), "events are []", "self.events.append")


def test_exercise_1_rejects_a_command_without_its_rule() -> None:
    not_yet(check.ex1(NoRule), "returning a created order was allowed")


def test_exercise_1_says_the_check_belongs_before_the_change() -> None:
    not_yet(check.ex1(CheckAfterTheChange), "only after changing it", "top of the command")


def test_exercise_1_wants_a_domain_error() -> None:
    not_yet(check.ex1(WrongError), "refused with ValueError", "DomainError")


def test_exercise_1_wants_the_state_changed_too() -> None:
    not_yet(check.ex1(StatusForgotten), "status is 'shipped', not 'returned'")


def test_exercise_1_wants_the_class_itself() -> None:
    not_yet(check.ex1(Solution1("o-1", "c-7", 1.0)), "pass your class")  # type: ignore[arg-type]


class EventsReplaced(Solution1):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events = [OrderReturned(self.id, reason)]


class ReturnedTwice(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status not in ("shipped", "returned"):
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))


class ReasonDropped(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.id))


class EventPutFirst(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.insert(0, OrderReturned(self.id, reason))


class RecordedTwice(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))
        self.events.append(OrderReturned(self.id, reason))


class CancelledToo(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.id, reason))
        self.events.append(OrderCancelled(self.id, reason))


class CustomerNamed(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError("only a shipped order can be returned")
        self.status = "returned"
        self.events.append(OrderReturned(self.customer_id, reason))


class NewListKeepingHistory(Order):
    """Right too: a new list, but with every pending event kept, in order."""

    def return_parcel(self, reason: str) -> None:
        if self.status in ("created", "paid", "cancelled", "returned"):
            raise DomainError(f"order {self.id} is {self.status}; it cannot be returned")
        self.status = "returned"
        self.events = [*self.events, OrderReturned(self.id, reason)]


def test_exercise_1_accepts_a_new_list_that_keeps_the_pending_events() -> None:
    correct(check.ex1(NewListKeepingHistory))


def test_exercise_1_says_replacing_the_events_loses_the_pending_ones() -> None:
    not_yet(check.ex1(EventsReplaced), "replaced the order's events", "['OrderShipped']")


def test_exercise_1_refuses_a_second_return() -> None:
    not_yet(check.ex1(ReturnedTwice), "return a second time", "no longer shipped")


def test_exercise_1_says_the_reason_is_missing_not_the_decision() -> None:
    feedback = check.ex1(ReasonDropped)
    not_yet(feedback, "OrderReturned was recorded, but with reason ''", "'too small'")
    assert "not recorded" not in feedback.message and "no OrderReturned" not in feedback.message


def test_exercise_1_says_the_new_event_goes_after_the_pending_ones() -> None:
    not_yet(check.ex1(EventPutFirst), "changed the events that were already pending", "at the end")


def test_exercise_1_refuses_a_return_recorded_twice() -> None:
    not_yet(check.ex1(RecordedTwice), "recorded 2 OrderReturned events")


def test_exercise_1_refuses_a_second_fact_for_one_decision() -> None:
    not_yet(check.ex1(CancelledToo), "besides OrderReturned", "['OrderCancelled']")


def test_exercise_1_wants_the_event_to_name_the_order() -> None:
    not_yet(check.ex1(CustomerNamed), "names order 'c-7'", "'o-1'")


# ---------------------------------------------------------------------- exercise 2


def stub_pay_and_publish(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    return [bus.dispatch(OrderPaid(order.id, amount))]


def solution_2(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    decided = list(order.events)
    order.events.clear()
    return [bus.dispatch(event) for event in decided]


def events_kept(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    return [bus.dispatch(event) for event in order.events]


def publish_then_decide(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    results = [bus.dispatch(OrderPaid(order.id, amount))]
    order.pay(amount)
    order.events.clear()
    return results


def refusal_swallowed(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    try:
        return solution_2(order, amount, bus)
    except DomainError:
        return []


def returns_nothing(order: Order, amount: float, bus: EventBus) -> None:
    solution_2(order, amount, bus)


def test_exercise_2_passes_the_solution() -> None:
    correct(check.ex2(solution_2))


def test_exercise_2_says_the_starting_point_never_asks_the_order() -> None:
    not_yet(check.ex2(stub_pay_and_publish), "never asked", "order.pay(amount)")


def test_exercise_2_rejects_events_left_to_be_published_twice() -> None:
    not_yet(check.ex2(events_kept), "a second time", "order.events.clear()")


def test_exercise_2_rejects_publishing_before_the_decision() -> None:
    not_yet(check.ex2(publish_then_decide), "a receipt for a payment the order refused")


def test_exercise_2_rejects_a_refusal_swallowed() -> None:
    not_yet(check.ex2(refusal_swallowed), "returned normally", "must reach the caller")


def test_exercise_2_wants_the_results() -> None:
    not_yet(check.ex2(returns_nothing), "returned None")


def pop_the_newest(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    return [bus.dispatch(order.events.pop())]


def remove_while_iterating(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    results = []
    for event in order.events:
        results.append(bus.dispatch(event))
        order.events.remove(event)
    return results


def clear_before_paying(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.events.clear()
    order.pay(amount)
    return _publish_all(order, bus)


def _publish_all(order: Order, bus: EventBus) -> list[DispatchResult]:
    decided = list(order.events)
    order.events.clear()
    return [bus.dispatch(event) for event in decided]


def keep_only_the_newest(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    newest = order.events[-1]
    order.events.clear()
    return [bus.dispatch(newest)]


def newest_first(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    order.pay(amount)
    results = []
    while order.events:
        results.append(bus.dispatch(order.events.pop()))
    return results


def pending_published_first(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    results = _publish_all(order, bus)
    order.pay(amount)
    return results + _publish_all(order, bus)


def only_the_last_result(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    return solution_2(order, amount, bus)[-1:]


def oldest_popped_first(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    """Right too: each event taken out of the list as it is published, oldest first."""
    order.pay(amount)
    results = []
    while order.events:
        results.append(bus.dispatch(order.events.pop(0)))
    return results


def removed_from_a_copy(order: Order, amount: float, bus: EventBus) -> list[DispatchResult]:
    """Right too: the loop walks over a copy, so removing from the list skips nothing."""
    order.pay(amount)
    results = []
    for event in list(order.events):
        results.append(bus.dispatch(event))
        order.events.remove(event)
    return results


def test_exercise_2_accepts_other_right_ways_to_hand_the_events_over() -> None:
    correct(check.ex2(oldest_popped_first))
    correct(check.ex2(removed_from_a_copy))


def test_exercise_2_says_the_earlier_pending_events_must_be_published_too() -> None:
    not_yet(
        check.ex2(pop_the_newest),
        "a new order that still held 3 unpublished events, the bus heard only ['OrderPaid']",
        "['OrderCreated', 'ItemAdded(book)', 'ItemAdded(pen)'], recorded before this payment",
        "still waiting in order.events",
    )


def test_exercise_2_says_removing_while_iterating_skips_every_other_event() -> None:
    not_yet(check.ex2(remove_while_iterating), "every other event was skipped", "copy the list")


def test_exercise_2_says_clearing_before_the_decision_throws_events_away() -> None:
    not_yet(
        check.ex2(clear_before_paying),
        "for a cancelled order",
        "were thrown away",
        "A refusal leaves the order",
    )


def test_exercise_2_says_publishing_only_the_newest_throws_the_others_away() -> None:
    not_yet(check.ex2(keep_only_the_newest), "never published and are gone", "thrown away")


def test_exercise_2_wants_the_events_oldest_first() -> None:
    not_yet(check.ex2(newest_first), "in that order", "oldest first")


def test_exercise_2_says_a_refusal_publishes_not_even_the_pending_events() -> None:
    feedback = check.ex2(pending_published_first)
    not_yet(feedback, "not even the events that were pending")
    assert "receipt" not in feedback.message


def test_exercise_2_wants_one_result_per_event() -> None:
    not_yet(check.ex2(only_the_last_result), "published 4 events", "one dispatch result")


# ---------------------------------------------------------------------- exercise 3


def units(items: Iterable[LineItem]) -> int:
    return sum(item.quantity for item in items)


class StubLimited(Order):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for item in self.items:
            if item.quantity > MAX_UNITS:
                raise DomainError(f"at most {MAX_UNITS} units of {item.sku}")


class Solution3(Order):
    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> Solution3:
        items = tuple(items)
        if units(items) > MAX_UNITS:
            raise DomainError(f"order {order_id}: more than {MAX_UNITS} units")
        return super().create(order_id, customer_id, total, items)

    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if units(self.items) + quantity > MAX_UNITS:
            raise DomainError(f"order {self.id}: more than {MAX_UNITS} units")
        super().add_item(sku, quantity, price)


class OneLineAtATime(Order):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if quantity > MAX_UNITS:
            raise DomainError("too many")
        super().add_item(sku, quantity, price)


class CheckAfterAdding(Order):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        super().add_item(sku, quantity, price)
        if units(self.items) > MAX_UNITS:
            raise DomainError("too many")


class OffByOne(Solution3):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if units(self.items) + quantity >= MAX_UNITS:
            raise DomainError("too many")
        Order.add_item(self, sku, quantity, price)


class CreateForgotten(Order):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if units(self.items) + quantity > MAX_UNITS:
            raise DomainError("too many")
        super().add_item(sku, quantity, price)


class ValueErrorInstead(Order):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if units(self.items) + quantity > MAX_UNITS:
            raise ValueError("too many")
        super().add_item(sku, quantity, price)


class AddForgotten(Order):
    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        if units(self.items) + quantity > MAX_UNITS:
            raise DomainError("too many")


def test_exercise_3_passes_the_solution() -> None:
    correct(check.ex3(Solution3))


def test_exercise_3_says_a_check_in_init_belongs_in_the_commands() -> None:
    not_yet(check.ex3(StubLimited), "a check in __init__", "create and add_item")


def test_exercise_3_rejects_a_check_of_one_line_at_a_time() -> None:
    not_yet(check.ex3(OneLineAtATime), "all the lines together")


def test_exercise_3_says_the_check_belongs_before_adding() -> None:
    not_yet(check.ex3(CheckAfterAdding), "only after adding them", "before super().add_item")


def test_exercise_3_allows_exactly_the_limit() -> None:
    not_yet(check.ex3(OffByOne), "exactly 10 units) was refused")


def test_exercise_3_wants_create_checked_too() -> None:
    not_yet(check.ex3(CreateForgotten), "was created", "create is a command too")


def test_exercise_3_wants_a_domain_error() -> None:
    not_yet(check.ex3(ValueErrorInstead), "refused with ValueError")


def test_exercise_3_wants_an_allowed_add_to_add() -> None:
    not_yet(check.ex3(AddForgotten), "an allowed add_item must still add")


class CreateOneLineAtATime(CreateForgotten):
    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> CreateOneLineAtATime:
        items = tuple(items)
        if any(item.quantity > MAX_UNITS for item in items):
            raise DomainError("too many")
        return super().create(order_id, customer_id, total, items)


class CreateOffByOne(CreateForgotten):
    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> CreateOffByOne:
        items = tuple(items)
        if units(items) >= MAX_UNITS:
            raise DomainError("too many")
        return super().create(order_id, customer_id, total, items)


class CreateDropsTheItems(CreateForgotten):
    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> CreateDropsTheItems:
        if units(tuple(items)) > MAX_UNITS:
            raise DomainError("too many")
        return super().create(order_id, customer_id, total)


class CreateValueError(CreateForgotten):
    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> CreateValueError:
        items = tuple(items)
        if units(items) > MAX_UNITS:
            raise ValueError("too many")
        return super().create(order_id, customer_id, total, items)


def test_exercise_3_says_create_must_count_all_the_lines_together() -> None:
    not_yet(check.ex3(CreateOneLineAtATime), "your create let", "together they do")


def test_exercise_3_allows_a_new_order_of_exactly_the_limit() -> None:
    not_yet(check.ex3(CreateOffByOne), "6 books and 4 pens (exactly 10 units) was refused")


def test_exercise_3_says_create_must_pass_the_items_on() -> None:
    not_yet(check.ex3(CreateDropsTheItems), "lines passed in were lost", "super().create")


def test_exercise_3_wants_a_domain_error_from_create_too() -> None:
    not_yet(check.ex3(CreateValueError), "a new order with 7 books", "refused with ValueError")
