"""Checks for the exercises of notebook 05 (aggregates): give the state-stored order a new
command with its rule, publish only what the order decided (every pending event, oldest
first, once), and guard a rule across line items.

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
    """The events' type names, an ItemAdded with its product: ``ItemAdded(book)``."""
    return [
        f"ItemAdded({event.sku})" if isinstance(event, ItemAdded) else type(event).__name__
        for event in events
    ]


# ---------------------------------------------------------------------- exercise 1


def _recording_problem(order: Order, pending: list[object], reason: str) -> str | None:
    """What is wrong with what ``return_parcel(reason)`` recorded on an order whose events
    held ``pending`` before the call; None if it appended exactly one right OrderReturned."""
    events = list(order.events)
    if events[: len(pending)] != pending:
        if any(isinstance(event, OrderReturned) for event in events) and not any(
            event in events for event in pending
        ):
            return (
                f"return_parcel replaced the order's events: before the return they held "
                f"{_names(pending)}, not published yet, and now only {_names(events)}. What "
                "was pending is lost, and nobody will ever hear of it: a command adds its event "
                "to the list, it never starts a new one"
            )
        return (
            f"return_parcel changed the events that were already pending: before "
            f"{_names(pending)}, after {_names(events)}. A command leaves them as they are and "
            "adds its own event at the end"
        )
    new = events[len(pending) :]
    returned = [event for event in new if isinstance(event, OrderReturned)]
    if not returned:
        return (
            f"after return_parcel({reason!r}) the order's events are {_names(events)}: no "
            "OrderReturned was recorded, so nobody will ever hear of the return"
        )
    if len(returned) > 1:
        return (
            f"one return_parcel({reason!r}) recorded {len(returned)} OrderReturned events: "
            "every handler would hear of one parcel coming back several times"
        )
    if len(new) > 1:
        others = [event for event in new if not isinstance(event, OrderReturned)]
        return (
            f"besides OrderReturned, return_parcel recorded {_names(others)}: the command "
            "decided one thing, a return, so it records one fact"
        )
    (event,) = returned
    if event.order_id != order.id:
        return (
            f"the OrderReturned names order {event.order_id!r}, but the order returned is "
            f"{order.id!r}: handlers would look for the wrong order"
        )
    if event.reason != reason:
        return (
            f"OrderReturned was recorded, but with reason {event.reason!r} instead of the "
            f"{reason!r} passed to return_parcel: whoever handles the return (the refund, the "
            "warehouse) hears that a parcel came back, never why"
        )
    return None


