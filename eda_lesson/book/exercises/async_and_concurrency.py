"""Checks for the exercises of notebook 08 (async handlers, ordering, backpressure, timeouts).

Each check runs the learner's coroutine functions on an :class:`~eda_lesson.core.asyncbus.
AsyncEventBus` inside :meth:`VirtualClock.run <eda_lesson.core.clock.VirtualClock.run>`, so waits
cost no real time and the times it reports are exact.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from eda_lesson.book.exercises import RequirementNotMetError, exercise, expect
from eda_lesson.core.asyncbus import AsyncEventBus, EventQueue, HandlerCancelledError
from eda_lesson.core.checks import is_async_callable
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.result import CascadeLimitError, DispatchResult
from eda_lesson.shop.events import OrderPaid

__all__ = ["ItemOrdered", "SoldOutError", "ex1", "ex2", "ex3", "ex4"]


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a handler that waits without blocking")
def ex1(check_fraud: Callable[[Any], Any]) -> str:
    """``check_fraud`` is an ``async def`` handler that waits 0.4 s for the fraud service
    (without blocking the loop) and returns ``FraudChecked(event.order_id)``."""
    expect(callable(check_fraud), "pass your handler: check.ex1(check_fraud)")
    expect(
        not inspect.isasyncgenfunction(check_fraud),
        "check_fraud yields: it is an async generator; the exercise asks for a handler that "
        "returns its event once the wait is over",
        "`return FraudChecked(event.order_id)` instead of `yield`",
    )
    expect(
        is_async_callable(check_fraud),
        "check_fraud is a plain function: while it waits, nothing else can run",
        "write it as `async def check_fraud(event: OrderPaid):` and `await` the wait",
    )

    async def send_receipt(event: OrderPaid) -> None:
        await asyncio.sleep(0.1)

    bus = AsyncEventBus(concurrency="concurrent", max_cascade=_SHORT_CASCADE)
    bus.register(OrderPaid, check_fraud)
    bus.register(OrderPaid, send_receipt)
    clock = VirtualClock()
    try:
        result = clock.run(bus.dispatch(OrderPaid(_PAID_ORDER, 42.0)))
    except CascadeLimitError as error:
        raise RequirementNotMetError(
            "check_fraud answered OrderPaid with another OrderPaid, which it handles again, "
            f"without end (the bus stopped after {error.result.reached} events); report what "
            "the fraud service said with a FraudChecked event",
            "end with `return FraudChecked(event.order_id)`",
        ) from None
    fraud, receipt = result.calls[0], result.calls[1]
    expect(fraud.ok, f"check_fraud failed: {_error_text(fraud.error)}")
    expect(
        receipt.ended == 0.1,
        f"send_receipt, which needs 0.1 s, finished at {receipt.ended:g} s: check_fraud held "
        "the event loop while it waited",
        "`await asyncio.sleep(0.4)` lets the loop run other handlers; a sleep without await "
        "(time.sleep, clock.sleep) blocks them",
    )
    unseen = (
        ": its wait never went through the event loop, whose clock is the only one here "
        "(time.sleep blocks the loop and takes no virtual time)"
        if not fraud.ended
        else ""
    )
    expect(
        fraud.ended == 0.4,
        f"check_fraud took {_seconds(fraud)} of virtual time{unseen}; the fraud service "
        "answers after 0.4 s",
        "`await asyncio.sleep(0.4)` (time.sleep waits in real time, which the virtual clock "
        "never sees)",
    )
    produced = [record.event for record in result.events[1:]]
    expect(
        len(produced) == 1 and type(produced[0]).__name__ == "FraudChecked",
        f"check_fraud produced {[type(e).__name__ for e in produced]}; expected one "
        "FraudChecked event",
        "end with `return FraudChecked(event.order_id)`",
    )
    carried = getattr(produced[0], "order_id", None)
    expect(
        carried == _PAID_ORDER,
        f"FraudChecked carries order_id={carried!r}, but the order the check paid was "
        f"{_PAID_ORDER!r}: take the id from the event",
        "`FraudChecked(event.order_id)`",
    )
    return "check_fraud waited 0.4 s while send_receipt ran and finished at 0.1 s"


_PAID_ORDER = "o-5"  # not the notebook's usual "o-1", so a hard-coded id shows
_SHORT_CASCADE = 20  # one FraudChecked is all a right answer adds


def _seconds(call: Any) -> str:
    return f"{(call.ended or 0.0) - (call.started or 0.0):g} s"


# ---------------------------------------------------------------------- exercise 2


@dataclass(frozen=True)
class _Delivery:
    order_id: str
    seconds: float


@exercise("Exercise 2: in order, and never more than two waiting")
def ex2(handle_in_order: Callable[[AsyncEventBus, list[Any]], Coroutine[Any, Any, Any]]) -> str:
    """``await handle_in_order(bus, events)`` publishes every event through ``bus.queue``,
    at most 2 waiting at once, handled in the order published; it returns the queue."""
    expect(callable(handle_in_order), "pass your function: check.ex2(handle_in_order)")
    expect(
        inspect.iscoroutinefunction(handle_in_order),
        "handle_in_order must be an `async def` function (it awaits queue.publish)",
    )
    handled: list[str] = []

    async def deliver(event: _Delivery) -> None:
        await asyncio.sleep(event.seconds)
        handled.append(event.order_id)

    bus = AsyncEventBus()
    bus.register(_Delivery, deliver)
    events = [_Delivery(f"o-{n}", 1.0 if n == 0 else 0.2) for n in range(5)]
    queue = VirtualClock().run(handle_in_order(bus, events))
    expect(
        not isinstance(queue, asyncio.Queue),
        "handle_in_order returned an asyncio.Queue of its own; use the bus's queue, which "
        "records what was published and how full it got, and return it (the `q` of "
        "`async with bus.queue(...) as q:`)",
        "publish inside `async with bus.queue(maxsize=2) as q:` and `return q` after the block",
    )
    expect(
        isinstance(queue, EventQueue),
        f"handle_in_order returned {type(queue).__name__}; return the queue "
        "(the `q` of `async with bus.queue(...) as q:`)",
        "publish inside `async with bus.queue(maxsize=2) as q:` and `return q` after the block",
    )
    published = [p.event.order_id for p in queue.published]
    expect(
        published == [e.order_id for e in events],
        f"the queue published {published}; publish every event, in the order given",
    )
    expect(
        handled == published,
        f"the events were handled in the order {handled}, not in the order published",
        "one worker takes events one at a time, in order: bus.queue(..., workers=1)",
    )
    expect(
        queue.peak <= 2,
        f"up to {queue.peak} events waited in the queue at once; at most 2 may",
        "bound it: bus.queue(maxsize=2); a full queue makes publish wait",
    )
    expect(
        queue.maxsize != 0,
        f"the queue is unbounded (no maxsize): this time at most {queue.peak} waited, but "
        "nothing holds a publisher back, so a faster one, or a longer burst, piles up",
        "bound it: bus.queue(maxsize=2); a full queue makes publish wait",
    )
    held = sum(publication.waited for publication in queue.published)
    pace = (
        f"the publisher waited {held:g} s in all while the queue was full"
        if held
        else "the publisher never had to wait"
    )
    return f"handled in order, at most {queue.peak} waiting; {pace}"


# ---------------------------------------------------------------------- exercise 3


@exercise("Exercise 3: stop a slow dispatch, keep what ran")
def ex3(
    dispatch_within: Callable[[AsyncEventBus, object, float], Coroutine[Any, Any, Any]],
) -> str:
    """``await dispatch_within(bus, event, seconds)`` returns the dispatch result, or, when
    the dispatch takes longer than ``seconds``, the partial result of what ran (no error)."""
    expect(callable(dispatch_within), "pass your function: check.ex3(dispatch_within)")
    expect(
        inspect.iscoroutinefunction(dispatch_within),
        "dispatch_within must be an `async def` function (it awaits the dispatch)",
    )
    clock = VirtualClock()
    result = _run_to_the_end(clock, dispatch_within(_three_handlers(), OrderPaid("o-1", 42.0), 2.0))
    expect(
        isinstance(result, DispatchResult) and result.ok and len(result.calls) == 3,
        f"with time to spare, dispatch_within returned {_shown(result)}; expected the full result "
        "(3 handler calls, all ok)",
    )
    clock = VirtualClock()
    result = _run_to_the_end(
        clock, dispatch_within(_three_handlers(), OrderPaid("o-1", 42.0), 0.35)
    )
    expect(
        clock.now() <= 0.35,
        f"the dispatch ran until {clock.now():g} s; it should stop at 0.35 s",
        "wrap the dispatch: "
        "`async with asyncio.timeout(seconds): return await bus.dispatch(event)`",
    )
    expect(
        isinstance(result, DispatchResult),
        f"when time ran out, dispatch_within returned {_shown(result)}; return the record of "
        "what ran",
        "catch TimeoutError and return eda_lesson.core.asyncbus.partial_result(error)",
    )
    names = [(call.name.rsplit(".", 1)[-1], call.ok) for call in result.calls]
    expect(
        names == [("charge_card", True), ("send_receipt", False)]
        and isinstance(result.calls[1].error, HandlerCancelledError),
        f"the partial result shows {names}; expected charge_card done and send_receipt "
        "cancelled while it ran",
    )
    return "a full result in time, and a partial one (charge_card done, send_receipt cut) if not"


def _run_to_the_end(clock: VirtualClock, main: Coroutine[Any, Any, Any]) -> Any:
    """Run the learner's ``dispatch_within``; an error it lets out becomes feedback."""
    try:
        return clock.run(main)
    except TimeoutError:
        raise RequirementNotMetError(
            f"dispatch_within let a TimeoutError out at {clock.now():g} s; when time runs out "
            "it should return the record of what ran, not raise",
            "catch it around the block: `except TimeoutError as error:` (asyncio.timeout "
            "turns the cancellation into a TimeoutError as it leaves the block), then "
            "`return partial_result(error)`",
        ) from None
    except asyncio.CancelledError:
        raise RequirementNotMetError(
            f"dispatch_within let a CancelledError out at {clock.now():g} s: it cancelled "
            "the dispatch and raised that instead of returning the record of what ran",
            "the error a cancelled dispatch raises carries its record: "
            "`return partial_result(error)`",
        ) from None


