"""Checks for the exercises of notebook 04 (aggregates and the unit of work): give an aggregate a
new command with its rule, save before publishing, and handle a command through a unit of work.

Each check builds its own event store, bus, shop and orders, runs the learner's code against
them and returns :class:`~eda_lesson.book.exercises.Feedback`; the learner's objects are never
changed. :class:`OrderReturned` is the event exercise 1 records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.store import ConcurrencyError, EventStore, InMemoryEventStore
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderEvent
from eda_lesson.shop.order import Order
from eda_lesson.shop.services import Shop

__all__ = ["OrderReturned", "ex1", "ex2", "ex3"]


@dataclass(frozen=True)
class OrderReturned(OrderEvent):
    """The customer sent a shipped order back."""

    reason: str = ""


# ---------------------------------------------------------------------- exercise 1


def _call(command: Callable[[], object]) -> Exception | None:
    """Run a command; the exception it raised, or None."""
    try:
        command()
    except Exception as error:
        return error
    return None


@exercise("Exercise 1: a new command and its rule")
def ex1(order_class: type[Order]) -> str:
    """``order_class``: a subclass of Order with ``return_parcel(reason)``."""
    expect(
        isinstance(order_class, type) and issubclass(order_class, Order),
        f"pass your class, a subclass of Order; got {describe_value(order_class)}",
        "check.ex1(ReturnableOrder), without parentheses after the name",
    )
    shipped = order_class.create("o-1", "c-7", 42.0)
    shipped.pay()
    shipped.ship("TRACK-1")
    before = shipped.version
    error = _call(lambda: shipped.return_parcel("too small"))  # type: ignore[attr-defined]
    expect(
        error is None,
        f"returning a shipped order raised {type(error).__name__}: {error}",
        "a shipped order is the one order that can be returned",
    )
    expect(
        shipped.pending[-1:] == [OrderReturned("o-1", "too small")],
        f"after return_parcel('too small') the last pending event is "
        f"{shipped.pending[-1]!r}, so nothing was recorded",
        "record the fact: self.record(OrderReturned(self.id, reason)); do not set the status "
        "yourself",
    )
    expect(
        shipped.status == "returned" and shipped.version == before + 1,
        f"after recording OrderReturned the order's status is {shipped.status!r}",
        'the method marked @applies(OrderReturned) sets self.status = "returned"',
    )
    replayed = order_class.from_events(shipped.pending)
    expect(
        replayed.status == "returned",
        f"rebuilt from its events, the order's status is {replayed.status!r}, not 'returned': "
        "the status was changed by the command, not by applying the event",
        "change the state only in the @applies(OrderReturned) method; the command checks the "
        "rule and calls self.record(...)",
    )
    for stage, make in (("created", _created), ("paid", _paid)):
        order = make(order_class)
        pending = list(order.pending)
        error = _call(lambda order=order: order.return_parcel("too small"))  # type: ignore[misc]
        expect(
            isinstance(error, DomainError),
            f"returning a {stage} order was "
            + ("allowed" if error is None else f"refused with {type(error).__name__}: {error}"),
            'raise DomainError unless self.status == "shipped": only a shipped order can be '
            "returned",
        )
        expect(
            order.pending == pending and order.status == stage,
            f"return_parcel refused a {stage} order but still changed it (pending: "
            f"{[type(event).__name__ for event in order.pending]})",
            "check the rule first, and record only when it holds",
        )
    return "the rule is checked, the event recorded, and replay rebuilds the state"


def _created(order_class: type[Order]) -> Order:
    return order_class.create("o-2", "c-7", 10.0)


def _paid(order_class: type[Order]) -> Order:
    order = order_class.create("o-3", "c-7", 10.0)
    order.pay()
    return order


# ---------------------------------------------------------------------- exercise 2


class _Witness:
    """A handler that notes, for each event it hears, what the store held at that moment."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.heard: list[tuple[str, list[str]]] = []

    def __call__(self, event: OrderEvent) -> None:
        stored = [s.type_name for s in self.store.read(Order.stream_for(event.order_id))]
        self.heard.append((type(event).__name__, stored))


def _world() -> tuple[InMemoryEventStore, EventBus, _Witness]:
    store, bus = InMemoryEventStore(), EventBus()
    witness = _Witness(store)
    bus.register(OrderEvent, witness)
    return store, bus, witness


CommitFunction = Callable[[EventStore, EventBus, Order], Any]


@exercise("Exercise 2: save, then publish")
def ex2(commit: CommitFunction) -> str:
    """``commit(store, bus, order)`` saves the order's pending events, then publishes them."""
    expect(
        callable(commit),
        f"pass your function itself, got {describe_value(commit)}",
        "check.ex2(commit), without parentheses after the name",
    )
    store, bus, witness = _world()
    order = Order.create("o-1", "c-7", 42.0)
    results = commit(store, bus, order)
    saved = [s.type_name for s in store.read("order-o-1")]
    expect(
        saved == ["OrderCreated"],
        f"after your commit the stream order-o-1 holds {saved}",
        "append the pending events: store.append(order.stream_id, order.pending, "
        "order.saved_version)",
    )
    expect(
        witness.heard,
        "no handler heard OrderCreated: the events were saved but never published",
        "after saving, dispatch each event: bus.dispatch(event)",
    )
    expect(
        witness.heard == [("OrderCreated", ["OrderCreated"])],
        f"a handler heard OrderCreated when the store held {witness.heard[0][1]}: the event was "
        "published before it was saved",
        "save first, then publish: if the save fails, nobody must have heard of the event",
    )
    expect(
        isinstance(results, list) and all(isinstance(r, DispatchResult) for r in results),
        f"your commit returned {describe_value(results)}",
        "return the list of what bus.dispatch returned, one result per event",
    )
    expect(
        order.pending == [] and order.saved_version == 1,
        f"after the commit the order still holds pending events "
        f"{[type(event).__name__ for event in order.pending]}, as if nothing had been saved",
        "once saved, take the events out: events = order.collect_pending()",
    )
    _check_conflict(commit)
    return "saved first, published after, and a conflict publishes nothing"


