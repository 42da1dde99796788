"""Checks for the exercises of notebook 03 (dispatch and flow): predict the breadth-first order
of a cascade, report what went wrong in a dispatch, continue a cascade by returning an event,
and write a breadth-first queue.

Each check builds its own bus, shop and events, runs the learner's code against them and returns
:class:`~eda_lesson.book.exercises.Feedback`; the learner's objects are never changed.
:func:`exercise1_bus` is the bus exercise 1 asks about, so the notebook can show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus, Handler
from eda_lesson.core.checks import handler_name
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.shop.events import OrderEvent, OrderPaid, OrderShipped, ShipmentRequested
from eda_lesson.shop.services import Shop

__all__ = ["AuditLog", "ReviewRequested", "ex1", "ex2", "ex3", "ex4", "exercise1_bus"]


# ---------------------------------------------------------------------- exercise 1


class AuditLog:
    """Writes a line for every order event it hears (the handler of exercise 1)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def record(self, event: OrderEvent) -> None:
        self.lines.append(f"{type(event).__name__} {event.order_id}")


def exercise1_bus() -> EventBus:
    """The shop's payment handlers, registered by a colleague in an order of their own."""
    bus, shop, audit = EventBus(), Shop(), AuditLog()
    bus.register(OrderEvent, audit.record)
    bus.register(OrderPaid, shop.request_shipment)
    bus.register(OrderPaid, shop.mark_paid)
    bus.register(ShipmentRequested, shop.ship_order)
    bus.register(OrderShipped, shop.notify_shipped)
    return bus


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _nested_order(bus: EventBus, event: object) -> list[str]:
    """The handler names in the order nested calls would run them (without running them)."""
    names: list[str] = []
    for handler in bus.handlers_for(event):
        names.append(_short(handler_name(handler)))
        produced = handler(event)
        if produced is not None:
            names += _nested_order(bus, produced)
    return names


@exercise("Exercise 1: predict the order")
def ex1(predicted: Sequence[str]) -> str:
    """``predicted``: handler names in the order the bus calls them for ``OrderPaid``."""
    expect(
        isinstance(predicted, (list, tuple)) and all(isinstance(n, str) for n in predicted),
        f"predicted should be a list of handler names (strings), got {describe_value(predicted)}",
        'write it like ["request_shipment", ...]',
    )
    result = exercise1_bus().dispatch(OrderPaid("o-1", 42.0))
    actual = [_short(call.name) for call in result.calls]
    guess = [_short(name.strip()) for name in predicted]
    expect(
        guess != _nested_order(exercise1_bus(), OrderPaid("o-1", 42.0)),
        "that is the order nested calls would give: ShipmentRequested is handled in the middle "
        "of OrderPaid's handlers",
        "the bus queues a produced event: it waits until every handler of OrderPaid has run",
    )
    expect(
        len(guess) == len(actual),
        f"the bus makes {len(actual)} handler calls; your list has {len(guess)}",
        "AuditLog.record listens to OrderEvent, so it hears OrderPaid, ShipmentRequested and "
        "OrderShipped: once each",
    )
    step = next((i for i, (a, b) in enumerate(zip(guess, actual, strict=True)) if a != b), 0)
    hint = "an event's handlers all run before any handler of the events they produced"
    if "record" in (actual[step], guess[step]):
        hint = (
            "an event's own handlers run first, then those registered for its base classes: "
            "AuditLog.record listens to OrderEvent, so it comes after each event's own handlers"
        )
    expect(guess == actual, f"step {step + 1} is {actual[step]}, you wrote {guess[step]}", hint)
    return f"{len(actual)} handler calls, breadth-first, in the right order"


# ---------------------------------------------------------------------- exercise 2


def print_receipt(event: OrderPaid) -> None:
    raise OSError("the receipt printer is jammed")


def book_courier(event: ShipmentRequested) -> None:
    raise ConnectionError("the courier's booking site did not answer")


def _troubled_dispatch() -> DispatchResult:
    """Two failures at different depths, and an OrderShipped nobody handles."""
    bus, shop = EventBus(), Shop()
    bus.register(OrderPaid, shop.mark_paid)
    bus.register(OrderPaid, print_receipt)
    bus.register(OrderPaid, shop.request_shipment)
    bus.register(ShipmentRequested, book_courier)
    bus.register(ShipmentRequested, shop.ship_order)
    return bus.dispatch(OrderPaid("o-7", 30.0))


def _smooth_dispatch() -> DispatchResult:
    bus = EventBus()
    Shop().register(bus)
    return bus.dispatch(OrderPaid("o-8", 12.0))


