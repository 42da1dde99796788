"""What the failure-handling middleware costs when nothing fails.

Run it with ``python benchmarks/bench_retry.py``. One ``EventBus`` per case, one handler that
succeeds, the same event; the cases take turns round by round in this one process and the
table reports the median nanoseconds per dispatch (the empty loop's cost taken off) and the
ratio to the plain dispatch. ``--quick`` makes a short smoke run.

The target the library aims at (issue 5): a retry middleware that never has to retry costs at
most 1.5x the plain dispatch.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from eda_lesson import EventBus, Middleware
from eda_lesson.clock import VirtualClock
from eda_lesson.messages import Message, SequentialIds, use_ids
from eda_lesson.middleware import (
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


# ---------------------------------------------------------------------- measuring


def time_per_call(case: Callable[[], object], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        case()
    return (time.perf_counter_ns() - start) / loops


def measure(
    all_cases: dict[str, Callable[[], object]], rounds: int, loops: int
) -> dict[str, float]:
    """Median ns per call of each case; cases take turns every round so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in all_cases}
    baseline: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            baseline.append(time_per_call(_nothing, loops))
            for name, case in all_cases.items():
                samples[name].append(time_per_call(case, loops))
    finally:
        gc.enable()
    overhead = statistics.median(baseline)
    return {name: statistics.median(values) - overhead for name, values in samples.items()}


def _nothing() -> None:
    pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per case (median taken)")
    parser.add_argument("--loops", type=int, default=50_000, help="dispatches per round")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    rounds, loops = (3, 2_000) if args.quick else (args.rounds, args.loops)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
        f"median of {rounds} rounds x {loops:,} dispatches; loop overhead subtracted"
    )
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
