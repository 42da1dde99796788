"""Checks for the exercises of notebook 10 (sagas and process managers): walk a process's state
machine over a stream of events, give a choreographed shop its compensation, read from the
event store which compensating steps a saga took, and (stretch) decide what a saga does when
an answer is late.

Each check runs the learner's code against real objects: the shop's
:data:`~eda_lesson.shop.fulfilment.FULFILMENT` machine (and a second machine the learner has
not seen), real fulfilment runs in a choreographed or orchestrated shop, a real SQLite store
holding the saga's events. In exercises 1 and 4 an error the learner's code raises is
reported with the case that raised it; an answer of the wrong shape (a tuple for a list,
transitions for state names) is named as such before its value is compared. Nothing the
learner's code prints reaches the notebook's output.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable
from typing import Any, NoReturn

from eda_lesson.book.exercises import RequirementNotMetError, exercise, expect
from eda_lesson.core.messages import Command
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    ChoreographedFulfilment,
    FulfilmentSaga,
    OrchestratedFulfilment,
    PaymentFailed,
    StockReleased,
    fulfilment_registry,
)

__all__ = ["BOOKING", "RETURNS", "ex1", "ex2", "ex3", "ex4"]

BOOK = (LineItem("book", 1),)

RETURNS = StateMachine(
    name="parcel return",
    initial="requested",
    transitions=(
        Transition("requested", "ReturnApproved", "awaiting parcel", sends="SendLabel"),
        Transition("requested", "ReturnRefused", "closed"),
        Transition("awaiting parcel", "ParcelReceived", "refunding", sends="Refund"),
        Transition("refunding", "RefundPaid", "closed"),
    ),
)
"""A second, smaller process the checks walk too, so an answer cannot know FULFILMENT by heart."""


def _quietly(function: Callable[..., Any], *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


# ---------------------------------------------------------------------- exercise 1

_WALKS: list[tuple[StateMachine, list[str], list[str]]] = [
    (FULFILMENT, [], ["new"]),
    (
        FULFILMENT,
        ["OrderCreated", "StockReserved", "OrderPaid", "OrderShipped"],
        ["new", "awaiting stock", "awaiting payment", "awaiting shipment", "shipped"],
    ),
    (
        FULFILMENT,
        ["OrderCreated", "StockReserved", "OrderShipped", "PaymentFailed", "StockReleased"],
        ["new", "awaiting stock", "awaiting payment", "releasing stock", "cancelling"],
    ),
    (
        FULFILMENT,
        ["OrderCreated", "StockReleased", "NewsletterSent", "StockReservationFailed"],
        ["new", "awaiting stock", "cancelling"],
    ),
    (
        RETURNS,
        ["ReturnApproved", "ReturnRefused", "ParcelReceived", "RefundPaid"],
        ["requested", "awaiting parcel", "refunding", "closed"],
    ),
]


@exercise("Exercise 1: walk the state machine")
def ex1(walk: object) -> str:
    """``walk(machine, event_names) -> list[str]``: the states the process passes through,
    from ``machine.initial``, passing over events not expected in the current state."""
    expect(
        callable(walk), f"pass your function itself, got {describe_value(walk)}", "check.ex1(walk)"
    )
    assert callable(walk)
    for machine, names, wanted in _WALKS:
        told = ", ".join(names) or "no events"
        try:
            got = _quietly(walk, machine, list(names))
        except Exception as error:  # the learner's code raised: explain it, do not crash
            _refuse_an_error_on_the_unexpected(machine, names, told, error)
        expect(
            isinstance(got, list),
            f"walk({machine.name!r}, [{told}]) returned {describe_value(got)}, not a list",
            "return the list of states, starting with machine.initial",
        )
        not_names = [state for state in got if not isinstance(state, str)]
        expect(
            not not_names,
            f"walking {machine.name!r} over [{told}], your list holds "
            f"{describe_value(not_names[0]) if not_names else ''}; it lists states by name",
            "a transition is not a state: append transition.target, the name of the state "
            "it leads to",
        )
        expect(
            got == wanted,
            f"walking {machine.name!r} over [{told}] gave {got}; it should give {wanted}",
            _walk_hint(got, wanted),
        )
    return "it follows the machine, from the state it is in, and passes over the unexpected"


def _refuse_an_error_on_the_unexpected(
    machine: StateMachine, names: list[str], told: str, error: Exception
) -> NoReturn:
    """Stop the check: the walk raised, most likely on an event its state does not expect."""
    state, unexpected = machine.initial, ""
    for name in names:  # the first event the right walk passes over
        transition = machine.transition(state, name)
        if transition is None:
            unexpected = name
            break
        state = transition.target
    where = f" ({unexpected} is not expected in {state!r})" if unexpected else ""
    raise RequirementNotMetError(
        f"walking {machine.name!r} over [{told}] raised {type(error).__name__}: {error}{where}",
        "machine.transition(state, name) is None when the event is not expected in that "
        "state: pass over that event and keep the state, with no error (messages come twice "
        "or late, and a process manager must live with it)",
    )


def _walk_hint(got: list[object], wanted: list[str]) -> str:
    if not got or got[0] != wanted[0]:
        return "start the list with machine.initial"
    if any(state == following for state, following in itertools.pairwise(got)):
        return (
            "passing over an event adds nothing to the list: it holds each state the "
            "process moved into, once per move"
        )
    if 1 < len(got) < len(wanted) and got == wanted[: len(got)]:  # moved, then stopped
        return (
            "keep walking after an event the state does not expect (pass over it, do not "
            "stop), and look each name up from the state you are in now, states[-1], which "
            "changes with every move"
        )
    if len(got) < len(wanted):
        return "for each event name: t = machine.transition(state, name); if t, move to t.target"
    return (
        "look for a transition out of the *current* state only (machine.transition(state, "
        "name)); when there is none, the event is passed over and the state stays"
    )


# ---------------------------------------------------------------------- exercise 2


def _choreographed_without_compensation() -> ChoreographedFulfilment:
    shop = ChoreographedFulfilment(stock={"book": 2})
    shop.bus.unregister(PaymentFailed, shop.release_stock)
    return shop


@exercise("Exercise 2: compensation in a choreography")
def ex2(add_compensation: object) -> str:
    """``add_compensation(shop)``: register, on ``shop.bus``, a handler that releases the stock
    when a payment fails and publishes the StockReleased event, once."""
    expect(
        callable(add_compensation),
        f"pass your function itself, got {describe_value(add_compensation)}",
        "check.ex2(add_compensation)",
    )
    assert callable(add_compensation)
    shop = _choreographed_without_compensation()
    _quietly(add_compensation, shop)
    expect(
        shop.bus.handlers_for(PaymentFailed),
        "after add_compensation(shop), nobody on shop.bus listens to PaymentFailed",
        "register your handler on the shop's bus: @shop.bus.subscribe over "
        "def release_stock(event: PaymentFailed)",
    )
    shop.payments.declined.add("o-1")
    result = _quietly(shop.place_order, "o-1", "c-7", BOOK, 12.0)
    _refuse_a_command_nobody_carries_out(result)
    expect(
        result.ok,
        f"a handler failed during the run: {_first_failure(result)}",
        "run your handler on its own: release with shop.warehouse.release(event.order_id, ...)",
    )
    shelf = shop.warehouse.inventory.stock
    order = shop.order("o-1")
    expect(
        shelf == {"book": 2} and not shop.warehouse.inventory.reserved,
        f"after the payment failed the shelf holds {shelf}; the reserved book should be back",
        "call shop.warehouse.release(event.order_id, event.reason): it puts the items back",
    )
    released = [r for r in result.events if isinstance(r.event, StockReleased)]
    expect(
        released or order.status != "cancelled",
        "the book is back and the order cancelled, but no StockReleased was published: your "
        "handler cancelled the order itself",
        "in a choreography the participants know each other's events, not each other: publish "
        "the StockReleased that shop.warehouse.release(...) gives you (return it), and the "
        "order's handler, which listens to StockReleased, cancels the order",
    )
    expect(
        released,
        f"the stock is back, but the order is still {order.status!r}",
        "return the StockReleased that shop.warehouse.release(...) gives you: the order's "
        "handler listens to StockReleased and cancels the order",
    )
    expect(
        len(released) == 1,
        f"StockReleased was published {len(released)} times for one failed payment, so the "
        f"order's handler heard it {len(released)} times",
        "publish it once: return it, or dispatch it, not both (and register one handler)",
    )
    cancelled_for = order.cancel_reason
    declined = "card declined for order o-1"
    expect(
        cancelled_for == declined,
        f"the order was cancelled with the reason {cancelled_for!r}; the gateway said: "
        + repr(declined),
        "pass the failure's reason on: shop.warehouse.release(event.order_id, event.reason), so "
        "the order says why it was cancelled",
    )
    happy = _choreographed_without_compensation()
    _quietly(add_compensation, happy)
    _quietly(happy.place_order, "o-2", "c-7", BOOK, 12.0)
    expect(
        happy.order("o-2").status == "shipped" and happy.warehouse.inventory.stock == {"book": 1},
        "when the payment goes through, the order should ship and the book stay sold",
        "release only in the handler for PaymentFailed",
    )
    return "a failed payment puts the book back and cancels the order; a paid one still ships"


def _refuse_a_command_nobody_carries_out(result: DispatchResult) -> None:
    """Stop the check if the learner's handler sent a command: nobody in a choreography
    carries commands out, so the bus refused it."""
    commands = [type(r.event).__name__ for r in result.events if isinstance(r.event, Command)]
    expect(
        not commands,
        f"your handler sent the command {commands[0] if commands else ''}, and in this "
        "choreographed shop nobody carries it out (the bus refused it: a command needs its "
        "one handler)",
        "in a choreography nobody gives orders: the participant does the work itself. Call "
        "shop.warehouse.release(event.order_id, event.reason) and return the event it gives",
    )


def _first_failure(result: Any) -> str:
    failures = result.failures
    if not failures:
        return "none"
    call = failures[0]
    return f"{call.name} raised {type(call.error).__name__}: {call.error}"


# ---------------------------------------------------------------------- exercise 3


def _runs(path: str) -> SQLiteEventStore:
    store = SQLiteEventStore(path, fulfilment_registry())
    shop = OrchestratedFulfilment(stock={"book": 2}, store=store)
    shop.payments.declined.add("o-2")
    for order_id in ("o-1", "o-2"):
        shop.place_order(order_id, "c-7", BOOK, 12.0)
    empty = OrchestratedFulfilment(stock={"book": 0}, store=store)
    empty.place_order("o-3", "c-8", BOOK, 12.0)
    return store


@exercise("Exercise 3: the saga's story, from the store")
def ex3(compensations: object) -> str:
    """``compensations(store, order_id) -> list[str]``: the states the order's saga entered
    by compensating transitions, read from the saga's own events in ``store``."""
    import tempfile
    from pathlib import Path

    expect(
        callable(compensations),
        f"pass your function itself, got {describe_value(compensations)}",
        "check.ex3(compensations)",
    )
    assert callable(compensations)
    story = {"o-1": "was shipped", "o-2": "had its payment declined", "o-3": "was out of stock"}
    with tempfile.TemporaryDirectory() as folder, _runs(str(Path(folder) / "shop.db")) as store:
        got = {order_id: _quietly(compensations, store, order_id) for order_id in story}
        paths = {order_id: _saga_path(store, order_id) for order_id in story}
    wanted = {"o-1": [], "o-2": ["releasing stock", "cancelling"], "o-3": []}
    for order_id, states in wanted.items():
        found = got[order_id]
        told = f"for {order_id}, which {story[order_id]}, you found"
        expect(
            isinstance(found, list),
            f"{told} {describe_value(found)}, not a list",
            "return a list of state names, in the order the saga entered them (a set has no "
            "order, and a single state is not the story)",
        )
        expect(
            found == states,
            f"{told} {found}; the saga's events say {states}",
            _story_hint(found, paths[order_id]),
        )
    return "read from the fulfilment stream: only the declined payment was compensated"


