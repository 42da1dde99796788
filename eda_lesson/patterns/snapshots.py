"""Aggregate snapshots: load a long stream from a saved state plus the events after it.

Loading an event-sourced aggregate replays its whole stream. For an order of five events that
costs nothing; for an account with a hundred thousand entries it costs every load. A
*snapshot* is the aggregate's state at one version ``N``, kept aside. Loading then takes the
newest snapshot and applies only the events after ``N``: the same state, from fewer events.

A snapshot is a cache, not the truth. The events stay the only record of what happened, and
the loader falls back on a full replay whenever a snapshot cannot be trusted:

* no snapshot of the stream yet: replay everything;
* a snapshot written by another version of the aggregate class (``snapshot_version``, a
  class attribute you raise whenever the class's state changes shape), newer or older, or by
  another class: ignored, replay everything, and the reason is in :attr:`Loaded.note`;
* a snapshot *beyond* the stream (version 7 of a stream of 5) is refused with
  :class:`SnapshotAheadError`: it belongs to some other history, and the events, which are
  the truth, cannot agree with it. Delete it.

>>> from eda_lesson.patterns.store import InMemoryEventStore
>>> from eda_lesson.shop.order import Order
>>> store, snapshots = InMemoryEventStore(), SnapshotStore()
>>> order = Order.create("o-1", "c-7", 42.0)
>>> order.pay()
>>> store.append(order.stream_id, order.collect_pending(), 0)
2
>>> snapshots.save(order)
Snapshot('order-o-1' at version 2, Order v1)
>>> order.ship("T-1")
>>> store.append(order.stream_id, order.collect_pending(), 2)
3
>>> loaded = load(store, Order, "o-1", snapshots)
>>> loaded
Loaded(Order('o-1', status='shipped', total=42.0, version=3), snapshot at version 2, 1 event read)
>>> loaded.aggregate == Order.from_events(s.event for s in store.read("order-o-1"))
True

What this module does not do: decide when to take a snapshot (call :meth:`SnapshotStore.save`
where it pays, say every 100 events: :func:`due`), keep snapshots anywhere but memory (a real
one would sit in a table beside the events, written after the append, never in its
transaction), or snapshot an aggregate with unsaved events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import Aggregate
from eda_lesson.patterns.store import EventStore

__all__ = [
    "Loaded",
    "Snapshot",
    "SnapshotAheadError",
    "SnapshotStore",
    "class_version",
    "due",
    "load",
    "restore",
    "take_snapshot",
]

A = TypeVar("A", bound=Aggregate)

_BOOKKEEPING = ("pending", "saved_version")


class SnapshotAheadError(Exception):
    """A snapshot claims a version the stream has not reached: it is not of this history."""

    def __init__(self, stream_id: str, snapshot_version: int, stream_version: int) -> None:
        self.stream_id = stream_id
        self.snapshot_version = snapshot_version
        self.stream_version = stream_version
        super().__init__(
            f"the snapshot of {stream_id!r} is at version {snapshot_version}, but the stream "
            f"holds only {plural(stream_version, 'event')}: the snapshot is of some other "
            "history (a restored backup, a reused id). The events are the truth: delete the "
            "snapshot (snapshots.forget(stream_id)) and load again"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.snapshot_version, self.stream_version)


def class_version(aggregate_type: type[Aggregate]) -> int:
    """The shape version of ``aggregate_type``'s state: its ``snapshot_version`` (1 if unset)."""
    version = getattr(aggregate_type, "snapshot_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TypeError(
            f"{aggregate_type.__name__}.snapshot_version is a whole number from 1, got {version!r}"
        )
    return version


@dataclass(frozen=True)
class Snapshot:
    """An aggregate's state at one version of its stream, and the class shape that wrote it."""

    stream_id: str
    version: int
    aggregate_type: str
    class_version: int
    state: dict[str, Any] = field(repr=False, compare=True)

    def __repr__(self) -> str:
        where = f"{self.stream_id!r} at version {self.version}"
        return f"Snapshot({where}, {self.aggregate_type} v{self.class_version})"


def take_snapshot(aggregate: Aggregate) -> Snapshot:
    """A snapshot of ``aggregate``, which must have no unsaved events (commit first)."""
    if not isinstance(aggregate, Aggregate):
        raise TypeError(f"take_snapshot() takes an event-sourced Aggregate, got {aggregate!r}")
    if aggregate.pending:
        raise ValueError(
            f"{aggregate.stream_id} has {plural(len(aggregate.pending), 'unsaved event')}; a "
            "snapshot must match what the store holds, so commit first, then take it"
        )
    if aggregate.version == 0:
        raise ValueError("a blank aggregate has nothing to snapshot; record an event first")
    state = {k: v for k, v in vars(aggregate).items() if k not in _BOOKKEEPING}
    kind = type(aggregate)
    return Snapshot(
        aggregate.stream_id, aggregate.version, kind.__name__, class_version(kind), _copy(state)
    )


