"""The inbox: a handler's effect and the mark "this event was handled" commit together.

At-least-once delivery means a handler meets some events twice: a relay re-sends a batch it
had published but not marked, a worker dies after handling an entry and before acknowledging
it. Remembering handled ids somewhere else (in memory, in Redis) leaves a gap: a crash between
the effect and the mark runs the handler again. When the handler's effect lives in a SQLite
file, that gap can be closed. The :class:`Inbox` keeps its marks in a table of that same file,
and :meth:`Inbox.once` is middleware that opens one transaction around each call:

1. ``BEGIN IMMEDIATE`` (from here on no other connection can write the file);
2. if the mark ``(handler, event id)`` is there, roll back and skip the call: a duplicate;
3. else write the mark, call the handler, which writes its effect through :attr:`Inbox.db`;
4. ``COMMIT`` both, or, if the handler raised, roll both back (the event can come again).

So the effect happens once per event id and handler, even across crashes and even when two
deliveries of one id run at the same time in two processes (the second waits for the first's
write lock, then sees its mark).

>>> import sqlite3, tempfile, pathlib
>>> from dataclasses import dataclass
>>> from eda_lesson import EventBus
>>> from eda_lesson.core.messages import Message
>>> @dataclass(frozen=True)
... class Paid(Message):
...     order_id: str
>>> inbox = Inbox(pathlib.Path(tempfile.mkdtemp()) / "receipts.db")
>>> _ = inbox.db.execute("CREATE TABLE receipts (order_id TEXT)")
>>> def send_receipt(event: Paid, db: sqlite3.Connection) -> None:
...     db.execute("INSERT INTO receipts VALUES (?)", (event.order_id,))
>>> bus = EventBus(dependencies={"db": inbox.db})
>>> _ = bus.register(Paid, send_receipt, middleware=[inbox.once()])
>>> paid = Paid("o-1")
>>> _ = bus.dispatch(paid), bus.dispatch(paid)  # delivered twice
>>> inbox.db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
1

Where effectively once stops, each shown by a test:

* Only effects written through :attr:`Inbox.db` are covered. An email sent, a card charged or
  a row written through another connection happens again on a redelivery; such handlers need
  an idempotency key the other system honours.
* The unit is one handler and one event id. When one handler of an event fails, the delivery
  is retried and every handler is called again: the guarded ones skip (their marks are
  there), unguarded siblings repeat their effects.
* An event is known by its ``event_id`` (or the id a consumer delivered it under, see
  :func:`~eda_lesson.core.messages.delivered_as`); two different events with one id are one
  event here, and an event without an id is refused rather than guessed at.
* Handlers must be plain functions: the transaction is held across the call, which an
  ``async def`` handler would share with every other task of its loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Self

from eda_lesson.core.bus import Subscription
from eda_lesson.core.checks import handler_name, is_async_callable
from eda_lesson.core.middleware import (
    NEXT,
    Call,
    Layer,
    Steps,
    message_key,
    registration_text,
)
from eda_lesson.core.text import plural

__all__ = ["Inbox", "InboxSkip", "Once", "RecentSkips"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox ("
    " handler TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (handler, event_id))"
)
_SEEN = "SELECT 1 FROM inbox WHERE handler = ? AND event_id = ?"
_MARK = "INSERT INTO inbox (handler, event_id) VALUES (?, ?)"
_MARK_UNLESS_SEEN = "INSERT OR IGNORE INTO inbox (handler, event_id) VALUES (?, ?)"


class InboxSkip(NamedTuple):
    """A call the inbox skipped because the handler had handled that event id already."""

    handler: str
    event_id: str


class RecentSkips(list[InboxSkip]):
    """A list of the newest ``keep`` skips; ``total`` counts every skip ever appended."""

    def __init__(self, keep: int = 1000) -> None:
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep is how many skips to remember, from 1: {keep!r}")
        self.keep = keep
        self.total = 0

    def append(self, skip: InboxSkip) -> None:
        super().append(skip)
        self.total += 1
        if len(self) > self.keep:
            del self[0]


class Inbox:
    """Handled event ids, kept in the SQLite file that holds the handlers' effects.

    ``Inbox(path)`` opens (or creates) the file (``synchronous="NORMAL"`` trades durability
    against a power cut for speed, as for the store); :attr:`db` is the connection handlers write
    their effects through (give it to them as a dependency, ``EventBus(dependencies={"db":
    inbox.db})``); :meth:`once` is the middleware that guards a handler.
    """

    def __init__(
        self, path: str | Path, *, timeout: float = 30.0, synchronous: str = "FULL"
    ) -> None:
        if not isinstance(path, (str, Path)) or str(path) in ("", ":memory:"):
            raise ValueError(
                f"an inbox lives in a file, beside the effects it guards, got {path!r}; "
                "give it the path of the handlers' SQLite file"
            )
        if not timeout > 0:
            raise ValueError(f"timeout is the seconds to wait for the file's lock, got {timeout}")
        self.path = str(path)
        self.db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        """The connection the guarded handlers write their effects through."""
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._in_batch = False
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(
                f"synchronous is 'FULL' (a commit survives a power cut) or 'NORMAL' (it "
                f"survives the process dying, and is faster), got {synchronous!r}"
            )
        _set_up(self.db, timeout)
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.skipped = RecentSkips()
        """The newest skips (1,000 by default: a worker runs for ever); ``.total`` counts all."""

    def once(
        self, *, key: Callable[[Any], Hashable] = message_key, name: str | None = None
    ) -> Once:
        """Middleware: the handler's effect (written through :attr:`db`) and its mark commit
        in one transaction, so it happens once per event id.

        ``key(event)`` names the event (default: its ``event_id``, or the id it was delivered
        under); ``name`` names the handler in the marks (default: its module and qualified
        name, see :func:`~eda_lesson.core.middleware.registration_text`); give one for a
        method or a closure, whose identity does not outlive the process.
        """
        if not callable(key):
            raise TypeError(f"once(key=...) is a function of the event, got {key!r}")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ValueError(f"once(name=...) is the handler's stable name, got {name!r}")
        return Once(self, key, name)

    def handled(self, handler: str, event_id: str) -> bool:
        """Whether ``handler`` has committed its effect for ``event_id``."""
        with self._lock:
            return self.db.execute(_SEEN, (handler, event_id)).fetchone() is not None

    def marks(self) -> list[tuple[str, str]]:
        """Every ``(handler, event id)`` mark, in the order they were written."""
        with self._lock:
            rows = self.db.execute("SELECT handler, event_id FROM inbox ORDER BY rowid")
            return [(str(handler), str(event_id)) for handler, event_id in rows]

    @contextmanager
    def batch(self) -> Iterator[Self]:
        """``with inbox.batch():`` one transaction for every guarded call inside the block.

        Each call then runs in a savepoint of its own (a failed call still leaves nothing),
        and the block commits them all at its end: one commit for a batch of deliveries
        instead of one per event. A consumer opens it around the handling of a batch and
        acknowledges the batch only after it committed (``StreamConsumer(around_batch=...)``);
        a crash before that commit loses the effects and the marks together, and the
        redelivery does them once.
        """
        self._begin()
        self._in_batch = True
        try:
            yield self
        except BaseException:
            self._in_batch = False
            self._end(commit=False)
            raise
        self._in_batch = False
        self._end(commit=True)

    # ------------------------------------------------------------------ one guarded call

    def _begin(self) -> None:
        self._lock.acquire()
        if self._owner == threading.get_ident():
            self._lock.release()
            raise RuntimeError(
                "an inbox-guarded handler ran while another one's transaction was open in this "
                "thread (one handler calling another directly?); dispatch the second event "
                "instead, so each call gets a transaction of its own"
            )
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        self._owner = threading.get_ident()

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                self.db.execute("COMMIT")
            else:
                self.db.execute("ROLLBACK")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        finally:
            self._owner = None
            self._lock.release()

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = Path(self.path).name
        try:
            with self._lock:  # a count, not every mark: an inbox grows with every event
                count = int(self.db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
        except sqlite3.ProgrammingError:  # closed
            return f"Inbox({name!r}, closed)"
        return f"Inbox({name!r}, {plural(count, 'mark')}, {self.skipped.total} skipped)"


class Once(Layer):
    """The middleware :meth:`Inbox.once` returns."""

    def __init__(self, inbox: Inbox, key: Callable[[Any], Hashable], name: str | None) -> None:
        self.inbox = inbox
        self.key = key
        self.name = name

    def __call__(self, call: Call, subscription: Subscription) -> Call:
        if is_async_callable(call):
            raise TypeError(
                f"inbox.once() guards plain handlers; {subscription.name} is async, and the "
                "transaction held across its awaits would block every other task. Make the "
                "effect a plain function, or guard it with idempotent() and an idempotency key"
            )
        return super().__call__(call, subscription)

    def steps(self, message: Any, subscription: Subscription) -> Steps:
        event_id = str(_usable(self.key(message), self.key))
        handler = self.name or registration_text(subscription)
        inbox = self.inbox
        if inbox._in_batch and inbox._owner == threading.get_ident():
            return (yield from self._in_savepoint(handler, event_id))
        inbox._begin()
        try:
            seen = inbox.db.execute(_SEEN, (handler, event_id)).fetchone() is not None
            if not seen:
                inbox.db.execute(_MARK, (handler, event_id))
        except BaseException:
            inbox._end(commit=False)
            raise
        if seen:
            inbox._end(commit=False)
            inbox.skipped.append(InboxSkip(handler, event_id))
            return None
        try:
            produced = yield NEXT
        except BaseException:  # the handler failed: neither its effect nor the mark stays
            inbox._end(commit=False)
            raise
        inbox._end(commit=True)
        return produced

    def _in_savepoint(self, handler: str, event_id: str) -> Steps:
        """The same steps inside an :meth:`Inbox.batch`: a savepoint instead of a transaction."""
        db = self.inbox.db
        db.execute("SAVEPOINT once")
        try:
            # Mark first, in one statement: a mark already there inserts nothing (seen), and
            # a failing handler rolls its new mark back with its effect.
            if db.execute(_MARK_UNLESS_SEEN, (handler, event_id)).rowcount == 0:
                self.inbox.skipped.append(InboxSkip(handler, event_id))
                db.execute("RELEASE once")
                return None
            produced = yield NEXT
        except BaseException:
            db.execute("ROLLBACK TO once")
            db.execute("RELEASE once")
            raise
        db.execute("RELEASE once")
        return produced

    def __repr__(self) -> str:
        return f"Once({Path(self.inbox.path).name!r}, key={handler_name(self.key)})"


def _usable(event_key: object, key: Callable[[Any], Hashable]) -> object:
    if (
        not isinstance(event_key, (str, int))
        or isinstance(event_key, bool)
        or not str(event_key).strip()
    ):
        raise ValueError(
            f"once(key={handler_name(key)}) returned {event_key!r}; the inbox keeps event ids "
            "as text, so the key must be a non-empty string or a whole number"
        )
    return event_key


def _set_up(db: sqlite3.Connection, timeout: float) -> None:
    """WAL (readers never wait for the writer) and the table, retrying a busy file: several
    processes creating one file at once can find it locked before the timeout applies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
