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
    ReleaseStock,
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


def walk_stopping_at_the_unexpected(machine: StateMachine, event_names: list[str]) -> list[str]:
    states = [machine.initial]
    for name in event_names:
        transition = machine.transition(states[-1], name)
        if transition is None:
            break  # the mistake: the walk ends instead of passing over
        states.append(transition.target)
    return states


def walk_repeating_the_state(machine: StateMachine, event_names: list[str]) -> list[str]:
    states = [machine.initial]
    for name in event_names:
        transition = machine.transition(states[-1], name)
        states.append(transition.target if transition else states[-1])
    return states


def walk_from_a_state_never_updated(machine: StateMachine, event_names: list[str]) -> list[str]:
    state = machine.initial
    states = [state]
    for name in event_names:
        transition = machine.transition(state, name)  # always from the start
        if transition is not None:
            states.append(transition.target)
    return states


def walk_refusing_the_unexpected(machine: StateMachine, event_names: list[str]) -> list[str]:
    states = [machine.initial]
    for name in event_names:
        transition = machine.transition(states[-1], name)
        if transition is None:
            raise ValueError(f"{name} was not expected")
        states.append(transition.target)
    return states


def walk_listing_transitions(machine: StateMachine, event_names: list[str]) -> list[object]:
    states: list[object] = [machine.initial]
    for name in event_names:
        transition = machine.transition(str(states[-1]), name)
        if transition is not None:
            states.append(transition)
    return states


def test_ex1_fails_when_the_walk_stops_at_an_unexpected_event() -> None:
    not_yet(check.ex1(walk_stopping_at_the_unexpected), "OrderShipped", "do not stop")


def test_ex1_fails_when_a_passed_over_event_repeats_the_state() -> None:
    not_yet(
        check.ex1(walk_repeating_the_state),
        "'awaiting payment', 'awaiting payment'",
        "adds nothing to the list",
    )


def test_ex1_fails_when_every_name_is_looked_up_from_the_start() -> None:
    not_yet(check.ex1(walk_from_a_state_never_updated), "['new', 'awaiting stock']", "states[-1]")


def test_ex1_fails_when_an_unexpected_event_raises_and_names_it() -> None:
    not_yet(
        check.ex1(walk_refusing_the_unexpected),
        "raised ValueError: OrderShipped was not expected",
        "(OrderShipped is not expected in 'awaiting payment')",
        "with no error",
    )


def test_ex1_fails_when_transitions_are_listed_instead_of_states() -> None:
    not_yet(check.ex1(walk_listing_transitions), "(a Transition)", "transition.target")


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


