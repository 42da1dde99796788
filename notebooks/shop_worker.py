"""The shop's handlers as a worker process runs them (notebook 09)::

    python -m eda_lesson.transport.worker --handlers shop_worker:register --stream ... --group ...

``register(bus)`` does what chapter 02 did in a notebook: ``Shop(...).register(bus)``, the
same handler methods, unchanged. One thing is different: the mailer. In one process the
shop's ``Mailer`` keeps its emails in a list the notebook prints; a worker is another
process, so here the emails go to a SQLite file every worker shares (``$SHOP_MAIL_DB``):
a row in ``attempts`` for every email a handler sends, and the email itself in ``emails``,
keyed by (customer, subject), so sending the same email twice keeps it once (an
idempotent effect, the last line of defence against duplicates).

For the lesson only: with ``SHOP_FREEZE_AT=n`` the n-th email of this process is never
sent; the process freezes there, like a machine that lost power in the middle of a batch,
so the notebook can kill it at a known moment.
"""

from __future__ import annotations

import os
import sqlite3
import time

from eda_lesson import EventBus
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
