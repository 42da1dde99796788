"""The async event bus: the same registrations, handlers that may wait, handlers that overlap.

:class:`AsyncEventBus` is an :class:`~eda_lesson.bus.EventBus` whose ``dispatch`` is
awaited. Registration, ``subscribe``, middleware, call order and plans are the core's own;
what changes is how a cascade runs:

- Handlers may be ``async def`` (awaited) or plain functions (called; they block the loop
  while they run, exactly as they would anywhere in asyncio).
- ``concurrency="sequential"`` runs an event's handlers one after another;
  ``concurrency="concurrent"`` starts them all at once in an :class:`asyncio.TaskGroup`
  and waits for all. Either way the cascade stays breadth-first: event ``n + 1`` starts
  once every handler of event ``n`` is done, and the events a handler produced join the
  queue in the handlers' registration order, not in the order they happened to finish, so
  both modes tell the same story in the same order (only the times differ).
- Failures are isolated and recorded as in the core. The result also records when each
  handler call started and ended (``HandlerCall.started``/``ended``) on the bus's clock:
  the one given, else the clock the code runs on (virtual inside ``VirtualClock.run``,
  real monotonic time elsewhere; see :func:`~eda_lesson.clock.current_clock`).
- Each dispatch keeps its cascade in a context variable, as the core keeps one per thread,
  so dispatches running in different tasks never mix. Inside a handler,
  ``bus.dispatch(event)`` (awaited or not: a plain handler can call it too) queues the event
  in the running cascade.
- A cancelled dispatch (``task.cancel()``, ``asyncio.timeout``) still raises, as asyncio
  code must, and keeps the record of what ran: ``partial_result(error)`` returns it. Calls
  that were running when it was cancelled failed with :class:`HandlerCancelledError`;
  handlers that never started are left out.
- :meth:`AsyncEventBus.queue` puts a bounded queue in front of the bus: ``publish`` waits
  while the queue is full (backpressure) and workers dispatch the events in order.

Virtual time: :meth:`VirtualClock.run <eda_lesson.clock.VirtualClock.run>` runs a coroutine
on :class:`VirtualTimeLoop`, an ordinary asyncio loop whose clock is virtual. Handlers wait
with plain ``await asyncio.sleep(0.3)``; when every task is waiting the loop jumps to the next
deadline instead of sleeping. So concurrent handlers really run concurrently in asyncio, and
their start and end times come out exact and the same on every run:

>>> import asyncio
>>> from dataclasses import dataclass
>>> from eda_lesson.clock import VirtualClock
>>> @dataclass(frozen=True)
... class OrderPaid:
...     order_id: str
>>> async def charge_card(event: OrderPaid) -> None:
...     await asyncio.sleep(0.3)
>>> async def send_receipt(event: OrderPaid) -> None:
...     await asyncio.sleep(0.2)
>>> bus = AsyncEventBus(concurrency="concurrent")
>>> _ = bus.register(OrderPaid, charge_card), bus.register(OrderPaid, send_receipt)
>>> result = VirtualClock().run(bus.dispatch(OrderPaid("o-1")))
>>> [(call.name, call.started, call.ended) for call in result.calls]
[('charge_card', 0.0, 0.3), ('send_receipt', 0.0, 0.2)]

This module does not run handlers in threads or processes, and does not retry (the
middleware in :mod:`eda_lesson.middleware` works here too).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from inspect import isawaitable
from types import CoroutineType, TracebackType
from typing import Any, Literal, Protocol, TypeVar

from eda_lesson.bus import EventBus, Middleware, Subscription, checked_event
from eda_lesson.clock import Clock, VirtualClock, running_clock
from eda_lesson.result import CascadeLog, DispatchResult, HandlerCall, Plan, describe_value

__all__ = [
    "AsyncEventBus",
    "Concurrency",
    "EventQueue",
    "HandlerCancelledError",
    "Publication",
    "TimedDispatchResult",
    "VirtualTimeLoop",
    "partial_result",
    "run_on_clock",
]

T = TypeVar("T")

Concurrency = Literal["sequential", "concurrent"]

_PARTIAL_RESULT = "partial_result"  # the attribute a cancelled dispatch sets on the error


class HandlerCancelledError(Exception):
    """A handler call was still running when its dispatch was cancelled."""


class _Inbox(Protocol):
    """Where a running handler's dispatches go: the cascade's result (sequential mode), or
    its own call record (concurrent mode). ``running`` is False once that is over."""

    running: bool

    def enqueue_from_handler(self, event: object) -> DispatchResult: ...


class _Call:
    """One handler call running in a task of its own (concurrent mode), and how it went.

    Its task's context points the bus at this record while it runs, so events the handler
    dispatches are credited to this call rather than to a sibling.
    """

    __slots__ = ("ended", "error", "finished", "inbox", "produced", "result", "running", "started")

    def __init__(self, result: DispatchResult) -> None:
        self.result = result
        self.inbox: list[object] = []
        self.started: float | None = None
        self.ended: float | None = None
        self.produced: object = None
        self.error: Exception | None = None
        self.finished = False
        self.running = True

    def enqueue_from_handler(self, event: object) -> DispatchResult:
        self.inbox.append(event)
        return self.result

    async def run(
        self,
        cascade: ContextVar[_Inbox | None],
        call: Callable[[Any], Any],
        event: object,
        now: Callable[[], float] | None,
    ) -> None:
        cascade.set(self)  # in this task's own copy of the context: no need to reset
        if now is not None:
            self.started = now()
        try:
            produced = call(event)
            if produced is not None and _is_awaitable(produced):
                produced = await produced
            self.produced = produced
        except Exception as error:
            self.error = error
        self.finished = True
        if now is not None:
            self.ended = now()


class TimedDispatchResult(DispatchResult):
    """A :class:`~eda_lesson.result.DispatchResult` that holds the times of a quiet dispatch.

    The core creates a cascade log only when a handler produces an event or fails; a quiet
    dispatch (one event, every handler returned None) has none. Its handler times wait here
    as a flat list (start, end, start, end... in plan order) and move into a log the first
    time somebody reads the calls, so recording them costs a list instead of a log.
    """

    __slots__ = ("running", "times")

    times: list[float] | None
    running: bool
    """True while the cascade runs (handlers' dispatches join it)."""

    def _log_times(self) -> None:
        times = self.times
        if times:
            self.times = None
            log = self.cascade_log()
            log.finished = True
            _store_times(log, 0, self.plan, times, None)

    @property
    def calls(self) -> tuple[HandlerCall, ...]:
        self._log_times()
        return super().calls

    @property
    def timed(self) -> bool:
        self._log_times()
        return super().timed


class _Queued(Coroutine[Any, Any, DispatchResult]):
    """What ``dispatch`` returns inside a handler: the event is queued already, so a plain
    handler need not await it (and no "never awaited" warning follows); awaiting it gives
    the running cascade's result at once. A coroutine in type, so that ``dispatch`` always
    returns one (``asyncio.create_task(bus.dispatch(event))`` type-checks)."""

    __slots__ = ("result",)

    def __init__(self, result: DispatchResult) -> None:
        self.result = result

    def __await__(self) -> Generator[Any, None, DispatchResult]:
        yield from ()
        return self.result

    def send(self, value: Any) -> Any:
        raise StopIteration(self.result)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise typ if val is None else val

    def close(self) -> None:
        pass


class AsyncEventBus(EventBus):
    """An event bus whose handlers may be ``async def``; ``await bus.dispatch(event)``.

    ``concurrency`` is ``"sequential"`` (an event's handlers one after another, the default)
    or ``"concurrent"`` (all at once, in a task group). ``clock`` gives the times recorded
    for each handler call (default: the clock the code runs on, which is virtual inside
    :meth:`VirtualClock.run <eda_lesson.clock.VirtualClock.run>`); ``timed=False`` skips
    recording them, for throughput. The other arguments are the core's.
    """

    def __init__(
        self,
        *,
        concurrency: Concurrency = "sequential",
        clock: Clock | None = None,
        timed: bool = True,
        fail_fast: bool = False,
        max_cascade: int = 1000,
        middleware: Iterable[Middleware] = (),
    ) -> None:
        if concurrency not in ("sequential", "concurrent"):
            raise ValueError(f'concurrency is "sequential" or "concurrent", got {concurrency!r}')
        super().__init__(fail_fast=fail_fast, max_cascade=max_cascade, middleware=middleware)
        self.concurrency: Concurrency = concurrency
        self.clock = clock
        self.timed = timed
        self._concurrent = concurrency == "concurrent"
        # The cascade running in this task (or thread) on this bus, as the core keeps one per
        # thread: a handler's dispatch joins it. Tasks copy their context when created, so a
        # task a handler starts joins the cascade too while it still runs.
        self._cascade_here: ContextVar[_Inbox | None] = ContextVar(
            "eda_lesson_async_cascade", default=None
        )

    # ------------------------------------------------------------------ dispatch

    # The core's dispatch returns the result; this one returns something to await. The
    # registration API is shared, so this is a subclass, and the override is deliberate.
    def dispatch(self, event: object) -> Coroutine[Any, Any, DispatchResult]:  # type: ignore[override]
        """Handle ``event`` and its whole cascade: ``result = await bus.dispatch(event)``.

        Called from inside a handler of this bus, the event joins the running cascade
        instead (after the current event's handlers) and nothing needs awaiting.
        """
        inbox = self._cascade_here.get()
        if inbox is not None and inbox.running:
            return _Queued(inbox.enqueue_from_handler(checked_event(event)))
        return self._cascade(event)

    async def _cascade(self, event: object) -> DispatchResult:
        try:
            plan = self._plans[type(event)]
        except KeyError:
            plan = self._plan_for_event(event)
        result = TimedDispatchResult()
        result.event = event
        result.plan = plan
        result.log = None
        result.times = None
        result.running = True
        now = (self.clock or running_clock.get()).now if self.timed else None
        read_clock = now or _no_clock  # only read when ``times`` is a list, i.e. when timed
        token = self._cascade_here.set(result)
        index = 0
        subscription: Subscription | None = None
        times: list[float] | None = None
        try:
            while True:
                if self._concurrent and len(plan) > 1:
                    await self._handle_concurrently(result, index, event, plan, now)
                else:
                    times = [] if now is not None else None
                    for subscription, call in plan:
                        if times is not None:
                            times.append(read_clock())
                        try:
                            produced = call(event)
                            # inlined _is_awaitable: this line runs for every handler call
                            if produced is not None and (
                                type(produced) is CoroutineType or isawaitable(produced)
                            ):
                                produced = await produced
                        except Exception as error:
                            produced = None
                            self._fail(result, index, subscription, error)
                        if times is not None:
                            times.append(read_clock())
                        if produced is not None or result.log is not None:
                            self._collect(result, index, subscription, produced)
                    subscription = None
                    if times:
                        if result.log is None:
                            result.times = times  # a quiet dispatch: see TimedDispatchResult
                        else:
                            _store_times(result.log, index, plan, times, None)
                        times = None
                if result.log is None:  # nothing was produced, nothing failed: the common case
                    return result
                index += 1
                if not self._next_in_queue(result.log, index):
                    return result
                event, plan = result.log.queue[index], result.log.plans[index]
        except asyncio.CancelledError as cancelled:
            if subscription is not None:
                _record_cancelled_in_turn(result, index, plan, subscription, times, now)
            _attach(cancelled, result)
            raise
        finally:
            result.running = False
            self._cascade_here.reset(token)

    async def _handle_concurrently(
        self,
        result: DispatchResult,
        index: int,
        event: object,
        plan: Plan,
        now: Callable[[], float] | None,
    ) -> None:
        """Start every handler of one event in its own task; record them in plan order."""
        calls = [_Call(result) for _ in plan]
        try:
            async with asyncio.TaskGroup() as group:
                for (_, call), record in zip(plan, calls, strict=True):
                    group.create_task(record.run(self._cascade_here, call, event, now))
        except asyncio.CancelledError:
            self._settle(result, index, plan, calls, now, cancelled=True)
            raise
        self._settle(result, index, plan, calls, now, cancelled=False)

    def _settle(
        self,
        result: DispatchResult,
        index: int,
        plan: Plan,
        calls: list[_Call],
        now: Callable[[], float] | None,
        *,
        cancelled: bool,
    ) -> None:
        log = result.cascade_log()
        for (subscription, _), record in zip(plan, calls, strict=True):
            record.running = False
            key = (index, subscription)
            if record.started is not None and now is not None:
                ended = record.ended if record.ended is not None else now()
                log.timings[key] = (record.started, ended)
            if not record.finished:
                log.errors[key] = _cancelled_error(subscription, record.started is not None)
            elif record.error is not None and cancelled:
                log.errors[key] = record.error
            elif record.error is not None:
                self._fail(result, index, subscription, record.error)
            log.inbox = record.inbox
            self._collect(result, index, subscription, record.produced)

    def clock_function(self) -> Callable[[], float]:
        """The function that reads the bus's clock: the one given, else the clock the code
        runs on (see :func:`~eda_lesson.clock.current_clock`)."""
        return (self.clock or running_clock.get()).now

    # ------------------------------------------------------------------ queue

    def queue(self, maxsize: int = 0, *, workers: int = 1) -> EventQueue:
        """A queue in front of this bus: ``async with bus.queue(maxsize=2) as queue:``.

        ``await queue.publish(event)`` waits while ``maxsize`` events are already waiting
        (0: never); ``workers`` tasks take events in order and dispatch each. With one
        worker events are handled in the order published; with more, they overlap.
        """
        return EventQueue(self, maxsize=maxsize, workers=workers)

    # ------------------------------------------------------------------ telling

    def describe(self) -> str:
        return f"{super().describe()}\n  handlers of one event run: {self.concurrency}"

    def __repr__(self) -> str:
        count = sum(len(subs) for subs in self._by_type.values())
        return (
            f"AsyncEventBus({self.concurrency}, {count} handlers "
            f"for {len(self._by_type)} event types)"
        )


def _is_awaitable(value: object) -> bool:
    return type(value) is CoroutineType or isawaitable(value)


def _cancelled_error(subscription: Subscription, started: bool) -> HandlerCancelledError:
    when = "while it ran" if started else "before it started"
    return HandlerCancelledError(
        f"{subscription.name} was cancelled {when}, because its dispatch was cancelled"
    )


def _record_cancelled_in_turn(
    result: DispatchResult,
    index: int,
    plan: Plan,
    subscription: Subscription,
    times: list[float] | None,
    now: Callable[[], float] | None,
) -> None:
    """Sequential mode: the call under way failed; the handlers after it never ran."""
    log = result.cascade_log()
    position = next(i for i, (s, _) in enumerate(plan) if s is subscription)
    log.plans[index] = Plan(plan[: position + 1])
    key = (index, subscription)
    log.errors[key] = _cancelled_error(subscription, started=True)
    if times:
        _store_times(log, index, plan, times, now)
    for event in log.inbox:  # what it dispatched before it was stopped, never handled
        log.enqueue(event, cause=key)
    log.inbox = []


def _store_times(
    log: CascadeLog,
    index: int,
    plan: Plan,
    times: list[float],
    now: Callable[[], float] | None,
) -> None:
    """Move (start, end) pairs, in plan order, into the log; a call still running (a start
    without an end) ends ``now()``."""
    for position, (subscription, _) in enumerate(plan[: (len(times) + 1) // 2]):
        started = times[2 * position]
        if 2 * position + 1 < len(times):
            ended = times[2 * position + 1]
        else:
            ended = now() if now is not None else started
        log.timings[(index, subscription)] = (started, ended)


def _no_clock() -> float:
    return 0.0


def _attach(cancelled: BaseException, result: DispatchResult) -> None:
    cancelled.add_note(
        f"the dispatch of {type(result.event).__name__} was cancelled; "
        "eda_lesson.asyncbus.partial_result(error) returns the record of what ran"
    )
    setattr(cancelled, _PARTIAL_RESULT, result)


def partial_result(error: BaseException) -> DispatchResult | None:
    """The record of a dispatch that ``error`` cancelled, or None.

    Give it the ``CancelledError`` of a cancelled dispatch, or the ``TimeoutError`` that
    ``asyncio.timeout`` raised in its place.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = getattr(current, _PARTIAL_RESULT, None)
        if isinstance(found, DispatchResult):
            return found
        current = current.__cause__ or current.__context__
    return None


# ---------------------------------------------------------------------- the bounded queue


@dataclass(frozen=True)
class Publication:
    """One ``publish``: when it was asked for and when the queue took the event."""

    event: object
    asked: float
    accepted: float

    @property
    def waited(self) -> float:
        """How long the publisher was held back because the queue was full."""
        return self.accepted - self.asked


_STOP = object()


class EventQueue:
    """A queue of events in front of an :class:`AsyncEventBus`, with workers that drain it.

    Use it as ``async with bus.queue(maxsize=2) as queue:``; the workers start on entry and,
    on a normal exit, every published event is dispatched before the block ends.

    - ``await queue.publish(event)`` waits while the queue holds ``maxsize`` events.
    - ``published`` lists each publication with when it was asked for and accepted;
      ``results`` the dispatch results in the order they finished; ``peak`` the most events
      that were ever waiting at once.
    """

    def __init__(self, bus: AsyncEventBus, *, maxsize: int = 0, workers: int = 1) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize is a whole number >= 0 (0: unbounded), got {maxsize!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers is a whole number >= 1, got {workers!r}")
        self.bus = bus
        self.maxsize = maxsize
        self.workers = workers
        self.published: list[Publication] = []
        self.results: list[DispatchResult] = []
        self.peak = 0
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self._group: asyncio.TaskGroup | None = None
        self._closed = False

    async def publish(self, event: object) -> None:
        """Put ``event`` in the queue, waiting while it is full."""
        if self._closed:
            raise RuntimeError(
                "this queue is closed; publish inside the `async with bus.queue(...)` block"
            )
        if self._group is None:
            raise RuntimeError(
                "nobody is draining this queue yet; use it as `async with bus.queue(...) as q:`"
            )
        now = self.bus.clock_function()
        asked = now()
        await self._queue.put(checked_event(event))
        self.peak = max(self.peak, self._queue.qsize())
        self.published.append(Publication(event, asked, now()))

    @property
    def size(self) -> int:
        """How many events are waiting now."""
        return self._queue.qsize()

    def full(self) -> bool:
        return self._queue.full()

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            if event is _STOP:
                return
            self.results.append(await self.bus.dispatch(event))

    async def __aenter__(self) -> EventQueue:
        if self._group is not None or self._closed:
            raise RuntimeError("an EventQueue runs once; make a new one with bus.queue(...)")
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        for _ in range(self.workers):
            group.create_task(self._work())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        if exc_type is None:
            self._closed = True
            for _ in range(self.workers):  # each worker stops at its own marker, after the rest
                await self._queue.put(_STOP)
        self._closed = True
        await self._group.__aexit__(exc_type, exc, traceback)
        return None

    def __repr__(self) -> str:
        bound = f"maxsize={self.maxsize}" if self.maxsize else "unbounded"
        return (
            f"EventQueue({bound}, {self.workers} worker{'s' * (self.workers != 1)}, "
            f"{len(self.published)} published, {len(self.results)} dispatched)"
        )


# ---------------------------------------------------------------------- virtual time


class _VirtualSelector(selectors.DefaultSelector):
    """Polls for real I/O without waiting; a wait for a timer advances the clock instead."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout <= 0:
            return super().select(timeout)  # nothing scheduled: only real I/O can wake us
        ready = super().select(0)
        if not ready:
            # Every task waits for a timer: jump to the earliest (at least 1 ns, so a
            # deadline a rounding error away is still reached).
            self._clock.advance_ns(max(1, round(timeout * 1_000_000_000)))
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop whose time is a :class:`~eda_lesson.clock.VirtualClock`.

    Everything runs as on any loop; only waiting differs: when no task can run until a
    timer is due, the clock jumps to that timer instead of the loop sleeping. Real I/O
    (sockets, threads) still works, in real time, but virtual time does not wait for it.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(_VirtualSelector(clock))

    def time(self) -> float:
        return self.clock.now()


def run_on_clock(main: Awaitable[T], clock: VirtualClock) -> T:
    """Run ``main`` on a :class:`VirtualTimeLoop` of ``clock``; see ``VirtualClock.run``."""
    _check_awaitable(main)

    async def main_coroutine() -> T:
        running_clock.set(clock)  # the tasks main starts copy this context: they see it too
        return await main

    def run_here() -> T:
        with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
            return runner.run(main_coroutine())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_here()
    # A loop already runs in this thread (a notebook): run ours in a helper thread, with
    # this thread's context variables (an id factory set with use_ids, for instance).
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="virtual-time") as pool:
        future: concurrent.futures.Future[T] = pool.submit(context.run, run_here)
        return future.result()


def _check_awaitable(main: object) -> None:
    if not inspect.isawaitable(main):
        raise TypeError(
            f"run() takes a coroutine such as bus.dispatch(event), got {describe_value(main)}; "
            "call the async function first: clock.run(main()), not clock.run(main)"
        )
