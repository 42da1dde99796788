"""The checks of notebook 04's exercises: each fails on the notebook's starting point and on a
plausible wrong answer, saying what is wrong, and passes on the published solution."""

from __future__ import annotations

from eda_lesson import DispatchResult, EventBus
from eda_lesson.book.exercises import Feedback
from eda_lesson.book.exercises import aggregates as check
from eda_lesson.book.exercises.aggregates import OrderReturned
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.store import ConcurrencyError, EventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import OrderCancelled
from eda_lesson.shop.order import Order


def not_yet(feedback: Feedback, *words: str) -> None:
    text = f"{feedback!r}\nHint: {feedback.hint}"  # the hint is printed from the second miss
    assert text.startswith("Not yet."), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def correct(feedback: Feedback) -> None:
    assert repr(feedback).startswith("Correct!"), repr(feedback)


# ---------------------------------------------------------------------- exercise 1


class StubOrder(Order):
    def return_parcel(self, reason: str) -> None:
        self.status = "returned"

    @applies(OrderReturned)
    def _returned(self, event: OrderReturned) -> None:
        pass


class StateInTheCommand(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError(f"order {self.id} is {self.status}; only a shipped order returns")
        self.record(OrderReturned(self.id, reason))
        self.status = "returned"

    @applies(OrderReturned)
    def _returned(self, event: OrderReturned) -> None:
        pass


class NoRule(Order):
    def return_parcel(self, reason: str) -> None:
        self.record(OrderReturned(self.id, reason))

    @applies(OrderReturned)
    def _returned(self, event: OrderReturned) -> None:
        self.status = "returned"


class RecordsThenRefuses(Order):
    def return_parcel(self, reason: str) -> None:
        self.record(OrderReturned(self.id, reason))
        if self.pending[-2:-1] and type(self.pending[-2]).__name__ != "OrderShipped":
            raise DomainError("only a shipped order can be returned")

    @applies(OrderReturned)
    def _returned(self, event: OrderReturned) -> None:
        self.status = "returned"


class ReturnableOrder(Order):
    def return_parcel(self, reason: str) -> None:
        if self.status != "shipped":
            raise DomainError(f"order {self.id} is {self.status}; only a shipped order returns")
        self.record(OrderReturned(self.id, reason))

    @applies(OrderReturned)
    def _returned(self, event: OrderReturned) -> None:
        self.status = "returned"


def test_ex1_changing_the_state_without_recording_is_caught() -> None:
    not_yet(check.ex1(StubOrder), "nothing was recorded", "self.record(OrderReturned")


def test_ex1_state_changed_in_the_command_does_not_survive_replay() -> None:
    not_yet(check.ex1(StateInTheCommand), "rebuilt from its events", "@applies(OrderReturned)")


def test_ex1_a_missing_rule_is_caught() -> None:
    not_yet(check.ex1(NoRule), "returning a created order was allowed", "raise DomainError")


def test_ex1_recording_before_checking_the_rule_is_caught() -> None:
    not_yet(check.ex1(RecordsThenRefuses), "still changed it", "record only when it holds")


def test_ex1_not_an_order_class_is_refused() -> None:
    not_yet(check.ex1(ReturnableOrder()), "subclass of Order")  # type: ignore[arg-type]


def test_ex1_passes_on_the_solution() -> None:
    correct(check.ex1(ReturnableOrder))


# ---------------------------------------------------------------------- exercise 2


def commit_stub(store: EventStore, bus: EventBus, order: Order) -> list[DispatchResult]:
    return [bus.dispatch(event) for event in order.pending]


def commit_publishing_first(store: EventStore, bus: EventBus, order: Order) -> list[DispatchResult]:
    results = [bus.dispatch(event) for event in order.pending]
    store.append(order.stream_id, order.pending, order.saved_version)
    order.collect_pending()
    return results


def commit_with_current_version(
    store: EventStore, bus: EventBus, order: Order
) -> list[DispatchResult]:
    store.append(order.stream_id, order.pending, store.version(order.stream_id))
    return [bus.dispatch(event) for event in order.collect_pending()]


def commit_keeping_pending(store: EventStore, bus: EventBus, order: Order) -> list[DispatchResult]:
    store.append(order.stream_id, order.pending, order.saved_version)
    return [bus.dispatch(event) for event in order.pending]


def commit_swallowing_conflicts(
    store: EventStore, bus: EventBus, order: Order
) -> list[DispatchResult]:
    try:
        store.append(order.stream_id, order.pending, order.saved_version)
    except ConcurrencyError:
        return []
    return [bus.dispatch(event) for event in order.collect_pending()]


def commit(store: EventStore, bus: EventBus, order: Order) -> list[DispatchResult]:
    store.append(order.stream_id, order.pending, order.saved_version)
    return [bus.dispatch(event) for event in order.collect_pending()]


def test_ex2_the_stub_saves_nothing() -> None:
    not_yet(check.ex2(commit_stub), "holds []", "store.append")


def test_ex2_publishing_before_saving_is_caught() -> None:
    not_yet(check.ex2(commit_publishing_first), "published before it was saved", "save first")


def test_ex2_the_stream_version_instead_of_the_loaded_version_is_caught() -> None:
    not_yet(
        check.ex2(commit_with_current_version),
        "saved OrderPaid on top of it",
        "order.saved_version",
    )


def test_ex2_events_left_pending_after_the_save_are_caught() -> None:
    not_yet(check.ex2(commit_keeping_pending), "still holds pending events", "collect_pending")


def test_ex2_a_swallowed_conflict_is_caught() -> None:
    not_yet(check.ex2(commit_swallowing_conflicts), "returned normally", "ConcurrencyError")


def test_ex2_passes_on_the_solution() -> None:
    correct(check.ex2(commit))


# ---------------------------------------------------------------------- exercise 3


def cancel_order_stub(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> list[DispatchResult]:
    return [bus.dispatch(OrderCancelled(order_id, reason))]


def cancel_order_without_commit(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> list[DispatchResult]:
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get(order_id).cancel(reason)
    return []


def cancel_order_hiding_refusals(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> list[DispatchResult]:
    try:
        with UnitOfWork(store, bus) as uow:
            uow.repository(Order).get(order_id).cancel(reason)
            return uow.commit()
    except DomainError:
        return []


def cancel_order(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> list[DispatchResult]:
    with UnitOfWork(store, bus) as uow:
        order = uow.repository(Order).get(order_id)
        order.cancel(reason)
        return uow.commit()


def test_ex3_the_stub_publishes_without_saving() -> None:
    not_yet(check.ex3(cancel_order_stub), "published but never saved", "UnitOfWork")


def test_ex3_forgetting_to_commit_is_explained() -> None:
    not_yet(check.ex3(cancel_order_without_commit), "nothing was saved", "uow.commit()")


def test_ex3_hiding_the_aggregates_refusal_is_caught() -> None:
    not_yet(check.ex3(cancel_order_hiding_refusals), "returned normally", "DomainError")


def test_ex3_passes_on_the_solution() -> None:
    correct(check.ex3(cancel_order))


def cancel_order_around_the_aggregate(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> list[DispatchResult]:
    stream = Order.stream_for(order_id)
    event = OrderCancelled(order_id, reason)
    store.append(stream, [event], store.version(stream))
    return [bus.dispatch(event)]


def test_ex3_going_around_the_aggregate_cancels_a_shipped_order() -> None:
    not_yet(
        check.ex3(cancel_order_around_the_aggregate),
        "order o-2 had shipped, yet cancelling it went through",
        "order.cancel(reason) checks the rules",
    )
