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
notebook can draw one run of each side by side. :class:`OutboxFulfilment` sends every message
of the orchestrated process through the outbox, and each waiting state has a deadline on the
process's clock. What this module does not do: run participants in other processes, or
isolate a saga: other orders see its intermediate states (stock reserved for an order whose
payment will fail), as the saga is no transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eda_lesson.core.bus import EventBus, require_sync_bus
from eda_lesson.core.clock import Clock
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import Aggregate
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.outbox import BusPublisher, Outbox, OutboxUnitOfWork, Relay
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import EventStore, InMemoryEventStore, SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.commands import CancelOrder, OrderCommand
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
    "ChargePayment",
    "ChoreographedFulfilment",
    "FulfilmentAdvanced",
    "FulfilmentProcess",
    "FulfilmentRetried",
    "FulfilmentSaga",
    "FulfilmentStalled",
    "FulfilmentStarted",
    "OrchestratedFulfilment",
    "OutboxFulfilment",
    "PaymentDeclinedError",
    "PaymentFailed",
    "PaymentGateway",
    "ReleaseStock",
    "RequestShipment",
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


# The commands the process manager sends. Each is a Command (shop.commands.OrderCommand), so
# the bus gives it exactly one handler and refuses to run it with none. CancelOrder is the
# shop's own: the saga asks for the same cancellation a customer can ask for.


@dataclass(frozen=True)
class ReserveStock(OrderCommand):
    """Ask the warehouse to set the order's items aside."""

    items: tuple[LineItem, ...] = ()


@dataclass(frozen=True)
class ChargePayment(OrderCommand):
    """Ask the payment gateway to charge the customer."""

    amount: float = 0.0


@dataclass(frozen=True)
class RequestShipment(OrderCommand):
    """Ask shipping to send the paid order's parcel (the shop's own ``ShipmentRequested``
    event says that this was asked; the saga asks, so it sends a command)."""


@dataclass(frozen=True)
class ReleaseStock(OrderCommand):
    """Ask the warehouse to put the order's items back (a compensation)."""

    reason: str = ""


