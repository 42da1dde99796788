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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eda_lesson.bus import Subscription

__all__ = [
    "CascadeLimitError",
    "DispatchResult",
    "EventRecord",
    "HandlerCall",
    "describe_value",
]

Plan = tuple[tuple["Subscription", Callable[[Any], Any]], ...]
"""The handlers one event type reaches, in call order, each with its middleware-wrapped call."""

Cause = tuple[int, "Subscription"]
"""(index of the event being handled, the subscription whose handler produced the event)."""


@dataclass(frozen=True)
class HandlerCall:
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


@dataclass(frozen=True)
class EventRecord:
    """One event of the cascade. ``index`` 0 is the dispatched event; ``depth`` counts the
    handler calls between it and the dispatched event; ``caused_by`` is the step of the
    handler call that produced it (None for the dispatched event)."""

    index: int
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

    __slots__ = ("causes", "errors", "inbox", "plans", "queue", "timings")

    def __init__(self, event: object, plan: Plan) -> None:
        self.queue: list[object] = [event]
        self.plans: list[Plan] = [plan]
        self.causes: dict[int, Cause] = {}
        self.errors: dict[Cause, Exception] = {}
        self.inbox: list[object] = []
        self.timings: dict[Cause, tuple[float, float]] = {}

    def enqueue(self, event: object, cause: Cause) -> None:
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
    __slots__ = ("_story", "event", "log", "plan")

    event: object
    """The event that was dispatched."""
    plan: Plan
    log: CascadeLog | None
    _story: tuple[tuple[HandlerCall, ...], tuple[EventRecord, ...]]

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
        return self._read_story()[0]

    @property
    def events(self) -> tuple[EventRecord, ...]:
        """Every event of the cascade, in the order they were handled."""
        return self._read_story()[1]

    def _read_story(self) -> tuple[tuple[HandlerCall, ...], tuple[EventRecord, ...]]:
        """Build the readable records from the raw log, once."""
        try:
            return self._story
        except AttributeError:
            pass
        queue, plans, causes, errors = self._raw()
        timings = self.log.timings if self.log is not None else {}
        produced: dict[Cause, list[int]] = {}
        for event_index, cause in causes.items():
            produced.setdefault(cause, []).append(event_index)
        calls: list[HandlerCall] = []
        step_of: dict[Cause, int] = {}
        handled_by: list[list[int]] = [[] for _ in queue]
        for index, plan in enumerate(plans):
            for subscription, _ in plan:
                key = (index, subscription)
                step_of[key] = len(calls) + 1
                handled_by[index].append(len(calls) + 1)
                calls.append(
                    HandlerCall(
                        step=len(calls) + 1,
                        event_index=index,
                        subscription=subscription,
                        error=errors.get(key),
                        produced=tuple(produced.get(key, ())),
                        started=timings[key][0] if key in timings else None,
                        ended=timings[key][1] if key in timings else None,
                    )
                )
        depth = [0] * len(queue)
        records = []
        for index, event in enumerate(queue):
            cause_of = causes.get(index)
            if cause_of is not None:
                depth[index] = depth[cause_of[0]] + 1
            records.append(
                EventRecord(
                    index=index,
                    event=event,
                    depth=depth[index],
                    caused_by=None if cause_of is None else step_of[cause_of],
                    handled_by=tuple(handled_by[index]),
                )
            )
        if self.is_complete():
            self._story = (tuple(calls), tuple(records))
        return tuple(calls), tuple(records)

    def is_complete(self) -> bool:
        """False while the cascade is still running (a handler looking at its own dispatch)."""
        queue, plans, _, _ = self._raw()
        return len(plans) == len(queue)

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
