"""The event bus: register handlers for event types, dispatch events, get the story back.

This is the whole core in one file. It knows nothing of drawings, widgets, retries, async
code, stores or brokers: those are separate modules that build on it.

How a dispatch runs
-------------------
``dispatch(event)`` starts a *cascade*. It puts the event in a queue and handles the queue in
order: for each event it calls every handler that listens to the event's class or one of its
base classes. A handler may produce new events, by returning one (or an iterable of them) or by
calling ``bus.dispatch`` itself; those go to the back of the queue and are handled after the
current event's handlers have all run. So a cascade is breadth-first and never recursive, and
each thread that dispatches has a cascade of its own.

A handler that raises does not stop the others: the failure is recorded in the
:class:`~eda_lesson.result.DispatchResult` that ``dispatch`` returns, beside every event and
every handler call of the cascade.

Call order
----------
For an event of class ``C`` the handlers run in the order of ``C.__mro__``: first those
registered for ``C`` itself, then those for its base classes, ``object`` last. Within one class
they run in registration order. A handler reachable through several classes runs once, at its
first place.

Middleware
----------
A middleware is a function ``middleware(call, subscription) -> call``: it receives the next
callable (which takes an event) and the subscription being wrapped, and returns a new callable.
``bus.use(a, b)`` makes ``a`` the outermost layer; middleware given to ``register`` sits inside
the bus-wide layers, closest to the handler.
"""

from __future__ import annotations

import inspect
import threading
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from eda_lesson.result import (
    CascadeLimitError,
    CascadeLog,
    DispatchResult,
    Plan,
    describe_value,
)

__all__ = [
    "EventBus",
    "Handler",
    "Middleware",
    "Subscription",
    "checked_event",
    "events_returned",
    "handler_name",
]

Handler = Callable[[Any], Any]
"""A handler takes one event. It returns None, a new event, or an iterable of new events."""

Middleware = Callable[[Handler, "Subscription"], Handler]
"""``middleware(call, subscription) -> call``: wraps the next callable of a handler."""

H = TypeVar("H", bound=Handler)

#: Values a handler may not return as an event: a plain value is almost always a mistake.
_NOT_EVENTS = (str, bytes, int, float, complex, bool, dict, set, frozenset, type)


@dataclass(frozen=True, eq=False)
class Subscription:
    """One handler registered for one event type, as the bus keeps it."""

    event_type: type
    handler: Handler
    middleware: tuple[Middleware, ...] = ()
    name: str = field(init=False)
    key: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", handler_name(self.handler))
        object.__setattr__(self, "key", _identity_key(self.handler))

    def __repr__(self) -> str:  # stable: no memory addresses in notebook output
        return f"Subscription({_type_name(self.event_type)} -> {self.name})"


