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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus, Handler
from eda_lesson.core.checks import handler_name, type_name
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import CancelOrder, PlaceOrder
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.services import Inventory, OrderBook, OutOfStockError

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

_KINDS = ("command", "event")

# How exercise 1 reads the new name: a heuristic for short English names, not a grammar.
# 1. Form: a class name in CapWords (a capital first, no underscores, not all capitals).
# 2. Mood: the words are split at capitals. The name is refused when its first word is a past
#    participle (-ed, or one of _IRREGULAR_PARTICIPLES), "Please", a modal or auxiliary
#    (_NOT_IMPERATIVE), an -ing form, a noun, adjective or article the shop's vocabulary puts
#    before "Refund" (_NOT_VERBS, plurals too), or a form ending in a single -s (Refunds); or
#    when its last word is a past participle (a fact: PaymentRefunded), unless the first word
#    is a verb that takes one (MarkOrderRefunded). Any other first word is taken for a verb in
#    the imperative, so no list of verbs has to be complete: RequestRefund, DoRefund,
#    GrantRefund and Refund alone (Cosmic Python's command is Allocate) all pass.
# 3. Subject: some word asks for the money back (Refund..., Reimburse, Repay, Pay...Back,
#    Return with Money or Payment).
# Limits, on purpose or known: a noun or adjective missing from _NOT_VERBS passes as a verb
# (WeeklyRefund); "Order" is always read as a noun (OrderRefund is refused, though "order a
# refund" is an imperative too); a plain form ending in -ed or -ing that is missing from
# _BASE_FORMS is taken for a participle, and one ending in a single -s (not -ss, -us, -is)
# for a plural or a statement.


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_IRREGULAR_PARTICIPLES = _word_set(
    "Paid Sent Made Given Done Lost Held Taken Gone Brought Bought Sold Told Spent Kept "
    "Written Shown Known Seen Begun Chosen Drawn Won Got Gotten"
)
_BASE_FORMS = _word_set(
    "Need Feed Proceed Succeed Exceed Embed Shed Speed Seed Heed Breed Bleed Weed Shred "
    "Bring Ping Ring Sing String Swing Sting Fling Spring Wring Cling Sling"
)
_NOT_IMPERATIVE = _word_set(
    "Should Must Can Could May Might Will Would Shall Is Are Was Were Has Had"
)
_NOT_VERBS = _word_set(
    "Order Payment Customer Client Card Purchase Parcel Item Product Money Cash Account Shop "
    "Full Partial New Pending Instant Manual Auto Automatic Immediate Total Quick Urgent "
    "A An The My Your Our This That"
)
_TAKES_A_PARTICIPLE = _word_set("Mark Set Get Have Keep Make Leave Declare Flag")
_SUFFIXES = ("Command", "Cmd", "Request", "Message", "Msg")
_REFUND_WORDS = ("Refund", "Reimburse", "Repay")
_MONEY = _word_set("Money Payment Funds Cash Amount Charge")


def _camel_words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*", name)


def _is_participle(word: str) -> bool:
    if word in _BASE_FORMS:
        return False
    return word in _IRREGULAR_PARTICIPLES or (word.endswith("ed") and len(word) > 3)


def _class_name_problem(renamed: object) -> str | None:
    """What keeps ``renamed`` from being a class name written the Python way (CapWords)."""
    if not isinstance(renamed, str) or not renamed.isidentifier():
        return (
            f"renamed should be a class name: one word of letters and digits, like the names "
            f"above, got {renamed!r}"
        )
    if renamed[0].islower():
        shape = "in snake_case" if "_" in renamed else "with a small first letter"
        return (
            f"{renamed} is written {shape}, the way Python writes functions and variables; a "
            "class name is in CapWords: each word starts with a capital letter, and the words "
            "are joined without underscores"
        )
    if "_" in renamed:
        return f"{renamed}: the words of a class name are joined without underscores (CapWords)"
    if not any(letter.islower() for letter in renamed):
        return (
            f"{renamed} is in capitals, the way Python writes constants; a class name is in "
            "CapWords: each word starts with a capital letter, the rest are small"
        )
    return None