def _three_handlers() -> AsyncEventBus:
    async def charge_card(event: OrderPaid) -> None:
        await asyncio.sleep(0.3)

    async def send_receipt(event: OrderPaid) -> None:
        await asyncio.sleep(0.5)

    async def update_ledger(event: OrderPaid) -> None:
        await asyncio.sleep(0.2)

    bus = AsyncEventBus()
    for handler in (charge_card, send_receipt, update_ledger):
        bus.register(OrderPaid, handler)
    return bus


# ---------------------------------------------------------------------- exercise 4


@dataclass(frozen=True)
class ItemOrdered:
    """A customer ordered one copy of ``item`` (the event of exercise 4)."""

    order_id: str
    item: str


class SoldOutError(Exception):
    """No copy of the item is left."""


def _seller(stock: dict[str, int], sold: list[str]) -> Callable[[ItemOrdered], Any]:
    async def sell(event: ItemOrdered) -> None:
        if stock[event.item] == 0:  # check ...
            raise SoldOutError(f"no {event.item} left for {event.order_id}")
        await asyncio.sleep(0.1)  # ... the warehouse reserves it (other tasks run here) ...
        stock[event.item] -= 1  # ... act
        sold.append(event.order_id)

    return sell


@exercise("Exercise 4 (stretch): one sale at a time, per item")
def ex4(one_per_item: Callable[[Callable[[Any], Any]], Callable[[Any], Any]]) -> str:
    """``one_per_item(handler)`` wraps an async handler of ``ItemOrdered`` so that calls for
    the same item never overlap, while calls for different items still run side by side.

    The sales run twice, each time on a new wrap and a new event loop (as two
    ``VirtualClock().run`` calls in a notebook would), and on a real-time watchdog, so a guard
    that blocks the loop's thread for good gets an answer instead of a hung kernel."""
    expect(callable(one_per_item), "pass your function: check.ex4(one_per_item)")
    for _ in range(2):
        _check_one_run_of_sales(one_per_item)
    return "the last book sold once, and the pen did not wait for the books"