def restore(snapshot: Snapshot, aggregate_type: type[A]) -> A:
    """The aggregate as it was at ``snapshot.version`` (raises ``ValueError`` if the snapshot
    is of another class or another class version)."""
    if snapshot.aggregate_type != aggregate_type.__name__:
        raise ValueError(
            f"this snapshot is of a {snapshot.aggregate_type}, not a {aggregate_type.__name__}"
        )
    if snapshot.class_version != class_version(aggregate_type):
        raise ValueError(
            f"this snapshot was written by {snapshot.aggregate_type} v{snapshot.class_version}, "
            f"and the class is now v{class_version(aggregate_type)}: its state may not fit; "
            "replay the events instead (load() does)"
        )
    aggregate = aggregate_type()
    vars(aggregate).update(_copy(snapshot.state))
    aggregate.pending = []
    aggregate.saved_version = aggregate.version
    return aggregate


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    # Deep, so that a restored aggregate and the snapshot never share a mutable value.
    return copy.deepcopy(state)


class SnapshotStore:
    """The newest snapshot of each stream, in memory."""

    def __init__(self) -> None:
        self._latest: dict[str, Snapshot] = {}

    def save(self, aggregate: Aggregate) -> Snapshot:
        """Snapshot ``aggregate`` and keep it (if it is newer than the one kept)."""
        snapshot = take_snapshot(aggregate)
        self.put(snapshot)
        return snapshot

    def put(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` unless a newer one of its stream is kept already."""
        kept = self._latest.get(snapshot.stream_id)
        if kept is None or kept.version <= snapshot.version:
            self._latest[snapshot.stream_id] = snapshot

    def latest(self, stream_id: str) -> Snapshot | None:
        """The newest snapshot of ``stream_id``, if any."""
        return self._latest.get(stream_id)

    def forget(self, stream_id: str) -> None:
        """Drop the snapshot of ``stream_id`` (the next load replays everything)."""
        self._latest.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._latest)

    def __repr__(self) -> str:
        return f"SnapshotStore({plural(len(self._latest), 'snapshot')})"


@dataclass(frozen=True)
class Loaded(Generic[A]):
    """An aggregate loaded through :func:`load`, and how it was loaded."""

    aggregate: A
    snapshot_version: int
    """The version of the snapshot used (0: none, every event was replayed)."""
    events_read: int
    note: str = ""
    """Why a snapshot was not used, when one was kept but ignored."""

    def __repr__(self) -> str:
        start = (
            f"snapshot at version {self.snapshot_version}"
            if self.snapshot_version
            else ("no snapshot")
        )
        note = f", {self.note}" if self.note else ""
        read = plural(self.events_read, "event")
        return f"Loaded({self.aggregate!r}, {start}, {read} read{note})"


def load(
    store: EventStore, aggregate_type: type[A], aggregate_id: str, snapshots: SnapshotStore
) -> Loaded[A]:
    """Load ``aggregate_id`` from its newest usable snapshot plus the events after it, or
    from all its events when there is no usable snapshot. Raises
    :class:`SnapshotAheadError` if the snapshot is beyond the stream."""
    stream_id = aggregate_type.stream_for(aggregate_id)
    snapshot = snapshots.latest(stream_id)
    note = _unusable(snapshot, aggregate_type) if snapshot is not None else ""
    if note:
        snapshot = None
    if snapshot is None:
        events = store.read(stream_id)
        if not events:
            raise LookupError(f"the stream {stream_id!r} is empty: there is nothing to load")
        aggregate = aggregate_type.from_events(stored.event for stored in events)
        return Loaded(aggregate, 0, len(events), note)
    after = store.read(stream_id, from_version=snapshot.version)
    if not after and store.version(stream_id) < snapshot.version:
        raise SnapshotAheadError(stream_id, snapshot.version, store.version(stream_id))
    aggregate = restore(snapshot, aggregate_type)
    for stored in after:
        aggregate.apply(stored.event)
    aggregate.saved_version = aggregate.version
    return Loaded(aggregate, snapshot.version, len(after))


def _unusable(snapshot: Snapshot, aggregate_type: type[Aggregate]) -> str:
    """Why ``snapshot`` cannot seed ``aggregate_type`` ("" if it can)."""
    wanted = (aggregate_type.__name__, class_version(aggregate_type))
    if (snapshot.aggregate_type, snapshot.class_version) == wanted:
        return ""
    return (
        f"snapshot of {snapshot.aggregate_type} v{snapshot.class_version} ignored "
        f"(the class is {wanted[0]} v{wanted[1]})"
    )


def due(aggregate: Aggregate, snapshots: SnapshotStore, every: int) -> bool:
    """Whether ``aggregate`` is ``every`` or more events past its stream's kept snapshot."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every is a whole number of events from 1, got {every!r}")
    kept = snapshots.latest(aggregate.stream_id)
    return aggregate.version - (kept.version if kept else 0) >= every