def _imperative_problem(renamed: str, words: list[str]) -> str | None:
    """Why ``renamed`` does not start with a verb in the imperative (see the notes above)."""
    first, last = words[0], words[-1]
    if _is_participle(first) or (
        len(words) > 1 and _is_participle(last) and first not in _TAKES_A_PARTICIPLE
    ):
        past = first if _is_participle(first) else last
        return (
            f"{renamed} is still in the past tense ({past}): it reports what happened, as an "
            "event does, where a command asks for it"
        )
    if first == "Please":
        return f"{renamed}: drop the Please; a verb in the imperative is already the request"
    if first in _NOT_IMPERATIVE:
        return (
            f"{renamed} starts with {first}, which asks whether or states a fact; a command "
            "says what to do, with a verb in the imperative"
        )
    if first.endswith("ing") and first not in _BASE_FORMS:
        return (
            f"{renamed} starts with {first}, an -ing form: it describes something under way; "
            "a command starts with a verb in the imperative"
        )
    if first in _NOT_VERBS or first.removesuffix("s") in _NOT_VERBS:
        return (
            f"{renamed} reads as a noun: its first word, {first}, names or describes a thing "
            "rather than what to do; a command starts with a verb in the imperative"
        )
    if first.endswith("s") and not first.endswith(("ss", "us", "is")):
        return (
            f"{renamed} starts with {first}, a form ending in -s: a plural noun, or a "
            f"statement (it {first.lower()} ...), not a request; a command starts with a verb "
            "in the imperative, its plain form"
        )
    return None