FULFILMENT = StateMachine(
    name="order fulfilment",
    initial="new",
    transitions=(
        Transition("new", "OrderCreated", "awaiting stock", sends="ReserveStock"),
        Transition("awaiting stock", "StockReserved", "awaiting payment", sends="ChargePayment"),
        Transition("awaiting stock", "StockReservationFailed", "cancelling", sends="CancelOrder"),
        Transition("awaiting payment", "OrderPaid", "awaiting shipment", sends="RequestShipment"),
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
    deadlines=(
        ("awaiting stock", Deadline(30, retries=1, gives_up_as="StockReservationFailed")),
        ("awaiting payment", Deadline(60, retries=2, gives_up_as="PaymentFailed")),
        ("awaiting shipment", Deadline(120, retries=1)),  # the pivot: the money is taken
        ("releasing stock", Deadline(30, retries=3)),
        ("cancelling", Deadline(30, retries=3)),
    ),
)
"""The fulfilment process: the happy path to 'shipped', two ways to 'cancelled', and how long
each step may wait for an answer."""


# ---------------------------------------------------------------------- the saga's state


@dataclass(frozen=True)
class FulfilmentStarted(OrderEvent):
    """The process manager took charge of an order."""

    total: float = 0.0
    items: tuple[LineItem, ...] = ()
    due_at: float | None = field(default=None, repr=False)
    """When the first step's answer is due (None: no deadline)."""


@dataclass(frozen=True)
class FulfilmentAdvanced(OrderEvent):
    """The process moved to ``state`` because ``trigger`` happened."""

    trigger: str = ""
    state: str = ""
    reason: str = ""
    due_at: float | None = field(default=None, repr=False)
    """When the new state's answer is due (None: the process does not wait there)."""


@dataclass(frozen=True)
class FulfilmentRetried(OrderEvent):
    """No answer came in time: the process sent the state's command again."""

    state: str = ""
    attempt: int = 2
    due_at: float | None = None


@dataclass(frozen=True)
class FulfilmentStalled(OrderEvent):
    """No answer came, and the step cannot be undone automatically: a person must look."""

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
    due_at: float | None
    """When the answer to the current state's command is due (None: nothing awaited)."""
    attempts: int
    """How many times the current state's command was sent."""
    sent: list[str]
    """The commands the saga recorded as sent (with ``record_commands``), in order."""
    stalled: str
    """Why a person must look at this saga ('' while it runs by itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.state = self.machine.initial
        self.total = 0.0
        self.items = ()
        self.reason = ""
        self.path = []
        self.due_at = None
        self.attempts = 0
        self.sent = []
        self.stalled = ""

    @classmethod
    def start(cls, event: OrderCreated, now: float | None = None) -> FulfilmentSaga:
        """A saga for a newly created order (records FulfilmentStarted)."""
        saga = cls()
        first = cls.machine.transition(cls.machine.initial, "OrderCreated")
        due_at = cls._due(first.target if first else "", now)
        saga.record(FulfilmentStarted(event.order_id, event.total, event.items, due_at))
        return saga

    def advance(self, event: object, now: float | None = None) -> Transition | None:
        """Move on ``event`` if the state machine expects it here; return the transition
        taken, or None (the event is ignored and nothing is recorded)."""
        transition = self.machine.transition(self.state, type(event).__name__)
        if transition is None:
            return None
        reason = getattr(event, "reason", "") if transition.sends else ""
        due_at = self._due(transition.target, now)
        self.record(
            FulfilmentAdvanced(self.id, transition.trigger, transition.target, reason, due_at)
        )
        return transition

    def overdue(self, now: float) -> bool:
        """Whether the answer the saga waits for is late at ``now``."""
        return self.due_at is not None and now >= self.due_at and not self.stalled

    def retry(self, now: float) -> bool:
        """If the state's deadline allows another try, record it and return True."""
        deadline = self.machine.deadline(self.state)
        if deadline is None or self.attempts > deadline.retries:
            return False
        self.record(
            FulfilmentRetried(self.id, self.state, self.attempts + 1, now + deadline.seconds)
        )
        return True

    def stall(self, reason: str) -> None:
        """Flag the saga for a person (records FulfilmentStalled)."""
        self.record(FulfilmentStalled(self.id, self.state, reason))

    @classmethod
    def _due(cls, state: str, now: float | None) -> float | None:
        """When an answer is due in ``state``; None if it has no deadline, or no clock
        runs (``now`` is None)."""
        deadline = cls.machine.deadline(state)
        return None if deadline is None or now is None else now + deadline.seconds

    @property
    def finished(self) -> bool:
        return self.state in self.machine.final_states()

    @applies(FulfilmentStarted)
    def _started(self, event: FulfilmentStarted) -> None:
        self.id = event.order_id
        self.total = event.total
        self.items = event.items
        self._move("OrderCreated")
        self.due_at, self.attempts = event.due_at, 1

    @applies(FulfilmentAdvanced)
    def _advanced(self, event: FulfilmentAdvanced) -> None:
        self._move(event.trigger)
        self.reason = event.reason or self.reason
        self.due_at, self.attempts = event.due_at, 1
        self.stalled = ""  # it moved on (a person sent the command again): running by itself

    @applies(FulfilmentRetried)
    def _retried(self, event: FulfilmentRetried) -> None:
        self.due_at, self.attempts = event.due_at, event.attempt

    @applies(FulfilmentStalled)
    def _stalled(self, event: FulfilmentStalled) -> None:
        self.stalled = event.reason
        self.due_at = None

    @applies(OrderCommand)
    def _sent(self, command: OrderCommand) -> None:
        self.sent = [*self.sent, type(command).__name__]

    def _move(self, trigger: str) -> None:
        transition = self.machine.transition(self.state, trigger)
        if transition is not None:  # replay trusts the record: only valid moves were saved
            self.path = [*self.path, transition]
            self.state = transition.target

    def __repr__(self) -> str:
        waiting = f", due at {self.due_at:g}" if self.due_at is not None else ""
        stalled = ", stalled" if self.stalled else ""
        return (
            f"FulfilmentSaga({self.id!r}, state={self.state!r}{waiting}{stalled}, "
            f"version={self.version})"
        )


# ---------------------------------------------------------------------- participants


class PaymentDeclinedError(Exception):
    """The payment gateway refused a charge."""


@dataclass
class PaymentGateway:
    """Charges customers; declines the orders in :attr:`declined` (or all of them)."""

    declined: set[str] = field(default_factory=set)
    decline_all: bool = False
    received: dict[str, float] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    """Orders whose charge requests get lost on the way: no charge, no answer."""

    def charge(self, order_id: str, amount: float) -> bool:
        """Charge once per order (a repeated request for a charged order changes nothing);
        False when the request got no answer."""
        if order_id in self.unanswered:
            return False
        if self.decline_all or order_id in self.declined:
            raise PaymentDeclinedError(f"card declined for order {order_id}")
        self.received.setdefault(order_id, amount)
        return True

    def __repr__(self) -> str:
        declines = "everything" if self.decline_all else ", ".join(sorted(self.declined))
        received = ", ".join(f"{order}={amount:g}" for order, amount in self.received.items())
        return f"PaymentGateway(declines {declines or 'nothing'}; received {received or 'nothing'})"


class Warehouse:
    """The inventory participant: reserves and releases stock, answering with events."""

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.inventory = Inventory(stock=dict(stock or {}))

    def reserve(self, order_id: str, items: tuple[LineItem, ...]) -> OrderEvent:
        """Reserve the items, once per order: a repeated request answers the same again."""
        held = self.inventory.reserved.get(order_id)
        if held is not None:
            return StockReserved(order_id, held)
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
            answered = self.payments.charge(order_id, amount)
        except PaymentDeclinedError as error:
            return PaymentFailed(order_id, str(error))
        if answered and self.order(order_id).status == "created":
            self._change_order(order_id, lambda order: order.pay(amount))
        return None

    # A participant may hear a command twice (a saga re-sends on a deadline; a relay re-sends
    # after a crash), so each one does nothing when its work is done already.

    def _ship(self, order_id: str) -> None:
        if self.order(order_id).status != "paid":
            return
        tracking_code = self.shipping.ship(order_id)
        self._change_order(order_id, lambda order: order.ship(tracking_code))

    def _cancel(self, order_id: str, reason: str) -> None:
        if self.order(order_id).status == "cancelled":
            return
        self._change_order(order_id, lambda order: order.cancel(reason))


class FulfilmentProcess:
    """The process manager: moves each order's :class:`FulfilmentSaga` through
    :data:`FULFILMENT` and answers each move with the command the transition sends.

    The saga is saved before its command goes out. With ``record_commands=True`` the command
    is saved *with* it, in the saga's own stream and the same append: on a
    :class:`~eda_lesson.patterns.store.SQLiteEventStore` with an
    :class:`~eda_lesson.patterns.outbox.Outbox` the command then gets its outbox row in that
    transaction, and :meth:`react` returns nothing (the relay sends it). Without it the
    command is returned for the bus to dispatch at once, and a crash between the save and
    the dispatch loses it (the deadline then sends it again).

    :meth:`check_deadlines` asks the clock which sagas wait too long for an answer, and sends
    their command again or gives up as the state's :class:`~eda_lesson.patterns.saga.Deadline`
    says. Deadlines are set only when the process has a ``clock``: give it
    :class:`~eda_lesson.core.clock.WallClock` in production (deadlines are stored, and read
    again by whichever process checks them), a ``VirtualClock`` in lessons.
    """

    def __init__(
        self, store: EventStore, *, clock: Clock | None = None, record_commands: bool = False
    ) -> None:
        self.store = store
        self.clock = clock
        self.record_commands = record_commands
        self._messages: dict[str, Callable[[FulfilmentSaga], OrderCommand]] = {
            "ReserveStock": lambda saga: ReserveStock(saga.id, saga.items),
            "ChargePayment": lambda saga: ChargePayment(saga.id, saga.total),
            "RequestShipment": lambda saga: RequestShipment(saga.id),
            "ReleaseStock": lambda saga: ReleaseStock(saga.id, saga.reason),
            "CancelOrder": lambda saga: CancelOrder(saga.id, saga.reason),
        }

    def now(self) -> float | None:
        """The clock's time; None without a clock (then no deadline is set)."""
        return None if self.clock is None else self.clock.now()

    def react(self, event: OrderEvent) -> object | None:
        """Advance the order's saga on ``event``; return the command to send, if any."""
        saga = self.saga(event.order_id)
        if saga is None:
            if not isinstance(event, OrderCreated):
                return None  # not an order this process manages
            saga = FulfilmentSaga.start(event, self.now())
            transition = saga.path[-1]
        else:
            found = saga.advance(event, self.now())
            if found is None:
                return None  # not expected in this state: ignored, nothing recorded
            transition = found
        return self._save(saga, transition.sends)

    def check_deadlines(self) -> list[object]:
        """For every saga whose answer is overdue: send the command again, give up into the
        state's failure trigger (and its compensation), or flag it for a person. Returns
        the messages to dispatch (none with ``record_commands``: the relay sends them)."""
        now, out = self.now(), []
        if now is None:
            raise ValueError(
                "this process has no clock, so its sagas have no deadlines: build it with "
                "clock=WallClock() (or a VirtualClock in a lesson or a test)"
            )
        for saga in self.sagas():
            if not saga.overdue(now):
                continue
            message = self._act_on_lateness(saga, now)
            if message is not None:
                out.append(message)
        return out

    def _act_on_lateness(self, saga: FulfilmentSaga, now: float) -> object | None:
        state, tries = saga.state, plural(saga.attempts, "try", "tries")
        if saga.retry(now):
            return self._save(saga, self._sends_in(saga.machine, state))
        deadline = saga.machine.deadline(state)
        reason = f"no answer in {state!r} after {tries}"
        if deadline is not None and deadline.gives_up_as:
            failure = _TRIGGERS[deadline.gives_up_as](saga.id, reason)
            transition = saga.advance(failure, now)
            return self._save(saga, transition.sends if transition else "")
        saga.stall(reason)
        return self._save(saga, "")

    @staticmethod
    def _sends_in(machine: StateMachine, state: str) -> str:
        """The command that leads into ``state`` of the saga's ``machine`` (what is re-sent
        while waiting there)."""
        into = [t for t in machine.transitions if t.target == state and t.sends]
        return into[0].sends if into else ""

    def _save(self, saga: FulfilmentSaga, sends: str) -> object | None:
        message = self._messages[sends](saga) if sends else None
        events = list(saga.pending)
        if message is not None and self.record_commands:
            events.append(message)
        self.store.append(saga.stream_id, events, saga.saved_version)
        saga.collect_pending()
        return None if self.record_commands else message

    def saga(self, order_id: str) -> FulfilmentSaga | None:
        """The saga of ``order_id`` rebuilt from its events, or None if it never started."""
        stored = self.store.read(FulfilmentSaga.stream_for(order_id))
        return FulfilmentSaga.from_events(s.event for s in stored) if stored else None

    def sagas(self) -> list[FulfilmentSaga]:
        """Every saga that has not finished, oldest stream first."""
        prefix = f"{FulfilmentSaga.stream_prefix}-"
        found = []
        for stream_id in self.store.stream_ids():
            if stream_id.startswith(prefix):
                saga = FulfilmentSaga.from_events(s.event for s in self.store.read(stream_id))
                if not saga.finished:
                    found.append(saga)
        return found

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

    A step whose answer never comes times out on ``clock``: :meth:`check_deadlines` sends
    the command again, then gives up into the step's failure and its compensation.
    """

    def __init__(
        self,
        stock: dict[str, int] | None = None,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(stock, store=store, bus=bus)
        self.process = FulfilmentProcess(self.store, clock=clock)
        self.failed_sends: deque[tuple[object, Exception]] = deque(maxlen=1_000)
        """Commands re-sent on a deadline whose participant failed, with its error (the
        newest 1,000: a process manager runs for ever)."""
        for trigger in FULFILMENT.triggers():
            self.bus.register(_TRIGGERS[trigger], self.process.react)
        self.bus.register(ReserveStock, self.reserve_stock)
        self.bus.register(ChargePayment, self.charge_payment)
        self.bus.register(RequestShipment, self.ship_order)
        self.bus.register(ReleaseStock, self.release_stock)
        self.bus.register(CancelOrder, self.cancel_order)

    def saga(self, order_id: str) -> FulfilmentSaga:
        """Where the fulfilment of ``order_id`` stands."""
        saga = self.process.saga(order_id)
        if saga is None:
            raise LookupError(f"no fulfilment started for order {order_id!r}; place it first")
        return saga

    def check_deadlines(self) -> list[DispatchResult]:
        """Act on every saga whose answer is overdue (see
        :meth:`FulfilmentProcess.check_deadlines`) and send the commands that decides.

        Returns the dispatches of the commands carried out. A command is sent on its own, so
        the error of a participant that fails reaches this caller; here it means "no answer",
        which the saga's next deadline deals with (it sends again or gives up). So it does not
        stop the other sagas' commands: it is kept in :attr:`failed_sends` with its command.
        """
        sent = []
        for command in self.process.check_deadlines():
            try:
                sent.append(self.bus.dispatch(command))
            except Exception as error:  # the participant did not answer; the deadline will
                self.failed_sends.append((command, error))
        return sent

    # Each participant is a command's one handler. What a command handler returns is its
    # answer to the caller, not a message, so the participants dispatch the events they
    # answer with: inside a handler, that joins the running cascade.

    def reserve_stock(self, command: ReserveStock) -> None:
        self.bus.dispatch(self.warehouse.reserve(command.order_id, command.items))

    def charge_payment(self, command: ChargePayment) -> None:
        failed = self._charge(command.order_id, command.amount)
        if failed is not None:
            self.bus.dispatch(failed)

    def ship_order(self, command: RequestShipment) -> None:
        self._ship(command.order_id)

    def release_stock(self, command: ReleaseStock) -> None:
        self.bus.dispatch(self.warehouse.release(command.order_id, command.reason))

    def cancel_order(self, command: CancelOrder) -> None:
        self._cancel(command.order_id, command.reason)

    def __repr__(self) -> str:
        return f"OrchestratedFulfilment({self.warehouse!r}, {len(self.store.stream_ids())} streams)"


class OutboxFulfilment(OrchestratedFulfilment):
    """Orchestrated fulfilment whose every message goes through the outbox.

    The order's changes are saved with :class:`~eda_lesson.patterns.outbox.OutboxUnitOfWork`
    and the saga records each command in its own stream (``record_commands``): a command
    is in the outbox the moment the saga's move is saved, in the same transaction, so no
    crash can leave a saga that believes it asked while nobody was asked. :meth:`deliver`
    runs the relay, which hands each message to the bus (the events participants answer
    with join that message's cascade); a crash before delivery only delays it.
    ``id_prefix`` names the outbox's messages (``"msg-"`` gives ``msg-1``, ``msg-2``, ...).

    >>> import tempfile, pathlib
    >>> from eda_lesson.patterns.store import SQLiteEventStore
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fulfilment.db"
    >>> shop = OutboxFulfilment(SQLiteEventStore(path, fulfilment_registry()), {"book": 2})
    >>> shop.place_order("o-1", "c-7", [LineItem("book", 1)], total=12.0)
    >>> shop.outbox.counts()  # (sent, waiting): OrderCreated waits for the relay
    (0, 1)
    >>> _ = shop.deliver()
    >>> shop.saga("o-1").state, shop.saga("o-1").sent, shop.order("o-1").status
    ('shipped', ['ReserveStock', 'ChargePayment', 'RequestShipment'], 'shipped')
    """

    def __init__(
        self,
        store: SQLiteEventStore,
        stock: dict[str, int] | None = None,
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        id_prefix: str | None = None,
    ) -> None:
        super().__init__(stock, store=store, bus=bus, clock=clock)
        self.sqlite_store = store
        self.process.record_commands = True
        self.outbox = Outbox(store, id_prefix=id_prefix)
        self.publisher = BusPublisher(self.bus, store.registry)
        self.relay = Relay(self.outbox, self.publisher)

    def place_order(  # type: ignore[override]
        self, order_id: str, customer_id: str, items: Iterable[LineItem], total: float
    ) -> None:
        """Save the new order and its OrderCreated message; :meth:`deliver` sends it."""
        with OutboxUnitOfWork(self.sqlite_store, self.outbox) as uow:
            uow.repository(Order).add(Order.create(order_id, customer_id, total, items))
            uow.commit()

    def _change_order(self, order_id: str, change: Callable[[Order], None]) -> None:
        with OutboxUnitOfWork(self.sqlite_store, self.outbox) as uow:
            change(uow.repository(Order).get(order_id))
            uow.commit()

    def deliver(self) -> list[DispatchResult]:
        """Relay every waiting message to the bus until none is left; return the dispatch
        results, one per message delivered."""
        before = len(self.publisher.results)
        while self.relay.publish_pending():
            pass
        return self.publisher.results[before:]

    def check_deadlines(self) -> list[DispatchResult]:
        """Act on overdue sagas (their re-sent commands join the outbox), then deliver."""
        self.process.check_deadlines()
        return self.deliver()


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
        ShipmentRequested,  # the shop's event, kept readable for stores written before
        StockReserved,
        StockReservationFailed,
        StockReleased,
        PaymentFailed,
        FulfilmentStarted,
        FulfilmentAdvanced,
        FulfilmentRetried,
        FulfilmentStalled,
        ReserveStock,
        ChargePayment,
        RequestShipment,
        ReleaseStock,
        CancelOrder,
    )
    return EventRegistry.of(*ORDER_EVENTS, *extra)
