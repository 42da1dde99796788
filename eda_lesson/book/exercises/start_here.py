"""Checks for the exercises of notebook 00 (start here): naming events, telling events from
commands, and a first handler.

Each check takes what the learner wrote (a list of names, a set of names, a handler) and
returns :class:`~eda_lesson.book.exercises.Feedback`. The handler check runs the handler for real
on a fresh bus; it captures what the handler prints, so the check itself prints nothing.
This module does not teach anything by itself: the notebook does.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import describe_value
from eda_lesson.shop.events import LineItem, OrderCreated

__all__ = ["COMMANDS", "MESSAGES", "ex1", "ex2", "ex3"]

COMMANDS: tuple[str, ...] = ("PlaceOrder", "RefundPayment", "ShipParcel", "RegisterCustomer")
"""Exercise 1 starts from these commands; the learner names the event each one leads to."""

# For each command: the thing it is about, the verb as written in the command, and the
# past-tense forms that make a good event name.
_NAMING: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Order", "Place", ("Placed",)),
    ("Payment", "Refund", ("Refunded",)),
    ("Parcel", "Ship", ("Shipped",)),
    ("Customer", "Register", ("Registered", "SignedUp", "Joined")),
)

MESSAGES: tuple[str, ...] = (
    "OrderPlaced",
    "SendInvoice",
    "PaymentDeclined",
    "ReserveStock",
    "ParcelDelivered",
    "CancelOrder",
)
"""Exercise 2: the messages to sort into events and commands."""

_EVENTS = frozenset({"OrderPlaced", "PaymentDeclined", "ParcelDelivered"})


@exercise("Exercise 1: name the events")
def ex1(event_names: object) -> str:
    """``event_names``: one event name per command of :data:`COMMANDS`, in the same order."""
    expect(
        isinstance(event_names, (list, tuple)) and len(event_names) == len(COMMANDS),
        f"event_names should be a list of {len(COMMANDS)} names, got {describe_value(event_names)}",
        'one name per command, in the same order: ["OrderPlaced", ...]',
    )
    assert isinstance(event_names, (list, tuple))
    for name, command, (thing, verb, past_forms) in zip(
        event_names, COMMANDS, _NAMING, strict=True
    ):
        _check_event_name(name, command, thing, verb, past_forms)
    return "every name states a fact that already happened, in the past tense"


def _check_event_name(
    name: object, command: str, thing: str, verb: str, past_forms: tuple[str, ...]
) -> None:
    expect(
        isinstance(name, str) and name.isidentifier() and name[:1].isupper() and "_" not in name,
        f"the name for {command} should be one word in CamelCase, got {describe_value(name)}",
        "event names look like class names: OrderPlaced, not 'order placed' or order_placed",
    )
    assert isinstance(name, str)
    expect(
        thing in name,
        f"{name!r} (for {command}) does not say what it is about: it should contain {thing!r}",
        f"keep the thing the command was about: {thing}...",
    )
    if any(form in name for form in past_forms):
        return
    expect(
        verb not in name,
        f"{name!r} still reads as an instruction: that is the command {command}, not its event",
        f"say what happened once the command succeeded, in the past tense: {thing}{past_forms[0]}",
    )
    expect(
        False,
        f"{name!r} is not in the past tense: an event names something that already happened",
        f"for {command}, something like {thing}{past_forms[0]}",
    )


@exercise("Exercise 2: events and commands")
def ex2(events: object) -> str:
    """``events``: the names from :data:`MESSAGES` that are events."""
    expect(
        isinstance(events, Iterable) and not isinstance(events, (str, bytes)),
        f"events should be a set of names, got {describe_value(events)}",
        'write a set of strings: {"OrderPlaced", ...}',
    )
    assert isinstance(events, Iterable)
    chosen = list(events)
    for name in chosen:
        expect(
            name in MESSAGES,
            f"{describe_value(name)} is not one of the six messages",
            "copy the names from the list: " + ", ".join(MESSAGES),
        )
    for name in MESSAGES:
        if name in chosen and name not in _EVENTS:
            expect(
                False,
                f"{name} is a command: it asks for something to be done (it could be refused)",
                "a command starts with a verb in the imperative; an event ends in the past tense",
            )
        if name in _EVENTS and name not in chosen:
            expect(
                False,
                f"{name} is missing: it states something that already happened, so it is an event",
                "look for the names whose verb is in the past tense",
            )
    return "three facts (events) and three requests (commands)"


@exercise("Exercise 3: a first handler")
def ex3(handler: object) -> str:
    """``handler``: a function that thanks the customer of an ``OrderCreated`` by printing."""
    expect(
        callable(handler),
        f"pass your handler function itself, got {describe_value(handler)}",
        "check.ex3(thank_customer), without parentheses after the name",
    )
    assert callable(handler)
    bus = EventBus()
    try:
        bus.register(OrderCreated, handler)
    except TypeError as error:
        expect(False, f"the bus refused your handler: {error}", "def thank_customer(event): ...")
    orders = [
        OrderCreated("o-41", "c-3", 12.0, (LineItem("pen", 2),)),
        OrderCreated("o-42", "c-9", 30.0, (LineItem("book", 1),)),
    ]
    for order in orders:
        printed = _dispatch_printing(bus, order, handler)
        expect(
            printed.strip(),
            "your handler printed nothing",
            "call print(...) inside it, with a sentence for the customer",
        )
        for fact, field in ((order.customer_id, "customer_id"), (order.order_id, "order_id")):
            expect(
                fact in printed,
                f"for {order!r} it printed {printed.strip()!r}, which does not mention {fact!r}",
                f"read the fact from the event: {{event.{field}}} inside an f-string",
            )
    return "your handler ran once for each order and thanked the right customer"


def _dispatch_printing(bus: EventBus, order: OrderCreated, handler: Callable[[Any], Any]) -> str:
    """Dispatch ``order``; return what the handler printed (kept out of the notebook)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = bus.dispatch(order)
    if not result.ok:
        error = result.failures[0].error
        expect(
            False,
            f"your handler failed: {type(error).__name__}: {error}",
            "a handler here prints and returns nothing (no return statement)",
        )
    expect(
        len(result.handled(handler)) == 1,
        "the bus did not call your handler",
        "register it for OrderCreated",
    )
    return buffer.getvalue()
