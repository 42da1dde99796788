"""Checks for the exercises of notebook 07 (event sourcing and projections): fold events into a
state with a pure function, retry a command after a concurrency conflict, write a projection
that can be rebuilt, and upcast an event written by an older program.

Each check runs the learner's code on real objects: real events replayed, a real event store
in which another writer really appends between the learner's read and write, a real SQLite
database holding rows in an old format. Nothing the learner's code prints reaches the
notebook's output.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import describe_value
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import (
    ConcurrencyError,
    InMemoryEventStore,
    SQLiteEventStore,
    StoredEvent,
)
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.order import Order, order_registry

__all__ = ["START", "OrderCreatedV1", "ex1", "ex2", "ex3", "ex4"]

START: Mapping[str, object] = MappingProxyType({"status": "new", "paid": 0.0})
"""The state before any event, in exercise 1."""


def _histories() -> list[list[object]]:
    """Order histories the checks replay: shipped, cancelled after paying, cancelled unpaid."""
    return [
        [OrderCreated("o-1", "c-7", 42.0), OrderPaid("o-1", 42.0), OrderShipped("o-1", "T-1")],
        [OrderCreated("o-2", "c-8", 15.0), OrderPaid("o-2", 15.0), OrderCancelled("o-2", "oops")],
        [OrderCreated("o-3", "c-9", 9.5), OrderCancelled("o-3", "changed my mind")],
    ]


def _quietly(function: Callable[..., Any], *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: state as a left fold")
def ex1(evolve: object) -> str:
    """``evolve(state, event) -> state``: a pure function folding order events into a dict
    ``{"status": ..., "paid": ...}``, starting from :data:`START`."""
    expect(
        callable(evolve),
        f"pass your function itself, got {describe_value(evolve)}",
        "check.ex1(evolve)",
    )
    assert callable(evolve)
    for events in _histories():
        for count in range(len(events) + 1):
            prefix = events[:count]
            start = dict(START)
            got = _quietly(functools.reduce, evolve, prefix, start)
            order = Order.from_events(prefix)
            wanted = {"status": order.status, "paid": order.amount_paid}
            names = ", ".join(type(e).__name__ for e in prefix) or "no events"
            expect(
                isinstance(got, dict),
                f"after {names}, the fold gave {describe_value(got)} instead of a dict",
                "return the new state, a dict like {'status': ..., 'paid': ...}, from every call",
            )
            expect(
                got == wanted,
                f"after {names}, the state is {got}, but the order says {wanted}",
                _fold_hint(prefix[-1] if prefix else None),
            )
            expect(
                start == START,
                f"folding {names} changed the starting state to {start}",
                "do not change the state you are given: return a new dict, "
                "{**state, 'status': 'paid'}, so every earlier version stays as it was",
            )
    return "the fold of each history matches the Order, version by version, and nothing changed"


def _fold_hint(event: object) -> str:
    if isinstance(event, OrderPaid):
        return "on OrderPaid the status becomes 'paid' and 'paid' becomes event.amount"
    if isinstance(event, OrderCancelled):
        return "on OrderCancelled the status becomes 'cancelled' (the money paid stays recorded)"
    if isinstance(event, OrderShipped):
        return "on OrderShipped the status becomes 'shipped'"
    return "on OrderCreated the status becomes 'created'; any other event leaves it"


# ---------------------------------------------------------------------- exercise 2


class BusyStore(InMemoryEventStore):
    """An in-memory store where another writer pays the order right after the first read of
    its stream: the reader's next append then meets a real concurrency conflict."""

    def __init__(self) -> None:
        super().__init__()
        self.interfered = False
        self.reads = 0
        self.appends = 0

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        self.appends += 1
        return super().append(stream_id, events, expected_version)

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        events = super().read(stream_id, from_version)
        self.reads += 1
        if not self.interfered and events:
            self.interfered = True
            created = events[0].event
            super().append(stream_id, [OrderPaid(created.order_id, created.total)], len(events))
        return events


@dataclass
class _Heard:
    events: list[object]

    def __call__(self, event: object) -> None:
        self.events.append(event)


def _created_store(store: InMemoryEventStore, order_id: str, total: float) -> None:
    store.append(Order.stream_for(order_id), [OrderCreated(order_id, "c-7", total)], 0)


