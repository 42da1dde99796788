"""The checks of notebook 09's exercises: each fails on the notebook's starting point and on
plausible wrong answers, saying what is wrong, and passes on the published solution."""

from __future__ import annotations

from typing import Any

import pytest
from feedback import correct, not_yet

from eda_lesson import DispatchResult, EventBus
from eda_lesson.book.exercises import event_sourcing_and_projections as check
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.store import ConcurrencyError, EventStore, StoredEvent
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.order import Order
from eda_lesson.shop.read_models import RevenuePerCustomer

pytestmark = pytest.mark.filterwarnings("error")


# ---------------------------------------------------------------------- exercise 1


def evolve_stub(state: dict[str, Any], event: object) -> dict[str, Any]:
    return state


def evolve_mutating(state: dict[str, Any], event: object) -> dict[str, Any]:
    if isinstance(event, OrderCreated):
        state["status"] = "created"
    elif isinstance(event, OrderPaid):
        state["status"], state["paid"] = "paid", event.amount
    elif isinstance(event, OrderCancelled):
        state["status"] = "cancelled"
    elif isinstance(event, OrderShipped):
        state["status"] = "shipped"
    return state


def evolve_refunding(state: dict[str, Any], event: object) -> dict[str, Any]:
    """Wrong: zeroes the money on cancel, which the Order does not do."""
    if isinstance(event, OrderCancelled):
        return {**state, "status": "cancelled", "paid": 0.0}
    return evolve(state, event)


def evolve(state: dict[str, Any], event: object) -> dict[str, Any]:
    """The published solution."""
    if isinstance(event, OrderCreated):
        return {**state, "status": "created"}
    if isinstance(event, OrderPaid):
        return {**state, "status": "paid", "paid": event.amount}
    if isinstance(event, OrderCancelled):
        return {**state, "status": "cancelled"}
    if isinstance(event, OrderShipped):
        return {**state, "status": "shipped"}
    return state


def test_ex1_fails_on_the_stub_naming_the_first_event_it_missed() -> None:
    not_yet(check.ex1(evolve_stub), "after OrderCreated", "'created'")


def test_ex1_fails_when_the_state_given_is_changed_in_place() -> None:
    not_yet(check.ex1(evolve_mutating), "changed the starting state", "return a new dict")


def test_ex1_fails_when_cancelling_forgets_the_payment() -> None:
    not_yet(check.ex1(evolve_refunding), "OrderCancelled", "'paid': 15.0")


def evolve_copying_only_the_start(state: dict[str, Any], event: object) -> dict[str, Any]:
    """Wrong: a new dict on creation, then every later event changes the one it is given."""
    if isinstance(event, OrderCreated):
        return {**state, "status": "created"}
    if isinstance(event, OrderPaid):
        state["status"], state["paid"] = "paid", event.amount
    elif isinstance(event, OrderCancelled):
        state["status"] = "cancelled"
    elif isinstance(event, OrderShipped):
        state["status"] = "shipped"
    return state


def evolve_counting_versions(state: dict[str, Any], event: object) -> dict[str, Any]:
    """Wrong for this exercise: adds a key of its own."""
    return {**evolve(state, event), "version": state.get("version", 0) + 1}


def evolve_strict(state: dict[str, Any], event: object) -> dict[str, Any]:
    """Right: fails on an event it has no rule for, as Order does."""
    if isinstance(event, OrderCreated | OrderPaid | OrderCancelled | OrderShipped):
        return evolve(state, event)
    raise TypeError(f"evolve has no rule for {type(event).__name__}")


def test_ex1_fails_when_a_later_state_is_changed_in_place() -> None:
    not_yet(
        check.ex1(evolve_copying_only_the_start),
        "changed the state after OrderCreated to {'status': 'paid', 'paid': 42.0}",
        "that version of the order is lost",
        "return a new dict",
    )


