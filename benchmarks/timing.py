"""The timing harness the synchronous benchmarks share: interleaved rounds, medians.

Each case runs ``loops`` times per round; cases take turns every round so that drift in the
machine's speed hits them all alike; the median of the rounds is reported, minus the cost of
the loop calling an empty function. Garbage collection is off while measuring.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable

Case = Callable[[], object]


def time_per_call(case: Case, loops: int) -> float:
    """Nanoseconds per call of ``case`` over ``loops`` calls."""
    start = time.perf_counter_ns()
    for _ in range(loops):
        case()
    return (time.perf_counter_ns() - start) / loops


def measure(cases: dict[str, Case], rounds: int, loops: int) -> dict[str, float]:
    """Median ns per call of each case, the empty loop's cost subtracted."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    baseline: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            baseline.append(time_per_call(_nothing, loops))
            for name, case in cases.items():
                samples[name].append(time_per_call(case, loops))
    finally:
        gc.enable()
    overhead = statistics.median(baseline)
    return {name: statistics.median(values) - overhead for name, values in samples.items()}


def _nothing() -> None:
    pass


def parse_arguments(description: str, argv: list[str] | None = None) -> tuple[int, int]:
    """(rounds, loops) from the command line; ``--quick`` is a short smoke run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=15, help="rounds per case (median taken)")
    parser.add_argument("--loops", type=int, default=50_000, help="calls per round")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    return (3, 2_000) if args.quick else (args.rounds, args.loops)


def print_setting(rounds: int, loops: int) -> None:
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}; "
        f"median of {rounds} rounds x {loops:,} calls; loop overhead subtracted"
    )
