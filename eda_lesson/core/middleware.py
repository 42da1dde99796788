"""When handlers fail: retries, dead letters, idempotency, correlation ids and timeouts.

Each idea is one small middleware, ``middleware(call, subscription) -> call``, the shape the
bus already knows (see :mod:`eda_lesson.core.bus`). Put them on every handler with
``bus.use(...)`` or on one handler with ``register(..., middleware=[...])``; the first one
listed is the outermost layer::

    clock = VirtualClock()
    letters = DeadLetterStore(clock=clock)
    bus.register(OrderPaid, charge_card, middleware=[
        dead_letters(letters),                      # 3. still failing: keep the event
        retry(attempts=3, backoff=exponential(base=1.0, factor=2),
              retry_on=(TimeoutError,), clock=clock),  # 2. try again, waiting 1 s, then 2 s
        idempotent(),                               # 1. never charge the same payment twice
    ])

Written once for plain and async handlers
-----------------------------------------
The logic of each middleware here is one generator, the same for an ``async def`` handler
and a plain one. It says ``produced = yield NEXT`` where the next layer is to be called (the
value comes back, or the error is raised at the ``yield``), and ``yield Wait(seconds,
clock)`` to wait. :func:`around` turns such a generator function into a middleware; the
wrapper it returns is ``async def`` exactly when the call it wraps is, and then awaits the
call and waits with ``asyncio.sleep``. Your own middleware can be written the same way::

    @around
    def log_calls(message, subscription):
        print("calling", subscription.name)
        produced = yield NEXT
        print("done", subscription.name)
        return produced

- :func:`retry` calls a failing handler again after a backoff (:func:`fixed`,
  :func:`exponential`, with jitter from a random source you pass in), waiting on an
  injectable clock. Calls that needed more than one attempt are kept in a :class:`RetryLog`
  as :class:`Attempt` records. When it gives up it raises :class:`RetriesExhaustedError`.
- :func:`dead_letters` puts a message whose handler still fails into a
  :class:`DeadLetterStore`, with every attempt, and re-raises the error (so the dispatch
  result still records the call as failed). ``store.replay(bus)`` tries again later.
- :func:`idempotent` makes a handler safe to receive the same event twice: it remembers,
  per registration, the ids of events handled successfully and skips a repeat.
- :func:`correlate` lets messages created while a handler runs inherit the handled
  message's correlation id and name it as their cause (see :mod:`eda_lesson.core.messages`).
- :func:`timeout` turns an ``async def`` handler that takes too long into a ``TimeoutError``.

A generator handler is run to its end inside its middleware (the bus drains it there), so
a failure while it yields is retried, dead-lettered and not marked as done like any other.
Retry is our own rather than ``tenacity``: a learner can read it in one sitting, and it
waits and timestamps on the same injectable clock.

This module does not schedule redeliveries later or persist anything: the stores here live in
memory (the seen-keys store is pluggable, a plain ``set`` is one).
"""

from __future__ import annotations

import builtins
import functools
import inspect
import itertools
import random as random_module
import typing
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from eda_lesson.core.bus import BaseBus, EventBus, Subscription
from eda_lesson.core.checks import handler_name, is_async_callable, produced_messages
from eda_lesson.core.clock import Clock, VirtualClock, current_clock
from eda_lesson.core.messages import Message, delivery_id, running_cause
from eda_lesson.core.result import safe_repr
from eda_lesson.core.text import plural

if TYPE_CHECKING:
    from eda_lesson.core.result import DispatchResult

__all__ = [
    "NEXT",
    "Attempt",
    "DeadLetter",
    "DeadLetterStore",
    "DeadLetters",
    "ExponentialBackoff",
    "FixedBackoff",
    "Idempotent",
    "Replayed",
    "RetriesExhaustedError",
    "Retry",
    "RetryLog",
    "SeenKeys",
    "Skipped",
    "Steps",
    "Timeout",
    "Wait",
    "around",
    "correlate",
    "dead_letters",
    "exponential",
    "fixed",
    "idempotent",
    "message_key",
    "registration_text",
    "retry",
    "timeout",
]

Call = Callable[[Any], Any]

#: The most messages a middleware drains from an iterator a plain function returned.
_DRAIN_AT_MOST = 100_000


# ---------------------------------------------------------------------- written once


class _Next:
    """What a middleware's steps yield to call the next layer (see :data:`NEXT`)."""

    def __repr__(self) -> str:
        return "NEXT"


NEXT = _Next()
"""``produced = yield NEXT``: call the next layer here; its value comes back, its error is
raised at the ``yield``."""


@dataclass(frozen=True)
class Wait:
    """``yield Wait(seconds, clock)``: wait before going on (``asyncio.sleep`` in async code,
    ``clock.sleep`` in plain code)."""

    seconds: float
    clock: Clock


