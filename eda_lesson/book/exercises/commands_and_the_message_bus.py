"""Checks for the exercises of notebook 04 (commands and the message bus): tell commands from
events by their names, write a command handler that takes a dependency and wire it to a bus,
refuse a command so that the caller hears it and nothing changes, and (stretch) place an order
with no partial effects when one of two steps refuses.

Each check builds its own bus and services, runs the learner's code against them and returns
:class:`~eda_lesson.book.exercises.Feedback`; the learner's objects are never changed.
:data:`EXERCISE1_NAMES` are the names exercise 1 asks about; :class:`Cards` and
:class:`PaymentDeclinedError` are the card service of exercise 4.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus, Handler
from eda_lesson.core.checks import handler_name, type_name
from eda_lesson.core.result import describe_value
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import CancelOrder, PlaceOrder
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.services import Inventory, OrderBook

__all__ = [
    "EXERCISE1_NAMES",
    "Cards",
    "PaymentDeclinedError",
    "ex1",
    "ex2",
    "ex3",
    "ex4",
]


# ---------------------------------------------------------------------- exercise 1

EXERCISE1_NAMES: dict[str, str] = {
    "ReserveStock": "command",
    "StockReserved": "event",
    "SendReceipt": "command",
    "CustomerRegistered": "event",
    "ChangeAddress": "command",
    "PaymentDeclined": "event",
    "RefundPayment": "command",
    "ParcelLost": "event",
}
"""The message names of exercise 1, each with what it is."""

_VERBS = ("Refund", "Issue", "Give", "Make", "Pay", "Return", "Send")
_KINDS = ("command", "event")


def _camel_words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*", name)


@exercise("Exercise 1: command or event?")
def ex1(kinds: Mapping[str, str], renamed: str) -> str:
    """``kinds``: each of EXERCISE1_NAMES -> "command" or "event"; ``renamed``: a better name
    for the command wrongly called ``OrderRefunded``."""
    expect(
        isinstance(kinds, Mapping),
        f"kinds should be a dict of name -> 'command' or 'event', got {describe_value(kinds)}",
        'write it like {"ReserveStock": "command", ...}',
    )
    missing = [name for name in EXERCISE1_NAMES if name not in kinds]
    expect(
        not missing,
        f"kinds has no entry for {', '.join(missing)}",
        "give every name of the list a kind",
    )
    for name, wanted in EXERCISE1_NAMES.items():
        given = str(kinds[name]).strip().lower()
        expect(
            given in _KINDS,
            f"kinds[{name!r}] is {kinds[name]!r}; write 'command' or 'event'",
            "each value is one of the two words",
        )
        why = (
            "it is in the past tense: it tells that something happened, so it is an event"
            if wanted == "event"
            else "it is in the imperative: it asks for something to be done, so it is a command"
        )
        expect(given == wanted, f"{name} is not a {given}: {why}", "read the verb's tense")
    expect(
        isinstance(renamed, str) and renamed.isidentifier(),
        f"renamed should be a class name (a string like 'DoSomething'), got {renamed!r}",
        "a command's name is a verb in the imperative, then what it acts on",
    )
    words = _camel_words(renamed)
    expect(
        renamed != "OrderRefunded",
        "OrderRefunded is still the name of something that happened; a handler may refuse "
        "this request, so the name must ask",
        "start with the verb: what do you ask the shop to do?",
    )
    expect(
        not renamed.endswith(("Command", "Cmd")),
        f"{renamed}: drop the suffix; the base class Command already says what it is",
        "a name like RefundOrder is enough",
    )
    expect(
        "Refund" in renamed or "Return" in renamed,
        f"{renamed} does not say what is asked for: a refund",
        "keep the word Refund in it",
    )
    expect(
        not any(word.endswith("ed") for word in words[:1] + words[-1:]),
        f"{renamed} is still in the past tense; a command asks, it does not report",
        "start with the verb in the imperative: Refund...",
    )
    expect(
        bool(words) and words[0] in _VERBS,
        f"{renamed} reads as a noun or a fact; a command starts with a verb in the imperative",
        "put the verb first: RefundOrder, RefundPayment, IssueRefund",
    )
    return f"eight names sorted, and {renamed} asks for what it wants"


# ---------------------------------------------------------------------- exercise 2


def _registered_elsewhere(bus: EventBus, handler_type: type) -> str:
    """Names of the message types the learner registered something for, PlaceOrder aside."""
    return ", ".join(
        sorted({type_name(s.message_type) for s in bus.subscriptions()} - {type_name(handler_type)})
    )


def _bootstrapped(bootstrap: Callable[[Inventory], EventBus], inventory: Inventory) -> EventBus:
    """The learner's bus; a registration refused (a TypeError naming its fix) is feedback."""
    try:
        return bootstrap(inventory)
    except TypeError as error:
        expect(False, f"building the bus failed: {error}", "read the fix the error names")
        raise  # not reached: expect(False) stops the check