def test_ex1_names_a_key_the_state_should_not_have() -> None:
    not_yet(
        check.ex1(evolve_counting_versions),
        "the keys ['paid', 'status', 'version']",
        "add no keys of your own",
    )


def test_ex1_accepts_a_fold_that_refuses_an_unknown_event() -> None:
    correct(check.ex1(evolve_strict))


def test_ex1_refuses_something_that_is_not_a_function() -> None:
    not_yet(check.ex1({"status": "new"}), "pass your function itself")


def test_ex1_passes_on_the_solution() -> None:
    correct(check.ex1(evolve))


# ---------------------------------------------------------------------- exercise 2


def cancel_stub(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get(order_id).cancel(reason)
        return uow.commit()


def cancel_retrying_the_save_only(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get(order_id).cancel(reason)
        for attempt in range(3):
            try:
                return uow.commit()
            except ConcurrencyError:
                if attempt == 2:
                    raise
    return None


def cancel_swallowing(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    try:
        return cancel_stub(store, bus, order_id, reason)
    except ConcurrencyError:
        return []


def cancel_retrying_everything(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    for _ in range(3):
        try:
            return cancel_stub(store, bus, order_id, reason)
        except Exception:
            continue
    return None


def cancel_with_retry(
    store: EventStore, bus: EventBus, order_id: str, reason: str, attempts: int = 3
) -> list[DispatchResult]:
    """The published solution."""
    for attempt in range(1, attempts + 1):
        try:
            with UnitOfWork(store, bus) as uow:
                uow.repository(Order).get(order_id).cancel(reason)
                return uow.commit()
        except ConcurrencyError:
            if attempt == attempts:
                raise
    return []


def test_ex2_fails_on_the_stub_because_the_conflict_escapes() -> None:
    not_yet(check.ex2(cancel_stub), "ConcurrencyError got out", "catch ConcurrencyError")


def test_ex2_fails_when_only_the_save_is_retried() -> None:
    not_yet(check.ex2(cancel_retrying_the_save_only), "saved 3 times", "loads the order again")


def test_ex2_fails_when_the_conflict_is_swallowed() -> None:
    not_yet(check.ex2(cancel_swallowing), "did not land", "do not swallow")


def test_ex2_fails_when_a_refusal_is_retried_and_hidden() -> None:
    not_yet(check.ex2(cancel_retrying_everything), "returned quietly", "DomainError")


def cancel_retrying_for_ever(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    while True:
        try:
            return cancel_stub(store, bus, order_id, reason)
        except ConcurrencyError:
            continue


def cancel_giving_up_quietly(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    for _ in range(3):
        try:
            return cancel_stub(store, bus, order_id, reason)
        except ConcurrencyError:
            continue
    return []


def cancel_giving_up_vaguely(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    for _ in range(3):
        try:
            return cancel_stub(store, bus, order_id, reason)
        except ConcurrencyError:
            pass
    raise RuntimeError("could not cancel")


def cancel_giving_up_with_a_clear_error(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    for attempt in range(5):
        try:
            return cancel_stub(store, bus, order_id, reason)
        except ConcurrencyError as error:
            if attempt == 4:
                raise RuntimeError(f"{order_id} still conflicts after 5 attempts") from error
    return None


def cancel_retrying_for_ever_catching_everything(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    while True:
        try:
            return cancel_stub(store, bus, order_id, reason)
        except ConcurrencyError:
            continue
        except Exception:  # a catch-all cannot swallow the check's stop signal
            continue


def cancel_retrying_in_the_same_unit_of_work(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    with UnitOfWork(store, bus) as uow:
        for attempt in range(3):
            uow.repository(Order).get(order_id).cancel(reason)
            try:
                return uow.commit()
            except ConcurrencyError:
                if attempt == 2:
                    raise
    return None


def cancel_without_committing(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get(order_id).cancel(reason)


def cancel_retrying_inside_the_block(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    """Right: a new unit of work per attempt, the try around the commit only."""
    for attempt in range(3):
        with UnitOfWork(store, bus) as uow:
            uow.repository(Order).get(order_id).cancel(reason)
            try:
                return uow.commit()
            except ConcurrencyError:
                if attempt == 2:
                    raise
    return None


def cancel_explaining_every_failure(
    store: EventStore, bus: EventBus, order_id: str, reason: str
) -> Any:
    """Right: every error the caller gets is raised from the one that caused it."""
    try:
        return cancel_with_retry(store, bus, order_id, reason)
    except Exception as error:
        raise RuntimeError(f"could not cancel {order_id}") from error


def cancel_hiding_the_refusal(store: EventStore, bus: EventBus, order_id: str, reason: str) -> Any:
    try:
        return cancel_with_retry(store, bus, order_id, reason)
    except ConcurrencyError:
        raise
    except Exception:
        raise RuntimeError(f"could not cancel {order_id}") from None


def test_ex2_fails_when_the_retry_reuses_the_unit_of_work_and_its_order() -> None:
    not_yet(
        check.ex2(cancel_retrying_in_the_same_unit_of_work),
        "cancelled the order it had already cancelled",
        "already cancelled",
        "reused the first attempt's unit of work",
        "new UnitOfWork",
    )


def test_ex2_fails_when_nothing_is_committed_saying_so() -> None:
    not_yet(check.ex2(cancel_without_committing), "saved nothing", "uow.commit()")


def test_ex2_accepts_the_try_around_the_commit_in_a_new_unit_of_work() -> None:
    correct(check.ex2(cancel_retrying_inside_the_block))


def test_ex2_accepts_errors_raised_from_the_refusal_and_the_conflict() -> None:
    correct(check.ex2(cancel_explaining_every_failure))


def test_ex2_fails_when_the_refusal_is_replaced_by_an_error_without_it() -> None:
    not_yet(
        check.ex2(cancel_hiding_the_refusal),
        "RuntimeError: could not cancel o-6",
        "does not carry the aggregate's refusal",
        "raise yours from it",
    )


def test_ex2_fails_when_the_retry_never_stops() -> None:
    not_yet(check.ex2(cancel_retrying_for_ever), "still retrying after 20 attempts", "stop after")


def test_ex2_stops_an_endless_loop_even_when_it_catches_every_exception() -> None:
    feedback = check.ex2(cancel_retrying_for_ever_catching_everything)
    not_yet(feedback, "still retrying after 20 attempts", "a refusal does not change")


def test_ex2_fails_when_it_gives_up_by_returning_quietly() -> None:
    not_yet(
        check.ex2(cancel_giving_up_quietly), "gave up after 3 attempts and returned []", "raise"
    )


def test_ex2_fails_when_it_gives_up_with_an_error_that_hides_the_conflict() -> None:
    not_yet(check.ex2(cancel_giving_up_vaguely), "RuntimeError: could not cancel", "re-raise")


def test_ex2_accepts_a_clear_error_raised_from_the_conflict() -> None:
    correct(check.ex2(cancel_giving_up_with_a_clear_error))


def test_ex2_passes_on_the_solution() -> None:
    feedback = check.ex2(cancel_with_retry)
    correct(feedback)
    assert "ends after 3 attempts with a ConcurrencyError" in repr(feedback)


def test_the_conflicting_store_never_lets_an_append_through() -> None:
    store = check.ConflictingStore()
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 3.0)], 0)
    store.ready = True
    for _ in range(3):
        with pytest.raises(ConcurrencyError):
            store.append("order-o-1", [OrderCancelled("o-1")], len(store.read("order-o-1")))
    assert store.version("order-o-1") == 1


def test_the_busy_store_really_conflicts_once() -> None:
    store = check.BusyStore()
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 3.0)], 0)
    first = store.read("order-o-1")
    with pytest.raises(ConcurrencyError):
        store.append("order-o-1", [OrderCancelled("o-1")], len(first))
    again = store.read("order-o-1")
    assert store.append("order-o-1", [OrderCancelled("o-1")], len(again)) == 3


# ---------------------------------------------------------------------- exercise 3


class StubProjection(Projection):
    def reset(self) -> None:
        super().reset()
        self.orders: dict[str, int] = {}


class CountsInInit(Projection):
    def __init__(self) -> None:
        self.orders: dict[str, int] = {}
        super().__init__()

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.orders[event.customer_id] = self.orders.get(event.customer_id, 0) + 1


class CountsEveryEvent(Projection):
    def reset(self) -> None:
        super().reset()
        self.orders: dict[str, int] = {}

    @applies(OrderCreated, OrderPaid)
    def _any(self, event: Any) -> None:
        customer = getattr(event, "customer_id", "c-7")
        self.orders[customer] = self.orders.get(customer, 0) + 1


class OrdersPerCustomer(Projection):
    """The published solution."""

    def reset(self) -> None:
        super().reset()
        self.orders: dict[str, int] = {}

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.orders[event.customer_id] = self.orders.get(event.customer_id, 0) + 1


def test_ex3_fails_on_the_stub_which_counts_nothing() -> None:
    not_yet(check.ex3(StubProjection), "orders is {}", "@applies(OrderCreated)")


def test_ex3_fails_when_the_read_model_is_kept_out_of_reset() -> None:
    not_yet(check.ex3(CountsInInit), "after rebuild()", "reset()")


def test_ex3_fails_when_other_events_are_counted() -> None:
    not_yet(check.ex3(CountsEveryEvent), "after catching up", "'c-7': 4")


class ResetWithoutSuper(Projection):
    def reset(self) -> None:
        self.orders: dict[str, int] = {}

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.orders[event.customer_id] = self.orders.get(event.customer_id, 0) + 1


class SharedCounts(Projection):
    orders: dict[str, int] = {}  # noqa: RUF012 - the mistake under test

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.orders[event.customer_id] = self.orders.get(event.customer_id, 0) + 1


class CountsByOrder(OrdersPerCustomer):
    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.orders[event.order_id] = 1


class CancelUndoesTheCount(OrdersPerCustomer):
    def reset(self) -> None:
        super().reset()
        self.owner: dict[str, str] = {}

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.owner[event.order_id] = event.customer_id
        super()._created(event)

    @applies(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.orders[self.owner[event.order_id]] -= 1


def test_ex3_says_a_reset_without_super_leaves_the_position() -> None:
    not_yet(
        check.ex3(ResetWithoutSuper),
        "rebuild() read no event",
        "left the position at 7",
        "super().reset()",
    )


def test_ex3_says_a_dict_in_the_class_body_is_shared() -> None:
    SharedCounts().catch_up(check._shop_store())  # as the notebook's cell does first
    not_yet(check.ex3(SharedCounts), "already has orders", "shares one dict", "inside reset()")


def test_ex3_says_counts_are_per_customer() -> None:
    not_yet(check.ex3(CountsByOrder), "'o-1': 1", "count per customer")


def test_ex3_says_a_cancel_does_not_undo_a_placed_order() -> None:
    not_yet(check.ex3(CancelUndoesTheCount), "'c-8': 0", "a placed order stays placed")


def test_ex3_refuses_an_instance_or_a_plain_class() -> None:
    not_yet(check.ex3(OrdersPerCustomer()), "pass your Projection class")
    not_yet(check.ex3(dict), "pass your Projection class")


def test_ex3_passes_on_the_solution() -> None:
    correct(check.ex3(OrdersPerCustomer))


# ---------------------------------------------------------------------- exercise 4


def upcast_stub(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def upcast_keeping_old_keys(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "customer_id": payload["customer"], "total": payload["total_cents"] / 100}


def upcast_in_cents(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": payload["order_id"],
        "customer_id": payload["customer"],
        "total": float(payload["total_cents"]),
        "items": [],
    }


def order_created_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """The published solution."""
    return {
        "order_id": payload["order_id"],
        "customer_id": payload["customer"],
        "total": payload["total_cents"] / 100,
        "items": [],
    }


def test_ex4_fails_on_the_stub_saying_which_fields_do_not_fit() -> None:
    not_yet(
        check.ex4(upcast_stub),
        "reading the old rows failed",
        "customer, total_cents",
        "today's shape",
    )


def test_ex4_fails_when_the_old_keys_stay() -> None:
    not_yet(check.ex4(upcast_keeping_old_keys), "does not have: customer", "take the old keys")


def test_ex4_fails_when_cents_are_read_as_euros() -> None:
    not_yet(check.ex4(upcast_in_cents), "total=4250.0", "total_cents / 100")


def test_ex4_says_what_the_upcaster_returned_without_suggesting_to_register_one() -> None:
    feedback = check.ex4(upcast_stub)
    not_yet(feedback, "your upcaster returned {'order_id': 'o-7', 'customer': 'c-1'")
    assert "register an upcaster" not in repr(feedback)


def upcast_to_one_order(payload: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": "o-7", "customer_id": "c-1", "total": 42.5, "items": []}


def upcast_to_an_event(payload: dict[str, Any]) -> Any:
    return OrderCreated(payload["order_id"], payload["customer"], payload["total_cents"] / 100)


def upcast_forgetting_to_return(payload: dict[str, Any]) -> None:
    {**payload, "customer_id": payload["customer"]}


def upcast_total_as_text(payload: dict[str, Any]) -> dict[str, Any]:
    return {**order_created_v1_to_v2(payload), "total": str(payload["total_cents"] / 100)}


def upcast_without_items(payload: dict[str, Any]) -> dict[str, Any]:
    """Right: OrderCreated's items has a default, the empty tuple."""
    return {k: v for k, v in order_created_v1_to_v2(payload).items() if k != "items"}


def test_ex4_names_the_field_that_did_not_come_from_the_payload() -> None:
    not_yet(check.ex4(upcast_to_one_order), "order_id='o-7'", "o-8's order_id is wrong")


def test_ex4_says_an_event_object_is_not_a_payload() -> None:
    not_yet(check.ex4(upcast_to_an_event), "instead of a dict", "not an event object")


def test_ex4_says_a_missing_return() -> None:
    not_yet(check.ex4(upcast_forgetting_to_return), "NoneType None", "returns nothing")


def test_ex4_says_the_total_is_a_number() -> None:
    not_yet(check.ex4(upcast_total_as_text), "should be a number", "a number of euros")


def test_ex4_accepts_leaving_items_to_its_default() -> None:
    correct(check.ex4(upcast_without_items))


def test_ex4_passes_on_the_solution() -> None:
    correct(check.ex4(order_created_v1_to_v2))


# ---------------------------------------------------------------------- exercise 5


class ArrivalStub(check.ArrivingRevenue):
    def receive(self, stored: StoredEvent) -> None:
        self.apply(stored.event)


class DropsDuplicatesOnly(check.ArrivingRevenue):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def receive(self, stored: StoredEvent) -> None:
        if stored.position not in self.seen:
            self.seen.add(stored.position)
            self.apply(stored.event)


class KeepsEarlyButDrainsOne(check.ArrivingRevenue):
    """Wrong: applies at most one kept event when the gap fills."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, int] = {}
        self.waiting: dict[str, dict[int, object]] = {}

    def receive(self, stored: StoredEvent) -> None:
        done = self.applied.get(stored.stream_id, 0)
        if stored.version <= done:
            return
        waiting = self.waiting.setdefault(stored.stream_id, {})
        if stored.version != done + 1:
            waiting[stored.version] = stored.event
            return
        self.apply(stored.event)
        done += 1
        if done + 1 in waiting:
            done += 1
            self.apply(waiting.pop(done))
        self.applied[stored.stream_id] = done


class WaitsForTheGlobalPosition(check.ArrivingRevenue):
    """Wrong: waits for the next global position, so one late order holds up all."""

    def __init__(self) -> None:
        super().__init__()
        self.position = 0
        self.waiting: dict[int, object] = {}

    def receive(self, stored: StoredEvent) -> None:
        if stored.position <= self.position:
            return
        self.waiting[stored.position] = stored.event
        while self.position + 1 in self.waiting:
            self.position += 1
            self.apply(self.waiting.pop(self.position))


class InOrderRevenue(check.ArrivingRevenue):
    """The published solution."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, int] = {}
        self.waiting: dict[str, dict[int, object]] = {}

    def receive(self, stored: StoredEvent) -> None:
        done = self.applied.get(stored.stream_id, 0)
        if stored.version <= done:
            return
        waiting = self.waiting.setdefault(stored.stream_id, {})
        waiting[stored.version] = stored.event
        while done + 1 in waiting:
            done += 1
            self.apply(waiting.pop(done))
        self.applied[stored.stream_id] = done


def test_ex5_fails_on_the_stub_which_counts_duplicates() -> None:
    not_yet(check.ex5(ArrivalStub), "each event twice", "'c-7': 30.0", "duplicate")


def test_ex5_fails_when_duplicates_are_dropped_but_early_events_applied() -> None:
    not_yet(check.ex5(DropsDuplicatesOnly), "payment before its creation", "'unknown'", "keep an")


def test_ex5_fails_when_only_one_kept_event_is_applied_after_a_gap() -> None:
    not_yet(check.ex5(KeepsEarlyButDrainsOne), "cancel, then its payment", "while loop")


class HoldsOnlyUntilCreated(check.ArrivingRevenue):
    """Wrong: once an order is known, applies its events as they come, versions unchecked."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()
        self.held: dict[str, list[StoredEvent]] = {}

    def receive(self, stored: StoredEvent) -> None:
        if stored.position in self.seen:
            return
        self.seen.add(stored.position)
        event = stored.event
        if not isinstance(event, OrderCreated) and event.order_id not in self.customer_of:
            self.held.setdefault(event.order_id, []).append(stored)
            return
        self.apply(event)
        if isinstance(event, OrderCreated):
            for held in sorted(self.held.pop(event.order_id, []), key=lambda s: s.version):
                self.apply(held.event)


def test_ex5_says_a_known_order_still_waits_for_its_next_version() -> None:
    not_yet(check.ex5(HoldsOnlyUntilCreated), "shuffled", "its stream's next", "while loop")


def test_ex5_fails_when_it_waits_for_the_global_position() -> None:
    not_yet(check.ex5(WaitsForTheGlobalPosition), "still on its way", "per stream")


def test_ex5_refuses_what_is_not_a_subclass_of_arriving_revenue() -> None:
    not_yet(check.ex5(InOrderRevenue()), "pass your class")
    not_yet(check.ex5(dict), "pass your class")


def test_ex5_passes_on_the_solution() -> None:
    correct(check.ex5(InOrderRevenue))


def test_the_arriving_revenue_applies_like_revenue_per_customer() -> None:
    store = check._arrivals_store()
    projection = RevenuePerCustomer()
    projection.catch_up(store)
    assert check._in_order(list(store.read_all())) == projection.revenue


def test_feedback_is_the_same_on_every_run() -> None:
    assert repr(check.ex4(upcast_stub)) == repr(check.ex4(upcast_stub))
    assert repr(check.ex2(cancel_stub)) == repr(check.ex2(cancel_stub))
    assert repr(check.ex5(ArrivalStub)) == repr(check.ex5(ArrivalStub))
