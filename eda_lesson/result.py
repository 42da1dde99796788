"""The story of one dispatch: every event, every handler call, what each produced or raised.

:class:`DispatchResult` is what :meth:`EventBus.dispatch <eda_lesson.bus.EventBus.dispatch>`
returns. While the cascade runs it only appends to a few lists (that keeps dispatch fast);
the readable records, :class:`EventRecord` and :class:`HandlerCall`, are built the first time
somebody asks for them. Graphs, drawings and explorers are all drawn from these records.

This module records and tells; it never calls a handler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from eda_lesson.bus import Subscription

__all__ = [
    "CascadeLimitError",
    "DispatchResult",
    "EventRecord",
    "HandlerCall",
    "describe_value",
]


class Plan(tuple[tuple["Subscription", Callable[[Any], Any]], ...]):
    """The handlers one event type reaches, in call order: (subscription, wrapped call) pairs.

    The bus builds one plan per event type and reuses it until registrations change. A plan
    also keeps the call records of a dispatch that ran all its handlers without incident,
    since those are the same for every such dispatch.
    """

    _quiet: tuple[tuple[HandlerCall, ...], tuple[int, ...]]

    def quiet_story(self) -> tuple[tuple[HandlerCall, ...], tuple[int, ...]]:
        """The call records and steps of a dispatch in which every handler returned None."""
        try:
            return self._quiet
        except AttributeError:
            calls = tuple(
                HandlerCall(step, 0, subscription, None, ())
                for step, (subscription, _) in enumerate(self, 1)
            )
            self._quiet = (calls, tuple(call.step for call in calls))
            return self._quiet


Story = tuple[tuple["HandlerCall", ...], tuple["EventRecord", ...]]
"""The readable records of a cascade: its handler calls and its events."""

Cause = tuple[int, "Subscription"]
"""(index of the event being handled, the subscription whose handler produced the event)."""


# The records are named tuples, not frozen dataclasses: equally immutable and readable, and
# about ten times cheaper to build, which matters when a drawing reads thousands of them.


class HandlerCall(NamedTuple):
    """One call of one handler for one event of the cascade.

    ``step`` numbers the calls of the cascade from 1 in the order they ran.
    """

    step: int
    event_index: int
    subscription: Subscription
    error: Exception | None
    produced: tuple[int, ...]
    started: float | None = None
    """When the call started, on the bus's clock (buses that keep time, such as the async one)."""
    ended: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def handler(self) -> Callable[[Any], Any]:
        return self.subscription.handler

    @property
    def name(self) -> str:
        return self.subscription.name


class EventRecord(NamedTuple):
    """One event of the cascade. ``index`` 0 is the dispatched event; ``depth`` counts the
    handler calls between it and the dispatched event; ``caused_by`` is the step of the
    handler call that produced it (None for the dispatched event)."""

    index: int  # type: ignore[assignment]  # shadows tuple.index(), which records never need
    event: object
    depth: int
    caused_by: int | None
    handled_by: tuple[int, ...]

    @property
    def type_name(self) -> str:
        return type(self.event).__name__

    @property
    def unhandled(self) -> bool:
        return not self.handled_by


class CascadeLog:
    """The raw record of a cascade that went beyond "every handler returned None".

    ``queue[0]`` is the dispatched event; ``plans[i]`` is the plan used for ``queue[i]``.
    """

    __slots__ = ("causes", "errors", "finished", "inbox", "plans", "queue", "story", "timings")

    def __init__(self, event: object, plan: Plan) -> None:
        self.queue: list[object] = [event]
        self.plans: list[Plan] = [plan]
        self.causes: dict[int, Cause] = {}
        self.errors: dict[Cause, Exception] = {}
        self.inbox: list[object] = []
        self.timings: dict[Cause, tuple[float, float]] = {}
        self.finished = False
        self.story: Story | None = None

    def enqueue(self, event: object, cause: Cause) -> None:
        """Add an event produced by the handler call ``cause`` to the back of the queue."""
        self.causes[len(self.queue)] = cause
        self.queue.append(event)


