"""The shop's commands: what someone asks the shop to do, in the imperative.

An event says what happened and any number of handlers may hear it; a command asks for
something to happen and has exactly one handler, which may refuse. ``PlaceOrder`` can fail
(out of stock, a bad total); ``OrderCreated`` cannot, it is already true. The bus tells them
apart by their base class (:class:`~eda_lesson.core.messages.Command`): a command with no
handler raises ``UnhandledCommandError``, and a failing command handler's error reaches the
caller, where an event handler's error is recorded and the cascade goes on.

The handlers that carry these commands out live with the model that decides them: the
state-stored order (:mod:`eda_lesson.shop.stored_order`) and the chapters' own examples.

>>> from eda_lesson import Command
>>> isinstance(PayOrder("o-1", amount=42.0), Command)
True
"""

from __future__ import annotations

from dataclasses import dataclass

from eda_lesson.core.messages import Command
from eda_lesson.shop.events import LineItem

__all__ = ["CancelOrder", "OrderCommand", "PayOrder", "PlaceOrder", "ShipOrder"]


@dataclass(frozen=True)
class OrderCommand(Command):
    """A request about one order. Handle each concrete command: a command has one handler."""

    order_id: str


@dataclass(frozen=True)
class PlaceOrder(OrderCommand):
    """Place a new order for a customer."""

    customer_id: str
    total: float
    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class PayOrder(OrderCommand):
    """Take the payment for an order."""

    amount: float


@dataclass(frozen=True)
class CancelOrder(OrderCommand):
    """Cancel an order, saying why."""

    reason: str = ""


@dataclass(frozen=True)
class ShipOrder(OrderCommand):
    """Send a paid order's parcel."""
