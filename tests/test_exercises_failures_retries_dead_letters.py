"""The checks of notebook 07: each fails on the notebook's stub and on a plausible wrong
answer, with a message saying what went wrong, and passes on the published solution."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from feedback import correct, not_yet

from eda_lesson import EventBus
from eda_lesson.book.exercises import Feedback
from eda_lesson.book.exercises import failures_retries_dead_letters as check
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import Message
from eda_lesson.core.middleware import (
    DeadLetterStore,
    Replayed,
    dead_letters,
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


def checkout_bus_solution(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
    def charge(event: CheckoutCompleted) -> None:
        provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

    bus = EventBus()
    layers = [dead_letters(store), retry(3, retry_on=TimeoutError, clock=clock)]
    bus.register(CheckoutCompleted, charge, middleware=layers)
    return bus


def replay_letters_solution(store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
    return store.replay(bus)


def checkout_bus_stub(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
    def charge(event: CheckoutCompleted) -> None:
        provider.charge(event.order_id, event.amount)

    bus = EventBus()
    bus.register(CheckoutCompleted, charge, middleware=[idempotent()])
    return bus


def replay_letters_stub(store: DeadLetterStore, bus: EventBus) -> None:
    pass


def checkout_bus_keyed(
    key: Any, *, layers: str = "idr", reraise: bool = True, swallow: bool = False
) -> Any:
    """A bus whose handler sends ``key(event)``, inside ``layers`` listed outermost first:
    ``d`` dead_letters(store), ``i`` idempotent(), ``r`` retry on TimeoutError."""

    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            try:
                provider.charge(event.order_id, event.amount, idempotency_key=key(event))
            except TimeoutError:
                if not swallow:
                    raise

        made = {
            "d": lambda: dead_letters(store, reraise=reraise),
            "i": idempotent,
            "r": lambda: retry(3, retry_on=TimeoutError, clock=clock),
        }
        bus = EventBus()
        bus.register(CheckoutCompleted, charge, middleware=[made[layer]() for layer in layers])
        return bus

    return checkout_bus


by_event_id = checkout_bus_keyed(lambda event: event.event_id, layers="dr")


def ex4(checkout_bus: Any, replay_letters: Any = replay_letters_solution) -> Feedback:
    return check.ex4(checkout_bus, replay_letters, CheckoutCompleted)


def test_ex4_passes_on_the_solution() -> None:
    feedback = ex4(checkout_bus_solution)
    assert feedback.passed, feedback
    assert repr(feedback).startswith("Correct! Exercise 4 (stretch)")


def test_ex4_says_the_stub_left_the_lost_answer_unretried() -> None:
    feedback = ex4(checkout_bus_stub, replay_letters_stub)
    assert not feedback.passed and "the dispatch failed" in feedback.message
    assert "Hint:" not in repr(feedback) and "store.replay" not in repr(feedback)


def test_ex4_says_a_retry_without_a_key_charges_twice_even_behind_idempotent() -> None:
    feedback = ex4(checkout_bus_keyed(lambda event: None))
    assert not feedback.passed
    assert "charged 2 times" in feedback.message and "no idempotency_key" in feedback.message


def test_ex4_says_a_new_key_on_every_attempt_is_no_key() -> None:
    attempts = iter(range(100))
    feedback = ex4(checkout_bus_keyed(lambda event: f"attempt-{next(attempts)}"))
    assert not feedback.passed and "each attempt sent a different" in feedback.message


def test_ex4_says_a_timeout_cannot_be_taken_for_a_success() -> None:
    feedback = ex4(checkout_bus_keyed(lambda event: event.event_id, swallow=True))
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
    feedback = ex4(checkout_bus_keyed(key))
    assert not feedback.passed and "the key came from the content" in feedback.message


def test_ex4_says_the_correlation_id_names_the_transaction_not_the_event() -> None:
    feedback = ex4(checkout_bus_keyed(lambda event: event.correlation_id))
    assert not feedback.passed and "correlation id names the transaction" in feedback.message


def test_ex4_asks_for_the_bus_and_both_functions() -> None:
    feedback = ex4(lambda provider, store, clock: None)
    assert not feedback.passed and "returned NoneType" in feedback.message
    one_function = check.ex4(checkout_bus_solution, None, CheckoutCompleted)  # type: ignore[arg-type]
    not_yet(one_function, "pass your two functions")


def test_ex4_passes_twice_on_a_solution_that_shares_one_idempotent_between_buses() -> None:
    shared = idempotent(seen=set(), name="checkout.charge")

    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus.register(CheckoutCompleted, charge, middleware=[dead_letters(store), shared, policy])
        return bus

    for _ in range(2):
        feedback = ex4(checkout_bus)
        assert feedback.passed, feedback


# ---------------------------------------------------------------------- after a fresh reader


def payment_bus_retrying(retry_on: Any, attempts: int = 4, **given: Any) -> Any:
    def payment_bus(bank: Any, clock: VirtualClock) -> EventBus:
        policy = retry(
            attempts, backoff=exponential(0.5), retry_on=retry_on, **{"clock": clock, **given}
        )
        bus = EventBus()
        bus.register(CheckoutCompleted, bank.charge, middleware=[policy])
        return bus

    return payment_bus


def test_ex1_says_a_retry_that_leaves_timeouts_out_did_not_retry_them() -> None:
    not_yet(
        check.ex1(payment_bus_retrying(ConnectionError), CheckoutCompleted),
        "nothing retried it",
        "its TimeoutError reached the bus as it was",
        "retry_on leaves TimeoutError out",
    )


def test_ex1_says_a_retry_of_one_attempt_gave_up_at_once() -> None:
    feedback = check.ex1(payment_bus_retrying(TimeoutError, attempts=1), CheckoutCompleted)
    not_yet(feedback, "your retry gave up after 1 attempt", "counts every try")
    assert "nothing retried it" not in feedback.message


def test_ex1_says_a_retry_waiting_on_another_clock_did_not_wait_on_the_one_given() -> None:
    elsewhere = VirtualClock()
    feedback = check.ex1(payment_bus_retrying(TimeoutError, clock=elsewhere), CheckoutCompleted)
    not_yet(feedback, "tried 4 times, but nothing waited on `clock`", "clock=clock")
    assert "were none" not in feedback.message


def test_ex1_says_a_swallowed_last_failure_hides_the_unpaid_order() -> None:
    def swallowing(bank: Any, clock: VirtualClock) -> EventBus:
        store = DeadLetterStore(clock=clock)
        policy = retry(4, backoff=exponential(0.5), retry_on=TimeoutError, clock=clock)
        bus = EventBus()
        bus.register(
            CheckoutCompleted,
            bank.charge,
            middleware=[dead_letters(store, reraise=False), policy],
        )
        return bus

    feedback = check.ex1(swallowing, CheckoutCompleted)
    not_yet(feedback, "all 4 attempts failed, yet the dispatch shows no failed call", "reraise")
    assert "called 4 times; expected 4" not in feedback.message  # no longer self-contradictory


def test_ex1_accepts_a_retry_written_by_hand() -> None:
    def by_hand(bank: Any, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            for attempt in range(4):
                try:
                    return bank.charge(event)  # type: ignore[no-any-return]
                except TimeoutError:
                    if attempt == 3:
                        raise
                    clock.sleep(0.5 * 2**attempt)

        bus = EventBus()
        bus.register(CheckoutCompleted, charge)
        return bus

    correct(check.ex1(by_hand, CheckoutCompleted))


def test_ex2_refuses_a_replay_done_by_hand_that_returns_no_outcome() -> None:
    def by_hand(shop: Shop, store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
        shop.shipping.down = False  # type: ignore[attr-defined]
        for letter in store:
            bus.dispatch(letter.event)
            store.remove(letter)
        return []

    not_yet(check.ex2(by_hand), "you returned an empty list", "one Replayed")


def payments_bus_keyed(key: Any) -> Any:
    def payments_bus(bank: Any) -> EventBus:
        bus = EventBus()
        bus.register(CheckoutCompleted, bank.charge, middleware=[idempotent(key=key)])
        return bus

    return payments_bus


def test_ex3_refuses_a_key_made_from_the_object_not_the_event() -> None:
    """A redelivery is a new object with the same ids: id(event) differs between the two."""
    not_yet(
        check.ex3(payments_bus_keyed(id), CheckoutCompleted),
        "a redelivered event was charged again",
        "a redelivery is a new object",
    )


def test_ex3_refuses_the_correlation_id_as_the_key() -> None:
    not_yet(
        check.ex3(payments_bus_keyed(lambda event: event.correlation_id), CheckoutCompleted),
        "a later payment of the same business transaction",
        "the correlation id names the transaction, not the event",
    )


def test_ex3_accepts_the_event_itself_as_the_key() -> None:
    """Events compare by their fields and ids, so an equal redelivery is the same key."""
    correct(check.ex3(payments_bus_keyed(lambda event: event), CheckoutCompleted))


def test_ex4_refuses_a_key_made_from_the_object_not_the_event() -> None:
    feedback = ex4(checkout_bus_keyed(id))
    not_yet(feedback, "redelivered to a restarted process", "another key than the first")
    assert not re.search(r"\d{8}", feedback.message)  # no memory address quoted


def test_ex4_says_one_key_for_every_event_names_no_event() -> None:
    feedback = ex4(checkout_bus_keyed(lambda event: "checkout"))
    not_yet(feedback, "made no new charge", "every event sent the same key ('checkout'")
    assert "came from the content" not in feedback.message


def test_ex4_says_a_filter_keyed_by_the_order_keeps_the_instalment_from_the_provider() -> None:
    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        by_order = idempotent(key=lambda event: event.order_id)
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus = EventBus()
        bus.register(CheckoutCompleted, charge, middleware=[by_order, dead_letters(store), policy])
        return bus

    feedback = ex4(checkout_bus)
    not_yet(feedback, "a second instalment", "never reached the provider", "keyed by the order")
    assert "the key came from the content" not in feedback.message


def test_ex4_quotes_the_error_of_a_handler_that_returns_the_charge_id() -> None:
    """The idea is right; the bus refuses the str an event handler returned. The feedback
    says so instead of blaming the lost answer."""

    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> Any:
            return provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus.register(CheckoutCompleted, charge, middleware=[dead_letters(store), policy])
        return bus

    feedback = ex4(checkout_bus)
    not_yet(feedback, "not because of the lost answer", "returned 'ch-1' (a str)")
    assert "the shop does not know the customer paid" not in feedback.message


# The layers and the dead-letter store


def test_ex4_says_a_dead_letter_layer_inside_the_retry_keeps_a_payment_that_went_through() -> None:
    not_yet(
        ex4(checkout_bus_keyed(lambda event: event.event_id, layers="rd")),
        "the retry got through on its second attempt",
        "the dead-letter store holds 1 letter",
        "sits inside the retry",
        "the first layer listed is the outermost",
    )


def test_ex4_says_a_dead_letter_layer_with_no_retry_gives_up_at_the_first_timeout() -> None:
    not_yet(
        ex4(checkout_bus_keyed(lambda event: event.event_id, layers="d", reraise=False)),
        "went straight into the dead-letter store",
        "nothing asked the provider again",
    )


def test_ex4_says_without_dead_letters_the_outage_loses_both_checkouts() -> None:
    feedback = ex4(checkout_bus_keyed(lambda event: event.event_id, layers="ir"))
    not_yet(feedback, "stayed down through every attempt", "neither is in the dead-letter store")
    not_yet(feedback, "o-3 is charged with no order marked paid", "dead_letters(store)")


def test_ex4_says_a_store_of_its_own_is_not_the_store_given() -> None:
    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        return by_event_id(provider, DeadLetterStore(clock=clock), clock)

    not_yet(ex4(checkout_bus), "neither is in the dead-letter store checkout_bus was given")


def test_ex4_says_an_idempotent_outside_a_swallowing_dead_letter_layer_skips_the_replay() -> None:
    answer = checkout_bus_keyed(lambda event: event.event_id, layers="idr", reraise=False)
    not_yet(
        ex4(answer),
        "the letter of o-4 out of the store without ever calling the provider",
        "swallowed the outage's failure (reraise=False)",
        "marked o-4 as handled when it was only put aside",
        "put idempotent() inside the dead-letter layer",
    )


def test_ex4_says_a_mark_written_before_the_charge_skips_the_replay() -> None:
    def with_a_retry(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        seen: set[str] = set()

        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        def remember_first(call: Any, subscription: Any) -> Any:
            def marked_then_called(event: CheckoutCompleted) -> Any:
                if event.event_id in seen:
                    return None
                seen.add(event.event_id)
                return call(event)

            return marked_then_called

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError, clock=clock)
        bus.register(
            CheckoutCompleted, charge, middleware=[remember_first, dead_letters(store), policy]
        )
        return bus

    not_yet(ex4(with_a_retry), "a mark written before the charge went through")


# The replay


def replay_bare(store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
    return store.replay()


def replay_new_events(store: DeadLetterStore, bus: EventBus) -> None:
    for letter in store:
        event: Any = letter.event
        bus.dispatch(CheckoutCompleted(event.order_id, event.amount))
        store.remove(letter)


def replay_and_keep_the_letters(store: DeadLetterStore, bus: EventBus) -> None:
    for letter in store:
        bus.dispatch(letter.event)


def replay_by_clearing(store: DeadLetterStore, bus: EventBus) -> None:
    store.clear()


def replay_calling_the_handler_by_hand(store: DeadLetterStore, bus: EventBus) -> None:
    for letter in store:
        letter.subscription.handler(letter.event)
        store.remove(letter)


def replay_by_hand_through_the_bus(store: DeadLetterStore, bus: EventBus) -> None:
    for letter in store:
        if bus.dispatch(letter.event).ok:
            store.remove(letter)


@pytest.mark.parametrize(
    ("replay", "words"),
    [
        (replay_letters_stub, ["the store still holds its 2 letters", "delivered nothing"]),
        (replay_bare, ["store.replay() calls the handler bare", "nothing tried again"]),
        (
            replay_new_events,
            ["o-3, whose first attempt did charge the card", "now charged 2 times", "own event"],
        ),
        (replay_and_keep_the_letters, ["delivered again, yet the store still holds 2 letters"]),
        (replay_by_clearing, ["the letters were removed without being delivered"]),
        (
            replay_calling_the_handler_by_hand,
            ["replay_letters raised TimeoutError", "the handler was called bare"],
        ),
    ],
    ids=["nothing", "without the bus", "new events", "letters kept", "cleared", "by hand"],
)
def test_ex4_explains_each_wrong_replay(replay: Any, words: list[str]) -> None:
    feedback = ex4(checkout_bus_solution, replay)
    not_yet(feedback, *words)
    assert "running your code raised" not in feedback.message


def test_ex4_replay_without_the_bus_names_the_handler_it_called() -> None:
    def replay_into_the_handler(store: DeadLetterStore, bus: EventBus) -> list[Replayed]:
        return store.replay(store.list()[0].subscription.handler)

    not_yet(
        ex4(checkout_bus_solution, replay_into_the_handler),
        "store.replay(checkout_bus_solution.charge) calls",
    )


# Right answers written otherwise


@pytest.mark.parametrize(
    ("layers", "reraise"),
    [("idr", True), ("dir", True), ("dri", True), ("dir", False), ("dri", False), ("dr", False)],
    ids=["i-d-r", "d-i-r", "d-r-i", "d-i-r swallowing", "d-r-i swallowing", "d-r swallowing"],
)
def test_ex4_accepts_each_order_of_layers_that_works(layers: str, reraise: bool) -> None:
    """idempotent() anywhere behind a dead-letter layer that re-raises, or inside one that
    swallows, never marks a checkout that failed."""
    correct(ex4(checkout_bus_keyed(lambda event: event.event_id, layers=layers, reraise=reraise)))


def test_ex4_accepts_a_replay_by_hand_through_the_bus() -> None:
    correct(ex4(by_event_id, replay_by_hand_through_the_bus))


def test_ex4_accepts_layers_on_the_whole_bus() -> None:
    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        bus = EventBus(
            middleware=[dead_letters(store), retry(4, retry_on=TimeoutError, clock=clock)]
        )
        bus.register(CheckoutCompleted, charge)
        return bus

    correct(ex4(checkout_bus))


def test_ex4_accepts_a_retry_that_waits_on_the_clock_it_runs_on() -> None:
    """The check dispatches and replays on its virtual clock: a retry given no clock waits
    there, at no real cost."""

    def checkout_bus(provider: Any, store: DeadLetterStore, clock: VirtualClock) -> EventBus:
        def charge(event: CheckoutCompleted) -> None:
            provider.charge(event.order_id, event.amount, idempotency_key=event.event_id)

        bus = EventBus()
        policy = retry(3, retry_on=TimeoutError)
        bus.register(CheckoutCompleted, charge, middleware=[dead_letters(store), policy])
        return bus

    correct(ex4(checkout_bus))
