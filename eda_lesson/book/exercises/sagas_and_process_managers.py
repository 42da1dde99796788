"""Checks for the exercises of notebook 10 (sagas and process managers): walk a process's state
machine over a stream of events, give a choreographed shop its compensation, read from the
event store which compensating steps a saga took, and (stretch) decide what a saga does when
an answer is late.

Each check runs the learner's code against real objects: the shop's
:data:`~eda_lesson.shop.fulfilment.FULFILMENT` machine (and a second machine the learner has not
seen),
real fulfilment runs in a choreographed or orchestrated shop, a real SQLite store holding the
saga's events. Nothing the learner's code prints reaches the notebook's output.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.result import describe_value
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    ChoreographedFulfilment,
    OrchestratedFulfilment,
    PaymentFailed,
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
        except AttributeError as error:
            expect(
                "NoneType" not in str(error),
                f"walking {machine.name!r} over [{told}] raised AttributeError: {error}",
                "machine.transition(state, name) is None when the event is not expected in "
                "that state: pass over that event and keep the state",
            )
            raise
        expect(
            isinstance(got, list),
            f"walk({machine.name!r}, [{told}]) returned {describe_value(got)}, not a list",
            "return the list of states, starting with machine.initial",
        )
        expect(
            got == wanted,
            f"walking {machine.name!r} over [{told}] gave {got}; it should give {wanted}",
            _walk_hint(got, wanted),
        )
    return "it follows the machine, from the state it is in, and passes over the unexpected"


def _walk_hint(got: list[object], wanted: list[str]) -> str:
    if not got or got[0] != wanted[0]:
        return "start the list with machine.initial"
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
    when a payment fails and returns the StockReleased event."""
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
    expect(
        order.status == "cancelled",
        f"the stock is back, but the order is still {order.status!r}",
        "return the StockReleased that shop.warehouse.release(...) gives you: the order's "
        "handler listens to StockReleased and cancels the order",
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
    wanted = {"o-1": [], "o-2": ["releasing stock", "cancelling"], "o-3": []}
    with tempfile.TemporaryDirectory() as folder, _runs(str(Path(folder) / "shop.db")) as store:
        got = {order_id: _quietly(compensations, store, order_id) for order_id in wanted}
    for order_id, states in wanted.items():
        story = {"o-1": "was shipped", "o-2": "had its payment declined", "o-3": "was out of stock"}
        expect(
            got[order_id] == states,
            f"for {order_id}, which {story[order_id]}, you found {got[order_id]}; "
            f"the saga's events say {states}",
            _story_hint(got[order_id]),
        )
    return "read from the fulfilment stream: only the declined payment was compensated"


def _story_hint(got: object) -> str:
    if isinstance(got, list) and "awaiting stock" in got:
        return "keep only the transitions marked compensating (t.compensating)"
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
        got = _quietly(on_deadline, machine, state, attempts)
        told = f"on_deadline({machine.name!r}, {state!r}, attempts={attempts})"
        expect(
            got == wanted,
            f"{told} ({case}) gave {got!r}; it should give {wanted!r}",
            _late_hint(got, wanted),
        )
    return (
        "a late answer is asked for again while tries are left, then given up into the "
        "step's failure (and its compensation) before the pivot, and handed to a person after it"
    )


def _late_hint(got: object, wanted: object) -> str:
    if wanted is None:
        return "machine.deadline(state) is None when the state waits for nothing: return None"
    assert isinstance(wanted, tuple)
    retried = isinstance(got, tuple) and bool(got) and got[0] == "retry"
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
