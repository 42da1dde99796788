"""The transactional outbox: save a change and the news of it together, publish the news later.

The dual-write problem
----------------------
A command changes state (appends events to the store) and then tells the world (publishes
them to a broker). Those are two writes to two systems, and the process can die between
them: the state is saved and the event is lost, or, publishing first, the event is out and
the state is lost. No ordering of the two writes fixes that. :class:`DualWriteUnitOfWork`
does it the naive way on purpose, with a crash hook, so a notebook can show both failures.

The fix
-------
Write the outgoing message into the *same database, in the same transaction* as the state
change, and let a separate :class:`Relay` copy it to the broker afterwards.

* :class:`Outbox` attaches to a :class:`~eda_lesson.patterns.store.SQLiteEventStore`'s
  file. It adds an ``outbox`` table and a trigger on the store's ``events`` table: every appended
  event gets
  its outbox row inside the append's own transaction, so both commit or neither does. No
  code path can forget to write it, and the store's code is untouched.
* :class:`Relay` reads the rows not yet sent, oldest first, hands them to a
  :class:`Publisher` (Redis Streams, see :mod:`eda_lesson.transport.redis_streams`, or the
  in-process :class:`BusPublisher`), and only then marks them sent. A relay that dies after
  publishing
  and before marking publishes those rows again when it restarts: delivery is *at least
  once*, and consumers deduplicate by the row's event id.
* :class:`OutboxUnitOfWork` is the unit of work of :mod:`eda_lesson.patterns.unit_of_work` whose
  commit only saves: publishing is the relay's job.

Event ids
---------
Each row gets an event id when it is written, so a re-sent message carries the same id as
the first copy. An event that has an ``event_id`` field of its own (an
:class:`eda_lesson.core.messages.Message`) keeps it; any other event is named by the outbox's
id prefix and its global position in the store: ``evt-17``. Pass ``id_prefix="evt-"`` for
ids a lesson can print; by default the prefix is random, chosen once when the outbox is
created and kept in the file, so two outboxes (or a deleted and re-created one) never reuse
an id. An id is never given twice: an append whose event would take an id already in the
outbox (the same event appended twice, or events' own ids that collide with ``prefix`` +
position, such as :class:`~eda_lesson.core.messages.SequentialIds` ``("evt")`` beside
``id_prefix="evt-"``) is refused whole, with nothing written, because a consumer would
otherwise drop the second event as a duplicate.

The ids are written by the trigger, in SQL, which is why the id "factory" is a prefix and
not a Python function: Python code cannot run inside another connection's transaction.

What this module does not do: talk to Redis (see :mod:`eda_lesson.transport.redis_streams`), run
several relays on one outbox (two relays would each publish every row: still correct
for consumers that deduplicate, but twice the traffic), or delete sent rows.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Protocol, Self, runtime_checkable

from eda_lesson.core.bus import EventBus, require_sync_bus
from eda_lesson.core.messages import delivered_as
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.patterns.serialization import EventFormatError, EventRegistry
from eda_lesson.patterns.store import EventStore, SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork

__all__ = [
    "BusPublisher",
    "DualWriteUnitOfWork",
    "Outbox",
    "OutboxMessage",
    "OutboxUnitOfWork",
    "ParkedMessage",
    "Publisher",
    "Relay",
    "SimulatedCrash",
    "UndeliverableError",
    "simulate_crash",
]


# ---------------------------------------------------------------------- crashes on purpose


class SimulatedCrash(Exception):  # noqa: N818 - a staged event in a lesson, not a program error
    """The process "died" at this point: a fault injected on purpose, to show what is lost."""


def simulate_crash(*_: object) -> NoReturn:
    """A hook that crashes: pass it where a class takes a crash hook (``before_mark=...``)."""
    raise SimulatedCrash("simulated crash: the process stopped here")


# ---------------------------------------------------------------------- the outbox


class OutboxMessage(NamedTuple):
    """One outgoing message, as the outbox keeps it and a publisher receives it."""

    position: int
    """Place in the outbox, from 1: the relay publishes in this order."""
    event_id: str
    """Stable id: the same on every re-send, so consumers can drop duplicates."""
    stream_id: str
    """The event store stream the event was appended to (``order-o-1``)."""
    event_type: str
    """The event's name in the registry."""
    schema_version: int
    payload: str
    """The event's fields as JSON text, exactly as the store wrote them."""
    sent: bool = False
    parked: bool = False
    """Set aside by a relay because the publisher refused it (see :meth:`Outbox.parked`)."""

    @property
    def state(self) -> str:
        """'waiting', 'sent' or 'parked'."""
        return "sent" if self.sent else "parked" if self.parked else "waiting"

    def __repr__(self) -> str:
        return (
            f"OutboxMessage({self.event_id} {self.event_type} from {self.stream_id}, {self.state})"
        )


