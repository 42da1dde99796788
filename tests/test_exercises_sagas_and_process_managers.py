"""The checks of notebook 10's exercises: each fails on the notebook's starting point and on
plausible wrong answers, saying what is wrong, and passes on the published solution."""

from __future__ import annotations

import pytest
from feedback import correct, not_yet

from eda_lesson.book.exercises import sagas_and_process_managers as check
from eda_lesson.patterns.saga import StateMachine
from eda_lesson.patterns.store import EventStore
from eda_lesson.shop.fulfilment import (
    ChoreographedFulfilment,
    FulfilmentSaga,
    PaymentFailed,
    StockReleased,
)

pytestmark = pytest.mark.filterwarnings("error")


# ---------------------------------------------------------------------- exercise 1


def walk_stub(machine: StateMachine, event_names: list[str]) -> list[str]:
    return [machine.initial]


def walk_by_trigger_alone(machine: StateMachine, event_names: list[str]) -> list[str]:
    states = [machine.initial]
    for name in event_names:
        for transition in machine.transitions:
            if transition.trigger == name:
                states.append(transition.target)
                break
    return states


def walk_without_passing_over(machine: StateMachine, event_names: list[str]) -> list[str]:
    states = [machine.initial]
    for name in event_names:
        transition = machine.transition(states[-1], name)
        states.append(transition.target)  # type: ignore[union-attr]  # the mistake
    return states


def walk_without_the_start(machine: StateMachine, event_names: list[str]) -> list[str]:
    return walk(machine, event_names)[1:]


def walk(machine: StateMachine, event_names: list[str]) -> list[str]:
    """The published solution."""
    states = [machine.initial]
    for name in event_names:
        transition = machine.transition(states[-1], name)
        if transition is not None:
            states.append(transition.target)
    return states


def test_ex1_fails_on_the_stub_which_never_moves() -> None:
    not_yet(check.ex1(walk_stub), "OrderCreated, StockReserved", "machine.transition")


def test_ex1_fails_when_a_trigger_is_followed_from_any_state() -> None:
    not_yet(check.ex1(walk_by_trigger_alone), "OrderShipped", "*current* state")


def test_ex1_fails_when_unexpected_events_are_not_passed_over() -> None:
    not_yet(check.ex1(walk_without_passing_over), "AttributeError", "pass over that event")


def test_ex1_fails_without_the_initial_state() -> None:
    not_yet(check.ex1(walk_without_the_start), "start the list with machine.initial")


def test_ex1_passes_on_the_solution() -> None:
    correct(check.ex1(walk))


# ---------------------------------------------------------------------- exercise 2


