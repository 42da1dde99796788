"""The inbox: an effect written through the inbox's connection happens once per event id.

The marks and the effects share a SQLite file and a transaction, so these tests count rows of
the effect table after duplicates, failures, killed processes and concurrent deliveries; and
they show, each in a test, where the guarantee stops.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from eda_lesson import EventBus
from eda_lesson.core.messages import Message, SequentialIds, delivered_as, use_ids
from eda_lesson.patterns.inbox import Inbox, InboxSkip
from eda_lesson.patterns.outbox import BusPublisher, Outbox, Relay
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import OrderCreated
from eda_lesson.shop.order import order_registry


@dataclass(frozen=True)
class Paid(Message):
    order_id: str


def receipts(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT order_id FROM receipts ORDER BY rowid")]


def send_receipt(event: Paid, db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO receipts VALUES (?)", (event.order_id,))


def open_inbox(path: Path) -> Inbox:
    inbox = Inbox(path)
    inbox.db.execute("CREATE TABLE IF NOT EXISTS receipts (order_id TEXT)")
    return inbox


def guarded_bus(inbox: Inbox) -> EventBus:
    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, send_receipt, middleware=[inbox.once()])
    return bus


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return open_inbox(tmp_path / "shop.db")


def _paid(order_id: str = "o-1") -> Paid:
    with use_ids(SequentialIds("evt")):
        return Paid(order_id)


# ---------------------------------------------------------------------- once


def test_an_event_delivered_three_times_has_its_effect_once(inbox: Inbox) -> None:
    bus, paid = guarded_bus(inbox), _paid()
    for _ in range(3):
        bus.dispatch(paid)
    assert receipts(inbox.db) == ["o-1"]
    assert inbox.skipped == [InboxSkip("test_inbox.send_receipt", "evt-1")] * 2
    assert inbox.handled("test_inbox.send_receipt", "evt-1")


def test_a_failed_call_leaves_neither_its_effect_nor_its_mark(inbox: Inbox) -> None:
    calls = []

    def flaky(event: Paid, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO receipts VALUES (?)", (event.order_id,))
        calls.append(event.order_id)
        if len(calls) == 1:
            raise ConnectionError("the printer is offline")

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, flaky, middleware=[inbox.once(name="flaky")])
    paid = _paid()
    assert bus.dispatch(paid).errors and receipts(inbox.db) == [] and inbox.marks() == []
    bus.dispatch(paid)  # the redelivery
    bus.dispatch(paid)
    assert receipts(inbox.db) == ["o-1"] and calls == ["o-1", "o-1"]


def test_the_marks_outlive_the_process_that_wrote_them(tmp_path: Path) -> None:
    paid = _paid()
    with open_inbox(tmp_path / "shop.db") as first:
        guarded_bus(first).dispatch(paid)
    with open_inbox(tmp_path / "shop.db") as again:
        guarded_bus(again).dispatch(paid)
        assert receipts(again.db) == ["o-1"] and len(again.skipped) == 1


def _handle_then_die(path: str) -> None:
    inbox = open_inbox(Path(path))

    def dies_after_its_effect(event: Paid, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO receipts VALUES (?)", (event.order_id,))
        os.kill(os.getpid(), signal.SIGKILL)  # the power goes: no commit, no clean-up

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, dies_after_its_effect, middleware=[inbox.once(name="receipts")])
    bus.dispatch(Paid("o-1", event_id="evt-1"))


def test_a_process_killed_between_effect_and_commit_leaves_nothing_and_the_redelivery_counts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    open_inbox(path).close()
    child = multiprocessing.get_context("spawn").Process(target=_handle_then_die, args=(path,))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    inbox = open_inbox(path)
    assert receipts(inbox.db) == [] and inbox.marks() == []
    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, send_receipt, middleware=[inbox.once(name="receipts")])
    bus.dispatch(Paid("o-1", event_id="evt-1"))
    bus.dispatch(Paid("o-1", event_id="evt-1"))
    assert receipts(inbox.db) == ["o-1"]


def _deliver(path: str, start: multiprocessing.synchronize.Event) -> None:
    inbox = open_inbox(Path(path))
    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, send_receipt, middleware=[inbox.once(name="receipts")])
    start.wait(30)
    result = bus.dispatch(Paid("o-1", event_id="evt-1"))
    assert not result.errors, result.errors


def test_concurrent_deliveries_of_one_id_in_four_processes_have_one_effect(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shop.db"
    open_inbox(path).close()
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    workers = [spawn.Process(target=_deliver, args=(path, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    inbox = open_inbox(path)
    assert receipts(inbox.db) == ["o-1"] and inbox.marks() == [("receipts", "evt-1")]


def test_a_relay_re_sending_a_batch_does_not_repeat_the_guarded_effect(tmp_path: Path) -> None:
    """Plain shop events carry no id; the bus publisher delivers each under its outbox id."""
    store = SQLiteEventStore(tmp_path / "shop.db", order_registry())
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    inbox = Inbox(tmp_path / "shop.db")
    inbox.db.execute("CREATE TABLE confirmations (order_id TEXT)")

    def confirm(event: OrderCreated, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO confirmations VALUES (?)", (event.order_id,))

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(OrderCreated, confirm, middleware=[inbox.once()])

    def dies(batch: object) -> None:
        raise SystemExit("the relay died after publishing, before marking")

    with pytest.raises(SystemExit):
        Relay(outbox, BusPublisher(bus, order_registry()), before_mark=dies).publish_pending()
    Relay(outbox, BusPublisher(bus, order_registry())).publish_pending()  # its successor
    rows = inbox.db.execute("SELECT order_id FROM confirmations").fetchall()
    assert rows == [("o-1",)] and [event_id for _, event_id in inbox.marks()] == ["evt-1"]


# ---------------------------------------------------------------------- where it stops


def test_limit_an_unguarded_sibling_repeats_its_effect_when_the_delivery_is_retried(
    inbox: Inbox,
) -> None:
    """One failing handler makes the whole delivery come again: the guarded handler skips,
    the unguarded one sends its email a second time."""
    emails: list[str] = []
    failures = iter([RuntimeError("stock service down")])

    def email(event: Paid) -> None:
        emails.append(event.order_id)

    def reserve(event: Paid) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure

    bus = guarded_bus(inbox)
    bus.register(Paid, email)
    bus.register(Paid, reserve)
    paid = _paid()
    assert bus.dispatch(paid).errors  # the consumer will redeliver this event
    assert not bus.dispatch(paid).errors
    assert receipts(inbox.db) == ["o-1"] and emails == ["o-1", "o-1"]


def test_limit_an_effect_written_through_another_connection_is_not_covered(
    inbox: Inbox, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "elsewhere.db", isolation_level=None)
    other.execute("CREATE TABLE charges (order_id TEXT)")
    attempts = []

    def charge(event: Paid, db: sqlite3.Connection) -> None:
        other.execute("INSERT INTO charges VALUES (?)", (event.order_id,))  # not through db
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("no answer from the bank")

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, charge, middleware=[inbox.once(name="charge")])
    paid = _paid()
    bus.dispatch(paid)
    bus.dispatch(paid)
    assert other.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 2  # charged twice


def test_an_event_without_an_id_is_refused_before_the_handler_runs(inbox: Inbox) -> None:
    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(OrderCreated, lambda event, db: None, middleware=[inbox.once(name="x")])
    result = bus.dispatch(OrderCreated("o-1", "c-7", 42.0))
    (error,) = result.errors.values()
    assert isinstance(error, ValueError) and "Give every event a unique id" in str(error)
    event = OrderCreated("o-2", "c-7", 1.0)
    with delivered_as(event, "evt-9"):
        assert not bus.dispatch(event).errors
    assert inbox.marks() == [("x", "evt-9")]


def test_an_async_handler_is_refused_when_it_is_registered(inbox: Inbox) -> None:
    from eda_lesson.core.asyncbus import AsyncEventBus

    async def send(event: Paid) -> None: ...

    with pytest.raises(TypeError, match="guards plain handlers"):
        AsyncEventBus().register(Paid, send, middleware=[inbox.once()])


def test_a_guarded_handler_calling_another_through_a_second_bus_is_told_to_dispatch_instead(
    inbox: Inbox,
) -> None:
    inner = guarded_bus(inbox)

    def outer(event: Paid) -> None:
        inner.dispatch(event).raise_if_failed()

    bus = EventBus()
    bus.register(Paid, outer, middleware=[inbox.once(name="outer")])
    (error,) = bus.dispatch(_paid()).errors.values()
    assert isinstance(error, ExceptionGroup)
    assert "dispatch the second event instead" in str(error.exceptions[0])
    assert inbox.marks() == [] and receipts(inbox.db) == []


def test_bad_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="lives in a file"):
        Inbox(":memory:")
    with pytest.raises(ValueError, match="timeout"):
        Inbox("x.db", timeout=0)


# ---------------------------------------------------------------------- one commit per batch


def test_in_a_batch_each_call_has_its_savepoint_and_the_block_commits_them_all(
    inbox: Inbox,
) -> None:
    calls = []

    def flaky(event: Paid, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO receipts VALUES (?)", (event.order_id,))
        calls.append(event.order_id)
        if event.order_id == "o-2":
            raise ConnectionError("the printer is offline")

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Paid, flaky, middleware=[inbox.once(name="flaky")])
    first, second = Paid("o-1", event_id="evt-1"), Paid("o-2", event_id="evt-2")
    with inbox.batch():
        bus.dispatch(first)
        bus.dispatch(second)  # fails: its savepoint is rolled back, the batch goes on
        bus.dispatch(first)  # a repeat inside the batch is skipped
        with sqlite3.connect(inbox.path) as other:  # nothing is visible before the commit
            assert other.execute("SELECT COUNT(*) FROM receipts").fetchone()[0] == 0
    assert receipts(inbox.db) == ["o-1"] and inbox.marks() == [("flaky", "evt-1")]
    assert calls == ["o-1", "o-2"] and len(inbox.skipped) == 1


def test_a_batch_left_by_an_error_keeps_nothing_of_it(inbox: Inbox) -> None:
    bus = guarded_bus(inbox)
    with pytest.raises(RuntimeError), inbox.batch():
        bus.dispatch(_paid())
        raise RuntimeError("the worker is told to stop before the batch is done")
    assert receipts(inbox.db) == [] and inbox.marks() == []
    bus.dispatch(_paid())  # the redelivery
    assert receipts(inbox.db) == ["o-1"]


def test_an_ever_running_inbox_remembers_only_its_newest_skips_but_counts_them_all() -> None:
    from eda_lesson.patterns.inbox import InboxSkip, RecentSkips

    skips = RecentSkips(keep=3)
    for n in range(10):
        skips.append(InboxSkip("h", f"evt-{n}"))
    assert skips == [InboxSkip("h", f"evt-{n}") for n in (7, 8, 9)] and skips.total == 10
    with pytest.raises(ValueError, match="keep is how many skips to remember"):
        RecentSkips(keep=0)