def _saga_path(store: SQLiteEventStore, order_id: str) -> list[Transition]:
    stream = store.read(FulfilmentSaga.stream_for(order_id))
    return FulfilmentSaga.from_events(stored.event for stored in stream).path


def _story_hint(got: list[object], path: list[Transition]) -> str:
    compensating = [t for t in path if t.compensating]
    if compensating and got == compensating:
        return "return the states' names (t.target), not the transitions"
    wrong_part = {
        "the states they left (t.source)": [t.source for t in compensating],
        "the events that moved the saga (t.trigger)": [t.trigger for t in compensating],
        "the commands they sent (t.sends)": [t.sends for t in compensating],
    }
    for part, values in wrong_part.items():
        if compensating and got == values:
            return f"you listed {part}; the question is the states they entered: t.target"
    if any(state in {t.target for t in path if not t.compensating} for state in got):
        why = (
            ": cancelling after a refused reservation undoes nothing, since nothing was done yet"
            if "cancelling" in got and not compensating
            else ""
        )
        return f"keep only the transitions marked compensating (t.compensating){why}"
    return (
        "rebuild the saga from its stream: FulfilmentSaga.from_events(s.event for s in "
        "store.read(FulfilmentSaga.stream_for(order_id))), then look at saga.path"
    )


# ---------------------------------------------------------------------- exercise 4

