"""Projections: read models built by following every event of the store in global order.

The event store answers "what happened to order o-1?"; a screen that lists orders by status,
or revenue per customer, wants a different shape. A *projection* reads the global order of
events (:meth:`~eda_lesson.store.EventStore.read_all`) and keeps such a shape up to date.
It remembers the position of the last event it has seen, so:

* ``catch_up(store)`` reads only what is new since last time (call it as often as you like);
* ``rebuild(store)`` forgets everything and reads from position 0, which gives the same read
  model as having caught up all along. That is why a read model can be thrown away and
  rebuilt when its code changes: the events, not the read model, are the truth.

A projection applies each event once: an event at or before its position is skipped, so
reading the same event twice changes nothing.

What this module does not do: store the read model or its position anywhere but memory, or
push events to projections (they pull, when asked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from eda_lesson.checks import nearest_for
from eda_lesson.shop import OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.store import EventStore, StoredEvent

__all__ = ["OrdersByStatus", "Projection", "RevenuePerCustomer", "when"]

F = TypeVar("F", bound=Callable[..., None])

_WHEN = "__projects__"


def when(*event_types: type) -> Callable[[F], F]:
    """Mark a projection method as what to do when an event of ``event_types`` comes by."""
    for event_type in event_types:
        if not isinstance(event_type, type):
            raise TypeError(f"@when takes event classes, got {event_type!r}")

    def mark(method: F) -> F:
        setattr(method, _WHEN, event_types)
        return method

    return mark


class Projection:
    """Base of read models. A subclass sets up its empty state in :meth:`reset` and marks one
    method per event type it cares about with :func:`when`; other events are skipped. As for
    the bus, a method for a base class hears its subclasses; the nearest class wins."""

    _handlers: ClassVar[dict[type, Callable[[Any, Any], None]]] = {}

    position: int
    """Global position of the last event seen (0: none yet)."""

    def __init__(self) -> None:
        self.position = 0
        self.reset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        for value in vars(cls).values():
            for event_type in getattr(value, _WHEN, ()):
                handlers[event_type] = value
        cls._handlers = handlers

    def reset(self) -> None:
        """Forget the read model (subclasses clear their state and call this)."""
        self.position = 0

    def project(self, stored: StoredEvent) -> None:
        """Apply one stored event, unless it was seen already."""
        if stored.position <= self.position:
            return
        handler = nearest_for(self._handlers, type(stored.event))  # the bus's rule
        if handler is not None:
            handler(self, stored.event)
        self.position = stored.position

    def catch_up(self, store: EventStore) -> int:
        """Apply every event after :attr:`position`; return how many were read."""
        project = self.project
        count = 0
        for stored in store.read_all(self.position):
            project(stored)
            count += 1
        return count

    def rebuild(self, store: EventStore) -> int:
        """Throw the read model away and build it again from the first event."""
        self.reset()
        return self.catch_up(store)

    def snapshot(self) -> object:
        """The read model as plain values, for comparing two projections."""
        raise NotImplementedError(f"{type(self).__name__} does not define snapshot()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(at position {self.position})"


class OrdersByStatus(Projection):
    """Which orders are created, paid, shipped or cancelled."""

    STATUSES: ClassVar[tuple[str, ...]] = ("created", "paid", "shipped", "cancelled")

    status: dict[str, str]

    def reset(self) -> None:
        super().reset()
        self.status = {}

    @when(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.status[event.order_id] = "created"

    @when(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.status[event.order_id] = "paid"

    @when(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status[event.order_id] = "shipped"

    @when(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.status[event.order_id] = "cancelled"

    def by_status(self) -> dict[str, list[str]]:
        """Order ids per status (every status listed, in the life cycle's order)."""
        groups: dict[str, list[str]] = {status: [] for status in self.STATUSES}
        for order_id, status in self.status.items():
            groups.setdefault(status, []).append(order_id)
        return groups

    def snapshot(self) -> dict[str, str]:
        return dict(self.status)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{status} {len(ids)}" for status, ids in self.by_status().items() if ids
        )
        return f"OrdersByStatus(at position {self.position}: {counts or 'no orders'})"


class RevenuePerCustomer(Projection):
    """Money received per customer: payments in, minus what cancelled paid orders refunded."""

    revenue: dict[str, float]
    customer_of: dict[str, str]
    paid: dict[str, float]

    def reset(self) -> None:
        super().reset()
        self.revenue = {}
        self.customer_of = {}
        self.paid = {}

    @when(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.customer_of[event.order_id] = event.customer_id
        self.revenue.setdefault(event.customer_id, 0.0)

    @when(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        customer = self.customer_of.get(event.order_id, "unknown")
        self.revenue[customer] = self.revenue.get(customer, 0.0) + event.amount
        self.paid[event.order_id] = event.amount

    @when(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        refund = self.paid.pop(event.order_id, 0.0)
        if refund:
            customer = self.customer_of.get(event.order_id, "unknown")
            self.revenue[customer] -= refund

    def snapshot(self) -> dict[str, float]:
        return dict(self.revenue)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{c}={amount:g}" for c, amount in sorted(self.revenue.items()))
        return f"RevenuePerCustomer(at position {self.position}: {pairs or 'no customers'})"
