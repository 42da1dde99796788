"""Checks for the capstone (notebook 12, returns and refunds), and the world they run in.

The capstone builds one feature in six steps: a command and its handler, a rule in an
aggregate, events, a projection, a saga, the outbox. This module holds three things:

* the *given* pieces the learner builds on: :class:`Purchase` (an order as the returns desk
  sees it), the commands :class:`ReceiveParcel`, :class:`IssueRefund` and
  :class:`NotifySupport`, the participants (:class:`RefundGateway`, :class:`SupportDesk`),
  the process manager :class:`ReturnProcess` that runs a state machine, and
  :class:`ReturnsDesk`, which wires them on one bus, with or without an outbox;
* the *reference solution* of every step (:class:`RequestReturn`, :func:`request_return`,
  :class:`ReturnablePurchase`, :class:`ReturnReceived` ..., :class:`OpenReturns`,
  :data:`RETURN_PROCESS`, :func:`save_through_outbox`), so that a learner stuck on one step
  can import it and go on with the next;
* the checks, ``ex1`` to ``ex6``: each plugs the learner's piece into a desk built from the
  reference pieces and runs a real flow on a virtual clock, in a SQLite store in a
  temporary folder.

What this module does not do: print, keep anything between checks, or talk to a broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eda_lesson.book.exercises import RequirementNotMetError, exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import Command
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import Aggregate, DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.outbox import (
    BusPublisher,
    Outbox,
    OutboxUnitOfWork,
    Relay,
    SimulatedCrash,
)
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import EventStore, SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork

__all__ = [
    "DAY",
    "RETURN_DAYS",
    "RETURN_PROCESS",
    "IssueRefund",
    "NotifySupport",
    "OpenReturns",
    "Purchase",
    "PurchasePlaced",
    "PurchaseShipped",
    "ReceiveParcel",
    "RefundFailed",
    "RefundGateway",
    "RefundIssued",
    "RequestReturn",
    "ReturnProcess",
    "ReturnProcessMoved",
    "ReturnProcessRetried",
    "ReturnReceived",
    "ReturnRequested",
    "ReturnablePurchase",
    "ReturnsDesk",
    "SaveMove",
    "SupportDesk",
    "ex1",
    "ex2",
    "ex3",
    "ex4",
    "ex5",
    "ex6",
    "request_return",
    "returns_registry",
    "save_and_send_at_once",
    "save_through_outbox",
]

DAY = 86_400.0
"""One day, in seconds of the virtual clock."""

RETURN_DAYS = 30
"""A shipped order can be returned within this many days of shipping."""


# ---------------------------------------------------------------------- given: the purchase


@dataclass(frozen=True)
class PurchasePlaced:
    """The returns desk heard of a new order (its customer and what it cost)."""

    order_id: str
    customer_id: str
    amount: float


@dataclass(frozen=True)
class PurchaseShipped:
    """The order left the warehouse at ``shipped_at`` (seconds on the desk's clock)."""

    order_id: str
    shipped_at: float


@dataclass(frozen=True)
class ReturnRequested:
    """The customer asked to send the order back (the event exercise 2's rule records)."""

    order_id: str
    customer_id: str
    reason: str
    requested_at: float


# ---------------------------------------------------------------------- step 3 (reference)


@dataclass(frozen=True)
class ReturnReceived:
    """The warehouse has the parcel back; ``amount`` is what the customer is owed."""

    order_id: str
    amount: float


@dataclass(frozen=True)
class RefundIssued:
    """The gateway paid the money back."""

    order_id: str
    amount: float


@dataclass(frozen=True)
class RefundFailed:
    """The gateway could not pay the money back (or never answered), and why."""

    order_id: str
    reason: str


class Purchase(Aggregate):
    """An order as the returns desk sees it: placed, shipped, return requested, received.

    Given to the learner: its state, how each event changes it, and the commands
    :meth:`place`, :meth:`ship` and :meth:`receive`. The rule for asking a return is
    exercise 2's (:class:`ReturnablePurchase` is the reference). Every subclass keeps the
    stream prefix ``purchase``, so all of them read and write the same streams.
    """

    stream_prefix = "purchase"

    customer_id: str
    amount: float
    status: str
    """'placed', 'shipped', 'return requested' or 'received'."""
    shipped_at: float | None

    def __init__(self) -> None:
        super().__init__()
        self.customer_id = ""
        self.amount = 0.0
        self.status = "new"
        self.shipped_at = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.stream_prefix = "purchase"

    @classmethod
    def place(cls, order_id: str, customer_id: str, amount: float) -> Purchase:
        purchase = cls()
        purchase.record(PurchasePlaced(order_id, customer_id, amount))
        return purchase

    def ship(self, now: float) -> None:
        if self.status != "placed":
            raise DomainError(f"order {self.id} is {self.status}; only a placed order ships")
        self.record(PurchaseShipped(self.id, now))

    def request_return(self, reason: str, now: float) -> None:
        """Exercise 2 writes the rule and records :class:`ReturnRequested`."""
        raise NotImplementedError("write the rule in a subclass (exercise 2)")

    def receive(self) -> None:
        """The parcel is back: record :class:`ReturnReceived`, once."""
        if self.status != "return requested":
            raise DomainError(
                f"order {self.id} is {self.status}: a parcel is received only after a "
                "return was requested, and only once"
            )
        self.record(ReturnReceived(self.id, self.amount))

    @applies(PurchasePlaced)
    def _placed(self, event: PurchasePlaced) -> None:
        self.id, self.customer_id, self.amount = event.order_id, event.customer_id, event.amount
        self.status = "placed"

    @applies(PurchaseShipped)
    def _shipped(self, event: PurchaseShipped) -> None:
        self.status, self.shipped_at = "shipped", event.shipped_at

    @applies(ReturnRequested)
    def _return_requested(self, event: ReturnRequested) -> None:
        self.status = "return requested"

    @applies(ReturnReceived)
    def _received(self, event: ReturnReceived) -> None:
        self.status = "received"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.status}, version={self.version})"


# ---------------------------------------------------------------------- step 2 (reference)


class ReturnablePurchase(Purchase):
    """The reference solution of exercise 2: the return rule, in the command method."""

    def request_return(self, reason: str, now: float) -> None:
        if self.status in ("new", "placed"):
            raise DomainError(f"order {self.id} has not shipped yet: nothing to return")
        if self.status != "shipped":
            raise DomainError(f"order {self.id} is already being returned: one return only")
        assert self.shipped_at is not None  # set with the status 'shipped'
        if now - self.shipped_at > RETURN_DAYS * DAY:
            raise DomainError(f"order {self.id} shipped more than {RETURN_DAYS} days ago")
        self.record(ReturnRequested(self.id, self.customer_id, reason, now))


# ---------------------------------------------------------------------- commands


@dataclass(frozen=True)
class RequestReturn(Command):
    """The reference solution of exercise 1: a customer asks to send an order back."""

    order_id: str
    reason: str


@dataclass(frozen=True)
class ReceiveParcel(Command):
    """The warehouse tells the desk that a returned parcel arrived."""

    order_id: str


@dataclass(frozen=True)
class IssueRefund(Command):
    """The saga asks the gateway to pay ``amount`` back."""

    order_id: str
    amount: float


@dataclass(frozen=True)
class NotifySupport(Command):
    """The saga hands a return it could not finish to a person (the compensation)."""

    order_id: str
    reason: str


def request_return(command: RequestReturn, desk: ReturnsDesk) -> None:
    """The reference solution of exercise 1: the command's one handler."""
    with desk.purchase(command.order_id) as purchase:
        purchase.request_return(command.reason, desk.clock.now())


