"""One way to say "this method handles that event type", for aggregates and read models alike.

An aggregate changes its state by *applying* events; a read model (a projection) changes its
tables the same way. Both mark their methods with :func:`applies` and both find the method for
an event with the bus's rule (:func:`eda_lesson.core.checks.nearest_for`): the event's own
class first, then its base classes in method resolution order, so a method for ``OrderEvent``
hears every order event that has no method of its own.

The one place they differ is an event with no method at all, and that is deliberate: an
aggregate must understand every event in its own stream (a missing method is a bug, so
:meth:`EventMethods.find` is asked with ``required=True`` and raises), while a read model reads
every stream in the store and cares about a few kinds (it skips the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from eda_lesson.core.checks import nearest_for

__all__ = ["EventMethods", "applies"]

F = TypeVar("F", bound=Callable[..., None])

_MARK = "__applies_to__"


def applies(*event_types: type) -> Callable[[F], F]:
    """Mark a method as what to do with an event of any of ``event_types``.

    The method takes the event and updates ``self``. On an aggregate it checks nothing (the
    rules were checked when the event was recorded) and must not fail, since it also runs on
    replay; on a read model it updates the tables.
    """
    if not event_types:
        raise TypeError("@applies needs at least one event class, as in @applies(OrderPaid)")
    for event_type in event_types:
        if not isinstance(event_type, type):
            raise TypeError(
                f"@applies takes event classes, got {event_type!r}; "
                "write @applies(OrderPaid), naming the class, not an instance or a string"
            )

    def mark(method: F) -> F:
        setattr(method, _MARK, event_types)
        return method

    return mark


class EventMethods:
    """The marked methods of one class, by event type, inherited ones included."""

    def __init__(self, owner: type, inherited: EventMethods | None = None) -> None:
        self.owner = owner.__name__
        table = dict(inherited.table) if inherited is not None else {}
        table.update(_marked(vars(owner).values()))
        self.table: dict[type, Callable[[Any, Any], None]] = table

    def find(self, event: object, *, required: bool) -> Callable[[Any, Any], None] | None:
        """The method for ``event``'s class or its nearest base; None if there is none and
        the owner may skip it, a ``TypeError`` naming the fix if it is ``required``."""
        method = self.table.get(type(event)) or nearest_for(self.table, type(event))
        if method is None and required:
            event_name = type(event).__name__
            known = ", ".join(sorted(t.__name__ for t in self.table)) or "none"
            raise TypeError(
                f"{self.owner} does not know how to apply {event_name} (it applies: {known}); "
                f"add a method marked @applies({event_name}) to {self.owner}"
            )
        return method

    def event_types(self) -> list[type]:
        """The event types with a method of their own, in the order they were marked."""
        return list(self.table)


def _marked(members: Iterable[object]) -> dict[type, Callable[[Any, Any], None]]:
    found: dict[type, Callable[[Any, Any], None]] = {}
    for member in members:
        for event_type in getattr(member, _MARK, ()):
            found[event_type] = member  # type: ignore[assignment]
    return found
