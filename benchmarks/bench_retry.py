"""What the failure-handling middleware costs when nothing fails.

Run it with ``python benchmarks/bench_retry.py``. One ``EventBus`` per case, one handler that
succeeds, the same event; the cases take turns round by round in this one process and the
table reports the median nanoseconds per dispatch (the empty loop's cost taken off) and the
ratio to the plain dispatch. ``--quick`` makes a short smoke run.

The target the library aims at (issue 5): a retry middleware that never has to retry costs at
most 1.5x the plain dispatch.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass

from timing import measure, parse_arguments, print_setting

from eda_lesson import EventBus, Middleware
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.messages import Message, SequentialIds, use_ids
from eda_lesson.core.middleware import (
    DeadLetterStore,
    Retry,
    correlate,
    dead_letters,
    exponential,
    idempotent,
    retry,
)


@dataclass(frozen=True)
class OrderPaid:
    order_id: str


@dataclass(frozen=True)
class PaymentReceived(Message):
    order_id: str


EVENT = OrderPaid("o-1")


def handler(event: object) -> None:
    """Succeeds at once, so only the middleware's own cost shows."""


def a_bus(*middleware: Middleware) -> EventBus:
    bus = EventBus()
    bus.register(OrderPaid, handler, middleware=middleware)
    return bus


def a_retry(clock: VirtualClock | None = None) -> Retry:
    return retry(3, backoff=exponential(base=1.0, factor=2), retry_on=(TimeoutError,), clock=clock)


def cases() -> dict[str, Callable[[], object]]:
    plain = a_bus()
    retrying = a_bus(a_retry())
    retrying_virtual = a_bus(a_retry(VirtualClock()))
    with_letters = a_bus(dead_letters(DeadLetterStore()), a_retry())
    correlated = EventBus(middleware=[correlate])
    correlated.register(PaymentReceived, handler)
    plain_messages = EventBus()
    plain_messages.register(PaymentReceived, handler)
    with use_ids(SequentialIds("evt")):
        message = PaymentReceived("o-1")
    keyed = a_bus(idempotent(key=lambda event: None))  # every event but the first is a repeat
    numbers = itertools.count()
    fresh = a_bus(idempotent(key=lambda event: next(numbers)))  # every event is new
    return {
        "plain dispatch (no middleware)": lambda: plain.dispatch(EVENT),
        "eda_lesson retry, no failure": lambda: retrying.dispatch(EVENT),
        "eda_lesson retry on a VirtualClock, no failure": lambda: retrying_virtual.dispatch(EVENT),
        "eda_lesson dead_letters + retry, no failure": lambda: with_letters.dispatch(EVENT),
        "eda_lesson idempotent, first delivery": lambda: fresh.dispatch(EVENT),
        "eda_lesson idempotent, repeat skipped": lambda: keyed.dispatch(EVENT),
        "plain dispatch of a Message": lambda: plain_messages.dispatch(message),
        "eda_lesson correlate, a Message": lambda: correlated.dispatch(message),
    }


def main(argv: list[str] | None = None) -> None:
    rounds, loops = parse_arguments((__doc__ or "").splitlines()[0], argv)
    print_setting(rounds, loops)
    results = measure(cases(), rounds, loops)
    plain = results["plain dispatch (no middleware)"]
    print(f"\n{'case':48} {'ns/dispatch':>12} {'x plain':>8}")
    for name, ns in results.items():
        print(f"{name:48} {ns:12.0f} {ns / plain:8.2f}")
    ratio = results["eda_lesson retry, no failure"] / plain
    print(f"\nTarget: retry with no failure / plain dispatch = {ratio:.2f} (target <= 1.5)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
