"""What the buses check, and how they name things: which classes are messages, what an
event handler's return value holds, which dependencies a handler takes, whether a layer of
middleware wraps a call properly.

Both buses call these functions; they are here so that :mod:`eda_lesson.core.bus` stays a
module you can read top to bottom. Every check raises a TypeError that names the problem and
the fix, before anything is registered or queued.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from eda_lesson.core.messages import Command, Event
from eda_lesson.core.result import describe_value

if TYPE_CHECKING:
    from eda_lesson.core.bus import EventSource, Handler, Middleware, Subscription

__all__ = [
    "annotated_message_types",
    "bounded",
    "check_handler",
    "check_message_type",
    "check_middleware",
    "checked_dependencies",
    "checked_message",
    "checked_sources",
    "close_unawaited",
    "dependency_names",
    "draining",
    "handler_name",
    "handler_signature",
    "identity_key",
    "is_async_callable",
    "is_union",
    "message_kind",
    "nearest_for",
    "produced_messages",
    "refusal",
    "type_name",
    "unhandled_command_text",
    "unwrapped",
    "wrap_checked",
]

Kind = Literal["command", "event"]
T = TypeVar("T")

#: Built-in values are never messages: a handler returning one almost always made a mistake.
_PLAIN_VALUES = (str, bytes, bytearray, int, float, complex, dict, set, frozenset, list, type)
_BUILT_IN_MODULES = frozenset({"builtins", "collections", "itertools", "array"})


# ---------------------------------------------------------------------- messages


def message_kind(cls: type) -> Kind:
    """``"command"`` or ``"event"`` for a class whose instances can be dispatched; a
    TypeError saying why for one that cannot (built-in values and collections)."""
    if not isinstance(cls, type):
        raise TypeError(f"a message type is a class, got {describe_value(cls)}")
    if issubclass(cls, Command):
        if issubclass(cls, Event):
            raise TypeError(
                f"{type_name(cls)} is both a Command and an Event; a message either asks "
                "for something (a command) or says it happened (an event): pick one"
            )
        return "command"
    if cls is object:  # registered for object, a handler hears every event
        return "event"
    if cls is type(None) or issubclass(cls, _PLAIN_VALUES) or cls.__module__ in _BUILT_IN_MODULES:
        raise TypeError(
            f"{type_name(cls)} is not an event class; events are instances of your own "
            "classes (a frozen dataclass), or use object for all events"
        )
    return "event"


def checked_message(message: object) -> object:
    """``message`` itself, or a TypeError saying why it cannot be dispatched."""
    reason = refusal(message)
    if reason is not None:
        raise TypeError(
            f"dispatch() takes an event instance, got {describe_value(message)}; {reason}"
        )
    return message


def refusal(value: object) -> str | None:
    """Why ``value`` cannot be dispatched as a message, or None when it can."""
    if isinstance(value, type):
        return f"create one first: dispatch({type_name(value)}(...))"
    if inspect.isawaitable(value):
        close_unawaited(value)
        return "an async def handler runs on an AsyncEventBus, and an async dispatch is awaited"
    try:
        message_kind(type(value))
    except TypeError:
        return "define an event class (a frozen dataclass) and dispatch an instance of it"
    return None


def produced_messages(produced: object, limit: int) -> list[object]:
    """The messages in an event handler's return value, by one rule: a list or tuple holds
    messages, an iterator (a generator) yields them, anything else is one message. The bus
    checks each of them before any joins the queue.

    An iterator is drained one item at a time, at most ``limit + 1`` of them (one more than
    a cascade may hold), so a generator that never ends stops at the cascade limit.
    """
    if type(produced) in (list, tuple):
        return list(typing.cast("list[object]", produced))
    if hasattr(type(produced), "__next__"):
        return bounded(produced, limit)  # type: ignore[arg-type]
    return [produced]


def bounded(iterator: Iterator[object], limit: int) -> list[object]:
    items = []
    for item in iterator:
        items.append(item)
        if len(items) > limit:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()
            break
    return items


def draining(
    call: Callable[[Any], Any], subscription: Subscription, limit: int
) -> Callable[[Any], Any]:
    """A generator handler as a call that runs it to its end (inside any middleware, so a
    failure while it yields is a failure of the call) and returns the messages it yielded."""

    def drained(message: object) -> object:
        return produced_messages(call(message), limit)

    return drained


def close_unawaited(value: object) -> None:
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and callable(close):
        close()  # a coroutine never awaited would warn when collected


def unhandled_command_text(message: object) -> str:
    name = type(message).__name__
    return (
        f"the command {name}, but no handler is registered for it; a command needs exactly "
        f"one: bus.register({name}, handler)"
    )


# ---------------------------------------------------------------------- wrapping


def wrap_checked(
    layer: Middleware, call: Callable[[Any], Any], subscription: Subscription, runs_async: bool
) -> Callable[[Any], Any]:
    """``layer(call, subscription)``, checked: a callable, and async only where it can be.

    A layer may turn a plain call into an async one on the async bus (run it in a thread,
    say); the layers outside it then see an async call and wrap it as one. The other way
    round is refused: a plain wrapper around an async call would let its errors escape."""
    try:
        wrapped = layer(call, subscription)
    except Exception as error:
        error.add_note(
            f"while middleware {handler_name(layer)} wrapped {subscription.name}; "
            "nothing was registered or changed"
        )
        raise
    if not callable(wrapped):
        raise TypeError(
            f"middleware {handler_name(layer)} returned {describe_value(wrapped)} instead of a "
            f"callable while wrapping {subscription.name}; a middleware returns the function "
            "that wraps `call`. Nothing was registered or changed"
        )
    if is_async_callable(call) and not is_async_callable(wrapped):
        raise TypeError(
            f"middleware {handler_name(layer)} wrapped the async call of {subscription.name} "
            "in a plain function, so errors would escape it; return an `async def` wrapper "
            "when `call` is async (eda_lesson.core.middleware.around does this for you)"
        )
    if is_async_callable(wrapped) and not runs_async:
        raise TypeError(
            f"middleware {handler_name(layer)} made the call of {subscription.name} async, "
            "but an EventBus does not await; use it on an AsyncEventBus, or return a plain "
            "function around a plain call"
        )
    return wrapped


def is_async_callable(value: object) -> bool:
    """True for an ``async def`` function, method or partial of one, or an object whose
    ``__call__`` is ``async def``."""
    if inspect.iscoroutinefunction(value):
        return True
    if isinstance(value, functools.partial):
        return is_async_callable(value.func)
    if inspect.isfunction(value) or inspect.ismethod(value) or not callable(value):
        return False
    return inspect.iscoroutinefunction(inspect.getattr_static(type(value), "__call__", None))


def unwrapped(handler: object) -> object:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return handler


# ---------------------------------------------------------------------- names


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


def identity_key(handler: object) -> tuple[Any, ...]:
    """What makes two registrations "the same handler" (see :meth:`BaseBus.register`).

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