# ---------------------------------------------------------------------- step 4 (reference)


class OpenReturns(Projection):
    """The reference solution of exercise 4: the orders each customer is returning, until
    the money is back. A failed refund leaves the return open."""

    open: dict[str, list[str]]
    customer_of: dict[str, str]

    def reset(self) -> None:
        super().reset()
        self.open = {}
        self.customer_of = {}

    @applies(ReturnRequested)
    def _requested(self, event: ReturnRequested) -> None:
        self.customer_of[event.order_id] = event.customer_id
        self.open.setdefault(event.customer_id, []).append(event.order_id)

    @applies(RefundIssued)
    def _refunded(self, event: RefundIssued) -> None:
        customer = self.customer_of.get(event.order_id)
        if customer is None or event.order_id not in self.open.get(customer, []):
            return
        self.open[customer].remove(event.order_id)
        if not self.open[customer]:
            del self.open[customer]

    def snapshot(self) -> dict[str, list[str]]:
        return {customer: list(orders) for customer, orders in self.open.items()}


# ---------------------------------------------------------------------- step 5 (reference)

RETURN_PROCESS = StateMachine(
    name="return and refund",
    initial="new",
    transitions=(
        Transition("new", "ReturnRequested", "awaiting parcel"),
        Transition("awaiting parcel", "ReturnReceived", "refunding", sends="IssueRefund"),
        Transition("refunding", "RefundIssued", "refunded"),
        Transition(
            "refunding", "RefundFailed", "with support", sends="NotifySupport", compensating=True
        ),
    ),
    deadlines=(("refunding", Deadline(DAY, retries=1, gives_up_as="RefundFailed")),),
)
"""The reference solution of exercise 5."""


# ---------------------------------------------------------------------- step 6 (reference)

SaveMove = Callable[[EventStore, str, int, list[object], object | None], object | None]
"""``save_move(store, stream_id, expected_version, saga_events, command) -> message or None``:
how the process manager saves a saga's move; a message returned is dispatched at once."""


def save_through_outbox(
    store: EventStore,
    stream_id: str,
    expected_version: int,
    saga_events: list[object],
    command: object | None,
) -> None:
    """The reference solution of exercise 6: the move and its command in one append."""
    outgoing = [*saga_events, command] if command is not None else saga_events
    store.append(stream_id, outgoing, expected_version)


def save_and_send_at_once(
    store: EventStore,
    stream_id: str,
    expected_version: int,
    saga_events: list[object],
    command: object | None,
) -> object | None:
    """Save the move, then hand the command back to be dispatched now: one cascade to draw,
    and a crash between the two loses the command (the dual write of chapter 11)."""
    store.append(stream_id, saga_events, expected_version)
    return command


# ---------------------------------------------------------------------- given: the saga


@dataclass(frozen=True)
class ReturnProcessMoved:
    """The return's saga moved to ``state`` on ``trigger``."""

    order_id: str
    trigger: str
    state: str
    amount: float = 0.0
    reason: str = ""
    due_at: float | None = None


@dataclass(frozen=True)
class ReturnProcessRetried:
    """No answer came in time: the saga sent its command again."""

    order_id: str
    attempt: int
    due_at: float | None = None


@dataclass
class ReturnSaga:
    """Where one return stands, folded from its saga's stream."""

    order_id: str
    state: str
    amount: float = 0.0
    reason: str = ""
    due_at: float | None = None
    attempts: int = 0
    version: int = 0
    path: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    @classmethod
    def fold(cls, order_id: str, initial: str, events: Sequence[object]) -> ReturnSaga:
        saga = cls(order_id, initial)
        for event in events:
            saga.version += 1
            if isinstance(event, ReturnProcessMoved):
                saga.state, saga.due_at, saga.attempts = event.state, event.due_at, 1
                saga.amount = event.amount or saga.amount
                saga.reason = event.reason or saga.reason
                saga.path.append(event.state)
            elif isinstance(event, ReturnProcessRetried):
                saga.due_at, saga.attempts = event.due_at, event.attempt
            else:
                saga.sent.append(type(event).__name__)
        return saga


class ReturnProcess:
    """The process manager: moves each return's saga through ``machine`` and sends the
    commands its transitions name, saved with ``save_move``. :meth:`check_deadlines` acts
    on sagas whose answer is late, as the state's deadline says."""

    def __init__(
        self,
        store: EventStore,
        clock: VirtualClock,
        *,
        machine: StateMachine = RETURN_PROCESS,
        save_move: SaveMove = save_through_outbox,
    ) -> None:
        self.store, self.clock, self.machine, self.save_move = store, clock, machine, save_move

    @staticmethod
    def stream_for(order_id: str) -> str:
        return f"return-{order_id}"

    def saga(self, order_id: str) -> ReturnSaga:
        stored = self.store.read(self.stream_for(order_id))
        return ReturnSaga.fold(order_id, self.machine.initial, [s.event for s in stored])

    def react(
        self, event: ReturnRequested | ReturnReceived | RefundIssued | RefundFailed
    ) -> object:
        """Advance the saga of ``event``'s order; a message the save hands back is returned
        for the bus to dispatch."""
        saga = self.saga(event.order_id)
        transition = self.machine.transition(saga.state, type(event).__name__)
        if transition is None:
            return None  # not expected in this state: ignored
        deadline = self.machine.deadline(transition.target)
        due_at = None if deadline is None else self.clock.now() + deadline.seconds
        moved = ReturnProcessMoved(
            saga.order_id,
            transition.trigger,
            transition.target,
            float(getattr(event, "amount", 0.0)),
            str(getattr(event, "reason", "")),
            due_at,
        )
        saga = dataclasses.replace(
            saga, amount=moved.amount or saga.amount, reason=moved.reason or saga.reason
        )
        return self.save_move(
            self.store, moved_stream(saga), saga.version, [moved], self._command(transition, saga)
        )

    def check_deadlines(self) -> list[object]:
        """Send late commands again, or give up into the deadline's failure; return what
        the saves hand back for dispatching."""
        out = []
        for stream_id in self.store.stream_ids():
            if not stream_id.startswith("return-"):
                continue
            saga = self.saga(stream_id.removeprefix("return-"))
            if saga.due_at is None or self.clock.now() < saga.due_at:
                continue
            message = self._act_on_lateness(saga)
            if message is not None:
                out.append(message)
        return out

    def _act_on_lateness(self, saga: ReturnSaga) -> object | None:
        deadline = self.machine.deadline(saga.state)
        assert deadline is not None  # a due time is set only where a deadline is
        if saga.attempts <= deadline.retries:
            retried = ReturnProcessRetried(
                saga.order_id, saga.attempts + 1, self.clock.now() + deadline.seconds
            )
            into = [t for t in self.machine.transitions if t.target == saga.state and t.sends]
            command = self._command(into[0], saga) if into else None
            return self.save_move(self.store, moved_stream(saga), saga.version, [retried], command)
        reason = f"no answer in {saga.state!r} after {plural(saga.attempts, 'try', 'tries')}"
        failure = _failure(deadline.gives_up_as, saga.order_id, reason)
        if failure is None:
            return None
        return self.react(failure)

    def _command(self, transition: Transition, saga: ReturnSaga) -> object | None:
        if transition.sends == "IssueRefund":
            return IssueRefund(saga.order_id, saga.amount)
        if transition.sends == "NotifySupport":
            return NotifySupport(saga.order_id, saga.reason)
        if transition.sends:
            raise ValueError(
                f"the saga does not know how to send {transition.sends!r}; it sends "
                "IssueRefund or NotifySupport"
            )
        return None

    def __repr__(self) -> str:
        return f"ReturnProcess({self.machine.name!r})"


