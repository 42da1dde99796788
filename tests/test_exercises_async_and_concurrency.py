"""The checks of notebook 08: each fails on the notebook's stub and on plausible wrong
answers, with a message saying what went wrong, and passes on the published solution."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from feedback import correct, not_yet

from eda_lesson import DispatchResult
from eda_lesson.book.exercises import async_and_concurrency as check
from eda_lesson.core.asyncbus import AsyncEventBus, EventQueue, partial_result
from eda_lesson.core.clock import current_clock
from eda_lesson.shop.events import OrderPaid

pytestmark = pytest.mark.filterwarnings("error")


@dataclass(frozen=True)
class FraudChecked:
    order_id: str


# ---------------------------------------------------------------------- exercise 1


def check_fraud_stub(event: OrderPaid) -> None:
    pass


async def check_fraud_solution(event: OrderPaid) -> FraudChecked:
    await asyncio.sleep(0.4)
    return FraudChecked(event.order_id)


async def check_fraud_blocking(event: OrderPaid) -> FraudChecked:
    current_clock().sleep(0.4)  # a blocking wait: the loop cannot run anything else
    return FraudChecked(event.order_id)


async def check_fraud_too_quick(event: OrderPaid) -> FraudChecked:
    await asyncio.sleep(0.04)
    return FraudChecked(event.order_id)


async def check_fraud_forgetting_the_event(event: OrderPaid) -> None:
    await asyncio.sleep(0.4)


def test_ex1_passes_on_the_solution() -> None:
    feedback = check.ex1(check_fraud_solution)
    assert feedback.passed, feedback


def test_ex1_says_a_plain_function_cannot_let_others_run() -> None:
    feedback = check.ex1(check_fraud_stub)
    assert not feedback.passed and "plain function" in feedback.message
    assert "async def" in feedback.hint


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (check_fraud_blocking, "send_receipt, which needs 0.1 s, finished at 0.5 s"),
        (check_fraud_too_quick, "check_fraud took 0.04 s of virtual time"),
        (check_fraud_forgetting_the_event, "check_fraud produced []"),
    ],
)
def test_ex1_explains_each_wrong_handler(answer: Any, words: str) -> None:
    feedback = check.ex1(answer)
    assert not feedback.passed and words in feedback.message, feedback


async def check_fraud_of_order_o_1(event: OrderPaid) -> FraudChecked:
    await asyncio.sleep(0.4)
    return FraudChecked("o-1")  # the id every example in the notebook uses


async def check_fraud_yielding(event: OrderPaid) -> AsyncIterator[FraudChecked]:
    await asyncio.sleep(0.4)
    yield FraudChecked(event.order_id)


async def check_fraud_passing_the_event_on(event: OrderPaid) -> OrderPaid:
    await asyncio.sleep(0.4)
    return event


async def check_fraud_sleeping_in_real_time(event: OrderPaid) -> FraudChecked:
    time.sleep(0.01)  # a blocking wait the virtual clock never sees
    return FraudChecked(event.order_id)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (check_fraud_of_order_o_1, "order_id='o-1', but the order the check paid was 'o-5'"),
        (check_fraud_yielding, "it is an async generator"),
        (check_fraud_passing_the_event_on, "answered OrderPaid with another OrderPaid"),
        (check_fraud_sleeping_in_real_time, "its wait never went through the event loop"),
    ],
    ids=["hard-coded order id", "yields", "returns its own event", "time.sleep"],
)
def test_ex1_refuses_each_near_miss_with_its_own_message(answer: Any, words: str) -> None:
    not_yet(check.ex1(answer), words)


# ---------------------------------------------------------------------- exercise 2


async def handle_in_order_stub(bus: AsyncEventBus, events: list[Any]) -> None:
    await asyncio.gather(*(bus.dispatch(event) for event in events))


async def handle_in_order_solution(bus: AsyncEventBus, events: list[Any]) -> EventQueue:
    async with bus.queue(maxsize=2) as queue:
        for event in events:
            await queue.publish(event)
    return queue


async def handle_with_three_workers(bus: AsyncEventBus, events: list[Any]) -> EventQueue:
    async with bus.queue(maxsize=2, workers=3) as queue:
        for event in events:
            await queue.publish(event)
    return queue


async def handle_unbounded(bus: AsyncEventBus, events: list[Any]) -> EventQueue:
    async with bus.queue() as queue:
        for event in events:
            await queue.publish(event)
    return queue


def test_ex2_passes_on_the_solution() -> None:
    feedback = check.ex2(handle_in_order_solution)
    assert feedback.passed, feedback
    assert "at most 2 waiting" in feedback.message


def test_ex2_asks_the_stub_for_the_queue() -> None:
    feedback = check.ex2(handle_in_order_stub)
    assert not feedback.passed and "returned NoneType; return the queue" in feedback.message


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (handle_with_three_workers, "not in the order published"),
        (handle_unbounded, "up to 5 events waited in the queue at once"),
    ],
)
def test_ex2_explains_each_wrong_queue(answer: Any, words: str) -> None:
    feedback = check.ex2(answer)
    assert not feedback.passed and words in feedback.message, feedback


async def handle_through_an_asyncio_queue(bus: AsyncEventBus, events: list[Any]) -> Any:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)

    async def worker() -> None:
        while (event := await queue.get()) is not None:
            await bus.dispatch(event)

    done = asyncio.create_task(worker())
    for event in events:
        await queue.put(event)
    await queue.put(None)
    await done
    return queue


async def handle_unbounded_but_slowly(bus: AsyncEventBus, events: list[Any]) -> EventQueue:
    async with bus.queue() as queue:
        for event in events:
            await queue.publish(event)
            await asyncio.sleep(1.5)  # slow enough that the queue never fills, this time
    return queue


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (handle_through_an_asyncio_queue, "returned an asyncio.Queue of its own"),
        (handle_unbounded_but_slowly, "the queue is unbounded (no maxsize): this time at most 1"),
    ],
    ids=["own asyncio.Queue", "unbounded, slow publisher"],
)
def test_ex2_refuses_each_near_miss_with_its_own_message(answer: Any, words: str) -> None:
    feedback = check.ex2(answer)
    not_yet(feedback, words)
    assert "at most 2 may" not in feedback.message  # the peak was fine; the bound was not


def test_ex2_praise_says_how_long_the_publisher_was_held_back() -> None:
    feedback = check.ex2(handle_in_order_solution)
    correct(feedback)
    assert "the publisher waited 1.2 s in all while the queue was full" in feedback.message


def test_ex2_wants_a_coroutine_function() -> None:
    feedback = check.ex2(lambda bus, events: None)  # type: ignore[arg-type,return-value]
    assert not feedback.passed and "async def" in feedback.message


# ---------------------------------------------------------------------- exercise 3


async def dispatch_within_stub(bus: AsyncEventBus, event: object, seconds: float) -> Any:
    return await bus.dispatch(event)


async def dispatch_within_solution(
    bus: AsyncEventBus, event: object, seconds: float
) -> DispatchResult | None:
    try:
        async with asyncio.timeout(seconds):
            return await bus.dispatch(event)
    except TimeoutError as error:
        return partial_result(error)


async def dispatch_within_giving_up(bus: AsyncEventBus, event: object, seconds: float) -> Any:
    try:
        async with asyncio.timeout(seconds):
            return await bus.dispatch(event)
    except TimeoutError:
        return None


async def dispatch_within_wait_for(
    bus: AsyncEventBus, event: object, seconds: float
) -> DispatchResult | None:
    try:
        return await asyncio.wait_for(bus.dispatch(event), seconds)
    except TimeoutError as error:
        return partial_result(error)


def test_ex3_passes_on_the_solution_and_on_wait_for() -> None:
    assert check.ex3(dispatch_within_solution).passed
    assert check.ex3(dispatch_within_wait_for).passed


def test_ex3_says_the_stub_ran_past_the_limit() -> None:
    feedback = check.ex3(dispatch_within_stub)
    assert not feedback.passed
    assert "the dispatch ran until 1 s; it should stop at 0.35 s" in feedback.message


def test_ex3_asks_for_the_partial_result_instead_of_nothing() -> None:
    feedback = check.ex3(dispatch_within_giving_up)
    assert not feedback.passed and "returned None" in feedback.message
    assert "partial_result(error)" in feedback.hint


async def dispatch_within_catching_cancelled(
    bus: AsyncEventBus, event: object, seconds: float
) -> DispatchResult | None:
    try:
        async with asyncio.timeout(seconds):
            return await bus.dispatch(event)
    except asyncio.CancelledError as error:  # asyncio.timeout raises TimeoutError instead
        return partial_result(error)


async def dispatch_within_cancelling_by_hand(
    bus: AsyncEventBus, event: object, seconds: float
) -> DispatchResult:
    task = asyncio.ensure_future(bus.dispatch(event))
    await asyncio.sleep(seconds)
    task.cancel()
    return await task  # the CancelledError goes out


def test_ex3_explains_a_timeout_error_let_out() -> None:
    feedback = check.ex3(dispatch_within_catching_cancelled)
    not_yet(feedback, "let a TimeoutError out at 0.35 s", "`except TimeoutError as error:`")
    assert "running your code raised" not in feedback.message


def test_ex3_explains_a_cancelled_error_let_out() -> None:
    not_yet(check.ex3(dispatch_within_cancelling_by_hand), "let a CancelledError out at 0.35 s")


# ---------------------------------------------------------------------- exercise 4


def one_per_item_solution(handler: Any) -> Any:
    from collections import defaultdict

    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def guarded(event: Any) -> Any:
        async with locks[event.item]:
            return await handler(event)

    return guarded


def one_per_item_stub(handler: Any) -> Any:
    async def guarded(event: Any) -> Any:
        return await handler(event)

    return guarded


def one_lock_for_everything(handler: Any) -> Any:
    lock = asyncio.Lock()

    async def guarded(event: Any) -> Any:
        async with lock:
            return await handler(event)

    return guarded


def a_new_lock_each_call(handler: Any) -> Any:
    async def guarded(event: Any) -> Any:
        async with asyncio.Lock():
            return await handler(event)

    return guarded


def swallowing_the_sold_out(handler: Any) -> Any:
    inner = one_per_item_solution(handler)

    async def guarded(event: Any) -> Any:
        try:
            return await inner(event)
        except check.SoldOutError:
            return None

    return guarded


def test_ex4_passes_on_the_solution_twice() -> None:
    for _ in range(2):  # a fresh loop each time: locks made per wrap never cross loops
        feedback = check.ex4(one_per_item_solution)
        assert feedback.passed, feedback


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (one_per_item_stub, "both o-1 and o-2 bought it"),
        (a_new_lock_each_call, "both o-1 and o-2 bought it"),
        (one_lock_for_everything, "it waited for the book orders"),
        (swallowing_the_sold_out, "o-2 should fail as sold out"),
        (lambda handler: handler.__name__, "return an `async def` function"),
    ],
    ids=["stub", "new lock per call", "one lock", "swallows sold out", "not a function"],
)
def test_ex4_explains_each_wrong_guard(answer: Any, words: str) -> None:
    feedback = check.ex4(answer)
    assert not feedback.passed and words in feedback.message, feedback


def locks_shared_by_every_wrap() -> Callable[[Any], Any]:
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # as if at module level

    def one_per_item(handler: Any) -> Any:
        async def guarded(event: Any) -> Any:
            async with locks[event.item]:
                return await handler(event)

        return guarded

    return one_per_item


def one_lock_per_order(handler: Any) -> Any:
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def guarded(event: Any) -> Any:
        async with locks[event.order_id]:
            return await handler(event)

    return guarded


def a_threading_lock_per_item(handler: Any) -> Any:
    locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    async def guarded(event: Any) -> Any:
        with locks[event.item]:  # the second sale blocks the loop's thread for good
            return await handler(event)

    return guarded


def a_plain_guard(handler: Any) -> Any:
    def guarded(event: Any) -> Any:
        return handler(event)

    return guarded


def test_ex4_refuses_locks_that_outlive_their_event_loop_on_every_call() -> None:
    one_per_item = locks_shared_by_every_wrap()
    for _ in range(2):  # the first call already sees it: the check sells on two loops
        feedback = check.ex4(one_per_item)
        not_yet(feedback, "bound to a different event loop", "make the locks inside one_per_item")
        assert "0x" not in repr(feedback)  # no memory address in a saved output


def test_ex4_hint_names_a_lock_per_order() -> None:
    not_yet(check.ex4(one_lock_per_order), "both o-1 and o-2 bought it", "one per order")


def test_ex4_gives_up_on_a_guard_that_blocks_the_thread_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check, "WATCHDOG_SECONDS", 0.5)
    not_yet(
        check.ex4(a_threading_lock_per_item),
        "still not done after 0.5 s of real time",
        "a threading.Lock blocks the thread",
    )


def test_ex4_says_a_plain_guard_is_a_plain_function() -> None:
    not_yet(check.ex4(a_plain_guard), "returned a plain function")


async def dispatch_within_returning_the_task(
    bus: AsyncEventBus, event: object, seconds: float
) -> Any:
    return asyncio.ensure_future(bus.dispatch(event))  # a Task: its repr has memory addresses


def test_ex3_shows_a_wrong_return_value_without_memory_addresses() -> None:
    feedback = check.ex3(dispatch_within_returning_the_task)
    not_yet(feedback, "with time to spare, dispatch_within returned <Task")
    assert "0x" not in feedback.message
