"""The running example's events: a small shop whose orders are created, paid, cancelled and shipped.

It is the e-commerce domain of a short article on event-driven architecture in Go, in
Python: the order events the article starts from (created, paid, cancelled), and the two the
series adds when it ships parcels. They are frozen dataclasses: facts, named in the past
tense, that nobody can change after they happened. The services that react to them live in
:mod:`eda_lesson.shop.services`; the order that records them, in :mod:`eda_lesson.shop.order`.

>>> OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)).items[0].sku
'book'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LineItem",
    "OrderCancelled",
    "OrderCreated",
    "OrderEvent",
    "OrderPaid",
    "OrderShipped",
    "ShipmentRequested",
]


# ---------------------------------------------------------------------- events


@dataclass(frozen=True)
class LineItem:
    """One line of an order: how many of which product."""

    sku: str
    quantity: int = 1


@dataclass(frozen=True)
class OrderEvent:
    """Something that happened to an order. Subscribe to this to hear about every order."""

    order_id: str


@dataclass(frozen=True)
class OrderCreated(OrderEvent):
    """A customer placed an order."""

    customer_id: str
    total: float
    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class OrderPaid(OrderEvent):
    """The payment for an order went through."""

    amount: float = 0.0


@dataclass(frozen=True)
class OrderCancelled(OrderEvent):
    """The order will not be fulfilled."""

    reason: str = ""


@dataclass(frozen=True)
class ShipmentRequested(OrderEvent):
    """Shipping was asked to send a paid order."""


@dataclass(frozen=True)
class OrderShipped(OrderEvent):
    """The parcel left the warehouse."""

    tracking_code: str = ""
