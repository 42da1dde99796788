"""Aggregates: objects that guard the rules of the domain and remember what they decided.

An aggregate is the one place a rule is enforced ("a cancelled order cannot be paid"). Its
commands (``pay``, ``cancel``) check the rules against the current state; if the command is
allowed, they *record* an event instead of changing the state directly or publishing
anything. Recording does two things: the event is *applied* (one small method per event type
changes the state), and it joins :attr:`Aggregate.pending`, the events not yet saved.

Because state only ever changes by applying events, the events are enough to rebuild it: an
aggregate's state is a left fold of its history. :meth:`Aggregate.from_events` replays them
into a blank aggregate; replaying the first *n* gives the state at version *n* (time travel).

Saving and publishing are not the aggregate's business: a unit of work
(:mod:`eda_lesson.unit_of_work`) appends :attr:`~Aggregate.pending` to an event store, and
only once that has committed hands the events to the bus.

>>> order = Order.create("o-1", customer_id="c-7", total=42.0)
>>> order.pay(42.0)
>>> order
Order('o-1', status='paid', total=42.0, version=2)
>>> [type(event).__name__ for event in order.pending]
['OrderCreated', 'OrderPaid']
>>> order.cancel("changed my mind")
>>> Order.from_events(order.pending[:1]).status
'created'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self, TypeVar

from eda_lesson.checks import nearest_for
from eda_lesson.serialization import EventRegistry
from eda_lesson.shop import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped

__all__ = ["ORDER_EVENTS", "Aggregate", "DomainError", "Order", "applies", "order_registry"]

ORDER_EVENTS: tuple[type, ...] = (OrderCreated, OrderPaid, OrderCancelled, OrderShipped)
"""The events an :class:`Order` records and applies."""

F = TypeVar("F", bound=Callable[..., None])

_APPLIES = "__applies_to__"


class DomainError(Exception):
    """A command broke a rule of the domain; nothing was recorded."""


def applies(event_type: type) -> Callable[[F], F]:
    """Mark a method as the way an aggregate's state changes when ``event_type`` happens.

    The method takes the event and updates ``self``; it checks nothing (the rules were
    checked when the event was recorded) and must not fail, since it also runs on replay.
    """
    if not isinstance(event_type, type):
        raise TypeError(f"@applies takes an event class, got {event_type!r}")

    def mark(method: F) -> F:
        setattr(method, _APPLIES, event_type)
        return method

    return mark


class Aggregate:
    """Base of event-sourced aggregates: record events, apply them, replay them.

    A subclass sets its blank state in ``__init__`` (taking no arguments), has one
    :func:`applies` method per event type, and commands that check rules and call
    :meth:`record`. Its events live in the stream ``"<stream_prefix>-<id>"``.
    """

    stream_prefix: ClassVar[str] = ""
    """Start of the stream ids of this kind of aggregate (the class name in lower case)."""

    _appliers: ClassVar[dict[type, Callable[[Any, Any], None]]] = {}

    id: str
    version: int
    """How many events have been applied, pending ones included."""
    saved_version: int
    """The stream's version when this aggregate was loaded or last saved (0 for a new one)."""
    pending: list[Any]
    """Events recorded since then, waiting to be saved (and only then published)."""

    def __init__(self) -> None:
        self.id = ""
        self.version = 0
        self.saved_version = 0
        self.pending = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers = dict(cls._appliers)
        for value in vars(cls).values():
            event_type = getattr(value, _APPLIES, None)
            if event_type is not None:
                appliers[event_type] = value
        cls._appliers = appliers
        if not cls.__dict__.get("stream_prefix"):
            cls.stream_prefix = cls.__name__.lower()

    # ------------------------------------------------------------------ events

    def record(self, event: object) -> None:
        """Apply ``event`` and keep it as pending. Commands call this once rules are checked."""
        self.apply(event)
        self.pending.append(event)

    def apply(self, event: object) -> None:
        """Change the state as ``event`` says (no rules are checked: this is replay)."""
        applier = self._appliers.get(type(event)) or self._applier_by_base_class(event)
        applier(self, event)
        self.version += 1

    def _applier_by_base_class(self, event: object) -> Callable[[Any, Any], None]:
        applier = nearest_for(self._appliers, type(event))  # the bus's rule, nearest first
        if applier is not None:
            return applier
        cls_name, event_name = type(self).__name__, type(event).__name__
        known = ", ".join(sorted(t.__name__ for t in self._appliers)) or "none"
        raise TypeError(
            f"{cls_name} does not know how to apply {event_name} (it applies: {known}); "
            f"add a method marked @applies({event_name}) to {cls_name}"
        )

    def collect_pending(self) -> list[Any]:
        """Take the pending events out (a unit of work calls this once they are saved)."""
        events, self.pending = self.pending, []
        self.saved_version = self.version
        return events

    # ------------------------------------------------------------------ replay

    @classmethod
    def from_events(cls, events: Iterable[object]) -> Self:
        """The aggregate rebuilt by applying ``events`` in order to a blank one."""
        aggregate = cls()
        apply = aggregate.apply
        for event in events:
            apply(event)
        aggregate.saved_version = aggregate.version
        return aggregate

    @classmethod
    def history(cls, events: Iterable[object]) -> list[tuple[object, Self]]:
        """Each event beside a copy of the state it produced: the frames of time travel."""
        aggregate, frames = cls(), []
        for event in events:
            aggregate.apply(event)
            aggregate.saved_version = aggregate.version
            frames.append((event, copy.copy(aggregate)))
        return frames

    @property
    def stream_id(self) -> str:
        return self.stream_for(self.id)

    @classmethod
    def stream_for(cls, aggregate_id: str) -> str:
        """The stream holding the events of the aggregate ``aggregate_id``."""
        return f"{cls.stream_prefix}-{aggregate_id}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, version={self.version})"

    def __copy__(self) -> Self:
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.pending = list(self.pending)
        return twin