def moved_stream(saga: ReturnSaga) -> str:
    return ReturnProcess.stream_for(saga.order_id)


def _failure(trigger: str, order_id: str, reason: str) -> Any:
    if trigger == "RefundFailed":
        return RefundFailed(order_id, reason)
    return None


# ---------------------------------------------------------------------- given: participants


@dataclass
class RefundGateway:
    """Pays money back once per order; declines the orders in ``declined`` and never
    answers for those in ``silent`` (the request is lost on the way)."""

    declined: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    paid: dict[str, float] = field(default_factory=dict)
    requests: int = 0

    def refund(self, command: IssueRefund) -> RefundIssued | RefundFailed | None:
        self.requests += 1
        if command.order_id in self.silent:
            return None
        if command.order_id in self.declined:
            return RefundFailed(command.order_id, "the card was closed")
        self.paid.setdefault(command.order_id, command.amount)
        return RefundIssued(command.order_id, self.paid[command.order_id])

    def __repr__(self) -> str:
        paid = ", ".join(f"{order}={amount:g}" for order, amount in self.paid.items())
        return f"RefundGateway(paid {paid or 'nothing'}, {plural(self.requests, 'request')})"


@dataclass
class SupportDesk:
    """People who look at returns the process could not finish. While ``offline`` is set,
    a notification fails with ConnectionError (their system is down) and files nothing."""

    tickets: list[tuple[str, str]] = field(default_factory=list)
    offline: bool = False

    def notify(self, command: NotifySupport) -> None:
        if self.offline:
            raise ConnectionError(f"the support desk is offline: no ticket for {command.order_id}")
        self.tickets.append((command.order_id, command.reason))

    def __repr__(self) -> str:
        return f"SupportDesk({plural(len(self.tickets), 'ticket')})"


def returns_registry(*extra: type) -> EventRegistry:
    """Every message of the returns desk, for its SQLite store and outbox."""
    return EventRegistry.of(
        PurchasePlaced,
        PurchaseShipped,
        ReturnRequested,
        ReturnReceived,
        RefundIssued,
        RefundFailed,
        ReturnProcessMoved,
        ReturnProcessRetried,
        IssueRefund,
        NotifySupport,
        *extra,
    )


# ---------------------------------------------------------------------- given: the desk


class _News:
    """Events saved or answered during a handler call, which the bus collects after it
    (``collect_from``), so they join the cascade that is running, whichever bus runs it."""

    def __init__(self) -> None:
        self.waiting: list[object] = []

    def collect_new_events(self) -> Iterator[object]:
        while self.waiting:
            yield self.waiting.pop(0)


class _SaveThenHandOver(UnitOfWork):
    """Saves the purchase's events, then hands them to the running cascade (no outbox)."""

    def __init__(self, store: EventStore, news: _News) -> None:
        super().__init__(store, EventBus())
        self.news = news

    def commit(self) -> list[DispatchResult]:
        changed = self._changed()
        if changed:
            self.news.waiting.extend(self._save(changed))
        self.status = "committed"
        return []


class ReturnsDesk:
    """The returns feature wired on one bus, from whichever pieces it is given.

    With ``outbox=True`` (the finished feature) every event and every command of the saga
    is saved with an outbox row in the same transaction, and only :meth:`deliver` (the
    relay) hands them to the bus. With ``outbox=False`` events are dispatched as they are
    saved and commands as they are decided: the whole flow is one cascade, easy to draw,
    and a crash between a save and its dispatch loses a message.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: VirtualClock | None = None,
        outbox: bool = True,
        purchase_type: type[Purchase] = ReturnablePurchase,
        command_type: type = RequestReturn,
        handler: Callable[..., Any] = request_return,
        machine: StateMachine = RETURN_PROCESS,
        save_move: SaveMove | None = None,
        store: SQLiteEventStore | None = None,
    ) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        self.store = store if store is not None else SQLiteEventStore(path, returns_registry())
        self.purchase_type = purchase_type
        self.gateway, self.support = RefundGateway(), SupportDesk()
        self.news = _News()
        self.bus = EventBus(dependencies={"desk": self}, collect_from=[self.news])
        self.outbox = Outbox(self.store, id_prefix="evt-") if outbox else None
        chosen = save_move or (save_through_outbox if outbox else save_and_send_at_once)
        self.process = ReturnProcess(self.store, self.clock, machine=machine, save_move=chosen)
        self.publisher = BusPublisher(self.bus, self.store.registry)
        self.relay = Relay(self.outbox, self.publisher) if self.outbox is not None else None
        self.bus.register(command_type, handler)
        self.bus.register(ReceiveParcel, self.receive_parcel)
        self.bus.register(IssueRefund, self.refund)
        self.bus.register(NotifySupport, self.support.notify)
        for trigger in (ReturnRequested, ReturnReceived, RefundIssued, RefundFailed):
            self.bus.register(trigger, self.process.react)

    def unit_of_work(self) -> UnitOfWork:
        if self.outbox is not None:
            return OutboxUnitOfWork(self.store, self.outbox)
        return _SaveThenHandOver(self.store, self.news)

    @contextlib.contextmanager
    def purchase(self, order_id: str) -> Iterator[Purchase]:
        """Load the purchase of ``order_id`` in a unit of work; commit its new events when
        the block ends without an error (an error leaves nothing saved)."""
        with self.unit_of_work() as uow:
            yield uow.repository(self.purchase_type).get(order_id)
            uow.commit()

    def place_and_ship(self, order_id: str, customer_id: str, amount: float) -> None:
        """A purchase that shipped now: setting the scene, outside any cascade (nobody on
        the desk listens to PurchasePlaced or PurchaseShipped)."""
        with self.unit_of_work() as uow:
            purchase = self.purchase_type.place(order_id, customer_id, amount)
            purchase.ship(self.clock.now())
            uow.repository(self.purchase_type).add(purchase)
            uow.commit()
        self.news.waiting.clear()

    def receive_parcel(self, command: ReceiveParcel) -> None:
        with self.purchase(command.order_id) as purchase:
            purchase.receive()

    def refund(self, command: IssueRefund) -> None:
        """Ask the gateway; its answer (if any comes) joins the cascade."""
        answer = self.gateway.refund(command)
        if answer is not None:
            self.save_answer(f"refund-{command.order_id}", answer)

    def save_answer(self, stream_id: str, answer: object) -> None:
        """Keep a participant's answer in the store (where read models find it); through
        the outbox the relay sends it, without one it joins the running cascade."""
        self.store.append(stream_id, [answer], self.store.version(stream_id))
        if self.outbox is None:
            self.news.waiting.append(answer)

    def deliver(self) -> list[DispatchResult]:
        """Relay every waiting message to the bus until none is left (answers that
        participants return are dispatched in the same cascade)."""
        if self.relay is None:
            return []
        before = len(self.publisher.results)
        while self.relay.publish_pending():
            pass
        return self.publisher.results[before:]

    def check_deadlines(self) -> list[DispatchResult]:
        """Act on late sagas, then deliver what that put in the outbox."""
        sent = [self.bus.dispatch(message) for message in self.process.check_deadlines()]
        return sent + self.deliver()

    def state(self, order_id: str) -> str:
        return self.process.saga(order_id).state

    def __repr__(self) -> str:
        where = "through the outbox" if self.outbox is not None else "dispatched at once"
        return f"ReturnsDesk({len(self.store.stream_ids())} streams, {where})"


# ---------------------------------------------------------------------- helpers of the checks


def _quietly(function: Callable[..., Any], *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


_PACKAGE = str(Path(__file__).resolve().parents[2])
_STANDARD_LIBRARY = str(Path(contextlib.__file__).resolve().parent)


def _raised_in(error: BaseException) -> str:
    """`` (in name)``: the innermost function of the learner's code the traceback passes
    through (neither this package nor the standard library), or "" if none is found."""
    frames = traceback.extract_tb(error.__traceback__)
    theirs = [
        frame.name
        for frame in frames
        if not str(Path(frame.filename).resolve()).startswith((_PACKAGE, _STANDARD_LIBRARY))
        and not frame.filename.startswith("<")
    ]
    return f" (in {theirs[-1]})" if theirs and theirs[-1] != "<module>" else ""


def _yours(call: str, function: Callable[..., Any], *args: Any, hint: str) -> Any:
    """Run a piece of the learner's code: what it raises becomes feedback that names the
    call the check made, the error, and where to fix it (the exercise cell only defined the
    code, so the error shows up in the check's cell)."""
    try:
        return _quietly(function, *args)
    except RequirementNotMetError:
        raise
    except Exception as error:
        raise RequirementNotMetError(
            f"{call} raised {type(error).__name__}: {error}{_raised_in(error)}. Your "
            "exercise cell only defined that code; the check ran it, so the error shows "
            "here: fix it, run your exercise cell again, then this check",
            hint,
        ) from error


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="capstone-") as name:
        yield Path(name)


