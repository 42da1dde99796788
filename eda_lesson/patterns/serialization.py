"""Events to JSON and back, through an explicit registry of event types with versions.

An :class:`EventRegistry` knows each event class you registered by a stable *name* and a
*version* number. ``to_json(event)`` gives ``(name, version, payload)``; ``from_json(name,
version, payload)`` gives the event back, first running the *upcasters* that turn an old
version's payload into the current one, one step at a time (v1 -> v2 -> v3).

What it stores: the fields of a dataclass event as a JSON object. A field may be a ``str``,
``int``, ``float``, ``bool`` or ``None``, a ``Decimal`` (kept as a string, so no precision is
lost), an ``Enum`` whose values JSON holds (kept as its value), a ``datetime`` or ``date``
(ISO 8601), another dataclass (such as the shop's ``LineItem``), a ``tuple``, ``list`` or
``dict[str, ...]`` of those, or a union of them (``str | None``). Any other type is refused
when the class is registered, not when it is first saved.

One rule for both directions: ``to_json`` accepts an event only if ``from_json`` gives it back
equal. Each field is checked against its declared type when writing, by the same checks
reading uses, so a value that reading would refuse (``OrderPaid("o-1", "42")``, a ``None``
in a ``str`` field, a ``datetime`` in a ``date`` field, ``True`` in an ``int | str`` field,
a lone surrogate in a string, ``nan``) raises :class:`UnwritableEventError` naming the field,
and nothing is written. The checks are worked out once per class, at registration.

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
import json.scanner
import math
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
    "UnwritableEventError",
    "Upcaster",
]

T = TypeVar("T")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the payload of version ``n`` of an event into the payload of version ``n + 1``."""

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice: plain json keeps the last one,
    so ``{"order_id": "o-1", "order_id": "o-2"}`` would be read as an event for o-2 although
    no writer of ours ever wrote it (a corrupt row, a forged broker entry)."""
    fields = dict(pairs)
    if len(fields) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return fields


# One encoder and one decoder for the whole module: json.dumps and json.loads with keyword
# arguments build a new one on every call, which costs more than a small event. Reading
# refuses NaN and Infinity, as writing does (allow_nan=False), and a key given twice.
_to_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
_from_text = _decoder.decode
# The scanner under decode(): one call where decode() makes three (and two regex matches).
# Anything it does not take whole (leading or trailing blanks, an error) goes to decode().
_scan = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]  # typeshed: it takes a decoder


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


class UnwritableEventError(TypeError):
    """An event whose values do not fit its fields: written, it could not be read back.

    ``problem`` names the field and what it should hold; ``where`` says what was being
    written (an append adds the stream and which event of the batch it was).
    """

    def __init__(self, event_type: str, problem: str, where: str = "") -> None:
        self.event_type = event_type
        self.problem = problem
        self.where = where
        before = f"{where}: " if where else ""
        super().__init__(
            f"{before}cannot write {event_type} as JSON: {problem}. Nothing was written "
            "(an event that cannot be read back would block its stream for ever)"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # so the error crosses process boundaries
        return type(self), (self.event_type, self.problem, self.where)


class _MismatchError(Exception):
    """A value that does not fit its field's type (turned into one of the errors above)."""


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
        if not isinstance(name, str) or not name or _text_problem(name) is not None:
            raise ValueError(f"an event name is a non-empty string of valid text, got {name!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"an event version is a whole number from 1, got {version!r}")
        self._refuse_clash(cls, name)
        encode, decode = _class_codec(cls, cls.__qualname__, ())
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
        """``(name, version, payload)`` for ``event``; the payload is compact JSON text.

        Raises :class:`UnwritableEventError`, naming the field, for an event that
        :meth:`from_json` could not give back equal (see the module docstring).
        """
        entry = self._entry_for(event)
        if isinstance(event, type):
            raise TypeError(
                f"to_json() takes an event instance, got the class {event.__qualname__}"
            )
        try:
            data = entry.encode(event)
            text = _to_text(data)
        except _MismatchError as error:
            raise UnwritableEventError(entry.name, str(error)) from None
        except AttributeError as error:  # an instance made without its __init__
            raise UnwritableEventError(entry.name, f"a field has no value ({error})") from None
        except (TypeError, ValueError, RecursionError) as error:  # from the JSON encoder
            raise UnwritableEventError(entry.name, f"JSON refused a value: {error}") from None
        if not text.isascii() and _text_problem(text) is not None:
            problem = _find_bad_text(data, entry.cls.__qualname__)
            raise UnwritableEventError(entry.name, problem or "it holds text that is not valid")
        return entry.name, entry.version, text

    def from_json(self, name: str, version: int, payload: str | bytes) -> Any:
        """The event stored as ``name`` at ``version``, upcast to the current version."""
        entry = self._by_name.get(name)
        if entry is None:
            entry = self._entry_named(name)  # raises UnknownEventTypeError
        # Replay reads every stored event through here. The common case, a JSON object in
        # text, takes one scanner call; anything else goes the long way, which also words
        # the error. A lone surrogate (spelled by a \u escape, or a raw one in the text) is
        # refused as writing refuses it, so that what is read can be written again.
        data: Any = None
        if type(payload) is str:
            try:
                data, end = _scan(payload, 0)
            except (StopIteration, ValueError, RecursionError):
                data = None
            else:
                if (
                    end != len(payload)
                    or "\\u" in payload
                    or (not payload.isascii() and _text_problem(payload))
                ):
                    data = None
        if type(data) is not dict:
            data = _parse_object(entry, name, version, payload)
        if version != entry.version:
            data = self.upcast(name, version, data)
            _refuse_unwritable_upcast(name, version, entry, data)
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


def _refuse_unwritable_upcast(name: str, version: int, entry: _Entry, data: dict[str, Any]) -> None:
    """Upcasters are our code, not the stored text: what they return must be what writing
    accepts too (JSON values, finite numbers, valid Unicode), or the event read could not be
    written again (to a projection's store, to a broker)."""
    try:
        text = _to_text(data)
    except (ValueError, TypeError) as error:
        problem: str | None = f"{type(error).__name__}: {error}"
    else:
        problem = None if text.isascii() else _find_bad_text(data, entry.cls.__qualname__)
    if problem is not None:
        raise MalformedEventError(
            f"{name}: the upcasters from v{version} returned fields that cannot be written "
            f"back ({problem}); fix the upcaster"
        )


def _parse_object(entry: _Entry, name: str, version: int, payload: object) -> dict[str, Any]:
    """The JSON object of ``payload``, or a MalformedEventError saying why there is none."""
    try:
        if isinstance(payload, str):
            data = _from_text(payload)
        elif isinstance(payload, (bytes, bytearray)):
            data = json.loads(
                payload, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
            )
        else:
            raise TypeError(f"a payload is JSON text, not {type(payload).__name__}")
    except (ValueError, TypeError, RecursionError) as error:
        raise MalformedEventError(
            f"{name} v{version}: the payload is not valid JSON ({error}): {_clip(payload)}"
        ) from None
    if not isinstance(data, dict):
        raise MalformedEventError(
            f"{name} v{version}: the payload is a JSON {_json_kind(data)}, "
            f"not an object of fields: {_clip(payload)}"
        )
    problem = _find_bad_text(data, entry.cls.__qualname__)
    if problem is not None:
        raise MalformedEventError(f"stored {name} v{version}: {problem}")
    return data


def _json_kind(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# ---------------------------------------------------------------------- codecs per class
#
# Each field type gets an encoder (value -> JSON value) and a decoder (JSON value -> value),
# worked out once when the class is registered. Every encoder refuses what its decoder
# would refuse or give back different: for str, int, float, bool and None, encoder and
# decoder are one and the same check; for the other types the encoder checks the Python
# value (a Decimal that is a number, a date that is not a datetime, a tuple for a tuple
# field...), and a union encoder decodes what it wrote to be sure reading picks the same
# member. Together: whatever to_json accepts, from_json gives back equal.


def _class_codec(
    cls: type, where: str, outer: tuple[type, ...]
) -> tuple[Callable[[Any], dict[str, Any]], Callable[[dict[str, Any]], Any]]:
    """An encoder (event -> dict) and a decoder (dict -> event), worked out once per class."""
    if cls in outer:
        raise TypeError(
            f"{where}: {cls.__qualname__} holds itself; an event is a tree of values, so a "
            "recursive type cannot be stored (store ids of the related things instead)"
        )
    outer = (*outer, cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception as error:  # NameError and friends from a string annotation
        raise TypeError(f"cannot read the field types of {cls.__qualname__}: {error}") from None
    init_vars = [name for name, hint in hints.items() if isinstance(hint, dataclasses.InitVar)]
    if init_vars:
        raise TypeError(
            f"{where}: InitVar fields ({', '.join(init_vars)}) are passed to __init__ but not "
            "kept, so they cannot be stored; make them ordinary fields"
        )
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = tuple(f.name for f in fields)
    codecs = {name: _field_codec(hints[name], f"{where}.{name}", outer) for name in names}
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    # Plain fields (str, int, float, bool, None) are checked the same way in both
    # directions: first the exact type (the hot path: replay decodes every stored event),
    # and only then the field's check, which accepts a subclass or raises the error naming
    # the field. That check is one function, used as encoder and decoder alike.
    plain = tuple(
        (name, _QUICK[hints[name]], codecs[name][1]) for name in names if hints[name] in _QUICK
    )
    nested = tuple((name, *codecs[name]) for name in names if hints[name] not in _QUICK)
    every_field, field_count = frozenset(names), len(names)

    def encode(event: Any) -> dict[str, Any]:
        data = {name: getattr(event, name) for name in names}
        for name, quick, check in plain:
            if type(data[name]) is not quick:
                check(data[name])
        for name, encode_value, _ in nested:
            data[name] = encode_value(data[name])
        return data

    def decode(data: dict[str, Any]) -> Any:
        if len(data) != field_count:  # fields left out for their defaults, or a wrong shape
            return decode_some(data)
        try:
            for name, quick, check in plain:
                if type(data[name]) is not quick:
                    check(data[name])
            if nested:
                data = dict(data)
                for name, _, decode_value in nested:
                    data[name] = decode_value(data[name])
        except KeyError:  # as many fields as the class has, but not the same ones
            raise _MismatchError(_shape_problem(cls, data, names, required)) from None
        try:
            return cls(**data)
        except Exception as error:  # the class's own checks (__post_init__) refused the data
            raise _MismatchError(_refused_by_class(cls, data, error)) from None

    def decode_some(data: dict[str, Any]) -> Any:
        if not (data.keys() <= every_field and required <= data.keys()):
            raise _MismatchError(_shape_problem(cls, data, names, required))
        for name, quick, check in plain:
            if name in data and type(data[name]) is not quick:
                check(data[name])
        data = dict(data)
        for name, _, decode_value in nested:
            if name in data:
                data[name] = decode_value(data[name])
        try:
            return cls(**data)
        except Exception as error:
            raise _MismatchError(_refused_by_class(cls, data, error)) from None

    return encode, decode


def _refused_by_class(cls: type, data: dict[str, Any], error: Exception) -> str:
    return f"{cls.__qualname__}({_clip(repr(data))}) raised {type(error).__name__}: {error}"


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


def _field_codec(hint: Any, where: str, outer: tuple[type, ...]) -> tuple[Encoder, Decoder]:
    """Encoder and decoder for one field type; refuses a type JSON cannot round-trip."""
    if hint in _QUICK:
        check = _plain_check(hint, where)
        return check, check  # the same rule both ways: JSON keeps these values as they are
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union_codec(hint, args, where, outer)
    if origin is tuple:
        return _tuple_codec(args, where, outer)
    if origin is list:
        item = _field_codec(args[0], where + "[]", outer)
        return _sequence_codec(item, list, where)
    if origin is dict:
        if args[0] is not str:
            raise TypeError(f"{where}: a dict field needs str keys to be JSON, got {hint!r}")
        return _dict_codec(args[1], where, outer)
    if isinstance(hint, type):
        return _class_field_codec(hint, where, outer)
    raise TypeError(
        f"{where}: the type {hint!r} cannot be stored as JSON; use str, int, float, bool, "
        "Decimal, an Enum, a datetime, a dataclass, or a tuple/list/dict of those"
    )


def _class_field_codec(hint: type, where: str, outer: tuple[type, ...]) -> tuple[Encoder, Decoder]:
    if issubclass(hint, enum.Enum):
        return _enum_codec(hint, where)
    if hint is Decimal:
        return _decimal_codec(where)
    if hint is dt.datetime:
        return _datetime_codec(where)
    if hint is dt.date:
        return _date_codec(where)
    if dataclasses.is_dataclass(hint):
        return _dataclass_field_codec(hint, where, outer)
    raise TypeError(
        f"{where}: the type {hint.__qualname__} cannot be stored as JSON; make it a "
        "dataclass, or use str, int, float, bool, Decimal, an Enum or a datetime"
    )


def _dataclass_field_codec(
    hint: type, where: str, outer: tuple[type, ...]
) -> tuple[Encoder, Decoder]:
    encode_fields, decode_fields = _class_codec(hint, where, outer)

    def encode(value: Any) -> Any:
        if type(value) is not hint:
            # A subclass would come back as the field's class, without its own fields.
            exactly = " exactly" if isinstance(value, hint) else ""
            raise _MismatchError(
                f"{where} should be a {hint.__qualname__}{exactly}, got {_describe(value)}"
            )
        return encode_fields(value)

    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _MismatchError(f"{where} should be an object, got {_clip(repr(value))}")
        return decode_fields(value)

    return encode, decode


def _union_codec(
    hint: Any, args: tuple[Any, ...], where: str, outer: tuple[type, ...]
) -> tuple[Encoder, Decoder]:
    members = [arg for arg in args if arg is not types.NoneType]
    if len(members) == 1:  # X | None: null is only ever None, so there is nothing to guess
        return _optional_codec(*_field_codec(members[0], where, outer))
    # Decoding tries each member in turn, so list the most specific type first (int | str).
    options = [_field_codec(arg, where, outer) for arg in args]

    def decode(value: Any) -> Any:
        for _, decode_value in options:
            try:
                return decode_value(value)
            except _MismatchError:
                continue
        raise _MismatchError(f"{where} should be {hint}, got {_clip(repr(value))}")

    def encode(value: Any) -> Any:
        for encode_value, _ in options:
            try:
                written = encode_value(value)
            except _MismatchError:
                continue
            # Read it back as reading will: Decimal | str would give "1.5" back as a Decimal.
            if decode(written) != value:
                raise _MismatchError(
                    f"{where}: {value!r} would be read back as {decode(written)!r}, since "
                    f"reading tries {hint} in that order; put the member it belongs to first, "
                    "or use types whose JSON differs"
                )
            return written
        raise _MismatchError(f"{where} should be {hint}, got {_describe(value)}")

    return encode, decode


def _optional_codec(encode_value: Encoder, decode_value: Decoder) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        return None if value is None else encode_value(value)

    def decode(value: Any) -> Any:
        return None if value is None else decode_value(value)

    return encode, decode


def _tuple_codec(
    args: tuple[Any, ...], where: str, outer: tuple[type, ...]
) -> tuple[Encoder, Decoder]:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _field_codec(args[0], where + "[]", outer)
        return _sequence_codec(item, tuple, where)
    codecs = [_field_codec(arg, f"{where}[{i}]", outer) for i, arg in enumerate(args)]

    def encode(value: Any) -> Any:
        if not isinstance(value, tuple) or len(value) != len(codecs):
            raise _MismatchError(
                f"{where} should be a tuple of {len(codecs)}, got {_describe(value)}"
            )
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


def _sequence_codec(
    item: tuple[Encoder, Decoder], kind: type[Any], where: str
) -> tuple[Encoder, Decoder]:
    """A tuple[X, ...] or list[X] field: a JSON list, read back as ``kind``."""
    encode_item, decode_item = item

    def encode(value: Any) -> Any:
        if not isinstance(value, kind):
            fix = f": pass {kind.__name__}(...)" if isinstance(value, (list, tuple)) else ""
            raise _MismatchError(
                f"{where} should be a {kind.__name__} (it is read back as one), got "
                f"{_describe(value)}{fix}"
            )
        return [encode_item(element) for element in value]

    def decode(value: Any) -> Any:
        if not isinstance(value, list):
            raise _MismatchError(f"{where} should be a list, got {_clip(repr(value))}")
        return kind(decode_item(element) for element in value)

    return encode, decode


def _dict_codec(value_hint: Any, where: str, outer: tuple[type, ...]) -> tuple[Encoder, Decoder]:
    encode_value, decode_value = _field_codec(value_hint, where + "[]", outer)

    def encode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _MismatchError(f"{where} should be a dict, got {_describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise _MismatchError(
                    f"{where} has the key {key!r}: JSON keys are strings, and it would be read "
                    "back as one; use str keys"
                )
        return {key: encode_value(item) for key, item in value.items()}

    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _MismatchError(f"{where} should be an object, got {_clip(repr(value))}")
        return {key: decode_value(item) for key, item in value.items()}

    return encode, decode


def _enum_codec(hint: type[enum.Enum], where: str) -> tuple[Encoder, Decoder]:
    for member in hint:  # refuse now the members JSON would not give back
        try:
            text = _to_text(member.value)
            back = hint(_from_text(text)) if _text_problem(text) is None else None
        except Exception:
            back = None
        if back is not member:
            raise TypeError(
                f"{where}: {hint.__qualname__}.{member.name} has the value {member.value!r}, "
                f"which JSON does not give back as that member; give the members of "
                f"{hint.__qualname__} str, int or float values"
            )

    def encode(value: Any) -> Any:
        if not isinstance(value, hint):
            raise _MismatchError(
                f"{where} should be a {hint.__qualname__} member, got {_describe(value)}"
            )
        return value.value

    def decode(value: Any) -> Any:
        try:
            return hint(value)
        except Exception:
            raise _MismatchError(f"{where}: {value!r} is not a {hint.__qualname__}") from None

    return encode, decode


def _decimal_codec(where: str) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        if not isinstance(value, Decimal):
            raise _MismatchError(
                f"{where} should be a Decimal, got {_describe(value)}; build it from a "
                "string, Decimal('19.99'), so no digit is lost"
            )
        if value.is_nan():
            raise _MismatchError(f"{where} is Decimal({str(value)!r}), which equals nothing")
        return str(value)

    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise _MismatchError(
                f"{where}: a Decimal is stored as a string, got {_clip(repr(value))}"
            )
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _MismatchError(f"{where}: {value!r} is not a decimal number") from None
        if number.is_nan():
            raise _MismatchError(f"{where}: {value!r} is not a number")
        return number

    return encode, decode


def _datetime_codec(where: str) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        if not isinstance(value, dt.datetime):
            fix = (
                "; parse text first: datetime.fromisoformat(...)" if isinstance(value, str) else ""
            )
            raise _MismatchError(f"{where} should be a datetime, got {_describe(value)}{fix}")
        return value.isoformat()

    return encode, _iso_decoder(dt.datetime.fromisoformat, "an ISO datetime", where)


def _date_codec(where: str) -> tuple[Encoder, Decoder]:
    def encode(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            raise _MismatchError(
                f"{where} should be a date, got the datetime {value!r} (reading takes a "
                "date only); pass its .date()"
            )
        if not isinstance(value, dt.date):
            fix = "; parse text first: date.fromisoformat(...)" if isinstance(value, str) else ""
            raise _MismatchError(f"{where} should be a date, got {_describe(value)}{fix}")
        return value.isoformat()

    return encode, _iso_decoder(dt.date.fromisoformat, "an ISO date", where)


def _iso_decoder(parse: Callable[[str], Any], label: str, where: str) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise _MismatchError(f"{where} should be {label}, got {_clip(repr(value))}")
        try:
            return parse(value)
        except ValueError:
            raise _MismatchError(f"{where} should be {label}, got {_clip(repr(value))}") from None

    return decode


# -- plain values: checked, never converted (JSON already gives the right Python type)


def _plain_check(hint: Any, where: str) -> Callable[[Any], Any]:
    kinds, label = _PLAIN[hint]
    finite = hint is float

    def check(value: Any) -> Any:
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            if finite and not math.isfinite(value):
                raise _MismatchError(
                    f"{where} should be a finite number, got {value!r} (JSON has no NaN or "
                    "infinity)"
                )
            return value
        raise _MismatchError(f"{where} should be {label}, got {_clip(repr(value))}")

    return check


_PLAIN: dict[Any, tuple[tuple[type[Any], ...], str]] = {
    str: ((str,), "a string"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    types.NoneType: ((types.NoneType,), "null"),
}

# The exact type a plain field accepts without calling its check. A float goes through the
# check, which refuses nan and infinity (JSON cannot hold them; 1e999 reads as infinity).
_QUICK: dict[Any, type] = {
    str: str,
    int: int,
    float: int,
    bool: bool,
    types.NoneType: types.NoneType,
}


# -- text that UTF-8 cannot hold: a lone surrogate, as decoding bytes with
# errors="surrogateescape" makes, or as the JSON escape "\ud800" spells.


def _text_problem(text: str) -> str | None:
    """None if ``text`` can be written as UTF-8, else what is wrong with it."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (
            f"holds text that is not valid Unicode: the lone surrogate "
            f"{text[error.start]!r} at index {error.start}, which UTF-8 cannot store; clean "
            "it first, e.g. text.encode('utf-8', 'replace').decode()"
        )
    return None


def _find_bad_text(value: object, where: str) -> str | None:
    """Where in a JSON value a string UTF-8 cannot hold sits, and what it is (or None)."""
    if isinstance(value, str):
        problem = _text_problem(value)
        return None if problem is None else f"{where} {problem}"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_bad_text(key, f"{where} (a key)") or _find_bad_text(
                item, f"{where}.{key}"
            )
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_bad_text(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


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
