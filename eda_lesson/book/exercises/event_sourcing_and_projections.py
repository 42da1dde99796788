"""Checks for the exercises of notebook 09 (event sourcing and projections): fold events into a
state with a pure function, retry a command after a concurrency conflict (and give up when
the conflict never clears), write a projection that can be rebuilt, upcast an event written
by an older program, and (stretch) keep a read model right when events arrive out of order.

Each check runs the learner's code on real objects: real events replayed, a real event store
in which another writer really appends between the learner's read and write, a real SQLite
database holding rows in an old format. Nothing the learner's code prints reaches the
notebook's output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import describe_value
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import DomainError
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

__all__ = ["START", "ArrivingRevenue", "OrderCreatedV1", "ex1", "ex2", "ex3", "ex4", "ex5"]

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
            _check_fold(evolve, events[:count])
    return "the fold of each history matches the Order, version by version, and nothing changed"


def _check_fold(evolve: Callable[..., Any], prefix: list[object]) -> None:
    """Fold ``prefix`` one step at a time, keeping every state the fold passed through, and
    compare the last with the Order; then check that no state was changed after it was made."""
    states: list[object] = [dict(START)]
    kept: list[object] = [dict(START)]  # copies, to tell later whether a state was changed
    for event in prefix:
        states.append(_quietly(evolve, states[-1], event))
        kept.append(dict(states[-1]) if isinstance(states[-1], dict) else states[-1])
    got = states[-1]
    order = Order.from_events(prefix)
    wanted = {"status": order.status, "paid": order.amount_paid}
    names = ", ".join(type(e).__name__ for e in prefix) or "no events"
    expect(
        isinstance(got, dict),
        f"after {names}, the fold gave {describe_value(got)} instead of a dict",
        "return the new state, a dict like {'status': ..., 'paid': ...}, from every call",
    )
    assert isinstance(got, dict)
    expect(
        set(got) == set(wanted),
        f"after {names}, the state has the keys {sorted(got)}; it should have exactly "
        f"{sorted(wanted)}",
        "build each new state from the one before, {**state, ...}, and add no keys of your own",
    )
    expect(
        got == wanted,
        f"after {names}, the state is {got}, but the order says {wanted}",
        _fold_hint(prefix[-1] if prefix else None),
    )
    for step, (state, copy) in enumerate(zip(states[:-1], kept[:-1], strict=True)):
        earlier = ", ".join(type(e).__name__ for e in prefix[:step])
        which = f"the state after {earlier}" if step else "the starting state"
        expect(
            state == copy,
            f"folding {names} changed {which} to {state}: that version of the order is lost",
            "do not change the state you are given: return a new dict, "
            "{**state, 'status': 'paid'}, so every earlier version stays as it was",
        )


def _fold_hint(event: object) -> str:
    if isinstance(event, OrderPaid):
        return "on OrderPaid the status becomes 'paid' and 'paid' becomes event.amount"
    if isinstance(event, OrderCancelled):
        return "on OrderCancelled the status becomes 'cancelled' (the money paid stays recorded)"
    if isinstance(event, OrderShipped):
        return "on OrderShipped the status becomes 'shipped'"
    return "on OrderCreated the status becomes 'created', and 'paid' stays 0.0"


# ---------------------------------------------------------------------- exercise 2


ATTEMPTS_ALLOWED = 20
"""Loads after which a retry loop against a conflict that never clears counts as endless."""


class _StillRetrying(BaseException):  # a stop signal, not an error to handle
    """Raised out of the learner's loop once it has loaded :data:`ATTEMPTS_ALLOWED` times.
    A BaseException, so that neither ``except ConcurrencyError`` nor ``except Exception``
    in the learner's code can catch it."""


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
        if self.appends > ATTEMPTS_ALLOWED:
            raise _StillRetrying
        return super().append(stream_id, events, expected_version)

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        events = super().read(stream_id, from_version)
        self.reads += 1
        if self.reads > ATTEMPTS_ALLOWED:
            raise _StillRetrying
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
    other: Exception | None = None
    looping = False
    try:
        _quietly(cancel_with_retry, store, bus, "o-5", "out of stock")
    except ConcurrencyError as error:
        escaped = error
    except _StillRetrying:
        looping = True
    except Exception as error:  # judged below, once the counts say what happened
        other = error
    saves, reads = store.appends - appends_before, store.reads
    expect(
        not (saves > 1 and reads == 1),
        f"you saved {saves} times but loaded the order only once",
        "each attempt needs a new UnitOfWork that loads the order again: the old aggregate "
        "remembers version 1, so saving it conflicts every time",
    )
    expect(
        not (isinstance(other, DomainError) and reads == 1 and saves >= 1),
        f"after the conflict, your function cancelled the order it had already cancelled "
        f"({type(other).__name__}: {other}): it loaded the order only once, so the second "
        "attempt reused the first attempt's unit of work and its order",
        "each attempt needs a new UnitOfWork that loads the order again, so that the cancel "
        "is decided again on the order as it is now",
    )
    expect(
        other is None,
        f"on an order another writer had just paid (a paid order can still be cancelled), "
        f"your function raised {type(other).__name__}: {other}",
        "only the ConcurrencyError needs handling here: load, cancel and commit again",
    )
    expect(
        looping or escaped is not None or saves > 0,
        "your function saved nothing: no cancel was appended to the stream, so the unit of "
        "work was never committed",
        "end each attempt with uow.commit(): it appends the pending events, then publishes",
    )
    expect(
        not looping,
        f"after a single conflict, your function was still going after {ATTEMPTS_ALLOWED} attempts",
        "once a commit succeeds, return what it returned: the retry is over",
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
    except _StillRetrying:
        expect(
            False,
            f"cancelling a shipped order, your function was still retrying after "
            f"{ATTEMPTS_ALLOWED} attempts: a refusal does not change on retry",
            "catch only ConcurrencyError; a DomainError is the answer, let it reach the caller",
        )
    except Exception as error:
        expect(
            _is_or_wraps(error, DomainError),
            f"cancelling a shipped order raised {type(error).__name__}: {error}, which does not "
            "carry the aggregate's refusal: the caller cannot tell why the cancel failed",
            "only ConcurrencyError means 'try again'; let the aggregate's DomainError out "
            "(or raise yours from it)",
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
    return _ex2_gives_up(cancel_with_retry)


class ConflictingStore(InMemoryEventStore):
    """A store where another writer always gets there first: every append of the learner's
    conflicts, however often it loads again. Stops the learner's loop after
    :data:`ATTEMPTS_ALLOWED` loads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.ready = False

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        if self.ready:
            self.reads += 1
            if self.reads > ATTEMPTS_ALLOWED:
                raise _StillRetrying
        return super().read(stream_id, from_version)

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        if not self.ready:
            return super().append(stream_id, events, expected_version)
        raise ConcurrencyError(stream_id, expected_version, expected_version + 1)


def _ex2_gives_up(cancel_with_retry: Callable[..., Any]) -> str:
    store = ConflictingStore()
    _created_store(store, "o-9", 12.0)
    store.ready = True
    outcome: BaseException | None = None
    returned: object = None
    try:
        returned = _quietly(cancel_with_retry, store, EventBus(), "o-9", "out of stock")
    except (_StillRetrying, Exception) as error:  # whatever it raised is the verdict
        outcome = error
    return _ex2_verdict(store, outcome, returned)


def _ex2_verdict(store: ConflictingStore, outcome: BaseException | None, returned: object) -> str:
    expect(
        not isinstance(outcome, _StillRetrying),
        f"against a conflict that never clears, your function was still retrying after "
        f"{ATTEMPTS_ALLOWED} attempts: it would loop for ever",
        "count the attempts and stop after a few (three): for attempt in range(1, 4): ...",
    )
    attempts = store.reads
    expect(
        outcome is not None,
        f"against a conflict that never clears, your function gave up after "
        f"{plural(attempts, 'attempt')} and returned {describe_value(returned)}: the caller "
        "cannot tell that the order was never cancelled",
        "after the last attempt, let the ConcurrencyError out (raise) instead of returning",
    )
    assert outcome is not None
    expect(
        _is_or_wraps(outcome, ConcurrencyError),
        f"against a conflict that never clears, your function gave up with "
        f"{type(outcome).__name__}: {outcome}, which does not say a conflict stopped it",
        "re-raise the last ConcurrencyError (a bare raise), or raise yours from it",
    )
    return (
        "the cancel landed after the other writer's payment, a refusal is not retried, and "
        f"a conflict that never clears ends after {plural(attempts, 'attempt')} with a "
        "ConcurrencyError"
    )


def _is_or_wraps(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        # the chain a traceback shows: the cause, else the context unless "from None" hid it
        hidden = seen.__suppress_context__
        seen = seen.__cause__ or (None if hidden else seen.__context__)
    return False


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
    expect(
        not live.orders,
        f"a new projection, before reading anything, already has orders {live.orders}: "
        "every instance shares one dict, so counts from other projections are in it",
        "give each projection its own dict: self.orders = {} inside reset(), "
        "not orders = {} in the class body",
    )
    _quietly(live.catch_up, store)
    expect(
        live.orders == wanted,
        f"after catching up, orders is {live.orders}; the store says {wanted}",
        _count_hint(live.orders, wanted),
    )
    store.append("order-o-5", [OrderCreated("o-5", "c-9", 1.0)], 0)
    _quietly(live.catch_up, store)
    expect(
        live.orders == {**wanted, "c-9": 1},
        f"catching up again gave {live.orders}; only the new OrderCreated should count",
        "leave the position to Projection: use @applies methods, do not read the store yourself",
    )
    read_again = _quietly(live.rebuild, store)
    expect(
        read_again != 0,
        f"after rebuild(), orders is {live.orders}: rebuild() read no event, because your "
        f"reset() left the position at {live.position} instead of putting it back to 0",
        "call super().reset() first in your reset(): it puts the position back to 0",
    )
    expect(
        live.orders == {**wanted, "c-9": 1},
        f"after rebuild(), orders is {live.orders}: the old counts were not thrown away",
        "clear the read model in reset() (def reset(self): super().reset(); self.orders = {})"
        ", not in __init__: rebuild() calls reset()",
    )
    return "it catches up with what is new, and a rebuild from zero gives the same counts"


def _count_hint(orders: object, wanted: Mapping[str, int]) -> str:
    if not orders:
        return "mark a method @applies(OrderCreated) that adds 1 to self.orders[event.customer_id]"
    if not isinstance(orders, Mapping) or set(orders) - set(wanted):
        return "count per customer: the key is event.customer_id, the value how many orders"
    if any(orders.get(customer, 0) < count for customer, count in wanted.items()):
        return (
            "a placed order stays placed: a payment or a cancel changes nothing here, "
            "so mark only OrderCreated"
        )
    return "only OrderCreated means a new order: mark no other event type"


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
    returned: list[object] = []

    def recorded(payload: dict[str, Any]) -> Any:
        result = upcaster(payload)
        returned.append(result)
        return result

    with _database() as path:
        _old_rows(path)
        today = order_registry()
        today.register(OrderCreated, version=2)
        today.upcaster("OrderCreated", 1, recorded)
        with SQLiteEventStore(path, today) as program:
            stored = [row.payload for row in program.rows()]
            try:
                read = [s.event for s in program.read_all()]
            except Exception as error:
                problem = _misfit(returned[-1]) if returned else ""
                problem = problem or str(error)
                read = None
    expect(read is not None, f"reading the old rows failed: {problem}", _upcast_hint(problem))
    wanted = [OrderCreated("o-7", "c-1", 42.5), OrderCreated("o-8", "c-2", 0.99)]
    expect(
        read == wanted,
        f"the old rows read back as {read}; they should be {wanted}",
        _field_hint(read or [], wanted),
    )
    expect(
        stored[0] == '{"order_id":"o-7","customer":"c-1","total_cents":4250}',
        "the stored row changed; an upcaster only changes what is read",
        "return a new dict; never write to the store",
    )
    return "old rows read as today's OrderCreated, and the stored rows stay as they were"


def _misfit(result: object) -> str:
    """What keeps the upcaster's ``result`` from being today's OrderCreated ("" if its keys
    fit: then the registry's own message, about a value, says it better)."""
    if not isinstance(result, dict):
        return ""
    fields = dataclasses.fields(OrderCreated)
    known = {field.name for field in fields}
    required = {f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING}
    extra, missing = sorted(set(result) - known), sorted(required - set(result))
    if not extra and not missing:
        return ""
    problems = []
    if extra:
        problems.append(f"fields OrderCreated does not have: {', '.join(extra)}")
    if missing:
        problems.append(f"missing required fields: {', '.join(missing)}")
    return (
        f"your upcaster returned {result}, which does not fit today's OrderCreated: "
        + "; ".join(problems)
    )


def _field_hint(read: list[object], wanted: list[OrderCreated]) -> str:
    for got, want in zip(read, wanted, strict=False):
        for field in dataclasses.fields(OrderCreated):
            if getattr(got, field.name, None) != getattr(want, field.name):
                if field.name == "total":
                    return "total is in euros: total_cents / 100"
                return (
                    f"{want.order_id}'s {field.name} is wrong: take each value from the "
                    "payload you are given, the old row's own"
                )
    return "build today's OrderCreated fields from the old payload's, one by one"


def _upcast_hint(error: str) -> str:
    if "returned NoneType" in error:
        return "your function returns nothing: end it with return {...}, the new payload"
    if "instead of a dict" in error:
        return "return a dict of today's fields (plain data), not an event object"
    if "should be a number" in error:
        return "total is a number of euros: total_cents / 100"
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


# ---------------------------------------------------------------------- exercise 5 (stretch)


class ArrivingRevenue:
    """Revenue per customer, fed one :class:`StoredEvent` at a time by a subscription that
    may deliver events late, early or twice (a broker with several partitions, a retry).

    :meth:`apply` is the read model's logic, the same as
    :class:`~eda_lesson.shop.read_models.RevenuePerCustomer`'s, and it is only right for the
    events of each order taken in their stream's order, each once. :meth:`receive` is what
    the subscription calls; as given, it applies whatever arrives, as it arrives.
    """

    def __init__(self) -> None:
        self.revenue: dict[str, float] = {}
        self.customer_of: dict[str, str] = {}
        self.paid: dict[str, float] = {}

    def receive(self, stored: StoredEvent) -> None:
        """Take one delivered event (override this)."""
        self.apply(stored.event)

    def apply(self, event: object) -> None:
        """Change the read model as ``event`` says."""
        if isinstance(event, OrderCreated):
            self.customer_of[event.order_id] = event.customer_id
            self.revenue.setdefault(event.customer_id, 0.0)
        elif isinstance(event, OrderPaid):
            customer = self.customer_of.get(event.order_id, "unknown")
            self.revenue[customer] = self.revenue.get(customer, 0.0) + event.amount
            self.paid[event.order_id] = event.amount
        elif isinstance(event, OrderCancelled):
            refund = self.paid.pop(event.order_id, 0.0)
            if refund:
                customer = self.customer_of.get(event.order_id, "unknown")
                self.revenue[customer] -= refund


def _arrivals_store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    plan: list[tuple[str, list[object]]] = [
        ("o-1", [OrderCreated("o-1", "c-7", 10.0)]),
        ("o-2", [OrderCreated("o-2", "c-8", 20.0)]),
        ("o-1", [OrderPaid("o-1", 10.0)]),
        ("o-2", [OrderPaid("o-2", 20.0)]),
        ("o-3", [OrderCreated("o-3", "c-7", 5.0), OrderPaid("o-3", 5.0)]),
        ("o-2", [OrderCancelled("o-2", "out of stock")]),
    ]
    for order_id, events in plan:
        stream = Order.stream_for(order_id)
        store.append(stream, events, store.version(stream))
    return store


def _in_order(stored: list[StoredEvent]) -> dict[str, float]:
    model = ArrivingRevenue()
    for item in stored:
        model.apply(item.event)
    return model.revenue


def _names(stored: Iterable[StoredEvent]) -> str:
    return ", ".join(f"{s.stream_id} v{s.version} {s.type_name}" for s in stored)


def _deliveries(stored: list[StoredEvent]) -> list[tuple[str, list[StoredEvent]]]:
    """Ways a subscription might deliver ``stored``, each with what it shows, in the order a
    learner's answer meets them: the easy one first."""
    import random

    by_position = {s.position: s for s in stored}
    twice = [s for item in stored for s in (item, item)]
    paid_first = [by_position[3], by_position[1], *(by_position[p] for p in (2, 4, 5, 6, 7))]
    refund_first = [by_position[p] for p in (7, 4, 1, 2, 3, 5, 6)]
    shuffles = []
    for seed in range(5):
        mixed = [*stored, stored[seed]]  # one duplicate, too
        random.Random(seed).shuffle(mixed)
        shuffles.append((f"in shuffled order number {seed + 1} ({_names(mixed)})", mixed))
    return [
        ("in order", list(stored)),
        ("each event twice", twice),
        (f"with o-1's payment before its creation ({_names(paid_first[:2])}, ...)", paid_first),
        ("with o-2's cancel, then its payment, before its creation", refund_first),
        *shuffles,
    ]


@exercise("Exercise 5 (stretch): events out of order")
def ex5(model_type: object) -> str:
    """``model_type``: an :class:`ArrivingRevenue` subclass whose ``receive`` gives ``apply``
    each order's events in their stream's order, each once, whatever order they arrive in."""
    expect(
        isinstance(model_type, type) and issubclass(model_type, ArrivingRevenue),
        f"pass your class, a subclass of check.ArrivingRevenue, got {describe_value(model_type)}",
        "class InOrderRevenue(check.ArrivingRevenue): ...; then check.ex5(InOrderRevenue)",
    )
    assert isinstance(model_type, type)
    stored = list(_arrivals_store().read_all())
    wanted = _in_order(stored)
    for how, delivered in _deliveries(stored):
        model = model_type()
        for item in delivered:
            _quietly(model.receive, item)
        expect(
            model.revenue == wanted,
            f"delivered {how}, the revenue is {model.revenue}; in order it is {wanted}",
            _arrival_hint(how, model.revenue),
        )
    _ex5_no_hold_up(model_type, stored, wanted)
    return (
        "whatever order the events arrive in, and twice over, each order's events are applied "
        "in their stream's order, once, and one late order holds up no other"
    )


def _arrival_hint(how: str, revenue: Mapping[str, float]) -> str:
    if how == "in order":
        return "when events arrive in order, receive should just apply each one"
    if how == "each event twice":
        return (
            "remember, per stream, the last version applied: an event at or below it is a "
            "duplicate, so drop it"
        )
    if "unknown" in revenue:
        return (
            "a payment for an order not yet created went to 'unknown': keep an event that "
            "came early (its version is not the stream's next) until the ones before it arrive"
        )
    return (
        "apply an event only when its version is its stream's next (the last applied + 1), "
        "even once the order is known; when the missing event arrives, apply it and then "
        "every kept event that now follows in its stream, one after another (a while loop)"
    )


def _ex5_no_hold_up(
    model_type: type[ArrivingRevenue], stored: list[StoredEvent], wanted: Mapping[str, float]
) -> None:
    model = model_type()
    late = next(s for s in stored if s.stream_id == "order-o-2" and s.version == 1)
    for item in stored:
        if item is not late:
            _quietly(model.receive, item)
    expect(
        model.revenue.get("c-7") == wanted["c-7"],
        f"with only o-2's creation still on its way, c-7's revenue is "
        f"{model.revenue.get('c-7')}; o-1 and o-3 arrived whole, so it should be {wanted['c-7']}",
        "wait per stream (stored.stream_id and stored.version), not for the global position: "
        "one late order must not hold up the others",
    )
    _quietly(model.receive, late)
    expect(
        model.revenue == wanted,
        f"once o-2's creation arrived too, the revenue is {model.revenue}; it should be {wanted}",
        "when the missing event arrives, apply it and then the kept events that follow it",
    )