WATCHDOG_SECONDS = 5.0
"""Real seconds the sales of exercise 4 may take (a right answer needs milliseconds)."""


def _check_one_run_of_sales(
    one_per_item: Callable[[Callable[[Any], Any]], Callable[[Any], Any]],
) -> None:
    stock: dict[str, int] = {"book": 1, "pen": 5}
    sold: list[str] = []
    guarded = one_per_item(_seller(stock, sold))
    what = "a plain function" if callable(guarded) else type(guarded).__name__
    expect(
        callable(guarded) and is_async_callable(guarded),
        f"one_per_item(handler) returned {what}; return an `async def` function that takes "
        "the event",
    )
    bus = AsyncEventBus()
    bus.register(ItemOrdered, guarded)
    orders = [ItemOrdered("o-1", "book"), ItemOrdered("o-2", "book"), ItemOrdered("o-3", "pen")]

    async def at_once() -> list[DispatchResult]:
        return list(await asyncio.gather(*(bus.dispatch(order) for order in orders)))

    results = _within_real_seconds(at_once, WATCHDOG_SECONDS)
    errors = [call.error for result in results for call in result.calls if call.error]
    expect(
        not any("different event loop" in str(error) for error in errors),
        "a sale failed with RuntimeError: its lock is bound to a different event loop. The "
        "check sells twice, each time on a new loop (as every VirtualClock().run is), and "
        "the locks of the first sales were still there for the second",
        "make the locks inside one_per_item (one dict per wrap): an asyncio.Lock belongs to "
        "the first loop it waits on",
    )
    books_sold = [order for order in sold if order in ("o-1", "o-2")]
    expect(
        len(books_sold) <= 1,
        f"one book in stock, and both o-1 and o-2 bought it (stock now {stock['book']}): "
        "the second sale checked the stock while the first waited for the warehouse",
        "the calls for one item must share one asyncio.Lock, held over the whole call: a "
        "lock made anew inside each call, or one per order, is shared by nobody, and a "
        "threading lock does not make the tasks of one thread take turns",
    )
    expect(
        books_sold == ["o-1"] and not results[1].ok,
        f"the last book went to {books_sold or 'nobody'}; o-1 asked first and should get it, "
        "and o-2 should fail as sold out",
        "pass every call through to the handler: `return await handler(event)`",
    )
    expect(
        isinstance(results[1].calls[0].error, SoldOutError),
        f"o-2 failed with {_error_text(results[1].calls[0].error)}; expected the handler's "
        "SoldOutError",
    )
    pen = results[2].calls[0]
    expect(
        "o-3" in sold and pen.ok,
        f"the pen order o-3 did not sell: {_error_text(pen.error)}",
    )
    expect(
        pen.ended == 0.1,
        f"the pen order o-3 was done at {pen.ended or 0.0:g} s instead of 0.1 s: it waited for the "
        "book orders, although it needs nothing of theirs. One lock for everything makes the "
        "whole shop take turns",
        "one lock per item: a dict from item to asyncio.Lock, looked up with event.item",
    )


