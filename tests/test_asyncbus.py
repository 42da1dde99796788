"""The async bus, specified by example: the same registrations and cascades as the core,
handlers that wait, handlers that overlap in (virtual) time, cancellation, and backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson import BaseBus, CascadeLimitError, DispatchResult, EventBus
from eda_lesson.core.asyncbus import (
    AsyncEventBus,
    Concurrency,
    EventQueue,
    HandlerCancelledError,
    partial_result,
)
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import (
    DeadLetterStore,
    RetriesExhaustedError,
    dead_letters,
    fixed,
    idempotent,
    retry,
    timeout,
)
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.services import Shop


@dataclass(frozen=True)
class Paid:
    order_id: str


@dataclass(frozen=True)
class ShipmentRequested:
    order_id: str


@dataclass(frozen=True)
class Shipped:
    order_id: str


MODES = ["sequential", "concurrent"]
T = TypeVar("T")


def sleeper(name: str, seconds: float, log: list[str] | None = None) -> Callable[[Any], Any]:
    """An async handler that waits ``seconds`` (like a call to a slow service)."""

    async def handle(event: object) -> None:
        if log is not None:
            log.append(f"{name} starts")
        await asyncio.sleep(seconds)
        if log is not None:
            log.append(f"{name} ends")

    handle.__qualname__ = name
    return handle


def run(main: Awaitable[T], clock: VirtualClock | None = None) -> T:
    return (clock or VirtualClock()).run(main)


def spans(result: DispatchResult) -> list[tuple[str, float | None, float | None]]:
    return [(call.name, call.started, call.ended) for call in result.calls]


# ---------------------------------------------------------------------- the same API


def test_it_registers_like_the_core_bus_and_says_what_it_is() -> None:
    bus = AsyncEventBus(concurrency="concurrent")

    @bus.subscribe
    async def charge_card(event: Paid) -> None: ...

    def send_receipt(event: Paid) -> None: ...

    assert bus.register(Paid, send_receipt) is send_receipt
    assert isinstance(bus, BaseBus) and not isinstance(bus, EventBus)  # siblings
    assert bus.handlers_for(Paid) == [charge_card, send_receipt]
    bus.unregister(Paid, send_receipt)
    assert bus.handlers_for(Paid(order_id="o-1")) == [charge_card]
    assert repr(bus) == "AsyncEventBus(concurrent, 1 handler for 1 event type)"
    assert bus.describe().splitlines() == [
        "AsyncEventBus with 1 handler for 1 event type",
        "  Paid",
        "    -> test_it_registers_like_the_core_bus_and_says_what_it_is.charge_card",
        "  handlers of one event run: concurrent",
    ]


def test_async_and_plain_handlers_both_run_and_are_recorded() -> None:
    bus, seen = AsyncEventBus(), []

    async def charge_card(event: Paid) -> None:
        await asyncio.sleep(0.1)
        seen.append("charged")

    bus.register(Paid, charge_card)
    bus.register(Paid, lambda event: seen.append("logged"))
    result = run(bus.dispatch(Paid("o-1")))
    assert seen == ["charged", "logged"]
    assert result.ok and [call.step for call in result.calls] == [1, 2]


def test_the_shops_plain_handlers_run_unchanged_on_the_async_bus() -> None:
    bus, shop = AsyncEventBus(), Shop(stock={"book": 2})
    shop.register(bus)
    run(bus.dispatch(OrderCreated("o-1", "c-7", 42.0)))
    result = run(bus.dispatch(OrderPaid("o-1", 42.0)))
    assert len(result.events) == 3 and shop.orders.status["o-1"] == "shipped"


def test_concurrency_must_be_one_of_the_two_modes() -> None:
    with pytest.raises(ValueError, match='"sequential" or "concurrent"'):
        AsyncEventBus(concurrency="parallel")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- time


def test_sequential_handlers_run_one_after_another() -> None:
    bus = AsyncEventBus()
    bus.register(Paid, sleeper("charge_card", 0.3))
    bus.register(Paid, sleeper("send_receipt", 0.2))
    result = run(bus.dispatch(Paid("o-1")))
    assert spans(result) == [("charge_card", 0.0, 0.3), ("send_receipt", 0.3, 0.5)]
    assert result.timed


def test_concurrent_handlers_overlap_and_the_event_is_done_sooner() -> None:
    clock, bus = VirtualClock(), AsyncEventBus(concurrency="concurrent")
    bus.register(Paid, sleeper("charge_card", 0.3))
    bus.register(Paid, sleeper("send_receipt", 0.2))
    result = run(bus.dispatch(Paid("o-1")), clock)
    assert spans(result) == [("charge_card", 0.0, 0.3), ("send_receipt", 0.0, 0.2)]
    assert clock.now() == 0.3  # not 0.5


def test_a_slow_handler_does_not_block_a_concurrent_one() -> None:
    bus, log = AsyncEventBus(concurrency="concurrent"), list[str]()
    bus.register(Paid, sleeper("slow_report", 10.0, log))
    bus.register(Paid, sleeper("quick_email", 0.1, log))
    result = run(bus.dispatch(Paid("o-1")))
    assert log == [
        "slow_report starts",
        "quick_email starts",
        "quick_email ends",
        "slow_report ends",
    ]
    assert result.calls[1].ended == 0.1


def test_a_plain_handler_blocks_the_loop_even_in_concurrent_mode() -> None:
    clock = VirtualClock()
    bus = AsyncEventBus(concurrency="concurrent")

    def blocking_report(event: Paid) -> None:
        clock.sleep(1.0)  # blocking work: nothing else runs meanwhile

    bus.register(Paid, sleeper("quick_email", 0.1))
    bus.register(Paid, blocking_report)
    result = run(bus.dispatch(Paid("o-1")), clock)
    assert spans(result)[0] == ("quick_email", 0.0, 1.0)  # its 0.1 s were over, unnoticed


def test_a_cascade_runs_the_same_way_every_time() -> None:
    def one_run() -> list[tuple[str, float | None, float | None]]:
        bus = AsyncEventBus(concurrency="concurrent")
        bus.register(Paid, sleeper("charge_card", 0.3))
        bus.register(Paid, lambda event: ShipmentRequested(event.order_id))
        bus.register(ShipmentRequested, sleeper("ship", 0.25))
        return spans(run(bus.dispatch(Paid("o-1"))))

    assert (
        one_run()
        == one_run()
        == [
            ("charge_card", 0.0, 0.3),
            ("test_a_cascade_runs_the_same_way_every_time.one_run.<lambda>", 0.0, 0.0),
            ("ship", 0.3, 0.55),
        ]
    )


def test_times_come_from_the_clock_given_to_the_bus() -> None:
    clock = VirtualClock(start=100.0)
    bus = AsyncEventBus(clock=clock)
    bus.register(Paid, lambda event: clock.sleep(2.0))
    result = asyncio.run(bus.dispatch(Paid("o-1")))  # a real loop; the times are the clock's
    assert spans(result)[0][1:] == (100.0, 102.0)


def test_an_untimed_bus_records_no_times() -> None:
    bus = AsyncEventBus(timed=False)
    bus.register(Paid, sleeper("charge_card", 0.3))
    result = run(bus.dispatch(Paid("o-1")))
    assert [(call.started, call.ended) for call in result.calls] == [(None, None)]
    assert not result.timed


def test_each_quiet_dispatch_keeps_its_own_times() -> None:
    bus = AsyncEventBus()
    bus.register(Paid, sleeper("charge_card", 0.5))

    async def twice() -> tuple[Any, Any]:
        return await bus.dispatch(Paid("o-1")), await bus.dispatch(Paid("o-2"))

    first, second = run(twice())
    assert spans(first) == [("charge_card", 0.0, 0.5)]
    assert spans(second) == [("charge_card", 0.5, 1.0)]


# ---------------------------------------------------------------------- cascades


@pytest.mark.parametrize("mode", MODES)
def test_events_a_handler_returns_are_handled_after_the_current_events_handlers(
    mode: Concurrency,
) -> None:
    bus, log = AsyncEventBus(concurrency=mode), list[str]()

    async def request_shipment(event: Paid) -> ShipmentRequested:
        await asyncio.sleep(0.2)
        return ShipmentRequested(event.order_id)

    bus.register(Paid, request_shipment)
    bus.register(Paid, sleeper("send_receipt", 0.1, log))
    bus.register(ShipmentRequested, sleeper("ship", 0.1, log))
    result = run(bus.dispatch(Paid("o-1")))
    assert log == ["send_receipt starts", "send_receipt ends", "ship starts", "ship ends"]
    assert [record.type_name for record in result.events] == ["Paid", "ShipmentRequested"]
    assert result.events[1].caused_by == 1


def test_produced_events_queue_in_registration_order_not_finishing_order() -> None:
    bus = AsyncEventBus(concurrency="concurrent")

    async def slow(event: Paid) -> ShipmentRequested:
        await asyncio.sleep(0.5)
        return ShipmentRequested("from slow")

    async def fast(event: Paid) -> Shipped:
        await asyncio.sleep(0.1)
        return Shipped("from fast")

    bus.register(Paid, slow)
    bus.register(Paid, fast)
    result = run(bus.dispatch(Paid("o-1")))
    assert [record.event for record in result.events[1:]] == [
        ShipmentRequested("from slow"),
        Shipped("from fast"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_handler_can_dispatch_with_await_or_without(mode: Concurrency) -> None:
    bus = AsyncEventBus(concurrency=mode)

    async def async_sender(event: Paid) -> None:
        await asyncio.sleep(0.1)
        queued = await bus.dispatch(ShipmentRequested(event.order_id))
        assert queued.event == event  # the running cascade's result

    def plain_sender(event: Paid) -> None:
        _ = bus.dispatch(Shipped(event.order_id))  # no await needed: it is queued at once

    bus.register(Paid, async_sender)
    bus.register(Paid, plain_sender)
    result = run(bus.dispatch(Paid("o-1")))
    assert [(r.type_name, r.caused_by) for r in result.events] == [
        ("Paid", None),
        ("ShipmentRequested", 1),
        ("Shipped", 2),
    ]


def test_two_dispatches_running_at_once_keep_their_cascades_apart() -> None:
    bus = AsyncEventBus()

    async def request_shipment(event: Paid) -> None:
        await asyncio.sleep(0.1 if event.order_id == "o-1" else 0.05)
        await bus.dispatch(ShipmentRequested(event.order_id))

    bus.register(Paid, request_shipment)
    bus.register(ShipmentRequested, sleeper("ship", 0.1))

    async def both() -> tuple[DispatchResult, DispatchResult]:
        return await asyncio.gather(bus.dispatch(Paid("o-1")), bus.dispatch(Paid("o-2")))

    first, second = run(both())
    assert [r.event for r in first.events] == [Paid("o-1"), ShipmentRequested("o-1")]
    assert [r.event for r in second.events] == [Paid("o-2"), ShipmentRequested("o-2")]


def test_a_task_a_handler_starts_joins_the_cascade_only_while_it_runs() -> None:
    bus = AsyncEventBus()
    background: list[asyncio.Task[DispatchResult]] = []

    async def start_background_work(event: Paid) -> None:
        async def later() -> DispatchResult:
            await asyncio.sleep(1.0)  # long after the cascade finished
            return await bus.dispatch(Shipped(event.order_id))

        background.append(asyncio.get_running_loop().create_task(later()))

    bus.register(Paid, start_background_work)

    async def main() -> tuple[DispatchResult, DispatchResult]:
        result = await bus.dispatch(Paid("o-1"))
        return result, await background[0]

    result, late = run(main())
    assert len(result.events) == 1  # the late event did not slip into a finished cascade
    assert late.event == Shipped("o-1")  # it started a cascade of its own


@pytest.mark.parametrize("mode", MODES)
def test_failures_are_isolated_and_recorded_in_both_modes(mode: Concurrency) -> None:
    bus, log = AsyncEventBus(concurrency=mode), list[str]()

    async def charge_card(event: Paid) -> None:
        await asyncio.sleep(0.1)
        raise ConnectionError("bank unreachable")

    bus.register(Paid, charge_card)
    bus.register(Paid, sleeper("send_receipt", 0.2, log))
    result = run(bus.dispatch(Paid("o-1")))
    assert not result.ok and log == ["send_receipt starts", "send_receipt ends"]
    (failure,) = result.failures
    assert failure.name.endswith("charge_card") and isinstance(failure.error, ConnectionError)
    assert failure.ended == 0.1


@pytest.mark.parametrize("mode", MODES)
def test_fail_fast_raises_the_first_failure(mode: Concurrency) -> None:
    bus = AsyncEventBus(fail_fast=True, concurrency=mode)

    async def charge_card(event: Paid) -> None:
        raise ConnectionError("bank unreachable")

    bus.register(Paid, charge_card)
    bus.register(Paid, sleeper("send_receipt", 0.2))
    with pytest.raises(ConnectionError, match="bank unreachable"):
        run(bus.dispatch(Paid("o-1")))


def test_an_event_nobody_listens_to_is_recorded_as_unhandled() -> None:
    result = run(AsyncEventBus().dispatch(Paid("o-1")))
    assert result.ok and [record.type_name for record in result.unhandled] == ["Paid"]


def test_the_cascade_limit_stops_handlers_that_answer_each_other() -> None:
    bus = AsyncEventBus(max_cascade=20)
    bus.register(Paid, lambda event: Paid(event.order_id))
    with pytest.raises(CascadeLimitError):
        run(bus.dispatch(Paid("o-1")))


def test_dispatch_asks_for_an_event_instance() -> None:
    with pytest.raises(TypeError, match=r"create one first: dispatch\(Paid\(...\)\)"):
        run(AsyncEventBus().dispatch(Paid))


@settings(max_examples=40, deadline=None)
@given(
    fanout=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=6),
    failing=st.sets(st.integers(min_value=0, max_value=6)),
    concurrent=st.booleans(),
)
def test_the_async_bus_tells_the_same_story_as_the_core_bus(
    fanout: list[int], failing: set[int], concurrent: bool
) -> None:
    """Same handlers, same event: the same events, calls, causes and failures in the same order."""

    @dataclass(frozen=True)
    class Step:
        level: int
        branch: int = 0

    def branch(event: Step) -> list[Step]:
        if event.level in failing:
            raise ValueError(f"level {event.level}")
        if event.level >= len(fanout):
            return []
        return [Step(event.level + 1, n) for n in range(fanout[event.level])]

    def also(event: Step) -> None:
        pass

    async def also_waiting(event: Step) -> None:  # the same, taking time: later branches first
        await asyncio.sleep(0.01 * (3 - event.branch))

    also_waiting.__qualname__ = also.__qualname__

    def build(bus: EventBus, second: Callable[[Step], Any]) -> EventBus:
        bus.register(Step, branch)
        bus.register(Step, second)
        return bus

    def story(result: Any) -> tuple[Any, ...]:
        calls = [(c.event_index, c.name, c.produced, repr(c.error)) for c in result.calls]
        events = [(e.event, e.depth, e.caused_by, e.handled_by) for e in result.events]
        return tuple(calls), tuple(events)

    core = build(EventBus(), also).dispatch(Step(0))
    bus = AsyncEventBus(concurrency="concurrent" if concurrent else "sequential")
    build(bus, also_waiting)
    assert story(run(bus.dispatch(Step(0)))) == story(core)


# ---------------------------------------------------------------------- cancellation and timeouts


def three_step_bus(mode: Concurrency) -> AsyncEventBus:
    bus = AsyncEventBus(concurrency=mode)
    bus.register(Paid, sleeper("charge_card", 0.3))
    bus.register(Paid, sleeper("send_receipt", 0.5))
    bus.register(Paid, sleeper("update_ledger", 0.2))
    return bus


def test_a_cancelled_dispatch_raises_but_reports_what_ran() -> None:
    bus = three_step_bus("sequential")

    async def cancel_midway() -> Any:
        task = asyncio.get_running_loop().create_task(bus.dispatch(Paid("o-1")))
        await asyncio.sleep(0.4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as caught:
            await task
        return caught.value

    error = run(cancel_midway())
    result = partial_result(error)
    assert result is not None and not result.is_complete()
    assert spans(result) == [("charge_card", 0.0, 0.3), ("send_receipt", 0.3, 0.4)]
    assert result.calls[0].ok and isinstance(result.calls[1].error, HandlerCancelledError)
    assert "partial_result(error)" in error.__notes__[0]


def test_a_dispatch_stopped_by_asyncio_timeout_reports_through_the_timeout_error() -> None:
    bus = three_step_bus("sequential")

    async def impatient() -> BaseException:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.35):
                await bus.dispatch(Paid("o-1"))
        return caught.value

    result = partial_result(run(impatient()))
    assert result is not None
    assert [(c.name, c.ok) for c in result.calls] == [
        ("charge_card", True),
        ("send_receipt", False),
    ]
    assert "send_receipt was cancelled while it ran" in str(result.calls[1].error)


def test_a_cancelled_concurrent_dispatch_marks_the_calls_still_running() -> None:
    bus = three_step_bus("concurrent")

    async def impatient() -> BaseException:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.25):
                await bus.dispatch(Paid("o-1"))
        return caught.value

    result = partial_result(run(impatient()))
    assert result is not None
    assert spans(result) == [
        ("charge_card", 0.0, 0.25),
        ("send_receipt", 0.0, 0.25),
        ("update_ledger", 0.0, 0.2),
    ]
    assert [call.ok for call in result.calls] == [False, False, True]


def test_partial_result_is_none_for_other_errors() -> None:
    assert partial_result(ValueError("not a dispatch")) is None


def test_a_handler_that_takes_too_long_fails_with_a_timeout() -> None:
    bus, log = AsyncEventBus(middleware=[timeout(0.5)]), list[str]()
    bus.register(Paid, sleeper("slow_bank", 5.0))
    bus.register(Paid, sleeper("send_receipt", 0.1, log))
    result = run(bus.dispatch(Paid("o-1")))
    (failure,) = result.failures
    assert isinstance(failure.error, TimeoutError)
    assert str(failure.error) == "slow_bank did not finish within 0.5 s"
    assert (failure.started, failure.ended) == (0.0, 0.5)
    assert log == ["send_receipt starts", "send_receipt ends"]


def test_a_handlers_own_timeout_error_is_not_relabelled() -> None:
    bus = AsyncEventBus(middleware=[timeout(5.0)])

    async def impatient_client(event: Paid) -> None:
        raise TimeoutError("the bank said: try later")

    bus.register(Paid, impatient_client)
    (failure,) = run(bus.dispatch(Paid("o-1"))).failures
    assert str(failure.error) == "the bank said: try later"


def test_timeout_leaves_plain_handlers_alone() -> None:
    clock = VirtualClock()
    bus = AsyncEventBus(middleware=[timeout(0.5)])
    bus.register(Paid, lambda event: clock.sleep(2.0))
    assert run(bus.dispatch(Paid("o-1")), clock).ok


def test_each_retry_attempt_gets_its_own_timeout() -> None:
    calls = []

    async def slow_then_quick(event: Paid) -> None:
        calls.append(event)
        await asyncio.sleep(5.0 if len(calls) < 3 else 0.1)

    bus = AsyncEventBus()
    policy = retry(3, backoff=fixed(1.0), retry_on=TimeoutError)
    bus.register(Paid, slow_then_quick, middleware=[policy, timeout(0.5)])
    result = run(bus.dispatch(Paid("o-1")))
    assert result.ok
    assert [(a.started, a.ended, a.ok) for a in policy.log] == [
        (0.0, 0.5, False),
        (1.5, 2.0, False),
        (3.0, 3.1, True),
    ]
    assert spans(result)[0][1:] == (0.0, 3.1)


# ---------------------------------------------------------------------- failure handling middleware


def test_retries_and_dead_letters_work_on_async_handlers_in_virtual_time() -> None:
    clock, store, bank_up = VirtualClock(), DeadLetterStore(), [False]

    async def charge_card(event: Paid) -> ShipmentRequested:
        await asyncio.sleep(0.5)
        if not bank_up[0]:
            raise ConnectionError("bank unreachable")
        return ShipmentRequested(event.order_id)

    shipped: list[object] = []
    bus = AsyncEventBus(middleware=[dead_letters(store), retry(3, retry_on=ConnectionError)])
    bus.register(Paid, charge_card)
    bus.register(ShipmentRequested, shipped.append)
    result = run(bus.dispatch(Paid("o-1")), clock)
    assert isinstance(result.failures[0].error, RetriesExhaustedError)
    (letter,) = store
    assert [(a.started, a.ended) for a in letter.attempts] == [(0.0, 0.5), (1.5, 2.0), (4.0, 4.5)]

    bank_up[0] = True
    (outcome,) = run(store.replay_async(bus), clock)
    assert outcome.ok and len(store) == 0 and shipped == [ShipmentRequested("o-1")]


def test_replaying_through_the_async_bus_asks_for_replay_async() -> None:
    store = DeadLetterStore()
    bus = AsyncEventBus(middleware=[dead_letters(store)])

    async def charge_card(event: Paid) -> None:
        raise ConnectionError("bank unreachable")

    bus.register(Paid, charge_card)
    run(bus.dispatch(Paid("o-1")))
    with pytest.raises(TypeError, match=r"await store\.replay_async\(bus\)"):
        store.replay(bus)
    (outcome,) = store.replay(charge_card)  # an async function called without awaiting
    assert isinstance(outcome.error, TypeError) and "replay_async" in str(outcome.error)
    assert len(store) == 1


def test_an_idempotent_async_handler_handles_a_duplicate_once() -> None:
    bus, charged = AsyncEventBus(), []

    async def charge_card(event: Paid) -> None:
        await asyncio.sleep(0.1)
        charged.append(event)

    bus.register(Paid, charge_card, middleware=[idempotent(key=lambda event: event.order_id)])

    async def deliver_twice() -> None:
        await bus.dispatch(Paid("o-1"))
        await bus.dispatch(Paid("o-1"))

    run(deliver_twice())
    assert charged == [Paid("o-1")]


# ---------------------------------------------------------------------- the bounded queue


def test_a_full_queue_makes_publishers_wait_for_the_workers() -> None:
    bus = AsyncEventBus()
    bus.register(Paid, sleeper("charge_card", 1.0))

    async def burst() -> EventQueue:
        async with bus.queue(maxsize=2) as queue:
            for n in range(6):
                await queue.publish(Paid(f"o-{n}"))
        return queue

    queue = run(burst())
    assert queue.peak <= 2
    assert [(p.asked, p.accepted) for p in queue.published] == [
        (0.0, 0.0),
        (0.0, 0.0),
        (0.0, 0.0),
        (0.0, 1.0),  # the queue was full: the publisher waited for a worker to take one
        (1.0, 2.0),
        (2.0, 3.0),
    ]
    assert [p.waited for p in queue.published] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert [spans(r)[0][1:] for r in queue.results] == [(t, t + 1.0) for t in range(6)]
    assert repr(queue) == "EventQueue(maxsize=2, 1 worker, 6 published, 6 dispatched)"


def test_one_worker_handles_events_in_the_order_published() -> None:
    bus, log = AsyncEventBus(), []

    async def handle(event: Paid) -> None:
        await asyncio.sleep(1.0 if event.order_id == "o-0" else 0.1)
        log.append(event.order_id)

    bus.register(Paid, handle)

    async def publish_three() -> None:
        async with bus.queue(maxsize=1) as queue:
            for n in range(3):
                await queue.publish(Paid(f"o-{n}"))

    run(publish_three())
    assert log == ["o-0", "o-1", "o-2"]


def test_with_several_workers_the_order_is_no_longer_guaranteed() -> None:
    bus, log = AsyncEventBus(), []

    async def handle(event: Paid) -> None:
        await asyncio.sleep(1.0 if event.order_id == "o-0" else 0.1)
        log.append(event.order_id)

    bus.register(Paid, handle)

    async def publish_three() -> None:
        async with bus.queue(workers=2) as queue:
            for n in range(3):
                await queue.publish(Paid(f"o-{n}"))

    run(publish_three())
    assert log == ["o-1", "o-2", "o-0"]


def test_a_queue_is_used_inside_its_async_with_block() -> None:
    bus = AsyncEventBus()

    async def misuse() -> None:
        queue = bus.queue(maxsize=1)
        with pytest.raises(RuntimeError, match=r"async with bus\.queue"):
            await queue.publish(Paid("o-1"))
        async with queue:
            await queue.publish(Paid("o-1"))
        with pytest.raises(RuntimeError, match="closed"):
            await queue.publish(Paid("o-2"))
        with pytest.raises(RuntimeError, match="runs once"):
            async with queue:
                pass

    run(misuse())


def test_queue_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        AsyncEventBus().queue(maxsize=-1)
    with pytest.raises(ValueError, match="workers"):
        AsyncEventBus().queue(workers=0)
