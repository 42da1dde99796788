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
import re
from collections.abc import Callable, Iterable
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import describe_value
from eda_lesson.shop.events import LineItem, OrderCreated

__all__ = [
    "COMMANDS",
    "IRREGULAR_PARTICIPLES",
    "MESSAGES",
    "ex1",
    "ex2",
    "ex3",
    "is_past_participle",
    "words",
]

COMMANDS: tuple[str, ...] = ("PlaceOrder", "RefundPayment", "ShipParcel", "RegisterCustomer")
"""Exercise 1 starts from these commands; the learner names the event each one leads to."""

# For each command: the thing it is about, and the event name a hint suggests. Any verb in the
# past participle is accepted, not only the suggested one: an order that is placed is also
# created, a parcel that is shipped is also sent.
_NAMING: tuple[tuple[str, str], ...] = (
    ("Order", "OrderPlaced"),
    ("Payment", "PaymentRefunded"),
    ("Parcel", "ParcelShipped"),
    ("Customer", "CustomerRegistered"),
)

IRREGULAR_PARTICIPLES: dict[str, str] = {
    "Bring": "Brought",
    "Build": "Built",
    "Buy": "Bought",
    "Catch": "Caught",
    "Choose": "Chosen",
    "Deal": "Dealt",
    "Do": "Done",
    "Draw": "Drawn",
    "Drive": "Driven",
    "Find": "Found",
    "Freeze": "Frozen",
    "Get": "Got",
    "Give": "Given",
    "Hold": "Held",
    "Keep": "Kept",
    "Lay": "Laid",
    "Lead": "Led",
    "Leave": "Left",
    "Lend": "Lent",
    "Lose": "Lost",
    "Make": "Made",
    "Meet": "Met",
    "Pay": "Paid",
    "Prepay": "Prepaid",
    "Rebuild": "Rebuilt",
    "Repay": "Repaid",
    "Resend": "Resent",
    "Say": "Said",
    "See": "Seen",
    "Sell": "Sold",
    "Send": "Sent",
    "Show": "Shown",
    "Spend": "Spent",
    "Steal": "Stolen",
    "Take": "Taken",
    "Tell": "Told",
    "Throw": "Thrown",
    "Undo": "Undone",
    "Uphold": "Upheld",
    "Win": "Won",
    "Withdraw": "Withdrawn",
    "Withhold": "Withheld",
    "Write": "Written",
}
"""Common irregular verbs: base form (a command's verb) to past participle (an event's)."""

# Verbs whose past participle is spelt like the base form: a past participle only after the
# thing (OrderSplit), an instruction before it (SplitOrder).
_SAME_FORM = frozenset(
    {"Cut", "Hit", "Let", "Put", "Quit", "Read", "Reset", "Set", "Shut", "Split", "Spread"}
)
# Adverbs that finish a phrasal verb: CustomerSignedUp, OrderCheckedOut.
_PARTICLES = frozenset({"Up", "Out", "In", "Off", "Back", "Down", "Over", "Away"})
# Helper verbs that make a sentence of a name: OrderWasPlaced, OrderHasBeenPlaced.
_AUXILIARIES = frozenset({"Was", "Were", "Is", "Are", "Has", "Have", "Had", "Been", "Got", "Did"})
# Past participles that say the command did not succeed.
_FAILURES = frozenset({"Failed", "Rejected", "Declined", "Refused", "Denied", "Aborted"})


def words(name: str) -> list[str]:
    """The words of a CamelCase name: ``"OrderWasPlaced"`` gives Order, Was, Placed."""
    return re.findall(r"[A-Z][a-z0-9]*", name)


def is_past_participle(word: str) -> bool:
    """Whether ``word`` (capitalised) is a past participle, regular or common irregular.

    >>> [is_past_participle(w) for w in ("Created", "Sent", "Paid", "Shipped", "Held")]
    [True, True, True, True, True]
    >>> [is_past_participle(w) for w in ("Create", "Send", "Ship", "Speed", "Placing")]
    [False, False, False, False, False]
    """
    if word in _SAME_FORM or word in IRREGULAR_PARTICIPLES.values():
        return True
    # "-eed" words are mostly not participles (Feed, Speed); "-eeded" ones are (Succeeded).
    return len(word) > 3 and word.endswith("ed") and not word.endswith("eed")