@exercise("Exercise 2: a command handler with a dependency")
def ex2(bootstrap: Callable[[Inventory], EventBus]) -> str:
    """``bootstrap(inventory)`` returns a bus on which PlaceOrder reserves the order's items in
    that inventory and answers with the order id."""
    expect(
        callable(bootstrap),
        f"pass your bootstrap function itself, got {describe_value(bootstrap)}",
        "check.ex2(bootstrap), without parentheses after the name",
    )
    inventory = Inventory(stock={"book": 3, "pen": 5})
    bus = _bootstrapped(bootstrap, inventory)
    expect(
        isinstance(bus, EventBus),
        f"bootstrap returned {describe_value(bus)}; return the EventBus you built",
        "end bootstrap with return bus",
    )
    elsewhere = _registered_elsewhere(bus, PlaceOrder)
    expect(
        bus.handlers_for(PlaceOrder),
        "the bus bootstrap returned has no handler for PlaceOrder"
        + (f" (it has handlers for {elsewhere})" if elsewhere else ""),
        "register the handler for the command it carries out: bus.register(PlaceOrder, ...)",
    )
    (handler,) = bus.handlers_for(PlaceOrder)
    name = handler_name(handler)
    items = (LineItem("book", 2), LineItem("pen", 1))
    result = bus.dispatch(PlaceOrder("o-5", "c-1", 12.0, items))
    expect(
        inventory.stock == {"book": 1, "pen": 4},
        f"the inventory given to bootstrap holds {inventory.stock} after the order: {name} did "
        "not reserve the items in the inventory the bus gave it"
        if inventory.stock == {"book": 3, "pen": 5}
        else f"after reserving 2 x book and 1 x pen the stock is {inventory.stock}",
        "give bootstrap's inventory to the bus, EventBus(dependencies={'inventory': inventory}),"
        " and let the handler take a parameter named inventory",
    )
    expect(
        inventory.reserved.get("o-5") == items,
        f"the inventory holds no reservation for o-5 ({inventory.reserved}); use "
        "inventory.reserve(order_id, items), which records what the order holds",
        "inventory.reserve(command.order_id, command.items)",
    )
    expect(
        result.returned == "o-5",
        f"the caller got {result.returned!r} back from {name}; answer with the order id, so "
        "the caller learns which order was placed",
        "end the handler with return command.order_id",
    )
    short = Inventory(stock={"book": 1})
    refused = _bootstrapped(bootstrap, short)  # a bus of its own, with the small inventory
    try:
        refused.dispatch(PlaceOrder("o-6", "c-1", 8.0, (LineItem("book", 2),)))
        raised: Exception | None = None
    except Exception as error:
        raised = error
    expect(
        raised is not None,
        "an order for 2 x book with 1 in stock went through without an error: the caller "
        f"was not told. Let the inventory's OutOfStockError leave {name}",
        "do not catch the error in the handler: a command's error reaches its caller",
    )
    expect(
        short.stock == {"book": 1} and not short.reserved,
        f"the refused order still changed the inventory: {short}",
        "reserve all items with one inventory.reserve call (all or none)",
    )
    return f"{name} reserves in the inventory it is given and answers with the order id"


# ---------------------------------------------------------------------- exercise 3