def _expect_refused(order: Order, allowed: str, reason: str = "too small") -> None:
    """``order.return_parcel(reason)`` must raise DomainError and change nothing; ``allowed``
    is the message if it was accepted."""
    before = _snapshot(order)
    error = _call(lambda: order.return_parcel(reason))  # type: ignore[attr-defined]
    expect(
        error is not None,
        allowed,
        'check the rule first: if self.status != "shipped", raise DomainError(...)',
    )
    expect(
        isinstance(error, DomainError),
        f"returning a {before[0]} order was refused with {type(error).__name__}: {error}; a "
        "broken rule of the domain is a DomainError, which callers catch to show the reason",
        "raise DomainError(...) (from eda_lesson.patterns.aggregate)",
    )
    expect(
        _snapshot(order) == before,
        f"return_parcel refused a {before[0]} order, but only after changing it (status "
        f"{order.status!r}, events {_names(order.events)}): the check belongs at the top of "
        "the command, before anything changes",
        "move the if ... raise DomainError(...) above the lines that change the order",
    )


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
    problem = _recording_problem(shipped, [], "too small")
    expect(
        problem is None,
        problem or "",
        "append the fact once the rule holds: self.events.append(OrderReturned(self.id, reason))",
    )
    expect(
        shipped.status == "returned",
        f"after the return the order's status is {shipped.status!r}, not 'returned'",
        'the command changes the state too: self.status = "returned"',
    )
    just_shipped = _loaded(order_class, "paid")
    just_shipped.ship("T-1")  # its OrderShipped is not published yet
    pending = list(just_shipped.events)
    error = _call(lambda: just_shipped.return_parcel("too small"))  # type: ignore[attr-defined]
    expect(
        error is None,
        f"returning an order shipped a moment ago (its OrderShipped not yet published) raised "
        f"{type(error).__name__}: {error}",
        "a shipped order can be returned, whatever its events hold",
    )
    problem = _recording_problem(just_shipped, pending, "too small")
    expect(
        problem is None,
        problem or "",
        "keep the list and add to it: self.events.append(...), never self.events = [...]",
    )
    for stage in ("created", "paid", "cancelled"):
        _expect_refused(
            _loaded(order_class, stage),
            f"returning a {stage} order was allowed: only a shipped order can be returned",
        )
    _expect_refused(
        shipped,
        "the order already returned was allowed to return a second time: a parcel comes back "
        "once, and a second OrderReturned would have the shop take it back (and refund it) "
        "twice. Once returned, the order is no longer shipped",
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


def _new_with_lines() -> Order:
    """A new order of two lines, 42 in all, none of whose events was published yet."""
    order = Order.create("o-1", "c-7", 0.0)
    order.add_item("book", 2, 15.0)
    order.add_item("pen", 1, 12.0)
    return order


def _publishing_problem(heard: list[object], left: list[object], due: list[object]) -> str | None:
    """What is wrong when the bus heard ``heard`` and the order still holds ``left``, while
    ``due`` (every event the order held, oldest first) should have been published once."""
    if heard == due:
        if not left:
            return None
        return (
            f"the bus heard every event, but the order still holds {_names(left)}: the next "
            "caller would publish them a second time"
        )
    if sorted(map(repr, heard)) == sorted(map(repr, due)):
        return (
            f"the bus heard {_names(heard)}, but the order recorded {_names(due)}, in that "
            "order: a handler would hear of a payment before the order it pays for. Publish "
            "them oldest first"
        )
    missing = [event for event in due if event not in heard]
    if any(event not in due for event in heard) or len(heard) + len(missing) != len(due):
        return (
            f"the bus heard {_names(heard)}, but the order recorded {_names(due)}: publish "
            "exactly the order's own events, each once"
        )
    if left == missing and len(due) > 2 and heard == due[::2]:
        return (
            f"the bus heard {_names(heard)} and order.events still holds {_names(left)}: "
            "every other event was skipped. That is what removing items from a list while a "
            "for loop walks over it does (the list shifts under the loop, which moves on)"
        )
    if left == missing:
        return (
            f"the bus heard only {_names(heard)}; {_names(missing)}, recorded before this "
            "payment, are still waiting in order.events. They are facts nobody has heard yet: "
            "publish every event the order holds, oldest first, not only the newest"
        )
    if not any(event in left for event in missing):
        return (
            f"the bus heard only {_names(heard)}; {_names(missing)}, which the order "
            "recorded before this payment, were never published and are gone from "
            "order.events: they were thrown away, and nobody will ever hear of them"
        )
    return (
        f"the bus heard {_names(heard)} and the order still holds {_names(left)}, but it "
        f"recorded {_names(due)}: publish each of them once, oldest first, then empty the list"
    )


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
    _expect_refusals_publish_nothing(pay_and_publish)
    heard = _Heard()
    order = _new_with_lines()
    due = [*order.events, OrderPaid("o-1", 42.0)]
    results = pay_and_publish(order, 42.0, heard.bus)
    problem = _publishing_problem(heard.events, list(order.events), due)
    expect(
        problem is None,
        f"for a new order that still held {len(due) - 1} unpublished events, {problem}",
        "copy the list, empty it, then dispatch the copy: decided = list(order.events); "
        "order.events.clear()",
    )
    expect(
        isinstance(results, list) and len(results) == len(due),
        f"your function published {len(due)} events but returned {describe_value(results)}: "
        "one dispatch result per event",
        "return [bus.dispatch(event) for event in decided]",
    )
    return "the order decides, and the bus hears all it decided, oldest first, once"


def _expect_refusals_publish_nothing(pay_and_publish: PayAndPublish) -> None:
    """A payment the order refuses reaches the caller as DomainError; nothing is published
    and the order's pending events stay where they were."""
    cancelled = _new_with_lines()
    cancelled.cancel("changed my mind")
    for order, amount, why in (
        (cancelled, 42.0, "a cancelled order"),
        (_new_with_lines(), 40.0, "a payment of 40 for a total of 42"),
    ):
        heard = _Heard()
        pending = list(order.events)
        error = _call(functools.partial(pay_and_publish, order, amount, heard.bus))
        expect(
            not any(isinstance(event, OrderPaid) for event in heard.events),
            f"for {why} the bus heard {_names(heard.events)}: a receipt for a payment the "
            "order refused",
            "dispatch only after order.pay(...) returned: a refusal must publish nothing",
        )
        expect(
            not heard.events,
            f"for {why} the order refused the payment, yet the bus heard "
            f"{_names(heard.events)}: a refused command publishes nothing, not even the "
            "events that were pending before it",
            "let order.pay(...) come first: when it raises, nothing after it runs",
        )
        expect(
            isinstance(error, DomainError),
            f"for {why} your function "
            + ("returned normally" if error is None else f"raised {type(error).__name__}: {error}")
            + "; the order's DomainError must reach the caller, who shows the reason",
            "do not catch the DomainError: let it propagate",
        )
        expect(
            list(order.events) == pending,
            f"for {why} the order refused and its DomainError reached the caller, but "
            f"order.events went from {_names(pending)} to {_names(order.events)}: events "
            "nobody had heard yet were thrown away. A refusal leaves the order, and the "
            "events it holds, as they were",
            "touch order.events only after order.pay(...) returned",
        )


# ---------------------------------------------------------------------- exercise 3


def _units(order: Order) -> int:
    return sum(item.quantity for item in order.items)


def _overrides(order_class: type[Order], name: str) -> bool:
    """Whether ``order_class`` (or a class between it and Order) defines ``name`` itself."""
    mro = order_class.__mro__
    return any(name in vars(klass) for klass in mro[: mro.index(Order)])


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
    own_create = _overrides(order_class, "create")
    expect(
        error is not None or own_create,
        "a new order with 7 books and 5 pens (12 units) was created: create is a command too, "
        "and items arrive through it",
        "override create as a classmethod: check the items, then return super().create(...)",
    )
    expect(
        error is not None,
        "your create let a new order with 7 books and 5 pens (12 units) through: no line "
        f"has more than {MAX_UNITS}, but together they do. Count all the lines of the new order",
        "sum the quantity of every item passed to create before calling super().create(...)",
    )
    expect(
        isinstance(error, DomainError),
        f"a new order with 7 books and 5 pens (12 units) was refused with "
        f"{type(error).__name__}: {error}; a broken rule is a DomainError",
        "raise DomainError(...) (from eda_lesson.patterns.aggregate)",
    )
    fits = (LineItem("book", 6), LineItem("pen", 4))
    created: list[Order] = []
    error = _call(lambda: created.append(order_class.create("o-3", "c-7", 10.0, fits)))
    expect(
        error is None,
        f"a new order with 6 books and 4 pens (exactly {MAX_UNITS} units) was refused with "
        f"{type(error).__name__}: {error}. At most {MAX_UNITS} means {MAX_UNITS} is allowed",
        f"in create too, refuse only when the units exceed {MAX_UNITS} (>, not >=)",
    )
    expect(
        created[0].items == fits,
        f"create('o-3', ..., items=[6 books, 4 pens]) made an order with items "
        f"{created[0].items}: the lines passed in were lost on the way to super().create",
        "pass the items on: return super().create(order_id, customer_id, total, items)",
    )
    return "the rule holds across lines, in the commands, and old orders still load"
