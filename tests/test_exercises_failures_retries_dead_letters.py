"""The checks of notebook 07: each fails on the notebook's stub and on a plausible wrong
answer, with a message saying what went wrong, and passes on the published solution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from eda_lesson import EventBus
from eda_lesson.book.exercises import failures_retries_dead_letters as check
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import Message
from eda_lesson.core.middleware import (
    DeadLetterStore,
    Replayed,
    exponential,
    fixed,
    idempotent,
    retry,
)
from eda_lesson.shop.services import Shop

pytestmark = pytest.mark.filterwarnings("error")


@dataclass(frozen=True)
class CheckoutCompleted(Message):
    order_id: str
    amount: float


# ---------------------------------------------------------------------- exercise 1


def payment_bus_stub(bank: Any, clock: VirtualClock) -> EventBus:
    bus = EventBus()
    bus.register(CheckoutCompleted, bank.charge)
    return bus


def payment_bus_solution(bank: Any, clock: VirtualClock) -> EventBus:
    bus = EventBus()
    policy = retry(4, backoff=exponential(base=0.5, factor=2), retry_on=TimeoutError, clock=clock)
    bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
    return bus


def payment_bus_retrying_everything(bank: Any, clock: VirtualClock) -> EventBus:
    bus = EventBus()
    policy = retry(4, backoff=exponential(base=0.5, factor=2), clock=clock)
    bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
    return bus


def payment_bus_three_attempts(bank: Any, clock: VirtualClock) -> EventBus:
    bus = EventBus()
    policy = retry(3, backoff=exponential(0.5), retry_on=TimeoutError, clock=clock)
    bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
    return bus


def payment_bus_fixed_waits(bank: Any, clock: VirtualClock) -> EventBus:
    bus = EventBus()
    policy = retry(4, backoff=fixed(0.5), retry_on=TimeoutError, clock=clock)
    bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
    return bus


def test_ex1_passes_on_the_solution() -> None:
    feedback = check.ex1(payment_bus_solution, CheckoutCompleted)
    assert feedback.passed, feedback
    assert repr(feedback).startswith("Correct! Exercise 1")


def test_ex1_says_nothing_retried_the_stub() -> None:
    feedback = check.ex1(payment_bus_stub, CheckoutCompleted)
    assert not feedback.passed
    assert "nothing retried it" in feedback.message and "retry(" in feedback.hint


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (payment_bus_retrying_everything, "a declined card (a ValueError) was tried 4 times"),
        (payment_bus_three_attempts, "4 attempts should get through"),
        (payment_bus_fixed_waits, "the waits between attempts were 0.5 s, 0.5 s, 0.5 s"),
    ],
)
def test_ex1_explains_each_wrong_policy(answer: Any, words: str) -> None:
    feedback = check.ex1(answer, CheckoutCompleted)
    assert not feedback.passed and words in feedback.message, feedback


def test_ex1_accepts_a_retry_that_waits_on_the_clock_it_runs_on() -> None:
    """Without clock=, the retry waits on the clock the code runs on; the check runs the
    dispatch on its virtual clock, so it costs no real time and still counts the waits."""

    def no_clock_given(bank: Any, clock: VirtualClock) -> EventBus:
        bus = EventBus()
        policy = retry(4, backoff=exponential(0.5), retry_on=TimeoutError)
        bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
        return bus

    assert check.ex1(no_clock_given, CheckoutCompleted).passed


def test_ex1_asks_for_the_bus_and_the_registration() -> None:
    returns_nothing = check.ex1(lambda bank, clock: None, CheckoutCompleted)  # type: ignore[arg-type,return-value]
    assert "returned NoneType; return the EventBus" in returns_nothing.message
    registers_nothing = check.ex1(lambda bank, clock: EventBus(), CheckoutCompleted)
    assert "never called for CheckoutCompleted" in registers_nothing.message


# ---------------------------------------------------------------------- exercise 2


def fix_and_replay_stub(shop: Shop, store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
    return []


def fix_and_replay_solution(shop: Shop, store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
    shop.shipping.down = False  # type: ignore[attr-defined]
    return store.replay(bus)


def fix_and_replay_without_the_bus(
    shop: Shop, store: DeadLetterStore, bus: EventBus
) -> list[Replayed]:
    shop.shipping.down = False  # type: ignore[attr-defined]
    return store.replay()


def replay_then_fix(shop: Shop, store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
    outcomes = store.replay(bus)
    shop.shipping.down = False  # type: ignore[attr-defined]
    return outcomes


def test_ex2_passes_on_the_solution() -> None:
    feedback = check.ex2(fix_and_replay_solution)
    assert feedback.passed, feedback


def test_ex2_says_the_stub_left_the_warehouse_down() -> None:
    feedback = check.ex2(fix_and_replay_stub)
    assert not feedback.passed and "still down" in feedback.message


def test_ex2_explains_why_a_replay_without_the_bus_leaves_the_order_unshipped() -> None:
    feedback = check.ex2(fix_and_replay_without_the_bus)
    assert not feedback.passed
    assert "the order is 'paid'" in feedback.message
    assert "OrderShipped was never dispatched" in feedback.message
    assert "store.replay(bus)" in feedback.hint


def test_ex2_says_a_replay_before_the_fix_leaves_the_letter() -> None:
    feedback = check.ex2(replay_then_fix)
    assert not feedback.passed and "the store still holds 1 letter" in feedback.message


# ---------------------------------------------------------------------- exercise 3


def payments_bus_stub(bank: Any) -> EventBus:
    bus = EventBus()
    bus.register(CheckoutCompleted, bank.charge)
    return bus


def payments_bus_solution(bank: Any) -> EventBus:
    bus = EventBus()
    bus.register(CheckoutCompleted, bank.charge, middleware=[idempotent()])
    return bus


def payments_bus_keyed_by_order(bank: Any) -> EventBus:
    bus = EventBus()
    once = idempotent(key=lambda event: (event.order_id, event.amount))
    bus.register(CheckoutCompleted, bank.charge, middleware=[once])
    return bus


def payments_bus_remembering_too_early(bank: Any) -> EventBus:
    """Hand-made idempotency that notes the event before the charge went through."""
    seen: set[str] = set()

    def charge_once(event: CheckoutCompleted) -> None:
        if event.event_id in seen:
            return
        seen.add(event.event_id)
        bank.charge(event)

    bus = EventBus()
    bus.register(CheckoutCompleted, charge_once)
    return bus


def test_ex3_passes_on_the_solution() -> None:
    feedback = check.ex3(payments_bus_solution, CheckoutCompleted)
    assert feedback.passed, feedback


def test_ex3_shows_the_double_charge_of_the_stub() -> None:
    feedback = check.ex3(payments_bus_stub, CheckoutCompleted)
    assert not feedback.passed
    assert "charged the card 5 times" in feedback.message
    assert "idempotent()" in feedback.hint


def test_ex3_says_two_payments_of_the_same_sum_are_two_events() -> None:
    feedback = check.ex3(payments_bus_keyed_by_order, CheckoutCompleted)
    assert not feedback.passed and "they are two events" in feedback.message


def test_ex3_says_a_failed_delivery_must_not_be_remembered() -> None:
    feedback = check.ex3(payments_bus_remembering_too_early, CheckoutCompleted)
    assert not feedback.passed and "the redelivery was skipped" in feedback.message


SHARED_ONCE = idempotent()
SHARED_SEEN: set[Any] = set()


def payments_bus_sharing_one_idempotent(bank: Any) -> EventBus:
    """One idempotent() for every bus the function builds: it outlives each scenario."""
    bus = EventBus()
    bus.register(CheckoutCompleted, bank.charge, middleware=[SHARED_ONCE])
    return bus


def payments_bus_sharing_marks_by_name(bank: Any) -> EventBus:
    """Marks kept under one stable name, as a store outliving the process would keep them."""
    bus = EventBus()
    once = idempotent(seen=SHARED_SEEN, name="payments.charge")
    bus.register(CheckoutCompleted, bank.charge, middleware=[once])
    return bus


@pytest.mark.parametrize(
    "answer", [payments_bus_sharing_one_idempotent, payments_bus_sharing_marks_by_name]
)
def test_ex3_judges_an_idempotent_shared_between_buses_on_what_it_does(answer: Any) -> None:
    """Each scenario of the check uses event ids of its own, so marks left by an earlier
    scenario cannot make a correct answer look like one that remembers failures."""
    for _ in range(2):  # and again, as a learner who runs the check cell twice
        feedback = check.ex3(answer, CheckoutCompleted)
        assert feedback.passed, feedback


def test_ex3_still_catches_a_shared_store_that_remembers_too_early() -> None:
    seen: set[str] = set()

    def payments_bus(bank: Any) -> EventBus:
        def charge_once(event: CheckoutCompleted) -> None:
            if event.event_id not in seen:
                seen.add(event.event_id)
                bank.charge(event)

        bus = EventBus()
        bus.register(CheckoutCompleted, charge_once)
        return bus

    feedback = check.ex3(payments_bus, CheckoutCompleted)
    assert not feedback.passed and "the redelivery was skipped" in feedback.message


def test_a_check_never_raises_what_the_learners_code_raises() -> None:
    def broken(bank: Any) -> EventBus:
        raise RuntimeError("oops")

    feedback = check.ex3(broken, CheckoutCompleted)
    assert not feedback.passed and "RuntimeError: oops" in feedback.message


# ---------------------------------------------------------------------- exercise 4


def checkout_bus_solution(provider: Any, clock: VirtualClock) -> EventBus:
    def charge(event: CheckoutCompleted) -> None:
        provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

    bus = EventBus()
    bus.register(
        CheckoutCompleted, charge, middleware=[retry(3, retry_on=TimeoutError, clock=clock)]
    )
    return bus


def checkout_bus_stub(provider: Any, clock: VirtualClock) -> EventBus:
    def charge(event: CheckoutCompleted) -> None:
        provider.charge(event.order_id, event.amount)

    bus = EventBus()
    bus.register(CheckoutCompleted, charge, middleware=[idempotent()])
    return bus


def checkout_bus_keyed(key: Any, *, swallow: bool = False) -> Any:
    def checkout_bus(provider: Any, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            try:
                provider.charge(event.order_id, event.amount, idempotency_key=key(event))
            except TimeoutError:
                if not swallow:
                    raise

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus.register(CheckoutCompleted, charge, middleware=[idempotent(), policy])
        return bus

    return checkout_bus


def test_ex4_passes_on_the_solution() -> None:
    feedback = check.ex4(checkout_bus_solution, CheckoutCompleted)
    assert feedback.passed, feedback


def test_ex4_says_the_stub_left_the_lost_answer_unretried() -> None:
    feedback = check.ex4(checkout_bus_stub, CheckoutCompleted)
    assert not feedback.passed and "the dispatch failed" in feedback.message


def test_ex4_says_a_retry_without_a_key_charges_twice_even_behind_idempotent() -> None:
    feedback = check.ex4(checkout_bus_keyed(lambda event: None), CheckoutCompleted)
    assert not feedback.passed
    assert "charged 2 times" in feedback.message and "no idempotency_key" in feedback.message


def test_ex4_says_a_new_key_on_every_attempt_is_no_key() -> None:
    attempts = iter(range(100))
    feedback = check.ex4(
        checkout_bus_keyed(lambda event: f"attempt-{next(attempts)}"), CheckoutCompleted
    )
    assert not feedback.passed and "each attempt sent a different" in feedback.message


def test_ex4_says_a_timeout_cannot_be_taken_for_a_success() -> None:
    answer = checkout_bus_keyed(lambda event: event.event_id, swallow=True)
    feedback = check.ex4(answer, CheckoutCompleted)
    assert not feedback.passed and "the request itself was lost" in feedback.message


@pytest.mark.parametrize(
    "key",
    [
        lambda event: (event.order_id, event.amount),
        lambda event: event.order_id,
        lambda event: repr(event),
    ],
    ids=["order and amount", "order", "repr"],
)
def test_ex4_says_a_key_from_the_content_refuses_the_second_instalment(key: Any) -> None:
    feedback = check.ex4(checkout_bus_keyed(key), CheckoutCompleted)
    assert not feedback.passed and "the key came from the content" in feedback.message


def test_ex4_says_the_correlation_id_names_the_transaction_not_the_event() -> None:
    answer = checkout_bus_keyed(lambda event: event.correlation_id)
    feedback = check.ex4(answer, CheckoutCompleted)
    assert not feedback.passed and "correlation id names the transaction" in feedback.message


def test_ex4_asks_for_the_bus() -> None:
    feedback = check.ex4(lambda provider, clock: None, CheckoutCompleted)
    assert not feedback.passed and "returned NoneType" in feedback.message


def test_ex4_passes_twice_on_a_solution_that_shares_one_idempotent_between_buses() -> None:
    shared = idempotent(seen=set(), name="checkout.charge")

    def checkout_bus(provider: Any, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus.register(CheckoutCompleted, charge, middleware=[shared, policy])
        return bus

    for _ in range(2):
        feedback = check.ex4(checkout_bus, CheckoutCompleted)
        assert feedback.passed, feedback
