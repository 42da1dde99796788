"""Clocks, specified by example: virtual time moves only when slept on, exactly and at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lesson.core.clock import SystemClock, VirtualClock, current_clock


def test_virtual_clock_starts_where_told_and_stands_still_until_slept_on() -> None:
    clock = VirtualClock(start=10.0)
    assert clock.now() == 10.0
    time.sleep(0.01)
    assert clock.now() == 10.0


def test_virtual_sleep_returns_at_once_with_the_time_moved_on() -> None:
    clock = VirtualClock()
    started = time.perf_counter()
    clock.sleep(3600)
    assert time.perf_counter() - started < 0.5
    assert clock.now() == 3600.0


def test_virtual_time_adds_up_as_on_paper() -> None:
    clock = VirtualClock()
    clock.sleep(0.1)
    clock.sleep(0.2)
    assert clock.now() == 0.3  # not 0.30000000000000004
    for _ in range(997):
        clock.sleep(0.1)
    assert clock.now() == 100.0


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=50))
def test_virtual_time_is_the_exact_sum_of_the_sleeps(milliseconds: list[int]) -> None:
    clock = VirtualClock()
    for ms in milliseconds:
        clock.sleep(ms / 1000)
    assert clock.now() == sum(milliseconds) / 1000
    assert clock.sleeps == [ms / 1000 for ms in milliseconds]


def test_sleeps_lists_every_sleep_and_advance_is_not_one() -> None:
    clock = VirtualClock()
    clock.sleep(1.0)
    clock.advance(5.0)
    clock.sleep(2.0)
    assert clock.sleeps == [1.0, 2.0]
    assert clock.now() == 8.0


def test_virtual_time_never_moves_back() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="time only moves forward"):
        clock.sleep(-1)
    with pytest.raises(ValueError, match="time only moves forward"):
        clock.advance_ns(-5)
    with pytest.raises(TypeError, match="number of seconds"):
        clock.sleep("1s")  # type: ignore[arg-type]
    assert clock.now() == 0.0


def test_virtual_clock_repr_shows_the_time() -> None:
    clock = VirtualClock()
    clock.sleep(2.5)
    assert repr(clock) == "VirtualClock(now=2.5)"


def test_system_clock_reads_real_monotonic_time_and_really_sleeps() -> None:
    clock = SystemClock()
    before = clock.now()
    clock.sleep(0.02)
    assert clock.now() - before >= 0.02
    assert repr(clock) == "SystemClock()"


def test_current_clock_is_the_system_clock_outside_a_virtual_run() -> None:
    assert isinstance(current_clock(), SystemClock)


def test_run_gives_the_coroutines_result_and_its_waits_take_virtual_time() -> None:
    clock = VirtualClock()

    async def main() -> str:
        assert current_clock() is clock
        await asyncio.sleep(5)
        return "done"

    started = time.perf_counter()
    assert clock.run(main()) == "done"
    assert time.perf_counter() - started < 1.0
    assert clock.now() == 5.0


def test_tasks_waiting_together_overlap_in_virtual_time() -> None:
    clock = VirtualClock()
    finished: dict[str, float] = {}

    async def wait(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished[name] = asyncio.get_running_loop().time()

    async def main() -> None:
        await asyncio.gather(wait("slow", 3.0), wait("fast", 1.0), wait("middle", 2.0))

    clock.run(main())
    assert finished == {"fast": 1.0, "middle": 2.0, "slow": 3.0}
    assert clock.now() == 3.0


def test_asyncio_timeout_expires_on_virtual_time() -> None:
    clock = VirtualClock()

    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.sleep(60)
        return clock.now()

    assert clock.run(main()) == 2.0


def test_real_io_still_works_under_virtual_time() -> None:
    clock = VirtualClock()

    async def main() -> int:
        return await asyncio.to_thread(lambda: 6 * 7)

    assert clock.run(main()) == 42
    assert clock.now() == 0.0  # nothing waited on a timer


def test_run_works_where_a_loop_already_runs_as_in_a_notebook() -> None:
    clock = VirtualClock()

    async def inner() -> float:
        await asyncio.sleep(1.5)
        return clock.now()

    async def notebook_cell() -> float:
        return clock.run(inner())  # a plain call while this loop runs, as in Jupyter

    assert asyncio.run(notebook_cell()) == 1.5


def test_run_asks_for_a_coroutine_not_an_async_function() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match=r"clock.run\(main\(\)\)"):
        VirtualClock().run(main)  # type: ignore[arg-type]