def _is_frozen_dataclass(cls: object) -> bool:
    return (
        isinstance(cls, type)
        and dataclasses.is_dataclass(cls)
        and bool(getattr(cls, "__dataclass_params__", None))
        and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    )


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _events_in(store: EventStore, stream_id: str) -> list[object]:
    return [stored.event for stored in store.read(stream_id)]


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a command and its one handler")
def ex1(command_type: object, handler: object) -> str:
    """``RequestReturn`` is a frozen dataclass ``Command`` (order_id, reason); its handler
    asks the purchase for a return, inside ``desk.purchase(...)``, at the clock's time."""
    expect(
        isinstance(command_type, type),
        f"pass your command class first, got {describe_value(command_type)}",
        "check.ex1(RequestReturn, request_return)",
    )
    assert isinstance(command_type, type)
    expect(
        not command_type.__name__.endswith("ed"),
        f"{command_type.__name__} reads like a fact; a command asks for something",
        "name it in the imperative: RequestReturn",
    )
    expect(
        issubclass(command_type, Command),
        f"{command_type.__name__} is not a Command, so the bus would treat it as an event "
        "(any number of handlers, errors kept from the caller)",
        "class RequestReturn(Command) with @dataclass(frozen=True) above it",
    )
    expect(
        _is_frozen_dataclass(command_type),
        f"{command_type.__name__} should be a frozen dataclass: a message does not change",
        "@dataclass(frozen=True) above the class",
    )
    expect(
        _fields(command_type)[:2] == ["order_id", "reason"],
        f"{command_type.__name__} has the fields {_fields(command_type)}; the check builds "
        f"{command_type.__name__}(order_id, reason)",
        "two fields, in this order: order_id: str and reason: str",
    )
    expect(
        callable(handler),
        f"pass your handler second, got {describe_value(handler)}",
        "check.ex1(RequestReturn, request_return)",
    )
    name = command_type.__name__
    with _folder() as folder:
        clock = VirtualClock()
        desk = _yours(
            f"registering your handler for {name} on the desk's bus (it provides desk)",
            functools.partial(
                ReturnsDesk,
                folder / "returns.db",
                clock=clock,
                outbox=False,
                command_type=command_type,
                handler=handler,  # type: ignore[arg-type]
            ),
            hint="name the handler's parameters command and desk: the bus passes the desk "
            "in by the parameter's name",
        )
        desk.place_and_ship("o-1", "c-7", 30.0)
        clock.advance(3 * DAY)
        asking = _yours(
            f"building {name}('o-1', 'too small')",
            command_type,
            "o-1",
            "too small",
            hint="a frozen dataclass with the fields order_id and reason, nothing more",
        )
        _yours(
            f"dispatching {name}('o-1', 'too small') to your handler",
            desk.bus.dispatch,
            asking,
            hint="inside `with desk.purchase(command.order_id) as purchase:` call "
            "purchase.request_return(command.reason, desk.clock.now())",
        )
        asked = [
            e for e in _events_in(desk.store, "purchase-o-1") if isinstance(e, ReturnRequested)
        ]
        expect(
            asked,
            "after RequestReturn('o-1', 'too small') the purchase recorded no ReturnRequested",
            "inside `with desk.purchase(command.order_id) as purchase:` call "
            "purchase.request_return(command.reason, desk.clock.now())",
        )
        expect(
            asked[0].reason == "too small",
            f"the return was recorded with the reason {asked[0].reason!r}, not the "
            "command's 'too small'",
            "pass command.reason on",
        )
        expect(
            asked[0].requested_at == 3 * DAY,
            f"the return was asked at {asked[0].requested_at:g} s; the desk's clock read "
            f"{3 * DAY:g} s (day 3)",
            "take the time from desk.clock.now(), never from time.time()",
        )
        expect(
            desk.state("o-1") == "awaiting parcel",
            "the return was saved, but the saga never heard of it",
            "save through desk.purchase(...): its unit of work publishes what it saved",
        )
        refused = False
        try:
            _quietly(desk.bus.dispatch, command_type("o-1", "again"))
        except DomainError:
            refused = True
        except Exception as error:
            raise RequirementNotMetError(
                f"asking a second return for o-1 raised {type(error).__name__}: {error}"
                f"{_raised_in(error)}; the purchase refused with a DomainError, and the "
                "caller should hear that refusal as itself",
                "do not catch or translate the DomainError in the handler: let it pass",
            ) from error
        expect(
            refused,
            "asking a second return for o-1 reached the caller as a success; the purchase "
            "refused it, and a command's caller must hear that",
            "do not catch the DomainError in the handler: the bus hands it to the caller",
        )
    return "the command asks, its one handler loads the purchase, and a refusal reaches you"


# ---------------------------------------------------------------------- exercise 2

_RULE_CASES: list[tuple[str, str, bool, str]] = [
    # (story, what happened, allowed, message when the answer disagrees)
    (
        "day 3 after shipping",
        "shipped",
        True,
        "a shipped order asked 3 days later was refused (now and shipped_at are seconds on "
        "the desk's clock; a day is DAY = 86400 s)",
    ),
    (
        "exactly 30 days after shipping",
        "shipped+30",
        True,
        "an order asked exactly 30 days after shipping was refused; the window includes its "
        "last second, RETURN_DAYS * DAY seconds after shipped_at",
    ),
    (
        "31 days after shipping",
        "shipped+31",
        False,
        "an order asked 31 days after shipping was accepted; the window is 30 days",
    ),
    (
        "30.5 days after shipping",
        "shipped+30.5",
        False,
        "an order asked 30.5 days after shipping was accepted; the window ends exactly "
        "RETURN_DAYS * DAY seconds after shipped_at, so half a day past day 30 is late "
        "(compare seconds, not whole days)",
    ),
    (
        "an order that never shipped",
        "placed",
        False,
        "a return was accepted for an order that has not shipped",
    ),
    (
        "a second return of the same order",
        "twice",
        False,
        "a second return of the same order was accepted; one return per order",
    ),
    (
        "an order whose parcel is already back",
        "received",
        False,
        "a return was accepted for an order whose parcel was already received",
    ),
]

_DAYS_AFTER_SHIPPING = {"shipped+30": 30.0, "shipped+30.5": 30.5, "shipped+31": 31.0}


