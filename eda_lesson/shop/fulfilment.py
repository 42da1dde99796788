"""Order fulfilment across inventory, payment and shipping: orchestrated, and choreographed.

One business process, several participants: the warehouse reserves stock, the payment
gateway charges the customer, shipping sends the parcel, and the order (an event-sourced
:class:`~eda_lesson.shop.order.Order`) records what happened. When payment fails, the steps
already taken are undone by *compensation*: the stock is released and the order cancelled.

The same process is wired two ways, on a plain :class:`~eda_lesson.core.bus.EventBus`:

* :class:`OrchestratedFulfilment`: a *process manager* (:class:`FulfilmentProcess`) follows
  the process in a state machine, :data:`FULFILMENT`, and sends each participant a command
  (``ReserveStock``, ``ChargePayment``, ...). Its state is an event-sourced aggregate,
  :class:`FulfilmentSaga`, saved in the event store as it moves. The state machine is plain
  data (states, and transitions labelled by event type names), ready to be drawn.
* :class:`ChoreographedFulfilment`: no one is in charge; each participant reacts to the
  others' events (the warehouse hears ``OrderCreated``, payment hears ``StockReserved``, ...).

Both return the :class:`~eda_lesson.core.result.DispatchResult` of the whole cascade, so a
notebook can draw one run of each side by side. What this module does not do: time out a
saga that waits forever, retry a failed step, or run participants in other processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eda_lesson.core.bus import EventBus, require_sync_bus
from eda_lesson.core.result import DispatchResult
from eda_lesson.patterns.aggregate import Aggregate
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.saga import StateMachine, Transition
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import EventStore, InMemoryEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.order import ORDER_EVENTS, Order
from eda_lesson.shop.services import Inventory, OutOfStockError, Shipping

__all__ = [
    "FULFILMENT",
    "CancelOrder",
    "ChargePayment",
    "ChoreographedFulfilment",
    "FulfilmentAdvanced",
    "FulfilmentProcess",
    "FulfilmentSaga",
    "FulfilmentStarted",
    "OrchestratedFulfilment",
    "OrderCommand",
    "PaymentDeclinedError",
    "PaymentFailed",
    "PaymentGateway",
    "ReleaseStock",
    "ReserveStock",
    "StockReleased",
    "StockReservationFailed",
    "StockReserved",
    "Warehouse",
    "fulfilment_registry",
]


# ---------------------------------------------------------------------- messages


@dataclass(frozen=True)
class StockReserved(OrderEvent):
    """The warehouse set the order's items aside."""

    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class StockReservationFailed(OrderEvent):
    """The warehouse could not set the items aside (nothing was reserved)."""

    reason: str = ""


@dataclass(frozen=True)
class StockReleased(OrderEvent):
    """The warehouse put the order's items back on the shelf (a compensation)."""

    reason: str = ""


@dataclass(frozen=True)
class PaymentFailed(OrderEvent):
    """The payment gateway refused to charge the customer."""

    reason: str = ""


@dataclass(frozen=True)
class OrderCommand:
    """A request to one participant, sent by the process manager. Commands are named in the
    imperative (do this), events in the past tense (this happened)."""

    order_id: str


@dataclass(frozen=True)
class ReserveStock(OrderCommand):
    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class ChargePayment(OrderCommand):
    amount: float = 0.0


@dataclass(frozen=True)
class ReleaseStock(OrderCommand):
    reason: str = ""


@dataclass(frozen=True)
class CancelOrder(OrderCommand):
    reason: str = ""


FULFILMENT = StateMachine(
    name="order fulfilment",
    initial="new",
    transitions=(
        Transition("new", "OrderCreated", "awaiting stock", sends="ReserveStock"),
        Transition("awaiting stock", "StockReserved", "awaiting payment", sends="ChargePayment"),
        Transition("awaiting stock", "StockReservationFailed", "cancelling", sends="CancelOrder"),
        Transition("awaiting payment", "OrderPaid", "awaiting shipment", sends="ShipmentRequested"),
        Transition(
            "awaiting payment",
            "PaymentFailed",
            "releasing stock",
            sends="ReleaseStock",
            compensating=True,
        ),
        Transition(
            "releasing stock", "StockReleased", "cancelling", sends="CancelOrder", compensating=True
        ),
        Transition("awaiting shipment", "OrderShipped", "shipped"),
        Transition("cancelling", "OrderCancelled", "cancelled"),
    ),
)
"""The fulfilment process: the happy path to 'shipped', and two ways to 'cancelled'."""