def _expected_problems(result: DispatchResult) -> list[str]:
    lines = []
    for call in result.failures:
        record = result.events[call.event_index]
        lines.append(f"{call.name} failed on #{record.index} {record.type_name}")
    for record in result.unhandled:
        lines.append(f"no handler for #{record.index} {record.type_name}")
    return lines


@exercise("Exercise 2: report the problems of a dispatch")
def ex2(problems: Callable[[DispatchResult], Sequence[str]]) -> str:
    """``problems(result)``: one line per failed call, then one per unhandled event."""
    expect(
        callable(problems),
        f"pass your function itself, got {describe_value(problems)}",
        "check.ex2(problems), without parentheses after the name",
    )
    smooth = list(problems(_smooth_dispatch()))
    expect(
        smooth == [],
        f"for a dispatch where everything went well your function returned {smooth}",
        "return an empty list when result.failures and result.unhandled are both empty",
    )
    troubled = _troubled_dispatch()
    got, wanted = list(problems(troubled)), _expected_problems(troubled)
    failures = wanted[:2]
    expect(
        not any(
            line.startswith("book_courier") and "ShipmentRequested" not in line for line in got
        ),
        "book_courier failed while handling #1 ShipmentRequested, but your line does not name "
        "that event (the dispatched event is not always the one a failed call handled)",
        "look up the event each failed call handled: result.events[call.event_index]",
    )
    expect(
        got[:2] == failures,
        f"for the failed calls your function returned {got[:2]}; expected {failures}",
        'one line per call in result.failures, like f"{call.name} failed on #{record.index} '
        '{record.type_name}"',
    )
    expect(
        got == wanted,
        f"your function returned {got}; expected {wanted}",
        "after the failures, add one line per event in result.unhandled: "
        'f"no handler for #{record.index} {record.type_name}"',
    )
    return "failures and unhandled events reported, each with the event it concerns"


# ---------------------------------------------------------------------- exercise 3


def _warehouse_bus(pack_parcel: Handler) -> tuple[EventBus, Shop]:
    """The shop with the learner's handler in place of Shop.ship_order."""
    bus, shop = EventBus(), Shop()
    for event_type, handler in shop.handlers():
        if event_type is not ShipmentRequested:
            bus.register(event_type, handler)
    bus.register(ShipmentRequested, pack_parcel)
    return bus, shop


@exercise("Exercise 3: continue the cascade")
def ex3(pack_parcel: Handler) -> str:
    """``pack_parcel(event: ShipmentRequested)`` returns OrderShipped with a tracking code."""
    expect(
        callable(pack_parcel),
        f"pass your handler itself, got {describe_value(pack_parcel)}",
        "check.ex3(pack_parcel), without parentheses after the name",
    )
    name = handler_name(pack_parcel)
    for order_id in ("o-9", "o-10"):
        bus, shop = _warehouse_bus(pack_parcel)
        result = bus.dispatch(OrderPaid(order_id, 20.0))
        call = result.handled(pack_parcel)[0]  # registered above, so it was called
        expect(
            call.error is None,
            f"{name} raised {type(call.error).__name__}: {call.error}",
            "return the event itself, OrderShipped(...), not a plain value",
        )
        expect(
            call.produced,
            f"{name} returned nothing, so the cascade stopped at ShipmentRequested",
            "return the event instead of printing it or dispatching it on a bus of the "
            "notebook: the bus that called your handler queues what it returns",
        )
        shipped = [result.events[index].event for index in call.produced]
        expect(
            all(type(event) is OrderShipped for event in shipped),
            f"{name} produced {[type(event).__qualname__ for event in shipped]}, not the shop's "
            "OrderShipped, so Shop.notify_shipped does not hear it",
            "use the shop's event: from eda_lesson.shop.events import OrderShipped",
        )
        expected = OrderShipped(order_id, f"PARCEL-{order_id}")
        expect(
            shipped == [expected],
            f"for ShipmentRequested({order_id!r}) {name} produced {shipped}; expected [{expected}]",
            "take the order id from the event: OrderShipped(event.order_id, "
            'tracking_code=f"PARCEL-{event.order_id}")',
        )
        expect(
            shop.orders.status.get(order_id) == "shipped" and result.ok,
            f"the cascade for {order_id} did not end with Shop.notify_shipped: {result.describe()}",
            "return one OrderShipped, and nothing else",
        )
    return "the parcel ships, and Shop.notify_shipped tells the customer"


# ---------------------------------------------------------------------- exercise 4


@dataclass(frozen=True)
class ReviewRequested(OrderEvent):
    """Ask the customer for a review (an event of exercise 4 only)."""