def _purchase_for(purchase_type: type[Purchase], story: str) -> tuple[Purchase, float]:
    purchase = purchase_type.place("o-1", "c-7", 30.0)
    if story == "placed":
        return purchase, DAY
    purchase.ship(0.0)
    if story in ("twice", "received"):
        purchase.record(ReturnRequested("o-1", "c-7", "first", DAY))
    if story == "received":
        purchase.receive()
    days = _DAYS_AFTER_SHIPPING.get(story, 3.0)
    purchase.collect_pending()
    return purchase, days * DAY


def _asks_for_a_return(purchase: Purchase, story: str, now: float, allowed: bool) -> bool:
    """Whether ``purchase`` refused the request (with a DomainError); any other error
    becomes feedback saying which request raised it."""
    try:
        _quietly(purchase.request_return, "too small", now)
    except DomainError:
        return True
    except Exception as error:
        message = (
            f"for {story}, request_return('too small', {now:.0f}) raised "
            f"{type(error).__name__}: {error}{_raised_in(error)}"
        )
        if allowed:
            raise RequirementNotMetError(
                f"{message}; this request should be let through. Your exercise cell only "
                "defined the class; the check ran it, so the error shows here",
                "when every rule holds, record ReturnRequested and raise nothing",
            ) from error
        raise RequirementNotMetError(
            f"{message}; a refused rule raises DomainError (from "
            "eda_lesson.patterns.aggregate), the series' error for a broken rule: the bus "
            'hands it back to whoever asked as a "no", where any other error reads as a bug',
            "raise DomainError(...) for each broken rule",
        ) from error
    return False


@exercise("Exercise 2: the rule lives in the aggregate")
def ex2(purchase_type: object) -> str:
    """``purchase_type``: a subclass of :class:`Purchase` whose ``request_return(reason,
    now)`` checks the rule, raises DomainError when it is broken, and records
    :class:`ReturnRequested` when it holds."""
    expect(
        isinstance(purchase_type, type) and issubclass(purchase_type, Purchase),
        f"pass your subclass of Purchase, got {describe_value(purchase_type)}",
        "class ReturnablePurchase(Purchase): with a method request_return(self, reason, now)",
    )
    assert isinstance(purchase_type, type) and issubclass(purchase_type, Purchase)
    expect(
        purchase_type.request_return is not Purchase.request_return,
        f"{purchase_type.__name__} has no request_return of its own",
        "def request_return(self, reason, now): inside the class",
    )
    for story, kind, allowed, wrong in _RULE_CASES:
        purchase, now = _yours(
            f"setting up a purchase ({story}: place, ship, ...) with {purchase_type.__name__}",
            _purchase_for,
            purchase_type,
            kind,
            hint="change only request_return; Purchase's other methods are given",
        )
        before = purchase.version
        refused = _asks_for_a_return(purchase, story, now, allowed)
        if allowed:
            expect(not refused, f"{wrong}", "compare now - self.shipped_at with RETURN_DAYS * DAY")
            expect(
                [type(e).__name__ for e in purchase.pending] == ["ReturnRequested"],
                f"for {story} the rule let the return through but recorded "
                f"{[type(e).__name__ for e in purchase.pending]}, not one ReturnRequested",
                "self.record(ReturnRequested(self.id, self.customer_id, reason, now))",
            )
            event = purchase.pending[0]
            expect(
                event == ReturnRequested("o-1", "c-7", "too small", now),
                f"for {story} the purchase recorded {event}; it should say who asked, why, "
                "and when",
                "ReturnRequested(self.id, self.customer_id, reason, now)",
            )
        else:
            expect(
                refused and purchase.version == before,
                wrong
                if not refused
                else f"for {story} the rule raised, but something was recorded first",
                "check every rule first, raise DomainError(...) when one is broken, and "
                "record only once all of them hold",
            )
    return "shipped, not returned yet, within 30 days: the purchase guards its own rule"


# ---------------------------------------------------------------------- exercise 3


_FIELD_TYPES: dict[str, tuple[type, str]] = {
    "order_id": (str, "a str such as 'o-1'"),
    "amount": (float, "a float amount such as 30.0 (what the gateway pays back)"),
    "reason": (str, "a str such as 'the card was closed'"),
}


def _expect_plain_field_types(name: str, cls: type) -> None:
    """Each field declared with the type the desk sends: ``amount: float``, the rest str
    (an annotation may be the type or, under ``from __future__ import annotations``, its
    name)."""
    for declared in dataclasses.fields(cls):
        wanted, sent = _FIELD_TYPES[declared.name]
        if declared.type in (wanted, wanted.__name__):
            continue
        shown = getattr(declared.type, "__name__", None) or str(declared.type)
        expect(
            False,
            f"{name}.{declared.name} is declared {shown}, but the check, like the desk, sends "
            f"{sent}; the store keeps a field as the type it is declared",
            f"declare {declared.name}: {wanted.__name__}",
        )


@exercise("Exercise 3: events in the past tense")
def ex3(received: object, issued: object, failed: object) -> str:
    """Three frozen dataclass events: ReturnReceived(order_id, amount), RefundIssued(order_id,
    amount), RefundFailed(order_id, reason), that survive the store and move the saga."""
    wanted = [
        ("ReturnReceived", received, ["order_id", "amount"]),
        ("RefundIssued", issued, ["order_id", "amount"]),
        ("RefundFailed", failed, ["order_id", "reason"]),
    ]
    names = [name for name, _, _ in wanted]
    for name, cls, fields in wanted:
        expect(
            isinstance(cls, type),
            f"pass your three event classes (ReturnReceived, RefundIssued, RefundFailed); "
            f"got {describe_value(cls)} for {name}",
            "check.ex3(ReturnReceived, RefundIssued, RefundFailed)",
        )
        assert isinstance(cls, type)
        expect(
            cls.__name__ == name or cls.__name__ not in names,
            f"you passed {cls.__name__} where {name} goes; the check takes the three classes "
            "in the order the statement lists them",
            "pass the classes in this order: ReturnReceived, RefundIssued, RefundFailed",
        )
        expect(
            cls.__name__ == name,
            f"the class given for {name} is called {cls.__name__}; the saga's state machine "
            f"moves on the event names, so it must be called exactly {name}",
            f"rename {cls.__name__} to {name}, and keep its fields",
        )
        expect(
            not issubclass(cls, Command),
            f"{name} is a Command; it says what happened, so it is an event",
            "a plain frozen dataclass, or one subclassing Event",
        )
        expect(
            _is_frozen_dataclass(cls),
            f"{name} should be a frozen dataclass: a fact cannot be changed afterwards",
            "@dataclass(frozen=True) above the class",
        )
        expect(
            _fields(cls) == fields,
            f"{name} has the fields {_fields(cls)}; it should carry {fields}",
            f"{name}: " + ", ".join(fields),
        )
        _expect_plain_field_types(name, cls)
    assert isinstance(received, type) and isinstance(issued, type) and isinstance(failed, type)
    registry = _yours(
        "registering your three classes in an EventRegistry (as the store does)",
        EventRegistry.of,
        received,
        issued,
        failed,
        hint="three plain frozen dataclasses, each with its own name",
    )
    samples = [
        _yours(f"building {cls.__name__}{args!r}", cls, *args, hint="keep the dataclass plain")
        for cls, args in (
            (received, ("o-1", 30.0)),
            (issued, ("o-1", 30.0)),
            (failed, ("o-2", "the card was closed")),
        )
    ]
    for sample in samples:
        copy = _yours(
            f"writing {sample} as JSON and reading it back (as the store does)",
            lambda sample: registry.from_json(*registry.to_json(sample)),
            sample,
            hint="keep the fields to plain values: order_id: str, amount: float, reason: str",
        )
        expect(
            copy == sample,
            f"{sample} came back from the store as {copy}",
            "keep the fields to plain values: str and float",
        )
    return "three facts, named in the past tense, that the store keeps and the saga hears"


