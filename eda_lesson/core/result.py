"""The cascade of one dispatch: its queue, and the story of everything that happened in it.

:class:`DispatchResult` is what ``dispatch`` returns. While the cascade runs, the bus walks
its :attr:`~DispatchResult.queue` (the dispatched message first, then each message a handler
produced, in the order they arrived) and writes down what each handler call did: an error,
an answer (a command's return value), the messages it caused. Afterwards the same object is
the story: :attr:`~DispatchResult.events` and :attr:`~DispatchResult.calls` are readable
records, built from what was written down the first time somebody asks for them. Graphs,
drawings and explorers are all drawn from these records.

This module records and tells; it never calls a handler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from eda_lesson.core.text import plural

if TYPE_CHECKING:
    from eda_lesson.core.bus import Subscription

__all__ = [
    "CascadeLimitError",
    "DispatchResult",
    "EventRecord",
    "HandlerCall",
    "UnhandledCommandError",
    "describe_value",
    "safe_repr",
]


class Plan(tuple[tuple["Subscription", Callable[[Any], Any]], ...]):
    """The handlers one message type reaches, in call order: (subscription, wrapped call)
    pairs. The bus builds one per type and reuses it until registrations change."""

    _quiet: tuple[tuple[HandlerCall, ...], tuple[int, ...]]

    def quiet_story(self) -> tuple[tuple[HandlerCall, ...], tuple[int, ...]]:
        """The records of this plan's calls, and their steps, when the dispatched message is
        the only one and no call failed, answered or was timed: the same for every such
        dispatch, so the plan builds them once, from itself alone."""
        try:
            return self._quiet
        except AttributeError:
            calls = tuple(
                HandlerCall(step, 0, subscription, None, ())
                for step, (subscription, _) in enumerate(self, 1)
            )
            self._quiet = (calls, tuple(range(1, len(calls) + 1)))
            return self._quiet


Cause = tuple[int, "Subscription"]
"""A handler call: (position in the queue of the message it handled, its subscription)."""

_NOTHING: Mapping[Any, Any] = MappingProxyType({})


class HandlerCall(NamedTuple):
    """One call of one handler for one message of the cascade.

    ``step`` numbers the calls of the cascade from 1 in the order they ran; ``produced``
    holds the indexes of the messages the call caused; ``returned`` is a command handler's
    answer (None for event handlers, whose return values are the messages they produce).
    """

    step: int
    event_index: int
    subscription: Subscription
    error: Exception | None
    produced: tuple[int, ...]
    started: float | None = None
    """When the call started, on the bus's clock (buses that keep time, such as the async one)."""
    ended: float | None = None
    returned: object = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def handler(self) -> Callable[..., Any]:
        return self.subscription.handler

    @property
    def name(self) -> str:
        return self.subscription.name


class EventRecord(NamedTuple):
    """One message of the cascade. ``index`` 0 is the dispatched message; ``depth`` counts the
    handler calls between it and the dispatched message; ``caused_by`` is the step of the
    handler call that produced it (None for the dispatched message)."""

    index: int  # type: ignore[assignment]  # shadows tuple.index(), which records never need
    event: object
    depth: int
    caused_by: int | None
    handled_by: tuple[int, ...]

    @property
    def type_name(self) -> str:
        return type(self.event).__name__

    @property
    def is_command(self) -> bool:
        from eda_lesson.core.messages import Command

        return isinstance(self.event, Command)

    @property
    def unhandled(self) -> bool:
        return not self.handled_by


Story = tuple[tuple[HandlerCall, ...], tuple[EventRecord, ...]]


