"""The shop's handlers as a worker process runs them (notebook 11)::

    python -m eda_lesson.transport.worker --handlers shop_worker:register --stream ... --group ...

``register(bus)`` does what chapter 02 did in a notebook: ``Shop(...).register(bus)``, the
same handler methods, unchanged. One thing is different: the mailer. In one process the
shop's ``Mailer`` keeps its emails in a list the notebook prints; a worker is another
process, so here the emails go to a SQLite file every worker shares (``$SHOP_MAIL_DB``):
a row in ``attempts`` for every email a handler sends, and the email itself in ``emails``,
keyed by (customer, subject). That table is a set of distinct contents filled after the
email went out: it hides a repeat from whoever reads the table, not from the customer, and
it would swallow a second, different email with the same subject. It is not deduplication;
:func:`shared_shop` is (effects and marks in one transaction of an inbox, keyed by event id).

Each worker process builds its own ``Shop``: its stock, its order book (who placed which
order) live in that process only, so two workers are two shops that never see each other's
state. :func:`shared_shop` keeps that state in the inbox's SQLite file instead, shared by
every worker that opens it.

For the lesson only: with ``SHOP_FREEZE_AT=n`` the n-th email of this process is never
sent; the process freezes there, like a machine that lost power in the middle of a batch,
so the notebook can kill it at a known moment.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, MutableMapping

from eda_lesson import EventBus
from eda_lesson.patterns.inbox import Inbox
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.order import order_registry
from eda_lesson.shop.services import Mailer, Shop


def register(bus: EventBus) -> EventRegistry:
    """Register the shop's handlers on the worker's bus; decode with the shop's registry."""
    shop = Shop(stock={"book": 1000})
    shop.mailer = SharedMailer(os.environ["SHOP_MAIL_DB"], os.environ.get("SHOP_WORKER", "?"))
    shop.register(bus)
    return order_registry()


class SharedMailer(Mailer):
    """A mailer whose emails every process can see: rows in a SQLite file."""

    def __init__(self, path: str, worker: str) -> None:
        super().__init__()
        self.db = open_mail_db(path)
        self.worker = worker
        self.freeze_at = int(os.environ.get("SHOP_FREEZE_AT", "0"))

    def send(self, to: str, subject: str) -> None:
        if len(self.sent) + 1 == self.freeze_at:
            with self.db:
                self.db.execute("INSERT INTO frozen VALUES (?)", (self.worker,))
            time.sleep(3600)  # frozen: the notebook kills this process now
        time.sleep(0.02)  # sending an email takes a moment
        super().send(to, subject)
        with self.db:
            self.db.execute("INSERT INTO attempts VALUES (?, ?, ?)", (to, subject, self.worker))
            self.db.execute("INSERT OR IGNORE INTO emails VALUES (?, ?)", (to, subject))


def open_mail_db(path: str) -> sqlite3.Connection:
    """The shared mail file (created if missing)."""
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS attempts (recipient TEXT, subject TEXT, worker TEXT)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS emails (recipient TEXT, subject TEXT, "
        "PRIMARY KEY (recipient, subject))"
    )
    db.execute("CREATE TABLE IF NOT EXISTS frozen (worker TEXT)")
    return db


# ---------------------------------------------------------------------- one shop, shared


class SharedTable(MutableMapping[str, str]):
    """A dict whose items are rows of a table in the inbox's file: written through the
    inbox's connection, so a change commits together with the handler's mark."""

    def __init__(self, db: sqlite3.Connection, table: str) -> None:
        self.db, self.table = db, table
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT)")

    def __getitem__(self, key: str) -> str:
        row = self.db.execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return str(row[0])

    def __setitem__(self, key: str, value: str) -> None:
        self.db.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)", (key, value))

    def __delitem__(self, key: str) -> None:
        self.db.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self.db.execute(f"SELECT key FROM {self.table}")])

    def __len__(self) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])


class InboxMailer(Mailer):
    """Emails as rows of ``outgoing`` in the inbox's file, in the handler's transaction: a
    mail server would send them from there (an outbox for email)."""

    def __init__(self, db: sqlite3.Connection, worker: str) -> None:
        super().__init__()
        self.db, self.worker = db, worker
        db.execute(
            "CREATE TABLE IF NOT EXISTS outgoing (recipient TEXT, subject TEXT, worker TEXT)"
        )

    def send(self, to: str, subject: str) -> None:
        super().send(to, subject)
        self.db.execute("INSERT INTO outgoing VALUES (?, ?, ?)", (to, subject, self.worker))


def shared_shop(inbox: Inbox, worker: str) -> Shop:
    """A shop whose order book and emails live in the inbox's file, shared by every worker
    that opens that file (its stock and payments stay in memory: the lesson does not use
    them here)."""
    shop = Shop()
    shop.mailer = InboxMailer(inbox.db, worker)
    shop.orders.customer = SharedTable(inbox.db, "customers")  # type: ignore[assignment]
    shop.orders.status = SharedTable(inbox.db, "statuses")  # type: ignore[assignment]
    inbox.db.commit()
    return shop


def register_once(bus: EventBus, shop: Shop, inbox: Inbox) -> None:
    """Register the shop's handlers on ``bus``, each guarded by ``inbox.once()``: its effect
    and its mark (handler name, event id) commit together, once per event id."""
    for event_type, handler in shop.handlers():
        bus.register(event_type, handler, middleware=[inbox.once(name=handler.__name__)])


def outgoing(path: str) -> list[tuple[str, str, str]]:
    """The emails the shared shops queued, in the order they were committed."""
    with sqlite3.connect(path, timeout=30) as db:
        rows = db.execute("SELECT recipient, subject, worker FROM outgoing ORDER BY rowid")
        return [(str(a), str(b), str(c)) for a, b, c in rows]