class ParkedMessage(NamedTuple):
    """A message a relay set aside, and why."""

    message: OutboxMessage
    reason: str
    """The publisher's error, as ``TypeName: message``."""


class UndeliverableError(Exception):
    """Raised by a publisher for one message it can never publish (not a passing fault).

    A relay parks such a message, with the error as its reason, and goes on with the rest;
    :class:`~eda_lesson.patterns.serialization.EventFormatError` (a payload the registry cannot
    read) is treated the same way.
    """


@runtime_checkable
class Publisher(Protocol):
    """Where a relay hands messages: a broker, or an in-process bus."""

    def publish(self, messages: Sequence[OutboxMessage]) -> object:
        """Send ``messages`` in order; return once they are safely with the broker."""
        ...


_TAKEN_ID = (
    "eda-lesson outbox: this event id is already in the outbox, so a consumer would drop "
    "the event as a duplicate; nothing was appended. Either the same event was appended "
    "twice, or the events' own ids (event_id) collide with the ids the outbox makes from "
    "its id_prefix and the position: give the outbox an id_prefix that no event id starts "
    "with"
)
"""Why an append is refused when its event would take an id the outbox holds already."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    store_position INTEGER NOT NULL,
    stream_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    payload TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (position) WHERE sent = 0;
-- Not UNIQUE: the trigger below keeps new ids unique, and an older file may hold duplicates.
CREATE INDEX IF NOT EXISTS outbox_event_ids ON outbox (event_id);
CREATE TABLE IF NOT EXISTS outbox_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS outbox_refuses_a_taken_id BEFORE INSERT ON outbox
WHEN EXISTS (SELECT 1 FROM outbox WHERE event_id = NEW.event_id) BEGIN
    SELECT RAISE(ABORT, '{taken_id}');
END;
CREATE TRIGGER IF NOT EXISTS outbox_on_append AFTER INSERT ON events BEGIN
    INSERT INTO outbox (event_id, store_position, stream_id, event_type, schema_version, payload)
    VALUES (
        COALESCE(
            NULLIF(CASE WHEN json_valid(NEW.payload)
                   THEN CAST(json_extract(NEW.payload, '$.event_id') AS TEXT) END, ''),
            (SELECT value FROM outbox_settings WHERE key = 'id_prefix') || NEW.position
        ),
        NEW.position, NEW.stream_id, NEW.event_type, NEW.schema_version, NEW.payload
    );
END;
""".replace("{taken_id}", _TAKEN_ID.replace("'", "''"))
_WAITING_STATE, _SENT_STATE, _PARKED_STATE = 0, 1, 2  # the values of the ``sent`` column
_COLUMNS = "position, event_id, stream_id, event_type, schema_version, payload, sent"
_WAITING = f"SELECT {_COLUMNS} FROM outbox WHERE sent = 0 ORDER BY position LIMIT ?"
_MARK_SENT = "UPDATE outbox SET sent = 1 WHERE position BETWEEN ? AND ? AND sent = 0"
_PARK = "UPDATE outbox SET sent = 2, failure = ? WHERE position = ? AND sent = 0"
_PARKED = f"SELECT {_COLUMNS}, failure FROM outbox WHERE sent = 2 ORDER BY position"
_REQUEUE = "UPDATE outbox SET sent = 0, failure = NULL WHERE position = ? AND sent = 2"
_COUNTS = "SELECT sent, COUNT(*) FROM outbox GROUP BY sent"


