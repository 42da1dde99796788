"""The message bus: commands and events, handlers with dependencies, one breadth-first queue.

This is the core in one file. It knows nothing of drawings, widgets, retries, stores or
brokers: those are separate modules that build on it. :class:`EventBus` runs handlers one
after another in the calling thread; :class:`~eda_lesson.core.asyncbus.AsyncEventBus` is its
sibling for ``async def`` handlers. Both share everything in :class:`BaseBus` and drive the
same queue, kept in a :class:`~eda_lesson.core.result.DispatchResult`.

Commands and events
-------------------
A *command* asks for something to be done (``Allocate``, ``PlaceOrder``): it subclasses
:class:`~eda_lesson.core.messages.Command`, has exactly one handler, and that handler's error
reaches the caller as itself; its return value is the caller's answer (``result.returned``).
An *event* says that something happened (``OrderPaid``): any other object, or a subclass of
``Event``; it has any number of handlers, and one handler failing does not stop the others.

How a dispatch runs
-------------------
``dispatch(message)`` puts the message in a queue and handles the queue in order, oldest
first. A handler produces new messages by returning them (one, or a list, tuple or generator
of them), by calling ``bus.dispatch`` itself, or by recording them on an aggregate that a
unit of work hands over (``collect_from``). Whatever it produced joins the back of the queue,
so a cascade is breadth-first and never recursive; each thread has a cascade of its own.

Handlers of an event run in the order of the event class's ``__mro__`` (those for the class
itself first, ``object`` last), in registration order within a class. A command's handler is
the one registered for the nearest command class in its ``__mro__``; handlers registered for
``object`` or :class:`Event` hear events only.

Dependencies
------------
A handler may take more parameters after the message (``def allocate(cmd, uow)``). The bus
fills them by name from ``EventBus(dependencies={"uow": uow})``; a parameter that nothing
provides and that has no default is refused when the handler is registered.

Middleware
----------
A middleware is a function ``middleware(call, subscription) -> call``: it receives the next
callable (which takes the message) and the subscription being wrapped, and returns a new
callable. ``bus.use(a, b)`` makes ``a`` the outermost layer; middleware given to ``register``
sits inside the bus-wide layers, closest to the handler. Handlers are wrapped when they are
registered, so a middleware that fails to wrap fails there, before anything has run.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from eda_lesson.core.checks import (
    Kind,
    annotated_message_types,
    check_handler,
    check_message_type,
    check_middleware,
    checked_dependencies,
    checked_message,
    checked_sources,
    dependency_names,
    draining,
    handler_name,
    identity_key,
    message_kind,
    produced_messages,
    refusal,
    type_name,
    unhandled_command_text,
    unwrapped,
    wrap_checked,
)
from eda_lesson.core.messages import Command
from eda_lesson.core.result import (
    CascadeLimitError,
    Cause,
    DispatchResult,
    Plan,
    UnhandledCommandError,
    describe_value,
    safe_repr,
)
from eda_lesson.core.text import plural

if TYPE_CHECKING:
    from eda_lesson.core.explain import Explanation

__all__ = [
    "PLAN_CACHE_SIZE",
    "BaseBus",
    "EventBus",
    "EventSource",
    "Handler",
    "Middleware",
    "Subscription",
    "require_sync_bus",
]

Handler = Callable[..., Any]
"""A handler takes the message first, then any dependencies by name. An event handler
returns None, a new message, or a list, tuple or generator of them; a command handler
returns its answer."""

Middleware = Callable[[Callable[[Any], Any], "Subscription"], Callable[[Any], Any]]
"""``middleware(call, subscription) -> call``: wraps the next callable of a handler."""

H = TypeVar("H", bound=Handler)


class EventSource(Protocol):
    """What ``collect_from`` takes: something that hands over new events once, such as a
    unit of work handing over the events its aggregates recorded and it committed."""

    def collect_new_events(self) -> Iterable[object]: ...


#: Plans kept at most; past it the cache starts again, so dynamically made classes can die.
PLAN_CACHE_SIZE = 1024

#: Registrations taken away that a bus remembers, to explain why a handler is not called.
REMOVED_KEPT = 256


@dataclass(frozen=True, eq=False)
class Subscription:
    """One handler registered for one message type, as the bus keeps it."""

    message_type: type
    handler: Handler
    middleware: tuple[Middleware, ...] = ()
    needs: tuple[str, ...] = ()
    """The names of the dependencies the bus passes to the handler."""
    name: str = field(init=False)
    key: tuple[Any, ...] = field(init=False, repr=False)
    is_command: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", handler_name(self.handler))
        object.__setattr__(self, "key", identity_key(self.handler))
        object.__setattr__(self, "is_command", issubclass(self.message_type, Command))

    def __repr__(self) -> str:  # stable: no memory addresses in notebook output
        return f"Subscription({type_name(self.message_type)} -> {self.name})"


class BaseBus:
    """What both buses share: registrations, dependencies, middleware, plans, and the steps
    of a cascade that do not wait (what to do after a handler call returned or raised).

    Use :class:`EventBus` or :class:`~eda_lesson.core.asyncbus.AsyncEventBus`; code that only
    reads registrations (drawings, ``describe``) takes either as a ``BaseBus``.
    """

    #: Whether ``async def`` handlers can run on this bus (the async sibling says True).
    runs_async_handlers = False

    def __init__(
        self,
        *,
        fail_fast: bool = False,
        max_cascade: int = 1000,
        middleware: Iterable[Middleware] = (),
        dependencies: Mapping[str, object] | None = None,
        collect_from: Iterable[EventSource] = (),
    ) -> None:
        if isinstance(max_cascade, bool) or not isinstance(max_cascade, int) or max_cascade < 1:
            raise ValueError(f"max_cascade must be a positive whole number, got {max_cascade!r}")
        self.fail_fast = fail_fast
        self.max_cascade = max_cascade
        self._lock = threading.RLock()
        self._registrations: dict[type, list[Subscription]] = {}
        self._calls: dict[Subscription, Callable[[Any], Any]] = {}
        self._plans: dict[type, Plan] = {}
        self._middleware: tuple[Middleware, ...] = ()
        self._dependencies: dict[str, object] = checked_dependencies(dependencies or {})
        self._collect_from: tuple[EventSource, ...] = checked_sources(collect_from)
        self._running = _RunningCascades()  # per thread: the sync bus's cascade under way
        #: The latest registrations taken away (replaced or unregistered), for explain().
        self.removed: deque[tuple[str, Subscription]] = deque(maxlen=REMOVED_KEPT)
        if middleware:
            self.use(*middleware)

    # ------------------------------------------------------------------ registration

    def register(
        self, message_type: type, handler: H, *, middleware: Iterable[Middleware] = ()
    ) -> H:
        """Call ``handler(message, **dependencies)`` for every dispatched ``message_type``.

        Registering the same handler again for the same type replaces the old registration
        in its place. "The same handler" means the same function, or a function with the
        same module and qualified name: that is what re-running a notebook cell produces.
        Lambdas, nested functions, bound methods and other callables are matched by
        identity only, so two different ones are never merged. A command type takes one
        handler; registering a different one is an error naming the first. Returns
        ``handler``. Nothing changes when registration fails.
        """
        check_message_type(message_type, handler)
        check_handler(handler, message_type, self.runs_async_handlers)
        layers = tuple(middleware)
        for layer in layers:
            check_middleware(layer)
        needs = dependency_names(handler, message_type, self._dependencies)
        subscription = Subscription(message_type, handler, layers, needs)
        with self._lock:
            registered = self._registrations.get(message_type, [])
            place = _place_of(registered, subscription.key)
            if subscription.is_command and registered and place is None:
                raise ValueError(
                    f"{type_name(message_type)} is a command and already has its handler, "
                    f"{registered[0].name}; a command has exactly one handler. Unregister it "
                    "first, or make the other handler listen to an event the command produces"
                )
            call = self._wrap(subscription, self._middleware, self._dependencies)
            if place is None:
                self._registrations.setdefault(message_type, []).append(subscription)
            else:
                del self._calls[registered[place]]
                self.removed.append(("replaced", registered[place]))
                registered[place] = subscription
            self._calls[subscription] = call
            self._plans = {}
        return handler

    @overload
    def subscribe(self, handler_or_type: H, /) -> H: ...

    @overload
    def subscribe(self, handler_or_type: type, /, *more_types: type) -> Callable[[H], H]: ...

    def subscribe(self, handler_or_type: Any, /, *more_types: type) -> Any:
        """Register a function as a decorator.

        ``@bus.subscribe`` reads the message type from the first parameter's annotation
        (``def handle(event: OrderPaid)``; a union such as ``OrderPaid | OrderCancelled``
        subscribes to each member). ``@bus.subscribe(OrderPaid)`` names the type instead.
        """
        if isinstance(handler_or_type, type):
            message_types = (handler_or_type, *more_types)
            not_types = [value for value in more_types if not isinstance(value, type)]
            if not_types:
                raise TypeError(
                    "subscribe() takes message classes and returns a decorator, got "
                    f"{describe_value(not_types[0])} among them; to register a function "
                    "directly, call bus.register(MessageType, handler)"
                )

            def decorate(handler: H) -> H:
                for message_type in message_types:
                    self.register(message_type, handler)
                return handler

            return decorate
        if more_types:
            raise TypeError(
                "subscribe() takes message classes, or is used bare as @bus.subscribe; "
                f"got {describe_value(handler_or_type)} first"
            )
        handler = handler_or_type
        if not callable(handler):
            raise TypeError(
                f"@bus.subscribe decorates a handler function, got {describe_value(handler)}"
            )
        for message_type in annotated_message_types(handler):
            self.register(message_type, handler)
        return handler

    def unregister(self, message_type: type, handler: Handler) -> None:
        """Remove ``handler`` from ``message_type`` (matched as :meth:`register` matches)."""
        with self._lock:
            registered = self._registrations.get(message_type, [])
            place = _place_of(registered, identity_key(handler))
            if place is not None:
                removed = registered.pop(place)
                del self._calls[removed]
                self.removed.append(("unregistered", removed))
                if not registered:
                    del self._registrations[message_type]
                self._plans = {}
                return
        names = ", ".join(s.name for s in registered) or "none"
        raise ValueError(
            f"{handler_name(handler)} is not registered for {type_name(message_type)} "
            f"(registered there: {names}); nothing was removed"
        )

    def use(self, *middleware: Middleware) -> None:
        """Wrap every handler in ``middleware``; the first one given is the outermost layer.

        Every handler is wrapped again at once: if a layer fails to wrap one, nothing changes.
        """
        for layer in middleware:
            check_middleware(layer)
        with self._lock:
            self._rewrap(self._middleware + middleware, self._dependencies)

    def provide(self, **dependencies: object) -> None:
        """Add or replace dependencies that handlers receive by parameter name."""
        with self._lock:
            self._rewrap(self._middleware, {**self._dependencies, **dependencies})

    def _rewrap(self, middleware: tuple[Middleware, ...], dependencies: dict[str, object]) -> None:
        calls = {
            subscription: self._wrap(subscription, middleware, dependencies)
            for subscription in self._calls
        }
        self._middleware, self._dependencies, self._calls = middleware, dependencies, calls
        self._plans = {}

    # ------------------------------------------------------------------ reading registrations

    def handlers_for(self, message_type: type | object) -> list[Handler]:
        """The handlers a dispatch of ``message_type`` (a class, or a message) calls, in order."""
        cls = message_type if isinstance(message_type, type) else type(message_type)
        return [subscription.handler for subscription, _ in self.plan_for(cls)]

    def plan_for(self, message_type: type) -> Plan:
        """The subscriptions ``message_type`` reaches, in call order, each with its wrapped
        call. A class that cannot be dispatched is a TypeError, here as in ``dispatch``."""
        try:
            return self._plans[message_type]
        except KeyError:
            pass
        kind = message_kind(message_type)
        with self._lock:
            plan = Plan(
                (subscription, self._calls[subscription])
                for subscription in _reached(self._registrations, message_type, kind)
            )
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans = {}
            self._plans[message_type] = plan
            return plan

    def explain(self, message: object, handler: Handler | str) -> Explanation:
        """Why ``handler`` (a function, or its name) is or is not called for ``message`` (a
        message, or its class): see :func:`eda_lesson.core.explain.explain`."""
        from eda_lesson.core.explain import explain

        return explain(self, message, handler)

    def subscriptions(self) -> list[Subscription]:
        """Every registration, grouped by message type in the order the types were first used."""
        with self._lock:
            return [s for registered in self._registrations.values() for s in registered]

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        """The bus-wide middleware, outermost first."""
        return self._middleware

    @property
    def dependencies(self) -> dict[str, object]:
        """The dependencies handlers receive by parameter name (a copy)."""
        return dict(self._dependencies)

    @property
    def collect_from(self) -> tuple[EventSource, ...]:
        """Where the bus collects new events after every handler call."""
        return self._collect_from

    def describe(self) -> str:
        """A plain-text table of all registrations, for notebooks and logs."""
        with self._lock:
            groups = [(t, list(subs)) for t, subs in self._registrations.items()]
        count = sum(len(subs) for _, subs in groups)
        lines = [
            f"{type(self).__name__} with {plural(count, 'handler')} for "
            f"{plural(len(groups), self._kind_word() + ' type')}"
        ]
        for message_type, subs in groups:
            kind = " (command)" if issubclass(message_type, Command) else ""
            lines.append(f"  {type_name(message_type)}{kind}")
            lines.extend(f"    -> {s.name}{_needs_text(s)}" for s in subs)
        if self._middleware:
            lines.append(
                "  middleware (outermost first): "
                + ", ".join(handler_name(m) for m in self._middleware)
            )
        if self._dependencies:
            lines.append("  dependencies: " + ", ".join(self._dependencies))
        return "\n".join(lines)

    def __repr__(self) -> str:
        count = sum(len(subs) for subs in self._registrations.values())
        return (
            f"{type(self).__name__}({plural(count, 'handler')} for "
            f"{plural(len(self._registrations), self._kind_word() + ' type')})"
        )

    def _kind_word(self) -> str:
        """'message' once commands are registered, 'event' before: the first chapters' word."""
        return "message" if any(issubclass(t, Command) for t in self._registrations) else "event"

    # ------------------------------------------------------------------ the steps of a cascade

    def _new_cascade(self, message: object) -> DispatchResult:
        """The record of a dispatch of ``message`` about to start: its queue holds it. An
        unhandled command is refused before anything runs, however often it was planned."""
        try:
            plan = self._plans[type(message)]
        except KeyError:
            plan = self._plan_of(message)
        if not plan and isinstance(message, Command):
            raise UnhandledCommandError("dispatched " + unhandled_command_text(message))
        return DispatchResult(message, plan)

    def _plan_of(self, message: object) -> Plan:
        """The plan for ``message``'s type; a clear TypeError for what is not a message. The
        plans hold only types that passed :func:`message_kind`, so a known type is valid."""
        try:
            return self._plans[type(message)]
        except KeyError:
            return self.plan_for(type(checked_message(message)))

    def _failed(
        self, cascade: DispatchResult, position: int, subscription: Subscription, error: Exception
    ) -> None:
        """Record that a handler call raised; with ``fail_fast``, raise it at once."""
        cascade.record_error((position, subscription), error)
        if self.fail_fast:
            error.add_note(
                f"in handler {subscription.name} for {safe_repr(cascade.queue[position][0])}"
            )
            raise error

    def _after_call(
        self, cascade: DispatchResult, position: int, subscription: Subscription, produced: object
    ) -> None:
        """Queue what one handler call produced: the messages it dispatched, then those it
        returned (a command handler returns its answer instead), then new events collected
        from ``collect_from``. Each new message is checked and planned before any joins."""
        cause = (position, subscription)
        if subscription.is_command:
            if produced is not None:
                cascade.record_returned(cause, produced)
            if not cascade.dispatched and not self._collect_from:
                return  # the usual case: an answer, and nothing more
            produced = None
        elif not cascade.dispatched and not self._collect_from:
            # The usual case: one message of a type planned before. Only types that passed
            # message_kind are ever planned, so it needs no other check.
            plan = self._plans.get(type(produced))
            if plan is not None:
                self._enqueue(cascade, cause, produced, plan)
                return
        messages = cascade.take_dispatched()
        if produced is not None:
            messages += produced_messages(produced, self.max_cascade)
        for source in self._collect_from:
            messages.extend(source.collect_new_events())
        if messages:
            self._enqueue_all(cascade, cause, messages)

    def _enqueue_all(self, cascade: DispatchResult, cause: Cause, messages: list[object]) -> None:
        """Check every message (a bad one fails the call and queues none), then queue them."""
        position, subscription = cause
        for message in messages:
            reason = None if type(message) in self._plans else refusal(message)
            if reason is not None:
                why = f" ({reason})" if inspect.isawaitable(message) else ""
                problem = TypeError(
                    f"handler {subscription.name} returned {describe_value(message)}; an "
                    "event handler returns None, an event, a list or tuple of events, or yields "
                    f"them{why}"
                )
                self._failed(cascade, position, subscription, problem)
                return
        for message in messages:
            self._enqueue(cascade, cause, message, self._plan_of(message))

    def _enqueue(self, cascade: DispatchResult, cause: Cause, message: object, plan: Plan) -> None:
        cascade.enqueue(message, plan, cause)
        if not plan and isinstance(message, Command):
            unhandled = UnhandledCommandError(
                f"{cause[1].name} produced " + unhandled_command_text(message)
            )
            cascade.record_error(cause, unhandled)
        if len(cascade.queue) > self.max_cascade:
            raise CascadeLimitError(cascade, self.max_cascade)

    def _raise_a_failed_command(self, cascade: DispatchResult) -> None:
        """A failed command at the start of the cascade is raised to the caller as itself."""
        error = cascade.first_error() if isinstance(cascade.message, Command) else None
        if error is not None:
            raise error

    # ------------------------------------------------------------------ wrapping

    def _wrap(
        self,
        subscription: Subscription,
        middleware: tuple[Middleware, ...],
        dependencies: Mapping[str, object],
    ) -> Callable[[Any], Any]:
        """The handler with its dependencies bound, inside every layer of middleware."""
        call = self._innermost(subscription, dependencies)
        for layer in reversed(middleware + subscription.middleware):
            call = wrap_checked(layer, call, subscription, self.runs_async_handlers)
        return call

    def _innermost(
        self, subscription: Subscription, dependencies: Mapping[str, object]
    ) -> Callable[[Any], Any]:
        call: Callable[[Any], Any] = subscription.handler
        if subscription.needs:
            given = {name: dependencies[name] for name in subscription.needs}
            call = functools.partial(subscription.handler, **given)
        if inspect.isgeneratorfunction(unwrapped(subscription.handler)):
            call = draining(call, subscription, self.max_cascade)
        return call