Steps = Generator["_Next | Wait", Any, Any]
"""The logic of a middleware for one call: yields :data:`NEXT` or :class:`Wait`, returns
what the call returns."""

StepsFunction = Callable[[Any, Subscription], Steps]


def around(steps: StepsFunction) -> Callable[[Call, Subscription], Call]:
    """Turn ``steps(message, subscription)``, a generator function, into a middleware.

    The wrapper follows the call it wraps: ``async def`` around an async call (awaiting it,
    and waiting with ``asyncio.sleep``), a plain function around a plain one.
    """

    def middleware(call: Call, subscription: Subscription) -> Call:
        if is_async_callable(call):

            async def run_async(message: object) -> object:
                return await _drive_async(steps(message, subscription), call, message)

            return run_async

        def run(message: object) -> object:
            return _drive(steps(message, subscription), call, message)

        return run

    middleware.__name__ = middleware.__qualname__ = handler_name(steps)
    return middleware


def _drive(steps: Steps, call: Call, message: object) -> object:
    """Run a middleware's steps around a plain call."""
    try:
        step = next(steps)
        while True:
            if step is NEXT:
                try:
                    outcome = call(message)
                except Exception as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(outcome)
            else:
                wait = _as_wait(step)
                wait.clock.sleep(wait.seconds)
                step = steps.send(None)
    except StopIteration as done:
        return done.value


async def _drive_async(steps: Steps, call: Call, message: object) -> object:
    """Run a middleware's steps around an async call: :func:`_drive`, with ``await``."""
    try:
        step = next(steps)
        while True:
            if step is NEXT:
                try:
                    outcome = await call(message)
                except Exception as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(outcome)
            else:
                wait = _as_wait(step)
                await _wait(wait.clock, wait.seconds)
                step = steps.send(None)
    except StopIteration as done:
        return done.value


def _as_wait(step: object) -> Wait:
    if not isinstance(step, Wait):
        raise TypeError(
            f"a middleware's steps yield NEXT (call the next layer) or Wait(seconds, clock), "
            f"got {safe_repr(step)}"
        )
    return step


class Layer:
    """Base of the middleware classes here: ``steps`` is the logic, written once."""

    def steps(self, message: Any, subscription: Subscription) -> Steps:
        raise NotImplementedError

    def __call__(self, call: Call, subscription: Subscription) -> Call:
        return around(self.steps)(call, subscription)


# ---------------------------------------------------------------------- backoff