@dataclass
class _Recorder:
    """Handlers that record what they were called with, and produce the next events."""

    seen: list[tuple[str, object]]

    def handlers(self) -> dict[type, list[Handler]]:
        def request_shipment(event: OrderPaid) -> ShipmentRequested:
            self.seen.append(("request_shipment", event))
            return ShipmentRequested(event.order_id)

        def ask_for_review(event: OrderPaid) -> ReviewRequested:
            self.seen.append(("ask_for_review", event))
            return ReviewRequested(event.order_id)

        def ship_parcel(event: ShipmentRequested) -> OrderShipped:
            self.seen.append(("ship_parcel", event))
            return OrderShipped(event.order_id, "T-1")

        def email_review_link(event: ReviewRequested) -> None:
            self.seen.append(("email_review_link", event))

        def tell_customer(event: OrderShipped) -> None:
            self.seen.append(("tell_customer", event))

        return {
            OrderPaid: [request_shipment, ask_for_review],
            ShipmentRequested: [ship_parcel],
            ReviewRequested: [email_review_link],
            OrderShipped: [tell_customer],
        }


_BREADTH_FIRST = [
    "request_shipment",
    "ask_for_review",
    "ship_parcel",
    "email_review_link",
    "tell_customer",
]
_NESTED = [
    "request_shipment",
    "ship_parcel",
    "tell_customer",
    "ask_for_review",
    "email_review_link",
]
_STACK = ["request_shipment", "ask_for_review", "email_review_link", "ship_parcel", "tell_customer"]
_HANDLES = {
    "request_shipment": OrderPaid,
    "ask_for_review": OrderPaid,
    "ship_parcel": ShipmentRequested,
    "email_review_link": ReviewRequested,
    "tell_customer": OrderShipped,
}


@exercise("Exercise 4: a queue in one function")
def ex4(dispatch_in_order: Callable[[Mapping[type, Sequence[Handler]], object], Any]) -> str:
    """``dispatch_in_order(handlers, event)`` returns the handler names in the order called."""
    expect(
        callable(dispatch_in_order),
        f"pass your function itself, got {describe_value(dispatch_in_order)}",
        "check.ex4(dispatch_in_order), without parentheses after the name",
    )
    recorder = _Recorder([])
    handlers = recorder.handlers()
    names = dispatch_in_order(handlers, OrderPaid("o-1", 5.0))
    expect(
        isinstance(names, (list, tuple)),
        f"your function returned {describe_value(names)}",
        "return the list of handler names you collected: called.append(handler_name(handler))",
    )
    expect(
        all(isinstance(name, str) for name in names),
        "your list holds handlers (or other objects), not their names",
        "collect names: called.append(handler_name(handler))",
    )
    called = [name for name, _ in recorder.seen]
    short = [_short(name) for name in names]
    expect(
        short == called,
        f"your function returned {short}, but it called {called}",
        "append a handler's name when you call it, and call each handler once",
    )
    expect(
        called != _NESTED,
        "that is the nested order: ShipmentRequested and OrderShipped were handled before "
        "ask_for_review, the second handler of OrderPaid, had run",
        "do not handle a produced event at once: append it to the queue, and take the next "
        "event from the queue only when all handlers of the current one have run",
    )
    expect(
        called != _STACK,
        "ReviewRequested was handled before ShipmentRequested, though ShipmentRequested was "
        "produced first: your queue gives back the newest event first (a stack)",
        "take events from the front: queue.popleft() on a deque (list.pop() takes the last)",
    )
    expect(
        called[:2] == _BREADTH_FIRST[:2],
        f"the handlers of OrderPaid were not both called first: {called}",
        "call every handler of the dispatched event: handlers.get(type(event), [])",
    )
    expect(
        called == _BREADTH_FIRST,
        f"called {called}; breadth-first is {_BREADTH_FIRST}",
        "when a handler returns an event (not None), put it at the back of the queue and keep "
        "going until the queue is empty",
    )
    for name, event in recorder.seen:
        expect(
            type(event) is _HANDLES[name],
            f"{name} was called with {type(event).__name__}, but it handles "
            f"{_HANDLES[name].__name__}",
            "call each handler with the event taken from the queue, not the one first dispatched",
        )
    try:
        quiet = dispatch_in_order({}, OrderPaid("o-2", 1.0))
    except KeyError:
        quiet = None
    expect(
        quiet is not None and list(quiet) == [],
        "for an event that no handler listens to, your function "
        + ("raised KeyError" if quiet is None else f"returned {describe_value(quiet)}"),
        "an event may have no handlers: handlers.get(type(event), []) gives an empty list",
    )
    return "breadth-first: every handler of an event runs before the events it produced"
