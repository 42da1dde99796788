"""What one async dispatch costs: AsyncEventBus beside a bare loop and pyee's async emitter.

Run it with ``python benchmarks/bench_async.py`` (``pip install -e ".[bench]"`` first for
pyee). Every case runs in this one process and one event loop, the cases taking turns round
by round; the tables report the median nanoseconds per event (the empty loop's cost taken
off) and the ratio to the first row of the table. Absolute numbers depend on the machine; the
ratios are the point. ``--quick`` makes a short smoke run.

The targets the library aims at (issue 5): the sequential bus at most 2.5x the bare loop
that awaits the handler inline, and at least 5x faster than pyee's ``AsyncIOEventEmitter``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eda_lesson.core.asyncbus import AsyncEventBus


@dataclass(frozen=True)
class OrderPaid:
    order_id: str


EVENT = OrderPaid("o-1")

Case = Callable[[int], Awaitable[None]]
"""A case handles ``n`` events, one after another."""


async def handler(event: object) -> None:
    """The work every case does per handler: nothing, so the bus's own cost shows."""


def _fresh_handler() -> Callable[[object], Awaitable[None]]:
    async def handle(event: object) -> None:
        pass

    return handle


class TenLineAsyncBus:
    """The smallest async bus worth the name: a dict of lists, try/except, await inline."""

    def __init__(self) -> None:
        self.handlers: dict[type, list[Callable[[object], Awaitable[None]]]] = {}

    def register(self, event_type: type, handler: Callable[[object], Awaitable[None]]) -> None:
        self.handlers.setdefault(event_type, []).append(handler)

    async def dispatch(self, event: object) -> None:
        for handle in self.handlers.get(type(event), ()):
            try:
                await handle(event)
            except Exception:
                continue


# ---------------------------------------------------------------------- cases


def cases_for(handlers: list[Callable[[object], Awaitable[None]]]) -> dict[str, Case]:
    ten_line = TenLineAsyncBus()
    sequential = AsyncEventBus()
    untimed = AsyncEventBus(timed=False)
    concurrent = AsyncEventBus(concurrency="concurrent")
    for handle in handlers:
        for bus in (ten_line, sequential, untimed, concurrent):
            bus.register(OrderPaid, handle)
    width = len(handlers)

    async def bare_loop(n: int) -> None:
        for _ in range(n):
            for handle in handlers:
                await handle(EVENT)

    async def ten_line_bus(n: int) -> None:
        for _ in range(n):
            await ten_line.dispatch(EVENT)

    def eda(bus: AsyncEventBus) -> Case:
        async def run(n: int) -> None:
            for _ in range(n):
                await bus.dispatch(EVENT)

        return run

    cases: dict[str, Case] = {
        "bare loop (await each handler inline)": bare_loop,
        "ten-line async bus (lookup, try, await)": ten_line_bus,
        "eda_lesson AsyncEventBus sequential": eda(sequential),
        "eda_lesson sequential, timed=False": eda(untimed),
        "eda_lesson AsyncEventBus concurrent": eda(concurrent),
    }
    pyee_case = pyee_emitter(handlers)
    if pyee_case is not None:
        cases["pyee AsyncIOEventEmitter (emit all, wait)"] = pyee_case
    return {f"{name}, {width} handler{'s' * (width != 1)}": case for name, case in cases.items()}


def pyee_emitter(handlers: list[Callable[[object], Awaitable[None]]]) -> Case | None:
    try:
        from pyee.asyncio import AsyncIOEventEmitter
    except ImportError:
        return None
    emitter = AsyncIOEventEmitter()
    for handle in handlers:
        emitter.on("order_paid", handle)

    async def emit_all(n: int) -> None:
        # pyee schedules each coroutine as a task and returns at once; waiting for all of
        # them once at the end is the kindest way to count its cost per event.
        for _ in range(n):
            emitter.emit("order_paid", EVENT)
        await emitter.wait_for_complete()

    return emit_all


# ---------------------------------------------------------------------- measuring


async def time_per_event(case: Case, loops: int) -> float:
    start = time.perf_counter_ns()
    await case(loops)
    return (time.perf_counter_ns() - start) / loops


async def measure(cases: dict[str, Case], rounds: int, loops: int) -> dict[str, float]:
    """Median ns per event of each case; cases take turns every round so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    baseline: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            baseline.append(await time_per_event(_nothing, loops))
            for name, case in cases.items():
                samples[name].append(await time_per_event(case, loops))
    finally:
        gc.enable()
    overhead = statistics.median(baseline)
    return {name: statistics.median(values) - overhead for name, values in samples.items()}


async def _nothing(n: int) -> None:
    for _ in range(n):
        pass


def print_table(title: str, results: dict[str, float]) -> None:
    reference = next(iter(results))
    print(f"\n{title} (ratios to the first row)")
    print(f"{'case':52} {'ns/event':>10} {'x first':>8}")
    for name, ns in results.items():
        print(f"{name:52} {ns:10.0f} {ns / results[reference]:8.2f}")


def print_targets(results: dict[str, float]) -> None:
    bare = results["bare loop (await each handler inline), 1 handler"]
    ten_line = results["ten-line async bus (lookup, try, await), 1 handler"]
    ours = results["eda_lesson AsyncEventBus sequential, 1 handler"]
    untimed = results["eda_lesson sequential, timed=False, 1 handler"]
    pyee = results.get("pyee AsyncIOEventEmitter (emit all, wait), 1 handler")
    print("\nTargets (one handler)")
    print(f"  sequential / bare loop:           {ours / bare:6.2f}  (target <= 2.5)")
    print(f"  sequential, timed=False / bare:   {untimed / bare:6.2f}")
    print(f"  sequential / ten-line async bus:  {ours / ten_line:6.2f}")
    if pyee is not None:
        print(f"  pyee / sequential:                {pyee / ours:6.2f}  (target >= 5)")


async def run(rounds: int, loops: int) -> None:
    one = await measure(cases_for([handler]), rounds, loops)
    print_table("One async handler", one)
    three = await measure(cases_for([_fresh_handler() for _ in range(3)]), rounds, loops)
    print_table("Three async handlers", three)
    print_targets(one)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per case (median taken)")
    parser.add_argument("--loops", type=int, default=20_000, help="events per round")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    rounds, loops = (3, 1_000) if args.quick else (args.rounds, args.loops)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
        f"median of {rounds} rounds x {loops:,} events; empty loop subtracted"
    )
    asyncio.run(run(rounds, loops))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
