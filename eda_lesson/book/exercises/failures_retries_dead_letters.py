"""Checks for the exercises of notebook 07 (failures, retries, dead letters, idempotency).

Each check builds a small world of its own (a card processor that is busy or declines, a
warehouse that is down, a payment provider whose answer gets lost), runs the learner's function
against it on a :class:`~eda_lesson.core.clock.VirtualClock`, and says what went differently
from what was asked. Each scenario of a check makes events with ids of its own, so an answer
that keeps what it has seen between calls (a module-level ``idempotent()``) is judged on what
it does, not on what an earlier scenario left behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import SequentialIds, caused_by, use_ids
from eda_lesson.core.middleware import DeadLetterStore, Replayed, dead_letters, retry
from eda_lesson.core.result import DispatchResult
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.services import Shipping, Shop

__all__ = [
    "CardDeclinedError",
    "CheckBank",
    "CheckProvider",
    "FlakyShipping",
    "ex1",
    "ex2",
    "ex3",
    "ex4",
]


class CardDeclinedError(ValueError):
    """The bank said no: the same charge will be declined again (a permanent failure)."""


class CheckBank:
    """The check's card processor: busy (TimeoutError) for its first ``busy`` calls, or
    declining every card (``declines=True``)."""

    def __init__(self, busy: int = 0, *, declines: bool = False) -> None:
        self.busy = busy
        self.declines = declines
        self.calls = 0
        self.charges: list[tuple[str, float]] = []

    def charge(self, event: Any) -> None:
        self.calls += 1
        if self.declines:
            raise CardDeclinedError(f"card declined for order {event.order_id}")
        if self.calls <= self.busy:
            raise TimeoutError(f"the bank did not answer (call {self.calls})")
        self.charges.append((event.order_id, event.amount))


@dataclass
class FlakyShipping(Shipping):
    """The warehouse system, which can be down (as in the notebook)."""

    down: bool = True
    shipped: list[str] = field(default_factory=list)

    def ship(self, order_id: str) -> str:
        if self.down:
            raise ConnectionError("the warehouse system is unreachable")
        return super().ship(order_id)


_check_runs = itertools.count(1)
"""Numbers each run of a check, so its events get ids no earlier run used: marks that an
answer keeps between calls (a shared ``idempotent()``) never meet an event a second time."""


def _fresh_ids(scenario: str) -> SequentialIds:
    return SequentialIds(f"{scenario}-{next(_check_runs)}-evt")


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: retry what is worth retrying")
def ex1(payment_bus: Callable[[Any, VirtualClock], EventBus], event_type: type) -> str:
    """``payment_bus(bank, clock)`` returns a bus on which ``bank.charge`` handles
    ``event_type``, retried on TimeoutError only, 4 attempts, waits of 0.5 s doubling."""
    expect(callable(payment_bus), "pass your function: check.ex1(payment_bus, CheckoutCompleted)")

    clock, bank = VirtualClock(), CheckBank(busy=3)
    result = _pay(payment_bus, bank, clock, event_type)
    expect(
        bank.calls > 0,
        f"bank.charge was never called for {event_type.__name__}",
        f"register it: bus.register({event_type.__name__}, bank.charge, middleware=[...])",
    )
    expect(
        bank.calls > 1,
        "with the bank busy for its first 3 calls, bank.charge was called only once: "
        "nothing retried it",
        "register it with middleware=[retry(...)]",
    )
    expect(
        result.ok and bank.charges == [("o-1", 30.0)],
        f"the bank was busy for 3 calls and the card was charged {len(bank.charges)} times "
        f"after {bank.calls} calls; 4 attempts should get through",
        "retry(4, ...) counts every try, the first included",
    )
    expect(
        clock.sleeps == [0.5, 1.0, 2.0],
        f"the waits between attempts were {_waits(clock)}; expected 0.5 s, 1 s, 2 s",
        "backoff=exponential(base=0.5, factor=2), and clock=clock so the waits are virtual",
    )

    clock, bank = VirtualClock(), CheckBank(busy=10)
    result = _pay(payment_bus, bank, clock, event_type)
    expect(
        bank.calls == 4 and not result.ok,
        f"with the bank busy for good, bank.charge was called {bank.calls} times; "
        "expected 4 attempts in all, then the failure recorded",
        "retry(4, ...): four tries, the first included",
    )

    clock, bank = VirtualClock(), CheckBank(declines=True)
    result = _pay(payment_bus, bank, clock, event_type)
    expect(
        bank.calls == 1,
        f"a declined card (a ValueError) was tried {bank.calls} times; a decline is permanent: "
        "asking again only annoys the bank",
        "retry only TimeoutError: retry(..., retry_on=TimeoutError)",
    )
    expect(not result.ok, "a declined card must still show as a failed call in the result")
    return "busy banks are retried on schedule (0.5, 1, 2 s); declined cards fail at once"


def _pay(
    payment_bus: Callable[[Any, VirtualClock], EventBus],
    bank: CheckBank,
    clock: VirtualClock,
    event_type: type,
) -> DispatchResult:
    bus = payment_bus(bank, clock)
    expect(
        isinstance(bus, EventBus),
        f"payment_bus(bank, clock) returned {type(bus).__name__}; return the EventBus",
    )
    event = event_type(order_id="o-1", amount=30.0)

    async def dispatch() -> DispatchResult:
        return bus.dispatch(event)

    # Run on the virtual clock, so that a retry given no clock waits there too, not for real.
    return clock.run(dispatch())


def _waits(clock: VirtualClock) -> str:
    return ", ".join(f"{wait:g} s" for wait in clock.sleeps) or "none"


# ---------------------------------------------------------------------- exercise 2


@exercise("Exercise 2: fix the warehouse and replay")
def ex2(fix_and_replay: Callable[[Shop, DeadLetterStore, EventBus], Any]) -> str:
    """After the warehouse was down, ``fix_and_replay(shop, store, bus)`` brings it back and
    replays the dead letters so the order ends up shipped and the store empty."""
    expect(callable(fix_and_replay), "pass your function: check.ex2(fix_and_replay)")
    shop, store, bus = _broken_warehouse()
    outcomes = fix_and_replay(shop, store, bus)
    status = shop.orders.status.get("o-1")
    on_its_way = [m for m in shop.mailer.sent if m.subject == "Order o-1 is on its way"]
    expect(
        not isinstance(shop.shipping, FlakyShipping) or not shop.shipping.down,
        "the warehouse is still down: fix the cause before replaying",
        "shop.shipping.down = False",
    )
    expect(
        len(store) == 0,
        f"the store still holds {len(store)} letter(s): {store.list()}",
        "replay the letters after the fix: store.replay(bus)",
    )
    expect(
        shop.shipping.shipped == ["o-1"],
        f"the warehouse shipped {shop.shipping.shipped}; expected ['o-1'] exactly once",
    )
    expect(
        status == "shipped" and len(on_its_way) == 1,
        f"the parcel left, but the order is {status!r} and the customer got "
        f"{len(on_its_way)} 'on its way' emails: OrderShipped was never dispatched",
        "store.replay() with no bus calls the handler directly and drops the events it "
        "returns; replay through the bus: store.replay(bus)",
    )
    expect(
        isinstance(outcomes, list) and all(isinstance(o, Replayed) for o in outcomes),
        "return what store.replay(...) returned (a list of Replayed), "
        f"got {type(outcomes).__name__}",
    )
    expect(all(outcome.ok for outcome in outcomes), f"a replay failed: {outcomes}")
    return "the letter left the store, and the order is shipped and announced"


def _broken_warehouse() -> tuple[Shop, DeadLetterStore, EventBus]:
    clock = VirtualClock()
    shop, store = Shop(stock={"book": 3}), DeadLetterStore(clock=clock)
    shop.shipping = FlakyShipping()
    bus = EventBus(
        middleware=[dead_letters(store), retry(3, retry_on=ConnectionError, clock=clock)]
    )
    shop.register(bus)
    bus.dispatch(OrderCreated("o-1", "c-7", 42.0))
    bus.dispatch(OrderPaid("o-1", 42.0))
    return shop, store, bus


# ---------------------------------------------------------------------- exercise 3


class _OnceBusyBank(CheckBank):
    """Busy for the very first call only, whatever it is."""

    def __init__(self) -> None:
        super().__init__(busy=1)


@exercise("Exercise 3: charge each payment once")
def ex3(payments_bus: Callable[[Any], EventBus], event_type: type) -> str:
    """``payments_bus(bank)``: ``bank.charge`` handles ``event_type`` once per event, however
    often the event is delivered; two payments of the same sum are still two payments."""
    expect(callable(payments_bus), "pass your function: check.ex3(payments_bus, CheckoutCompleted)")
    with use_ids(_fresh_ids("redelivered")):
        first = event_type(order_id="o-1", amount=30.0)
        second = event_type(order_id="o-1", amount=30.0)  # the second instalment
    bank = CheckBank()
    bus = _bus_of(payments_bus, bank)
    for event in (first, first, second, first, second):
        bus.dispatch(event)
    expect(
        len(bank.charges) <= 2,
        f"two payments, delivered five times, charged the card {len(bank.charges)} times: "
        "a redelivered event was charged again",
        "middleware=[idempotent()] remembers each event's id and skips repeats",
    )
    expect(
        len(bank.charges) == 2,
        f"two payments of 30.0 for order o-1 charged the card {len(bank.charges)} time(s); "
        "they are two events (two event ids), so two charges",
        "tell events apart by their event_id (the default key), not by order or amount",
    )

    # A new event, never seen before: only what this scenario does can skip it.
    with use_ids(_fresh_ids("failed-first")):
        failed_first = event_type(order_id="o-2", amount=30.0)
    bank = _OnceBusyBank()
    bus = _bus_of(payments_bus, bank)
    bus.dispatch(failed_first)  # the bank was busy: this delivery failed
    bus.dispatch(failed_first)  # the broker delivers it again
    expect(
        bank.calls == 2,
        f"the first delivery failed (the bank was busy), then the same event came again, and "
        f"the bank was called {bank.calls} time(s) in all: the redelivery was skipped",
        "remember an event only once its handler succeeded (idempotent() does)",
    )
    expect(
        bank.charges == [("o-2", 30.0)],
        f"after a failed delivery and its redelivery the card was charged {bank.charges}; "
        "expected one charge of 30.0 for order o-2",
    )
    return "one charge per payment, however often it arrives"


def _bus_of(payments_bus: Callable[[Any], EventBus], bank: CheckBank) -> EventBus:
    bus = payments_bus(bank)
    expect(
        isinstance(bus, EventBus),
        f"payments_bus(bank) returned {type(bus).__name__}; return the EventBus",
    )
    return bus


# ---------------------------------------------------------------------- exercise 4


class CheckProvider:
    """The check's payment provider. The first ``drop`` requests never reach it (the caller
    gets a TimeoutError, nothing is charged); the answers of the next ``lose`` charges are lost
    (a TimeoutError although the card was charged). A call with an ``idempotency_key`` it has
    seen returns the earlier charge instead of making a new one."""

    def __init__(self, lose: int = 1, drop: int = 0) -> None:
        self.lose = lose
        self.drop = drop
        self.charges: list[tuple[str, float]] = []
        self.keys: list[object] = []
        self._by_key: dict[object, str] = {}

    def charge(self, order_id: str, amount: float, idempotency_key: object = None) -> str:
        self.keys.append(idempotency_key)
        if self.drop > 0:
            self.drop -= 1
            raise TimeoutError("the request never reached the provider (nothing was charged)")
        if idempotency_key is not None and idempotency_key in self._by_key:
            return self._by_key[idempotency_key]
        self.charges.append((order_id, amount))
        charge_id = f"ch-{len(self.charges)}"
        if idempotency_key is not None:
            self._by_key[idempotency_key] = charge_id
        if self.lose > 0:
            self.lose -= 1
            raise TimeoutError("the provider did not answer (but the card was charged)")
        return charge_id


@exercise("Exercise 4 (stretch): charge once through timeouts, redeliveries and restarts")
def ex4(checkout_bus: Callable[[Any, VirtualClock], EventBus], event_type: type) -> str:
    """``checkout_bus(provider, clock)`` charges each ``event_type`` event exactly once at the
    provider: through a lost answer (retried), a redelivery to a restarted process (a new
    bus), and with two events of the same order and amount charged twice."""
    expect(
        callable(checkout_bus),
        "pass your function: check.ex4(checkout_bus, CheckoutCompleted)",
    )
    provider = CheckProvider(lose=1)
    with use_ids(_fresh_ids("checkout")):
        checkout = event_type(order_id="o-1", amount=30.0)
        instalment = event_type(order_id="o-1", amount=30.0)
        later_in_the_same_story = _caused_by(checkout, event_type)
        other_checkout = event_type(order_id="o-2", amount=12.0)

    result = _run_on(checkout_bus, provider, checkout)
    expect(
        provider.charges,
        "the provider was never asked to charge the card",
        "the handler calls provider.charge(event.order_id, event.amount, idempotency_key=...)",
    )
    expect(
        result.ok,
        "the provider's answer was lost (a TimeoutError) and the dispatch failed: the shop "
        "does not know the customer paid. A timeout says nothing about whether it worked",
        "retry on TimeoutError, with clock=clock: retry(3, retry_on=TimeoutError, clock=clock)",
    )
    expect(
        len(provider.charges) == 1,
        f"one lost answer, and the card was charged {len(provider.charges)} times: the retry "
        "looked like a new payment to the provider" + _key_words(provider),
        "only the provider knows whether the first call went through: send it a key that is "
        "the same on every attempt and every delivery of this event, and different for the "
        "next event: idempotency_key=event.event_id",
    )

    lost_request = CheckProvider(lose=0, drop=1)
    result = _run_on(checkout_bus, lost_request, other_checkout)
    expect(
        result.ok and lost_request.charges == [("o-2", 12.0)],
        "this time the request itself was lost (a TimeoutError too, nothing charged), and the "
        f"card was charged {len(lost_request.charges)} time(s): a timeout cannot be taken for "
        "a success either",
        "let TimeoutError reach the retry, and retry with the same key: the provider then "
        "charges once, whichever way the first call got lost",
    )

    result = _run_on(checkout_bus, provider, checkout)  # a restarted process: a new bus
    expect(
        result.ok and len(provider.charges) == 1,
        "the same event, redelivered to a restarted process (a new bus), charged the card "
        f"again ({len(provider.charges)} charges): what the old process remembered is gone",
        "idempotent() remembers in memory only; the provider keeps the keys: send the event's "
        "id as idempotency_key",
    )

    result = _run_on(checkout_bus, provider, instalment)
    expect(
        result.ok and len(provider.charges) == 2,
        f"a second instalment (a new event, same order, same amount) left {len(provider.charges)}"
        " charge(s): the provider took it for the first one, so the key came from the content",
        "the key names the event, not what it says: event.event_id",
    )

    result = _run_on(checkout_bus, provider, later_in_the_same_story)
    expect(
        result.ok and len(provider.charges) == 3,
        "a later charge in the same business transaction (same correlation id, new event) "
        f"left {len(provider.charges)} charge(s): the correlation id names the transaction, "
        "not the event",
        "use event.event_id, not event.correlation_id",
    )
    return (
        "one charge per event: the retry, the redelivery after a restart and the second "
        "instalment each sent the event's id, and only the provider could tell"
    )


def _caused_by(cause: Any, event_type: type) -> Any:
    """A new event in ``cause``'s business transaction (its correlation id, a new event id)."""
    with caused_by(cause):
        return event_type(order_id="o-1", amount=5.0)


def _run_on(
    checkout_bus: Callable[[Any, VirtualClock], EventBus], provider: CheckProvider, event: Any
) -> DispatchResult:
    clock = VirtualClock()
    bus = checkout_bus(provider, clock)
    expect(
        isinstance(bus, EventBus),
        f"checkout_bus(provider, clock) returned {type(bus).__name__}; return the EventBus",
    )

    async def dispatch() -> DispatchResult:
        return bus.dispatch(event)

    return clock.run(dispatch())


def _key_words(provider: CheckProvider) -> str:
    keys = [key for key in provider.keys if key is not None]
    if not keys:
        return " (it was sent no idempotency_key)"
    if len(set(keys)) == len(keys):
        return " (each attempt sent a different idempotency_key)"
    return ""
