"""A unit of work for state-stored aggregates, whose committed events the bus collects.

A state-stored aggregate is a plain object that holds its current state (what a row in a
table would) and a list, ``events``, of what it decided since it was loaded. You write the
aggregate and a repository that stores it (in memory, in SQLite, with an ORM); the
repository subclasses :class:`TrackingRepository` so that it remembers every aggregate it
handed out. A :class:`StateUnitOfWork` groups one handler's changes: ``commit()`` saves them
and *then* takes the new events of every aggregate it saw; ``rollback()`` (also what leaving
the ``with`` block does) drops them, since what was not saved did not happen, and a commit
after the block is refused.

The bus collects those committed events after every handler call, beside the messages the
handler returned or dispatched::

    uow = SqlUnitOfWork(...)
    bus = EventBus(dependencies={"uow": uow}, collect_from=[uow])

    def allocate(command: Allocate, uow: SqlUnitOfWork) -> str:
        with uow:
            product = uow.products.get(command.sku)
            reference = product.allocate(command.order_id, command.quantity)  # records Allocated
            uow.commit()
        return reference

This is the unit of work of *Architecture Patterns with Python*, with one difference: the
book's ``collect_new_events`` takes every event an aggregate recorded, committed or not; here
only committed ones are handed over, so an event recorded by a handler that then failed is
never published. For event-sourced aggregates see :mod:`eda_lesson.patterns.unit_of_work`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = ["BlockEndedError", "RecordsEvents", "StateUnitOfWork", "TrackingRepository"]


class BlockEndedError(RuntimeError):
    """``commit()`` after the unit of work's ``with`` block ended: leaving the block already
    dropped the events of what it changed, so the commit would save a change nobody hears
    of. Nothing is saved; commit inside the block, or start a new one."""


def block_ended_text(unit_of_work: object) -> str:
    """The message of a :class:`BlockEndedError` for ``unit_of_work``."""
    return (
        f"{type(unit_of_work).__name__}.commit() after its with block ended: leaving the block "
        "already dropped the events of what it changed, so this commit would save the changes "
        "without them. Nothing was saved. Commit inside the block, as its last line, or start a "
        "new `with` block (which loads afresh) and decide again"
    )


class RecordsEvents(Protocol):
    """An aggregate whose ``events`` list holds what it decided since it was loaded."""

    events: list[Any]


A = TypeVar("A", bound=RecordsEvents)


class TrackingRepository(Generic[A]):
    """Base of repositories for state-stored aggregates: remembers what it handed out.

    Write ``_add(aggregate)`` and ``_get(reference)`` for your storage; use ``add`` and
    ``get``. ``seen`` lists the aggregates added or loaded, which the unit of work walks on
    commit.
    """

    def __init__(self) -> None:
        self.seen: list[A] = []

    def add(self, aggregate: A) -> None:
        """Store a new aggregate (and remember it)."""
        _check_records_events(aggregate, type(self).__name__)
        self._add(aggregate)
        self._remember(aggregate)

    def get(self, reference: Any) -> A | None:
        """The aggregate stored under ``reference``, or None (and remember what was found)."""
        aggregate = self._get(reference)
        if aggregate is not None:
            _check_records_events(aggregate, type(self).__name__)
            self._remember(aggregate)
        return aggregate

    def _remember(self, aggregate: A) -> None:
        if not any(known is aggregate for known in self.seen):
            self.seen.append(aggregate)

    def _add(self, aggregate: A) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _add(aggregate)")

    def _get(self, reference: Any) -> A | None:
        raise NotImplementedError(f"{type(self).__name__} must define _get(reference)")


class StateUnitOfWork:
    """Base of units of work whose committed events the bus collects (``collect_from``).

    Write ``_commit()`` and ``_rollback()`` for your storage, and keep each repository (a
    :class:`TrackingRepository`) in an attribute: ``self.products = ProductRepository()``.
    Use it as ``with uow: ... uow.commit()``. Leaving the block calls :meth:`rollback`:
    nothing more is saved and the uncommitted events are dropped, but the aggregates in
    memory keep their changed state; so a ``commit()`` after the block (before a new one
    starts) is refused with :class:`BlockEndedError`, as it would save them without their
    events. A subclass that overrides ``__enter__`` calls ``super().__enter__()``.
    """

    def __enter__(self) -> Self:
        vars(self)["_block_ended"] = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()
        vars(self)["_block_ended"] = True

    def commit(self) -> None:
        """Save the changes, then take the new events of every aggregate seen."""
        if vars(self).get("_block_ended", False):
            raise BlockEndedError(block_ended_text(self))
        self._commit()
        for aggregate in self._seen_aggregates():
            self._committed_events().extend(aggregate.events)
            aggregate.events.clear()

    def rollback(self) -> None:
        """Undo what was not committed; its events are dropped, since it did not happen."""
        self._rollback()
        for aggregate in self._seen_aggregates():
            aggregate.events.clear()

    def collect_new_events(self) -> Iterator[object]:
        """The committed events not handed over yet, oldest first; each is handed over once."""
        committed = self._committed_events()
        while committed:
            yield committed.pop(0)

    def repositories(self) -> list[TrackingRepository[Any]]:
        """The repositories of this unit of work: its attributes that are one."""
        return [value for value in vars(self).values() if isinstance(value, TrackingRepository)]

    def _seen_aggregates(self) -> Iterator[RecordsEvents]:
        for repository in self.repositories():
            yield from repository.seen

    def _committed_events(self) -> list[object]:
        """Committed events waiting to be collected (made on first use, so that a subclass's
        ``__init__`` need not call ``super().__init__()``)."""
        waiting: list[object] = vars(self).setdefault("_waiting_to_be_collected", [])
        return waiting

    def _commit(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _commit()")

    def _rollback(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _rollback()")


def _check_records_events(aggregate: object, repository: str) -> None:
    if not isinstance(getattr(aggregate, "events", None), list):
        raise TypeError(
            f"{repository} keeps aggregates that record events, but "
            f"{type(aggregate).__name__} has no `events` list; give it one in __init__ "
            "(self.events = []) and append what it decides"
        )