@exercise("Exercise 2: reload and retry")
def ex2(cancel_with_retry: object) -> str:
    """``cancel_with_retry(store, bus, order_id, reason)``: cancel in a unit of work; on a
    ConcurrencyError load the order again and retry (a few times at most)."""
    expect(
        callable(cancel_with_retry),
        f"pass your function itself, got {describe_value(cancel_with_retry)}",
        "check.ex2(cancel_with_retry)",
    )
    assert callable(cancel_with_retry)
    store, bus, heard = BusyStore(), EventBus(), _Heard([])
    bus.register(OrderCancelled, heard)
    _created_store(store, "o-5", 20.0)
    appends_before = store.appends
    escaped: ConcurrencyError | None = None
    try:
        _quietly(cancel_with_retry, store, bus, "o-5", "out of stock")
    except ConcurrencyError as error:
        escaped = error
    saves, reads = store.appends - appends_before, store.reads
    expect(
        not (saves > 1 and reads == 1),
        f"you saved {saves} times but loaded the order only once",
        "each attempt needs a new UnitOfWork that loads the order again: the old aggregate "
        "remembers version 1, so saving it conflicts every time",
    )
    expect(
        escaped is None,
        f"the ConcurrencyError got out of your function: {escaped}",
        "catch ConcurrencyError around the whole unit of work (load, cancel, commit), "
        "then run it again",
    )
    stream = [s.type_name for s in store.read("order-o-5")]
    expect(
        stream == ["OrderCreated", "OrderPaid", "OrderCancelled"],
        f"the stream is {stream}: the cancel did not land after the other writer's payment",
        "do not swallow the error: after ConcurrencyError, load, cancel and commit again",
    )
    expect(
        len(heard.events) == 1,
        f"the bus heard OrderCancelled {len(heard.events)} times; it should hear it once",
        "commit() publishes; commit once per attempt, in the attempt's unit of work",
    )
    return _ex2_refusal(cancel_with_retry)


def _ex2_refusal(cancel_with_retry: Callable[..., Any]) -> str:
    store, bus = BusyStore(), EventBus()
    store.interfered = True  # nobody interferes: a plain refusal by the aggregate
    _created_store(store, "o-6", 5.0)
    store.append("order-o-6", [OrderPaid("o-6", 5.0), OrderShipped("o-6", "T-6")], 1)
    reads_before = store.reads
    try:
        _quietly(cancel_with_retry, store, bus, "o-6", "too late")
    except Exception as error:
        expect(
            type(error).__name__ == "DomainError",
            f"cancelling a shipped order raised {type(error).__name__}: {error}",
            "only ConcurrencyError means 'try again'; let the aggregate's DomainError out",
        )
    else:
        expect(
            False,
            "cancelling a shipped order returned quietly; the aggregate's refusal was lost",
            "catch only ConcurrencyError; a DomainError is the answer, let it reach the caller",
        )
    expect(
        store.reads - reads_before == 1,
        f"after the aggregate refused, your function loaded the order "
        f"{store.reads - reads_before} times",
        "a refusal will not change on retry: retry only on ConcurrencyError",
    )
    return "the cancel landed after the other writer's payment, and a refusal is not retried"


# ---------------------------------------------------------------------- exercise 3


def _shop_store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    plan: list[tuple[str, list[object]]] = [
        ("o-1", [OrderCreated("o-1", "c-7", 10.0)]),
        ("o-2", [OrderCreated("o-2", "c-8", 20.0)]),
        ("o-1", [OrderPaid("o-1", 10.0)]),
        ("o-3", [OrderCreated("o-3", "c-7", 30.0)]),
        ("o-2", [OrderCancelled("o-2", "changed my mind")]),
        ("o-4", [OrderCreated("o-4", "c-7", 5.0)]),
    ]
    for order_id, events in plan:
        stream = Order.stream_for(order_id)
        store.append(stream, events, store.version(stream))
    return store