class EventBus:
    """Routes each dispatched event to the handlers registered for its class.

    >>> bus = EventBus()
    >>> @dataclass(frozen=True)
    ... class Greeted:
    ...     name: str
    >>> def wave(event: Greeted) -> None:
    ...     print("hello", event.name)
    >>> _ = bus.register(Greeted, wave)
    >>> result = bus.dispatch(Greeted("Ada"))
    hello Ada
    >>> result.ok
    True

    ``fail_fast=True`` re-raises the first handler error at once (handy in tests);
    ``max_cascade`` bounds how many events one dispatch may handle before it stops with a
    :class:`~eda_lesson.result.CascadeLimitError`.
    """

    def __init__(
        self,
        *,
        fail_fast: bool = False,
        max_cascade: int = 1000,
        middleware: Iterable[Middleware] = (),
    ) -> None:
        if not isinstance(max_cascade, int) or max_cascade < 1:
            raise ValueError(f"max_cascade must be a positive whole number, got {max_cascade!r}")
        self.fail_fast = fail_fast
        self.max_cascade = max_cascade
        self._lock = threading.RLock()
        self._by_type: dict[type, list[Subscription]] = {}
        self._middleware: tuple[Middleware, ...] = ()
        self._plans: dict[type, Plan] = {}
        # Per thread, ``running`` holds the result of the cascade under way (at most one).
        # Appending and popping a list is the cheapest way to mark "inside a dispatch".
        self._thread = threading.local()
        if middleware:
            self.use(*middleware)

    # ------------------------------------------------------------------ registration

    def register(self, event_type: type, handler: H, *, middleware: Iterable[Middleware] = ()) -> H:
        """Call ``handler(event)`` for every dispatched event of ``event_type`` or a subclass.

        Registering a handler again for the same type replaces the old registration in its
        place instead of adding a second one. "The same handler" means the same function, or
        a function with the same module and qualified name: that is what re-running a notebook
        cell produces. Lambdas, nested functions, bound methods and other callables are matched
        by identity only, so two different ones are never merged. Returns ``handler``.
        """
        _check_event_type(event_type, handler)
        _check_handler(handler, event_type)
        layers = tuple(middleware)
        for layer in layers:
            _check_middleware(layer)
        subscription = Subscription(event_type, handler, layers)
        with self._lock:
            subscriptions = self._by_type.setdefault(event_type, [])
            for index, existing in enumerate(subscriptions):
                if existing.key == subscription.key:
                    subscriptions[index] = subscription
                    break
            else:
                subscriptions.append(subscription)
            self._plans = {}
        return handler

    @overload
    def subscribe(self, handler_or_type: H, /) -> H: ...

    @overload
    def subscribe(self, handler_or_type: type, /, *more_types: type) -> Callable[[H], H]: ...

    def subscribe(self, handler_or_type: Any, /, *more_types: type) -> Any:
        """Register a function as a decorator.

        ``@bus.subscribe`` reads the event type from the first parameter's annotation
        (``def handle(event: OrderPaid)``; a union such as ``OrderPaid | OrderCancelled``
        subscribes to each member). ``@bus.subscribe(OrderPaid)`` names the type instead.
        """
        if isinstance(handler_or_type, type):
            event_types = (handler_or_type, *more_types)

            def decorate(handler: H) -> H:
                for event_type in event_types:
                    self.register(event_type, handler)
                return handler

            return decorate
        if more_types:
            raise TypeError(
                "subscribe() takes event classes, or is used bare as @bus.subscribe; "
                f"got {describe_value(handler_or_type)} first"
            )
        handler = handler_or_type
        if not callable(handler):
            raise TypeError(
                f"@bus.subscribe decorates a handler function, got {describe_value(handler)}"
            )
        for event_type in _annotated_event_types(handler):
            self.register(event_type, handler)
        return handler

    def unregister(self, event_type: type, handler: Handler) -> None:
        """Remove ``handler`` from ``event_type`` (matched as :meth:`register` matches)."""
        key = _identity_key(handler)
        with self._lock:
            subscriptions = self._by_type.get(event_type, [])
            for index, existing in enumerate(subscriptions):
                if existing.key == key:
                    del subscriptions[index]
                    if not subscriptions:
                        del self._by_type[event_type]
                    self._plans = {}
                    return
        registered = ", ".join(s.name for s in subscriptions) or "none"
        raise ValueError(
            f"{handler_name(handler)} is not registered for {_type_name(event_type)} "
            f"(registered there: {registered}); nothing was removed"
        )

    def use(self, *middleware: Middleware) -> None:
        """Wrap every handler in ``middleware``; the first one given is the outermost layer."""
        for layer in middleware:
            _check_middleware(layer)
        with self._lock:
            self._middleware = self._middleware + middleware
            self._plans = {}

    def handlers_for(self, event_type: type | object) -> list[Handler]:
        """The handlers a dispatch of ``event_type`` (a class, or an event) calls, in order."""
        cls = event_type if isinstance(event_type, type) else type(event_type)
        return [subscription.handler for subscription, _ in self.plan_for(cls)]

    def plan_for(self, event_type: type) -> Plan:
        """The subscriptions ``event_type`` reaches, in call order, each with its wrapped call.

        For buses built on this one (async, replay); a learner wants :meth:`handlers_for`.
        """
        return self._plan_for_type(event_type)

    def subscriptions(self) -> list[Subscription]:
        """Every registration, grouped by event type in the order the types were first used."""
        with self._lock:
            return [s for subscriptions in self._by_type.values() for s in subscriptions]

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The bus-wide middleware, outermost first."""
        return self._middleware

    def describe(self) -> str:
        """A plain-text table of all registrations, for notebooks and logs."""
        with self._lock:
            groups = [(t, list(subs)) for t, subs in self._by_type.items()]
        count = sum(len(subs) for _, subs in groups)
        lines = [
            f"{type(self).__name__} with {count} handler{'s' * (count != 1)} "
            f"for {len(groups)} event type{'s' * (len(groups) != 1)}"
        ]
        for event_type, subs in groups:
            lines.append(f"  {_type_name(event_type)}")
            lines.extend(f"    -> {s.name}" for s in subs)
        if self._middleware:
            lines.append(
                "  middleware (outermost first): "
                + ", ".join(handler_name(m) for m in self._middleware)
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        count = sum(len(subs) for subs in self._by_type.values())
        return f"{type(self).__name__}({count} handlers for {len(self._by_type)} event types)"

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, event: object) -> DispatchResult:
        """Handle ``event`` and the whole cascade it starts; return what happened.

        Called from inside a handler, the event joins the running cascade instead (it is
        handled after the current event's handlers) and the running cascade's result, still
        being filled in, is returned.
        """
        running: list[DispatchResult]
        try:
            running = self._thread.running
        except AttributeError:  # first dispatch in this thread
            running = self._thread.running = []
        if running:
            return running[-1].enqueue_from_handler(checked_event(event))
        try:
            plan = self._plans[type(event)]
        except KeyError:
            plan = self._plan_for_event(event)
        result = DispatchResult()
        result.event = event
        result.plan = plan
        result.log = None
        running.append(result)
        try:
            index = 0
            while True:
                for subscription, call in plan:
                    try:
                        produced = call(event)
                    except Exception as error:
                        self._fail(result, index, subscription, error)
                        produced = None
                    if produced is not None or result.log is not None:
                        self._collect(result, index, subscription, produced)
                if result.log is None:  # nothing was produced, nothing failed: the common case
                    return result
                index += 1
                if not self._next_in_queue(result.log, index):
                    return result
                event, plan = result.log.queue[index], result.log.plans[index]
        finally:
            running.pop()

    def _next_in_queue(self, log: CascadeLog, index: int) -> bool:
        """Plan the queued event at ``index``; False (and the log marked finished) when the
        queue is done. Buses built on this one share it."""
        if index == len(log.queue):
            log.finished = True
            return False
        event = log.queue[index]
        log.plans.append(self._plans.get(type(event)) or self._plan_for_event(event))
        return True

    def _fail(
        self, result: DispatchResult, index: int, subscription: Subscription, error: Exception
    ) -> None:
        result.cascade_log().errors[(index, subscription)] = error
        if self.fail_fast:
            error.add_note(
                f"in handler {subscription.name} for {result.cascade_log().queue[index]!r}"
            )
            raise error

    def _collect(
        self, result: DispatchResult, index: int, subscription: Subscription, produced: object
    ) -> None:
        """Queue what a handler produced (dispatched, then returned) as caused by that call."""
        log = result.cascade_log()
        cause = (index, subscription)
        if log.inbox:
            for event in log.inbox:
                log.enqueue(event, cause)
            log.inbox = []
        if produced is not None:
            if type(produced) in self._plans:  # an event of a type seen before: the usual case
                log.enqueue(produced, cause)
            else:
                try:
                    for event in events_returned(produced, subscription):
                        log.enqueue(event, cause)
                except Exception as error:  # a bad return value, or a generator that raised
                    self._fail(result, index, subscription, error)
        if len(log.queue) > self.max_cascade:
            raise CascadeLimitError(result, self.max_cascade)

    # ------------------------------------------------------------------ plans

    def _plan_for_event(self, event: object) -> Plan:
        checked_event(event)
        return self._plan_for_type(type(event))

    def _plan_for_type(self, event_type: type) -> Plan:
        plan = self._plans.get(event_type)
        if plan is not None:
            return plan
        with self._lock:
            seen: set[object] = set()
            pairs = []
            for cls in event_type.__mro__:
                for subscription in self._by_type.get(cls, ()):
                    if subscription.key not in seen:
                        seen.add(subscription.key)
                        pairs.append((subscription, self._wrap(subscription)))
            plan = Plan(pairs)
            self._plans[event_type] = plan
            return plan

    def _wrap(self, subscription: Subscription) -> Handler:
        call = subscription.handler
        for layer in reversed(self._middleware + subscription.middleware):
            call = layer(call, subscription)
            if not callable(call):
                raise TypeError(
                    f"middleware {handler_name(layer)} returned {describe_value(call)} "
                    "instead of a callable; a middleware returns the function that wraps `call`"
                )
        return call


# ---------------------------------------------------------------------- checks and names


def handler_name(handler: object) -> str:
    """A short, stable, readable name for a handler or middleware."""
    if isinstance(handler, types.MethodType):
        return handler_name(handler.__func__)
    qualname = getattr(handler, "__qualname__", None)
    if isinstance(qualname, str):
        return qualname.replace(".<locals>", "")
    inner = getattr(handler, "func", None)  # functools.partial
    if inner is not None and callable(inner):
        return f"partial({handler_name(inner)})"
    return type(handler).__name__


def _identity_key(handler: object) -> object:
    """What makes two registrations "the same handler" (see :meth:`EventBus.register`).

    Ids are safe here: the bus keeps every registered handler alive, so an id cannot be reused
    while a registration holds it.
    """
    if isinstance(handler, types.FunctionType):
        qualname = handler.__qualname__
        if "<" not in qualname:  # not a lambda, not a function defined inside another
            return ("function", handler.__module__, qualname)
    if isinstance(handler, types.MethodType):  # a new object each time obj.method is read
        return ("method", id(handler.__self__), id(handler.__func__))
    return ("object", id(handler))


def _type_name(cls: type) -> str:
    return getattr(cls, "__qualname__", repr(cls))


def _check_event_type(event_type: object, handler: object) -> None:
    if isinstance(event_type, type):
        if issubclass(event_type, (*_NOT_EVENTS, type(None))):
            raise TypeError(
                f"register(): {_type_name(event_type)} is not an event class; events are "
                "instances of your own classes (a frozen dataclass), or use object for all events"
            )
        return
    if callable(event_type) and isinstance(handler, type):
        raise TypeError(
            f"register() takes the event class first and the handler second; got "
            f"{handler_name(event_type)} and {_type_name(handler)}: "
            f"write register({_type_name(handler)}, {handler_name(event_type)})"
        )
    hint = ""
    if event_type is not None and not isinstance(event_type, (str, int, float)):
        hint = f": pass the class {_type_name(type(event_type))} itself, not an instance"
    raise TypeError(f"register() takes an event class, got {describe_value(event_type)}{hint}")


def _check_handler(handler: object, event_type: type) -> None:
    if not callable(handler):
        raise TypeError(
            f"register({_type_name(event_type)}, handler): the handler must be callable, "
            f"got {describe_value(handler)}"
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    try:
        signature.bind(object())
    except TypeError:
        raise TypeError(
            f"handler {handler_name(handler)}{signature} cannot be called with one event; "
            "a handler takes exactly one argument, the event (give any others defaults)"
        ) from None


def _check_middleware(layer: object) -> None:
    if not callable(layer):
        raise TypeError(
            f"middleware must be a function middleware(call, subscription) -> call, "
            f"got {describe_value(layer)}"
        )


def _annotated_event_types(handler: Handler) -> tuple[type, ...]:
    """The event classes named by the annotation of the handler's first parameter."""
    name = handler_name(handler)
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    if not parameters:
        raise TypeError(f"@bus.subscribe: {name} takes no parameter; a handler takes the event")
    first = parameters[0]
    fix = (
        f"annotate it (def {name}({first.name}: OrderCreated)) "
        "or write @bus.subscribe(OrderCreated)"
    )
    if first.annotation is inspect.Parameter.empty:
        raise TypeError(
            f"@bus.subscribe cannot tell which event {name} handles: its first parameter "
            f"{first.name!r} has no type annotation; {fix}"
        )
    annotation = first.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(handler)[first.name]
        except Exception as error:  # NameError and friends from evaluating the string
            raise TypeError(
                f"@bus.subscribe could not resolve the annotation {first.annotation} of "
                f"{name} ({error}); define the class at module level, or name it: "
                f"@bus.subscribe(TheEventClass)"
            ) from None
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if not all(
        isinstance(m, type) and not issubclass(m, (*_NOT_EVENTS, type(None))) for m in members
    ):
        raise TypeError(
            f"@bus.subscribe: the annotation {annotation!r} of {name} is not an event class; {fix}"
        )
    return tuple(members)


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def checked_event(event: object) -> object:
    """``event`` itself, or a TypeError saying why it cannot be dispatched."""
    if isinstance(event, type):
        raise TypeError(
            f"dispatch() takes an event instance, got the class {_type_name(event)}; "
            f"create one first: dispatch({_type_name(event)}(...))"
        )
    if event is None or isinstance(event, (*_NOT_EVENTS, list, tuple)):
        raise TypeError(
            f"dispatch() takes an event instance, got {describe_value(event)}; "
            "define an event class (a frozen dataclass) and dispatch an instance of it"
        )
    return event


def events_returned(produced: object, subscription: Subscription) -> list[object]:
    """The events in a handler's return value: one event, or a list, tuple or generator of them."""
    events: list[object]
    if isinstance(produced, (list, tuple)) or hasattr(type(produced), "__next__"):
        events = list(produced)  # type: ignore[call-overload]
    else:
        events = [produced]
    for event in events:
        if event is None or isinstance(event, _NOT_EVENTS):
            raise TypeError(
                f"handler {subscription.name} returned {describe_value(event)}; a handler "
                "returns None, an event, or a list of events"
            )
    return events