_REFUSALS = (ValueError, DomainError)


def _cancel(bus: EventBus, order_id: str) -> Exception | None:
    try:
        bus.dispatch(CancelOrder(order_id, reason="changed my mind"))
    except Exception as error:
        return error
    return None


def _refusal_problem(error: Exception, order_id: str) -> str | None:
    """What is wrong with ``error`` as the refusal of cancelling ``order_id`` (None: fine)."""
    kind = type(error).__name__
    if isinstance(error, AssertionError):
        return (
            f"an assert refused {order_id}, but asserts are removed under python -O; raise "
            "ValueError or DomainError"
        )
    if not isinstance(error, _REFUSALS):
        return (
            f"cancelling {order_id} raised {kind}: {error}; that reads like a bug in the shop "
            "rather than a refusal. Raise ValueError or DomainError, saying why"
        )
    if order_id not in str(error):
        return (
            f"the caller sees {kind}: {error!r}, which does not say which order was refused; "
            f"name {order_id} in the message"
        )
    return None


@exercise("Exercise 3: refuse a command")
def ex3(cancel_order: Handler) -> str:
    """``cancel_order(command: CancelOrder, orders: OrderBook)``: cancel a created or paid order,
    refuse anything else with ValueError or DomainError, changing nothing."""
    expect(
        callable(cancel_order),
        f"pass your handler itself, got {describe_value(cancel_order)}",
        "check.ex3(cancel_order), without parentheses after the name",
    )
    name = handler_name(cancel_order)
    orders = OrderBook(status={"o-1": "paid", "o-2": "shipped", "o-3": "created"})
    bus = EventBus(dependencies={"orders": orders})
    try:
        bus.register(CancelOrder, cancel_order)
    except TypeError as refused:
        expect(False, f"registering {name} failed: {refused}", "read the fix it names")
    for order_id, status in (("o-1", "paid"), ("o-3", "created")):
        error = _cancel(bus, order_id)
        expect(
            error is None,
            f"cancelling the {status} order {order_id} raised {type(error).__name__}: {error}; "
            f"a {status} order may still be cancelled",
            "refuse only orders that are neither created nor paid",
        )
        expect(
            orders.status[order_id] == "cancelled",
            f"after CancelOrder({order_id!r}) the order is {orders.status[order_id]!r}; "
            "expected 'cancelled'",
            "set orders.status[command.order_id] = 'cancelled'",
        )
    for order_id, why in (("o-2", "has shipped"), ("o-404", "is not an order the shop knows")):
        before = dict(orders.status)
        error = _cancel(bus, order_id)
        changed = orders.status != before
        if error is None:
            expect(
                not changed,
                f"{order_id} {why}, yet {name} changed the order book to {orders.status} and "
                "dispatch did not raise: a command that cannot be carried out is refused",
                "check the status first; raise ValueError (or DomainError) when it is neither "
                "created nor paid",
            )
            expect(
                False,
                f"{order_id} {why}; nothing changed, but dispatch did not raise, so the caller "
                "believes the order was cancelled. A returned value is an answer the caller "
                "may ignore: refuse by raising",
                "raise ValueError(f'order ... cannot be cancelled') instead of returning",
            )
        problem = _refusal_problem(error, order_id) if error is not None else None
        expect(problem is None, problem or "", "raise ValueError naming the order and why")
        expect(
            not changed,
            f"{name} refused {order_id}, but only after changing the order book to "
            f"{orders.status}: decide first, then change",
            "raise before the line that writes orders.status",
        )
    return "the caller hears every refusal, and a refused command changes nothing"


# ---------------------------------------------------------------------- exercise 4


class PaymentDeclinedError(Exception):
    """The customer's card refused to hold the amount."""


@dataclass
class Cards:
    """A card service: holds an amount on a customer's card for an order, or declines."""

    declined: set[str] = field(default_factory=set)
    """Customers whose card declines every hold."""
    holds: dict[str, float] = field(default_factory=dict)
    """The amount held per order."""

    def hold(self, order_id: str, customer_id: str, amount: float) -> None:
        """Hold ``amount`` on the customer's card for the order, or raise PaymentDeclinedError."""
        if customer_id in self.declined:
            raise PaymentDeclinedError(f"the card of {customer_id} declined {amount:g}")
        self.holds[order_id] = amount

    def release(self, order_id: str) -> None:
        """Let go of the order's hold (nothing happens if it has none)."""
        self.holds.pop(order_id, None)


