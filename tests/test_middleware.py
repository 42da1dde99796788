"""Failure handling, specified by example: retries on a virtual clock, dead letters that can be
replayed, and idempotent handlers that never charge twice."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson import EventBus
from eda_lesson.core.checks import is_async_callable
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import Message, SequentialIds, use_ids
from eda_lesson.core.middleware import (
    Attempt,
    DeadLetterStore,
    RetriesExhaustedError,
    RetryLog,
    dead_letters,
    exponential,
    fixed,
    idempotent,
    message_key,
    retry,
)
from eda_lesson.shop.events import OrderPaid, OrderShipped, ShipmentRequested
from eda_lesson.shop.services import Shipping, Shop


@dataclass(frozen=True)
class PaymentReceived(Message):
    order_id: str
    amount: float


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Shipped:
    order_id: str


class Bank:
    """A payment service that can be told to fail its next calls (as a real one does)."""

    def __init__(self, failures: int = 0, error: type[Exception] = TimeoutError) -> None:
        self.failures = failures
        self.error = error
        self.charges: list[tuple[str, float]] = []
        self.calls = 0

    def charge(self, event: PaymentReceived) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.error(f"bank did not answer (call {self.calls})")
        self.charges.append((event.order_id, event.amount))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def ids() -> Iterator[SequentialIds]:
    with use_ids(SequentialIds("evt")) as factory:
        yield factory  # type: ignore[misc]


def payment() -> PaymentReceived:
    return PaymentReceived("o-1", 42.0)


# ---------------------------------------------------------------------- backoff


def test_fixed_backoff_waits_the_same_every_time() -> None:
    assert [fixed(0.5)(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_exponential_backoff_multiplies_from_the_base_up_to_the_cap() -> None:
    assert [exponential()(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    capped = exponential(base=0.5, factor=3, max_delay=5)
    assert [capped(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 5.0]
    assert repr(capped) == "ExponentialBackoff(base=0.5, factor=3, max_delay=5)"


def test_jitter_comes_from_the_random_source_given_and_stays_in_bounds() -> None:
    def waits(seed: int) -> list[float]:
        backoff = exponential(base=1.0, factor=2, jitter=0.1, random=random.Random(seed))
        return [backoff(n) for n in range(1, 7)]

    assert waits(7) == waits(7)
    assert waits(7) != waits(8)
    for n, wait in enumerate(waits(7), start=1):
        plain = 2.0 ** (n - 1)
        assert 0.9 * plain <= wait <= 1.1 * plain


def test_backoff_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        fixed(-1)
    with pytest.raises(ValueError, match="never shrink"):
        exponential(factor=0.5)
    with pytest.raises(ValueError, match="fraction"):
        exponential(jitter=1.5)


# ---------------------------------------------------------------------- retry


def test_retry_calls_a_failing_handler_until_it_succeeds(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank(failures=2)
    bus.register(PaymentReceived, bank.charge, middleware=[retry(3, clock=clock)])
    result = bus.dispatch(payment())
    assert result.ok
    assert bank.calls == 3 and bank.charges == [("o-1", 42.0)]
    assert clock.sleeps == [1.0, 2.0] and clock.now() == 3.0


def test_backoff_schedule_is_exact_on_the_virtual_clock(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank(failures=10)
    policy = retry(4, backoff=exponential(base=1.0, factor=2), clock=clock)
    bus.register(PaymentReceived, bank.charge, middleware=[policy])
    bus.dispatch(payment())
    assert [a.started for a in policy.log] == [0.0, 1.0, 3.0, 7.0]
    assert [a.wait for a in policy.log] == [1.0, 2.0, 4.0, None]
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_retry_gives_up_after_its_attempts_and_says_so(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank(failures=10)
    bus.register(PaymentReceived, bank.charge, middleware=[retry(3, clock=clock)])
    result = bus.dispatch(payment())
    assert bank.calls == 3 and not bank.charges
    (failure,) = result.failures
    error = failure.error
    assert isinstance(error, RetriesExhaustedError)
    assert str(error) == (
        "Bank.charge failed 3 attempts; last error: TimeoutError: bank did not answer (call 3)"
    )
    assert [attempt.number for attempt in error.attempts] == [1, 2, 3]
    assert isinstance(error.__cause__, TimeoutError) and error.last_error is error.__cause__


def test_errors_not_worth_retrying_fail_at_once_unchanged(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank(failures=5, error=ValueError)
    policy = retry(3, retry_on=(TimeoutError,), clock=clock)
    bus.register(PaymentReceived, bank.charge, middleware=[policy])
    result = bus.dispatch(payment())
    assert bank.calls == 1 and clock.sleeps == [] and len(policy.log) == 0
    assert type(result.failures[0].error) is ValueError


def test_a_later_error_not_worth_retrying_stops_the_retries(clock: VirtualClock) -> None:
    bus, calls = EventBus(), []

    def charge(event: PaymentReceived) -> None:
        calls.append(event)
        raise (TimeoutError if len(calls) == 1 else ValueError)("card declined")

    bus.register(PaymentReceived, charge, middleware=[retry(5, retry_on=TimeoutError, clock=clock)])
    error = bus.dispatch(payment()).failures[0].error
    assert len(calls) == 2
    assert isinstance(error, RetriesExhaustedError)
    assert "(ValueError is not retried)" in str(error)


def test_a_call_that_succeeds_at_once_leaves_no_trace_in_the_log(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank()
    policy = retry(3, clock=clock)
    bus.register(PaymentReceived, bank.charge, middleware=[policy])
    bus.dispatch(payment())
    assert len(policy.log) == 0 and clock.now() == 0.0


def test_attempt_records_carry_event_handler_number_error_and_times(
    clock: VirtualClock,
) -> None:
    bus, bank = EventBus(), Bank(failures=1)
    policy = retry(3, backoff=fixed(0.5), clock=clock)
    bus.register(PaymentReceived, bank.charge, middleware=[policy])
    event = payment()
    bus.dispatch(event)
    first, second = policy.log
    assert (first.event, first.handler, first.number) == (event, "Bank.charge", 1)
    assert (first.started, first.ended, first.wait, first.ok) == (0.0, 0.0, 0.5, False)
    assert first.outcome == "TimeoutError: bank did not answer (call 1)"
    assert (second.number, second.started, second.ok, second.error) == (2, 0.5, True, None)
    assert repr(first) == (
        "Attempt(Bank.charge #1 at 0: TimeoutError: bank did not answer (call 1), then wait 0.5)"
    )
    assert policy.log.for_handler(bank.charge) == [first, second]
    assert policy.log.failures == [first]


def test_attempt_times_include_the_time_a_handler_takes(clock: VirtualClock) -> None:
    bus, calls = EventBus(), []

    def slow_charge(event: PaymentReceived) -> None:
        calls.append(event)
        clock.sleep(0.25)  # the handler's own work, on the same clock
        if len(calls) == 1:
            raise TimeoutError("slow bank")

    policy = retry(2, backoff=fixed(1.0), clock=clock)
    bus.register(PaymentReceived, slow_charge, middleware=[policy])
    bus.dispatch(payment())
    assert [(a.started, a.ended) for a in policy.log] == [(0.0, 0.25), (1.25, 1.5)]


def test_retry_log_describes_each_attempt_on_one_line(clock: VirtualClock) -> None:
    bus, bank = EventBus(), Bank(failures=2)
    policy = retry(3, clock=clock)
    assert policy.log.describe() == "RetryLog: no call needed a retry"
    bus.register(PaymentReceived, bank.charge, middleware=[policy])
    bus.dispatch(payment())
    assert policy.log.describe() == (
        "t=0        Bank.charge attempt 1: TimeoutError: bank did not answer (call 1), "
        "then wait 1 s\n"
        "t=1        Bank.charge attempt 2: TimeoutError: bank did not answer (call 2), "
        "then wait 2 s\n"
        "t=3        Bank.charge attempt 3: ok"
    )
    assert repr(policy.log) == "RetryLog(3 attempts)"


def test_bus_wide_retry_retries_each_handler_on_its_own(clock: VirtualClock) -> None:
    bank, sent = Bank(failures=1), list[PaymentReceived]()
    bus = EventBus(middleware=[retry(3, clock=clock)])
    bus.register(PaymentReceived, bank.charge)
    bus.register(PaymentReceived, sent.append)
    result = bus.dispatch(payment())
    assert result.ok and bank.calls == 2 and len(sent) == 1
    assert "middleware (outermost first): Retry" in bus.describe()


def test_a_shared_log_collects_attempts_from_several_policies(clock: VirtualClock) -> None:
    log, bus = RetryLog(), EventBus()
    bank, pings = Bank(failures=2), []

    def flaky_ping(event: Ping) -> None:
        pings.append(event)
        if len(pings) == 1:
            raise TimeoutError("once")

    bus.register(PaymentReceived, bank.charge, middleware=[retry(2, clock=clock, log=log)])
    bus.register(Ping, flaky_ping, middleware=[retry(2, backoff=fixed(0.0), log=log)])
    bus.dispatch(payment())
    bus.dispatch(Ping(1))
    assert [(a.handler, a.number, a.ok) for a in log] == [
        ("Bank.charge", 1, False),
        ("Bank.charge", 2, False),
        ("test_a_shared_log_collects_attempts_from_several_policies.flaky_ping", 1, False),
        ("test_a_shared_log_collects_attempts_from_several_policies.flaky_ping", 2, True),
    ]


def test_jittered_retries_repeat_exactly_with_the_same_seed() -> None:
    def schedule(seed: int) -> list[float]:
        clock, bus = VirtualClock(), EventBus()
        policy = retry(5, backoff=exponential(jitter=0.2, random=random.Random(seed)), clock=clock)
        bus.register(PaymentReceived, Bank(failures=9).charge, middleware=[policy])
        bus.dispatch(payment())
        return clock.sleeps

    assert schedule(1) == schedule(1)
    assert len(schedule(1)) == 4


def test_retry_on_real_time_really_waits() -> None:
    import time

    bus, bank = EventBus(), Bank(failures=2)
    bus.register(PaymentReceived, bank.charge, middleware=[retry(3, backoff=fixed(0.02))])
    started = time.perf_counter()
    assert bus.dispatch(payment()).ok
    assert time.perf_counter() - started >= 0.04


def test_retry_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="counts every try"):
        retry(0)
    with pytest.raises(TypeError, match="exception classes"):
        retry(retry_on="TimeoutError")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="function of the failed attempt"):
        retry(backoff=2.0)  # type: ignore[arg-type]
    assert repr(retry(2, backoff=fixed(1), retry_on=(TimeoutError, ConnectionError))) == (
        "Retry(attempts=2, backoff=FixedBackoff(seconds=1), "
        "retry_on=(TimeoutError, ConnectionError))"
    )


# ---------------------------------------------------------------------- dead letters


def failing_bus(
    clock: VirtualClock, bank: Bank, store: DeadLetterStore, *, reraise: bool = True
) -> EventBus:
    bus = EventBus()
    bus.register(
        PaymentReceived,
        bank.charge,
        middleware=[dead_letters(store, reraise=reraise), retry(3, clock=clock)],
    )
    return bus


def test_a_handler_still_failing_after_retries_leaves_a_dead_letter_with_every_attempt(
    clock: VirtualClock,
) -> None:
    store, bank = DeadLetterStore(clock=clock), Bank(failures=10)
    event = payment()
    failing_bus(clock, bank, store).dispatch(event)
    (letter,) = store
    assert (letter.number, letter.event, letter.handler) == (1, event, "Bank.charge")
    assert [(a.number, a.started) for a in letter.attempts] == [(1, 0.0), (2, 1.0), (3, 3.0)]
    assert all(isinstance(a.error, TimeoutError) for a in letter.attempts)
    assert repr(letter) == (
        "DeadLetter(#1 Bank.charge for PaymentReceived(order_id='o-1', amount=42.0): "
        "3 attempts, last TimeoutError: bank did not answer (call 3))"
    )


def test_a_dead_lettered_call_still_shows_as_failed_in_the_result(clock: VirtualClock) -> None:
    store, bank, sent = DeadLetterStore(clock=clock), Bank(failures=10), list[PaymentReceived]()
    bus = failing_bus(clock, bank, store)
    bus.register(PaymentReceived, sent.append)
    result = bus.dispatch(payment())
    assert not result.ok and len(sent) == 1  # the other handler ran all the same
    (failure,) = result.failures
    assert failure.name == "Bank.charge"
    assert any("kept as letter #1" in note for note in failure.error.__notes__)  # type: ignore[union-attr]


def test_reraise_false_swallows_the_failure_after_keeping_the_event(
    clock: VirtualClock,
) -> None:
    store = DeadLetterStore(clock=clock)
    result = failing_bus(clock, Bank(failures=10), store, reraise=False).dispatch(payment())
    assert result.ok and len(store) == 1


def test_a_failure_without_retries_is_one_attempt_stamped_on_the_stores_clock(
    clock: VirtualClock,
) -> None:
    store, bus = DeadLetterStore(clock=clock), EventBus()
    clock.sleep(4.0)
    bus.register(PaymentReceived, Bank(failures=1).charge, middleware=[dead_letters(store)])
    bus.dispatch(payment())
    (attempt,) = next(iter(store)).attempts
    assert (attempt.number, attempt.started, attempt.ended) == (1, 4.0, 4.0)


def test_replay_after_the_fix_calls_the_handler_again_and_empties_the_store(
    clock: VirtualClock,
) -> None:
    store, bank = DeadLetterStore(clock=clock), Bank(failures=3)
    bus = failing_bus(clock, bank, store)
    bus.dispatch(payment())
    assert len(store) == 1 and not bank.charges
    (outcome,) = store.replay(bus)  # the bank answers again: its 4th call succeeds
    assert outcome.ok and len(store) == 0
    assert bank.charges == [("o-1", 42.0)]
    assert repr(outcome) == "Replayed(#1 Bank.charge: ok, left the store)"


def test_a_replay_that_fails_again_keeps_the_letter_with_the_new_attempts(
    clock: VirtualClock,
) -> None:
    store, bank = DeadLetterStore(clock=clock), Bank(failures=10)
    bus = failing_bus(clock, bank, store)
    bus.dispatch(payment())
    (outcome,) = store.replay(bus)  # through the bus's middleware: three more attempts
    assert not outcome.ok and isinstance(outcome.error, RetriesExhaustedError)
    (letter,) = store
    assert letter.number == 1
    assert [a.number for a in letter.attempts] == [1, 2, 3, 4, 5, 6]
    assert outcome.letter == letter
    (direct,) = store.replay()  # the stored handler itself, no middleware: one more attempt
    assert not direct.ok and len(next(iter(store)).attempts) == 7
    assert repr(direct).startswith("Replayed(#1 Bank.charge: failed again, TimeoutError")


def test_a_replay_failing_behind_a_swallowing_dead_letter_layer_still_stays(
    clock: VirtualClock,
) -> None:
    store = DeadLetterStore(clock=clock)
    bus = failing_bus(clock, Bank(failures=10), store, reraise=False)
    bus.dispatch(payment())
    (outcome,) = store.replay(bus)  # no exception reaches replay, yet it failed again
    assert not outcome.ok and isinstance(outcome.error, TimeoutError)
    assert len(store) == 1 and len(next(iter(store)).attempts) == 6


def test_replay_into_a_fixed_handler_function(clock: VirtualClock) -> None:
    store, received = DeadLetterStore(clock=clock), []
    failing_bus(clock, Bank(failures=10), store).dispatch(payment())

    def fixed_charge(event: PaymentReceived) -> None:
        received.append(event)

    (outcome,) = store.replay(fixed_charge)
    assert outcome.ok and len(received) == 1 and len(store) == 0


def test_replay_through_a_bus_that_no_longer_has_the_handler_says_so(
    clock: VirtualClock,
) -> None:
    store = DeadLetterStore(clock=clock)
    failing_bus(clock, Bank(failures=10), store).dispatch(payment())
    (outcome,) = store.replay(EventBus())
    assert isinstance(outcome.error, LookupError) and len(store) == 1
    assert "no longer registered" in str(outcome.error)


def test_replay_only_the_chosen_letters(clock: VirtualClock) -> None:
    store, bank = DeadLetterStore(clock=clock), Bank(failures=6)
    bus = failing_bus(clock, bank, store)
    bus.dispatch(PaymentReceived("o-1", 1.0))
    bus.dispatch(PaymentReceived("o-2", 2.0))
    second = store.list()[1]
    (outcome,) = store.replay(bus, letters=[second])
    assert outcome.ok and [letter.number for letter in store] == [1]
    assert bank.charges == [("o-2", 2.0)]


def test_store_describes_its_letters_and_their_attempts(clock: VirtualClock) -> None:
    store = DeadLetterStore(clock=clock)
    assert store.describe() == "DeadLetterStore: empty"
    failing_bus(clock, Bank(failures=10), store).dispatch(payment())
    assert store.describe() == (
        "DeadLetterStore(1 letter)\n"
        "  #1 Bank.charge <- PaymentReceived(order_id='o-1', amount=42.0)\n"
        "    t=0        Bank.charge attempt 1: TimeoutError: bank did not answer (call 1), "
        "then wait 1 s\n"
        "    t=1        Bank.charge attempt 2: TimeoutError: bank did not answer (call 2), "
        "then wait 2 s\n"
        "    t=3        Bank.charge attempt 3: TimeoutError: bank did not answer (call 3)"
    )
    store.remove(next(iter(store)))
    assert repr(store) == "DeadLetterStore(0 letters)"


def test_dead_letters_wants_a_store() -> None:
    with pytest.raises(TypeError, match="DeadLetterStore"):
        dead_letters([])  # type: ignore[arg-type]


class WarehouseDownError(ConnectionError):
    pass


@dataclass
class FlakyShipping(Shipping):
    """The warehouse system, which can be down."""

    down: bool = True
    shipped: list[str] = field(default_factory=list)

    def ship(self, order_id: str) -> str:
        if self.down:
            raise WarehouseDownError("warehouse system unreachable")
        return super().ship(order_id)


def test_a_learner_breaks_shipping_watches_the_dead_letter_fixes_it_and_the_order_ships(
    clock: VirtualClock,
) -> None:
    shop, store = Shop(stock={"book": 3}), DeadLetterStore(clock=clock)
    shop.shipping = FlakyShipping()
    bus = EventBus(
        middleware=[dead_letters(store), retry(3, retry_on=ConnectionError, clock=clock)]
    )
    shop.register(bus)

    result = bus.dispatch(OrderPaid("o-1", 42.0))
    assert [call.name for call in result.failures] == ["Shop.ship_order"]
    assert shop.orders.status["o-1"] == "paid"
    assert [letter.event for letter in store] == [ShipmentRequested("o-1")]

    shop.shipping.down = False
    (outcome,) = store.replay(bus)
    assert outcome.ok and len(store) == 0
    assert [type(event) for event in outcome.produced] == [OrderShipped]
    assert [r.calls[0].name for r in outcome.results] == ["Shop.notify_shipped"]
    assert shop.orders.status["o-1"] == "shipped"
    assert repr(outcome) == "Replayed(#1 Shop.ship_order: ok, left the store, dispatched 1 event)"


# ---------------------------------------------------------------------- idempotency


def test_without_idempotency_a_duplicate_delivery_charges_twice(ids: SequentialIds) -> None:
    bus, bank = EventBus(), Bank()
    bus.register(PaymentReceived, bank.charge)
    event = payment()
    bus.dispatch(event)
    bus.dispatch(event)  # the broker delivered it again
    assert bank.charges == [("o-1", 42.0), ("o-1", 42.0)]


def test_an_idempotent_handler_charges_once_however_often_the_event_arrives(
    ids: SequentialIds,
) -> None:
    bus, bank, once = EventBus(), Bank(), idempotent()
    bus.register(PaymentReceived, bank.charge, middleware=[once])
    event = payment()
    for _ in range(3):
        assert bus.dispatch(event).ok
    assert bank.charges == [("o-1", 42.0)]
    assert [skip.key for skip in once.skipped] == ["evt-1", "evt-1"]
    assert repr(once.skipped[0]) == "Skipped(Bank.charge already handled 'evt-1')"


def test_two_payments_of_the_same_sum_are_two_events(ids: SequentialIds) -> None:
    bus, bank = EventBus(), Bank()
    bus.register(PaymentReceived, bank.charge, middleware=[idempotent()])
    bus.dispatch(payment())
    bus.dispatch(payment())
    assert len(bank.charges) == 2


def test_a_failed_call_is_not_remembered_so_a_redelivery_is_handled(
    ids: SequentialIds,
) -> None:
    bus, bank = EventBus(), Bank(failures=1)
    bus.register(PaymentReceived, bank.charge, middleware=[idempotent()])
    event = payment()
    assert not bus.dispatch(event).ok
    assert bus.dispatch(event).ok
    assert bus.dispatch(event).ok
    assert bank.charges == [("o-1", 42.0)]


def test_events_without_a_usable_id_are_refused_not_guessed() -> None:
    @dataclass(frozen=True)
    class Charged:
        event_id: object

    bus, seen = EventBus(), list[object]()
    bus.register(Ping, seen.append, middleware=[idempotent()])
    result = bus.dispatch(Ping(1))  # no event_id: equal values are not proof of one event
    assert seen == [] and "cannot tell this Ping from another" in str(result.failures[0].error)
    for unusable in (None, "", "   ", 1.5, True, ("a",)):
        with pytest.raises(ValueError, match="Give every event a unique id"):
            message_key(Charged(unusable))
    assert message_key(Charged("evt-1")) == "evt-1" and message_key(Charged(7)) == 7


def test_an_event_key_that_cannot_be_remembered_is_a_clear_error() -> None:
    bus, seen = EventBus(), list[object]()
    bus.register(Ping, seen.append, middleware=[idempotent(key=lambda event: [event.n])])
    bus.register(Shipped, seen.append, middleware=[idempotent(key=lambda event: "")])
    hashless = bus.dispatch(Ping(1)).failures[0].error
    empty = bus.dispatch(Shipped("o-1")).failures[0].error
    assert seen == []
    assert isinstance(hashless, TypeError) and "not hashable" in str(hashless)
    assert isinstance(empty, ValueError) and "every later event look like a repeat" in str(empty)


def test_two_different_handlers_with_one_name_are_never_merged(ids: SequentialIds) -> None:
    bus, first, second = EventBus(), Bank(), Bank()
    once = idempotent()
    bus.register(PaymentReceived, first.charge, middleware=[once])  # same qualified name...
    bus.register(PaymentReceived, second.charge, middleware=[once])  # ...another instance
    bus.register(
        PaymentReceived, lambda e: first.charges.append(("lambda 1", e.amount)), middleware=[once]
    )
    bus.register(
        PaymentReceived, lambda e: first.charges.append(("lambda 2", e.amount)), middleware=[once]
    )
    event = payment()
    bus.dispatch(event)
    bus.dispatch(event)
    assert first.charges == [("o-1", 42.0), ("lambda 1", 42.0), ("lambda 2", 42.0)]
    assert second.charges == [("o-1", 42.0)]
    assert len(once.skipped) == 4  # the second delivery, once per registration


def test_an_event_is_remembered_only_after_its_generator_handler_finished(
    ids: SequentialIds,
) -> None:
    bus, runs = EventBus(), list[str]()
    failing = [True]

    def receipts(event: PaymentReceived) -> Iterator[object]:
        runs.append(event.order_id)
        yield Shipped(event.order_id)
        if failing[0]:
            raise ConnectionError("mail server down while the generator ran")

    once = idempotent()
    bus.register(PaymentReceived, receipts, middleware=[once])
    event = payment()
    assert not bus.dispatch(event).ok  # failed half way through: not marked as done
    failing[0] = False
    again = bus.dispatch(event)
    assert again.ok and [r.type_name for r in again.events] == ["PaymentReceived", "Shipped"]
    assert runs == ["o-1", "o-1"] and once.skipped == []


def test_a_key_function_decides_what_counts_as_the_same_event(ids: SequentialIds) -> None:
    bus, bank = EventBus(), Bank()
    once_per_order = idempotent(key=lambda event: event.order_id)
    bus.register(PaymentReceived, bank.charge, middleware=[once_per_order])
    bus.dispatch(PaymentReceived("o-1", 10.0))
    bus.dispatch(PaymentReceived("o-1", 20.0))
    bus.dispatch(PaymentReceived("o-2", 30.0))
    assert bank.charges == [("o-1", 10.0), ("o-2", 30.0)]


def test_keys_are_remembered_per_handler(ids: SequentialIds) -> None:
    bus, bank, sent = EventBus(middleware=[idempotent()]), Bank(), list[PaymentReceived]()
    bus.register(PaymentReceived, bank.charge)
    bus.register(PaymentReceived, sent.append)
    event = payment()
    bus.dispatch(event)
    bus.dispatch(event)
    assert len(bank.charges) == 1 and len(sent) == 1


def test_what_was_seen_survives_new_registrations(ids: SequentialIds) -> None:
    bus, bank = EventBus(), Bank()
    bus.register(PaymentReceived, bank.charge, middleware=[idempotent()])
    event = payment()
    bus.dispatch(event)
    bus.register(Ping, print)  # the bus rebuilds its plans, and so re-wraps the handler
    bus.dispatch(event)
    assert len(bank.charges) == 1


class SQLiteSeenKeys:
    """A seen-keys store in a real SQLite file: what a service restarting would need."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS seen (handler TEXT, key TEXT, UNIQUE(handler, key))"
        )

    def __contains__(self, entry: object) -> bool:
        assert isinstance(entry, tuple)
        handler, key = entry
        row = self.db.execute("SELECT 1 FROM seen WHERE handler=? AND key=?", (handler, str(key)))
        return row.fetchone() is not None

    def add(self, entry: tuple[str, Hashable]) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (entry[0], str(entry[1])))

    def close(self) -> None:
        self.db.close()