def _within_real_seconds(
    main: Callable[[], Coroutine[Any, Any, list[DispatchResult]]], seconds: float
) -> list[DispatchResult]:
    """Run ``main()`` on a virtual clock in a thread of its own, and give up after ``seconds``
    of real time (the thread, blocked for good, is left behind as a daemon)."""
    outcome: list[list[DispatchResult]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(VirtualClock().run(main()))
        except BaseException as error:  # handed to the caller's thread below
            failure.append(error)

    worker = threading.Thread(target=run, name="exercise-4-sales", daemon=True)
    worker.start()
    worker.join(seconds)
    expect(
        not worker.is_alive(),
        f"the three sales were still not done after {seconds:g} s of real time, although they "
        "need 0.2 s of virtual time: something holds the event loop's only thread for good",
        "use an asyncio.Lock: a task that waits for it gives the thread back; a threading.Lock "
        "blocks the thread, so the sale holding it can never resume to let it go",
    )
    if failure:
        raise failure[0]
    return outcome[0]


def _error_text(error: BaseException | None) -> str:
    """``TypeName: text``, without memory addresses (saved outputs are compared byte for byte)."""
    if error is None:
        return "no error"
    text = _without_addresses(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _shown(value: object) -> str:
    """The repr of a learner's value, without memory addresses (a task's, a function's)."""
    return _without_addresses(repr(value))


def _without_addresses(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)