_STOCK = {"book": 2, "pen": 5}


def _place(place_order: Handler, command: PlaceOrder) -> tuple[Any, Inventory, Cards]:
    """Dispatch ``command`` on a fresh bus; (result or the error raised, inventory, cards)."""
    inventory, cards = Inventory(stock=dict(_STOCK)), Cards(declined={"c-broke"})
    bus = EventBus(dependencies={"inventory": inventory, "cards": cards})
    bus.register(PlaceOrder, place_order)
    try:
        outcome: Any = bus.dispatch(command)
    except Exception as error:
        outcome = error
    return outcome, inventory, cards


def _effects(inventory: Inventory, cards: Cards) -> list[str]:
    left = []
    for order_id, items in inventory.reserved.items():
        held = ", ".join(f"{item.quantity} x {item.sku}" for item in items)
        left.append(f"{held} is still reserved for {order_id}")
    left += [f"a hold of {amount:g} stays on the card for {o}" for o, amount in cards.holds.items()]
    if inventory.stock != _STOCK and not inventory.reserved:
        left.append(f"the stock went from {_STOCK} to {inventory.stock}")
    return left


@exercise("Exercise 4 (stretch): all or nothing")
def ex4(place_order: Handler) -> str:
    """``place_order(command, inventory, cards)``: hold the total on the card and reserve the
    items, both or neither; a refusal reaches the caller."""
    expect(
        callable(place_order),
        f"pass your handler itself, got {describe_value(place_order)}",
        "check.ex4(place_order), without parentheses after the name",
    )
    name = handler_name(place_order)
    good = PlaceOrder("o-1", "c-7", 30.0, (LineItem("book", 1), LineItem("pen", 2)))
    outcome, inventory, cards = _place(place_order, good)
    expect(
        not isinstance(outcome, Exception),
        f"placing o-1 (in stock, a good card) raised {type(outcome).__name__}: {outcome}",
        "this order should go through: hold the total, reserve the items",
    )
    expect(
        inventory.reserved.get("o-1") == good.items and cards.holds.get("o-1") == 30.0,
        f"after placing o-1 the reservations are {inventory.reserved} and the holds "
        f"{cards.holds}; expected both for o-1",
        "call cards.hold(order_id, customer_id, total) and inventory.reserve(order_id, items)",
    )
    expect(
        outcome.returned == "o-1",
        f"{name} answered {outcome.returned!r}; answer with the order id",
        "return command.order_id",
    )
    cases = (
        (
            PlaceOrder("o-2", "c-broke", 10.0, (LineItem("book", 1),)),
            "the card of c-broke declined",
            PaymentDeclinedError,
        ),
        (
            PlaceOrder("o-3", "c-7", 30.0, (LineItem("pen", 1), LineItem("book", 3))),
            "o-3 wants 3 x book and only 2 are in stock",
            Exception,
        ),
    )
    for command, what, error_type in cases:
        outcome, inventory, cards = _place(place_order, command)
        left = _effects(inventory, cards)
        expect(
            not left,
            f"{what}, yet {' and '.join(left)}: the order was refused, so nothing of it may remain",
            "let the step that may refuse without an effect go first; when a later step "
            "refuses, undo the earlier one before the error leaves the handler",
        )
        expect(
            isinstance(outcome, Exception),
            f"{what}, and nothing was changed, but dispatch did not raise: the caller "
            "believes the order was placed",
            "after undoing, re-raise the error (a bare raise inside the except block)",
        )
        expect(
            isinstance(outcome, error_type),
            f"{what}, but the caller got {type(outcome).__name__}: {outcome}",
            "let the card's PaymentDeclinedError reach the caller as it is",
        )
    return "a refused order leaves neither a reservation nor a hold behind"
