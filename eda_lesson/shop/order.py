"""The shop's order as an event-sourced aggregate: the rules of an order, and the events it records.

Chapter 09 on rebuild the order from its events with this class. Chapters 05 and 06 teach the
same rules on a state-stored order, :mod:`eda_lesson.shop.stored_order`, saved as its current
state with a version number.

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

from collections.abc import Iterable

from eda_lesson.patterns.aggregate import Aggregate, DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped

__all__ = ["ORDER_EVENTS", "Order", "order_registry"]

ORDER_EVENTS: tuple[type, ...] = (OrderCreated, OrderPaid, OrderCancelled, OrderShipped)
"""The events an :class:`Order` records and applies."""


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
