"""The event store: streams of events with versions, and one global order across them.

An event store keeps what happened, and nothing else. Each *stream* (say ``order-o-1``) is
a list of events numbered 1, 2, 3, ...: the *version* of a stream is how many events it has.
Every event also gets a *position* in one global order across all streams, so a read model
can follow everything that happens, in the order it was committed.

Writers use *optimistic concurrency*: ``append(stream_id, events, expected_version)`` says
"I decided this having seen the stream at version N". If somebody appended in the meantime,
the append raises :class:`ConcurrencyError` and writes nothing; the caller reads again and
decides again.

Two stores have the same interface (:class:`EventStore`): :class:`InMemoryEventStore` keeps
the event objects in lists; :class:`SQLiteEventStore` keeps them as JSON (through an
:class:`~eda_lesson.patterns.serialization.EventRegistry`) in an SQLite file or in ``':memory:'``.

Durability of :class:`SQLiteEventStore`
---------------------------------------
A file store runs in WAL mode with ``synchronous=FULL``, the same as the ``eventsourcing``
library (WAL plus SQLite's default ``FULL``). Why:

* WAL lets readers (a projection catching up, another process) read while a writer appends;
  nobody waits for a reader, and a reader sees only whole, committed appends.
* ``FULL`` flushes the log to the disk at every commit, so an append that returned survives a
  power cut or an operating system crash, not just the crash of our process. The events are
  the only copy of the state: losing a committed one would silently rewrite history.
  ``NORMAL`` in WAL mode is safe against a crashed process but may forget the last commits if
  the machine loses power; pass ``synchronous="NORMAL"`` only where that is acceptable.

Each append is one transaction started with ``BEGIN IMMEDIATE``: it takes the write lock
before reading the stream's version, so two writers cannot both see version N and both
write N + 1. ``UNIQUE(stream_id, version)`` backs that up in the schema itself. The global
position is the ``INTEGER PRIMARY KEY``; since appends take turns and a rolled-back append
takes its rows with it, committed positions have no gaps and only ever grow.

What this module does not do: publish events (see :mod:`eda_lesson.patterns.unit_of_work`), build
read models (:mod:`eda_lesson.patterns.projections`), snapshots, or deleting and rewriting history.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from eda_lesson.core.text import plural
from eda_lesson.patterns.serialization import EventFormatError, EventRegistry

__all__ = [
    "ConcurrencyError",
    "CorruptEventError",
    "EventStore",
    "InMemoryEventStore",
    "SQLiteEventStore",
    "StoredEvent",
    "StoredRow",
]


class StoredEvent(NamedTuple):
    """One event as the store keeps it: where it sits globally and in its stream."""

    position: int
    """Place in the global order of all streams, from 1."""
    stream_id: str
    version: int
    """Place in its stream, from 1: the stream's version once this event is in it."""
    event: Any

    @property
    def type_name(self) -> str:
        return type(self.event).__name__


class StoredRow(NamedTuple):
    """One row of an :class:`SQLiteEventStore`, exactly as written: the event still JSON."""

    position: int
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    payload: str


class ConcurrencyError(Exception):
    """An append expected a stream at one version and found it at another; nothing was written."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r} is at version {actual_version}, but the append expected "
            f"version {expected_version}: someone else appended since you read it. Nothing "
            "was written; read the stream again, decide again, and retry"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # so the error crosses process boundaries
        return type(self), (self.stream_id, self.expected_version, self.actual_version)


class CorruptEventError(EventFormatError):
    """A stored event cannot be read back; says which stream, version and position."""

    def __init__(self, stream_id: str, version: int, position: int, problem: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.position = position
        super().__init__(
            f"cannot read stream {stream_id!r} version {version} (global position "
            f"{position}): {problem}"
        )


@runtime_checkable
class EventStore(Protocol):
    """What every event store offers. Versions and positions count from 1; 0 means "none"."""

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        """Add ``events`` to the end of ``stream_id`` if it is at ``expected_version``
        (0 for a new stream); return the stream's new version. All of them or none."""
        ...

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        """The events of ``stream_id`` after ``from_version``, oldest first."""
        ...

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        """Every event of every stream after ``from_position``, in the global order."""
        ...

    def version(self, stream_id: str) -> int:
        """How many events ``stream_id`` holds (0 if it has none)."""
        ...

    def last_position(self) -> int:
        """The global position of the newest event (0 if the store is empty)."""
        ...

    def stream_ids(self) -> list[str]:
        """Every stream that holds events, in the order they were started."""
        ...


# ---------------------------------------------------------------------- checks shared by both