@exercise("Exercise 1: name the events")
def ex1(event_names: object) -> str:
    """``event_names``: one event name per command of :data:`COMMANDS`, in the same order."""
    expect(
        isinstance(event_names, (list, tuple)) and len(event_names) == len(COMMANDS),
        f"event_names should be a list of {len(COMMANDS)} names, got {describe_value(event_names)}",
        'one name per command, in the same order: ["OrderPlaced", ...]',
    )
    assert isinstance(event_names, (list, tuple))
    for name, command, (thing, suggestion) in zip(event_names, COMMANDS, _NAMING, strict=True):
        _check_event_name(name, command, thing, suggestion)
    return "every name states a fact that already happened, in the past tense"


def _check_event_name(name: object, command: str, thing: str, suggestion: str) -> None:
    expect(
        isinstance(name, str)
        and name.isidentifier()
        and name[:1].isupper()
        and "_" not in name
        and "".join(words(name)) == name
        and not name.isupper(),
        f"the name for {command} should be one word in CamelCase, got {describe_value(name)}",
        "event names look like class names: OrderPlaced, not 'order placed' or order_placed",
    )
    assert isinstance(name, str)
    parts = words(name)
    expect(
        thing in parts,
        f"{name!r} (for {command}) does not say what it is about: it should contain {thing!r}",
        f"keep the thing the command was about: {thing}...",
    )
    helpers = "".join(word for word in parts if word in _AUXILIARIES)
    expect(
        not helpers,
        f"{name!r} reads as a sentence ({helpers!r} in it): an event name is just the thing "
        f"and a past participle, without 'Was' or 'Has'",
        f"drop {helpers!r}: {''.join(w for w in parts if w not in _AUXILIARIES)}",
    )
    expect(
        parts[-1] != "Event",
        f"{name!r} ends in 'Event': the past tense already says it is an event",
        f"drop the suffix: {name.removesuffix('Event')}",
    )
    _check_tense(name, parts, command, thing, suggestion)


def _check_tense(name: str, parts: list[str], command: str, thing: str, suggestion: str) -> None:
    before, after = parts[: parts.index(thing)], parts[parts.index(thing) + 1 :]
    while after and after[-1] in _PARTICLES and len(after) > 1:
        after = after[:-1]  # SignedUp: the participle is the word before the particle
    expect(
        not before,
        f"{name!r} still reads as an instruction: "
        + (
            f"that is the command {command} itself, not its event"
            if name == command
            else f"{''.join(before)!r} comes first, as a command's verb does"
        ),
        f"name the thing first, then what happened to it, in the past tense: {suggestion}",
    )
    expect(
        bool(after),
        f"{name!r} (for {command}) does not say what happened to the {thing.lower()}",
        f"add the verb in the past tense after the thing: {suggestion}",
    )
    last = after[-1]
    if is_past_participle(last):
        expect(
            last not in _FAILURES,
            f"{name!r} says the command failed; name what happened once {command} succeeded",
            f"for {command}, something like {suggestion}",
        )
        return
    expect(
        not last.endswith("ing"),
        f"{name!r} describes something still going on: an event names something finished",
        f"use the past participle: {suggestion}",
    )
    expect(
        not last.endswith("ly"),
        f"{name!r} ends in an adverb ({last!r}): an event name is the thing and what happened",
        f"keep just the thing and the verb in the past tense: {suggestion}",
    )
    participle = IRREGULAR_PARTICIPLES.get(last) or (last + "d" if last.endswith("e") else None)
    expect(
        False,
        f"{name!r} is not in the past tense: {last!r} is a verb's base form, the way a command "
        f"says it; an event names something that already happened",
        f"{last} becomes {participle}: {thing}{participle}"
        if participle
        else f"for {command}, something like {suggestion}",
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