BOOKING = StateMachine(
    name="trip booking",
    initial="new",
    transitions=(
        Transition("new", "TripRequested", "holding seat", sends="HoldSeat"),
        Transition("holding seat", "SeatHeld", "charging", sends="ChargeCard"),
        Transition("holding seat", "SeatRefused", "closed"),
        Transition("charging", "CardCharged", "ticketing", sends="IssueTicket"),
        Transition("charging", "CardDeclined", "freeing seat", sends="FreeSeat", compensating=True),
        Transition("freeing seat", "SeatFreed", "closed", compensating=True),
        Transition("ticketing", "TicketIssued", "done"),
    ),
    deadlines=(
        ("holding seat", Deadline(10, retries=0, gives_up_as="SeatRefused")),
        ("charging", Deadline(20, retries=1, gives_up_as="CardDeclined")),
        ("ticketing", Deadline(60, retries=4)),  # after the pivot: forward only
        ("freeing seat", Deadline(15, retries=2)),
    ),
)
"""A second process with deadlines, so an answer cannot know FULFILMENT's by heart."""

_LATE: list[tuple[StateMachine, str, int, object, str]] = [
    (FULFILMENT, "awaiting payment", 1, ("retry", "ChargePayment"), "the first late answer"),
    (FULFILMENT, "awaiting payment", 2, ("retry", "ChargePayment"), "the second try"),
    (FULFILMENT, "awaiting payment", 3, ("give up", "PaymentFailed"), "the tries used up"),
    (FULFILMENT, "awaiting stock", 2, ("give up", "StockReservationFailed"), "the tries used up"),
    (FULFILMENT, "awaiting shipment", 1, ("retry", "RequestShipment"), "after the pivot"),
    (FULFILMENT, "awaiting shipment", 2, ("flag", ""), "after the pivot, the tries used up"),
    (FULFILMENT, "cancelling", 1, ("retry", "CancelOrder"), "a compensation"),
    (FULFILMENT, "releasing stock", 4, ("flag", ""), "a compensation, the tries used up"),
    (FULFILMENT, "shipped", 1, None, "a final state"),
    (FULFILMENT, "new", 1, None, "a state without a deadline"),
    (BOOKING, "holding seat", 1, ("give up", "SeatRefused"), "no retries at all"),
    (BOOKING, "charging", 1, ("retry", "ChargeCard"), "the first late answer"),
    (BOOKING, "ticketing", 5, ("flag", ""), "after the pivot, the tries used up"),
    (BOOKING, "freeing seat", 3, ("flag", ""), "a compensation, the tries used up"),
]


