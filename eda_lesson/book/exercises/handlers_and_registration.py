"""Checks for the exercises of notebook 02 (handlers and registration): subscribe with a union,
listen to every order event through their base class, and register so that re-running a cell
does not double a handler.

Each check registers the learner's handler (or calls the learner's wiring function) on a fresh
bus, dispatches shop events, and reads the answer from the bus, the
:class:`~eda_lesson.core.result.DispatchResult` and the shop's state. What a handler prints is kept
out of the notebook's output.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.checks import handler_name
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderEvent, OrderPaid
from eda_lesson.shop.services import Shop

__all__ = ["ex1", "ex2", "ex3"]


@exercise("Exercise 1: one handler, two event types")
def ex1(handler: object) -> str:
    """``handler``: a function whose annotation makes ``@bus.subscribe`` register it for
    ``OrderPaid`` and ``OrderCancelled``, and nothing else."""
    expect(
        callable(handler),
        f"pass your handler function itself, got {describe_value(handler)}",
        "check.ex1(money_moved)",
    )
    assert callable(handler)
    bus = EventBus()
    try:
        bus.subscribe(handler)
    except TypeError as error:
        expect(
            False,
            str(error),
            "annotate the first parameter with both types: event: OrderPaid | OrderCancelled",
        )
    heard = [t for t in (OrderCreated, OrderPaid, OrderCancelled) if handler in bus.handlers_for(t)]
    for wanted in (OrderPaid, OrderCancelled):
        expect(
            wanted in heard,
            f"{handler_name(handler)} does not hear {wanted.__name__}",
            "a union in the annotation subscribes to each of its members: "
            "event: OrderPaid | OrderCancelled",
        )
    expect(
        OrderCreated not in heard,
        f"{handler_name(handler)} also hears OrderCreated, where no money moves",
        "name just the two types; OrderEvent is too wide",
    )
    for event in (OrderPaid("o-1", 20.0), OrderCancelled("o-2", "changed my mind")):
        result = _quietly(bus, event)
        _expect_ran_once(result, handler)
    return "@bus.subscribe read both types from the annotation"


@dataclass(frozen=True)
class NewsletterSent:
    """Not about an order: an order listener should not hear it."""

    customer_id: str


@dataclass(frozen=True)
class OrderGiftWrapped(OrderEvent):
    """An order event the shop does not have yet: one added after the listener was written."""


@exercise("Exercise 2: listen to every order event")
def ex2(listen_to_orders: object) -> str:
    """``listen_to_orders(bus, handler)`` registers ``handler`` for every order event."""
    expect(
        callable(listen_to_orders),
        f"pass your function itself, got {describe_value(listen_to_orders)}",
        "check.ex2(listen_to_orders)",
    )
    assert callable(listen_to_orders)
    heard: list[str] = []

    def note(event: object) -> None:
        heard.append(type(event).__name__)

    bus = EventBus()
    Shop().register(bus)
    listen_to_orders(bus, note)
    expect(
        any(s.handler is note for s in bus.subscriptions()),
        "listen_to_orders did not register the handler it was given",
        "bus.register(SomeType, handler)",
    )
    _quietly(bus, OrderPaid("o-1", 20.0))
    so_far = ", ".join(heard) or "none of them"
    for name in ("OrderPaid", "ShipmentRequested", "OrderShipped"):
        expect(
            name in heard,
            "paying an order makes OrderPaid, ShipmentRequested and OrderShipped; "
            f"the handler heard: {so_far}",
            "register it once, on the base class that every order event inherits from",
        )
    _quietly(bus, OrderGiftWrapped("o-1"))
    expect(
        "OrderGiftWrapped" in heard,
        "a new kind of order event (OrderGiftWrapped, added later) did not reach the handler",
        "listing today's types misses tomorrow's; register on their base class, OrderEvent",
    )
    _quietly(bus, NewsletterSent("c-1"))
    expect(
        "NewsletterSent" not in heard,
        "the handler also heard NewsletterSent, which is not about an order",
        "object hears every event there is; OrderEvent hears the order events",
    )
    return "one registration on OrderEvent hears every order event, even future ones"


@exercise("Exercise 3: safe to run twice")
def ex3(connect: object) -> str:
    """``connect(bus, shop)`` registers the confirmation email and the stock reservation;
    calling it twice must not double them."""
    expect(
        callable(connect),
        f"pass your function itself, got {describe_value(connect)}",
        "check.ex3(connect)",
    )
    assert callable(connect)
    bus, shop = EventBus(), Shop(stock={"book": 10})
    connect(bus, shop)
    connect(bus, shop)  # what re-running the notebook cell does
    result = _quietly(bus, OrderCreated("o-1", "c-1", 20.0, (LineItem("book", 2),)))
    if not result.ok:
        expect(
            False,
            f"a handler failed: {_first_failure(result)}",
            "register the shop's own methods, which take the event as it is",
        )
    emails = sum(1 for mail in shop.mailer.sent if "o-1" in mail.subject)
    expect(
        emails > 0,
        "no confirmation email went out",
        "register shop.send_confirmation for OrderCreated",
    )
    twice = (
        "register the bound methods themselves (shop.send_confirmation): the bus knows a method "
        "it has seen and replaces it; a lambda or a function made inside connect is new each time"
    )
    expect(
        emails == 1,
        f"after connect ran twice, one order got {emails} confirmation emails",
        twice,
    )
    left = shop.inventory.stock["book"]
    expect(left != 10, "the stock was not reserved", "register shop.reserve_stock for OrderCreated")
    expect(left == 8, f"the order took {10 - left} books instead of 2: reserved twice", twice)
    return "calling connect again replaced the registrations instead of adding to them"


def _quietly(bus: EventBus, event: object) -> DispatchResult:
    """Dispatch, keeping whatever the handlers print out of the notebook."""
    with contextlib.redirect_stdout(io.StringIO()):
        return bus.dispatch(event)


def _expect_ran_once(result: DispatchResult, handler: Callable[[Any], Any]) -> None:
    if not result.ok:
        expect(
            False,
            f"your handler failed: {_first_failure(result)}",
            f"call it yourself on one {type(result.event).__name__} to see the traceback; "
            "it gets either type, so use only what both have, such as event.order_id",
        )
    calls = len(result.handled(handler))
    expect(calls == 1, f"your handler ran {calls} times for one {type(result.event).__name__}")


def _first_failure(result: DispatchResult) -> str:
    call = result.failures[0]
    return f"{call.name} raised {type(call.error).__name__}: {call.error}"