def _checked_append(
    stream_id: object, events: Iterable[object], expected_version: object
) -> list[object]:
    if not isinstance(stream_id, str) or not stream_id:
        raise TypeError(f"a stream id is a non-empty string, got {stream_id!r}")
    if (
        isinstance(expected_version, bool)
        or not isinstance(expected_version, int)
        or expected_version < 0
    ):
        raise TypeError(
            f"expected_version is the stream's version when you read it (0 for a new "
            f"stream), got {expected_version!r}"
        )
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise TypeError(
            f"append() takes a list of events, got {type(events).__name__}; "
            "wrap a single event: append(stream_id, [event], expected_version)"
        )
    batch = list(events)
    for event in batch:
        if isinstance(event, type) or event is None:
            raise TypeError(
                f"append() takes event instances, got {event!r}; create one first: Event(...)"
            )
    return batch


def _checked_from(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{what} is a whole number from 0, got {value!r}")
    return value


def _describe_events(store: EventStore, limit: int) -> str:
    lines: list[str] = []
    for stored in store.read_all():
        if len(lines) == limit:
            lines.append(f"  ... ({store.last_position() - limit} more)")
            break
        lines.append(
            f"  {stored.position:>4}  {stored.stream_id}  v{stored.version}  {stored.event!r}"
        )
    return "\n".join([repr(store), *lines])


# ---------------------------------------------------------------------- in memory


class InMemoryEventStore:
    """An event store in two lists: per stream, and the global log. Thread-safe.

    It keeps the event objects themselves (events are immutable, so sharing them is safe),
    so it needs no registry and is as fast as a store can be. Nothing survives the process.

    >>> from eda_lesson.shop.events import OrderCreated, OrderPaid
    >>> store = InMemoryEventStore()
    >>> store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    1
    >>> store.append("order-o-1", [OrderPaid("o-1", 42.0)], expected_version=1)
    2
    >>> [stored.type_name for stored in store.read("order-o-1")]
    ['OrderCreated', 'OrderPaid']
    """

    def __init__(self) -> None:
        self._streams: dict[str, list[StoredEvent]] = {}
        self._log: list[StoredEvent] = []
        self._lock = threading.Lock()

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        batch = _checked_append(stream_id, events, expected_version)
        with self._lock:
            stream = self._streams.get(stream_id, [])
            if len(stream) != expected_version:
                raise ConcurrencyError(stream_id, expected_version, len(stream))
            position, version = len(self._log), expected_version
            stored = [
                StoredEvent(position + i, stream_id, version + i, event)
                for i, event in enumerate(batch, start=1)
            ]
            if stored:
                self._streams.setdefault(stream_id, stream).extend(stored)
                self._log.extend(stored)
            return version + len(stored)

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        _checked_from(from_version, "from_version")
        return self._streams.get(stream_id, [])[from_version:]

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        _checked_from(from_position, "from_position")
        return iter(self._log[from_position:])

    def version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    def last_position(self) -> int:
        return len(self._log)

    def stream_ids(self) -> list[str]:
        return list(self._streams)

    def describe(self, limit: int = 20) -> str:
        """The store and its first ``limit`` events in global order, one per line."""
        return _describe_events(self, limit)

    def __len__(self) -> int:
        return len(self._log)

    def __repr__(self) -> str:
        return (
            f"InMemoryEventStore({plural(len(self._log), 'event')} in "
            f"{plural(len(self._streams), 'stream')})"
        )


# ---------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (stream_id, version)
)
"""
_INSERT = (
    "INSERT INTO events (stream_id, version, event_type, schema_version, payload) "
    "VALUES (?, ?, ?, ?, ?)"
)
_STREAM_VERSION = "SELECT MAX(version) FROM events WHERE stream_id = ?"
_READ_STREAM = (
    "SELECT position, version, event_type, schema_version, payload FROM events "
    "WHERE stream_id = ? AND version > ? ORDER BY version"
)
_READ_ALL = (
    "SELECT position, stream_id, version, event_type, schema_version, payload FROM events "
    "WHERE position > ? ORDER BY position LIMIT ?"
)

Synchronous = Literal["FULL", "NORMAL", "OFF"]


class SQLiteEventStore:
    """An event store in one SQLite table, events kept as JSON through ``registry``.

    ``path`` is a file (created if missing) or ``":memory:"``. Several stores, threads and
    processes may share one file: appends take turns through SQLite's write lock, waiting
    up to ``timeout`` seconds for it. One store object may be used from several threads.
    See the module docstring for why the file runs in WAL mode with ``synchronous=FULL``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        registry: EventRegistry,
        *,
        timeout: float = 30.0,
        synchronous: Synchronous = "FULL",
        page_size: int = 1000,
    ) -> None:
        if not isinstance(registry, EventRegistry):
            raise TypeError(
                f"SQLiteEventStore needs an EventRegistry to turn events into JSON and back, "
                f"got {registry!r}; build one with EventRegistry.of(OrderCreated, ...)"
            )
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous is 'FULL', 'NORMAL' or 'OFF', got {synchronous!r}")
        self.path = os.fspath(path)
        self.registry = registry
        self.synchronous = synchronous
        self.page_size = page_size
        self._lock = threading.Lock()
        # Autocommit mode (isolation_level=None): we open every transaction ourselves, so
        # the module never starts one behind our back.
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._set_up()

    def _set_up(self) -> None:
        db = self._db
        if self.path != ":memory:":
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(_SCHEMA)

    # ------------------------------------------------------------------ writing

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        batch = _checked_append(stream_id, events, expected_version)
        to_json = self.registry.to_json
        # Encode first: an event that cannot be written fails before the transaction starts.
        rows = [
            (stream_id, version, *to_json(event))
            for version, event in enumerate(batch, start=expected_version + 1)
        ]
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                actual = db.execute(_STREAM_VERSION, (stream_id,)).fetchone()[0] or 0
                if actual != expected_version:
                    raise ConcurrencyError(stream_id, expected_version, actual)
                db.executemany(_INSERT, rows)
                db.execute("COMMIT")
            except sqlite3.IntegrityError as error:
                # A version taken twice is unreachable while every writer goes through
                # append(); kept as the schema's word on it, should some other program write
                # to the same table. Any other refusal (an outbox trigger's, say) is passed on
                # as it is, with its own explanation.
                db.execute("ROLLBACK")
                if "events.stream_id" not in str(error):
                    raise
                actual = db.execute(_STREAM_VERSION, (stream_id,)).fetchone()[0] or 0
                raise ConcurrencyError(stream_id, expected_version, actual) from None
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return expected_version + len(rows)

    # ------------------------------------------------------------------ reading

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        _checked_from(from_version, "from_version")
        with self._lock:
            rows = self._db.execute(_READ_STREAM, (stream_id, from_version)).fetchall()
        from_json = self.registry.from_json
        try:
            return [
                StoredEvent(position, stream_id, version, from_json(name, schema, payload))
                for position, version, name, schema, payload in rows
            ]
        except Exception:
            self._raise_corrupt([(p, stream_id, v, n, s, d) for p, v, n, s, d in rows])
            raise

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        after = _checked_from(from_position, "from_position")
        from_json = self.registry.from_json
        while True:
            # A page at a time, each its own short read: a slow consumer never holds the
            # database open, and the memory used stays one page.
            with self._lock:
                rows = self._db.execute(_READ_ALL, (after, self.page_size)).fetchall()
            try:
                page = [
                    StoredEvent(position, stream_id, version, from_json(name, schema, payload))
                    for position, stream_id, version, name, schema, payload in rows
                ]
            except Exception:
                self._raise_corrupt(rows)
                raise
            yield from page
            if len(rows) < self.page_size:
                return
            after = rows[-1][0]

    def _raise_corrupt(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Find the row that failed to decode and raise a CorruptEventError naming it."""
        for position, stream_id, version, name, schema, payload in rows:
            try:
                self.registry.from_json(name, schema, payload)
            except EventFormatError as error:
                raise CorruptEventError(stream_id, version, position, str(error)) from error
            except Exception as error:  # e.g. a NULL or a number where text belongs
                problem = f"{type(error).__name__}: {error}"
                raise CorruptEventError(stream_id, version, position, problem) from error

    def rows(self, from_position: int = 0) -> list[StoredRow]:
        """The stored rows after ``from_position`` as written, JSON and all (to look at)."""
        _checked_from(from_position, "from_position")
        with self._lock:
            rows = self._db.execute(
                "SELECT position, stream_id, version, event_type, schema_version, payload "
                "FROM events WHERE position > ? ORDER BY position",
                (from_position,),
            ).fetchall()
        return [StoredRow(*row) for row in rows]

    def version(self, stream_id: str) -> int:
        with self._lock:
            return int(self._db.execute(_STREAM_VERSION, (stream_id,)).fetchone()[0] or 0)

    def last_position(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT MAX(position) FROM events").fetchone()[0] or 0)

    def stream_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT stream_id FROM events GROUP BY stream_id ORDER BY MIN(position)"
            ).fetchall()
        return [stream_id for (stream_id,) in rows]

    def describe(self, limit: int = 20) -> str:
        """The store and its first ``limit`` events in global order, one per line."""
        return _describe_events(self, limit)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def __repr__(self) -> str:
        try:
            with self._lock:
                events, streams = self._db.execute(
                    "SELECT COUNT(*), COUNT(DISTINCT stream_id) FROM events"
                ).fetchone()
        except sqlite3.ProgrammingError:  # closed
            return f"SQLiteEventStore({self.path!r}, closed)"
        return (
            f"SQLiteEventStore({self.path!r}, {plural(events, 'event')} in "
            f"{plural(streams, 'stream')})"
        )