def _check_conflict(commit: CommitFunction) -> None:
    """A clerk cancels while the customer's payment is being decided: the payment must fail."""
    store, bus, witness = _world()
    store.append("order-o-2", [OrderCreated("o-2", "c-7", 10.0)], 0)
    order = Order.from_events(s.event for s in store.read("order-o-2"))
    order.pay()
    store.append("order-o-2", [OrderCancelled("o-2", "out of stock")], 1)
    error = _call(lambda: commit(store, bus, order))
    saved = [s.type_name for s in store.read("order-o-2")]
    expect(
        saved == ["OrderCreated", "OrderCancelled"],
        f"the order was cancelled after it was loaded, yet your commit saved OrderPaid on top "
        f"of it: the stream now holds {saved}",
        "pass the version the order was loaded at, order.saved_version, as expected_version "
        "(not store.version(...)): then the store refuses a decision made on old information",
    )
    expect(
        not witness.heard,
        f"the save was refused, but handlers heard {[name for name, _ in witness.heard]}: a "
        "receipt for a payment the store never recorded",
        "publish only after store.append(...) returned",
    )
    expect(
        isinstance(error, ConcurrencyError),
        "the store refused the save, but your commit "
        + ("returned normally" if error is None else f"raised {type(error).__name__}: {error}"),
        "let the ConcurrencyError reach the caller: it must load the order again and decide again",
    )


# ---------------------------------------------------------------------- exercise 3


def _shop_with_orders() -> tuple[InMemoryEventStore, EventBus, Shop]:
    """A store holding order o-1 (created) and o-2 (shipped), and a bus with the shop on it."""
    store, bus, shop = InMemoryEventStore(), EventBus(), Shop()
    shop.register(bus)
    created = Order.create("o-1", "c-7", 42.0)
    store.append(created.stream_id, created.collect_pending(), 0)
    shipped = Order.create("o-2", "c-8", 10.0)
    shipped.pay()
    shipped.ship("TRACK-2")
    store.append(shipped.stream_id, shipped.collect_pending(), 0)
    return store, bus, shop


@exercise("Exercise 3: a command handler")
def ex3(cancel_order: Callable[[EventStore, EventBus, str, str], Any]) -> str:
    """``cancel_order(store, bus, order_id, reason)`` cancels through a unit of work."""
    expect(
        callable(cancel_order),
        f"pass your function itself, got {describe_value(cancel_order)}",
        "check.ex3(cancel_order), without parentheses after the name",
    )
    store, bus, shop = _shop_with_orders()
    results = cancel_order(store, bus, "o-1", "changed my mind")
    saved = [s.event for s in store.read("order-o-1")]
    heard = shop.orders.status.get("o-1") == "cancelled"
    expect(
        saved[1:] or heard,
        "nothing was saved and no handler ran: the unit of work threw the recorded "
        "OrderCancelled away when the with block ended",
        "call uow.commit() inside the with block, after order.cancel(reason)",
    )
    expect(
        saved[1:] == [OrderCancelled("o-1", "changed my mind")],
        f"the stream order-o-1 holds {[type(e).__name__ for e in saved]}: OrderCancelled was "
        "published but never saved",
        "let the aggregate decide and the unit of work save: in a with UnitOfWork(store, bus) "
        "block, load the order with uow.repository(Order).get(order_id), cancel it, then commit",
    )
    expect(
        heard,
        "OrderCancelled was saved but the shop's handlers never heard it",
        "commit with a UnitOfWork(store, bus): it publishes on the bus after saving",
    )
    expect(
        isinstance(results, list) and [type(r.event) for r in results] == [OrderCancelled],
        f"your function returned {describe_value(results)}",
        "return what uow.commit() returns: one dispatch result per published event",
    )
    store, bus, shop = _shop_with_orders()
    error = _call(lambda: cancel_order(store, bus, "o-2", "too late"))
    saved_types = [s.type_name for s in store.read("order-o-2")]
    expect(
        saved_types[-1] == "OrderShipped" and "o-2" not in shop.orders.status,
        f"order o-2 had shipped, yet cancelling it went through: the stream holds {saved_types}",
        "go through the aggregate: order.cancel(reason) checks the rules before it records",
    )
    expect(
        isinstance(error, DomainError),
        "cancelling the shipped order o-2 "
        + ("returned normally" if error is None else f"raised {type(error).__name__}: {error}"),
        "let the DomainError from order.cancel(...) reach the caller, who can show it",
    )
    return "the aggregate decides, the unit of work saves, then the shop hears of it"