class DispatchResult:
    """The cascade of one dispatch: its queue while it runs, its story afterwards.

    ``queue`` holds ``(message, plan)`` pairs in the order the messages are handled;
    ``ok`` says whether every handler succeeded; ``events`` and ``calls`` are the records of
    the cascade in the order things happened; ``returned`` is the dispatched command's
    answer; ``describe()`` tells it all as text; ``raise_if_failed()`` raises the failures.
    """

    __slots__ = (
        "_story",
        "causes",
        "dispatched",
        "errors",
        "finished",
        "message",
        "queue",
        "reached",
        "returns",
        "timings",
    )

    def __init__(self, message: object, plan: Plan) -> None:
        self.message = message
        """The message that was dispatched."""
        self.queue: list[tuple[object, Plan]] = [(message, plan)]
        # What the calls did, keyed by call. Empty read-only mappings until the first entry:
        # most dispatches never write one, and then nothing more is allocated.
        self.causes: Mapping[int, Cause] = _NOTHING
        self.errors: Mapping[Cause, Exception] = _NOTHING
        self.returns: Mapping[Cause, object] = _NOTHING
        self.timings: Mapping[Cause, tuple[float, float]] = _NOTHING
        self.dispatched: list[object] | tuple[()] = ()
        """Messages the running handler dispatched; they join the queue when it returns."""
        self.reached = 0
        """How many messages of the queue the bus has started handling."""
        self.finished = False
        self._story: Story | None = None

    # -- written by the bus while the cascade runs ------------------------------------------

    def enqueue(self, message: object, plan: Plan, cause: Cause) -> None:
        """Add a message produced by the handler call ``cause`` to the back of the queue."""
        if self.causes is _NOTHING:
            self.causes = {}
        self.causes[len(self.queue)] = cause  # type: ignore[index]
        self.queue.append((message, plan))

    def dispatched_by_handler(self, message: object) -> DispatchResult:
        """A message a running handler dispatched; it is queued when that handler returns."""
        if not self.dispatched:
            self.dispatched = []
        self.dispatched.append(message)
        return self

    def take_dispatched(self) -> list[object]:
        """The messages dispatched by the handler that just returned (and forget them)."""
        taken = self.dispatched
        self.dispatched = ()
        return taken if type(taken) is list else []

    def record_error(self, cause: Cause, error: Exception) -> None:
        if self.errors is _NOTHING:
            self.errors = {}
        self.errors.setdefault(cause, error)  # type: ignore[attr-defined]

    def record_returned(self, cause: Cause, value: object) -> None:
        if self.returns is _NOTHING:
            self.returns = {}
        self.returns[cause] = value  # type: ignore[index]

    def record_times(self, cause: Cause, started: float, ended: float) -> None:
        if self.timings is _NOTHING:
            self.timings = {}
        self.timings[cause] = (started, ended)  # type: ignore[index]

    def first_error(self) -> Exception | None:
        """The error of the first handler call of the dispatched message, if it failed."""
        plan = self.queue[0][1]
        return self.errors.get((0, plan[0][0])) if plan and self.errors else None

    # -- the story ---------------------------------------------------------------------------

    @property
    def event(self) -> object:
        """The dispatched message (the name the drawings and the first chapters use)."""
        return self.message

    @property
    def ok(self) -> bool:
        """True when no handler failed."""
        return not self.errors

    @property
    def returned(self) -> object:
        """The answer of the dispatched command's handler (None for an event)."""
        plan = self.queue[0][1]
        return self.returns.get((0, plan[0][0])) if plan and self.returns else None

    @property
    def timed(self) -> bool:
        """True when the bus recorded when each handler call started and ended."""
        return bool(self.timings)

    @property
    def calls(self) -> tuple[HandlerCall, ...]:
        """Every handler call, in the order they ran."""
        return self._read_story()[0]

    @property
    def events(self) -> tuple[EventRecord, ...]:
        """Every message of the cascade, in the order they were handled."""
        return self._read_story()[1]

    def _read_story(self) -> Story:
        if self._story is not None:
            return self._story
        story = _build_story(self)
        if self.finished:  # a running cascade still changes: build its story afresh each time
            self._story = story
        return story

    def is_complete(self) -> bool:
        """False while the cascade is still running (a handler looking at its own dispatch),
        or when it was stopped part way (fail-fast, or the cascade limit)."""
        return self.finished

    @property
    def failures(self) -> list[HandlerCall]:
        """The handler calls that raised."""
        return [call for call in self.calls if call.error is not None]

    @property
    def unhandled(self) -> list[EventRecord]:
        """Messages no handler listened to (a typo'd type, or a handler not yet written)."""
        return [record for record in self.events if record.unhandled]

    @property
    def depth(self) -> int:
        """How many generations the cascade had: 0 when no handler produced a message."""
        return max(record.depth for record in self.events)

    def handled(self, handler: Callable[..., Any] | str) -> list[HandlerCall]:
        """The calls of one handler (the function, or its name)."""
        return [call for call in self.calls if handler in (call.handler, call.name)]

    def exception_group(self) -> ExceptionGroup[Exception] | None:
        """The failures as one ``ExceptionGroup`` (None when nothing failed).

        Each exception gets a note naming the handler and the message it was handling.
        """
        if self.ok:
            return None
        errors = []
        for call in self.failures:
            assert call.error is not None
            note = f"in handler {call.name} for {safe_repr(self.queue[call.event_index][0])}"
            if note not in getattr(call.error, "__notes__", ()):
                call.error.add_note(note)
            errors.append(call.error)
        return ExceptionGroup(
            f"{plural(len(errors), 'handler')} failed while dispatching "
            f"{type(self.message).__name__}",
            errors,
        )

    def raise_if_failed(self) -> DispatchResult:
        """Raise the failures as an ``ExceptionGroup`` (always a group, so ``except*`` works
        however many failed); return self when there were none. A failed *command* needs no
        call: its error reaches the caller of ``dispatch`` as itself."""
        group = self.exception_group()
        if group is not None:
            raise group
        return self

    def __iter__(self) -> Iterator[EventRecord]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.queue)

    def __repr__(self) -> str:
        plans = [plan for _, plan in self.queue]
        parts = [
            plural(len(self.queue), "message" if self._has_commands() else "event"),
            plural(sum(len(plan) for plan in plans), "handler call"),
        ]
        if self.errors:
            parts.append(plural(len(self.errors), "failure"))
        unhandled = sum(1 for plan in plans if not plan)
        if unhandled:
            parts.append(f"{unhandled} unhandled")
        return f"DispatchResult({type(self.message).__name__}: {', '.join(parts)})"

    def _has_commands(self) -> bool:
        from eda_lesson.core.messages import Command

        return any(isinstance(message, Command) for message, _ in self.queue)

    def describe(self) -> str:
        """The cascade as a plain-text step table, one line per handler call."""
        lines = [repr(self)]
        width = max(len(_short(r)) for r in self.events)
        for record in self.events:
            label = f"#{record.index} {_short(record)}".ljust(width + 4)
            indent = "  " * record.depth
            if record.unhandled:
                lines.append(f"{indent}{label} -- no handler")
            for step in record.handled_by:
                call = self.calls[step - 1]
                lines.append(f"{indent}{label} -> {step}. {call.name}: {_outcome(call)}")
                label = " " * len(label)
        return "\n".join(lines)


