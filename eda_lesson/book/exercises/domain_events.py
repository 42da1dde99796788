"""Checks for the exercises of notebook 01 (domain events): define a frozen event, derive a new
event instead of changing one, and build an event from a mutable cart.

Each check creates its own events and carts, calls the learner's code with them, dispatches
the outcome on a fresh bus (with the shop's handlers where the shop is involved) and returns
:class:`~eda_lesson.book.exercises.Feedback`. :class:`Cart` and :class:`Customer` are the mutable
objects exercise 3 starts from; they are not part of the shop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import describe_value
from eda_lesson.shop.events import LineItem, OrderCreated, OrderEvent
from eda_lesson.shop.services import Shop

__all__ = ["Cart", "Customer", "ex1", "ex2", "ex3"]

# The last word of a good event name: a regular past tense ends in "ed"; these are not regular.
_IRREGULAR_PAST = frozenset({"Paid", "Sent", "Sold", "Made", "Built", "Bought", "Left", "Won"})


@exercise("Exercise 1: a frozen event")
def ex1(event_class: object) -> str:
    """``event_class``: the learner's ``OrderRefunded`` class (order_id, amount)."""
    expect(
        isinstance(event_class, type),
        f"pass the class itself, got {describe_value(event_class)}",
        "check.ex1(OrderRefunded), without parentheses after the name",
    )
    assert isinstance(event_class, type)
    name = event_class.__name__
    expect(
        _past_tense(name),
        f"{name} does not read as a fact in the past tense; it sounds like a command",
        "name what happened: OrderRefunded",
    )
    inherited = (
        " (inheriting from one is not enough)" if dataclasses.is_dataclass(event_class) else ""
    )
    expect(
        "__dataclass_params__" in vars(event_class),
        f"{name} is not a dataclass{inherited}",
        "put @dataclass(frozen=True) on the line above class",
    )
    expect(
        _is_frozen(event_class),
        f"{name} is a dataclass but not a frozen one: a handler could change its fields",
        "write @dataclass(frozen=True)",
    )
    expect(
        issubclass(event_class, OrderEvent),
        f"{name} does not inherit from OrderEvent, so it is not an order event like the others",
        f"class {name}(OrderEvent): it then gets order_id from OrderEvent",
    )
    try:
        event = event_class(order_id="o-5", amount=12.5)
    except TypeError as error:
        expect(
            False,
            f"{name}(order_id='o-5', amount=12.5) failed: {error}",
            "give it one field of its own, amount: float (order_id comes from OrderEvent)",
        )
    expect(
        _fields(event) == {"order_id": "o-5", "amount": 12.5},
        f"{name}(order_id='o-5', amount=12.5) has the fields {_fields(event)}",
        "exactly two fields: order_id (from OrderEvent) and amount: float",
    )
    try:
        event.amount = 0.0  # the check's own event, never the learner's
    except dataclasses.FrozenInstanceError:
        pass
    else:
        expect(False, f"changing {name}.amount worked; it must raise", "frozen=True")
    heard: list[object] = []
    bus = EventBus()
    bus.register(OrderEvent, heard.append)
    result = bus.dispatch(event)
    expect(result.ok and heard == [event], "a handler for OrderEvent did not hear your event")
    return f"{name} is a frozen fact, and handlers of every order event hear it"


def _past_tense(name: str) -> bool:
    words = [word for word in _camel_words(name) if word]
    return bool(words) and (words[-1].endswith("ed") or words[-1] in _IRREGULAR_PAST)


def _camel_words(name: str) -> list[str]:
    words: list[str] = []
    current = ""
    for letter in name:
        if letter.isupper() and current:
            words.append(current)
            current = ""
        current += letter
    return [*words, current]


def _is_frozen(cls: type) -> bool:
    params = vars(cls).get("__dataclass_params__")
    return bool(getattr(params, "frozen", False))


def _fields(event: object) -> dict[str, object]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]


