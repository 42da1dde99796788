"""The async event bus: the same registrations, handlers that may wait, handlers that overlap.

:class:`AsyncEventBus` is the sibling of :class:`~eda_lesson.core.bus.EventBus`, not a subclass:
both are a :class:`~eda_lesson.core.bus.BaseBus` (registration, ``subscribe``, dependencies,
middleware, call order, plans and the steps after each call are shared), and its ``dispatch``
is awaited. Code that needs a result at once asks for an ``EventBus`` and refuses this one.
What changes is how a cascade runs, in a loop that is the sync one with ``await``:

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
  real monotonic time elsewhere; see :func:`~eda_lesson.core.clock.current_clock`).
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

Virtual time: :meth:`VirtualClock.run <eda_lesson.core.clock.VirtualClock.run>` runs a coroutine
on :class:`VirtualTimeLoop`, an ordinary asyncio loop whose clock is virtual. Handlers wait
with plain ``await asyncio.sleep(0.3)``; when every task is waiting the loop jumps to the next
deadline instead of sleeping. So concurrent handlers really run concurrently in asyncio, and
their start and end times come out exact and the same on every run:

>>> import asyncio
>>> from dataclasses import dataclass
>>> from eda_lesson.core.clock import VirtualClock
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
middleware in :mod:`eda_lesson.core.middleware` works here too).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import CoroutineType, TracebackType
from typing import Any, Literal, TypeVar

from eda_lesson.core.bus import BaseBus, EventSource, Middleware, Subscription
from eda_lesson.core.checks import checked_message, produced_messages
from eda_lesson.core.clock import Clock, VirtualClock, running_clock
from eda_lesson.core.result import CascadeLimitError, DispatchResult, Plan, describe_value

__all__ = [
    "AsyncEventBus",
    "Concurrency",
    "EventQueue",
    "HandlerCancelledError",
    "Publication",
    "VirtualTimeLoop",
    "partial_result",
    "run_on_clock",
]

T = TypeVar("T")

Concurrency = Literal["sequential", "concurrent"]
Cause = tuple[int, Subscription]

_PARTIAL_RESULT = "partial_result"  # the attribute a cancelled dispatch sets on the error


class HandlerCancelledError(Exception):
    """A handler call was still running when its dispatch was cancelled."""


class _Sender:
    """Where messages dispatched by one concurrent call (and the tasks it starts) go: its
    ``inbox`` until its siblings are done; once it has settled, late ones go straight into
    the cascade, still credited to it. (In sequential mode the context holds the cascade
    itself: whatever a handler dispatches belongs to the call running now.)"""

    __slots__ = ("cascade", "cause", "inbox", "settled")

    def __init__(self, cascade: DispatchResult, cause: Cause) -> None:
        self.cascade = cascade
        self.cause = cause
        self.inbox: list[object] = []
        self.settled = False


class AsyncEventBus(BaseBus):
    """A message bus whose handlers may be ``async def``; ``await bus.dispatch(message)``.

    The sibling of :class:`~eda_lesson.core.bus.EventBus`: the same registrations, dependencies,
    middleware and cascade, driven by a loop that awaits. ``concurrency`` is
    ``"sequential"`` (an event's handlers one after another, the default) or
    ``"concurrent"`` (all at once, in a task group). ``clock`` gives the times recorded for
    each handler call (default: the clock the code runs on, which is virtual inside
    :meth:`VirtualClock.run <eda_lesson.core.clock.VirtualClock.run>`); ``timed=False`` skips
    recording them, for throughput. The other arguments are the core's.
    """

    runs_async_handlers = True

    def __init__(
        self,
        *,
        concurrency: Concurrency = "sequential",
        clock: Clock | None = None,
        timed: bool = True,
        fail_fast: bool = False,
        max_cascade: int = 1000,
        middleware: Iterable[Middleware] = (),
        dependencies: Mapping[str, object] | None = None,
        collect_from: Iterable[EventSource] = (),
    ) -> None:
        if concurrency not in ("sequential", "concurrent"):
            raise ValueError(f'concurrency is "sequential" or "concurrent", got {concurrency!r}')
        super().__init__(
            fail_fast=fail_fast,
            max_cascade=max_cascade,
            middleware=middleware,
            dependencies=dependencies,
            collect_from=collect_from,
        )
        self.concurrency: Concurrency = concurrency
        self.clock = clock
        self.timed = timed
        self._concurrent = concurrency == "concurrent"
        # The cascade running in this task on this bus, as EventBus keeps one per thread: a
        # handler's dispatch joins it. Tasks copy their context when created, so a task a
        # handler starts joins the cascade too while the cascade still runs.
        self._sender: ContextVar[_Sender | DispatchResult | None] = ContextVar(
            "eda_lesson_sender", default=None
        )

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, message: object) -> Coroutine[Any, Any, DispatchResult]:
        """Handle ``message`` and its whole cascade: ``result = await bus.dispatch(message)``.

        Called from inside a handler of this bus (or a task it started, while the cascade
        runs), the message joins the running cascade instead, after the current message's
        handlers, and nothing needs awaiting.
        """
        sender = self._sender.get()
        cascade = sender.cascade if isinstance(sender, _Sender) else sender
        if cascade is None or cascade.finished:
            return self._run(message)
        message = checked_message(message)
        if isinstance(sender, _Sender):  # one concurrent call (or a task it started) sent it
            if sender.settled:
                self._join_late(cascade, sender.cause, message)
            else:
                sender.inbox.append(message)
        else:  # sequential: the handler running now sent it
            cascade.dispatched_by_handler(message)
        return _Queued(cascade)

    async def _run(self, message: object) -> DispatchResult:
        cascade = self._new_cascade(message)
        queue = cascade.queue  # (message, plan) pairs; handlers' messages join the back
        collecting = self._collect_from
        now = self.clock_function() if self.timed else None
        token = self._sender.set(cascade)
        position, running, started = 0, None, 0.0
        try:
            while position < len(queue):
                message, plan = queue[position]
                cascade.reached = position + 1
                if self._concurrent and len(plan) > 1:
                    await self._handle_concurrently(cascade, position, message, plan, now)
                    position += 1
                    continue
                for running, call in plan:
                    started = now() if now else 0.0
                    try:
                        produced = call(message)
                        if produced is not None and (
                            type(produced) is CoroutineType or inspect.isawaitable(produced)
                        ):
                            produced = await produced
                    except Exception as error:
                        self._failed(cascade, position, running, error)
                        produced = None
                    if now:
                        cascade.record_times((position, running), started, now())
                    if produced is not None or cascade.dispatched or collecting:
                        self._after_call(cascade, position, running, produced)
                running = None
                position += 1
        except asyncio.CancelledError as cancelled:
            if running is not None:
                _record_cancelled_in_turn(cascade, position, running, started, now)
            _attach(cancelled, cascade)
            raise
        finally:
            self._sender.reset(token)
        cascade.finished = True
        if cascade.errors:
            self._raise_a_failed_command(cascade)
        return cascade

    async def _handle_concurrently(
        self,
        cascade: DispatchResult,
        position: int,
        message: object,
        plan: Plan,
        now: Callable[[], float] | None,
    ) -> None:
        """Start every handler of one message in a task of its own; when all are done, record
        them in plan order (so the story does not depend on which finished first)."""
        calls = [_Call(_Sender(cascade, (position, subscription))) for subscription, _ in plan]
        try:
            async with asyncio.TaskGroup() as group:
                for (_, call), record in zip(plan, calls, strict=True):
                    group.create_task(record.run(self._sender, call, message, now))
        except asyncio.CancelledError:
            self._settle(cascade, position, plan, calls, now, cancelled=True)
            raise
        self._settle(cascade, position, plan, calls, now, cancelled=False)

    def _settle(
        self,
        cascade: DispatchResult,
        position: int,
        plan: Plan,
        calls: list[_Call],
        now: Callable[[], float] | None,
        *,
        cancelled: bool,
    ) -> None:
        for (subscription, _), record in zip(plan, calls, strict=True):
            cause = (position, subscription)
            if record.started is not None and now is not None:
                ended = record.ended if record.ended is not None else now()
                cascade.record_times(cause, record.started, ended)
            if not record.finished:
                cascade.record_error(
                    cause, _cancelled_error(subscription, record.started is not None)
                )
            elif record.error is not None and cancelled:
                cascade.record_error(cause, record.error)
            elif record.error is not None:
                self._failed(cascade, position, subscription, record.error)
            cascade.dispatched, record.sender.inbox = record.sender.inbox, []
            record.sender.settled = True
            self._after_call(cascade, position, subscription, record.produced)

    def _join_late(self, cascade: DispatchResult, cause: Cause, message: object) -> None:
        """A message from a task a concurrent call started, after that call settled."""
        cascade.enqueue(message, self._plan_of(message), cause)
        if len(cascade.queue) > self.max_cascade:
            raise CascadeLimitError(cascade, self.max_cascade)

    def _innermost(
        self, subscription: Subscription, dependencies: Mapping[str, object]
    ) -> Callable[[Any], Any]:
        call = super()._innermost(subscription, dependencies)
        if inspect.isasyncgenfunction(subscription.handler):
            limit = self.max_cascade

            async def drained(message: object) -> object:
                items = []
                async for item in call(message):
                    items.append(item)
                    if len(items) > limit:
                        break
                return produced_messages(items, limit)

            return drained
        return call

    def clock_function(self) -> Callable[[], float]:
        """The function that reads the bus's clock: the one given, else the clock the code
        runs on (see :func:`~eda_lesson.core.clock.current_clock`)."""
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
        return f"AsyncEventBus({self.concurrency}, {super().__repr__().split('(', 1)[1]}"


class _Call:
    """One handler call running in a task of its own (concurrent mode), and how it went.

    Its task's context points the bus at this call's sender while it runs, so messages the
    handler dispatches are credited to this call rather than to a sibling.
    """

    __slots__ = ("ended", "error", "finished", "produced", "sender", "started")

    def __init__(self, sender: _Sender) -> None:
        self.sender = sender
        self.started: float | None = None
        self.ended: float | None = None
        self.produced: object = None
        self.error: Exception | None = None
        self.finished = False

    async def run(
        self,
        senders: ContextVar[_Sender | DispatchResult | None],
        call: Callable[[Any], Any],
        message: object,
        now: Callable[[], float] | None,
    ) -> None:
        senders.set(self.sender)  # in this task's own copy of the context: no need to reset
        if now is not None:
            self.started = now()
        try:
            produced = call(message)
            if produced is not None and inspect.isawaitable(produced):
                produced = await produced
            self.produced = produced
        except Exception as error:
            self.error = error
        self.finished = True
        if now is not None:
            self.ended = now()


class _Queued(Coroutine[Any, Any, DispatchResult]):
    """What ``dispatch`` returns inside a handler: the message is queued already, so a plain
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


def _cancelled_error(subscription: Subscription, started: bool) -> HandlerCancelledError:
    when = "while it ran" if started else "before it started"
    return HandlerCancelledError(
        f"{subscription.name} was cancelled {when}, because its dispatch was cancelled"
    )


def _record_cancelled_in_turn(
    cascade: DispatchResult,
    position: int,
    subscription: Subscription,
    started: float,
    now: Callable[[], float] | None,
) -> None:
    """Sequential mode: the call under way failed; the handlers after it never ran, so they
    leave the plan of this message in the record."""
    message, plan = cascade.queue[position]
    place = next(i for i, (s, _) in enumerate(plan) if s is subscription)
    cascade.queue[position] = (message, Plan(plan[: place + 1]))
    cause = (position, subscription)
    cascade.record_error(cause, _cancelled_error(subscription, started=True))
    if now is not None:
        cascade.record_times(cause, started, now())
    for dispatched in cascade.take_dispatched():  # what it dispatched before it was stopped
        cascade.enqueue(dispatched, Plan(), cause)


def _attach(cancelled: BaseException, result: DispatchResult) -> None:
    cancelled.add_note(
        f"the dispatch of {type(result.message).__name__} was cancelled; "
        "eda_lesson.core.asyncbus.partial_result(error) returns the record of what ran"
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
        await self._queue.put(checked_message(event))
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
    """An asyncio event loop whose time is a :class:`~eda_lesson.core.clock.VirtualClock`.

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
