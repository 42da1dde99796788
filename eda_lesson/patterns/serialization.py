"""Events to JSON and back, through an explicit registry of event types with versions.

An :class:`EventRegistry` knows each event class you registered by a stable *name* and a
*version* number. ``to_json(event)`` gives ``(name, version, payload)``; ``from_json(name,
version, payload)`` gives the event back, first running the *upcasters* that turn an old
version's payload into the current one, one step at a time (v1 -> v2 -> v3).

What it stores: the fields of a dataclass event as a JSON object. A field may be a ``str``,
``int``, ``float``, ``bool`` or ``None``, a ``Decimal`` (kept as a string, so no precision is
lost), an ``Enum`` (kept as its value), a ``datetime`` or ``date`` (ISO 8601), another
dataclass (such as the shop's ``LineItem``), or a ``tuple``, ``list`` or ``dict[str, ...]``
of those. Anything else is refused when the class is registered, not when it is first saved.

What it never does: import a module, look up a class or unpickle anything because the data
says so. The data only ever *selects* one of the classes you registered; a name the registry
does not know is an error. It knows nothing about stores or brokers, so the event store and
a message transport can share one registry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, overload

__all__ = [
    "EventFormatError",
    "EventRegistry",
    "FutureEventVersionError",
    "MalformedEventError",
    "MissingUpcasterError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "Upcaster",
]

T = TypeVar("T")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the payload of version ``n`` of an event into the payload of version ``n + 1``."""

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

# One encoder for the whole module: json.dumps with keyword arguments builds a new encoder
# on every call, which costs more than encoding a small event.
_to_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_from_text = json.JSONDecoder().decode


# ---------------------------------------------------------------------- errors


class EventFormatError(ValueError):
    """Stored event data that cannot be turned back into an event."""


class UnknownEventTypeError(EventFormatError):
    """The data names an event type the registry does not know."""


class FutureEventVersionError(EventFormatError):
    """The data was written by a newer program, with a version this registry does not know."""


class MissingUpcasterError(EventFormatError):
    """An old version is stored, but no upcaster leads from it to the current version."""


class MalformedEventError(EventFormatError):
    """The payload is not valid JSON, or does not fit the fields of the event class."""


class UnregisteredEventError(TypeError):
    """An event of a class nobody registered was asked to be turned into JSON."""


class _MismatchError(Exception):
    """A value that does not fit its field's type (turned into MalformedEventError)."""


# ---------------------------------------------------------------------- the registry


@dataclasses.dataclass(frozen=True)
class _Entry:
    cls: type
    name: str
    version: int
    encode: Callable[[Any], dict[str, Any]]
    decode: Callable[[dict[str, Any]], Any]