def type_name(cls: type) -> str:
    return getattr(cls, "__qualname__", repr(cls))


# ---------------------------------------------------------------------- registration


def check_message_type(message_type: object, handler: object) -> None:
    if isinstance(message_type, type):
        if message_type is Command:
            raise TypeError(
                "register(Command, ...): a handler handles one kind of command; register it "
                "for the command class itself (to see every message, use middleware)"
            )
        try:
            message_kind(message_type)
        except TypeError as error:
            raise TypeError(f"register(): {error}") from None
        return
    if callable(message_type) and isinstance(handler, type):
        raise TypeError(
            f"register() takes the event class first and the handler second; got "
            f"{handler_name(message_type)} and {type_name(handler)}: "
            f"write register({type_name(handler)}, {handler_name(message_type)})"
        )
    hint = ""
    if message_type is not None and not isinstance(message_type, (str, int, float)):
        hint = f": pass the class {type_name(type(message_type))} itself, not an instance"
    raise TypeError(f"register() takes an event class, got {describe_value(message_type)}{hint}")


def check_handler(handler: object, message_type: type, runs_async: bool) -> None:
    if not callable(handler):
        raise TypeError(
            f"register({type_name(message_type)}, handler): the handler must be callable, "
            f"got {describe_value(handler)}"
        )
    name = handler_name(handler)
    inner = unwrapped(handler)
    if not runs_async and (is_async_callable(handler) or inspect.isasyncgenfunction(inner)):
        raise TypeError(
            f"handler {name} is async def; an EventBus calls handlers without awaiting them, "
            "so it would never run. Register it on an AsyncEventBus, or make it a plain def"
        )
    if issubclass(message_type, Command) and (
        inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner)
    ):
        raise TypeError(
            f"handler {name} yields, but {type_name(message_type)} is a command: its handler "
            "returns an answer. Record events on the aggregate (or dispatch them) instead"
        )