def add_cancelling_directly(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> None:
        released = shop.warehouse.release(event.order_id, event.reason)
        shop.cancel_order(released)  # calls the order's handler instead of publishing


def add_returning_and_dispatching(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> StockReleased:
        released = shop.warehouse.release(event.order_id, event.reason)
        shop.bus.dispatch(released)
        return released  # published a second time


def add_two_handlers(shop: ChoreographedFulfilment) -> None:
    for _ in range(2):
        shop.bus.register(PaymentFailed, lambda e: shop.warehouse.release(e.order_id, e.reason))


def add_without_the_reason(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> StockReleased:
        return shop.warehouse.release(event.order_id)


def add_with_a_reason_of_its_own(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> StockReleased:
        shop.warehouse.release(event.order_id)
        return StockReleased(event.order_id, "payment failed")


def add_sending_a_command(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> ReleaseStock:
        return ReleaseStock(event.order_id, event.reason)


def add_releasing_on_every_event(shop: ChoreographedFulfilment) -> None:
    @shop.bus.subscribe
    def release_stock(event: object) -> StockReleased | None:
        if isinstance(event, StockReleased):
            return None
        return shop.warehouse.release(getattr(event, "order_id", ""), "")


def add_dispatching(shop: ChoreographedFulfilment) -> None:
    """A right variant: dispatched from a handler, the event joins the same cascade."""

    @shop.bus.subscribe
    def release_stock(event: PaymentFailed) -> None:
        shop.bus.dispatch(shop.warehouse.release(event.order_id, event.reason))


def test_ex2_fails_when_the_order_is_cancelled_without_publishing_stock_released() -> None:
    not_yet(
        check.ex2(add_cancelling_directly),
        "no StockReleased was published",
        "each other's events, not each other",
    )


def test_ex2_fails_when_stock_released_is_published_twice() -> None:
    not_yet(check.ex2(add_returning_and_dispatching), "published 2 times", "not both")


def test_ex2_fails_when_two_handlers_release_the_stock() -> None:
    not_yet(check.ex2(add_two_handlers), "published 2 times", "register one handler")


def test_ex2_fails_when_the_reason_is_not_passed_on() -> None:
    not_yet(
        check.ex2(add_without_the_reason),
        "cancelled with the reason ''",
        "'card declined for order o-1'",
        "event.reason",
    )


def test_ex2_fails_when_the_reason_is_made_up() -> None:
    not_yet(check.ex2(add_with_a_reason_of_its_own), "the reason 'payment failed'")


def test_ex2_fails_when_the_handler_sends_a_command_nobody_carries_out() -> None:
    not_yet(
        check.ex2(add_sending_a_command),
        "sent the command ReleaseStock",
        "nobody carries it out",
        "nobody gives orders",
    )


def test_ex2_fails_when_the_stock_is_released_on_every_event() -> None:
    not_yet(check.ex2(add_releasing_on_every_event))


def test_ex2_passes_when_the_event_is_dispatched_instead_of_returned() -> None:
    correct(check.ex2(add_dispatching))


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


def _saga(store: EventStore, order_id: str) -> FulfilmentSaga:
    stream = store.read(FulfilmentSaga.stream_for(order_id))
    return FulfilmentSaga.from_events(stored.event for stored in stream)


def compensations_left(store: EventStore, order_id: str) -> list[str]:
    return [t.source for t in _saga(store, order_id).path if t.compensating]


def compensations_as_triggers(store: EventStore, order_id: str) -> list[str]:
    return [t.trigger for t in _saga(store, order_id).path if t.compensating]


def compensations_as_commands(store: EventStore, order_id: str) -> list[str]:
    return [t.sends for t in _saga(store, order_id).path if t.compensating]


def compensating_transitions(store: EventStore, order_id: str) -> list[object]:
    return [t for t in _saga(store, order_id).path if t.compensating]


def every_cancelling_state(store: EventStore, order_id: str) -> list[str]:
    undoing = {"releasing stock", "cancelling"}
    return [t.target for t in _saga(store, order_id).path if t.target in undoing]


def the_final_state(store: EventStore, order_id: str) -> str:
    return _saga(store, order_id).state


def compensations_as_a_set(store: EventStore, order_id: str) -> set[str]:
    return {t.target for t in _saga(store, order_id).path if t.compensating}


def test_ex3_fails_when_the_states_left_are_listed() -> None:
    not_yet(check.ex3(compensations_left), "['awaiting payment', 'releasing stock']", "t.source")


def test_ex3_fails_when_the_triggers_are_listed() -> None:
    not_yet(check.ex3(compensations_as_triggers), "['PaymentFailed', 'StockReleased']", "t.trigger")


def test_ex3_fails_when_the_commands_are_listed() -> None:
    not_yet(check.ex3(compensations_as_commands), "['ReleaseStock', 'CancelOrder']", "t.sends")


def test_ex3_fails_when_the_transitions_themselves_are_returned() -> None:
    not_yet(check.ex3(compensating_transitions), "Transition(", "not the transitions")


def test_ex3_fails_when_a_cancellation_that_undoes_nothing_is_counted() -> None:
    not_yet(
        check.ex3(every_cancelling_state),
        "o-3, which was out of stock",
        "['cancelling']",
        "undoes nothing",
    )


def test_ex3_fails_when_one_state_is_returned_instead_of_a_list() -> None:
    not_yet(check.ex3(the_final_state), "'shipped' (a str), not a list")


def test_ex3_fails_when_a_set_loses_the_order() -> None:
    not_yet(check.ex3(compensations_as_a_set), "set() (a set), not a list", "a set has no order")


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


def on_deadline_as_a_list(machine: StateMachine, state: str, attempts: int) -> list[str] | None:
    decided = on_deadline(machine, state, attempts)
    return None if decided is None else list(decided)


def on_deadline_flagging_with_none(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str | None] | None:
    decided = on_deadline(machine, state, attempts)
    return ("flag", None) if decided == ("flag", "") else decided


def on_deadline_deciding_only(machine: StateMachine, state: str, attempts: int) -> str | None:
    decided = on_deadline(machine, state, attempts)
    return None if decided is None else decided[0]


def on_deadline_returning_none_for_a_flag(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    decided = on_deadline(machine, state, attempts)
    return None if decided == ("flag", "") else decided


def on_deadline_reading_fulfilment(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    return on_deadline(check.FULFILMENT, state, attempts)  # whatever machine it is given


def on_deadline_with_fulfilments_commands(
    machine: StateMachine, state: str, attempts: int
) -> tuple[str, str] | None:
    deadline = machine.deadline(state)
    if deadline is None:
        return None
    if attempts <= deadline.retries:
        into = [t for t in check.FULFILMENT.transitions if t.target == state and t.sends]
        return ("retry", into[0].sends)  # IndexError on any other machine
    if deadline.gives_up_as:
        return ("give up", deadline.gives_up_as)
    return ("flag", "")


def test_ex4_fails_on_a_list_and_says_it_returns_a_tuple() -> None:
    feedback = check.ex4(on_deadline_as_a_list)
    not_yet(feedback, "['retry', 'ChargePayment'] (a list)", "a tuple of two strings")
    assert "attempts counts" not in feedback.hint


def test_ex4_fails_on_a_flag_with_none_and_says_the_name_is_a_string() -> None:
    not_yet(check.ex4(on_deadline_flagging_with_none), "('flag', None)", "'' for a flag")


def test_ex4_fails_on_a_bare_decision() -> None:
    not_yet(check.ex4(on_deadline_deciding_only), "gave 'retry' (a str)", "(what to do, a name)")


def test_ex4_fails_on_none_where_the_state_waits_and_shows_its_deadline() -> None:
    not_yet(
        check.ex4(on_deadline_returning_none_for_a_flag),
        "'awaiting shipment', attempts=2",
        "gave None",
        "Deadline(seconds=120, retries=1, gives_up_as='')",
    )


def test_ex4_fails_on_an_answer_that_reads_fulfilment_whatever_machine_it_gets() -> None:
    not_yet(
        check.ex4(on_deadline_reading_fulfilment),
        "'trip booking'",
        "every case of FULFILMENT passed",
    )


def test_ex4_fails_on_an_error_naming_the_call_that_raised() -> None:
    not_yet(
        check.ex4(on_deadline_with_fulfilments_commands),
        "on_deadline('trip booking', 'charging', attempts=1)",
        "raised IndexError",
        "nothing from FULFILMENT",
    )


def test_ex4_passes_on_the_solution() -> None:
    correct(check.ex4(on_deadline))