# ---------------------------------------------------------------------- exercise 4


def _story(desk: ReturnsDesk, clock: VirtualClock) -> None:
    desk.gateway.declined.add("o-3")
    for order_id, customer, amount in (
        ("o-1", "c-7", 30.0),
        ("o-2", "c-7", 12.0),
        ("o-3", "c-8", 20.0),
        ("o-4", "c-9", 5.0),
        ("o-5", "c-10", 8.0),
    ):
        desk.place_and_ship(order_id, customer, amount)
    clock.advance(2 * DAY)
    for order_id in ("o-1", "o-2", "o-3", "o-4"):
        desk.bus.dispatch(RequestReturn(order_id, "changed my mind"))
    for order_id in ("o-1", "o-3", "o-4"):
        desk.bus.dispatch(ReceiveParcel(order_id))
    desk.deliver()


def _open_of(projection: Projection) -> dict[str, list[str]]:
    return {k: list(v) for k, v in getattr(projection, "open", {}).items()}


def _event_failed_on(projection: Projection, store: EventStore) -> object | None:
    """The event a failed catch-up stopped at (its position is the event before it)."""
    stored = next(iter(store.read_all(projection.position)), None)
    return None if stored is None else stored.event


def _catch_up(projection: Projection, store: EventStore, what: str, rebuild: bool = False) -> None:
    """``projection.catch_up`` (or ``rebuild``); an error becomes feedback naming the event
    the learner's method failed on (catch_up stops at the event before it)."""
    try:
        _quietly(projection.rebuild if rebuild else projection.catch_up, store)
    except Exception as error:
        failed_on = _event_failed_on(projection, store)
        on = f" on {failed_on}" if failed_on is not None else ""
        raise RequirementNotMetError(
            f"{what}, your read model raised {type(error).__name__}: {error}"
            f"{_raised_in(error)}{on}. Your exercise cell only defined the class; the check "
            "ran it, so the error shows here",
            "a read model's method must not fail: it runs on every event of the store, "
            "again at each rebuild",
        ) from error


def _expect_the_desks_class(
    projection_type: type[Projection], works: bool, event_type: type, to: str
) -> None:
    """If a return is never ``to`` (opened, closed) because the read model marked its
    method for another class of ``event_type``'s name (the learner's own, after exercise 3)
    instead of ``event_type``, say so."""
    methods = projection_type._methods.event_types()
    covered = any(issubclass(event_type, marked) for marked in methods)
    namesakes = [m for m in methods if m.__name__ == event_type.__name__ and m is not event_type]
    name = event_type.__name__
    expect(
        works or covered or not namesakes,
        f"your read model marks a method for a class called {name}, but not the desk's: the "
        f"store holds check.{name} (this chapter's reference events), so that method never "
        f"runs and no return is ever {to} (after exercise 3, {name} in the notebook names "
        "your own class)",
        f"mark the method @applies(check.{name})",
    )


def _expect_a_repeat_changes_nothing(
    projection: Projection, store: EventStore, wanted: dict[str, list[str]]
) -> None:
    """A second RefundIssued for o-1 (its customer still has o-2 open) and for o-4 (its
    customer has nothing open any more): delivery is at least once, so the read model must
    take a repeat in its stride."""
    for order_id, amount in (("o-1", 30.0), ("o-4", 5.0)):
        stream_id = f"refund-{order_id}"
        store.append(stream_id, [RefundIssued(order_id, amount)], store.version(stream_id))
    try:
        _quietly(projection.catch_up, store)
    except Exception as error:
        failed_on = _event_failed_on(projection, store)
        on = f"{failed_on}" if failed_on is not None else "a repeated RefundIssued"
        raise RequirementNotMetError(
            f"a second {on} (the relay delivers at least once, so an answer can come "
            f"twice) made your read model raise {type(error).__name__}: {error}"
            f"{_raised_in(error)}; a repeated RefundIssued must change nothing",
            "on RefundIssued, do nothing when the order is not open (any more)",
        ) from error
    after = _open_of(projection)
    expect(
        after == wanted,
        f"after a second RefundIssued for o-1 and for o-4, your read model has {after}, "
        f"not {wanted}; a repeated RefundIssued must change nothing",
        "on RefundIssued, do nothing when the order is not open (any more)",
    )


@exercise("Exercise 4: a read model of open returns")
def ex4(projection_type: object) -> str:
    """``projection_type``: a Projection whose ``open`` is ``{customer: [order ids]}`` of the
    returns not refunded yet, built from the store's events."""
    expect(
        isinstance(projection_type, type) and issubclass(projection_type, Projection),
        f"pass your Projection subclass itself, got {describe_value(projection_type)}",
        "class OpenReturns(Projection): ... then check.ex4(OpenReturns)",
    )
    assert isinstance(projection_type, type) and issubclass(projection_type, Projection)
    with _folder() as folder:
        clock = VirtualClock()
        desk = ReturnsDesk(folder / "returns.db", clock=clock)
        _story(desk, clock)
        first, second = (
            _yours(
                f"building your read model, {projection_type.__name__}()",
                projection_type,
                hint="set up the state in reset(), after super().reset()",
            )
            for _ in range(2)
        )
        _catch_up(first, desk.store, "catching up on the story's events")
        expect(
            isinstance(getattr(first, "open", None), dict),
            f"after catch_up, open is {describe_value(getattr(first, 'open', None))}, not a dict",
            "set self.open = {} in reset(), after super().reset()",
        )
        wanted = {"c-7": ["o-2"], "c-8": ["o-3"]}
        got = _open_of(first)
        expect(
            "c-10" not in got,
            "c-10 never asked for a return, but your read model lists them",
            "add an order only on ReturnRequested",
        )
        _expect_the_desks_class(projection_type, got != {}, ReturnRequested, "opened")
        expect(
            got != {},
            "four returns were asked (o-1 to o-4), yet your read model lists none open",
            "on ReturnRequested, add event.order_id to the list of event.customer_id",
        )
        _expect_the_desks_class(
            projection_type, "o-1" not in got.get("c-7", []), RefundIssued, "closed"
        )
        expect(
            "o-1" not in got.get("c-7", []),
            f"o-1 was refunded, yet c-7 still has {got.get('c-7')} open",
            "on RefundIssued, take the order out of its customer's list; the event has no "
            "customer_id, so remember each order's customer from ReturnRequested",
        )
        expect(
            got.get("c-8") == ["o-3"],
            "o-3's refund failed, so its return is still open; your read model has "
            + (f"c-8: {got['c-8']}" if "c-8" in got else "no entry for c-8"),
            "a RefundFailed does not close a return: leave it open",
        )
        expect(
            got == wanted,
            f"the open returns should be {wanted}; your read model has {got}",
            "c-9's only return was refunded: a customer with no open return left is not "
            "listed (delete the key)",
        )
        _expect_a_repeat_changes_nothing(first, desk.store, wanted)
        _catch_up(second, desk.store, "a second read model, catching up on its own")
        _catch_up(first, desk.store, "rebuilding your read model from the first event", True)
        again = _open_of(first)
        expect(
            again == wanted,
            f"rebuilt from the first event, the read model says {again}, not {wanted}",
            "reset() must clear everything the read model keeps, and call super().reset()",
        )
        fresh = _open_of(second)
        expect(
            fresh == wanted,
            f"a second read model, built on its own, says {fresh}: the two share their state",
            "make the dicts in reset(), not as class attributes",
        )
    return "built from the events alone, and the same when rebuilt from scratch"