def test_the_seen_keys_store_is_pluggable_and_outlives_the_process_memory(
    tmp_path: Path, ids: SequentialIds
) -> None:
    path, event, bank = tmp_path / "seen.sqlite", payment(), Bank()
    first_store = SQLiteSeenKeys(path)
    first = EventBus()
    first.register(
        PaymentReceived, bank.charge, middleware=[idempotent(seen=first_store, name="charge")]
    )
    first.dispatch(event)
    first_store.close()
    restarted_store = SQLiteSeenKeys(path)  # a new bus, a new store object, the same file
    restarted = EventBus()
    restarted.register(
        PaymentReceived, bank.charge, middleware=[idempotent(seen=restarted_store, name="charge")]
    )
    restarted.dispatch(event)
    restarted_store.close()
    assert bank.charges == [("o-1", 42.0)]


@settings(max_examples=80, deadline=None)
@given(
    deliveries=st.lists(st.integers(min_value=0, max_value=9), max_size=40),
    flaky=st.sets(st.integers(min_value=0, max_value=9)),
)
def test_each_payment_takes_effect_exactly_once_whatever_the_duplicates(
    deliveries: list[int], flaky: set[int]
) -> None:
    """At-least-once delivery (duplicates, and a redelivery after each failure) plus an
    idempotent handler gives exactly one effect per event."""
    with use_ids(SequentialIds("evt")):
        events = [PaymentReceived(f"o-{n}", float(n)) for n in range(10)]
    charged: list[str] = []
    failing_once = set(flaky)

    def charge(event: PaymentReceived) -> None:
        n = int(event.order_id.removeprefix("o-"))
        if n in failing_once:  # this payment's first delivery fails
            failing_once.discard(n)
            raise TimeoutError("try again")
        charged.append(event.order_id)

    bus = EventBus()
    bus.register(PaymentReceived, charge, middleware=[idempotent()])
    for n in deliveries:
        while not bus.dispatch(events[n]).ok:  # the broker redelivers what failed
            pass
    assert sorted(charged) == sorted({f"o-{n}" for n in deliveries})


# ---------------------------------------------------------------------- together


def test_retry_dead_letters_and_idempotency_compose_on_one_handler(
    clock: VirtualClock, ids: SequentialIds
) -> None:
    store, bank, once = DeadLetterStore(clock=clock), Bank(failures=2), idempotent()
    bus = EventBus()
    bus.register(
        PaymentReceived,
        bank.charge,
        middleware=[dead_letters(store), once, retry(3, clock=clock)],
    )
    event = payment()
    assert bus.dispatch(event).ok  # two transient failures, retried away
    assert bus.dispatch(event).ok  # a duplicate, skipped
    assert bank.charges == [("o-1", 42.0)] and bank.calls == 3
    assert len(store) == 0 and len(once.skipped) == 1


def test_async_handlers_are_recognised() -> None:
    async def handle(event: object) -> None:
        pass

    class Handler:
        async def __call__(self, event: object) -> None:
            pass

    assert is_async_callable(handle) and is_async_callable(Handler())
    assert not is_async_callable(print) and not is_async_callable(lambda event: None)
    assert Attempt(None, "h", 1, 0.0, 0.0).ok