class Order(Aggregate):
    """The shop's order, as an event-sourced aggregate.

    Its rules: an order is created once; it is paid the full total, once, and never after it
    was cancelled; it is shipped only when paid; a shipped order cannot be cancelled.
    """

    stream_prefix = "order"

    customer_id: str
    total: float
    items: tuple[LineItem, ...]
    status: str
    """'new' (no events yet), 'created', 'paid', 'shipped' or 'cancelled'."""
    amount_paid: float
    cancel_reason: str
    tracking_code: str

    def __init__(self) -> None:
        super().__init__()
        self.customer_id = ""
        self.total = 0.0
        self.items = ()
        self.status = "new"
        self.amount_paid = 0.0
        self.cancel_reason = ""
        self.tracking_code = ""

    # ------------------------------------------------------------------ commands

    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> Order:
        """A new order, with its OrderCreated recorded."""
        if not isinstance(order_id, str) or not order_id:
            raise DomainError(f"an order needs an id (a non-empty string), got {order_id!r}")
        if total < 0:
            raise DomainError(f"order {order_id}: the total cannot be negative, got {total}")
        order = cls()
        order.record(OrderCreated(order_id, customer_id, total, tuple(items)))
        return order

    def pay(self, amount: float | None = None) -> None:
        """Record that the order was paid (the total, if ``amount`` is left out)."""
        self._refuse_unless_created("paid")
        amount = self.total if amount is None else amount
        if self.status == "cancelled":
            raise DomainError(
                f"order {self.id} was cancelled ({self.cancel_reason or 'no reason given'}); "
                "a cancelled order cannot be paid. Place a new order instead"
            )
        if self.status in ("paid", "shipped"):
            raise DomainError(f"order {self.id} is already paid; it cannot be paid twice")
        if amount != self.total:
            raise DomainError(
                f"order {self.id} costs {self.total:g}; a payment of {amount:g} does not "
                "match it. Pay the total"
            )
        self.record(OrderPaid(self.id, amount))

    def cancel(self, reason: str = "") -> None:
        """Record that the order will not be fulfilled."""
        self._refuse_unless_created("cancelled")
        if self.status == "shipped":
            raise DomainError(
                f"order {self.id} has already shipped; a shipped order cannot be cancelled "
                "(it can be returned)"
            )
        if self.status == "cancelled":
            raise DomainError(f"order {self.id} is already cancelled")
        self.record(OrderCancelled(self.id, reason))

    def ship(self, tracking_code: str = "") -> None:
        """Record that the parcel left the warehouse."""
        self._refuse_unless_created("shipped")
        if self.status != "paid":
            raise DomainError(f"order {self.id} is {self.status}; only a paid order can be shipped")
        self.record(OrderShipped(self.id, tracking_code))

    def _refuse_unless_created(self, action: str) -> None:
        if self.status == "new":
            raise DomainError(
                f"this order was never created, so it cannot be {action}; "
                "create it first: Order.create(order_id, customer_id, total)"
            )

    # ------------------------------------------------------------------ how events change it

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.id = event.order_id
        self.customer_id = event.customer_id
        self.total = event.total
        self.items = event.items
        self.status = "created"

    @applies(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.amount_paid = event.amount
        self.status = "paid"

    @applies(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.cancel_reason = event.reason
        self.status = "cancelled"

    @applies(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.tracking_code = event.tracking_code
        self.status = "shipped"

    # ------------------------------------------------------------------ looking at it

    def state(self) -> dict[str, object]:
        """The order's state as plain values (what a time-travel view shows)."""
        return {
            "id": self.id,
            "version": self.version,
            "status": self.status,
            "customer_id": self.customer_id,
            "total": self.total,
            "items": self.items,
            "amount_paid": self.amount_paid,
            "cancel_reason": self.cancel_reason,
            "tracking_code": self.tracking_code,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Order):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # type: ignore[assignment]  # mutable: equal by state, so not hashable

    def __repr__(self) -> str:
        state = f"status={self.status!r}, total={self.total!r}, version={self.version}"
        return f"Order({self.id!r}, {state})"


def order_registry() -> EventRegistry:
    """A registry of the order's events, ready for a store: ``SQLiteEventStore(path, it)``."""
    return EventRegistry.of(*ORDER_EVENTS)
