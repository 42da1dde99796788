"""Checks for the exercises of notebook 05 (aggregates): give the state-stored order a new
command with its rule, publish only what the order decided, and guard a rule across line items.

Each check builds its own orders and bus, runs the learner's code against them and returns
:class:`~eda_lesson.book.exercises.Feedback`; the learner's objects are never changed.
:class:`OrderReturned` is the event exercise 1 records; :data:`MAX_UNITS` is exercise 3's limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.events import LineItem, OrderEvent, OrderPaid
from eda_lesson.shop.stored_order import ItemAdded, Order

__all__ = ["MAX_UNITS", "OrderReturned", "ex1", "ex2", "ex3"]


@dataclass(frozen=True)
class OrderReturned(OrderEvent):
    """The customer sent a shipped order back."""

    reason: str = ""


MAX_UNITS = 10
"""Exercise 3: the most units one order may hold, all its lines together."""


def _call(command: Callable[[], object]) -> Exception | None:
    """Run a command; the exception it raised, or None."""
    try:
        command()
    except Exception as error:
        return error
    return None


def _loaded(order_class: type[Order], status: str, order_id: str = "o-1") -> Order:
    """An order as the repository loads it: saved once, in ``status``, no new events."""
    paid = 42.0 if status in ("paid", "shipped") else 0.0
    return order_class(order_id, "c-7", 42.0, status=status, amount_paid=paid, version=3)


def _snapshot(order: Order) -> tuple[object, ...]:
    return (order.status, order.total, order.items, order.amount_paid, list(order.events))


def _names(events: list[object]) -> list[str]:
    return [type(event).__name__ for event in events]


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a new command and its rule")
def ex1(order_class: type[Order]) -> str:
    """``order_class``: a subclass of Order with ``return_parcel(reason)``."""
    expect(
        isinstance(order_class, type) and issubclass(order_class, Order),
        f"pass your class, a subclass of Order; got {describe_value(order_class)}",
        "check.ex1(ReturnableOrder), without parentheses after the name",
    )
    shipped = _loaded(order_class, "shipped")
    error = _call(lambda: shipped.return_parcel("too small"))  # type: ignore[attr-defined]
    expect(
        error is None,
        f"returning a shipped order raised {type(error).__name__}: {error}",
        "a shipped order is the one order that can be returned",
    )
    expect(
        shipped.events == [OrderReturned("o-1", "too small")],
        f"after return_parcel('too small') the order's events are {_names(shipped.events)}: "
        "the decision was not recorded, so nobody will ever hear of the return",
        "append the fact once the rule holds: self.events.append(OrderReturned(self.id, reason))",
    )
    expect(
        shipped.status == "returned",
        f"after the return the order's status is {shipped.status!r}, not 'returned'",
        'the command changes the state too: self.status = "returned"',
    )
    for stage in ("created", "paid", "cancelled"):
        order = _loaded(order_class, stage)
        before = _snapshot(order)
        error = _call(lambda order=order: order.return_parcel("too small"))  # type: ignore[misc]
        expect(
            error is not None,
            f"returning a {stage} order was allowed: only a shipped order can be returned",
            'check the rule first: if self.status != "shipped", raise DomainError(...)',
        )
        expect(
            isinstance(error, DomainError),
            f"returning a {stage} order was refused with {type(error).__name__}: {error}; a "
            "broken rule of the domain is a DomainError, which callers catch to show the reason",
            "raise DomainError(...) (from eda_lesson.patterns.aggregate)",
        )
        expect(
            _snapshot(order) == before,
            f"return_parcel refused a {stage} order, but only after changing it (status "
            f"{order.status!r}, events {_names(order.events)}): the check belongs at the top of "
            "the command, before anything changes",
            "move the if ... raise DomainError(...) above the lines that change the order",
        )
    return "the rule is checked first, then the state changes and the event is recorded"


# ---------------------------------------------------------------------- exercise 2


class _Heard:
    """A bus with one handler that notes every order event it hears."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[object] = []
        self.bus.register(OrderEvent, self.events.append)


PayAndPublish = Callable[[Order, float, EventBus], Any]


