"""The unit of work: save what an aggregate decided, and only then tell the world.

A command runs in one unit of work: load an aggregate from the event store, call a command
on it (which records events, see :mod:`eda_lesson.patterns.aggregate`), then ``commit()``. Commit
appends the recorded events to the aggregate's stream with the version it was loaded at, and
*only after that append succeeded* dispatches them on the bus.

The order matters. Handlers do things that cannot be taken back: they send emails, charge
cards, call other services. If the events were published first and the save then failed
(another writer got there first, the disk is full), the world would have heard about
something that never happened. :class:`PublishBeforeCommitUnitOfWork` does exactly that, on
purpose, so a notebook can show the bug; do not use it for anything else.

What this module does not do: retry after a conflict (the caller decides; see
:class:`~eda_lesson.patterns.store.ConcurrencyError`), change several aggregates in one commit (one
aggregate per transaction, the rule that keeps each append atomic), or guarantee delivery
when the process dies between the save and the publish (that needs an outbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from eda_lesson.core.bus import EventBus, require_sync_bus
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import Aggregate, DomainError
from eda_lesson.patterns.state_unit_of_work import BlockEndedError, block_ended_text
from eda_lesson.patterns.store import EventStore

__all__ = [
    "AggregateNotFoundError",
    "PublishBeforeCommitUnitOfWork",
    "Repository",
    "UnitOfWork",
    "WorkStep",
]

A = TypeVar("A", bound=Aggregate)


class AggregateNotFoundError(LookupError):
    """No events exist for the aggregate asked for."""


@dataclass(frozen=True)
class WorkStep:
    """One thing a unit of work did, in order: what a drawing of a command's flow shows."""

    action: str
    """'load', 'add', 'save', 'conflict', 'publish' or 'discard'."""
    detail: str

    def __str__(self) -> str:
        return f"{self.action}: {self.detail}"


class Repository(Generic[A]):
    """Loads aggregates of one type from an event store, and remembers the ones it handed out
    (so the unit of work knows what to save)."""

    def __init__(self, store: EventStore, aggregate_type: type[A], work: UnitOfWork) -> None:
        self.store = store
        self.aggregate_type = aggregate_type
        self._work = work
        self.seen: list[A] = []

    def get(self, aggregate_id: str) -> A:
        """The aggregate rebuilt from its stream (the same object if this unit of work
        already loaded it, so two changes to it cannot overwrite each other)."""
        for aggregate in self.seen:
            if aggregate.id == aggregate_id:
                return aggregate
        stream_id = self.aggregate_type.stream_for(aggregate_id)
        events = [stored.event for stored in self.store.read(stream_id)]
        kind = self.aggregate_type.__name__
        if not events:
            raise AggregateNotFoundError(
                f"no {kind} {aggregate_id!r}: the stream {stream_id!r} is empty; create it "
                f"first ({kind}.create(...)) and add it: uow.repository({kind}).add(...)"
            )
        aggregate = self.aggregate_type.from_events(events)
        self._work.note("load", f"{stream_id} at version {aggregate.version}")
        self.seen.append(aggregate)
        return aggregate

    def add(self, aggregate: A) -> None:
        """Track a new aggregate so the next commit saves it."""
        if not isinstance(aggregate, self.aggregate_type):
            raise TypeError(
                f"this repository keeps {self.aggregate_type.__name__} aggregates, "
                f"got {aggregate!r}"
            )
        if not any(existing is aggregate for existing in self.seen):
            self.seen.append(aggregate)
            self._work.note("add", f"new {aggregate.stream_id}")

    def __repr__(self) -> str:
        return f"Repository({self.aggregate_type.__name__}, {len(self.seen)} in use)"


