"""Events that know where they came from: event, correlation and causation ids.

A business transaction ("order o-1 is paid, so ship it, so tell the customer") is several
events handled by several handlers. To follow it end to end, each event carries three ids:

- ``event_id``: this event, and no other;
- ``correlation_id``: the transaction it belongs to (the ``event_id`` of the event that
  started it);
- ``causation_id``: the event whose handler created this one (None for the first).

:class:`Message` is an optional base class for frozen dataclass events that fills these in.
Outside a handler a new message starts a transaction of its own. Inside a handler wrapped in
the :func:`~eda_lesson.core.middleware.correlate` middleware (or inside ``with caused_by(event):``)
a new message joins the handled event's transaction and names it as its cause.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class OrderPaid(Message):
...     order_id: str
>>> @dataclass(frozen=True)
... class ShipmentRequested(Message):
...     order_id: str
>>> with use_ids(SequentialIds("evt")):
...     paid = OrderPaid("o-1")
...     with caused_by(paid):
...         ship = ShipmentRequested("o-1")
>>> paid.event_id, ship.event_id, ship.correlation_id, ship.causation_id
('evt-1', 'evt-2', 'evt-1', 'evt-1')
>>> ship  # the ids stay out of the repr, so tables of events stay readable
ShipmentRequested(order_id='o-1')

Ids come from an injectable factory: random (uuid4) by default, which is what separate
processes need; :class:`SequentialIds` for lessons and tests, set with ``use_ids`` (a
``with`` block) or ``set_ids`` (from now on, e.g. in a notebook's first cell).

Plain events without these fields keep working everywhere; this module never touches them.
It does not store, send or serialise messages.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType

__all__ = [
    "Command",
    "Event",
    "IdFactory",
    "Message",
    "SequentialIds",
    "caused_by",
    "current_cause",
    "delivered_as",
    "delivery_id",
    "new_id",
    "random_id",
    "running_cause",
    "set_ids",
    "use_ids",
]


class Command:
    """Base class of commands: requests with exactly one handler, whose answer is returned.

    ``class Allocate(Command)`` with ``@dataclass(frozen=True)``; name it in the imperative.
    """

    __slots__ = ()


class Event:
    """Optional base class of events: facts, named in the past tense, heard by any number of
    handlers. Any object that is not a :class:`Command` is dispatched as an event too."""

    __slots__ = ()


IdFactory = Callable[[], str]
"""A function that returns a new, unique id each time it is called."""


def random_id() -> str:
    """A random id (uuid4, as 32 hex digits): unique across processes and machines."""
    return uuid.uuid4().hex


class SequentialIds:
    """Ids that count: ``evt-1``, ``evt-2``, ... Deterministic, for lessons and tests.

    Unique only within one factory: two processes counting from 1 would collide, so real
    systems keep the default random ids.
    """

    def __init__(self, prefix: str = "evt", start: int = 1) -> None:
        self.prefix = prefix
        self._numbers = itertools.count(start)  # next() on a count is atomic in CPython

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self._numbers)}"

    def __repr__(self) -> str:
        return f"SequentialIds({self.prefix!r})"


_default_ids: IdFactory = random_id
_scoped_ids: ContextVar[IdFactory | None] = ContextVar("eda_lesson_ids", default=None)
#: The message whose handler is running here (set by ``caused_by`` and ``correlate``).
running_cause: ContextVar[Message | None] = ContextVar("eda_lesson_cause", default=None)


def new_id() -> str:
    """A new id from the factory in force (see :func:`use_ids` and :func:`set_ids`)."""
    return (_scoped_ids.get() or _default_ids)()


def set_ids(factory: IdFactory) -> None:
    """Use ``factory`` for new ids from now on, everywhere (a notebook's first cell)."""
    global _default_ids
    _check_factory(factory)
    _default_ids = factory


@contextmanager
def use_ids(factory: IdFactory) -> Iterator[IdFactory]:
    """Use ``factory`` for new ids inside the ``with`` block (in this thread or task)."""
    _check_factory(factory)
    token = _scoped_ids.set(factory)
    try:
        yield factory
    finally:
        _scoped_ids.reset(token)


_delivered: ContextVar[tuple[object, str] | None] = ContextVar("eda_lesson_delivered", default=None)


@contextmanager
def delivered_as(event: object, event_id: str) -> Iterator[object]:
    """``with delivered_as(event, "evt-7"):`` while the block runs, ``event`` is known by the
    id a broker or an outbox delivered it under (see :func:`delivery_id`).

    A consumer wraps its dispatch of each delivered event in this, so that handlers can
    recognise a redelivery of a plain event that has no ``event_id`` field of its own. Only
    that very object gets the id: the events its handlers produce are other events.
    """
    token = _delivered.set((event, event_id))
    try:
        yield event
    finally:
        _delivered.reset(token)


def delivery_id(event: object) -> str | None:
    """The id ``event`` was delivered under, inside :func:`delivered_as`; else None."""
    delivered = _delivered.get()
    if delivered is not None and delivered[0] is event:
        return delivered[1]
    return None


def current_cause() -> Message | None:
    """The message whose handler is running here, if any (see :class:`caused_by`)."""
    return running_cause.get()


class caused_by:  # noqa: N801 - used like a function: ``with caused_by(event):``
    """``with caused_by(event):`` messages created inside are caused by ``event``.

    The :func:`~eda_lesson.core.middleware.correlate` middleware wraps every handler call in
    this; use it directly where a message is created outside a handler on its behalf.
    """

    __slots__ = ("_cause", "_token")

    def __init__(self, cause: Message) -> None:
        if not isinstance(cause, Message):
            raise TypeError(
                f"caused_by() takes a Message (an event with ids), got {type(cause).__name__}; "
                "derive the event class from eda_lesson.core.messages.Message"
            )
        self._cause = cause
        self._token: Token[Message | None] | None = None

    def __enter__(self) -> Message:
        self._token = running_cause.set(self._cause)
        return self._cause

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            running_cause.reset(self._token)
            self._token = None


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base class for events that carry an event id, a correlation id and a causation id.

    Derive a frozen dataclass from it; its own fields may be positional, because these three
    are keyword-only. Leave them out and they are filled in: a new ``event_id`` from the id
    factory; inside a handler (see :class:`caused_by`) the cause's ``correlation_id`` and
    the cause's ``event_id`` as ``causation_id``; elsewhere the message starts its own
    transaction (``correlation_id == event_id``, no cause). Ids given explicitly are kept.

    The ids take part in ``==``: two payments of the same amount are two events. They are
    left out of the repr to keep tables readable; :meth:`ids` shows them.
    """

    event_id: str = field(default="", repr=False)
    correlation_id: str = field(default="", repr=False)
    causation_id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.event_id:
            object.__setattr__(self, "event_id", new_id())
        cause = running_cause.get()
        if not self.correlation_id:
            correlation = cause.correlation_id if cause is not None else self.event_id
            object.__setattr__(self, "correlation_id", correlation)
        if self.causation_id is None and cause is not None and cause is not self:
            object.__setattr__(self, "causation_id", cause.event_id)

    def ids(self) -> str:
        """The three ids in one line: ``evt-3 (correlation evt-1, caused by evt-2)``."""
        cause = f", caused by {self.causation_id}" if self.causation_id else ""
        return f"{self.event_id} (correlation {self.correlation_id}{cause})"


def _check_factory(factory: object) -> None:
    if not callable(factory):
        raise TypeError(
            f"an id factory is a function returning a new id each call, got {factory!r}; "
            "for example SequentialIds('evt') or random_id"
        )
