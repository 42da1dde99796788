"""Clocks: where retries, dead letters and the async bus read the time and wait.

Code that waits (a retry backing off) or records when something happened (an attempt, a
handler call) takes a clock instead of calling :mod:`time` itself, so the same code runs on
real time in a program and on make-believe time in a lesson or a test:

- :class:`SystemClock` is real time: ``time.monotonic`` and ``time.sleep``.
- :class:`VirtualClock` is time that moves only when somebody sleeps on it, and then
  instantly: ``sleep(2.0)`` returns at once and ``now()`` reads two seconds later. Runs are
  fast and give the same numbers every time.

>>> clock = VirtualClock()
>>> clock.sleep(0.1); clock.sleep(0.2)
>>> clock.now(), clock.sleeps
(0.3, [0.1, 0.2])

:meth:`VirtualClock.run` runs a coroutine on an asyncio event loop whose time *is* the
virtual clock, so ``await asyncio.sleep(1)`` in an async handler moves virtual time too and
concurrent handlers overlap exactly as they would in real time (see :mod:`eda_lesson.core.asyncbus`,
where that loop lives, so importing this module stays free of asyncio).

This module only tells and passes time; it schedules nothing and keeps no calendar.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Protocol, TypeVar

__all__ = ["Clock", "SystemClock", "VirtualClock", "WallClock", "current_clock"]

T = TypeVar("T")

_NS_PER_SECOND = 1_000_000_000


class Clock(Protocol):
    """Anything that tells the time in seconds and can wait."""

    def now(self) -> float:
        """Seconds since some fixed point (only differences mean something)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """Real time: ``time.monotonic`` (never jumps back) and ``time.sleep``."""

    # The functions themselves rather than methods that call them: reading the time is on
    # the async bus's hot path.
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __repr__(self) -> str:
        return "SystemClock()"


class WallClock:
    """Calendar time: ``time.time`` (seconds since 1970, the same in every process) and
    ``time.sleep``. For times that are stored and read by another process later, such as a
    saga's deadline; it can jump when the system's time is set, so measure durations with
    :class:`SystemClock`."""

    now = staticmethod(time.time)
    sleep = staticmethod(time.sleep)

    def __repr__(self) -> str:
        return "WallClock()"


class VirtualClock:
    """Make-believe time that advances only when somebody sleeps, and then instantly.

    Time is kept as a whole number of nanoseconds, so sums come out as they would on paper
    (0.1 + 0.2 reads 0.3) and a run gives the same numbers every time. ``sleeps`` lists
    every ``sleep`` call, in order: the schedule a retry policy followed.

    One clock is meant for one thread of work: a lesson, a test, one event loop.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._ns = _to_ns(start, "start")
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._ns / _NS_PER_SECOND

    def sleep(self, seconds: float) -> None:
        """Move time forward by ``seconds`` at once (and remember that somebody slept)."""
        self.advance(seconds)
        self.sleeps.append(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without counting it as a sleep."""
        self._ns += _to_ns(seconds, "seconds")

    def advance_ns(self, nanoseconds: int) -> None:
        """Move time forward by a whole number of nanoseconds (used by the virtual loop)."""
        if nanoseconds < 0:
            raise ValueError(f"time only moves forward; got {nanoseconds} ns")
        self._ns += nanoseconds

    def run(self, main: Awaitable[T]) -> T:
        """Run ``main`` on an event loop whose time is this clock, and return its result.

        Inside, ``await asyncio.sleep(s)`` and ``asyncio.timeout(s)`` use virtual time: when
        every task is waiting, the clock jumps to the next deadline instead of waiting for
        it, and :func:`current_clock` is this clock. Works in a script and in a notebook
        (where a loop is already running, ``run`` uses a helper thread with its own loop).
        """
        from eda_lesson.core.asyncbus import run_on_clock

        return run_on_clock(main, self)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now():g})"


SYSTEM_CLOCK = SystemClock()

#: The clock the running code runs on; VirtualClock.run sets it for the coroutine it runs.
running_clock: ContextVar[Clock] = ContextVar("eda_lesson_clock", default=SYSTEM_CLOCK)


def current_clock() -> Clock:
    """The clock the running code runs on: inside ``VirtualClock.run(...)`` that virtual
    clock, elsewhere the system clock. Async code that is given no clock reads this one."""
    return running_clock.get()


def _to_ns(seconds: float, name: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} is a number of seconds, got {seconds!r}")
    if seconds < 0:
        raise ValueError(f"time only moves forward: {name} must be >= 0, got {seconds!r}")
    return round(seconds * _NS_PER_SECOND)