class DispatchResult:
    """What happened during one dispatch, cascade included.

    ``ok`` says whether every handler succeeded; ``events`` and ``calls`` are the records of
    the cascade in the order things happened; ``describe()`` tells it as text;
    ``raise_if_failed()`` turns failures into an ``ExceptionGroup``.
    """

    # Most dispatches are one event whose handlers all return None: then ``event`` and
    # ``plan`` are the whole story and nothing else is allocated. The bus creates ``log``
    # the first time a handler produces an event, dispatches one, or fails.
    # It has no __init__ on purpose: the bus fills the three slots itself, which is
    # measurably cheaper on the hot path than a call to __init__.
    __slots__ = ("event", "log", "plan")

    event: object
    """The event that was dispatched."""
    plan: Plan
    log: CascadeLog | None

    # -- recording (used by the bus while the cascade runs) ---------------------------------

    def cascade_log(self) -> CascadeLog:
        if self.log is None:
            self.log = CascadeLog(self.event, self.plan)
        return self.log

    def enqueue_from_handler(self, event: object) -> DispatchResult:
        """An event a running handler dispatched; it is queued when that handler returns."""
        self.cascade_log().inbox.append(event)
        return self

    # -- the story ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True when no handler failed."""
        return self.log is None or not self.log.errors

    def _raw(self) -> tuple[list[object], list[Plan], dict[int, Cause], dict[Cause, Exception]]:
        log = self.log
        if log is None:
            return [self.event], [self.plan], {}, {}
        return log.queue, log.plans, log.causes, log.errors

    @property
    def timed(self) -> bool:
        """True when the bus recorded when each handler call started and ended."""
        return self.log is not None and bool(self.log.timings)

    @property
    def calls(self) -> tuple[HandlerCall, ...]:
        """Every handler call, in the order they ran."""
        if self.log is None:  # one event, every handler returned None: the plan is the story
            return self.plan.quiet_story()[0]
        return self._story(self.log)[0]

    @property
    def events(self) -> tuple[EventRecord, ...]:
        """Every event of the cascade, in the order they were handled."""
        if self.log is None:
            steps = self.plan.quiet_story()[1]
            return (tuple.__new__(EventRecord, (0, self.event, 0, None, steps)),)
        return self._story(self.log)[1]

    @staticmethod
    def _story(log: CascadeLog) -> Story:
        """The records of a logged cascade; built once, when the cascade is complete."""
        if log.story is not None:
            return log.story
        story = _build_story(log)
        if log.finished:
            log.story = story
        return story

    def is_complete(self) -> bool:
        """False while the cascade is still running (a handler looking at its own dispatch),
        or when it was stopped part way (fail-fast, or the cascade limit)."""
        # Without a log nothing was ever queued, and the bus hands the result out only at the end.
        return self.log is None or self.log.finished

    @property
    def failures(self) -> list[HandlerCall]:
        """The handler calls that raised."""
        return [call for call in self.calls if call.error is not None]

    @property
    def unhandled(self) -> list[EventRecord]:
        """Events no handler listened to (a typo'd type, or a handler not yet written)."""
        return [record for record in self.events if record.unhandled]

    @property
    def depth(self) -> int:
        """How many generations the cascade had: 0 when no handler produced an event."""
        return max(record.depth for record in self.events)

    def handled(self, handler: Callable[[Any], Any] | str) -> list[HandlerCall]:
        """The calls of one handler (the function, or its name)."""
        return [call for call in self.calls if handler in (call.handler, call.name)]

    def exception_group(self) -> ExceptionGroup[Exception] | None:
        """The failures as one ``ExceptionGroup`` (None when nothing failed).

        Each exception gets a note naming the handler and the event it was handling.
        """
        if self.ok:
            return None
        errors = []
        for call in self.failures:
            assert call.error is not None
            note = f"in handler {call.name} for {self.events[call.event_index].event!r}"
            if note not in getattr(call.error, "__notes__", ()):
                call.error.add_note(note)
            errors.append(call.error)
        count = len(errors)
        return ExceptionGroup(
            f"{count} handler{'s' * (count != 1)} failed while dispatching "
            f"{type(self.event).__name__}",
            errors,
        )

    def raise_if_failed(self) -> DispatchResult:
        """Raise the failures as an ``ExceptionGroup``; return self when there were none."""
        group = self.exception_group()
        if group is not None:
            raise group
        return self

    def __iter__(self) -> Iterator[EventRecord]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._raw()[0])

    def __repr__(self) -> str:
        queue, plans, _, errors = self._raw()
        parts = [
            _plural(len(queue), "event"),
            _plural(sum(len(plan) for plan in plans), "handler call"),
        ]
        if errors:
            parts.append(_plural(len(errors), "failure"))
        unhandled = sum(1 for plan in plans if not plan)
        if unhandled:
            parts.append(f"{unhandled} unhandled")
        return f"DispatchResult({type(self.event).__name__}: {', '.join(parts)})"

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
    """A cascade grew past the bus's ``max_cascade``: some handlers keep answering each other.

    ``result`` holds the story up to the point where the bus stopped.
    """

    def __init__(self, result: DispatchResult, limit: int) -> None:
        self.result = result
        counts = Counter(type(record.event).__name__ for record in result.events)
        repeating = ", ".join(f"{name} x{count}" for name, count in counts.most_common(3))
        super().__init__(
            f"the cascade started by {type(result.event).__name__} passed {limit} events and was "
            f"stopped; these event types kept repeating: {repeating}. A handler probably answers "
            "an event with one that leads back to it; if the cascade really is this long, "
            "raise the limit with EventBus(max_cascade=...)"
        )