# ---------------------------------------------------------------------- the saga's state


@dataclass(frozen=True)
class FulfilmentStarted(OrderEvent):
    """The process manager took charge of an order."""

    total: float = 0.0
    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class FulfilmentAdvanced(OrderEvent):
    """The process moved to ``state`` because ``trigger`` happened."""

    trigger: str = ""
    state: str = ""
    reason: str = ""


class FulfilmentSaga(Aggregate):
    """Where one order's fulfilment stands, rebuilt from the saga's own events."""

    stream_prefix = "fulfilment"

    machine = FULFILMENT

    state: str
    total: float
    items: tuple[LineItem, ...]
    reason: str
    """Why the process is being undone ('' while all goes well)."""
    path: list[Transition]
    """The transitions taken so far, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.state = self.machine.initial
        self.total = 0.0
        self.items = ()
        self.reason = ""
        self.path = []

    @classmethod
    def start(cls, event: OrderCreated) -> FulfilmentSaga:
        """A saga for a newly created order (records FulfilmentStarted)."""
        saga = cls()
        saga.record(FulfilmentStarted(event.order_id, event.total, event.items))
        return saga

    def advance(self, event: object) -> Transition | None:
        """Move on ``event`` if the state machine expects it here; return the transition
        taken, or None (the event is ignored and nothing is recorded)."""
        transition = self.machine.transition(self.state, type(event).__name__)
        if transition is None:
            return None
        reason = getattr(event, "reason", "") if transition.sends else ""
        self.record(FulfilmentAdvanced(self.id, transition.trigger, transition.target, reason))
        return transition

    @property
    def finished(self) -> bool:
        return self.state in self.machine.final_states()

    @applies(FulfilmentStarted)
    def _started(self, event: FulfilmentStarted) -> None:
        self.id = event.order_id
        self.total = event.total
        self.items = event.items
        self._move("OrderCreated")

    @applies(FulfilmentAdvanced)
    def _advanced(self, event: FulfilmentAdvanced) -> None:
        self._move(event.trigger)
        self.reason = event.reason or self.reason

    def _move(self, trigger: str) -> None:
        transition = self.machine.transition(self.state, trigger)
        if transition is not None:  # replay trusts the record: only valid moves were saved
            self.path = [*self.path, transition]
            self.state = transition.target

    def __repr__(self) -> str:
        return f"FulfilmentSaga({self.id!r}, state={self.state!r}, version={self.version})"


# ---------------------------------------------------------------------- participants


class PaymentDeclinedError(Exception):
    """The payment gateway refused a charge."""


@dataclass
class PaymentGateway:
    """Charges customers; declines the orders in :attr:`declined` (or all of them)."""

    declined: set[str] = field(default_factory=set)
    decline_all: bool = False
    received: dict[str, float] = field(default_factory=dict)

    def charge(self, order_id: str, amount: float) -> None:
        if self.decline_all or order_id in self.declined:
            raise PaymentDeclinedError(f"card declined for order {order_id}")
        self.received[order_id] = amount

    def __repr__(self) -> str:
        declines = "everything" if self.decline_all else ", ".join(sorted(self.declined))
        received = ", ".join(f"{order}={amount:g}" for order, amount in self.received.items())
        return f"PaymentGateway(declines {declines or 'nothing'}; received {received or 'nothing'})"


class Warehouse:
    """The inventory participant: reserves and releases stock, answering with events."""

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.inventory = Inventory(stock=dict(stock or {}))

    def reserve(self, order_id: str, items: tuple[LineItem, ...]) -> OrderEvent:
        try:
            self.inventory.reserve(order_id, items)
        except OutOfStockError as error:
            return StockReservationFailed(order_id, str(error))
        return StockReserved(order_id, items)

    def release(self, order_id: str, reason: str = "") -> StockReleased:
        self.inventory.release(order_id)
        return StockReleased(order_id, reason)

    def __repr__(self) -> str:
        stock = ", ".join(f"{sku}={n}" for sku, n in self.inventory.stock.items()) or "empty"
        return f"Warehouse({stock})"


class _Fulfilment:
    """The participants and their world, shared by both ways of wiring the process."""

    def __init__(
        self,
        stock: dict[str, int] | None = None,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.store: EventStore = store if store is not None else InMemoryEventStore()
        self.bus = require_sync_bus(bus, "the saga") if bus is not None else EventBus()
        self.warehouse = Warehouse(stock)
        self.payments = PaymentGateway()
        self.shipping = Shipping()

    def place_order(
        self, order_id: str, customer_id: str, items: Iterable[LineItem], total: float
    ) -> DispatchResult:
        """Create the order and publish OrderCreated; return the whole cascade it started."""
        with UnitOfWork(self.store, self.bus) as uow:
            uow.repository(Order).add(Order.create(order_id, customer_id, total, items))
            (result,) = uow.commit()
        return result

    def order(self, order_id: str) -> Order:
        """The order as its stream tells it now."""
        return Order.from_events(s.event for s in self.store.read(Order.stream_for(order_id)))

    def _change_order(self, order_id: str, change: Callable[[Order], None]) -> None:
        """Load the order, apply ``change``, commit: the events join the running cascade."""
        with UnitOfWork(self.store, self.bus) as uow:
            change(uow.repository(Order).get(order_id))
            uow.commit()

    # -- what participants do, whoever asked -------------------------------------------------

    def _charge(self, order_id: str, amount: float) -> PaymentFailed | None:
        try:
            self.payments.charge(order_id, amount)
        except PaymentDeclinedError as error:
            return PaymentFailed(order_id, str(error))
        self._change_order(order_id, lambda order: order.pay(amount))
        return None

    def _ship(self, order_id: str) -> None:
        tracking_code = self.shipping.ship(order_id)
        self._change_order(order_id, lambda order: order.ship(tracking_code))

    def _cancel(self, order_id: str, reason: str) -> None:
        self._change_order(order_id, lambda order: order.cancel(reason))


class FulfilmentProcess:
    """The process manager: moves each order's :class:`FulfilmentSaga` through
    :data:`FULFILMENT` and answers each move with the command the transition sends.

    The saga is saved before the command goes out (commit, then publish), so a crash never
    leaves a command sent by a saga that does not remember sending it.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._messages: dict[str, Callable[[FulfilmentSaga], object]] = {
            "ReserveStock": lambda saga: ReserveStock(saga.id, saga.items),
            "ChargePayment": lambda saga: ChargePayment(saga.id, saga.total),
            "ShipmentRequested": lambda saga: ShipmentRequested(saga.id),
            "ReleaseStock": lambda saga: ReleaseStock(saga.id, saga.reason),
            "CancelOrder": lambda saga: CancelOrder(saga.id, saga.reason),
        }

    def react(self, event: OrderEvent) -> object | None:
        """Advance the order's saga on ``event``; return the command to send, if any."""
        saga = self.saga(event.order_id)
        if saga is None:
            if not isinstance(event, OrderCreated):
                return None  # not an order this process manages
            saga = FulfilmentSaga.start(event)
            transition = saga.path[-1]
        else:
            found = saga.advance(event)
            if found is None:
                return None  # not expected in this state: ignored, nothing recorded
            transition = found
        self.store.append(saga.stream_id, saga.pending, saga.saved_version)
        saga.collect_pending()
        return self._messages[transition.sends](saga) if transition.sends else None

    def saga(self, order_id: str) -> FulfilmentSaga | None:
        """The saga of ``order_id`` rebuilt from its events, or None if it never started."""
        stored = self.store.read(FulfilmentSaga.stream_for(order_id))
        return FulfilmentSaga.from_events(s.event for s in stored) if stored else None

    def __repr__(self) -> str:
        return f"FulfilmentProcess({FULFILMENT.name!r})"


