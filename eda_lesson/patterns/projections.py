"""Projections: read models built by following every event of the store in global order.

The event store answers "what happened to order o-1?"; a screen that lists orders by status,
or revenue per customer, wants a different shape. A *projection* reads the global order of
events (:meth:`~eda_lesson.patterns.store.EventStore.read_all`) and keeps such a shape up to date.
It remembers the position of the last event it has seen, so:

* ``catch_up(store)`` reads only what is new since last time (call it as often as you like);
* ``rebuild(store)`` forgets everything and reads from position 0, which gives the same read
  model as having caught up all along. That is why a read model can be thrown away and
  rebuilt when its code changes: the events, not the read model, are the truth.

A projection applies each event once: an event at or before its position is skipped, so
reading the same event twice changes nothing.

A stored event that cannot be read (a row another program broke) stops ``catch_up`` right
there: every event before it is applied, :attr:`Projection.position` is the one before it,
and the store's :class:`~eda_lesson.patterns.store.CorruptEventError` says which stream,
version and position to repair. Nothing is skipped silently: a read model that missed an
event would be wrong with no sign of it. Once the row is repaired (or an upcaster reads it),
the next ``catch_up`` goes on from there.

What this module does not do: store the read model or its position anywhere but memory (a
restart reads everything again; :mod:`eda_lesson.patterns.checkpoints` keeps both in SQLite,
committed together), or push events to projections (they pull, when asked).
"""

from __future__ import annotations

from typing import Any, ClassVar

from eda_lesson.patterns.event_methods import EventMethods
from eda_lesson.patterns.store import EventStore, StoredEvent

__all__ = ["Projection"]


class Projection:
    """Base of read models. A subclass sets up its empty state in :meth:`reset` and marks one
    method per event type it cares about with
    :func:`~eda_lesson.patterns.event_methods.applies`, as an aggregate does; other
    events are skipped (a read model reads every stream). As for the bus, a method for a base
    class hears its subclasses; the nearest class wins."""

    _methods: ClassVar[EventMethods] = EventMethods(object)

    position: int
    """Global position of the last event seen (0: none yet)."""

    def __init__(self) -> None:
        self.position = 0
        self.reset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = EventMethods(cls, cls._methods)

    def reset(self) -> None:
        """Forget the read model (subclasses clear their state and call this)."""
        self.position = 0

    def project(self, stored: StoredEvent) -> None:
        """Apply one stored event, unless it was seen already."""
        if stored.position <= self.position:
            return
        method = self._methods.find(stored.event, required=False)
        if method is not None:
            method(self, stored.event)
        self.position = stored.position

    def catch_up(self, store: EventStore) -> int:
        """Apply every event after :attr:`position`; return how many were read.

        Stops at the first event that cannot be read or applied, with :attr:`position` at
        the event before it, and raises the error (see the module docstring)."""
        project = self.project
        count = 0
        for stored in store.read_all(self.position):
            project(stored)
            count += 1
        return count

    def rebuild(self, store: EventStore) -> int:
        """Throw the read model away and build it again from the first event."""
        self.reset()
        return self.catch_up(store)

    def snapshot(self) -> object:
        """The read model as plain values, for comparing two projections."""
        raise NotImplementedError(f"{type(self).__name__} does not define snapshot()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(at position {self.position})"
