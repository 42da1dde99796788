"""Checks for the exercises of notebook 07 (failures, retries, dead letters, idempotency).

Each check builds a small world of its own (a card processor that is busy or declines, a
warehouse that is down, a payment provider that loses answers and requests, or goes down for
longer than any retry lasts), runs the learner's functions against it on a
:class:`~eda_lesson.core.clock.VirtualClock`, and says what went differently from what was
asked. Each scenario of a check makes events with ids of its own, so an answer
that keeps what it has seen between calls (a module-level ``idempotent()``) is judged on what
it does, not on what an earlier scenario left behind. A redelivery is a copy of the event, as
a broker delivers it (a new object, equal to the first, with the same ids), so an answer that
tells deliveries apart by object identity is caught. When a dispatch fails for a reason the
scenario did not set up, the feedback quotes that error rather than guessing at a story.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import BaseBus, EventBus
from eda_lesson.core.checks import handler_name
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import SequentialIds, caused_by, use_ids
from eda_lesson.core.middleware import (
    DeadLetterStore,
    Replayed,
    RetriesExhaustedError,
    dead_letters,
    retry,
)
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
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


T = TypeVar("T")

_check_runs = itertools.count(1)
"""Numbers each run of a check, so its events get ids no earlier run used: marks that an
answer keeps between calls (a shared ``idempotent()``) never meet an event a second time."""


def _fresh_ids(scenario: str) -> SequentialIds:
    return SequentialIds(f"{scenario}-{next(_check_runs)}-evt")


def _redelivered(event: Any) -> Any:
    """The event as a broker delivers it again: a new object, equal to the first, ids kept."""
    return copy.copy(event)


def _error_of(result: DispatchResult) -> Exception | None:
    """The error of the first failed handler call of ``result`` (None when all succeeded)."""
    return next((call.error for call in result.failures), None)


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _is_timeout(error: BaseException | None) -> bool:
    """A TimeoutError, or a retry that gave up on one."""
    if isinstance(error, RetriesExhaustedError):
        return isinstance(error.last_error, TimeoutError)
    return isinstance(error, TimeoutError)


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
    expect(bank.calls > 1, *_called_once(result))
    expect(
        bank.charges == [("o-1", 30.0)],
        f"the bank was busy for 3 calls and the card was charged {len(bank.charges)} times "
        f"after {bank.calls} calls; 4 attempts should get through",
        "retry(4, ...) counts every try, the first included",
    )
    expect(
        result.ok,
        "the card was charged, but the dispatch still recorded a failed call: "
        f"{_error_text(_error_of(result))}",
    )
    expect(
        clock.sleeps,
        f"bank.charge was tried {bank.calls} times, but nothing waited on `clock`, the clock "
        "payment_bus was given: the retry waited on another clock, or not at all",
        "clock=clock, and backoff=exponential(base=0.5, factor=2)",
    )
    expect(
        clock.sleeps == [0.5, 1.0, 2.0],
        f"the waits between attempts were {_waits(clock)}; expected 0.5 s, 1 s, 2 s",
        "backoff=exponential(base=0.5, factor=2), and clock=clock so the waits are virtual",
    )

    clock, bank = VirtualClock(), CheckBank(busy=10)
    result = _pay(payment_bus, bank, clock, event_type)
    expect(
        bank.calls == 4,
        f"with the bank busy for good, bank.charge was called {bank.calls} times; "
        "expected 4 attempts in all, then the failure recorded",
        "retry(4, ...): four tries, the first included",
    )
    expect(
        not result.ok,
        "with the bank busy for good, all 4 attempts failed, yet the dispatch shows no failed "
        "call: the last failure was swallowed, so nobody can tell the customer did not pay",
        "let the error out after the last attempt (no except that swallows it, no "
        "dead_letters(store, reraise=False))",
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


def _called_once(result: DispatchResult) -> tuple[str, str]:
    """Why bank.charge was tried only once: the message and hint, from the recorded error."""
    error = _error_of(result)
    head = "with the bank busy for its first 3 calls, bank.charge was called only once"
    if isinstance(error, RetriesExhaustedError):
        return (
            f"{head}: your retry gave up after {len(error.attempts)} attempt(s)",
            "retry(n, ...) counts every try, the first included: 4 tries in all",
        )
    if isinstance(error, TimeoutError):
        return (
            f"{head}: nothing retried it; its TimeoutError reached the bus as it was (no "
            "retry, or one whose retry_on leaves TimeoutError out)",
            "register it with middleware=[retry(...)] that retries TimeoutError",
        )
    if error is None:
        return (
            f"{head}, and the dispatch shows no failure: nothing retried it, and something "
            "swallowed its TimeoutError",
            "let a retry(...) catch the TimeoutError: middleware=[retry(...)]",
        )
    return f"{head}: nothing retried it; the call failed with {_error_text(error)}", ""


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
    expect(
        len(outcomes) == 1,
        f"you returned {_outcomes_text(outcomes)}; the replay that delivered the letter "
        "returns one Replayed for it: return that list",
    )
    expect(all(outcome.ok for outcome in outcomes), f"a replay failed: {outcomes}")
    return "the letter left the store, and the order is shipped and announced"


def _outcomes_text(outcomes: list[Replayed]) -> str:
    return "an empty list" if not outcomes else f"{len(outcomes)} outcomes: {outcomes}"


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
    often the event is delivered; two payments of the same sum are still two payments, and so
    is a later payment of the same business transaction."""
    expect(callable(payments_bus), "pass your function: check.ex3(payments_bus, CheckoutCompleted)")
    with use_ids(_fresh_ids("redelivered")):
        first = event_type(order_id="o-1", amount=30.0)
        second = event_type(order_id="o-1", amount=30.0)  # the second instalment
        later = _caused_by(first, event_type)  # the same business transaction, a new event
    bank = CheckBank()
    bus = _bus_of(payments_bus, bank)
    for event in (first, _redelivered(first), second, _redelivered(first), _redelivered(second)):
        bus.dispatch(event)
    expect(
        len(bank.charges) <= 2,
        f"two payments, delivered five times, charged the card {len(bank.charges)} times: "
        "a redelivered event was charged again (a redelivery is a new object, equal to the "
        "first, with the same event_id)",
        "middleware=[idempotent()] remembers each event's id and skips repeats",
    )
    expect(
        len(bank.charges) == 2,
        f"two payments of 30.0 for order o-1 charged the card {len(bank.charges)} time(s); "
        "they are two events (two event ids), so two charges",
        "tell events apart by their event_id (the default key), not by order or amount",
    )
    bus.dispatch(later)
    expect(
        bank.charges[2:] == [("o-1", 5.0)],
        "a later payment of the same business transaction (5.0 for order o-1: a new event, "
        "the first one's correlation id) was not charged: the correlation id names the "
        "transaction, not the event",
        "keep idempotent()'s default key, the event_id",
    )

    # A new event, never seen before: only what this scenario does can skip it.
    with use_ids(_fresh_ids("failed-first")):
        failed_first = event_type(order_id="o-2", amount=30.0)
    bank = _OnceBusyBank()
    bus = _bus_of(payments_bus, bank)
    bus.dispatch(failed_first)  # the bank was busy: this delivery failed
    bus.dispatch(_redelivered(failed_first))  # the broker delivers it again
    expect(
        bank.calls == 2,
        f"the first delivery failed (the bank was busy), then the same event came again, and "
        f"the bank was called {bank.calls} time(s) in all: the redelivery was skipped",
        "remember an event only once its handler succeeded (idempotent() does, when the "
        "failure reaches it)",
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
    """The check's payment provider, across the network.

    Each call takes the next step of ``plan``: ``"lose"`` (the card is charged, then the
    answer is lost: a TimeoutError), ``"drop"`` (the request is lost: a TimeoutError, nothing
    charged) or ``"ok"``. Once the plan is used up, every request is lost while ``down`` is
    true, and answered otherwise. A call with an ``idempotency_key`` it has seen returns the
    earlier charge instead of making a new one. ``calls`` lists the (order, key) of every
    request sent, ``charges`` what the customers' card statements show.
    """

    def __init__(self, *plan: str, down: bool = False) -> None:
        self.plan = list(plan)
        self.down = down
        self.charges: list[tuple[str, float]] = []
        self.calls: list[tuple[str, object]] = []
        self._by_key: dict[object, str] = {}

    @property
    def keys(self) -> list[object]:
        return [key for _, key in self.calls]

    def charged(self, order_id: str) -> int:
        return sum(1 for order, _ in self.charges if order == order_id)

    def charge(self, order_id: str, amount: float, idempotency_key: object = None) -> str:
        self.calls.append((order_id, idempotency_key))
        step = self.plan.pop(0) if self.plan else ("drop" if self.down else "ok")
        if step == "drop":
            raise TimeoutError("the request never reached the provider (nothing was charged)")
        if idempotency_key is not None and idempotency_key in self._by_key:
            charge_id = self._by_key[idempotency_key]
        else:
            self.charges.append((order_id, amount))
            charge_id = f"ch-{len(self.charges)}"
            if idempotency_key is not None:
                self._by_key[idempotency_key] = charge_id
        if step == "lose":
            raise TimeoutError("the provider did not answer (but the card was charged)")
        return charge_id


class _WatchedStore(DeadLetterStore):
    """The dead-letter store the check hands to the learner: it notes what each replay was
    given, so the feedback can say how the letters were delivered."""

    def __init__(self, *, clock: VirtualClock) -> None:
        super().__init__(clock=clock)
        self.replayed_via: list[object] = []

    def replay(
        self, via: BaseBus | Callable[[Any], Any] | None = None, *, letters: Any = None
    ) -> list[Replayed]:
        self.replayed_via.append(via)
        return super().replay(via, letters=letters)

    def holds(self, order_id: str) -> bool:
        return any(getattr(letter.event, "order_id", None) == order_id for letter in self)


class _Process:
    """One running shop: the learner's bus for ``provider``, with a dead-letter store and a
    virtual clock of its own. A new one stands for a restarted process (what the old one kept
    in memory is gone)."""

    def __init__(self, checkout_bus: CheckoutBus, provider: CheckProvider) -> None:
        self.provider = provider
        self.clock = VirtualClock()
        self.store = _WatchedStore(clock=self.clock)
        self.bus = checkout_bus(provider, self.store, self.clock)
        expect(
            isinstance(self.bus, EventBus),
            f"checkout_bus(provider, store, clock) returned {type(self.bus).__name__}; "
            "return the EventBus",
        )

    def dispatch(self, event: Any) -> DispatchResult:
        return self.on_the_clock(lambda: self.bus.dispatch(event))

    def on_the_clock(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the virtual clock, so that a retry given no clock waits there."""

        async def run() -> T:
            return work()

        return self.clock.run(run())


CheckoutBus = Callable[[Any, DeadLetterStore, VirtualClock], EventBus]
ReplayLetters = Callable[[DeadLetterStore, EventBus], Any]


@exercise("Exercise 4 (stretch): one charge per event, through an outage and its replay")
def ex4(checkout_bus: CheckoutBus, replay_letters: ReplayLetters, event_type: type) -> str:
    """``checkout_bus(provider, store, clock)`` charges each ``event_type`` event exactly once
    at the provider: through a lost answer and a lost request (retried), an outage longer than
    the retries (kept in ``store``, then replayed by ``replay_letters(store, bus)``, one of the
    failed attempts having charged the card), a redelivery to a restarted process; and a
    second instalment and a later charge of the same business transaction are charged."""
    expect(
        callable(checkout_bus) and callable(replay_letters),
        "pass your two functions: check.ex4(checkout_bus, replay_letters, CheckoutCompleted)",
    )
    with use_ids(_fresh_ids("checkout")):
        checkout = event_type(order_id="o-1", amount=30.0)
        other_checkout = event_type(order_id="o-2", amount=12.0)
        charged_then_down = event_type(order_id="o-3", amount=30.0)
        never_charged = event_type(order_id="o-4", amount=12.0)
        instalment = event_type(order_id="o-1", amount=30.0)
        later_in_the_same_story = _caused_by(checkout, event_type)

    shop = _Process(checkout_bus, CheckProvider("lose"))  # the process that runs all along
    _expect_a_lost_answer_charged_once(shop, checkout)
    first_key = shop.provider.keys[-1]
    other_key = _expect_a_lost_request_charged_once(checkout_bus, other_checkout)

    outage = _Process(checkout_bus, CheckProvider("lose", down=True))
    swallowed = _expect_kept_through_the_outage(outage, charged_then_down, never_charged)
    _expect_the_replay_charges_once(outage, replay_letters, swallowed, (first_key, other_key))

    restarted = _Process(checkout_bus, outage.provider)
    _expect_a_redelivery_after_a_restart_not_charged(restarted, charged_then_down)

    _expect_charged(
        shop,
        instalment,
        2,
        "a second instalment (a new event, same order, same amount)",
        _same_key_words(first_key, other_key),
        "the key names the event, not what it says: event.event_id",
    )
    _expect_charged(
        shop,
        later_in_the_same_story,
        3,
        "a later charge in the same business transaction (same correlation id, new event)",
        ": the correlation id names the transaction, not the event",
        "use event.event_id, not event.correlation_id",
    )
    return (
        "every attempt, the replay of the outage's letters and the redelivery after a "
        "restart sent the event's id as the key, and the provider charged each event once"
    )


def _expect_a_lost_answer_charged_once(shop: _Process, checkout: Any) -> None:
    provider = shop.provider
    result = shop.dispatch(checkout)
    expect(
        provider.calls,
        "the provider was never asked to charge the card for a new checkout",
        "the handler calls provider.charge(event.order_id, event.amount, idempotency_key=...), "
        "and nothing in front of it skips an event it has not seen (an idempotent() shared "
        "between runs and keyed by the order remembers order o-1 from an earlier run)",
    )
    error = _error_of(result)
    retry_hint = (
        "retry on TimeoutError, with clock=clock, inside the dead-letter layer: "
        "retry(3, retry_on=TimeoutError, clock=clock)"
    )
    expect(
        result.ok or len(provider.calls) > 1 or not _is_timeout(error),
        "the provider's answer was lost (a TimeoutError) and the dispatch failed: the shop "
        "does not know the customer paid. A timeout says nothing about whether it worked",
        retry_hint,
    )
    expect(
        result.ok, f"the dispatch failed, and not because of the lost answer: {_error_text(error)}"
    )
    letter_error = next((letter.error for letter in shop.store), None)
    expect(
        not shop.store or _is_timeout(letter_error),
        "the checkout went into the dead-letter store, and not because of the lost answer: "
        f"{_error_text(letter_error)}",
    )
    expect(
        len(provider.calls) > 1 or not shop.store,
        "the provider's answer was lost (a TimeoutError) and the checkout went straight into "
        "the dead-letter store: nothing asked the provider again. A timeout says nothing "
        "about whether it worked, and a moment later the provider may well answer",
        retry_hint,
    )
    expect(
        len(provider.charges) == 1,
        f"one lost answer, and the card was charged {len(provider.charges)} times: the retry "
        "looked like a new payment to the provider" + _key_words(provider),
        "only the provider knows whether the first call went through: send it a key that is "
        "the same on every attempt and every delivery of this event, and different for the "
        "next event: idempotency_key=event.event_id",
    )
    expect(
        not shop.store,
        "the retry got through on its second attempt and the card was charged once, yet the "
        f"dead-letter store holds {plural(len(shop.store), 'letter')} for this checkout: the "
        "dead-letter layer sits inside the retry, so it keeps every failed attempt, even one "
        "the retry then saved. Somebody replaying the store would replay a payment that went "
        "through",
        "the first layer listed is the outermost; the dead-letter layer should see only what "
        "the retry gave up on",
    )


def _expect_a_lost_request_charged_once(checkout_bus: CheckoutBus, event: Any) -> object:
    """A new process whose provider loses the first request; returns the key it was sent."""
    lost_request = _Process(checkout_bus, CheckProvider("drop"))
    result = lost_request.dispatch(event)
    _expect_ok(result, "this time the request itself was lost (a TimeoutError too)")
    charges = lost_request.provider.charges
    expect(
        charges == [("o-2", 12.0)],
        "this time the request itself was lost (a TimeoutError too, nothing charged), and the "
        f"card was charged {len(charges)} time(s): a timeout cannot be taken for a success "
        "either",
        "let TimeoutError reach the retry, and retry with the same key: the provider then "
        "charges once, whichever way the first call got lost",
    )
    return lost_request.provider.keys[-1]


def _expect_kept_through_the_outage(outage: _Process, charged: Any, never_charged: Any) -> bool:
    """The provider goes down after charging the first checkout (its answer lost) and stays
    down through every attempt of both: each must wait in the store. Returns whether the
    dispatches still reported the failure as a success (a dead-letter layer that swallows)."""
    results = [outage.dispatch(charged), outage.dispatch(never_charged)]
    kept = [order for order in ("o-3", "o-4") if outage.store.holds(order)]
    expect(
        kept,
        "the provider went down right after charging o-3 (its answer lost) and stayed down "
        "through every attempt: both checkouts failed, and neither is in the dead-letter "
        "store checkout_bus was given. Nothing will ever deliver them again: o-3 is charged "
        "with no order marked paid, o-4 is never charged",
        "keep what the retry gives up on: dead_letters(store), outside the retry",
    )
    expect(
        kept == ["o-3", "o-4"] and len(outage.store) == 2,
        f"after the outage the store holds {outage.store.list()}; expected one letter for "
        "each of the two checkouts, o-3 and o-4",
    )
    return all(result.ok for result in results)


def _expect_the_replay_charges_once(
    outage: _Process, replay_letters: ReplayLetters, swallowed: bool, keys: tuple[object, object]
) -> None:
    """The provider is back, but loses the first request of the replay."""
    provider, store = outage.provider, outage.store
    provider.down, provider.plan = False, ["drop"]
    asked = len(provider.calls)
    try:
        outage.on_the_clock(lambda: replay_letters(store, outage.bus))
    except Exception as error:
        expect(
            not _is_timeout(error),
            f"replay_letters raised {_error_text(error)}: the provider lost the first request "
            "of the replay, and nothing tried again, because the handler was called bare, "
            "without the layers the bus puts around it",
            "replay through the bus: store.replay(bus) calls each handler inside its middleware",
        )
        raise
    replay_calls = [order for order, _ in provider.calls[asked:]]
    expect(
        replay_calls or len(store) < 2,
        "the provider is back, and the store still holds its 2 letters: replay_letters "
        "delivered nothing",
        "deliver each letter again: store.replay(bus)",
    )
    expect(
        provider.charged("o-3") == 1,
        f"order o-3, whose first attempt did charge the card before its answer was lost, is "
        f"now charged {provider.charged('o-3')} times: the replay sent the provider a key it "
        "had not seen, so to the provider it was a new payment. A replay must deliver the "
        "letter's own event (its event_id, so its key), not a new event with the same order "
        "and amount",
        "store.replay(bus) delivers each letter's event itself",
    )
    if not store.holds("o-4"):
        expect("o-4" in replay_calls, *_never_delivered(store, swallowed))
    expect(
        not store,
        _still_held(store),
        "replay through the bus, whose layers wrap the handler: store.replay(bus)",
    )
    expect(
        provider.charged("o-4") > 0,
        "the replay of o-4 reached the provider but made no new charge: the provider took it "
        "for an earlier payment" + _same_key_words(*keys),
        "the key names the event: event.event_id",
    )
    expect(
        provider.charged("o-4") == 1,
        f"the replay charged o-4 {provider.charged('o-4')} times instead of once",
    )


def _never_delivered(store: _WatchedStore, swallowed: bool) -> tuple[str, str]:
    if not any(isinstance(via, BaseBus) for via in store.replayed_via):
        return (
            "the letter of o-4 left the store, but no replay reached the provider for it: "
            "the letters were removed without being delivered",
            "deliver each letter again, and let a success take it out: store.replay(bus)",
        )
    if swallowed:
        return (
            "the replay took the letter of o-4 out of the store without ever calling the "
            "provider: something in front of your handler took the replay for a repeat. The "
            "dead-letter layer swallowed the outage's failure (reraise=False), so to an "
            "idempotent() outside it the call succeeded: it marked o-4 as handled when it was "
            "only put aside",
            "a layer sees only what the layers inside it let out: put idempotent() inside the "
            "dead-letter layer (after it in the list), or leave it out: the provider's key "
            "already makes the replay safe",
        )
    return (
        "the replay took the letter of o-4 out of the store without ever calling the "
        "provider: something took the replay for a repeat, as if o-4 had been handled when "
        "its every attempt had failed (a mark written before the charge went through)",
        "mark an event as handled only once its charge succeeded, as idempotent() does",
    )


def _still_held(store: _WatchedStore) -> str:
    errors = "; ".join(_error_text(letter.error) for letter in store)
    bare = [via for via in store.replayed_via if not isinstance(via, BaseBus)]
    if bare and len(bare) == len(store.replayed_via):
        how = "store.replay()" if bare[0] is None else f"store.replay({handler_name(bare[0])})"
        return (
            f"the store still holds {plural(len(store), 'letter')} ({errors}): {how} calls the "
            "handler bare, without the bus's retry, so when the provider lost the first "
            "request of the replay, nothing tried again"
        )
    if not store.replayed_via:
        return (
            f"the checkouts were delivered again, yet the store still holds "
            f"{plural(len(store), 'letter')}: a replay by hand must take each letter out once "
            "its delivery succeeded, or the next replay delivers it once more"
        )
    return f"after the replay the store still holds {plural(len(store), 'letter')}: {errors}"


def _expect_a_redelivery_after_a_restart_not_charged(restarted: _Process, event: Any) -> None:
    provider = restarted.provider
    first_key = next(key for order, key in provider.calls if order == "o-3")
    result = restarted.dispatch(_redelivered(event))
    _expect_ok(result, "the same event was redelivered to a restarted process (a new bus)")
    expect(
        provider.charged("o-3") == 1 or provider.keys[-1] == first_key,
        "the same event, redelivered to a restarted process (a new bus), charged the card "
        "again: it sent another key than the first delivery did. A redelivery is a new "
        "object, equal to the first: the key must come from the event's id, not from the "
        "object (its id() or anything else that changes between deliveries)",
        "idempotency_key=event.event_id: the same in every delivery and every process",
    )
    expect(
        provider.charged("o-3") == 1,
        "the same event, redelivered to a restarted process (a new bus), charged the card "
        f"again ({provider.charged('o-3')} charges): what the old process remembered is gone",
        "idempotent() remembers in memory only; the provider keeps the keys: send the event's "
        "id as idempotency_key",
    )


def _expect_ok(result: DispatchResult, scenario: str) -> None:
    expect(result.ok, f"{scenario}, and the dispatch failed: {_error_text(_error_of(result))}")


def _expect_charged(
    shop: _Process, event: Any, charges: int, what: str, why: str, hint: str
) -> None:
    """Dispatch ``event`` in ``shop``: it must reach the provider and make a new charge."""
    provider = shop.provider
    asked = len(provider.keys)
    result = shop.dispatch(event)
    _expect_ok(result, what)
    expect(
        len(provider.keys) > asked,
        f"{what} never reached the provider: something in front of the call took it for a "
        "repeat of the first (an idempotent() keyed by the order, the amount or the "
        "correlation id cannot tell two payments apart)",
        "key idempotent() by the event's id (its default), or leave it out: the provider's "
        "key is what makes the charge safe",
    )
    expect(
        len(provider.charges) >= charges,
        f"{what} made no new charge: the provider took it for the first one{why}",
        hint,
    )
    expect(
        len(provider.charges) == charges,
        f"{what} made {len(provider.charges) - charges + 1} new charges instead of one",
        "send one key per event, the same on each of its attempts: event.event_id",
    )


def _same_key_words(first_key: object, other_key: object) -> str:
    if first_key == other_key:
        return (
            f": every event sent the same key ({first_key!r}, for order o-2 too), so the key "
            "names no event at all"
        )
    return ", so the key came from the content"


def _caused_by(cause: Any, event_type: type) -> Any:
    """A new event in ``cause``'s business transaction (its correlation id, a new event id)."""
    with caused_by(cause):
        return event_type(order_id="o-1", amount=5.0)


def _key_words(provider: CheckProvider) -> str:
    keys = [key for key in provider.keys if key is not None]
    if not keys:
        return " (it was sent no idempotency_key)"
    if len(set(keys)) == len(keys):
        return " (each attempt sent a different idempotency_key)"
    return ""