def handler_signature(handler: object) -> inspect.Signature | None:
    """The parameters the bus must fill. A ``functools.wraps`` wrapper that takes
    ``(*args, **kwargs)`` passes everything on, so the wrapped function's signature counts;
    a wrapper with parameters of its own is called as it says."""
    try:
        own = inspect.signature(handler, follow_wrapped=False)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return None
    kinds = {parameter.kind for parameter in own.parameters.values()}
    passes_on = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= kinds
    if passes_on and hasattr(handler, "__wrapped__"):
        try:
            return inspect.signature(handler)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return own
    return own


def dependency_names(
    handler: object, message_type: type, dependencies: Mapping[str, object]
) -> tuple[str, ...]:
    """The names of the dependencies to pass to ``handler``; a TypeError for a parameter
    that nothing provides, naming it and the fix."""
    signature = handler_signature(handler)
    if signature is None:
        return ()
    name = handler_name(handler)
    parameters = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or (
        parameters[0].kind not in positional
        and parameters[0].kind != inspect.Parameter.VAR_POSITIONAL
    ):
        raise TypeError(
            f"handler {name}{signature} takes no message; a handler's first parameter is the "
            f"message: def {name}(message: {type_name(message_type)}, ...)"
        )
    needs = []
    for parameter in parameters[1:]:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.name in dependencies:
            if parameter.kind == inspect.Parameter.POSITIONAL_ONLY:
                raise TypeError(
                    f"handler {name}: the dependency {parameter.name!r} is positional-only; "
                    "the bus passes dependencies by name, so drop the `/` before it"
                )
            needs.append(parameter.name)
        elif parameter.default is inspect.Parameter.empty:
            provided = ", ".join(dependencies) or "none"
            raise TypeError(
                f"handler {name} needs {parameter.name!r}, which this bus does not provide "
                f"(it provides: {provided}); give it to the bus, "
                f"EventBus(dependencies={{{parameter.name!r}: ...}}) or "
                f"bus.provide({parameter.name}=...), or give the parameter a default"
            )
    return tuple(needs)


def checked_dependencies(dependencies: Mapping[str, object]) -> dict[str, object]:
    if not isinstance(dependencies, Mapping):
        raise TypeError(
            f"dependencies is a mapping of parameter names to values, such as "
            f"{{'uow': uow}}; got {describe_value(dependencies)}"
        )
    for name in dependencies:
        if not (isinstance(name, str) and name.isidentifier()):
            raise TypeError(f"a dependency's name is a parameter name, got {describe_value(name)}")
    return dict(dependencies)


def checked_sources(sources: Iterable[EventSource]) -> tuple[EventSource, ...]:
    if (
        isinstance(sources, (str, bytes))
        or not isinstance(sources, Iterable)
        or hasattr(sources, "collect_new_events")
    ):
        raise TypeError(
            f"collect_from takes a list of event sources, such as [uow]; got "
            f"{describe_value(sources)}"
        )
    checked = tuple(sources)
    for source in checked:
        if not callable(getattr(source, "collect_new_events", None)):
            raise TypeError(
                f"collect_from: {describe_value(source)} has no collect_new_events() method; "
                "give the unit of work whose aggregates record events"
            )
    return checked


def check_middleware(layer: object) -> None:
    if not callable(layer):
        raise TypeError(
            f"middleware must be a function middleware(call, subscription) -> call, "
            f"got {describe_value(layer)}"
        )


def annotated_message_types(handler: Handler) -> tuple[type, ...]:
    """The message classes named by the annotation of the handler's first parameter."""
    name = handler_name(handler)
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    if not parameters:
        raise TypeError(f"@bus.subscribe: {name} takes no parameter; a handler takes the message")
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
                f"@bus.subscribe(TheMessageClass)"
            ) from None
    members = typing.get_args(annotation) if is_union(annotation) else (annotation,)
    for member in members:
        try:
            message_kind(member)
        except TypeError:
            raise TypeError(
                f"@bus.subscribe: the annotation {annotation!r} of {name} is not an event "
                f"class; {fix}"
            ) from None
    return tuple(members)


def is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


# ---------------------------------------------------------------------- lookup


def nearest_for(table: Mapping[type, T], cls: type) -> T | None:
    """The entry of ``table`` for ``cls`` or the nearest of its base classes, or None.

    This is the one rule for "the method for this event type" everywhere: walk the event
    class's ``__mro__``, the class itself first. The bus calls *every* handler found along the
    way (an event has many handlers); a command, an aggregate's ``@applies`` method and a
    projection's ``@when`` method take the *first* one found (each has exactly one).
    """
    for base in cls.__mro__:
        found = table.get(base)
        if found is not None:
            return found
    return None