@dataclass(frozen=True)
class FixedBackoff:
    """Wait the same time before every retry."""

    seconds: float

    def __call__(self, failed_attempt: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class ExponentialBackoff:
    """Wait ``base``, then ``base * factor``, ``base * factor**2``... at most ``max_delay``.

    With ``jitter=0.1`` each wait is stretched or shrunk at random by up to 10 %, so many
    clients that failed together do not all retry at the same instant. The random numbers
    come from ``random`` (a :class:`random.Random`): seed it and the waits repeat.
    """

    base: float = 1.0
    factor: float = 2.0
    max_delay: float | None = None
    jitter: float = 0.0
    random: random_module.Random | None = None

    def __call__(self, failed_attempt: int) -> float:
        delay = self.base * self.factor ** (failed_attempt - 1)
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        if self.jitter:
            source = self.random if self.random is not None else random_module
            delay *= 1.0 + source.uniform(-self.jitter, self.jitter)
        return round(delay, 6)  # microseconds: enough for waits, and prints cleanly

    def __repr__(self) -> str:
        parts = [f"base={self.base:g}", f"factor={self.factor:g}"]
        if self.max_delay is not None:
            parts.append(f"max_delay={self.max_delay:g}")
        if self.jitter:
            parts.append(f"jitter={self.jitter:g}")
        return f"ExponentialBackoff({', '.join(parts)})"


def fixed(seconds: float) -> FixedBackoff:
    """Backoff: wait ``seconds`` before every retry."""
    _check_seconds(seconds, "fixed(seconds)")
    return FixedBackoff(seconds)


def exponential(
    base: float = 1.0,
    factor: float = 2.0,
    *,
    max_delay: float | None = None,
    jitter: float = 0.0,
    random: random_module.Random | None = None,
) -> ExponentialBackoff:
    """Backoff: wait ``base`` seconds, then ``factor`` times longer after each failure.

    ``jitter`` (a fraction, 0.1 = up to 10 % either way) randomises each wait with numbers
    from ``random``; pass ``random.Random(seed)`` for waits that repeat run after run.
    """
    _check_seconds(base, "exponential(base)")
    if factor < 1:
        raise ValueError(f"exponential(factor) must be >= 1 so waits never shrink, got {factor}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter is a fraction of the wait, from 0 up to (not incl.) 1: {jitter}")
    if max_delay is not None:
        _check_seconds(max_delay, "exponential(max_delay)")
    return ExponentialBackoff(base, factor, max_delay, jitter, random)


# ---------------------------------------------------------------------- retry


@dataclass(frozen=True, repr=False)
class Attempt:
    """One attempt of one handler at one event.

    ``started`` and ``ended`` are times on the retry's clock; ``error`` is None for the
    attempt that succeeded; ``wait`` is the backoff waited after this attempt before the next
    (None when there was no next attempt).
    """

    event: object
    handler: str
    number: int
    started: float
    ended: float
    error: Exception | None = None
    wait: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outcome(self) -> str:
        """``ok`` or the error as ``TimeoutError: bank did not answer``."""
        return "ok" if self.error is None else _error_text(self.error)

    def __repr__(self) -> str:
        then = "" if self.wait is None else f", then wait {self.wait:g}"
        return f"Attempt({self.handler} #{self.number} at {self.started:g}: {self.outcome}{then})"


class RetryLog:
    """Every attempt of every handler call that needed more than one, in the order made.

    A call that succeeded at once leaves no trace here (it is the dispatch result's handler
    call); one that failed first appears with all its attempts, the last one ``ok`` or not.
    """

    def __init__(self) -> None:
        self._attempts: list[Attempt] = []

    def extend(self, attempts: Iterable[Attempt]) -> None:
        self._attempts.extend(attempts)

    def for_handler(self, handler: Call | str) -> builtins.list[Attempt]:
        """The attempts of one handler (the function or its name)."""
        name = handler if isinstance(handler, str) else handler_name(handler)
        return [attempt for attempt in self._attempts if attempt.handler == name]

    @property
    def failures(self) -> builtins.list[Attempt]:
        return [attempt for attempt in self._attempts if attempt.error is not None]

    def clear(self) -> None:
        self._attempts.clear()

    def __iter__(self) -> Iterator[Attempt]:
        return iter(self._attempts)

    def __len__(self) -> int:
        return len(self._attempts)

    def __getitem__(self, index: int) -> Attempt:
        return self._attempts[index]

    def describe(self) -> str:
        """One line per attempt: time, handler, number, outcome and the wait that followed."""
        if not self._attempts:
            return "RetryLog: no call needed a retry"
        return "\n".join(_attempt_line(attempt) for attempt in self._attempts)

    def __repr__(self) -> str:
        return f"RetryLog({plural(len(self._attempts), 'attempt')})"


class RetriesExhaustedError(Exception):
    """A handler still failed after its retries; ``attempts`` holds every one of them.

    The last error is also the exception's ``__cause__``.
    """

    def __init__(self, handler: str, attempts: tuple[Attempt, ...], reason: str = "") -> None:
        self.handler = handler
        self.attempts = attempts
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"{handler} failed {plural(len(attempts), 'attempt')}{why}; "
            f"last error: {attempts[-1].outcome}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from what it was made of (and its cause, the last error), so that it
        # reaches a caller in another process, such as a process pool's, whole.
        state = {"__cause__": self.__cause__}
        return type(self), (self.handler, self.attempts, self.reason), state

    @property
    def last_error(self) -> Exception | None:
        return self.attempts[-1].error


class _Attempts:
    """The attempts of one call of one handler, while a :class:`Retry` works on it."""

    def __init__(self, policy: Retry, subscription: Subscription, event: object) -> None:
        self.policy = policy
        self.handler = subscription.name
        self.event = event
        self.made: list[Attempt] = []

    def failed(self, error: Exception, started: float, ended: float) -> float | None:
        """Record a failed attempt; return the wait before the next, or None to give up."""
        number = len(self.made) + 1
        wait = None
        if number < self.policy.attempts and isinstance(error, self.policy.retry_on):
            wait = self.policy.backoff(number)
        self.made.append(Attempt(self.event, self.handler, number, started, ended, error, wait))
        return wait

    def succeeded(self, started: float, ended: float) -> None:
        number = len(self.made) + 1
        self.made.append(Attempt(self.event, self.handler, number, started, ended))
        self.policy.log.extend(self.made)

    def give_up(self) -> RetriesExhaustedError:
        self.policy.log.extend(self.made)
        last = self.made[-1].error
        reason = ""
        if last is not None and not isinstance(last, self.policy.retry_on):
            reason = f"{type(last).__name__} is not retried"
        return RetriesExhaustedError(self.handler, tuple(self.made), reason)


class Retry:
    """Middleware that calls a failing handler again (made by :func:`retry`).

    The first attempt is a plain call of the next layer; only an error worth retrying starts
    :meth:`retries`, the steps of every later attempt (written once, for plain and async
    calls alike, see :func:`around`). So a call that succeeds pays for one clock read.
    """

    def __init__(
        self,
        attempts: int,
        backoff: Callable[[int], float],
        retry_on: tuple[type[Exception], ...],
        clock: Clock | None,
        log: RetryLog,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.retry_on = retry_on
        self.clock = clock
        self.log = log

    def __call__(self, call: Call, subscription: Subscription) -> Call:
        retry_on, clock = self.retry_on, self.clock
        if is_async_callable(call):

            async def first_attempt_async(message: object) -> object:
                started = (clock or current_clock()).now()
                try:
                    return await call(message)
                except retry_on as error:
                    later = self.retries(message, subscription, error, started)
                    return await _drive_async(later, call, message)

            return first_attempt_async

        def first_attempt(message: object) -> object:
            started = (clock or current_clock()).now()
            try:
                return call(message)
            except retry_on as error:
                return _drive(self.retries(message, subscription, error, started), call, message)

        return first_attempt

    def retries(
        self, message: Any, subscription: Subscription, error: Exception, started: float
    ) -> Steps:
        """The attempts after the first one failed with ``error``: wait, call, and again."""
        clock = self.clock or current_clock()
        attempts = _Attempts(self, subscription, message)
        while True:
            wait = attempts.failed(error, started, clock.now())
            if wait is None:
                raise attempts.give_up() from error
            yield Wait(wait, clock)
            started = clock.now()
            try:
                produced = yield NEXT
            except Exception as again:
                error = again
            else:
                attempts.succeeded(started, clock.now())
                return produced

    def __repr__(self) -> str:
        names = ", ".join(cls.__name__ for cls in self.retry_on)
        return f"Retry(attempts={self.attempts}, backoff={self.backoff!r}, retry_on=({names}))"


def retry(
    attempts: int = 3,
    *,
    backoff: Callable[[int], float] | None = None,
    retry_on: type[Exception] | tuple[type[Exception], ...] = Exception,
    clock: Clock | None = None,
    log: RetryLog | None = None,
) -> Retry:
    """Middleware: try a failing handler up to ``attempts`` times in all.

    Between attempts it waits ``backoff(n)`` seconds after the n-th failure (default:
    ``exponential()``, 1 s then 2 s then 4 s...) on ``clock`` (default: the clock the code
    runs on, :func:`~eda_lesson.core.clock.current_clock`: real time, or the virtual clock inside
    ``VirtualClock.run``). An ``async def`` handler waits with ``asyncio.sleep``, so its
    retries never block other tasks.
    Only errors that are instances of ``retry_on`` are retried: a ``ValueError`` from a bug
    will fail the same way again, a ``TimeoutError`` from a busy server may not. Attempts of
    calls that needed a retry are appended to ``log`` (the middleware's ``.log``).

    When the last attempt fails, or a later attempt fails with an error not worth retrying,
    it raises :class:`RetriesExhaustedError` holding every attempt. A first attempt that fails
    with an error not worth retrying is re-raised unchanged.

    A retry does not undo what a failed attempt already did: an event it dispatched before
    failing is dispatched again by the next attempt. Return events instead (they count only
    when the call succeeds), or make their handlers :func:`idempotent`.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"retry(attempts=...) counts every try, the first included: {attempts!r}")
    errors = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for cls in errors:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(
                f"retry(retry_on=...) takes exception classes such as TimeoutError, got {cls!r}"
            )
    if backoff is not None and not callable(backoff):
        raise TypeError(f"backoff is a function of the failed attempt's number, got {backoff!r}")
    return Retry(
        attempts, backoff or exponential(), errors, clock, log if log is not None else RetryLog()
    )


async def _wait(clock: Clock, seconds: float) -> None:
    """Wait without blocking the other tasks, on ``clock`` if it is not the loop's own."""
    import asyncio

    loop_clock = getattr(asyncio.get_running_loop(), "clock", None)
    if isinstance(clock, VirtualClock) and clock is not loop_clock:
        clock.sleep(seconds)  # a virtual clock the loop does not follow: jump, then yield
        await asyncio.sleep(0)
    else:
        await asyncio.sleep(seconds)


# ---------------------------------------------------------------------- dead letters


@dataclass(frozen=True, repr=False)
class DeadLetter:
    """An event its handler could not handle, kept with every attempt so far.

    ``number`` counts letters from 1 in the order they arrived in their store.
    """

    number: int
    event: object
    subscription: Subscription
    attempts: tuple[Attempt, ...]

    @property
    def handler(self) -> str:
        return self.subscription.name

    @property
    def error(self) -> Exception | None:
        """The latest error."""
        return self.attempts[-1].error

    def __repr__(self) -> str:
        return (
            f"DeadLetter(#{self.number} {self.handler} for {_short(self.event)}: "
            f"{plural(len(self.attempts), 'attempt')}, last {self.attempts[-1].outcome})"
        )


@dataclass(frozen=True, repr=False)
class Replayed:
    """What replaying one dead letter did.

    ``letter`` is the letter as it is now (with the new attempts when it failed again);
    ``produced`` the events the handler returned; ``results`` the dispatches of those events
    (when replayed through a bus).
    """

    letter: DeadLetter
    error: Exception | None
    produced: tuple[object, ...] = ()
    results: tuple[DispatchResult, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        head = f"Replayed(#{self.letter.number} {self.letter.handler}: "
        if self.error is not None:
            return head + f"failed again, {_error_text(self.error)}; the letter stays)"
        dispatched = f", dispatched {plural(len(self.results), 'event')}" if self.results else ""
        return head + f"ok, left the store{dispatched})"


async def _run_replay(
    steps: Generator[_ReplayStep, object, builtins.list[Replayed]], *, awaiting: bool
) -> builtins.list[Replayed]:
    """Make the calls a replay's steps ask for, awaiting them or refusing an awaitable."""
    try:
        step = next(steps)
        while True:
            try:
                value = step.make()
                if inspect.isawaitable(value):
                    if not awaiting:
                        _close(value)
                        raise TypeError(
                            f"{step.name} is async: replay it with `await store.replay_async(...)`"
                        )
                    value = await value
            except Exception as error:
                step = steps.throw(error)
            else:
                step = steps.send(value)
    except StopIteration as done:
        return typing.cast(builtins.list[Replayed], done.value)


class _ReplayStep(NamedTuple):
    """One call a replay makes (see ``DeadLetterStore._replay_steps``)."""

    name: str
    make: Callable[[], object]


class DeadLetterStore:
    """Events whose handlers still failed, in memory, ready to be listed and replayed.

    ``clock`` stamps failures that came without retry attempts (default: the clock the
    code runs on, see :func:`~eda_lesson.core.clock.current_clock`).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock
        self._letters: list[DeadLetter] = []
        self._numbers = itertools.count(1)

    # -- filling ---------------------------------------------------------------------------

    def add(self, event: object, subscription: Subscription, error: Exception) -> DeadLetter:
        """Keep ``event`` for ``subscription`` with the attempts ``error`` tells of.

        A :class:`RetriesExhaustedError` brings all its attempts; any other error counts as one
        attempt, stamped now. If the store already holds this very event for this handler
        (a replay that failed again), the attempts are appended to that letter.
        """
        if isinstance(error, RetriesExhaustedError):
            attempts = error.attempts
        else:
            now = (self.clock or current_clock()).now()
            attempts = (Attempt(event, subscription.name, 1, now, now, error),)
        for position, letter in enumerate(self._letters):
            if letter.event is event and letter.subscription.key == subscription.key:
                earlier = len(letter.attempts)
                more = tuple(replace(a, number=earlier + a.number) for a in attempts)
                letter = replace(letter, attempts=letter.attempts + more)
                self._letters[position] = letter
                return letter
        letter = DeadLetter(next(self._numbers), event, subscription, attempts)
        self._letters.append(letter)
        return letter

    def remove(self, letter: DeadLetter) -> None:
        """Take a letter out (a replay that succeeded does this itself)."""
        for position, kept in enumerate(self._letters):
            if kept.number == letter.number:
                del self._letters[position]
                return
        raise ValueError(f"letter #{letter.number} is not in this store (already replayed?)")

    def clear(self) -> None:
        self._letters.clear()

    # -- reading ---------------------------------------------------------------------------

    def list(self) -> builtins.list[DeadLetter]:
        """The letters, oldest first (a copy: replaying does not disturb it)."""
        return builtins.list(self._letters)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(builtins.list(self._letters))

    def __len__(self) -> int:
        return len(self._letters)

    def __repr__(self) -> str:
        return f"DeadLetterStore({plural(len(self._letters), 'letter')})"

    def describe(self) -> str:
        """Each letter and, under it, each attempt with its time and error."""
        if not self._letters:
            return "DeadLetterStore: empty"
        lines = [repr(self)]
        for letter in self._letters:
            lines.append(f"  #{letter.number} {letter.handler} <- {_short(letter.event)}")
            lines.extend("    " + _attempt_line(attempt) for attempt in letter.attempts)
        return "\n".join(lines)

    # -- replaying -------------------------------------------------------------------------

    def replay(
        self, via: BaseBus | Call | None = None, *, letters: Iterable[DeadLetter] | None = None
    ) -> builtins.list[Replayed]:
        """Give each letter (or just ``letters``) one more delivery; return what happened.

        ``via`` says what handles it: a bus (the handler registered there now under the
        letter's handler name, through the bus's middleware, so a fixed handler re-registered
        from a re-run notebook cell is the one called; events it returns are dispatched on
        that bus), a handler function (called directly), or None (the letter's own handler,
        called directly: for when the world was fixed, not the code). A success removes the
        letter; a failure keeps it, with the new attempts appended.
        """
        if isinstance(via, BaseBus) and not isinstance(via, EventBus):
            raise TypeError(
                "replaying through an AsyncEventBus needs awaiting: `await store.replay_async(bus)`"
            )
        run = _run_replay(self._replay_steps(via, letters), awaiting=False)
        try:
            run.send(None)  # never suspends: nothing is awaited when not awaiting
        except StopIteration as done:
            return typing.cast(builtins.list[Replayed], done.value)
        raise AssertionError("a replay that does not await suspended")  # pragma: no cover

    async def replay_async(
        self, via: BaseBus | Call | None = None, *, letters: Iterable[DeadLetter] | None = None
    ) -> builtins.list[Replayed]:
        """:meth:`replay` for ``async def`` handlers and the async bus (awaits each call)."""
        return await _run_replay(self._replay_steps(via, letters), awaiting=True)

    def _replay_steps(
        self, via: BaseBus | Call | None, letters: Iterable[DeadLetter] | None
    ) -> Generator[_ReplayStep, object, builtins.list[Replayed]]:
        """The logic of a replay, written once: it yields each call to make (a handler call,
        then a dispatch of each event it returned); the two replays make them, awaiting or not,
        and send back the value (or throw in the error)."""
        outcomes = []
        for letter in self._chosen(letters):
            call = self._call_for(letter, via)
            if isinstance(call, Exception):
                outcomes.append(Replayed(letter, call))
                continue
            before = self._attempt_count(letter)
            try:
                produced = yield _ReplayStep(letter.handler, functools.partial(call, letter.event))
            except Exception as error:
                outcomes.append(self._failed_again(letter, error, before))
                continue
            outcome = self._succeeded(letter, before, produced)
            if isinstance(via, BaseBus) and outcome.ok:
                dispatch: Call = typing.cast(Any, via).dispatch  # either sibling
                results: builtins.list[Any] = []  # a DispatchResult per event
                for event in outcome.produced:
                    results.append(
                        (yield _ReplayStep("dispatch", functools.partial(dispatch, event)))
                    )
                outcome = replace(outcome, results=tuple(results))
            outcomes.append(outcome)
        return outcomes

    def _chosen(self, letters: Iterable[DeadLetter] | None) -> builtins.list[DeadLetter]:
        if letters is None:
            return list(self._letters)
        numbers = {letter.number for letter in letters}
        return [letter for letter in self._letters if letter.number in numbers]

    def _attempt_count(self, letter: DeadLetter) -> int:
        return len(self._current(letter).attempts)

    def _current(self, letter: DeadLetter) -> DeadLetter:
        for kept in self._letters:
            if kept.number == letter.number:
                return kept
        return letter

    def _succeeded(self, letter: DeadLetter, before: int, produced: object) -> Replayed:
        if self._attempt_count(letter) != before:  # a dead-letter layer swallowed a new failure
            current = self._current(letter)
            return Replayed(current, current.error)
        self.remove(letter)
        answered = produced is None or letter.subscription.is_command  # an answer, not events
        events = () if answered else tuple(produced_messages(produced, _DRAIN_AT_MOST))
        return Replayed(letter, None, events)

    def _failed_again(self, letter: DeadLetter, error: Exception, before: int) -> Replayed:
        # A dead-letter middleware on the replay path has already appended the attempts.
        if self._attempt_count(letter) == before:
            self.add(letter.event, letter.subscription, error)
        return Replayed(self._current(letter), error)

    @staticmethod
    def _call_for(letter: DeadLetter, via: BaseBus | Call | None) -> Call | Exception:
        if via is None:
            return letter.subscription.handler
        if not isinstance(via, BaseBus):
            return via
        for subscription, call in via.plan_for(type(letter.event)):
            if subscription.key == letter.subscription.key:
                return call
        return LookupError(
            f"{letter.handler} is no longer registered for {type(letter.event).__name__} on "
            "this bus; register the fixed handler there, or replay into it directly: "
            "store.replay(fixed_handler)"
        )


class DeadLetters(Layer):
    """Middleware that keeps failed messages in a :class:`DeadLetterStore` (see
    :func:`dead_letters`)."""

    def __init__(self, store: DeadLetterStore, reraise: bool) -> None:
        self.store = store
        self.reraise = reraise

    def steps(self, message: Any, subscription: Subscription) -> Steps:
        try:
            return (yield NEXT)
        except Exception as error:
            self._keep(message, subscription, error)
            if self.reraise:
                raise
            return None

    def _keep(self, event: object, subscription: Subscription, error: Exception) -> None:
        letter = self.store.add(event, subscription, error)
        note = (
            f"dead-lettered: kept as letter #{letter.number} in the DeadLetterStore; "
            "fix the cause, then replay it with store.replay(bus)"
        )
        if note not in getattr(error, "__notes__", ()):
            error.add_note(note)

    def __repr__(self) -> str:
        return f"DeadLetters({self.store!r}, reraise={self.reraise})"


def dead_letters(store: DeadLetterStore, *, reraise: bool = True) -> DeadLetters:
    """Middleware: a message whose handler fails goes into ``store``, with every attempt.

    Put it *outside* :func:`retry` (listed before it) so it sees the failure only once the
    retries are spent: ``middleware=[dead_letters(store), retry(...)]``.

    By default the error is re-raised after the message is stored, so the dispatch result
    still shows the handler call as failed (its error carries a note naming the letter): the
    failure happened, the store is where the message waits for a fix. ``reraise=False``
    swallows it instead, as a broker does when it moves a message aside and goes on; then
    the handler call counts as a success and only the store tells.
    """
    if not isinstance(store, DeadLetterStore):
        raise TypeError(f"dead_letters() takes a DeadLetterStore, got {store!r}")
    return DeadLetters(store, reraise)


# ---------------------------------------------------------------------- idempotency


class SeenKeys(Protocol):
    """Where :func:`idempotent` remembers what it handled; a plain ``set`` is one.

    Entries are ``(registration, event key)`` pairs of a string and the key: the string tells
    handlers apart as the bus does (see :func:`registration_text`), so two different
    handlers never share an entry. A store in a database or Redis only needs these two
    operations.
    """

    def __contains__(self, entry: object, /) -> bool: ...

    def add(self, entry: tuple[str, Hashable], /) -> None: ...


class Skipped(NamedTuple):
    """A repeat that :func:`idempotent` did not hand to its handler."""

    event: object
    handler: str
    key: Hashable

    def __repr__(self) -> str:
        return f"Skipped({self.handler} already handled {self.key!r})"


def message_key(event: object) -> Hashable:
    """The key :func:`idempotent` uses by default: the event's ``event_id``, or else the id
    a broker or an outbox delivered it under (:func:`~eda_lesson.core.messages.delivery_id`).

    An event without a usable id (none, None, an empty or blank string, or something
    unhashable) is refused with an error: equal-looking events are not the same event (pay
    the same sum twice), so guessing would skip real work. Give events ids
    (:class:`~eda_lesson.core.messages.Message`) or pass ``key=``.
    """
    event_id = getattr(event, "event_id", None)
    if event_id is None:
        event_id = delivery_id(event)
    usable = isinstance(event_id, (str, int)) and not isinstance(event_id, bool)
    if usable and isinstance(event_id, str) and not event_id.strip():
        usable = False
    if not usable:
        got = "no event_id" if event_id is None else f"the event_id {safe_repr(event_id)}"
        raise ValueError(
            f"idempotent() cannot tell this {type(event).__name__} from another: it has {got}. "
            "Give every event a unique id (subclass eda_lesson.core.messages.Message), or say what "
            "identifies it: idempotent(key=lambda event: event.payment_id)"
        )
    return event_id


class Idempotent(Layer):
    """Middleware that skips events a handler has already handled (see :func:`idempotent`)."""

    def __init__(self, key: Callable[[Any], Hashable], seen: SeenKeys, name: str | None) -> None:
        self.key = key
        self.seen = seen
        self.name = name
        self.skipped: list[Skipped] = []

    def steps(self, message: Any, subscription: Subscription) -> Steps:
        event_key = self.key(message)
        _check_key(event_key, self.key)
        entry = (self.name or registration_text(subscription), event_key)
        if entry in self.seen:
            self.skipped.append(Skipped(message, subscription.name, event_key))
            return None
        produced = yield NEXT
        self.seen.add(entry)  # only after success: a failed call may be delivered again
        return produced

    def __repr__(self) -> str:
        return f"Idempotent(key={handler_name(self.key)})"


def _check_key(event_key: object, key: Callable[[Any], Hashable]) -> None:
    try:
        hash(event_key)
    except TypeError:
        raise TypeError(
            f"idempotent(key={handler_name(key)}) returned {safe_repr(event_key)}, which "
            "cannot be remembered (not hashable); return a string, a number or a tuple"
        ) from None
    if event_key is None or (isinstance(event_key, str) and not event_key.strip()):
        raise ValueError(
            f"idempotent(key={handler_name(key)}) returned {safe_repr(event_key)}: an empty "
            "key would make every later event look like a repeat; return the event's id"
        )


def registration_text(subscription: Subscription) -> str:
    """Text that tells one registration's handler from every other: ``module.qualname`` for
    a function defined at module level (the same in every process, so a store that outlives
    the process can use it), the name and the object's id for anything else (a method of one
    instance, a lambda, a closure), which holds for the life of the process only."""
    kind, *parts = subscription.key
    if kind == "function":
        return f"{parts[0]}.{parts[1]}"
    return f"{subscription.name}@{'-'.join(str(part) for part in parts)}"


def idempotent(
    *,
    key: Callable[[Any], Hashable] = message_key,
    seen: SeenKeys | None = None,
    name: str | None = None,
) -> Idempotent:
    """Middleware: a handler handles each event once, however often it is delivered.

    Events are told apart by ``key(event)`` (default :func:`message_key`: the event id; an
    event without a usable one is refused). A key is remembered in ``seen`` (default: a new
    ``set``), per registration, once the handler *succeeded*, so a failed call can still be
    retried or replayed. Repeats are skipped (the call returns None) and listed in
    ``.skipped``. Entries name the registration (see :func:`registration_text`); give
    ``name=`` when ``seen`` outlives the process and the handler is a method or a closure,
    whose identity does not (one ``name`` per handler: registrations sharing it share marks).

    Key by the event's id, never by its content: two events can say the same thing (a second
    instalment of the same sum) and must both be handled.

    Limits, each shown in chapter 07: the default store lives in one process's memory (a
    restarted process forgets) and grows without end; the mark is not written in one
    transaction with the handler's effect (a crash between the two runs the handler again);
    two deliveries of the same event running at the same time (concurrent async handlers)
    can both get through. For effects in our own store, the inbox of chapter 11
    (:mod:`eda_lesson.patterns.inbox`) closes those gaps. An effect elsewhere (a card charge
    at a payment provider) is not covered at all: a call that timed out after the effect is
    not marked, and its retry repeats the effect; send the event's id to the other side as an
    idempotency key instead.
    """
    if not callable(key):
        raise TypeError(f"idempotent(key=...) is a function of the event, got {key!r}")
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise ValueError(f"idempotent(name=...) is the handler's stable name, got {name!r}")
    return Idempotent(key, seen if seen is not None else set(), name)


# ---------------------------------------------------------------------- correlation


@around
def correlate(message: Any, subscription: Subscription) -> Steps:
    """Middleware: messages created while a handler runs are caused by the handled message.

    So they carry its ``correlation_id`` and name its ``event_id`` as ``causation_id``
    (see :mod:`eda_lesson.core.messages`), whether the handler returns them, yields them or
    dispatches them. Messages that are not :class:`~eda_lesson.core.messages.Message` pass
    through untouched.
    """
    if not isinstance(message, Message):
        return (yield NEXT)
    token = running_cause.set(message)
    try:
        produced = yield NEXT
        if produced is not None and hasattr(type(produced), "__next__"):
            produced = produced_messages(produced, _DRAIN_AT_MOST)  # made as it runs
        return produced
    finally:
        running_cause.reset(token)


# ---------------------------------------------------------------------- timeout


class Timeout:
    """Middleware that stops an ``async def`` handler after ``seconds`` (see :func:`timeout`).

    Asynchronous only: a plain function cannot be interrupted, so there is no plain twin."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, call: Call, subscription: Subscription) -> Call:
        if not is_async_callable(call):
            return call  # a plain function cannot be interrupted: it runs to its end
        import asyncio

        seconds = self.seconds

        async def call_within_time(event: object) -> object:
            limit = asyncio.timeout(seconds)
            try:
                async with limit:
                    return await call(event)
            except TimeoutError as error:
                if not limit.expired():
                    raise  # the handler's own TimeoutError, not ours
                raise TimeoutError(
                    f"{subscription.name} did not finish within {seconds:g} s"
                ) from error

        return call_within_time

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g} s)"


def timeout(seconds: float) -> Timeout:
    """Middleware: an ``async def`` handler still running after ``seconds`` is cancelled and
    its call fails with ``TimeoutError`` (retry it with ``retry(retry_on=(TimeoutError,))``
    listed before this). Plain handlers are left alone: they cannot be interrupted."""
    _check_seconds(seconds, "timeout(seconds)")
    return Timeout(seconds)


# ---------------------------------------------------------------------- helpers


def _check_seconds(seconds: object, what: str) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"{what} is a number of seconds >= 0, got {seconds!r}")


def _error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _attempt_line(attempt: Attempt) -> str:
    then = "" if attempt.wait is None else f", then wait {attempt.wait:g} s"
    return (
        f"t={attempt.started:<8g} {attempt.handler} attempt {attempt.number}: "
        f"{attempt.outcome}{then}"
    )


def _short(event: object) -> str:
    text = safe_repr(event)
    return text if len(text) <= 48 else text[:45] + "..."


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn when collected
