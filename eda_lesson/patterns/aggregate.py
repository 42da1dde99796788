"""Aggregates: objects that guard the rules of the domain and remember what they decided.

An aggregate is the one place a rule is enforced ("a cancelled order cannot be paid"). Its
commands (``pay``, ``cancel``) check the rules against the current state; if the command is
allowed, they *record* an event instead of changing the state directly or publishing
anything. Recording does two things: the event is *applied* (one small method per event type
changes the state), and it joins :attr:`Aggregate.pending`, the events not yet saved.

Because state only ever changes by applying events, the events are enough to rebuild it: an
aggregate's state is a left fold of its history. :meth:`Aggregate.from_events` replays them
into a blank aggregate; replaying the first *n* gives the state at version *n* (time travel).

Saving and publishing are not the aggregate's business: a unit of work
(:mod:`eda_lesson.patterns.unit_of_work`) appends :attr:`~Aggregate.pending` to an event store, and
only once that has committed hands the events to the bus.

>>> from dataclasses import dataclass
>>> from eda_lesson.patterns.event_methods import applies
>>> @dataclass(frozen=True)
... class Opened:
...     account_id: str
>>> @dataclass(frozen=True)
... class Deposited:
...     amount: int
>>> class Account(Aggregate):
...     def __init__(self) -> None:
...         super().__init__()
...         self.balance = 0
...     @classmethod
...     def open(cls, account_id: str) -> "Account":
...         account = cls()
...         account.record(Opened(account_id))
...         return account
...     def deposit(self, amount: int) -> None:
...         if amount <= 0:
...             raise DomainError(f"a deposit must be positive, got {amount}")
...         self.record(Deposited(amount))
...     @applies(Opened)
...     def _opened(self, event: Opened) -> None:
...         self.id = event.account_id
...     @applies(Deposited)
...     def _deposited(self, event: Deposited) -> None:
...         self.balance += event.amount
>>> account = Account.open("a-1")
>>> account.deposit(5)
>>> account, account.balance, [type(event).__name__ for event in account.pending]
(Account('a-1', version=2), 5, ['Opened', 'Deposited'])
>>> Account.from_events(account.pending[:1]).balance
0

The shop's order (:mod:`eda_lesson.shop.order`) is a fuller aggregate built the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from eda_lesson.patterns.event_methods import EventMethods

__all__ = ["Aggregate", "DomainError"]


class DomainError(Exception):
    """A command broke a rule of the domain; nothing was recorded."""


class Aggregate:
    """Base of event-sourced aggregates: record events, apply them, replay them.

    A subclass sets its blank state in ``__init__`` (taking no arguments), has one
    :func:`~eda_lesson.patterns.event_methods.applies` method per event
    type, and commands that check rules and call
    :meth:`record`. Its events live in the stream ``"<stream_prefix>-<id>"``.
    """

    stream_prefix: ClassVar[str] = ""
    """Start of the stream ids of this kind of aggregate (the class name in lower case)."""

    _methods: ClassVar[EventMethods] = EventMethods(object)

    id: str
    version: int
    """How many events have been applied, pending ones included."""
    saved_version: int
    """The stream's version when this aggregate was loaded or last saved (0 for a new one)."""
    pending: list[Any]
    """Events recorded since then, waiting to be saved (and only then published)."""

    def __init__(self) -> None:
        self.id = ""
        self.version = 0
        self.saved_version = 0
        self.pending = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = EventMethods(cls, cls._methods)
        if not cls.__dict__.get("stream_prefix"):
            cls.stream_prefix = cls.__name__.lower()

    # ------------------------------------------------------------------ events

    def record(self, event: object) -> None:
        """Apply ``event`` and keep it as pending. Commands call this once rules are checked."""
        self.apply(event)
        self.pending.append(event)

    def apply(self, event: object) -> None:
        """Change the state as ``event`` says (no rules are checked: this is replay)."""
        method = self._methods.find(event, required=True)
        assert method is not None  # find() raises when a required method is missing
        method(self, event)
        self.version += 1

    def collect_pending(self) -> list[Any]:
        """Take the pending events out (a unit of work calls this once they are saved)."""
        events, self.pending = self.pending, []
        self.saved_version = self.version
        return events

    # ------------------------------------------------------------------ replay

    @classmethod
    def from_events(cls, events: Iterable[object]) -> Self:
        """The aggregate rebuilt by applying ``events`` in order to a blank one."""
        aggregate = cls()
        apply = aggregate.apply
        for event in events:
            apply(event)
        aggregate.saved_version = aggregate.version
        return aggregate

    @classmethod
    def history(cls, events: Iterable[object]) -> list[tuple[object, Self]]:
        """Each event beside a copy of the state it produced: the frames of time travel."""
        aggregate, frames = cls(), []
        for event in events:
            aggregate.apply(event)
            aggregate.saved_version = aggregate.version
            frames.append((event, copy.copy(aggregate)))
        return frames

    @property
    def stream_id(self) -> str:
        return self.stream_for(self.id)

    @classmethod
    def stream_for(cls, aggregate_id: str) -> str:
        """The stream holding the events of the aggregate ``aggregate_id``."""
        return f"{cls.stream_prefix}-{aggregate_id}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, version={self.version})"

    def __copy__(self) -> Self:
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.pending = list(self.pending)
        return twin