class EventBus(BaseBus):
    """Routes each dispatched message to its handlers, one after another, in this thread.

    >>> @dataclass(frozen=True)
    ... class Greeted:
    ...     name: str
    >>> bus = EventBus()
    >>> def wave(event: Greeted) -> None:
    ...     print("hello", event.name)
    >>> _ = bus.register(Greeted, wave)
    >>> result = bus.dispatch(Greeted("Ada"))
    hello Ada
    >>> result.ok
    True

    ``fail_fast=True`` re-raises the first handler error at once (handy in tests);
    ``max_cascade`` bounds how many messages one dispatch may handle before it stops with a
    :class:`~eda_lesson.core.result.CascadeLimitError`; ``dependencies`` are given to handlers by
    parameter name; after every handler call the bus collects new events from each of
    ``collect_from`` (a unit of work, see :mod:`eda_lesson.patterns.state_unit_of_work`).
    """

    def dispatch(self, message: object) -> DispatchResult:
        """Handle ``message`` and the whole cascade it starts; return what happened.

        Called from inside a handler, the message joins the running cascade instead (it is
        handled after the current message's handlers) and the running cascade's result,
        still being filled in, is returned.
        """
        running = self._running.cascades
        if running:  # a handler of this thread's cascade dispatched it: queue it there
            return running[-1].dispatched_by_handler(checked_message(message))
        cascade = self._new_cascade(message)
        queue = cascade.queue  # (message, plan) pairs; handlers' messages join the back
        collecting = self._collect_from
        running.append(cascade)
        try:
            position = 0
            while position < len(queue):
                message, plan = queue[position]
                cascade.reached = position + 1
                for subscription, call in plan:
                    try:
                        produced = call(message)
                    except Exception as error:
                        self._failed(cascade, position, subscription, error)
                        produced = None
                    if produced is not None or cascade.dispatched or collecting:
                        self._after_call(cascade, position, subscription, produced)
                position += 1
        finally:
            running.pop()
        cascade.finished = True
        if cascade.errors:
            self._raise_a_failed_command(cascade)
        return cascade