def _refund_problem(renamed: str, words: list[str]) -> str | None:
    """Why ``renamed`` does not ask for a refund (None: it does)."""
    if any(word.startswith(_REFUND_WORDS) for word in words):
        return None
    if "Back" in words and any(word in _MONEY or word == "Pay" for word in words):
        return None  # PayBack, GiveMoneyBack
    if "Return" in words:
        if any(word in _MONEY for word in words):
            return None  # ReturnPayment, ReturnMoney
        return (
            f"{renamed} reads as the goods coming back (a return); the request is for the "
            "customer's money: a refund"
        )
    return f"{renamed} does not say what is asked for: a refund"


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
    form = _class_name_problem(renamed)
    expect(form is None, form or "", "look at how the names in the list above are written")
    expect(
        renamed != "OrderRefunded",
        "OrderRefunded is still the name of something that happened; a handler may refuse "
        "this request, so the name must ask",
        "what do you ask the shop to do? Say it as an order to the shop",
    )
    suffix = next((end for end in _SUFFIXES if renamed.endswith(end) and renamed != end), None)
    expect(
        suffix is None,
        f"{renamed}: drop the suffix {suffix}; the base class Command already says what it is",
        "the base class says what kind of message it is; the name only says what is asked",
    )
    words = _camel_words(renamed)
    mood = _imperative_problem(renamed, words)
    expect(
        mood is None,
        mood or "",
        "read the name aloud as an instruction to the shop: does it start with what to do?",
    )
    refund = _refund_problem(renamed, words)
    expect(
        refund is None,
        refund or "",
        "reread the request the class carries out: please ... this order",
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
        "the check uses whatever bootstrap returns",
    )
    elsewhere = _registered_elsewhere(bus, PlaceOrder)
    expect(
        bus.handlers_for(PlaceOrder),
        "the bus bootstrap returned has no handler for PlaceOrder"
        + (f" (it has handlers for {elsewhere})" if elsewhere else ""),
        "register the handler for the command it carries out: bus.register(PlaceOrder, ...)",
    )
    ((subscription, _call),) = bus.plan_for(PlaceOrder)
    name = subscription.name
    given = {need: bus.dependencies[need] for need in subscription.needs}
    expect(
        not given or any(isinstance(value, Inventory) for value in given.values()),
        f"the bus gives {name} "
        + ", ".join(f"{need}={describe_value(value)}" for need, value in given.items())
        + ", but no Inventory: give the bus bootstrap's inventory itself",
        "what does EventBus(dependencies=...) hold under the name the handler asks for?",
    )
    expect(
        given,
        f"the bus gives {name} nothing: the handler reaches the inventory without the bus (a "
        "closure over bootstrap's inventory, a default argument, functools.partial or a "
        "global), so it hides what it needs and cannot be run with another inventory. The bus "
        "should pass the dependency by name: a handler parameter inventory, filled from "
        "EventBus(dependencies=...)",
        "say what the handler needs in its parameters, and let the bus fill them",
    )
    items = (LineItem("book", 2), LineItem("pen", 1))
    result = bus.dispatch(PlaceOrder("o-5", "c-1", 12.0, items))
    expect(
        inventory.stock == {"book": 1, "pen": 4},
        f"the inventory given to bootstrap holds {inventory.stock} after the order: {name} did "
        "not reserve the items in the inventory the bus gave it"
        if inventory.stock == {"book": 3, "pen": 5}
        else f"after reserving 2 x book and 1 x pen the stock is {inventory.stock}",
        "is the inventory the bus hands to the handler the one bootstrap was given?",
    )
    expect(
        inventory.reserved.get("o-5") == items,
        f"the inventory holds no reservation for o-5 ({inventory.reserved}); use "
        "inventory.reserve(order_id, items), which records what the order holds",
        "reserve takes the order id and the items, and checks them all before taking any",
    )
    expect(
        result.returned == "o-5",
        f"the caller got {result.returned!r} back from {name}; answer with the order id, so "
        "the caller learns which order was placed",
        "what a command handler returns is what dispatch's caller reads in result.returned",
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
_BOOK_FIELDS = ("status", "customer", "total")
_CANCELLABLE = (("o-1", "paid"), ("o-3", "created"))
_NOT_CANCELLABLE = (
    ("o-2", "has shipped"),
    ("o-404", "is not an order the shop knows"),
    ("o-4", "is already cancelled"),
    ("o-5", "is 'delivered', neither created nor paid (a status the task does not name)"),
)


def _order_book() -> OrderBook:
    statuses = {
        "o-1": "paid",
        "o-2": "shipped",
        "o-3": "created",
        "o-4": "cancelled",
        "o-5": "delivered",
    }
    return OrderBook(
        status=statuses,
        customer={order_id: f"c-{order_id[2:]}" for order_id in statuses},
        total={order_id: 10.0 * int(order_id[2:]) for order_id in statuses},
    )


_Book = dict[str, dict[str, object]]
"""A copy of an order book: field name -> order id -> value."""


def _read_book(orders: OrderBook, name: str, after: str) -> _Book:
    """A copy of every field of ``orders``; a field the learner replaced is feedback."""
    copy: _Book = {}
    for field_name in _BOOK_FIELDS:
        value = getattr(orders, field_name, None)
        expect(
            isinstance(value, dict),
            f"after {after}, orders.{field_name} is {describe_value(value)}: {name} replaced "
            "the whole table; change one order's entry in it",
            f"orders.{field_name} is a dict of order id -> value",
        )
        copy[field_name] = dict(value) if isinstance(value, dict) else {}
    return copy


def _changes(before: _Book, after: _Book) -> list[str]:
    """What differs between two copies of the order book, one phrase per entry."""
    changes = []
    for field_name in _BOOK_FIELDS:
        old, new = before[field_name], after[field_name]
        for key in [*old, *(key for key in new if key not in old)]:
            where = f"orders.{field_name}[{key!r}]"
            if key not in new:
                changes.append(f"{where} removed (it was {old[key]!r})")
            elif key not in old:
                changes.append(f"{where} added ({new[key]!r})")
            elif old[key] != new[key]:
                changes.append(f"{where} went from {old[key]!r} to {new[key]!r}")
    return changes


def _cancel(bus: EventBus, order_id: str) -> tuple[DispatchResult | None, Exception | None]:
    try:
        return bus.dispatch(CancelOrder(order_id, reason="changed my mind")), None
    except Exception as error:
        return None, error


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


def _check_cancelled(
    bus: EventBus, orders: OrderBook, name: str, order_id: str, status: str
) -> None:
    """Cancelling the ``status`` order ``order_id`` goes through and changes only its status."""
    before = _read_book(orders, name, "the orders cancelled so far")
    _, error = _cancel(bus, order_id)
    expect(
        error is None,
        f"cancelling the {status} order {order_id} raised {type(error).__name__}: {error}; "
        f"a {status} order may still be cancelled",
        "refuse only orders that are neither created nor paid",
    )
    after = _read_book(orders, name, f"CancelOrder({order_id!r})")
    now = after["status"].get(order_id)
    expect(
        order_id in after["status"],
        f"after CancelOrder({order_id!r}) the order book has no status for {order_id}: {name} "
        "removed the order's entry; a cancelled order stays in the book, with its new status",
        "cancelling changes an order's status; it does not forget the order",
    )
    expect(
        now == "cancelled",
        f"after CancelOrder({order_id!r}) the order is {now!r}; expected 'cancelled'",
        "which value does the status of a cancelled order have?",
    )
    wanted = f"orders.status[{order_id!r}] went from {status!r} to 'cancelled'"
    others = [change for change in _changes(before, after) if change != wanted]
    expect(
        not others,
        f"cancelling {order_id} should change only its status, but {name} also changed: "
        + "; ".join(others),
        "a cancelled order keeps its customer and total; only its status changes",
    )


def _check_refused(bus: EventBus, orders: OrderBook, name: str, order_id: str, why: str) -> None:
    """Cancelling ``order_id`` (which ``why``) raises a refusal and changes nothing at all."""
    before = _read_book(orders, name, "the orders cancelled so far")
    result, error = _cancel(bus, order_id)
    changes = _changes(before, _read_book(orders, name, f"CancelOrder({order_id!r})"))
    if error is None:
        expect(
            not changes,
            f"{order_id} {why}, yet {name} changed the order book ({'; '.join(changes)}) and "
            "dispatch did not raise: a command that cannot be carried out is refused",
            "decide by the statuses that may be cancelled, and refuse every other one",
        )
        answer = None if result is None else result.returned
        expect(
            answer is None,
            f"{order_id} {why}; nothing changed, but dispatch did not raise, so the caller "
            f"believes the order was cancelled. {name} returned {answer!r}: an answer the "
            "caller may ignore; refuse by raising",
            "what reaches the caller of dispatch even if it reads no answer?",
        )
        expect(
            False,
            f"{order_id} {why}; {name} changed nothing and said nothing, so dispatch did not "
            "raise and the caller believes its CancelOrder went through; refuse by raising",
            "decide by the statuses that may be cancelled, and refuse every other one",
        )
    problem = _refusal_problem(error, order_id) if error is not None else None
    expect(
        problem is None,
        problem or "",
        "a refusal is an exception the caller expects, with a message it can show",
    )
    expect(
        not changes,
        f"{name} refused {order_id}, but only after changing the order book "
        f"({'; '.join(changes)}): decide first, then change; a refusal changes nothing",
        "move the decision above every line that writes to orders",
    )


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
    orders = _order_book()
    bus = EventBus(dependencies={"orders": orders})
    try:
        bus.register(CancelOrder, cancel_order)
    except TypeError as refused:
        expect(False, f"registering {name} failed: {refused}", "read the fix it names")
    for order_id, status in _CANCELLABLE:
        _check_cancelled(bus, orders, name, order_id, status)
    for order_id, why in _NOT_CANCELLABLE:
        _check_refused(bus, orders, name, order_id, why)
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


class _WatchedInventory(Inventory):
    """An inventory that remembers the OutOfStockError it raised, so the check can tell the
    original error from a new one raised in its place."""

    refusal: Exception | None = None

    def reserve(self, order_id: str, items: Iterable[LineItem]) -> None:
        try:
            super().reserve(order_id, items)
        except OutOfStockError as error:
            self.refusal = error
            raise


class _WatchedCards(Cards):
    """Cards that remember the PaymentDeclinedError they raised."""

    refusal: Exception | None = None

    def hold(self, order_id: str, customer_id: str, amount: float) -> None:
        try:
            super().hold(order_id, customer_id, amount)
        except PaymentDeclinedError as error:
            self.refusal = error
            raise


def _place(
    place_order: Handler, command: PlaceOrder
) -> tuple[Any, _WatchedInventory, _WatchedCards]:
    """Dispatch ``command`` on a fresh bus; (result or the error raised, inventory, cards)."""
    inventory, cards = _WatchedInventory(stock=dict(_STOCK)), _WatchedCards(declined={"c-broke"})
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


def _error_problem(
    outcome: Exception, what: str, original: Exception | None, wanted: type[Exception]
) -> str | None:
    """What is wrong with the error the caller got (None: it is the one it should get):
    ``original`` is what a service raised (None: the handler refused before calling it)."""
    got = f"{type(outcome).__name__}: {outcome}"
    if original is not None and outcome is not original:
        return (
            f"{what}: the service raised {type(original).__name__}: {original}, but the caller "
            f"got {got}, a new error in its place. The caller must get the original error: its "
            "type says what went wrong, and its traceback where"
        )
    if original is None and not isinstance(outcome, wanted):
        return (
            f"{what}, but the caller got {got}; the service refuses this with "
            f"{wanted.__name__}, and a caller that catches it should get it"
        )
    return None


@exercise("Exercise 4 (stretch): all or nothing")
def ex4(place_order: Handler) -> str:
    """``place_order(command, inventory, cards)``: hold the total on the card and reserve the
    items, both or neither; a refusal reaches the caller as the error the service raised."""
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
        "the statement names the two calls, with their arguments",
    )
    expect(
        outcome.returned == "o-1",
        f"{name} answered {outcome.returned!r}; answer with the order id",
        "the caller reads the handler's return value in result.returned",
    )
    cases: tuple[tuple[PlaceOrder, str, type[Exception]], ...] = (
        (
            PlaceOrder("o-2", "c-broke", 10.0, (LineItem("book", 1),)),
            "the card of c-broke declined",
            PaymentDeclinedError,
        ),
        (
            PlaceOrder("o-3", "c-7", 30.0, (LineItem("pen", 1), LineItem("book", 3))),
            "o-3 wants 3 x book and only 2 are in stock",
            OutOfStockError,
        ),
    )
    for command, what, wanted in cases:
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
            "after undoing, re-raise the error, so that it goes on to the caller",
        )
        problem = _error_problem(outcome, what, inventory.refusal or cards.refusal, wanted)
        expect(
            problem is None,
            problem or "",
            "inside an except block, raise on its own sends the error being handled on",
        )
    return "a refused order leaves neither a reservation nor a hold behind"