class UnitOfWork:
    """One business transaction: load, change one aggregate, commit (save, *then* publish).

    >>> from eda_lesson.patterns.store import InMemoryEventStore
    >>> from eda_lesson.shop.order import Order
    >>> store, bus = InMemoryEventStore(), EventBus()
    >>> with UnitOfWork(store, bus) as uow:
    ...     uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
    ...     results = uow.commit()
    >>> print(uow.describe())
    UnitOfWork(committed, 3 steps)
      1. add: new order-o-1
      2. save: OrderCreated to order-o-1, version 0 -> 1
      3. publish: OrderCreated

    Leaving the ``with`` block without committing discards what was recorded.
    """

    def __init__(self, store: EventStore, bus: EventBus) -> None:
        self.store = store
        self.bus = require_sync_bus(bus, type(self).__name__)
        self.steps: list[WorkStep] = []
        self.published: list[object] = []
        self.status = "open"
        """'open'; 'committed' once saved and published; 'discarded' after leaving without a
        commit (nothing was saved); 'saved' when the save succeeded but publishing did not
        finish (the store holds the events; :attr:`published` lists those the bus heard)."""
        self._repositories: dict[type[Aggregate], Repository[Any]] = {}
        self._saved_count = 0

    def repository(self, aggregate_type: type[A]) -> Repository[A]:
        """The repository for ``aggregate_type`` in this unit of work."""
        repository = self._repositories.get(aggregate_type)
        if repository is None:
            repository = self._repositories[aggregate_type] = Repository(
                self.store, aggregate_type, self
            )
        return repository

    # ------------------------------------------------------------------ commit

    def commit(self) -> list[DispatchResult]:
        """Save the changed aggregate's pending events, then dispatch them; return the
        dispatch results. A :class:`~eda_lesson.patterns.store.ConcurrencyError` from the save
        propagates, and then nothing is published. After the ``with`` block discarded the
        changes a commit is refused with
        :class:`~eda_lesson.patterns.state_unit_of_work.BlockEndedError`: it would save
        nothing while the aggregates in memory still look changed."""
        if self.status == "discarded":
            raise BlockEndedError(block_ended_text(self))
        changed = self._changed()
        if not changed:
            self.status = "committed"
            return []
        events = self._save(changed)
        self.status = "saved"  # from here on the events exist, whatever publishing does
        results = self._publish(events)
        self.status = "committed"
        return results

    def _changed(self) -> list[Aggregate]:
        changed = [
            aggregate
            for repository in self._repositories.values()
            for aggregate in repository.seen
            if aggregate.pending
        ]
        if len(changed) > 1:
            names = ", ".join(aggregate.stream_id for aggregate in changed)
            raise DomainError(
                f"one unit of work changes one aggregate, but {len(changed)} changed ({names}); "
                "commit each in its own unit of work, and let events carry the change across"
            )
        return changed

    def _save(self, changed: list[Aggregate]) -> list[object]:
        (aggregate,) = changed
        events = list(aggregate.pending)
        names = ", ".join(type(event).__name__ for event in events)
        try:
            version = self.store.append(aggregate.stream_id, events, aggregate.saved_version)
        except Exception as error:
            self.note("conflict", f"{aggregate.stream_id}: {type(error).__name__}")
            raise
        self.note(
            "save",
            f"{names} to {aggregate.stream_id}, version {aggregate.saved_version} -> {version}",
        )
        aggregate.collect_pending()
        self._saved_count = len(events)
        return events

    def _publish(self, events: list[object]) -> list[DispatchResult]:
        results = []
        for event in events:
            results.append(self.bus.dispatch(event))
            self.published.append(event)
            self.note("publish", type(event).__name__)
        return results

    # ------------------------------------------------------------------ the with block

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.status == "saved":
            unheard = self._saved_count - len(self.published)
            self.note("unpublished", f"{plural(unheard, 'saved event')} not published")
            return
        if self.status != "open":
            return
        for repository in self._repositories.values():
            for aggregate in repository.seen:
                if aggregate.pending:
                    dropped = ", ".join(type(event).__name__ for event in aggregate.pending)
                    self.note("discard", f"{dropped} of {aggregate.stream_id} (not committed)")
                    aggregate.pending = []
        self.status = "discarded"

    def note(self, action: str, detail: str) -> None:
        """Add a step to :attr:`steps` (repositories call this as they work)."""
        self.steps.append(WorkStep(action, detail))

    def describe(self) -> str:
        """The steps taken so far, one per line."""
        lines = [repr(self)] + [f"  {i}. {step}" for i, step in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {plural(len(self.steps), 'step')})"


class PublishBeforeCommitUnitOfWork(UnitOfWork):
    """DELIBERATELY WRONG: publishes the events *before* saving them.

    It exists so a notebook can show the bug: when the save then fails (say with a
    ConcurrencyError because someone cancelled the order meanwhile), the handlers have
    already run: the receipt was emailed for a payment the store never recorded.
    """

    def commit(self) -> list[DispatchResult]:
        changed = self._changed()
        if not changed:
            self.status = "committed"
            return []
        results = self._publish(list(changed[0].pending))  # the bug: the world hears first
        self._save(changed)
        self.status = "committed"
        return results