@exercise("Exercise 3: a projection you can rebuild")
def ex3(projection_type: object) -> str:
    """``projection_type``: a Projection subclass whose ``orders`` maps each customer to how
    many orders they placed, cleared in ``reset()``."""
    expect(
        isinstance(projection_type, type) and issubclass(projection_type, Projection),
        f"pass your Projection class, got {describe_value(projection_type)}",
        "class OrdersPerCustomer(Projection): ...; then check.ex3(OrdersPerCustomer)",
    )
    assert isinstance(projection_type, type)
    store = _shop_store()
    wanted = {"c-7": 3, "c-8": 1}
    live = projection_type()
    expect(
        hasattr(live, "orders"),
        "a new projection has no attribute 'orders'",
        "set self.orders = {} in reset(); Projection.__init__ calls reset()",
    )
    _quietly(live.catch_up, store)
    expect(
        live.orders == wanted,
        f"after catching up, orders is {live.orders}; the store says {wanted}",
        "mark a method @applies(OrderCreated) that adds 1 to self.orders[event.customer_id]",
    )
    store.append("order-o-5", [OrderCreated("o-5", "c-9", 1.0)], 0)
    _quietly(live.catch_up, store)
    expect(
        live.orders == {**wanted, "c-9": 1},
        f"catching up again gave {live.orders}; only the new OrderCreated should count",
        "leave the position to Projection: use @when methods, do not read the store yourself",
    )
    _quietly(live.rebuild, store)
    expect(
        live.orders == {**wanted, "c-9": 1},
        f"after rebuild(), orders is {live.orders}: the old counts were not thrown away",
        "clear the read model in reset() (def reset(self): super().reset(); self.orders = {})"
        ", not in __init__: rebuild() calls reset()",
    )
    return "it catches up with what is new, and a rebuild from zero gives the same counts"


# ---------------------------------------------------------------------- exercise 4


@dataclass(frozen=True)
class OrderCreatedV1:
    """OrderCreated as the shop's first release wrote it: the customer under another name,
    the total in cents, no items."""

    order_id: str
    customer: str
    total_cents: int


def _old_rows(path: str) -> None:
    old = EventRegistry()
    old.register(OrderCreatedV1, name="OrderCreated", version=1)
    with SQLiteEventStore(path, old) as first_release:
        first_release.append("order-o-7", [OrderCreatedV1("o-7", "c-1", 4250)], 0)
        first_release.append("order-o-8", [OrderCreatedV1("o-8", "c-2", 99)], 0)


@contextlib.contextmanager
def _database() -> Iterator[str]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        yield str(Path(folder) / "shop.db")


@exercise("Exercise 4: upcast an old event")
def ex4(upcaster: object) -> str:
    """``upcaster(payload) -> payload``: OrderCreated v1 (``customer``, ``total_cents``) to v2,
    the shape of today's OrderCreated."""
    expect(
        callable(upcaster),
        f"pass your upcaster function itself, got {describe_value(upcaster)}",
        "check.ex4(order_created_v1_to_v2)",
    )
    assert callable(upcaster)
    problem = ""
    with _database() as path:
        _old_rows(path)
        today = order_registry()
        today.register(OrderCreated, version=2)
        today.upcaster("OrderCreated", 1, upcaster)
        with SQLiteEventStore(path, today) as program:
            stored = [row.payload for row in program.rows()]
            try:
                read = [s.event for s in program.read_all()]
            except Exception as error:
                problem = str(error)
                read = None
    expect(read is not None, f"reading the old rows failed: {problem}", _upcast_hint(problem))
    wanted = [OrderCreated("o-7", "c-1", 42.5), OrderCreated("o-8", "c-2", 0.99)]
    expect(
        read == wanted,
        f"the old rows read back as {read}; they should be {wanted}",
        "total is in euros: total_cents / 100",
    )
    expect(
        stored[0] == '{"order_id":"o-7","customer":"c-1","total_cents":4250}',
        "the stored row changed; an upcaster only changes what is read",
        "return a new dict; never write to the store",
    )
    return "old rows read as today's OrderCreated, and the stored rows stay as they were"


def _upcast_hint(error: str) -> str:
    if "missing required fields" in error:
        return (
            "build today's shape: {'order_id': ..., 'customer_id': payload['customer'], "
            "'total': ..., 'items': []}"
        )
    if "does not have" in error:
        return "take the old keys out: build a new dict with only today's fields"
    if "items" in error:
        return "items is a list of line items; an order of the first release has none: []"
    return "return {'order_id': ..., 'customer_id': ..., 'total': ..., 'items': []}"