_TRIGGERS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        OrderCreated,
        StockReserved,
        StockReservationFailed,
        OrderPaid,
        PaymentFailed,
        StockReleased,
        OrderShipped,
        OrderCancelled,
    )
}


class OrchestratedFulfilment(_Fulfilment):
    """Fulfilment run by a process manager that sends each participant a command.

    >>> shop = OrchestratedFulfilment(stock={"book": 2})
    >>> shop.payments.declined.add("o-1")
    >>> result = shop.place_order("o-1", "c-7", [LineItem("book", 1)], total=12.0)
    >>> shop.saga("o-1").state, shop.order("o-1").status, shop.warehouse
    ('cancelled', 'cancelled', Warehouse(book=2))
    """

    def __init__(
        self,
        stock: dict[str, int] | None = None,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
    ) -> None:
        super().__init__(stock, store=store, bus=bus)
        self.process = FulfilmentProcess(self.store)
        for trigger in FULFILMENT.triggers():
            self.bus.register(_TRIGGERS[trigger], self.process.react)
        self.bus.register(ReserveStock, self.reserve_stock)
        self.bus.register(ChargePayment, self.charge_payment)
        self.bus.register(ShipmentRequested, self.ship_order)
        self.bus.register(ReleaseStock, self.release_stock)
        self.bus.register(CancelOrder, self.cancel_order)

    def saga(self, order_id: str) -> FulfilmentSaga:
        """Where the fulfilment of ``order_id`` stands."""
        saga = self.process.saga(order_id)
        if saga is None:
            raise LookupError(f"no fulfilment started for order {order_id!r}; place it first")
        return saga

    def reserve_stock(self, command: ReserveStock) -> OrderEvent:
        return self.warehouse.reserve(command.order_id, command.items)

    def charge_payment(self, command: ChargePayment) -> PaymentFailed | None:
        return self._charge(command.order_id, command.amount)

    def ship_order(self, command: ShipmentRequested) -> None:
        self._ship(command.order_id)

    def release_stock(self, command: ReleaseStock) -> StockReleased:
        return self.warehouse.release(command.order_id, command.reason)

    def cancel_order(self, command: CancelOrder) -> None:
        self._cancel(command.order_id, command.reason)

    def __repr__(self) -> str:
        return f"OrchestratedFulfilment({self.warehouse!r}, {len(self.store.stream_ids())} streams)"


