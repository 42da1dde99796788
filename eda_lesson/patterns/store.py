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

What we write we can read back
------------------------------
An append turns every event into JSON *before* it opens its transaction, and the registry
refuses an event it could not read back (a ``str`` in a ``float`` field, a lone surrogate in
a string: :class:`~eda_lesson.patterns.serialization.UnwritableEventError`). One bad event
among several fails the whole append and writes none of them: a stored event that cannot be
read would make its aggregate impossible to load, and stop every projection, for ever.

Rows written behind the store's back (another program, a hand edit) can still be broken.
Reading one raises :class:`CorruptEventError` naming its stream, version and position;
:meth:`SQLiteEventStore.read_all` first hands over every good event before it, so a
projection stops exactly at the broken row and resumes there once it is repaired.

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

Opening: several processes may open (and create) one file at the same moment. Switching a
new file to WAL needs a lock SQLite does not wait for, so opening retries for up to
``timeout`` seconds. A file (or folder) this process cannot write is opened read-only,
automatically or with ``read_only=True``: reading works, and an append raises
:class:`ReadOnlyStoreError` before it changes anything.

What this module does not do: publish events (see :mod:`eda_lesson.patterns.unit_of_work`), build
read models (:mod:`eda_lesson.patterns.projections`), snapshots, or deleting and rewriting history.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from eda_lesson.core.text import plural
from eda_lesson.patterns.serialization import (
    EventFormatError,
    EventRegistry,
    UnwritableEventError,
)

__all__ = [
    "ConcurrencyError",
    "CorruptEventError",
    "EventStore",
    "InMemoryEventStore",
    "ReadOnlyStoreError",
    "SQLiteEventStore",
    "StoreLockedError",
    "StoreOpenError",
    "StoredEvent",
    "StoredRow",
]

T = TypeVar("T")


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


# ---------------------------------------------------------------------- errors
# Each keeps the values it was made from and rebuilds itself from them when unpickled, so
# it reaches a caller in another process (a process pool) whole, attributes and all.


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

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.expected_version, self.actual_version)