class EventRegistry:
    """The event types a program can save and load, each with a name and a version.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Greeted:
    ...     name: str
    >>> registry = EventRegistry()
    >>> _ = registry.register(Greeted)
    >>> registry.to_json(Greeted("Ada"))
    ('Greeted', 1, '{"name":"Ada"}')
    >>> registry.from_json("Greeted", 1, '{"name":"Ada"}')
    Greeted(name='Ada')
    """

    def __init__(self) -> None:
        self._by_name: dict[str, _Entry] = {}
        self._by_class: dict[type, _Entry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    @classmethod
    def of(cls, *event_types: type) -> EventRegistry:
        """A registry holding ``event_types``, each under its class name at version 1."""
        registry = cls()
        for event_type in event_types:
            registry.register(event_type)
        return registry

    # ------------------------------------------------------------------ registering

    @overload
    def register(
        self, cls: type[T], /, *, name: str | None = None, version: int = 1
    ) -> type[T]: ...

    @overload
    def register(
        self, cls: None = None, /, *, name: str | None = None, version: int = 1
    ) -> Callable[[type[T]], type[T]]: ...

    def register(
        self, cls: type[T] | None = None, /, *, name: str | None = None, version: int = 1
    ) -> type[T] | Callable[[type[T]], type[T]]:
        """Know ``cls`` as ``name`` (its class name by default), currently at ``version``.

        Use it as a call, ``registry.register(OrderPaid)``, or a decorator, bare or with
        arguments: ``@registry.register(version=2)``. Registering a class again (or a class
        of the same module and name, as re-running a notebook cell makes) replaces it.
        """
        if cls is None:
            return lambda event_type: self.register(event_type, name=name, version=version)
        self._add(cls, name, version)
        return cls

    def _add(self, cls: object, name: str | None, version: int) -> None:
        if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
            raise TypeError(
                f"register() takes a dataclass event class, got {_describe(cls)}; "
                "define the event with @dataclass(frozen=True)"
            )
        name = cls.__name__ if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"an event name is a non-empty string, got {name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"an event version is a whole number from 1, got {version!r}")
        self._refuse_clash(cls, name)
        encode, decode = _class_codec(cls, cls.__qualname__)
        entry = _Entry(cls, name, version, encode, decode)
        self._forget(cls, name)
        self._by_name[name] = entry
        self._by_class[cls] = entry

    def _refuse_clash(self, cls: type, name: str) -> None:
        taken = self._by_name.get(name)
        if taken is not None and not _same_class(taken.cls, cls):
            raise ValueError(
                f"the name {name!r} is already registered for {_qualified(taken.cls)}; "
                f"register {_qualified(cls)} under another name: register(..., name='...')"
            )
        for entry in self._by_class.values():
            if _same_class(entry.cls, cls) and entry.name != name:
                raise ValueError(
                    f"{_qualified(cls)} is already registered as {entry.name!r}; one class "
                    "has one name (use an upcaster to change an event's shape, not a new name)"
                )

    def _forget(self, cls: type, name: str) -> None:
        """Drop earlier registrations of this class (or its re-run twin) and this name."""
        old = self._by_name.pop(name, None)
        if old is not None:
            self._by_class.pop(old.cls, None)
        self._by_class.pop(cls, None)

    @overload
    def upcaster(self, name: str, from_version: int) -> Callable[[Upcaster], Upcaster]: ...

    @overload
    def upcaster(self, name: str, from_version: int, function: Upcaster) -> Upcaster: ...

    def upcaster(
        self, name: str, from_version: int, function: Upcaster | None = None
    ) -> Upcaster | Callable[[Upcaster], Upcaster]:
        """Register ``function(payload) -> payload`` turning ``name`` v``from_version`` into
        v``from_version + 1``. A decorator when ``function`` is left out::

            @registry.upcaster("OrderCreated", from_version=1)
            def add_currency(payload):
                return {**payload, "currency": "EUR"}
        """
        if function is None:
            return lambda f: self.upcaster(name, from_version, f)
        if not callable(function):
            raise TypeError(
                f"an upcaster is a function payload -> payload, got {_describe(function)}"
            )
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise ValueError(f"from_version is a whole number from 1, got {from_version!r}")
        self._upcasters[(name, from_version)] = function
        return function

    # ------------------------------------------------------------------ looking up

    def name_of(self, event_or_class: object) -> str:
        """The registered name of an event (or event class)."""
        return self._entry_for(event_or_class).name

    def version_of(self, name: str) -> int:
        """The current version of the event type registered as ``name``."""
        return self._entry_named(name).version

    def class_of(self, name: str) -> type:
        """The class registered as ``name`` (only ever one you registered)."""
        return self._entry_named(name).cls

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._by_name)

    def __contains__(self, name_or_class: object) -> bool:
        if isinstance(name_or_class, str):
            return name_or_class in self._by_name
        return name_or_class in self._by_class

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        count = len(self._by_name)
        return f"EventRegistry({count} event type{'s' * (count != 1)})"

    def describe(self) -> str:
        """A table of the registered names, versions and upcasters, for notebooks."""
        lines = [repr(self)]
        for name in self.names():
            entry = self._by_name[name]
            steps = [f"v{v}->v{v + 1}" for (n, v) in sorted(self._upcasters) if n == name]
            upcast = f"  (upcasts {', '.join(steps)})" if steps else ""
            lines.append(f"  {name} v{entry.version}: {_qualified(entry.cls)}{upcast}")
        return "\n".join(lines)

    def _entry_for(self, event_or_class: object) -> _Entry:
        cls = event_or_class if isinstance(event_or_class, type) else type(event_or_class)
        entry = self._by_class.get(cls)
        if entry is None:
            raise UnregisteredEventError(
                f"{cls.__qualname__} is not registered in this EventRegistry; "
                f"register it first: registry.register({cls.__qualname__})"
            )
        return entry

    def _entry_named(self, name: str) -> _Entry:
        entry = self._by_name.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownEventTypeError(
                f"unknown event type {name!r} (registered: {known}); register its class "
                "with registry.register(TheClass) before reading it"
            )
        return entry

    # ------------------------------------------------------------------ JSON

    def to_json(self, event: object) -> tuple[str, int, str]:
        """``(name, version, payload)`` for ``event``; the payload is compact JSON text."""
        entry = self._entry_for(event)
        if isinstance(event, type):
            raise TypeError(
                f"to_json() takes an event instance, got the class {event.__qualname__}"
            )
        try:
            return entry.name, entry.version, _to_text(entry.encode(event))
        except (TypeError, ValueError, _MismatchError) as error:
            raise TypeError(f"cannot write {event!r} as JSON: {error}") from None

    def from_json(self, name: str, version: int, payload: str | bytes) -> Any:
        """The event stored as ``name`` at ``version``, upcast to the current version."""
        entry = self._by_name.get(name)
        if entry is None:
            entry = self._entry_named(name)  # raises UnknownEventTypeError
        try:
            data = _from_text(payload) if isinstance(payload, str) else json.loads(payload)
        except (ValueError, TypeError) as error:
            raise MalformedEventError(
                f"{name} v{version}: the payload is not valid JSON ({error}): {_clip(payload)}"
            ) from None
        if not isinstance(data, dict):
            raise MalformedEventError(
                f"{name} v{version}: the payload is a JSON {type(data).__name__}, "
                f"not an object of fields: {_clip(payload)}"
            )
        if version != entry.version:
            data = self.upcast(name, version, data)
        try:
            return entry.decode(data)
        except _MismatchError as error:
            raise MalformedEventError(f"stored {name} v{version}: {error}") from None

    def upcast(self, name: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Run the upcasters that turn ``payload`` of ``name`` v``version`` into the current
        version, one step at a time, and return the result."""
        current = self._entry_named(name).version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise MalformedEventError(f"{name}: {version!r} is not a version (1, 2, ...)")
        if version > current:
            raise FutureEventVersionError(
                f"{name} v{version} was written by a newer program: this registry knows "
                f"{name} up to v{current}; upgrade the program that reads it"
            )
        for step in range(version, current):
            upcaster = self._upcasters.get((name, step))
            if upcaster is None:
                raise MissingUpcasterError(
                    f"{name} is stored as v{version} but the current version is v{current}, "
                    f"and no upcaster turns v{step} into v{step + 1}; add one with "
                    f"@registry.upcaster({name!r}, from_version={step})"
                )
            try:
                payload = upcaster(dict(payload))
            except Exception as error:
                raise MalformedEventError(
                    f"{name}: the upcaster from v{step} to v{step + 1} failed on "
                    f"{_clip(repr(payload))}: {type(error).__name__}: {error}"
                ) from error
            if not isinstance(payload, dict):
                raise MalformedEventError(
                    f"{name}: the upcaster from v{step} to v{step + 1} returned "
                    f"{_describe(payload)} instead of a dict of fields"
                )
        return payload


# ---------------------------------------------------------------------- codecs per class


def _class_codec(
    cls: type, where: str
) -> tuple[Callable[[Any], dict[str, Any]], Callable[[dict[str, Any]], Any]]:
    """An encoder (event -> dict) and a decoder (dict -> event), worked out once per class."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as error:  # NameError and friends from a string annotation
        raise TypeError(f"cannot read the field types of {cls.__qualname__}: {error}") from None
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = tuple(f.name for f in fields)
    codecs = {f.name: _field_codec(hints[f.name], f"{where}.{f.name}") for f in fields}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    encoders = tuple((name, codecs[name][0]) for name in names)
    # Plain fields (str, int, float, bool, None) are checked inline by exact type, the rest
    # through their decoders: replay decodes every stored event, so this is the hot path.
    plain = tuple((name, _PLAIN_TYPES[hints[name]]) for name in names if hints[name] in _PLAIN)
    nested = tuple((name, codecs[name][1]) for name in names if hints[name] not in _PLAIN)
    decoders = {name: codecs[name][1] for name in names}
    every_field = frozenset(names)

    def encode(event: Any) -> dict[str, Any]:
        return {name: encode_value(getattr(event, name)) for name, encode_value in encoders}

    def decode(data: dict[str, Any]) -> Any:
        if data.keys() != every_field and not (
            data.keys() <= every_field and required <= data.keys()
        ):
            raise _MismatchError(_shape_problem(cls, data, names, required))
        for name, kinds in plain:
            if name in data and type(data[name]) not in kinds:
                decoders[name](data[name])  # raises the error naming the field
        if nested:
            data = dict(data)
            for name, decode_value in nested:
                if name in data:
                    data[name] = decode_value(data[name])
        try:
            return cls(**data)
        except Exception as error:  # the class's own checks (__post_init__) refused the data
            raise _MismatchError(
                f"{cls.__qualname__}({_clip(repr(data))}) raised {type(error).__name__}: {error}"
            ) from None

    return encode, decode


def _shape_problem(
    cls: type, data: dict[str, Any], names: tuple[str, ...], required: frozenset[str]
) -> str:
    unknown = sorted(set(data) - set(names))
    missing = sorted(required - data.keys())
    parts = []
    if unknown:
        parts.append(f"fields {cls.__qualname__} does not have: {', '.join(unknown)}")
    if missing:
        parts.append(f"missing required fields: {', '.join(missing)}")
    return (
        "the payload does not fit the class: "
        + "; ".join(parts)
        + (" (an older or newer shape? register an upcaster, or check the version)")
    )


def _field_codec(hint: Any, where: str) -> tuple[Encoder, Decoder]:
    """Encoder and decoder for one field type; refuses a type JSON cannot round-trip."""
    if hint in _PLAIN:
        return _same, _plain(*_PLAIN[hint], where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union_codec(hint, args, where)
    if origin is tuple:
        return _tuple_codec(args, where)
    if origin is list:
        item_encode, item_decode = _field_codec(args[0], where + "[]")
        return _sequence_encoder(item_encode), _sequence_decoder(item_decode, list, where)
    if origin is dict:
        if args[0] is not str:
            raise TypeError(f"{where}: a dict field needs str keys to be JSON, got {hint!r}")
        return _dict_codec(args[1], where)
    if isinstance(hint, type):
        return _class_field_codec(hint, where)
    raise TypeError(
        f"{where}: the type {hint!r} cannot be stored as JSON; use str, int, float, bool, "
        "Decimal, an Enum, a datetime, a dataclass, or a tuple/list/dict of those"
    )


def _class_field_codec(hint: type, where: str) -> tuple[Encoder, Decoder]:
    if issubclass(hint, enum.Enum):
        return _enum_codec(hint, where)
    if hint is Decimal:
        return str, _decimal
    if hint is dt.datetime:
        return _isoformat, _parse_time(dt.datetime.fromisoformat, "an ISO datetime")
    if hint is dt.date:
        return _isoformat, _parse_time(dt.date.fromisoformat, "an ISO date")
    if dataclasses.is_dataclass(hint):
        encode, decode = _class_codec(hint, where)

        def decode_nested(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _MismatchError(f"{where} should be an object, got {_clip(repr(value))}")
            return decode(value)

        return encode, decode_nested
    raise TypeError(
        f"{where}: the type {hint.__qualname__} cannot be stored as JSON; make it a "
        "dataclass, or use str, int, float, bool, Decimal, an Enum or a datetime"
    )


def _union_codec(hint: Any, args: tuple[Any, ...], where: str) -> tuple[Encoder, Decoder]:
    # Decoding tries each member in turn, so list the most specific type first (int | str).
    options = [(arg, *_field_codec(arg, where)) for arg in args]

    def encode(value: Any) -> Any:
        for arg, encode_value, _ in options:
            if _is_instance(value, arg):
                return encode_value(value)
        raise _MismatchError(f"{where}: {value!r} is none of {hint}")

    def decode(value: Any) -> Any:
        for _, _, decode_value in options:
            try:
                return decode_value(value)
            except _MismatchError:
                continue
        raise _MismatchError(f"{where} should be {hint}, got {_clip(repr(value))}")

    return encode, decode


def _is_instance(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, origin)


def _tuple_codec(args: tuple[Any, ...], where: str) -> tuple[Encoder, Decoder]:
    if len(args) == 2 and args[1] is Ellipsis:
        item_encode, item_decode = _field_codec(args[0], where + "[]")
        return _sequence_encoder(item_encode), _sequence_decoder(item_decode, tuple, where)
    codecs = [_field_codec(arg, f"{where}[{i}]") for i, arg in enumerate(args)]

    def encode(value: Any) -> Any:
        return [encode_item(item) for (encode_item, _), item in zip(codecs, value, strict=True)]

    def decode(value: Any) -> Any:
        if not isinstance(value, list) or len(value) != len(codecs):
            raise _MismatchError(
                f"{where} should be a list of {len(codecs)}, got {_clip(repr(value))}"
            )
        return tuple(
            decode_item(item) for (_, decode_item), item in zip(codecs, value, strict=True)
        )

    return encode, decode


def _sequence_encoder(encode_item: Encoder) -> Encoder:
    if encode_item is _same:
        return list
    return lambda value: [encode_item(item) for item in value]


def _sequence_decoder(decode_item: Decoder, kind: type, where: str) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, list):
            raise _MismatchError(f"{where} should be a list, got {_clip(repr(value))}")
        return kind(decode_item(item) for item in value)

    return decode


def _dict_codec(value_hint: Any, where: str) -> tuple[Encoder, Decoder]:
    encode_value, decode_value = _field_codec(value_hint, where + "[]")

    def encode(value: Any) -> Any:
        return {str(key): encode_value(item) for key, item in value.items()}

    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _MismatchError(f"{where} should be an object, got {_clip(repr(value))}")
        return {key: decode_value(item) for key, item in value.items()}

    return encode, decode


def _enum_codec(hint: type[enum.Enum], where: str) -> tuple[Encoder, Decoder]:
    def decode(value: Any) -> Any:
        try:
            return hint(value)
        except ValueError:
            raise _MismatchError(f"{where}: {value!r} is not a {hint.__qualname__}") from None

    return (lambda member: member.value), decode


# -- plain values: checked, never converted (JSON already gives the right Python type)


def _same(value: Any) -> Any:
    return value


def _plain(kinds: tuple[type, ...], label: str, where: str) -> Decoder:
    def decode(value: Any) -> Any:
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            return value
        raise _MismatchError(f"{where} should be {label}, got {_clip(repr(value))}")

    return decode


_PLAIN_TYPES: dict[Any, frozenset[type]] = {
    str: frozenset({str}),
    int: frozenset({int}),
    float: frozenset({int, float}),
    bool: frozenset({bool}),
    types.NoneType: frozenset({types.NoneType}),
    None: frozenset({types.NoneType}),
}

_PLAIN: dict[Any, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    types.NoneType: ((types.NoneType,), "null"),
    None: ((types.NoneType,), "null"),
}


def _decimal(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise _MismatchError(f"a Decimal is stored as a string, got {_clip(repr(value))}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _MismatchError(f"{value!r} is not a decimal number") from None


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


def _parse_time(parse: Callable[[str], Any], label: str) -> Decoder:
    def decode(value: Any) -> Any:
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise _MismatchError(f"expected {label}, got {_clip(repr(value))}") from None

    return decode


# ---------------------------------------------------------------------- small helpers


def _same_class(a: type, b: type) -> bool:
    """The same class, or its twin from re-running the cell that defines it."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(value: object) -> str:
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    return f"{type(value).__name__} {_clip(repr(value))}"


def _clip(text: object, limit: int = 80) -> str:
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