# ---------------------------------------------------------------------- exercise 5


_SAGA_HEARS = ("ReturnRequested", "ReturnReceived", "RefundIssued", "RefundFailed")
_SAGA_SENDS = ("IssueRefund", "NotifySupport")


def _arrow(t: Transition) -> str:
    return f"{t.source} --{t.trigger}--> {t.target}"


def _expect_a_well_shaped_machine(machine: StateMachine) -> None:
    """Every name the process manager reads is one it knows. (A StateMachine refuses, as it
    is built, a class where a name goes and a badly shaped deadline; the deadlines are looked
    at again for a machine changed after it was built.)"""
    for t in machine.transitions:
        expect(
            t.trigger in _SAGA_HEARS,
            f"the transition {_arrow(t)} moves on {t.trigger!r}, an event the saga never "
            f"hears: it hears {', '.join(_SAGA_HEARS)}",
            "the triggers are the names of exercise 3's events and ReturnRequested",
        )
        expect(
            t.sends in ("", *_SAGA_SENDS),
            f"the transition {_arrow(t)} sends {t.sends!r}, a command the desk does not have: "
            f"it has {' and '.join(_SAGA_SENDS)}",
            "sends names one of the desk's commands: IssueRefund or NotifySupport",
        )
    for entry in machine.deadlines:
        expect(
            isinstance(entry, tuple | list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], Deadline),
            f"deadlines holds {describe_value(entry)}; it is a tuple of (state, Deadline) "
            "pairs, one pair per waiting state",
            "deadlines=(('state', Deadline(seconds, retries=..., gives_up_as='...')),)",
        )


def _run_machine(machine: StateMachine, order_id: str, gateway: str) -> tuple[ReturnsDesk, Any]:
    folder = tempfile.TemporaryDirectory(prefix="capstone-")
    clock = VirtualClock()
    desk = ReturnsDesk(Path(folder.name) / "returns.db", clock=clock, machine=machine)
    if gateway == "declines":
        desk.gateway.declined.add(order_id)
    if gateway == "silent":
        desk.gateway.silent.add(order_id)
    desk.place_and_ship(order_id, "c-7", 30.0)
    desk.bus.dispatch(RequestReturn(order_id, "too small"))
    desk.deliver()
    return desk, folder


@exercise("Exercise 5: the saga, with compensation and a deadline")
def ex5(machine: object) -> str:
    """``machine``: a StateMachine that waits for the parcel, then refunds; on a failed
    refund notifies support (a compensation); and gives the refund one day, one retry,
    before giving up as RefundFailed."""
    expect(
        isinstance(machine, StateMachine),
        f"pass your StateMachine, got {describe_value(machine)}",
        "RETURN_PROCESS = StateMachine(name=..., initial='new', transitions=(...), "
        "deadlines=(...))",
    )
    assert isinstance(machine, StateMachine)
    _expect_a_well_shaped_machine(machine)
    first = machine.transition(machine.initial, "ReturnRequested")
    expect(
        first is not None,
        f"from its first state, {machine.initial!r}, your machine does not move on "
        "ReturnRequested, so no return ever starts",
        "Transition('new', 'ReturnRequested', 'awaiting parcel')",
    )
    assert first is not None
    expect(
        first.sends != "IssueRefund",
        "your machine refunds as soon as the return is asked, before the parcel is back",
        "wait for ReturnReceived before sending IssueRefund",
    )
    with contextlib.ExitStack() as stack:
        desk, folder = _run_machine(machine, "o-1", "pays")
        stack.callback(folder.cleanup)
        expect(
            desk.gateway.paid == {},
            "the money went back before the parcel arrived",
            "only the transition on ReturnReceived sends IssueRefund",
        )
        waiting = desk.state("o-1")
        desk.bus.dispatch(ReceiveParcel("o-1"))
        desk.deliver()
        moves = machine.transition(waiting, "ReturnReceived") is not None
        expect(
            desk.gateway.paid == {"o-1": 30.0},
            f"the parcel is back but nothing was refunded (the saga is in {desk.state('o-1')!r}"
            + ("" if moves else f"; your machine does not move on ReturnReceived in {waiting!r}")
            + ")",
            "Transition('awaiting parcel', 'ReturnReceived', 'refunding', sends='IssueRefund')",
        )
        expect(
            desk.gateway.requests == 1,
            f"the gateway was asked {desk.gateway.requests} times for one refund: IssueRefund "
            "is sent by more than one step",
            "only the transition on ReturnReceived sends IssueRefund",
        )
        expect(
            desk.state("o-1") != "refunding" and desk.state("o-1") in machine.final_states(),
            f"after RefundIssued the saga is in {desk.state('o-1')!r}: it should move on and "
            "end there, or it waits for ever",
            "Transition('refunding', 'RefundIssued', 'refunded')",
        )
        expect(
            desk.support.tickets == [],
            f"the refund was paid, yet support got {desk.support.tickets}: only the step "
            "taken on RefundFailed should send NotifySupport",
            "the transition on RefundIssued sends nothing",
        )
        declined, folder = _run_machine(machine, "o-2", "declines")
        stack.callback(folder.cleanup)
        declined.bus.dispatch(ReceiveParcel("o-2"))
        declined.deliver()
        expect(
            declined.support.tickets == [("o-2", "the card was closed")],
            f"the refund failed and support got {declined.support.tickets}; nobody will "
            "sort it out",
            "on RefundFailed, send NotifySupport",
        )
        failing = [t for t in machine.transitions if t.trigger == "RefundFailed"]
        expect(
            all(t.compensating for t in failing),
            "the step taken on RefundFailed is not marked as a compensation",
            "compensating=True on that Transition (it is drawn dashed, and listed as such)",
        )
        flagged = [t for t in machine.transitions if t.compensating and t not in failing]
        expect(
            not flagged,
            f"{_arrow(flagged[0]) if flagged else ''} is marked compensating=True, but it is "
            "no compensation: it does not make up for a failed step. Only the step taken on "
            "RefundFailed is one (a compensation is drawn dashed and listed as such)",
            "leave compensating at its default, False, on every other transition",
        )
        deadline = machine.deadline("refunding")
        expect(
            deadline is not None,
            "the saga does not wait with a deadline in 'refunding': a gateway that never "
            "answers leaves the return stuck there for ever",
            "deadlines=(('refunding', Deadline(...)),)",
        )
        assert deadline is not None
        expect(
            deadline.seconds == DAY and deadline.retries == 1,
            f"the refund's deadline waits {deadline.seconds:g} s and asks again "
            f"{deadline.retries} time(s); the statement says one day (DAY) and once more",
            "Deadline(DAY, retries=1, ...)",
        )
        silent, folder = _run_machine(machine, "o-3", "silent")
        stack.callback(folder.cleanup)
        silent.bus.dispatch(ReceiveParcel("o-3"))
        silent.deliver()
        for _ in range(2):
            silent.clock.advance(DAY)
            silent.check_deadlines()
        expect(
            silent.gateway.requests == 2,
            f"the gateway was asked {silent.gateway.requests} time(s) before the saga gave "
            "up; it should be asked twice (the first request and one retry)",
            "Deadline(DAY, retries=1, ...)",
        )
        expect(
            silent.support.tickets and silent.support.tickets[0][0] == "o-3",
            f"after two silent days the saga is in {silent.state('o-3')!r} and support "
            "heard nothing",
            "give up as the step's failure, gives_up_as='RefundFailed', so the same "
            "compensation runs",
        )
    return "refund after the parcel; support when it fails or the gateway stays silent"