class ChoreographedFulfilment(_Fulfilment):
    """Fulfilment with nobody in charge: each participant reacts to the others' events.

    >>> shop = ChoreographedFulfilment(stock={"book": 2})
    >>> result = shop.place_order("o-1", "c-7", [LineItem("book", 1)], total=12.0)
    >>> shop.order("o-1").status, shop.warehouse
    ('shipped', Warehouse(book=1))
    """

    def __init__(
        self,
        stock: dict[str, int] | None = None,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
    ) -> None:
        super().__init__(stock, store=store, bus=bus)
        self.bus.register(OrderCreated, self.reserve_stock)
        self.bus.register(StockReserved, self.charge_payment)
        self.bus.register(OrderPaid, self.ship_order)
        self.bus.register(PaymentFailed, self.release_stock)
        self.bus.register(StockReleased, self.cancel_order)
        self.bus.register(StockReservationFailed, self.cancel_order)

    def reserve_stock(self, event: OrderCreated) -> OrderEvent:
        return self.warehouse.reserve(event.order_id, event.items)

    def charge_payment(self, event: StockReserved) -> PaymentFailed | None:
        return self._charge(event.order_id, self.order(event.order_id).total)

    def ship_order(self, event: OrderPaid) -> None:
        self._ship(event.order_id)

    def release_stock(self, event: PaymentFailed) -> StockReleased:
        return self.warehouse.release(event.order_id, event.reason)

    def cancel_order(self, event: StockReleased | StockReservationFailed) -> None:
        self._cancel(event.order_id, event.reason)

    def __repr__(self) -> str:
        return (
            f"ChoreographedFulfilment({self.warehouse!r}, {len(self.store.stream_ids())} streams)"
        )


def fulfilment_registry() -> EventRegistry:
    """A registry of every event of the fulfilment process (the order's, the participants'
    and the saga's own), for an :class:`~eda_lesson.patterns.store.SQLiteEventStore` or a broker."""
    extra: tuple[type[Any], ...] = (
        ShipmentRequested,
        StockReserved,
        StockReservationFailed,
        StockReleased,
        PaymentFailed,
        FulfilmentStarted,
        FulfilmentAdvanced,
    )
    return EventRegistry.of(*ORDER_EVENTS, *extra)
