"""The running example's services: small in-memory stand-ins that react to the shop's events.

Handlers do what a short article on event-driven architecture in Go says they should: confirm
by email, update inventory, mark paid, send a receipt, refund, restock. Each service keeps its
state where a notebook can print it. Everything here is plain and deterministic: no clocks, no
random ids, no I/O. It is a teaching domain, not a shop.

>>> from eda_lesson import EventBus
>>> from eda_lesson.shop.events import LineItem, OrderCreated
>>> bus, shop = EventBus(), Shop(stock={"book": 3})
>>> shop.register(bus)
>>> result = bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)))
>>> shop.inventory.stock["book"], [mail.subject for mail in shop.mailer.sent]
(2, ['Order o-1 confirmed'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eda_lesson.shop.events import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)

if TYPE_CHECKING:
    from eda_lesson.core.bus import EventBus, Handler

__all__ = [
    "Email",
    "Inventory",
    "Mailer",
    "OrderBook",
    "OutOfStockError",
    "Payments",
    "Shipping",
    "Shop",
]


@dataclass(frozen=True)
class Email:
    """An email the shop sent (kept, not delivered)."""

    to: str
    subject: str


@dataclass
class Mailer:
    """Sends emails into a list, so a notebook can show what went out."""

    sent: list[Email] = field(default_factory=list)

    def send(self, to: str, subject: str) -> None:
        self.sent.append(Email(to, subject))


class OutOfStockError(Exception):
    """An order asks for more of a product than the shop holds."""


@dataclass
class Inventory:
    """Stock per product, and what each order holds reserved."""

    stock: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, tuple[LineItem, ...]] = field(default_factory=dict)

    def reserve(self, order_id: str, items: Iterable[LineItem]) -> None:
        """Take the items out of stock for this order, all of them or none."""
        items = tuple(items)
        for item in items:
            available = self.stock.get(item.sku, 0)
            if available < item.quantity:
                raise OutOfStockError(
                    f"order {order_id} wants {item.quantity} x {item.sku}, only {available} left"
                )
        for item in items:
            self.stock[item.sku] -= item.quantity
        self.reserved[order_id] = items

    def release(self, order_id: str) -> None:
        """Put back what the order reserved (nothing happens if it reserved nothing)."""
        for item in self.reserved.pop(order_id, ()):
            self.stock[item.sku] = self.stock.get(item.sku, 0) + item.quantity


@dataclass
class OrderBook:
    """The status of every order the shop knows, and who placed it."""

    status: dict[str, str] = field(default_factory=dict)
    customer: dict[str, str] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)


@dataclass
class Payments:
    """Money received and refunded, per order."""

    received: dict[str, float] = field(default_factory=dict)
    refunds: list[tuple[str, float]] = field(default_factory=list)

    def refund(self, order_id: str) -> float:
        amount = self.received.pop(order_id, 0.0)
        if amount:
            self.refunds.append((order_id, amount))
        return amount


@dataclass
class Shipping:
    """Orders handed to the warehouse, in order."""

    shipped: list[str] = field(default_factory=list)

    def ship(self, order_id: str) -> str:
        self.shipped.append(order_id)
        return f"TRACK-{len(self.shipped):04d}"


# ---------------------------------------------------------------------- the shop


class Shop:
    """The services, and the handlers that keep them up to date as events arrive.

    Each handler is a method taking one event. :meth:`register` connects them all to a bus;
    a notebook can also register just the ones it is talking about.
    """

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.mailer = Mailer()
        self.inventory = Inventory(stock=dict(stock or {}))
        self.orders = OrderBook()
        self.payments = Payments()
        self.shipping = Shipping()

    # -- OrderCreated -------------------------------------------------------------------------

    def record_order(self, event: OrderCreated) -> None:
        self.orders.status[event.order_id] = "created"
        self.orders.customer[event.order_id] = event.customer_id
        self.orders.total[event.order_id] = event.total

    def send_confirmation(self, event: OrderCreated) -> None:
        self.mailer.send(event.customer_id, f"Order {event.order_id} confirmed")

    def reserve_stock(self, event: OrderCreated) -> None:
        self.inventory.reserve(event.order_id, event.items)

    # -- OrderPaid ----------------------------------------------------------------------------

    def mark_paid(self, event: OrderPaid) -> None:
        self.orders.status[event.order_id] = "paid"
        self.payments.received[event.order_id] = event.amount

    def send_receipt(self, event: OrderPaid) -> None:
        customer = self.orders.customer.get(event.order_id, "customer")
        self.mailer.send(customer, f"Receipt for order {event.order_id}")

    def request_shipment(self, event: OrderPaid) -> ShipmentRequested:
        return ShipmentRequested(event.order_id)

    # -- shipping -----------------------------------------------------------------------------

    def ship_order(self, event: ShipmentRequested) -> OrderShipped:
        return OrderShipped(event.order_id, self.shipping.ship(event.order_id))

    def notify_shipped(self, event: OrderShipped) -> None:
        self.orders.status[event.order_id] = "shipped"
        customer = self.orders.customer.get(event.order_id, "customer")
        self.mailer.send(customer, f"Order {event.order_id} is on its way")

    # -- OrderCancelled -----------------------------------------------------------------------

    def refund_payment(self, event: OrderCancelled) -> None:
        self.payments.refund(event.order_id)

    def restock(self, event: OrderCancelled) -> None:
        self.inventory.release(event.order_id)

    def mark_cancelled(self, event: OrderCancelled) -> None:
        self.orders.status[event.order_id] = "cancelled"

    # -- wiring -------------------------------------------------------------------------------

    def handlers(self) -> list[tuple[type, Handler]]:
        """(event type, handler) for every handler of the shop, in registration order."""
        return [
            (OrderCreated, self.record_order),
            (OrderCreated, self.send_confirmation),
            (OrderCreated, self.reserve_stock),
            (OrderPaid, self.mark_paid),
            (OrderPaid, self.send_receipt),
            (OrderPaid, self.request_shipment),
            (ShipmentRequested, self.ship_order),
            (OrderShipped, self.notify_shipped),
            (OrderCancelled, self.refund_payment),
            (OrderCancelled, self.restock),
            (OrderCancelled, self.mark_cancelled),
        ]

    def register(self, bus: EventBus) -> None:
        """Register every handler of the shop on ``bus``."""
        for event_type, handler in self.handlers():
            bus.register(event_type, handler)

    def summary(self) -> str:
        """The shop's state as a few stable lines of text."""
        lines = [
            "orders:    " + _pairs(self.orders.status),
            "stock:     " + _pairs(self.inventory.stock),
            "emails:    " + (", ".join(f"{m.to}: {m.subject}" for m in self.mailer.sent) or "-"),
            "payments:  " + _pairs(self.payments.received),
            "refunds:   " + (", ".join(f"{o}: {a:g}" for o, a in self.payments.refunds) or "-"),
            "shipped:   " + (", ".join(self.shipping.shipped) or "-"),
        ]
        return "\n".join(lines)


def _pairs(mapping: Mapping[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in mapping.items()) or "-"