@exercise("Exercise 2: publish only what the order decided")
def ex2(pay_and_publish: PayAndPublish) -> str:
    """``pay_and_publish(order, amount, bus)``: the order decides, the bus hears its events."""
    expect(
        callable(pay_and_publish),
        f"pass your function itself, got {describe_value(pay_and_publish)}",
        "check.ex2(pay_and_publish), without parentheses after the name",
    )
    heard = _Heard()
    order = _loaded(Order, "created")
    results = pay_and_publish(order, 42.0, heard.bus)
    expect(
        order.status == "paid",
        f"after pay_and_publish the order is still {order.status!r}: the order was never asked",
        "let the order decide first: order.pay(amount)",
    )
    expect(
        heard.events == [OrderPaid("o-1", 42.0)],
        f"the bus heard {_names(heard.events) or 'nothing'}, not the one OrderPaid the order "
        "decided",
        "then dispatch what the order recorded: each event of order.events",
    )
    expect(
        order.events == [],
        f"the order still holds {_names(order.events)} after they were published: the next "
        "caller would publish them a second time",
        "hand the events over once: take them out of order.events (order.events.clear())",
    )
    expect(
        isinstance(results, list) and all(isinstance(r, DispatchResult) for r in results),
        f"your function returned {describe_value(results)}",
        "return the list of what bus.dispatch returned, one result per event",
    )
    for stage, amount, why in (
        ("cancelled", 42.0, "a cancelled order"),
        ("created", 40.0, "a payment of 40 for a total of 42"),
    ):
        heard = _Heard()
        order = _loaded(Order, stage)
        error = _call(functools.partial(pay_and_publish, order, amount, heard.bus))
        expect(
            not heard.events,
            f"for {why} the bus heard {_names(heard.events)}: a receipt for a payment the order "
            "refused",
            "dispatch only after order.pay(...) returned: a refusal must publish nothing",
        )
        expect(
            isinstance(error, DomainError),
            f"for {why} your function "
            + ("returned normally" if error is None else f"raised {type(error).__name__}: {error}")
            + "; the order's DomainError must reach the caller, who shows the reason",
            "do not catch the DomainError: let it propagate",
        )
    return "the order decides, and the bus hears only what it decided, once"


# ---------------------------------------------------------------------- exercise 3


def _units(order: Order) -> int:
    return sum(item.quantity for item in order.items)


@exercise("Exercise 3 (stretch): a rule across line items")
def ex3(order_class: type[Order]) -> str:
    """``order_class``: a subclass of Order that holds at most MAX_UNITS units in all."""
    expect(
        isinstance(order_class, type) and issubclass(order_class, Order),
        f"pass your class, a subclass of Order; got {describe_value(order_class)}",
        "check.ex3(LimitedOrder), without parentheses after the name",
    )
    old = _call(
        lambda: order_class("o-old", "c-1", 60.0, (LineItem("book", 12),), status="paid", version=3)
    )
    expect(
        old is None,
        f"loading an order saved before the rule existed (12 books, already paid) raised "
        f"{type(old).__name__}: {old}. A repository builds stored orders by calling the class, "
        "LimitedOrder(...), so a check in __init__ refuses what was decided long ago; it "
        "belongs in the commands that take new items, create and add_item",
        "leave __init__ alone; override create and add_item",
    )
    order = order_class.create("o-1", "c-7", 0.0)
    order.events.clear()
    order.add_item("book", 6, 5.0)
    expect(
        _units(order) == 6 and order.events == [ItemAdded("o-1", "book", 6, 5.0)],
        f"adding 6 books to an empty order left items {order.items} and events "
        f"{_names(order.events)}: an allowed add_item must still add",
        "after the check, call super().add_item(sku, quantity, price)",
    )
    before = _snapshot(order)
    error = _call(lambda: order.add_item("pen", 6, 1.0))
    expect(
        error is not None,
        f"6 books and then 6 pens were accepted: the order now holds {_units(order)} units, "
        f"more than {MAX_UNITS}. The rule is about all the lines together",
        "count the units already on the order (sum of item.quantity) plus the new quantity",
    )
    expect(
        isinstance(error, DomainError),
        f"the add was refused with {type(error).__name__}: {error}; a broken rule is a DomainError",
        "raise DomainError(...) (from eda_lesson.patterns.aggregate)",
    )
    expect(
        _snapshot(order) == before,
        f"add_item refused the pens but only after adding them (items {order.items}): the "
        "check belongs before super().add_item(...)",
        "check first, then call super().add_item(...)",
    )
    error = _call(lambda: order.add_item("pen", 4, 1.0))
    expect(
        error is None and _units(order) == MAX_UNITS,
        f"adding 4 pens to 6 books (exactly {MAX_UNITS} units) was refused: at most "
        f"{MAX_UNITS} means {MAX_UNITS} is allowed",
        f"refuse only when the units would exceed {MAX_UNITS} (>, not >=)",
    )
    big = (LineItem("book", 7), LineItem("pen", 5))
    error = _call(lambda: order_class.create("o-2", "c-7", 12.0, big))
    expect(
        isinstance(error, DomainError),
        "a new order with 7 books and 5 pens (12 units) was "
        + ("created" if error is None else f"refused with {type(error).__name__}: {error}")
        + ": create is a command too, and items arrive through it",
        "override create as a classmethod: check the items, then return super().create(...)",
    )
    return "the rule holds across lines, in the commands, and old orders still load"