@exercise("Exercise 4 (stretch): when the answer is late")
def ex4(on_deadline: object) -> str:
    """``on_deadline(machine, state, attempts)``: what a saga in ``state`` does when the
    answer to its command (sent ``attempts`` times) is late."""
    expect(
        callable(on_deadline),
        f"pass your function itself, got {describe_value(on_deadline)}",
        "check.ex4(on_deadline)",
    )
    assert callable(on_deadline)
    for machine, state, attempts, wanted, case in _LATE:
        told = f"on_deadline({machine.name!r}, {state!r}, attempts={attempts})"
        try:
            got = _quietly(on_deadline, machine, state, attempts)
        except Exception as error:  # the learner's code raised: say on which case
            raise RequirementNotMetError(
                f"{told} ({case}) raised {type(error).__name__}: {error}",
                _unseen_machine(machine, "run that call yourself to see the traceback"),
            ) from error
        expect(
            got is None or _decision_shaped(got),
            f"{told} ({case}) gave {describe_value(got)}; it returns None or a tuple of two "
            "strings, (what to do, a name), such as ('flag', '')",
            "what to do is 'retry', 'give up' or 'flag'; the name is the command to send "
            "again, the trigger to give up as, or '' for a flag",
        )
        expect(
            got == wanted,
            f"{told} ({case}) gave {got!r}; it should give {wanted!r}",
            _unseen_machine(machine, _late_hint(got, wanted, machine.deadline(state))),
        )
    return (
        "a late answer is asked for again while tries are left, then given up into the "
        "step's failure (and its compensation) before the pivot, and handed to a person after it"
    )