@exercise("Exercise 2: a new event, not a changed one")
def ex2(with_discount: object) -> str:
    """``with_discount(event, percent)``: a new ``OrderCreated`` with the total reduced."""
    expect(
        callable(with_discount),
        f"pass your function itself, got {describe_value(with_discount)}",
        "check.ex2(with_discount)",
    )
    assert callable(with_discount)
    original = OrderCreated("o-3", "c-2", 80.0, (LineItem("pen", 2), LineItem("ink", 1)))
    try:
        discounted = with_discount(original, 25)
    except dataclasses.FrozenInstanceError as error:
        expect(
            False,
            f"your function tried to change the event it was given ({error})",
            "events are frozen; make a new one with dataclasses.replace(event, total=...)",
        )
    expect(
        isinstance(discounted, OrderCreated),
        f"with_discount returned {describe_value(discounted)} instead of an OrderCreated",
        "return the new event: return replace(event, total=...)",
    )
    assert isinstance(discounted, OrderCreated)
    expect(
        math.isclose(discounted.total, 60.0),
        f"25% off 80.0 should give a total of 60.0, your event says {discounted.total!r}",
        "event.total * (1 - percent / 100)",
    )
    for name in ("order_id", "customer_id", "items"):
        expect(
            getattr(discounted, name) == getattr(original, name),
            f"the new event's {name} is {getattr(discounted, name)!r}, "
            f"not {getattr(original, name)!r} as in the original",
            "dataclasses.replace copies every field you do not name",
        )
    expect(
        original.total == 80.0,
        "the original event changed: it must still say 80.0",
        "build a new event",
    )
    bus, shop = EventBus(), Shop(stock={"pen": 5, "ink": 5})
    shop.register(bus)
    bus.dispatch(discounted).raise_if_failed()
    expect(
        shop.orders.total["o-3"] == discounted.total,
        "the shop did not record the discounted total",
    )
    return "the original fact is untouched and the shop recorded the discounted total"


@dataclass
class Customer:
    """A customer as the shop's account page keeps it: name and email change over time."""

    customer_id: str
    name: str
    email: str


@dataclass
class Cart:
    """A cart being filled: it keeps changing until the order is placed, and after."""

    customer: Customer
    lines: list[LineItem] = field(default_factory=list)
    total: float = 0.0


@exercise("Exercise 3: what goes into an event")
def ex3(order_created_from: object) -> str:
    """``order_created_from(cart, order_id)``: the ``OrderCreated`` fact of placing ``cart``."""
    expect(
        callable(order_created_from),
        f"pass your function itself, got {describe_value(order_created_from)}",
        "check.ex3(order_created_from)",
    )
    assert callable(order_created_from)
    cart = Cart(Customer("c-4", "Ada", "ada@example.com"), [LineItem("book", 1)], 31.0)
    cart.lines.append(LineItem("pen", 3))  # a cart is filled one line at a time
    event = order_created_from(cart, "o-8")
    expect(
        isinstance(event, OrderCreated),
        f"order_created_from returned {describe_value(event)} instead of an OrderCreated",
        "return OrderCreated(order_id, ...)",
    )
    assert isinstance(event, OrderCreated)
    expect(
        event.customer_id == "c-4",
        f"customer_id is {describe_value(event.customer_id)}, not the customer's id 'c-4'",
        "put ids in an event, not whole objects: cart.customer.customer_id",
    )
    expect(
        (event.order_id, event.total) == ("o-8", 31.0),
        f"order_id and total are {event.order_id!r} and {event.total!r}, not 'o-8' and 31.0",
        "take the order id you were given and cart.total",
    )
    items: object = event.items  # the annotation says tuple; a learner may pass anything
    expect(
        items is not cart.lines,
        "the event holds the cart's own list: when the cart changes later, the event changes too",
        "take a snapshot: tuple(cart.lines)",
    )
    expect(
        isinstance(items, tuple),
        f"items is {describe_value(items)}; a list inside a frozen event can still change",
        "store the items as a tuple: tuple(cart.lines)",
    )
    expect(
        event.items == (LineItem("book", 1), LineItem("pen", 3)),
        f"items is {event.items!r}, not the two lines of the cart",
        "tuple(cart.lines)",
    )
    cart.lines.append(LineItem("mug", 1))  # the check's own cart, after the order was placed
    expect(len(event.items) == 2, "adding to the cart afterwards changed the event")
    bus, shop = EventBus(), Shop(stock={"book": 5, "pen": 5})
    shop.register(bus)
    bus.dispatch(event).raise_if_failed()
    expect(
        shop.inventory.stock == {"book": 4, "pen": 2},
        f"the shop's stock after your event is {shop.inventory.stock}",
    )
    return "ids and a snapshot of the items: the shop reserved the stock and emailed c-4"