class CorruptEventError(EventFormatError):
    """A stored event cannot be read back; says which stream, version and position."""

    def __init__(self, stream_id: str, version: int, position: int, problem: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.problem = problem
        super().__init__(
            f"cannot read stream {stream_id!r} version {version} (global position "
            f"{position}): {problem}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.version, self.position, self.problem)


class ReadOnlyStoreError(Exception):
    """An append to a store that was opened read-only, or cannot be written; nothing was
    written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"cannot write to the event store {path!r}: it is read-only ({reason}). Nothing "
            "was written; to append, open a copy in a folder this program may write"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.reason)


class StoreLockedError(Exception):
    """Another connection held the store's lock longer than ``timeout``; nothing was written."""

    def __init__(self, path: str, timeout: float, doing: str) -> None:
        self.path = path
        self.timeout = timeout
        self.doing = doing
        super().__init__(
            f"the event store {path!r} stayed locked by another connection for {timeout:g} s "
            f"while {doing}. Nothing was written; try again, or give SQLiteEventStore a "
            "longer timeout="
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.timeout, self.doing)


class StoreOpenError(Exception):
    """The file cannot be opened as an event store (missing folder, not a database, ...)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot open the event store {path!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path, self.problem)


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


def _checked_stream_id(stream_id: object) -> str:
    if not isinstance(stream_id, str) or not stream_id:
        raise TypeError(f"a stream id is a non-empty string, got {stream_id!r}")
    if not stream_id.isascii():
        try:
            stream_id.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"the stream id {stream_id!r} holds the lone surrogate "
                f"{stream_id[error.start]!r} at index {error.start}, which is not text UTF-8 "
                "can store; clean it first, e.g. stream_id.encode('utf-8', 'replace').decode()"
            ) from None
    return stream_id


def _checked_append(
    stream_id: object, events: Iterable[object], expected_version: object
) -> list[object]:
    _checked_stream_id(stream_id)
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
    Give it the ``registry`` a :class:`SQLiteEventStore` would use, and it refuses, before
    anything is stored, every event that store would refuse: moving from memory to a file
    then cannot turn a passing test into an append that fails.

    >>> from eda_lesson.shop.events import OrderCreated, OrderPaid
    >>> store = InMemoryEventStore()
    >>> store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    1
    >>> store.append("order-o-1", [OrderPaid("o-1", 42.0)], expected_version=1)
    2
    >>> [stored.type_name for stored in store.read("order-o-1")]
    ['OrderCreated', 'OrderPaid']
    """

    def __init__(self, registry: EventRegistry | None = None) -> None:
        if registry is not None and not isinstance(registry, EventRegistry):
            raise TypeError(
                f"registry is an EventRegistry (or None, to check nothing), got {registry!r}"
            )
        self.registry = registry
        self._streams: dict[str, list[StoredEvent]] = {}
        self._log: list[StoredEvent] = []
        self._lock = threading.Lock()

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        batch = _checked_append(stream_id, events, expected_version)
        if self.registry is not None:
            _encoded(self.registry, stream_id, batch, expected_version)
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
        _checked_stream_id(stream_id)
        _checked_from(from_version, "from_version")
        return self._streams.get(stream_id, [])[from_version:]

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        _checked_from(from_position, "from_position")
        return iter(self._log[from_position:])

    def version(self, stream_id: str) -> int:
        _checked_stream_id(stream_id)
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
_HAS_EVENTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
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


def _text_as_bytes(column: str) -> str:
    return (
        f"CASE WHEN typeof({column}) = 'text' THEN CAST({column} AS BLOB) ELSE {column} END, "
        f"typeof({column}) = 'text'"
    )


# The same reads with each text column fetched as bytes and a flag saying it was text: for a
# page holding text that is not UTF-8, which sqlite3 refuses to fetch at all, so that the
# broken row can be found and named. The tuples say which columns of each read are text.
_READ_STREAM_AS_BYTES = (
    f"SELECT position, version, {_text_as_bytes('event_type')}, schema_version, "
    f"{_text_as_bytes('payload')} FROM events "
    "WHERE stream_id = ? AND version > ? ORDER BY version"
)
_READ_ALL_AS_BYTES = (
    f"SELECT position, {_text_as_bytes('stream_id')}, version, "
    f"{_text_as_bytes('event_type')}, schema_version, {_text_as_bytes('payload')} "
    "FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
_STREAM_TEXT = (False, False, True, False, True)
_ALL_TEXT = (False, True, False, True, False, True)
_LARGEST = 2**63 - 1  # SQLite's largest integer: a larger position or version has no rows

Synchronous = Literal["FULL", "NORMAL", "OFF"]


# StoredEvent(...) runs a Python __new__ per event; a replay builds one per stored event,
# and tuple.__new__ fills the same four places without it.
_stored = tuple.__new__


class _NotText(NamedTuple):
    """A stored text column whose bytes are not UTF-8."""

    raw: bytes


class SQLiteEventStore:
    """An event store in one SQLite table, events kept as JSON through ``registry``.

    ``path`` is a file (created if missing) or ``":memory:"``. Several stores, threads and
    processes may share one file: appends take turns through SQLite's write lock, waiting
    up to ``timeout`` seconds for it. One store object may be used from several threads.
    See the module docstring for why the file runs in WAL mode with ``synchronous=FULL``.

    ``read_only``: ``None`` (the default) opens the file for writing if this process may,
    and for reading only if the file or its folder cannot be written; ``True`` opens an
    existing store for reading only; ``False`` refuses to open one that cannot be written.
    A read-only store raises :class:`ReadOnlyStoreError` on append. ``page_size`` is how
    many rows :meth:`read_all` fetches at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        registry: EventRegistry,
        *,
        timeout: float = 30.0,
        synchronous: Synchronous = "FULL",
        page_size: int = 1000,
        read_only: bool | None = None,
    ) -> None:
        if not isinstance(registry, EventRegistry):
            raise TypeError(
                f"SQLiteEventStore needs an EventRegistry to turn events into JSON and back, "
                f"got {registry!r}; build one with EventRegistry.of(OrderCreated, ...)"
            )
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous is 'FULL', 'NORMAL' or 'OFF', got {synchronous!r}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size is how many rows to fetch at once, from 1: {page_size!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 <= timeout < float("inf")
        ):
            raise ValueError(f"timeout is a number of seconds, 0 or more: {timeout!r}")
        if read_only not in (None, True, False):
            raise TypeError(f"read_only is True, False or None (decide for me): {read_only!r}")
        path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"path is a file name as str or a Path, got {path!r}")
        self.path = path
        self.registry = registry
        self.synchronous = synchronous
        self.page_size = page_size
        self.timeout = float(timeout)
        self.read_only = False
        """True when appends are refused: opened with read_only=True, or not writable."""
        self.read_only_reason = ""
        self._lock = threading.Lock()
        self._file_stamp: tuple[object, ...] | None = None
        """Set while the file is read as it stands ("immutable"): what it looked like then."""
        self._db = self._connect(read_only)

    # ------------------------------------------------------------------ opening

    def _connect(self, read_only: bool | None) -> sqlite3.Connection:
        in_memory = self.path in (":memory:", "")
        if read_only and in_memory:
            raise ValueError(
                "an in-memory store starts empty, so read_only=True has nothing to read; "
                "give the path of an existing store file"
            )
        exists = not in_memory and os.path.isfile(self.path)
        if read_only:
            return self._open_read_only("opened with read_only=True")
        if exists and not os.access(self.path, os.W_OK):
            reason = "this process may not write the file"
            if read_only is None:
                return self._open_read_only(reason)
            raise ReadOnlyStoreError(self.path, f"read_only=False, but {reason}")
        try:
            return self._open_for_writing(in_memory)
        except sqlite3.OperationalError as error:
            if not (exists and _is_read_only(error)):
                raise StoreOpenError(self.path, _open_problem(error, self.path)) from None
            reason = f"the file or its folder cannot be written: {error}"
            if read_only is None:
                return self._open_read_only(reason)
            raise ReadOnlyStoreError(self.path, f"read_only=False, but {reason}") from None
        except sqlite3.DatabaseError as error:  # "file is not a database" and friends
            raise StoreOpenError(self.path, _open_problem(error, self.path)) from None

    def _open_for_writing(self, in_memory: bool) -> sqlite3.Connection:
        # Autocommit mode (isolation_level=None): we open every transaction ourselves, so
        # the module never starts one behind our back.
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._while_locked(lambda: self._set_up(db, in_memory), "opening it")
        except BaseException:
            db.close()
            raise
        return db

    def _set_up(self, db: sqlite3.Connection, in_memory: bool) -> None:
        if not in_memory:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(_SCHEMA)

    def _open_read_only(self, reason: str) -> sqlite3.Connection:
        if not os.path.isfile(self.path):
            raise StoreOpenError(
                self.path,
                "there is no such file to read (read-only opens an existing store; leave "
                "read_only out to create one)",
            )
        uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro"
        try:
            db = self._read_only_connection(uri)
        except sqlite3.DatabaseError as error:  # OperationalError, or "not a database"
            # A WAL file in a folder we may not write: SQLite cannot create the index it
            # reads the log through. With no log left to read, the file alone holds every
            # committed event, and nobody can write in that folder either (a writer needs
            # the log too): SQLite may then read the file as it stands ("immutable").
            folder = os.path.dirname(os.path.abspath(self.path))
            if not _is_read_only(error) or os.access(folder, os.W_OK):
                raise StoreOpenError(self.path, _open_problem(error, self.path)) from None
            for leftover in ("-wal", "-journal"):
                if os.path.isfile(self.path + leftover) and os.path.getsize(self.path + leftover):
                    raise StoreOpenError(
                        self.path,
                        f"its {leftover[1:]} file holds changes not yet in the main file, and "
                        "SQLite cannot read them without writing next to the file, which this "
                        "folder does not allow; copy the store's files to a writable folder",
                    ) from None
            try:
                db = self._read_only_connection(uri + "&immutable=1")
            except sqlite3.DatabaseError as again:
                raise StoreOpenError(self.path, _open_problem(again, self.path)) from None
            reason += "; read as the file stands, since nobody can write in its folder"
            self._file_stamp = self._stamp()
        self.read_only, self.read_only_reason = True, reason
        return db

    def _stamp(self) -> tuple[object, ...]:
        """What the store's files look like now: any write changes the main file or its log."""

        def of(path: str) -> tuple[int, int, int] | None:
            try:
                status = os.stat(path)
            except OSError:
                return None
            return status.st_ino, status.st_size, status.st_mtime_ns

        return of(self.path), of(self.path + "-wal"), of(self.path + "-journal")

    def _reader(self) -> sqlite3.Connection:
        """The connection to read through. SQLite reads an "immutable" file as it was when
        opened, so if the files changed since (the folder was made writable and somebody
        appended), open it again, rather than answer from a stale copy."""
        if self._file_stamp is not None and self._stamp() != self._file_stamp:
            stale, self._file_stamp = self._db, None
            self._db = self._open_read_only(self.read_only_reason.split(";")[0])
            stale.close()
        return self._db

    def _read_only_connection(self, uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            found = self._while_locked(lambda: db.execute(_HAS_EVENTS).fetchone(), "opening it")
        except BaseException:
            db.close()
            raise
        if found is None:
            db.close()
            raise StoreOpenError(self.path, "the file holds no events table: is it an event store?")
        return db

    def _while_locked(self, step: Callable[[], T], doing: str) -> T:
        """Run ``step``, again and again while another connection holds a lock, up to
        ``timeout``. Switching a new file to WAL gives up at once when another process is
        setting up the same file: SQLite's own waiting does not cover it."""
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                return step()
            except sqlite3.OperationalError as error:
                left = deadline - time.monotonic()
                if not _is_busy(error):
                    raise
                if left <= 0:
                    raise StoreLockedError(self.path, self.timeout, doing) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)

    # ------------------------------------------------------------------ writing

    def append(self, stream_id: str, events: Iterable[object], expected_version: int) -> int:
        batch = _checked_append(stream_id, events, expected_version)
        if self.read_only:
            raise ReadOnlyStoreError(self.path, self.read_only_reason)
        rows = self._rows_for(stream_id, batch, expected_version)
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
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
            except sqlite3.OperationalError as error:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if _is_busy(error):
                    doing = f"appending to {stream_id!r}"
                    raise StoreLockedError(self.path, self.timeout, doing) from None
                if _is_read_only(error):
                    raise ReadOnlyStoreError(self.path, str(error)) from None
                raise
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return expected_version + len(rows)

    def _rows_for(
        self, stream_id: str, batch: list[object], expected_version: int
    ) -> list[tuple[Any, ...]]:
        """The rows to insert. Every event is encoded (and checked) before the transaction
        starts, so one that cannot be written fails the append with nothing written."""
        return _encoded(self.registry, stream_id, batch, expected_version)

    # ------------------------------------------------------------------ reading

    def read(self, stream_id: str, from_version: int = 0) -> list[StoredEvent]:
        _checked_stream_id(stream_id)
        after = min(_checked_from(from_version, "from_version"), _LARGEST)
        rows, clean = self._fetch(
            _READ_STREAM, _READ_STREAM_AS_BYTES, _STREAM_TEXT, (stream_id, after)
        )
        if clean:
            from_json = self.registry.from_json
            try:
                return [
                    _stored(
                        StoredEvent,
                        (position, stream_id, version, from_json(name, schema, payload)),
                    )
                    for position, version, name, schema, payload in rows
                ]
            except Exception:
                pass  # find the broken row, the slow way
        # An aggregate is loaded from all its events or not at all: no partial answer.
        events, error = self._decode_until_corrupt([(row[0], stream_id, *row[1:]) for row in rows])
        if error is not None:
            raise error from error.__cause__
        return events

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        after = min(_checked_from(from_position, "from_position"), _LARGEST)
        return self._pages(after)

    def _pages(self, after: int) -> Iterator[StoredEvent]:
        from_json = self.registry.from_json
        page_size = self.page_size
        while True:
            # A page at a time, each its own short read: a slow consumer never holds the
            # database open, and the memory used stays one page.
            rows, clean = self._fetch(_READ_ALL, _READ_ALL_AS_BYTES, _ALL_TEXT, (after, page_size))
            page: list[StoredEvent] | None = None
            if clean:
                try:
                    page = [
                        _stored(
                            StoredEvent,
                            (position, stream_id, version, from_json(name, schema, payload)),
                        )
                        for position, stream_id, version, name, schema, payload in rows
                    ]
                except Exception:
                    page = None  # find the broken row, the slow way
            if page is None:
                # Hand over the good events before the broken one, then stop at it: a
                # projection applies them, and its position is the row before the break.
                page, error = self._decode_until_corrupt(rows)
                if error is not None:
                    yield from page
                    raise error from error.__cause__
            yield from page
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def _fetch(
        self, query: str, as_bytes: str, text: tuple[bool, ...], parameters: tuple[Any, ...]
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """The rows of ``query``, and whether all their text was UTF-8 (if not, the rows
        hold :class:`_NotText` where it was not)."""
        with self._lock:
            try:
                return self._reader().execute(query, parameters).fetchall(), True
            except sqlite3.OperationalError as error:
                if "UTF-8" not in str(error):  # "Could not decode to UTF-8 column ..."
                    raise
                raw = self._reader().execute(as_bytes, parameters).fetchall()
        return [_decode_row(row, text) for row in raw], False

    def _decode_until_corrupt(
        self, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[list[StoredEvent], CorruptEventError | None]:
        """The events of ``rows`` up to the first that cannot be read, and the error for it."""
        good: list[StoredEvent] = []
        for position, stream_id, version, name, schema, payload in rows:
            stream = stream_id
            if isinstance(stream_id, _NotText):
                stream = stream_id.raw.decode("utf-8", "replace")
            for what, value in (
                ("stream id", stream_id),
                ("event type", name),
                ("payload", payload),
            ):
                if isinstance(value, _NotText):
                    problem = f"the {what} is not UTF-8 text: {_clip(repr(value.raw))}"
                    return good, CorruptEventError(stream, version, position, problem)
            try:
                event = self.registry.from_json(name, schema, payload)
            except Exception as error:
                problem = (
                    str(error)
                    if isinstance(error, EventFormatError)
                    else f"{type(error).__name__}: {error}"  # e.g. a NULL where text belongs
                )
                corrupt = CorruptEventError(stream, version, position, problem)
                corrupt.__cause__ = error
                return good, corrupt
            good.append(StoredEvent(position, stream, version, event))
        return good, None

    def rows(self, from_position: int = 0) -> list[StoredRow]:
        """The stored rows after ``from_position`` as written, JSON and all (to look at)."""
        after = min(_checked_from(from_position, "from_position"), _LARGEST)
        with self._lock:
            rows = (
                self._reader()
                .execute(
                    "SELECT position, stream_id, version, event_type, schema_version, payload "
                    "FROM events WHERE position > ? ORDER BY position",
                    (after,),
                )
                .fetchall()
            )
        return [StoredRow(*row) for row in rows]

    def version(self, stream_id: str) -> int:
        _checked_stream_id(stream_id)
        with self._lock:
            return int(self._reader().execute(_STREAM_VERSION, (stream_id,)).fetchone()[0] or 0)

    def last_position(self) -> int:
        with self._lock:
            last = self._reader().execute("SELECT MAX(position) FROM events").fetchone()[0]
        return int(last or 0)

    def stream_ids(self) -> list[str]:
        with self._lock:
            rows = (
                self._reader()
                .execute("SELECT stream_id FROM events GROUP BY stream_id ORDER BY MIN(position)")
                .fetchall()
            )
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
            return int(self._reader().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def __repr__(self) -> str:
        try:
            with self._lock:
                events, streams = (
                    self._reader()
                    .execute("SELECT COUNT(*), COUNT(DISTINCT stream_id) FROM events")
                    .fetchone()
                )
        except sqlite3.ProgrammingError:  # closed
            return f"SQLiteEventStore({self.path!r}, closed)"
        read_only = ", read-only" if self.read_only else ""
        return (
            f"SQLiteEventStore({self.path!r}, {plural(events, 'event')} in "
            f"{plural(streams, 'stream')}{read_only})"
        )


# ---------------------------------------------------------------------- SQLite helpers


def _refused(to_json: Callable[[object], object], event: object) -> bool:
    try:
        to_json(event)
    except UnwritableEventError:
        return True
    return False


def _decode_row(row: tuple[Any, ...], text: tuple[bool, ...]) -> tuple[Any, ...]:
    """A row of an ``*_AS_BYTES`` read as the plain read gives it, with :class:`_NotText` in
    place of text that is not UTF-8."""
    values, index = [], 0
    for is_text_column in text:
        if not is_text_column:
            values.append(row[index])
            index += 1
            continue
        value, was_text = row[index], row[index + 1]
        if was_text:
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                value = _NotText(bytes(value))
        values.append(value)
        index += 2
    return tuple(values)


def _encoded(
    registry: EventRegistry, stream_id: str, batch: list[object], expected_version: int
) -> list[tuple[Any, ...]]:
    """``(stream_id, version, type, version of the type, json)`` for each event of ``batch``;
    UnwritableEventError naming the first event that cannot be written, and where."""
    to_json = registry.to_json
    try:
        return [
            (stream_id, version, *to_json(event))
            for version, event in enumerate(batch, start=expected_version + 1)
        ]
    except UnwritableEventError as error:
        number = next(i for i, event in enumerate(batch, 1) if _refused(to_json, event))
        where = f"append to {stream_id!r} (event {number} of {len(batch)})"
        raise UnwritableEventError(error.event_type, error.problem, where) from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_name(error: sqlite3.Error) -> str:
    return str(getattr(error, "sqlite_errorname", "") or "")


def _is_busy(error: sqlite3.Error) -> bool:
    name = _error_name(error)
    if name:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in str(error)


def _is_read_only(error: sqlite3.Error) -> bool:
    name = _error_name(error)
    if name:
        return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"))
    return "readonly" in str(error) or "unable to open" in str(error)


def _open_problem(error: sqlite3.Error, path: str) -> str:
    name = _error_name(error)
    if os.path.isdir(path):
        return f"{error}: the path is a folder; give the name of a file in it"
    exists = os.path.exists(path)
    if name == "SQLITE_NOTADB":
        return f"{error}: the file is not an SQLite database; give the path of a store file"
    if name.startswith("SQLITE_CANTOPEN") and not exists:
        return (
            f"{error}: the file does not exist and cannot be created here; check that the "
            "folder exists and that this program may write in it"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return f"{error}: can this program read the file?"
    return str(error)