class Outbox:
    """The outgoing messages of a SQLite event store, kept in the store's own file.

    >>> import tempfile, pathlib
    >>> from eda_lesson.shop.order import order_registry
    >>> from eda_lesson.shop.events import OrderCreated
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = SQLiteEventStore(folder / "shop.db", order_registry())
    >>> outbox = Outbox(store, id_prefix="evt-")
    >>> store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    1
    >>> outbox
    Outbox('shop.db', 1 message, 1 waiting)
    >>> outbox.waiting()
    [OutboxMessage(evt-1 OrderCreated from order-o-1, waiting)]

    Only events appended after the outbox was attached get a row. ``id_prefix`` names
    events without an ``event_id`` of their own (see the module docstring); giving a
    different prefix than the file already uses is refused.
    """

    def __init__(
        self,
        store: SQLiteEventStore,
        *,
        id_prefix: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(store, SQLiteEventStore):
            raise TypeError(
                f"Outbox attaches to a SQLiteEventStore (the outbox lives in the same file, "
                f"written in the same transaction as the events), got {type(store).__name__}"
            )
        if store.path == ":memory:" or not store.path:
            raise ValueError(
                "an outbox shares the store's file through a connection of its own, and an "
                "in-memory database cannot be shared: give the store a file path"
            )
        if id_prefix is not None and not isinstance(id_prefix, str):
            raise TypeError(f"id_prefix is a string such as 'evt-', got {id_prefix!r}")
        self.path = store.path
        self.registry = store.registry
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._db.execute(f"PRAGMA synchronous={store.synchronous}")
        self.id_prefix = self._set_up(id_prefix)

    def _set_up(self, id_prefix: str | None) -> str:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "failure" not in columns:  # a file written before parking existed
                db.execute("ALTER TABLE outbox ADD COLUMN failure TEXT")
            row = db.execute("SELECT value FROM outbox_settings WHERE key = 'id_prefix'").fetchone()
            if row is None:
                chosen = id_prefix if id_prefix is not None else f"{secrets.token_hex(4)}-"
                db.execute(
                    "INSERT INTO outbox_settings (key, value) VALUES ('id_prefix', ?)", (chosen,)
                )
            else:
                chosen = row[0]
                if id_prefix is not None and id_prefix != chosen:
                    raise ValueError(
                        f"this outbox already names its events {chosen!r} + position; "
                        f"changing the prefix to {id_prefix!r} would give a re-sent message a "
                        "new id. Leave id_prefix out to keep the file's prefix"
                    )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._db.close()
            raise
        return str(chosen)

    # ------------------------------------------------------------------ reading

    def waiting(self, limit: int | None = None) -> list[OutboxMessage]:
        """The messages not yet sent, oldest first (at most ``limit`` of them)."""
        with self._lock:
            rows = self._db.execute(_WAITING, (-1 if limit is None else limit,)).fetchall()
        return [_message(row) for row in rows]

    def messages(self) -> list[OutboxMessage]:
        """Every message, sent or not, in order."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY position").fetchall()
        return [_message(row) for row in rows]

    def counts(self) -> tuple[int, int]:
        """``(sent, waiting)``: how many messages were sent and how many wait for the relay
        (parked messages are neither; :meth:`parked` lists them)."""
        states = self._states()
        return states.get(_SENT_STATE, 0), states.get(_WAITING_STATE, 0)

    def _states(self) -> dict[int, int]:
        with self._lock:
            return {int(state): int(count) for state, count in self._db.execute(_COUNTS)}

    def parked(self) -> list[ParkedMessage]:
        """The messages a relay set aside because the publisher refused them, oldest first."""
        with self._lock:
            rows = self._db.execute(_PARKED).fetchall()
        return [ParkedMessage(_message(row[:-1]), str(row[-1])) for row in rows]

    # ------------------------------------------------------------------ writing

    def mark_sent(self, messages: Sequence[OutboxMessage]) -> None:
        """Record that ``messages`` (a run of consecutive waiting rows) were published."""
        if not messages:
            return
        self._write(_MARK_SENT, (messages[0].position, messages[-1].position))

    def park(self, message: OutboxMessage, reason: str) -> None:
        """Set a waiting ``message`` aside with ``reason``: the relay skips it from now on."""
        self._write(_PARK, (reason, message.position))

    def requeue(self, positions: Sequence[int] | None = None) -> int:
        """Put parked messages back in the queue (all of them, or those at ``positions``),
        once whatever refused them is fixed; return how many went back."""
        if positions is None:
            positions = [parked.message.position for parked in self.parked()]
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                moved = sum(db.execute(_REQUEUE, (position,)).rowcount for position in positions)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return moved

    def _write(self, statement: str, parameters: tuple[object, ...]) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(statement, parameters)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ looking at it

    def describe(self, limit: int = 20) -> str:
        """The outbox and its first ``limit`` messages, one per line."""
        lines = [repr(self)]
        for number, message in enumerate(self.messages()):
            if number == limit:
                lines.append("  ...")
                break
            lines.append(
                f"  {message.position:>4}  {message.event_id}  {message.stream_id}  "
                f"{message.event_type} v{message.schema_version}  {message.state}"
            )
        return "\n".join(lines)

    def __len__(self) -> int:
        return sum(self._states().values())

    def __repr__(self) -> str:
        name = Path(self.path).name
        try:
            states = self._states()
        except sqlite3.ProgrammingError:  # closed
            return f"Outbox({name!r}, closed)"
        parked = states.get(_PARKED_STATE, 0)
        waiting = f"{states.get(_WAITING_STATE, 0)} waiting" + f", {parked} parked" * bool(parked)
        return f"Outbox({name!r}, {plural(sum(states.values()), 'message')}, {waiting})"

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _statements(script: str) -> list[str]:
    """Split the schema into statements (a trigger body holds semicolons of its own)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    position, event_id, stream_id, event_type, schema_version, payload, state = row
    return OutboxMessage(
        position,
        event_id,
        stream_id,
        event_type,
        schema_version,
        payload,
        sent=state == _SENT_STATE,
        parked=state == _PARKED_STATE,
    )


# ---------------------------------------------------------------------- the relay

BeforeMark = Callable[[Sequence[OutboxMessage]], object]
"""A hook a relay calls after publishing a batch and before marking it sent."""


class Relay:
    """Copies waiting outbox messages to a publisher, in order, then marks them sent.

    ``publish_pending()`` empties the outbox once; ``run(stop)`` keeps following it until
    ``stop`` is set. ``before_mark`` is a fault-injection hook called between publishing a
    batch and marking it: pass :func:`simulate_crash` to show that a relay dying there makes
    its successor publish the batch again.

    ``published`` counts every message handed to the publisher, re-sends included.

    A message the publisher can never publish (it raises :class:`UndeliverableError`, or an
    :class:`~eda_lesson.patterns.serialization.EventFormatError` for a payload it cannot
    read) does not stop the relay: the batch is retried one message at a time, the refused
    message is *parked* with its reason (``outbox.parked()``; ``outbox.requeue()`` puts it
    back once fixed) and the messages after it are published. Any other error stops the
    relay with nothing marked that was not published.
    """

    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher,
        *,
        batch_size: int = 100,
        before_mark: BeforeMark | None = None,
    ) -> None:
        if not isinstance(outbox, Outbox):
            raise TypeError(f"Relay reads an Outbox, got {type(outbox).__name__}")
        if not callable(getattr(publisher, "publish", None)):
            raise TypeError(
                f"a publisher has a publish(messages) method, got {type(publisher).__name__}; "
                "use StreamPublisher (Redis) or BusPublisher (in-process)"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size is a positive whole number, got {batch_size!r}")
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.before_mark = before_mark
        self.published = 0
        self.batches = 0
        self.parked = 0

    def publish_batch(self) -> int:
        """Publish the oldest waiting batch and mark it sent; return how many messages left
        the queue, parked ones included (0: none waiting)."""
        batch = self.outbox.waiting(self.batch_size)
        if not batch:
            return 0
        try:
            self._publish(batch)
        except _REFUSALS:
            for message in batch:  # find the refused ones; the rest go out as usual
                try:
                    self._publish([message])
                except _REFUSALS as error:
                    self.outbox.park(message, f"{type(error).__name__}: {error}")
                    self.parked += 1
        return len(batch)

    def _publish(self, batch: Sequence[OutboxMessage]) -> None:
        self.publisher.publish(batch)
        self.published += len(batch)
        self.batches += 1
        if self.before_mark is not None:
            self.before_mark(batch)
        self.outbox.mark_sent(batch)

    def publish_pending(self, max_batches: int | None = None) -> int:
        """Publish batches until none are waiting (or ``max_batches`` were published)."""
        total = batches = 0
        while max_batches is None or batches < max_batches:
            size = self.publish_batch()
            total += size
            batches += 1
            if size < self.batch_size:
                break
        return total

    def run(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 0.05,
        retry_for: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Follow the outbox until ``stop`` is set; return how many messages were published.

        A ``ConnectionError`` from the publisher (the broker is down) is retried with a
        growing pause (0.05 s doubling up to 2 s); after ``retry_for`` seconds of failures
        in a row the error is raised. Nothing is marked sent that was not published.
        """
        total, backoff, failing_since = 0, 0.05, None
        while not stop.is_set():
            try:
                published = self.publish_pending()
            except ConnectionError:
                now = clock()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= retry_for:
                    raise
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            total += published
            failing_since, backoff = None, 0.05
            if not published:
                stop.wait(poll_seconds)
        return total

    def __repr__(self) -> str:
        parked = f", {self.parked} parked" * bool(self.parked)
        return (
            f"Relay({plural(self.published, 'message')} published in "
            f"{plural(self.batches, 'batch', 'batches')}{parked})"
        )


_REFUSALS = (UndeliverableError, EventFormatError)


# ---------------------------------------------------------------------- in-process publishing


class BusPublisher:
    """A publisher that dispatches each message on an in-process bus: the broker of the
    first lessons, before Redis.

    It decodes each message through ``registry`` (nothing else can be decoded). With
    ``deduplicate=True`` it remembers the event ids it dispatched and skips a repeat, as a
    consumer of an at-least-once relay must. ``deliveries`` lists ``(event_id, outcome)``
    with outcome ``'dispatched'`` or ``'duplicate'``; ``results`` holds the dispatch results.
    """

    def __init__(
        self, bus: EventBus, registry: EventRegistry, *, deduplicate: bool = False
    ) -> None:
        self.bus = require_sync_bus(bus, "BusPublisher")
        self.registry = registry
        self.deduplicate = deduplicate
        self.deliveries: list[tuple[str, str]] = []
        self.results: list[DispatchResult] = []
        self._seen: set[str] = set()

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        """Decode every message first, then dispatch them in order: a payload the registry
        cannot read raises before any message of the batch reached the bus."""
        decoded = [
            (
                message,
                self.registry.from_json(
                    message.event_type, message.schema_version, message.payload
                ),
            )
            for message in messages
        ]
        for message, event in decoded:
            if self.deduplicate and message.event_id in self._seen:
                self.deliveries.append((message.event_id, "duplicate"))
                continue
            with delivered_as(event, message.event_id):  # handlers can tell a re-send
                self.results.append(self.bus.dispatch(event))
            self._seen.add(message.event_id)
            self.deliveries.append((message.event_id, "dispatched"))

    def counts(self) -> dict[str, int]:
        """How many deliveries were dispatched and how many dropped as duplicates."""
        outcomes = [outcome for _, outcome in self.deliveries]
        return {name: outcomes.count(name) for name in ("dispatched", "duplicate")}

    def __repr__(self) -> str:
        counts = self.counts()
        dropped = f", {plural(counts['duplicate'], 'duplicate')} dropped" * self.deduplicate
        return f"BusPublisher({counts['dispatched']} dispatched{dropped})"


# ---------------------------------------------------------------------- units of work

AfterWrite = Callable[[], object]


class OutboxUnitOfWork(UnitOfWork):
    """A unit of work whose commit saves the events and their outbox rows in one transaction,
    and publishes nothing itself: the :class:`Relay` does, later.

    ``after_save`` is a fault-injection hook run once the save committed; with
    :func:`simulate_crash` it shows that dying right after the save loses nothing: the
    messages wait in the outbox.
    """

    def __init__(
        self, store: SQLiteEventStore, outbox: Outbox, *, after_save: AfterWrite | None = None
    ) -> None:
        if not isinstance(outbox, Outbox) or outbox.path != store.path:
            raise ValueError(
                "OutboxUnitOfWork needs the outbox of this very store (Outbox(store)): only "
                "then are the events and their outbox rows written in one transaction"
            )
        super().__init__(store, EventBus())
        self.outbox = outbox
        self.after_save = after_save

    def commit(self) -> list[DispatchResult]:
        """Save the changed aggregate's events (their outbox rows come with them); publish
        nothing. Returns an empty list, like a commit that dispatched nothing."""
        changed = self._changed()
        if changed:
            events = self._save(changed)
            self.note("outbox", f"{plural(len(events), 'message')} waiting for the relay")
        self.status = "committed"
        if changed and self.after_save is not None:
            self.note("crash", "after the save")
            self.after_save()
        return []


class DualWriteUnitOfWork(UnitOfWork):
    """DELIBERATELY NAIVE: saves to the store and publishes on the bus as two separate writes.

    By default it saves, then publishes; ``publish_first=True`` swaps them. ``between`` is a
    fault-injection hook run between the two writes: with :func:`simulate_crash` the first
    write happened and the second never does. Saving first, the state is saved and the
    event lost; publishing first, the world heard of a change that was never saved. It
    exists so a notebook can show the dual-write problem; use :class:`OutboxUnitOfWork`.
    """

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        *,
        publish_first: bool = False,
        between: AfterWrite | None = None,
    ) -> None:
        super().__init__(store, bus)
        self.publish_first = publish_first
        self.between = between

    def commit(self) -> list[DispatchResult]:
        changed = self._changed()
        if not changed:
            self.status = "committed"
            return []
        events: list[object] = list(changed[0].pending)
        results: list[DispatchResult] = []
        if self.publish_first:
            results = self._publish(events)
            self._crash_point("after the publish, before the save")
            self._save(changed)
        else:
            self._save(changed)
            self._crash_point("after the save, before the publish")
            results = self._publish(events)
        self.status = "committed"
        return results

    def _crash_point(self, where: str) -> None:
        if self.between is None:
            return
        self.note("crash", where)
        try:
            self.between()
        except BaseException:
            self.status = "crashed"  # a dead process cleans nothing up: leave things as they are
            raise