def _build_story(log: CascadeLog) -> Story:
    """Turn the raw log of a cascade into its records (a partial story while it runs)."""
    produced: dict[Cause, list[int]] = {}
    for event_index, cause in log.causes.items():
        produced.setdefault(cause, []).append(event_index)
    calls: list[HandlerCall] = []
    step_of: dict[Cause, int] = {}
    handled_by: list[tuple[int, ...]] = []
    for index, plan in enumerate(log.plans):
        first = len(calls) + 1
        for subscription, _ in plan:
            key = (index, subscription)
            step_of[key] = step = len(calls) + 1
            started, ended = log.timings.get(key, (None, None))
            error, made = log.errors.get(key), tuple(produced.get(key, ()))
            calls.append(HandlerCall(step, index, subscription, error, made, started, ended))
        handled_by.append(tuple(range(first, len(calls) + 1)))
    handled_by += [()] * (len(log.queue) - len(handled_by))  # queued, not handled yet
    depth = [0] * len(log.queue)
    records = []
    for index, event in enumerate(log.queue):
        cause_of = log.causes.get(index)
        if cause_of is not None:
            depth[index] = depth[cause_of[0]] + 1
        caused_by = None if cause_of is None else step_of.get(cause_of)
        records.append(EventRecord(index, event, depth[index], caused_by, handled_by[index]))
    return tuple(calls), tuple(records)


def describe_value(value: object) -> str:
    """Name a value for an error message: what it is, not just its repr."""
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{text} ({article} {kind})"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _short(record: EventRecord) -> str:
    text = repr(record.event)
    return text if len(text) <= 48 else text[:45] + "..."


def _outcome(call: HandlerCall) -> str:
    if call.error is not None:
        return f"FAILED {type(call.error).__name__}: {call.error}"
    if call.produced:
        return "ok, produced " + ", ".join(f"#{index}" for index in call.produced)
    return "ok"