# ---------------------------------------------------------------------- exercise 6


Appends = list[tuple[str, list[str]]]
"""The appends of one saga move: ``(stream_id, [event type names])`` each, in order."""


class _CountingStore(SQLiteEventStore):
    """A store that records every append a saga's ``save_move`` makes (to any stream), one
    list per move, and can crash on the second append of a move."""

    moves: list[Appends]
    errors: list[tuple[str, Exception]]
    crash_after_first: bool = False
    _recording: Appends | None = None

    def append(self, stream_id: str, events: Any, expected_version: int) -> int:
        events = list(events)
        if self._recording and self.crash_after_first:
            raise SimulatedCrash("simulated crash between two appends of one move")
        version = super().append(stream_id, events, expected_version)
        if self._recording is not None:
            self._recording.append((stream_id, [type(e).__name__ for e in events]))
        return version


def _counting_store(path: Path, *, crash: bool = False) -> _CountingStore:
    store = _CountingStore(path, returns_registry())
    store.moves, store.errors, store.crash_after_first = [], [], crash
    return store


def _move_counter(save_move: Callable[..., Any], store: _CountingStore) -> SaveMove:
    """``save_move``, recording each call's appends, and what it raised (the bus keeps an
    event handler's error in the dispatch result, where a learner would not look)."""

    def counted(*args: Any) -> Any:
        store._recording = []
        store.moves.append(store._recording)
        try:
            return save_move(*args)
        except SimulatedCrash:
            raise
        except Exception as error:
            _, stream_id, version, saga_events, command = args
            names = [type(e).__name__ for e in saga_events]
            sent = type(command).__name__ if command is not None else "None"
            store.errors.append(
                (f"save_move(store, {stream_id!r}, {version}, {names}, {sent})", error)
            )
            raise
        finally:
            store._recording = None

    return counted


def _expect_no_error_in(store: _CountingStore) -> None:
    if store.errors:
        call, error = store.errors[0]
        raise RequirementNotMetError(
            f"when the saga moved, the process manager called {call}, and your save_move "
            f"raised {type(error).__name__}: {error}{_raised_in(error)}. Your exercise cell "
            "only defined the function; the check ran it, so the error shows here",
            "append saga_events, with the command when there is one, in one store.append",
        )


def _shown(appends: Appends) -> str:
    return ", then ".join(f"{names} to {stream!r}" for stream, names in appends)


def _expect_one_append_for(move: Appends | None, stream_id: str) -> None:
    """The move that sent IssueRefund saved it with the saga's event in one append to the
    saga's stream (either order: the saga's fold counts both, and only its own event moves
    it; the relay sends the command first, while the move is already committed)."""
    if move is None:
        return
    expect(
        len(move) == 1 or "IssueRefund" not in move[0][1] or "ReturnProcessMoved" in move[0][1],
        f"your save_move appended the command first and the saga's move in a second append "
        f"({_shown(move)}): a crash between the two sends the refund, while the saga, whose "
        "move was lost, stays in 'awaiting parcel' and ignores the gateway's answer",
        "one append of the saga's events with the command: one transaction, so both or neither",
    )
    expect(
        len(move) == 1,
        f"the saga's move and its command were saved in separate appends ({_shown(move)}); "
        "a crash between them keeps the move and loses the command: the saga waits in "
        "'refunding' for an answer to a request nobody got, until its deadline asks again a "
        "day later",
        "one append of saga_events + [command]: one transaction, so both or neither",
    )
    ((saved_to, _),) = move
    expect(
        saved_to == stream_id,
        f"the move and its command went in one append, but to {saved_to!r}, not to the "
        f"saga's stream {stream_id!r}: the saga never sees that it moved",
        "append to stream_id, at expected_version",
    )


def _check_a_move_without_command(save_move: Callable[..., Any], store: EventStore) -> None:
    moved = ReturnProcessMoved("o-9", "ReturnRequested", "awaiting parcel")
    try:
        answer = _quietly(save_move, store, "return-o-9", 0, [moved], None)
    except Exception as error:
        raise RequirementNotMetError(
            f"saving a move that sends no command (command is None), save_move(store, "
            "'return-o-9', 0, "
            f"[ReturnProcessMoved], None), raised {type(error).__name__}: {error}"
            f"{_raised_in(error)}",
            "many moves send nothing: then append saga_events alone, without None",
        ) from error
    expect(
        answer is None or (isinstance(answer, list | tuple) and not answer),
        f"with no command to send, save_move returned {describe_value(answer)} for the bus "
        "to dispatch",
        "return None: whatever goes out, the relay delivers",
    )
    saved = _events_in(store, "return-o-9")
    expect(
        saved == [moved],
        f"a move without a command saved {saved}; it should save just the saga's event",
        "append saga_events to stream_id, at expected_version",
    )


@exercise("Exercise 6 (stretch): nothing lost between save and send")
def ex6(save_move: object) -> str:
    """``save_move(store, stream_id, expected_version, saga_events, command)``: save the
    saga's move so that its command goes out only through the outbox, with nothing lost
    if the process dies at any point."""
    expect(
        callable(save_move),
        f"pass your function itself, got {describe_value(save_move)}",
        "check.ex6(save_move)",
    )
    assert callable(save_move)
    with _folder() as folder:
        store = _counting_store(folder / "returns.db")
        _check_a_move_without_command(save_move, store)
        desk = ReturnsDesk(
            folder / "returns.db", store=store, save_move=_move_counter(save_move, store)
        )
        desk.place_and_ship("o-1", "c-7", 30.0)
        desk.bus.dispatch(RequestReturn("o-1", "too small"))
        desk.deliver()
        _expect_no_error_in(store)
        expect(
            desk.state("o-1") == "awaiting parcel",
            f"after ReturnRequested the saga is in {desk.state('o-1')!r}: its move was not saved",
            "append saga_events to stream_id at expected_version",
        )
        _quietly(desk.bus.dispatch, ReceiveParcel("o-1"))
        desk.deliver()
        _expect_no_error_in(store)
        expect(
            desk.gateway.requests <= 1,
            f"the gateway was asked {desk.gateway.requests} times for one refund: the "
            "command went out twice",
            "either return the command or save it with the move: the outbox is the one way out",
        )
        expect(
            desk.gateway.paid == {"o-1": 30.0},
            "the parcel is back, but the refund never reached the gateway",
            "the command belongs in the store too: the outbox sends what is appended",
        )
        in_outbox = [m.event_type for m in desk.outbox.messages()] if desk.outbox else []
        expect(
            "IssueRefund" in in_outbox,
            "the refund reached the gateway without going through the outbox: a crash "
            "right after the saga's save would lose it",
            "append the command to the saga's stream instead of returning it",
        )
        refunding = [m for m in store.moves if any("IssueRefund" in n for _, n in m)]
        _expect_one_append_for(refunding[0] if refunding else None, "return-o-1")
        crash_store = _counting_store(folder / "crash.db", crash=True)
        crashing = ReturnsDesk(
            folder / "crash.db",
            store=crash_store,
            save_move=_move_counter(save_move, crash_store),
        )
        crashing.place_and_ship("o-2", "c-7", 30.0)
        crashing.bus.dispatch(RequestReturn("o-2", "too small"))
        crashing.deliver()
        _quietly(crashing.bus.dispatch, ReceiveParcel("o-2"))
        crashing.deliver()
        expect(
            crashing.gateway.paid == {"o-2": 30.0},
            "with a crash after the first append of a move, the refund was lost",
            "save the move and its command in one append",
        )
    return "one append holds the move and its command; only the relay sends it"
