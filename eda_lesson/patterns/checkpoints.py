"""Projections that survive a restart: the read model and its checkpoint in one SQLite commit.

A :class:`~eda_lesson.patterns.projections.Projection` keeps its position in memory: restart
the process and it reads everything again from position 0. A durable projection saves its
position, its *checkpoint*, so a restarted one goes on after the last event it applied. Where
that checkpoint is saved decides what a crash can do:

* read model saved, then checkpoint saved in a second step: a crash between the two applies
  the event again after the restart (a payment counted twice);
* checkpoint saved first, then the read model: a crash between the two skips the event for
  ever (a payment never counted).

:class:`SQLiteProjection` avoids both by keeping the read model's tables and the checkpoint in
one SQLite database and writing them in one transaction: the events of a batch, their changes
to the tables and the new position commit together, or none of them do. A crash anywhere
leaves the tables and the checkpoint agreeing, and the next run starts exactly after the last
event whose changes were committed.

A subclass creates its tables in :meth:`SQLiteProjection.create_tables` and marks one method
per event type with :func:`~eda_lesson.patterns.event_methods.applies`; each method changes the
tables through :attr:`SQLiteProjection.db`, inside the transaction the projection opened.

>>> from eda_lesson.patterns.event_methods import applies
>>> from eda_lesson.patterns.store import InMemoryEventStore
>>> from eda_lesson.shop.events import OrderCreated
>>> class OrdersPerCustomer(SQLiteProjection):
...     def create_tables(self) -> None:
...         self.db.execute("CREATE TABLE IF NOT EXISTS orders (customer TEXT PRIMARY KEY, n INT)")
...     @applies(OrderCreated)
...     def _created(self, event: OrderCreated) -> None:
...         self.db.execute(
...             "INSERT INTO orders VALUES (?, 1) ON CONFLICT DO UPDATE SET n = n + 1",
...             (event.customer_id,),
...         )
>>> store = InMemoryEventStore()
>>> store.append("order-o-1", [OrderCreated("o-1", "c-7", 5.0)], 0)
1
>>> projection = OrdersPerCustomer(":memory:")
>>> projection.catch_up(store), projection.position
(1, 1)
>>> projection.db.execute("SELECT * FROM orders").fetchall()
[('c-7', 1)]

The guarantee stops at the database's edge. A method that does something outside the
transaction (sends an email, writes to another database, appends to a Python list) is not
rolled back by a crash, so after a restart it may do it again: at least once, not exactly
once. Keep such effects out of projections, or make them idempotent.

What this module does not do: run on a schedule or in a thread (call ``catch_up``), share one
checkpoint between processes (two copies of one projection would both apply every event;
run one), or store the read model anywhere but SQLite.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from eda_lesson.patterns.event_methods import EventMethods
from eda_lesson.patterns.store import EventStore, StoredEvent

__all__ = ["SQLiteProjection"]

_CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS checkpoints (
    projection TEXT PRIMARY KEY,
    position INTEGER NOT NULL
)
"""


class SQLiteProjection:
    """Base of read models kept in SQLite with their checkpoint (see the module docstring).

    ``path`` is the database file (``":memory:"`` for one that lives as long as the object).
    ``name`` tells this projection's checkpoint from others in the same file (the class name
    by default, so a subclass has a checkpoint of its own unless it passes the parent's
    name). ``batch_size`` events are applied per transaction.
    """

    _methods: ClassVar[EventMethods] = EventMethods(object)

    def __init__(self, path: str | Path, *, name: str = "", batch_size: int = 100) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size is a whole number of events from 1, got {batch_size!r}")
        self.name = name or type(self).__name__
        self.batch_size = batch_size
        self.db = sqlite3.connect(str(path), isolation_level=None)
        """The connection the read model's tables live in; methods write through it."""
        self.db.execute(_CHECKPOINTS)
        self.create_tables()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = EventMethods(cls, cls._methods)

    def create_tables(self) -> None:
        """Create the read model's tables if they do not exist (subclasses write this)."""

    # ------------------------------------------------------------------ the checkpoint

    @property
    def position(self) -> int:
        """The global position of the last event applied and committed (0: none yet)."""
        row = self.db.execute(
            "SELECT position FROM checkpoints WHERE projection = ?", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def save_position(self, position: int) -> None:
        """Write the checkpoint. Called inside the batch's transaction, after its events."""
        self.db.execute(
            "INSERT INTO checkpoints VALUES (?, ?) "
            "ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
            (self.name, position),
        )

    # ------------------------------------------------------------------ catching up

    def catch_up(self, store: EventStore) -> int:
        """Apply every event after the checkpoint, a batch per transaction; return how many
        were read. If applying fails (or the process dies), the batch under way is rolled
        back, tables and checkpoint together, and the error propagates."""
        count = 0
        batch: list[StoredEvent] = []
        for stored in store.read_all(self.position):
            batch.append(stored)
            if len(batch) == self.batch_size:
                count += self._commit(batch)
                batch = []
        if batch:
            count += self._commit(batch)
        return count

    def _commit(self, batch: list[StoredEvent]) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for stored in batch:
                method = self._methods.find(stored.event, required=False)
                if method is not None:
                    method(self, stored.event)
            self.save_position(batch[-1].position)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return len(batch)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SQLiteProjection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            where = f"at position {self.position}"
        except sqlite3.ProgrammingError:
            where = "closed"
        return f"{type(self).__name__}({where})"
