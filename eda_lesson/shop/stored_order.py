"""The shop's order as a state-stored aggregate, with its repository, unit of work and handlers.

Chapters 05 and 06 use this order; from chapter 09 on, :mod:`eda_lesson.shop.order` is the
same order rebuilt from its events. Here the order is stored as its current state (what a row
in a table holds) with a version number, and ``events`` lists what it decided since it was
loaded. A command method (``pay``, ``cancel``, ``ship``, ``add_item``) checks the rules
against the state first; only when they hold does it change the state and append an event.
It never publishes anything.

:class:`OrderTable` is the in-memory "database" that several units of work share;
:class:`OrderUnitOfWork` groups one command's changes and saves them on ``commit()``, refusing
with :class:`StaleOrderError` an order that another unit of work saved since it was loaded.
The command handlers (:func:`place_order`, :func:`pay_order`, :func:`cancel_order`,
:func:`ship_order`) take the unit of work as a dependency, and :func:`bootstrap` wires them,
with the shop's services, on an :class:`~eda_lesson.EventBus` that collects only committed
events.

>>> order = Order.create("o-1", customer_id="c-7", total=42.0)
>>> order.pay(42.0)
>>> order
Order('o-1', status='paid', total=42.0, version=0)
>>> [type(event).__name__ for event in order.events]
['OrderCreated', 'OrderPaid']

What it does not do: store anything outside memory, or keep a history (the events it appends
are handed to the bus once saved and then forgotten; chapter 09 stores them instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Self

from eda_lesson.core.bus import EventBus
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.state_unit_of_work import StateUnitOfWork, TrackingRepository
from eda_lesson.shop.commands import CancelOrder, PayOrder, PlaceOrder, ShipOrder
from eda_lesson.shop.events import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
)
from eda_lesson.shop.services import Shipping, Shop

__all__ = [
    "ItemAdded",
    "Order",
    "OrderRepository",
    "OrderTable",
    "OrderUnitOfWork",
    "StaleOrderError",
    "StoredOrder",
    "UnknownOrderError",
    "bootstrap",
    "cancel_order",
    "hand_to_courier",
    "pay_order",
    "place_order",
    "ship_order",
    "ship_when_paid",
]


@dataclass(frozen=True)
class ItemAdded(OrderEvent):
    """A line was added to an order that was not paid yet."""

    sku: str
    quantity: int
    price: float


# ---------------------------------------------------------------------- the aggregate


class Order:
    """One order: its state, the rules that guard it, and the events it decided.

    Its rules: it is paid the full total, once, and never after it was cancelled; items are
    added only before it is paid; it is shipped only when paid, once; a shipped order cannot
    be cancelled. Change it only through its methods: ``items`` is a tuple of frozen lines.
    """

    def __init__(
        self,
        order_id: str,
        customer_id: str,
        total: float,
        items: Iterable[LineItem] = (),
        *,
        status: str = "created",
        amount_paid: float = 0.0,
        version: int = 0,
    ) -> None:
        self.id = order_id
        self.customer_id = customer_id
        self.total = total
        self.items: tuple[LineItem, ...] = tuple(items)
        self.status = status
        """'created', 'paid', 'shipped' or 'cancelled'."""
        self.amount_paid = amount_paid
        self.version = version
        """How many times this order was saved when it was loaded (0: never saved)."""
        self.events: list[object] = []
        """What the order decided since it was loaded, oldest first."""

    @classmethod
    def create(
        cls, order_id: str, customer_id: str, total: float, items: Iterable[LineItem] = ()
    ) -> Self:
        """A new order, with its OrderCreated in ``events``."""
        if not isinstance(order_id, str) or not order_id:
            raise DomainError(f"an order needs an id (a non-empty string), got {order_id!r}")
        if total < 0:
            raise DomainError(f"order {order_id}: the total cannot be negative, got {total:g}")
        order = cls(order_id, customer_id, total, items)
        order.events.append(OrderCreated(order_id, customer_id, total, order.items))
        return order

    # ------------------------------------------------------------------ commands

    def add_item(self, sku: str, quantity: int = 1, price: float = 0.0) -> None:
        """Add ``quantity`` of ``sku`` at ``price`` each; the total grows by their cost."""
        if self.status != "created":
            raise DomainError(
                f"order {self.id} is {self.status}; items can be added only before it is "
                "paid. Place a new order for more"
            )
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise DomainError(f"order {self.id}: add at least 1 of {sku}, got {quantity!r}")
        if price < 0:
            raise DomainError(f"order {self.id}: a price cannot be negative, got {price:g}")
        self.items = _merged(self.items, LineItem(sku, quantity))
        self.total += quantity * price
        self.events.append(ItemAdded(self.id, sku, quantity, price))

    def pay(self, amount: float | None = None) -> None:
        """Take the payment (the total, if ``amount`` is left out)."""
        amount = self.total if amount is None else amount
        if self.status == "cancelled":
            raise DomainError(
                f"order {self.id} was cancelled; a cancelled order cannot be paid. "
                "Place a new order instead"
            )
        if self.status != "created":
            raise DomainError(f"order {self.id} is already paid; it cannot be paid twice")
        if amount != self.total:
            raise DomainError(
                f"order {self.id} costs {self.total:g}; a payment of {amount:g} does not "
                "match it. Pay the total"
            )
        self.status, self.amount_paid = "paid", amount
        self.events.append(OrderPaid(self.id, amount))

    def cancel(self, reason: str = "") -> None:
        """Cancel the order (the shop refunds what was paid)."""
        if self.status == "shipped":
            raise DomainError(
                f"order {self.id} has shipped; a shipped order cannot be cancelled. "
                "Ask for a return instead, once the parcel is back"
            )
        if self.status == "cancelled":
            raise DomainError(f"order {self.id} is already cancelled")
        self.status = "cancelled"
        self.events.append(OrderCancelled(self.id, reason))

    def ship(self, tracking_code: str = "") -> None:
        """Send the parcel of a paid order."""
        if self.status == "shipped":
            raise DomainError(f"order {self.id} has already shipped; it ships once")
        if self.status != "paid":
            raise DomainError(
                f"order {self.id} is {self.status}; only a paid order can be shipped. "
                "Take the payment first"
            )
        self.status = "shipped"
        self.events.append(OrderShipped(self.id, tracking_code))

    # ------------------------------------------------------------------ looking at it

    def __repr__(self) -> str:
        state = f"status={self.status!r}, total={self.total!r}, version={self.version}"
        return f"Order({self.id!r}, {state})"


def _merged(items: tuple[LineItem, ...], new: LineItem) -> tuple[LineItem, ...]:
    """The lines with ``new`` added: to the line of the same product if there is one."""
    if any(item.sku == new.sku for item in items):
        return tuple(
            replace(item, quantity=item.quantity + new.quantity) if item.sku == new.sku else item
            for item in items
        )
    return (*items, new)


# ---------------------------------------------------------------------- storage


@dataclass(frozen=True)
class StoredOrder:
    """An order as a table row holds it: its state and the version it was saved at."""

    order_id: str
    customer_id: str
    total: float
    items: tuple[LineItem, ...]
    status: str
    amount_paid: float
    version: int

    @classmethod
    def of(cls, order: Order, version: int) -> StoredOrder:
        return cls(
            order.id,
            order.customer_id,
            order.total,
            order.items,
            order.status,
            order.amount_paid,
            version,
        )

    def to_order(self) -> Order:
        return Order(
            self.order_id,
            self.customer_id,
            self.total,
            self.items,
            status=self.status,
            amount_paid=self.amount_paid,
            version=self.version,
        )


class OrderTable:
    """The orders as saved, shared by every unit of work (an in-memory stand-in for a table)."""

    def __init__(self) -> None:
        self.rows: dict[str, StoredOrder] = {}

    def describe(self) -> str:
        """One stable line per saved order."""
        if not self.rows:
            return "OrderTable: empty"
        lines = [f"OrderTable: {plural(len(self.rows), 'order')}"]
        width = max(len(order_id) for order_id in self.rows)
        for row in self.rows.values():
            lines.append(
                f"  {row.order_id:<{width}}  version {row.version}  {row.status:<9}  "
                f"total {row.total:g}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"OrderTable({plural(len(self.rows), 'order')})"


class StaleOrderError(Exception):
    """An order was saved by someone else since it was loaded: nothing was saved."""


class UnknownOrderError(LookupError):
    """No order is stored under that id."""


class OrderRepository(TrackingRepository[Order]):
    """Loads orders from an :class:`OrderTable` and remembers them for the unit of work.

    Within one unit of work, loading the same order twice gives the same object.
    """

    def __init__(self, table: OrderTable) -> None:
        super().__init__()
        self.table = table
        self.added: list[Order] = []

    def load(self, order_id: str) -> Order:
        """The order stored under ``order_id``; :class:`UnknownOrderError` if there is none."""
        order = self.get(order_id)
        if order is None:
            raise UnknownOrderError(f"there is no order {order_id!r}; place it first")
        return order

    def _add(self, order: Order) -> None:
        if order.id in self.table.rows or any(o.id == order.id for o in self.seen):
            raise DomainError(
                f"order {order.id} already exists; load it with uow.orders.load({order.id!r}) "
                "to change it"
            )
        self.added.append(order)

    def _get(self, order_id: str) -> Order | None:
        known = next((order for order in self.seen if order.id == order_id), None)
        if known is not None:
            return known
        row = self.table.rows.get(order_id)
        return None if row is None else row.to_order()


class OrderUnitOfWork(StateUnitOfWork):
    """One command's changes to the orders: ``with uow:`` load, decide, ``uow.commit()``.

    Each ``with`` block starts with a fresh repository, ``uow.orders`` (so orders loaded
    before the block are not saved by a commit inside it). ``commit()`` saves
    the changed order, refusing one that was saved since it was loaded
    (:class:`StaleOrderError`, nothing saved), and then hands its events to the bus;
    leaving the block without committing drops them. One command changes one order: a
    commit that changed two is refused.
    """

    def __init__(self, table: OrderTable | None = None) -> None:
        self.table = OrderTable() if table is None else table
        self.orders = OrderRepository(self.table)
        self.commits = 0

    def __enter__(self) -> Self:
        self.orders = OrderRepository(self.table)
        return super().__enter__()

    def _commit(self) -> None:
        changed = [order for order in self.orders.seen if self._changed(order)]
        if len(changed) > 1:
            names = " and ".join(order.id for order in changed)
            raise DomainError(
                f"this unit of work changed orders {names}; one command changes one order. "
                "Nothing was saved: change the others in commands of their own"
            )
        for order in changed:
            self._check_version(order)
        for order in changed:
            self.table.rows[order.id] = StoredOrder.of(order, order.version + 1)
            order.version += 1
        self.orders.added = [order for order in self.orders.added if order not in changed]
        self.commits += 1

    def _rollback(self) -> None:
        # Nothing to undo: the table is written only by _commit. The base class then empties
        # the events of the orders seen; the next ``with`` starts a fresh repository.
        pass

    def _changed(self, order: Order) -> bool:
        row = self.table.rows.get(order.id)
        return (
            any(new is order for new in self.orders.added)
            or row is None
            or StoredOrder.of(order, row.version) != row
        )

    def _check_version(self, order: Order) -> None:
        row = self.table.rows.get(order.id)
        if any(new is order for new in self.orders.added):
            if row is not None:
                raise DomainError(
                    f"order {order.id} was placed meanwhile by another command; nothing was "
                    "saved. Load it instead of adding it"
                )
            return
        if row is None:
            raise UnknownOrderError(
                f"order {order.id} was loaded but is no longer stored; nothing was saved"
            )
        if row.version != order.version:
            raise StaleOrderError(
                f"order {order.id} is at version {row.version} in the table, but this copy was "
                f"loaded at version {order.version}: another unit of work saved it since. "
                "Nothing was saved; load the order again, decide again, and commit that"
            )

    def __repr__(self) -> str:
        return f"OrderUnitOfWork({plural(self.commits, 'commit')}, {self.table!r})"


# ---------------------------------------------------------------------- command handlers


def place_order(command: PlaceOrder, uow: OrderUnitOfWork) -> str:
    """Create the order and save it; returns its status."""
    with uow:
        order = Order.create(command.order_id, command.customer_id, command.total, command.items)
        uow.orders.add(order)
        uow.commit()
    return order.status


def pay_order(command: PayOrder, uow: OrderUnitOfWork) -> str:
    """Load the order, let it take the payment, save it; returns its status."""
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
        uow.commit()
    return order.status


def cancel_order(command: CancelOrder, uow: OrderUnitOfWork) -> str:
    """Load the order, let it decide whether it can be cancelled, save it."""
    with uow:
        order = uow.orders.load(command.order_id)
        order.cancel(command.reason)
        uow.commit()
    return order.status


def ship_order(command: ShipOrder, uow: OrderUnitOfWork) -> str:
    """Load the order, let it decide whether it can ship, save it."""
    with uow:
        order = uow.orders.load(command.order_id)
        order.ship()
        uow.commit()
    return order.status


def ship_when_paid(event: OrderPaid) -> ShipOrder:
    """The shop's policy: a paid order is to be shipped (the order decides if it can)."""
    return ShipOrder(event.order_id)


def hand_to_courier(event: OrderShipped, shipping: Shipping) -> None:
    """The warehouse hands the parcel of a shipped order to the courier."""
    shipping.ship(event.order_id)


# ---------------------------------------------------------------------- wiring

_UNDECIDED = ("request_shipment", "ship_order")
"""The shop's handlers that ship an order without asking it: left out of the wiring."""


def bootstrap(uow: OrderUnitOfWork, shop: Shop) -> EventBus:
    """A bus whose commands go through the order: committed events reach ``shop``.

    The shop's own shipping handlers, which ship whatever is paid without asking the order,
    are left out; :func:`ship_when_paid` sends a ``ShipOrder`` instead.
    """
    bus = EventBus(dependencies={"uow": uow, "shipping": shop.shipping}, collect_from=[uow])
    bus.register(PlaceOrder, place_order)
    bus.register(PayOrder, pay_order)
    bus.register(CancelOrder, cancel_order)
    bus.register(ShipOrder, ship_order)
    for event_type, handler in shop.handlers():
        if handler.__name__ not in _UNDECIDED:
            bus.register(event_type, handler)
    bus.register(OrderPaid, ship_when_paid)
    bus.register(OrderShipped, hand_to_courier)
    return bus