def add_stub(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> None:
        pass


def add_releasing_silently(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> None:
        shop.warehouse.release(event.order_id, event.reason)


def add_announcing_only(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> StockReleased:
        return StockReleased(event.order_id, event.reason)


def add_nothing(shop: ChoreographedFulfilment) -> None:
    def release_stock(event: PaymentFailed) -> StockReleased:
        return shop.warehouse.release(event.order_id, event.reason)


def add_compensation(shop: ChoreographedFulfilment) -> None:
    """The published solution."""

    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> StockReleased:
        return shop.warehouse.release(event.order_id, event.reason)


def test_ex2_fails_on_the_stub_because_the_book_stays_reserved() -> None:
    not_yet(check.ex2(add_stub), "shelf holds {'book': 1}", "shop.warehouse.release")


def test_ex2_fails_when_the_release_is_not_announced() -> None:
    not_yet(check.ex2(add_releasing_silently), "still 'created'", "return the StockReleased")


def test_ex2_fails_when_the_event_is_announced_but_nothing_released() -> None:
    not_yet(check.ex2(add_announcing_only), "shelf holds {'book': 1}")


def test_ex2_fails_when_the_handler_is_never_registered() -> None:
    not_yet(check.ex2(add_nothing), "nobody on shop.bus listens to PaymentFailed")


def test_ex2_passes_on_the_solution() -> None:
    correct(check.ex2(add_compensation))


# ---------------------------------------------------------------------- exercise 3


def compensations_stub(store: EventStore, order_id: str) -> list[str]:
    return []


def every_state(store: EventStore, order_id: str) -> list[str]:
    stream = store.read(FulfilmentSaga.stream_for(order_id))
    saga = FulfilmentSaga.from_events(stored.event for stored in stream)
    return [transition.target for transition in saga.path]


def from_the_order_stream(store: EventStore, order_id: str) -> list[str]:
    stream = store.read(f"order-{order_id}")
    return [stored.type_name for stored in stream if stored.type_name == "OrderCancelled"]


def compensations(store: EventStore, order_id: str) -> list[str]:
    """The published solution."""
    stream = store.read(FulfilmentSaga.stream_for(order_id))
    saga = FulfilmentSaga.from_events(stored.event for stored in stream)
    return [t.target for t in saga.path if t.compensating]


def test_ex3_fails_on_the_stub_naming_the_declined_order() -> None:
    not_yet(check.ex3(compensations_stub), "o-2", "payment declined", "FulfilmentSaga.from_events")


def test_ex3_fails_when_every_transition_is_listed() -> None:
    not_yet(check.ex3(every_state), "o-1", "t.compensating")


def test_ex3_fails_when_the_order_stream_is_read_instead() -> None:
    not_yet(check.ex3(from_the_order_stream), "o-2", "['OrderCancelled']")


def test_ex3_passes_on_the_solution() -> None:
    correct(check.ex3(compensations))


# ---------------------------------------------------------------------- exercise 4


def _command_into(machine: StateMachine, state: str) -> str:
    return next(t.sends for t in machine.transitions if t.target == state and t.sends)


def on_deadline(machine: StateMachine, state: str, attempts: int) -> tuple[str, str] | None:
    deadline = machine.deadline(state)
    if deadline is None:
        return None
    if attempts <= deadline.retries:
        return ("retry", _command_into(machine, state))
    if deadline.gives_up_as:
        return ("give up", deadline.gives_up_as)
    return ("flag", "")


def on_deadline_stub(machine: StateMachine, state: str, attempts: int) -> None:
    return None


def on_deadline_off_by_one(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    deadline = machine.deadline(state)
    if deadline is None:
        return None
    if attempts < deadline.retries:  # forgets that the first send counts too
        return ("retry", _command_into(machine, state))
    if deadline.gives_up_as:
        return ("give up", deadline.gives_up_as)
    return ("flag", "")


def on_deadline_resending_the_next_command(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    deadline = machine.deadline(state)
    if deadline is None:
        return None
    if attempts <= deadline.retries:
        out = [t.sends for t in machine.transitions if t.source == state and t.sends]
        return ("retry", out[0] if out else "")
    if deadline.gives_up_as:
        return ("give up", deadline.gives_up_as)
    return ("flag", "")


def on_deadline_always_compensating(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    deadline = machine.deadline(state)
    if deadline is None:
        return None
    if attempts <= deadline.retries:
        return ("retry", _command_into(machine, state))
    return ("give up", deadline.gives_up_as)  # even after the pivot


def on_deadline_retrying_for_ever(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    if machine.deadline(state) is None:
        return None
    return ("retry", _command_into(machine, state))


def on_deadline_knowing_only_fulfilment(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    return (
        on_deadline(machine, state, attempts)
        if (machine.name == "order fulfilment")
        else ("retry", "")
    )


def test_ex4_fails_on_the_stub_with_a_nudge_not_the_answer() -> None:
    feedback = check.ex4(on_deadline_stub)
    not_yet(feedback, "gave None", "('retry', 'ChargePayment')")
    assert "Hint:" not in repr(feedback)


def test_ex4_fails_on_the_off_by_one_and_says_the_first_send_counts() -> None:
    not_yet(check.ex4(on_deadline_off_by_one), "the second try", "first one included")


def test_ex4_fails_when_it_resends_the_command_out_of_the_state() -> None:
    not_yet(check.ex4(on_deadline_resending_the_next_command), "'ChargePayment'", "INTO")


def test_ex4_fails_when_it_compensates_after_the_pivot() -> None:
    not_yet(check.ex4(on_deadline_always_compensating), "after the pivot", "('flag', '')")


def test_ex4_fails_when_it_retries_for_ever() -> None:
    not_yet(check.ex4(on_deadline_retrying_for_ever), "the tries used up", "1 + retries")


def test_ex4_fails_on_an_answer_that_knows_only_the_fulfilment_machine() -> None:
    not_yet(check.ex4(on_deadline_knowing_only_fulfilment), "trip booking")


def test_ex4_passes_on_the_solution() -> None:
    correct(check.ex4(on_deadline))