class CascadeLimitError(RuntimeError):
    """A cascade grew past the bus's ``max_cascade``: some handlers keep answering each other,
    or a generator never stops. ``result`` holds the story up to the point where it stopped.
    """

    def __init__(self, result: DispatchResult, limit: int) -> None:
        self.result = result
        counts = Counter(type(message).__name__ for message, _ in result.queue)
        repeating = ", ".join(f"{name} x{count}" for name, count in counts.most_common(3))
        word = "messages" if result._has_commands() else "events"
        super().__init__(
            f"the cascade started by {type(result.message).__name__} passed {limit} {word} and "
            f"was stopped; these {word[:-1]} types kept repeating: {repeating}. A handler "
            f"probably answers an event with one that leads back to it, or yields without end; "
            "if the cascade really is this long, raise the limit with EventBus(max_cascade=...)"
        )


class UnhandledCommandError(LookupError):
    """A command was dispatched (or produced) but no handler is registered for its type."""


def _build_story(cascade: DispatchResult) -> Story:
    """Turn what the bus wrote down into records (a partial story while the cascade runs)."""
    if len(cascade.queue) == 1 and not (cascade.errors or cascade.returns or cascade.timings):
        message, plan = cascade.queue[0]  # the usual dispatch: one message, nothing to note
        quiet, steps = plan.quiet_story() if cascade.reached else ((), ())
        return quiet, (EventRecord(0, message, 0, None, steps),)
    produced: dict[Cause, list[int]] = {}
    for index, cause in cascade.causes.items():
        produced.setdefault(cause, []).append(index)
    errors, returns, timings = cascade.errors, cascade.returns, cascade.timings
    calls: list[HandlerCall] = []
    step_of: dict[Cause, int] = {}
    handled_by: list[tuple[int, ...]] = []
    for index, (_, plan) in enumerate(cascade.queue[: cascade.reached]):
        first = len(calls) + 1
        for subscription, _ in plan:
            key = (index, subscription)
            step_of[key] = step = len(calls) + 1
            started, ended = timings.get(key, _UNTIMED) if timings else _UNTIMED
            calls.append(
                HandlerCall(
                    step,
                    index,
                    subscription,
                    errors.get(key) if errors else None,
                    tuple(produced[key]) if key in produced else (),
                    started,
                    ended,
                    returns.get(key) if returns else None,
                )
            )
        handled_by.append(tuple(range(first, len(calls) + 1)))
    handled_by += [()] * (len(cascade.queue) - len(handled_by))  # queued, not handled yet
    depth = [0] * len(cascade.queue)
    records = []
    for index, (message, _) in enumerate(cascade.queue):
        cause_of = cascade.causes.get(index) if index else None
        if cause_of is not None:
            depth[index] = depth[cause_of[0]] + 1
        caused_by = None if cause_of is None else step_of.get(cause_of)
        records.append(EventRecord(index, message, depth[index], caused_by, handled_by[index]))
    return tuple(calls), tuple(records)


_UNTIMED = (None, None)


def safe_repr(value: object) -> str:
    """``repr(value)``, or a stand-in naming its type when its ``__repr__`` raises: telling
    what happened must never fail because of the thing it tells about."""
    try:
        text = repr(value)
    except Exception as error:
        return f"<{type(value).__name__} (its repr raised {type(error).__name__})>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"


def describe_value(value: object) -> str:
    """Name a value for an error message: what it is, not just its repr."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    text = safe_repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{text} ({article} {kind})"


def _short(record: EventRecord) -> str:
    text = safe_repr(record.event)
    return text if len(text) <= 48 else text[:45] + "..."


def _outcome(call: HandlerCall) -> str:
    if call.error is not None:
        return f"FAILED {type(call.error).__name__}: {_error_text(call.error)}"
    parts = ["ok"]
    if call.returned is not None:
        parts.append(f"returned {describe_value(call.returned)}")
    if call.produced:
        parts.append("produced " + ", ".join(f"#{index}" for index in call.produced))
    return ", ".join(parts)


def _error_text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return "<its str raised>"