_DECISIONS = ("retry", "give up", "flag")


def _decision_shaped(got: object) -> bool:
    return (
        isinstance(got, tuple)
        and len(got) == 2
        and got[0] in _DECISIONS
        and isinstance(got[1], str)
    )


def _unseen_machine(machine: StateMachine, hint: str) -> str:
    """The hint, and for the machine the learner has not seen, where to look: every case of
    FULFILMENT comes first, so an answer that fails here passed them all."""
    if machine is FULFILMENT:
        return hint
    return (
        f"{hint} (every case of FULFILMENT passed: does your function read everything from "
        "machine, the one passed in, and nothing from FULFILMENT?)"
    )


def _late_hint(got: object, wanted: object, deadline: Deadline | None) -> str:
    if wanted is None:
        return "machine.deadline(state) is None when the state waits for nothing: return None"
    assert isinstance(wanted, tuple)
    if got is None:
        return (
            f"this state waits for an answer (machine.deadline(state) is {deadline!r}), so a "
            "late answer needs a decision, not None"
        )
    assert isinstance(got, tuple)
    retried = got[0] == "retry"
    if wanted[0] == "retry" and retried:
        return (
            "re-send the command that led INTO this state: the `sends` of a transition whose "
            "target is the state (the one out of it has not been asked for yet)"
        )
    if wanted[0] == "retry":
        return (
            "attempts counts every send, the first one included; deadline.retries counts only "
            "the sends after it: there is another try while attempts <= deadline.retries"
        )
    if retried:
        return "the tries are used up: a deadline allows 1 + retries sends in all, then stops"
    if wanted[0] == "flag":
        return (
            "a deadline with an empty gives_up_as has nothing to give up into: after the pivot "
            "(or in a compensation) nothing undoes the step automatically"
        )
    return "once the tries are used up, give up as deadline.gives_up_as"