class _RunningCascades(threading.local):
    """Per thread, the cascade under way (a list, so that checking it costs next to nothing)."""

    def __init__(self) -> None:
        self.cascades: list[DispatchResult] = []


def require_sync_bus(bus: object, who: str) -> EventBus:
    """``bus`` if it is an :class:`EventBus`; a TypeError naming ``who`` otherwise.

    For the parts that call ``bus.dispatch(...)`` and use its result at once: given an
    async bus they would get a coroutine and run no handler.
    """
    if isinstance(bus, EventBus):
        return bus
    if isinstance(bus, BaseBus):
        raise TypeError(
            f"{who} dispatches and reads the result at once, so it needs an EventBus; "
            f"{type(bus).__name__} returns a coroutine and would run no handler here. Use an "
            "EventBus, or await bus.dispatch(...) yourself in async code"
        )
    raise TypeError(f"{who} takes an EventBus, got {describe_value(bus)}")


# ---------------------------------------------------------------------- plans


def _reached(
    registrations: Mapping[type, list[Subscription]], message_type: type, kind: Kind
) -> Iterator[Subscription]:
    """The subscriptions a message of ``message_type`` reaches, in call order."""
    if kind == "command":
        for cls in message_type.__mro__:
            if issubclass(cls, Command) and registrations.get(cls):
                yield registrations[cls][0]
                return
        return
    seen: set[object] = set()
    for cls in message_type.__mro__:
        for subscription in registrations.get(cls, ()):
            if subscription.key not in seen:
                seen.add(subscription.key)
                yield subscription


# ---------------------------------------------------------------------- small helpers


def _place_of(registered: list[Subscription], key: tuple[Any, ...]) -> int | None:
    for index, existing in enumerate(registered):
        if existing.key == key:
            return index
    return None


def _needs_text(subscription: Subscription) -> str:
    return f" (given {', '.join(subscription.needs)})" if subscription.needs else ""
