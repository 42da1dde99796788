"""Checks for the exercises of notebook 11 (the outbox, the relay, consumers behind a broker).

Each check builds a small world of its own, with no Redis: a SQLite event store with its
outbox in a temporary folder, the shop on an in-process bus, publishers that record or
refuse. The delivery log of exercise 3 is the kind a consumer group's journal holds after a
worker died mid-batch. Exercise 4 (stretch) is an inbox written by hand: the check crashes it
in the middle (a fresh connection afterwards stands for the restarted process) and delivers
one id from two threads at once. Nothing is printed; each check says what went differently.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.patterns.outbox import Outbox, OutboxMessage, Relay, SimulatedCrash, simulate_crash
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import OrderCreated
from eda_lesson.shop.order import order_registry
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import Delivery

__all__ = [
    "RecordingPublisher",
    "RefusingPublisher",
    "ex1",
    "ex2",
    "ex3",
    "ex4",
    "journal_after_a_kill",
]


class RecordingPublisher:
    """A broker that is a list: every message it was given, in order."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        self.published.extend(messages)

    @property
    def ids(self) -> list[str]:
        return [message.event_id for message in self.published]


class RefusingPublisher:
    """A broker that is down: every publish raises ConnectionError."""

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        raise ConnectionError("the broker is unreachable")


def _shop_outbox(
    folder: Path, orders: int, name: str = "shop.db"
) -> tuple[SQLiteEventStore, Outbox]:
    store = SQLiteEventStore(folder / name, order_registry())
    outbox = Outbox(store, id_prefix="evt-")
    for n in range(1, orders + 1):
        store.append(
            f"order-o-{n}", [OrderCreated(f"o-{n}", f"c-{n}", 10.0 * n)], expected_version=0
        )
    return store, outbox


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a relay, by hand")
def ex1(relay_once: Callable[[Outbox, Any], object]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        _, outbox = _shop_outbox(Path(folder), 3)
        publisher = RecordingPublisher()
        returned = relay_once(outbox, publisher)
        expect(
            publisher.ids == ["evt-1", "evt-2", "evt-3"],
            f"the publisher received {publisher.ids or 'nothing'}; it should get the three "
            "waiting messages, oldest first",
            "outbox.waiting() lists them in order; hand the list to publisher.publish(...)",
        )
        expect(
            outbox.counts() == (3, 0),
            f"after your relay the outbox holds {outbox.counts()[1]} waiting messages; the "
            "published ones must be marked sent, or every relay run sends them again",
            "call outbox.mark_sent(messages) once publish(...) has returned",
        )
        expect(returned == 3, f"return how many messages were published (3), got {returned!r}")
        relay_once(outbox, publisher)
        expect(
            len(publisher.published) == 3,
            "a second run published messages that were already sent",
            "publish only outbox.waiting(), not outbox.messages()",
        )
        _, down = _shop_outbox(Path(folder), 2, "down.db")
        # Letting the broker's error through is right: the relay tries again later.
        with contextlib.suppress(ConnectionError):
            relay_once(down, RefusingPublisher())
        expect(
            down.counts() == (0, 2),
            "when the broker refused the messages, your relay still marked them sent: they "
            "are lost, the outbox will never send them",
            "mark the messages sent only AFTER publish(...) returned; if it raises, mark nothing",
        )
    return "publish first, mark sent after: a crash in between means a re-send, never a loss"


# ---------------------------------------------------------------------- exercise 2


@exercise("Exercise 2: a consumer that drops duplicates")
def ex2(deliver: Callable[[OutboxMessage, EventBus, Any, set[str]], object]) -> str:
    with tempfile.TemporaryDirectory() as folder:
        _, outbox = _shop_outbox(Path(folder), 3)
        bus, shop, seen = EventBus(), Shop(), set[str]()
        shop.register(bus)
        consumer = _Consumer(deliver, bus, seen)
        # Published, never marked: the next relay sends all three again.
        with contextlib.suppress(SimulatedCrash):
            Relay(outbox, consumer, before_mark=simulate_crash).publish_pending()
        Relay(outbox, consumer).publish_pending()
        subjects = [mail.subject for mail in shop.mailer.sent]
        expect(
            consumer.calls == 6,
            f"the check delivered 6 messages but your function was called {consumer.calls} times",
        )
        expect(
            subjects,
            "the shop sent no confirmation at all: the bus got nothing its handlers take",
            "dispatch the event that registry.from_json(message.event_type, "
            "message.schema_version, message.payload) returns, not the message itself",
        )
        expect(
            len(subjects) >= 3 and len(set(subjects)) == 3,
            f"the shop sent {len(subjects)} confirmations for 3 orders ({', '.join(subjects)}); "
            "each order must be confirmed, even when every message is an OrderCreated",
            "remember event ids, not event types: two orders are two events of the same type",
        )
        expect(
            len(subjects) == 3,
            f"the relay re-sent the 3 messages and the shop confirmed {len(subjects)} times: "
            "the copies were handled again",
            "skip a message whose message.event_id is in seen; add the id once it is dispatched",
        )
        expect(
            seen == {"evt-1", "evt-2", "evt-3"},
            f"seen should hold the three event ids, got {sorted(seen)}",
        )
        _stopped_inside_a_handler(deliver, Path(folder))
    return "at-least-once delivery plus deduplication by event id: each order confirmed once"


class _ProcessStopped(BaseException):
    """The process stopped inside a handler. Not an ``Exception``: the bus records a handler's
    errors, but nothing in the process catches its end."""


def _stop_at_first_sight_of(order_id: str) -> Callable[[OrderCreated], None]:
    seen_it: list[str] = []

    def stop(event: OrderCreated) -> None:
        if event.order_id == order_id and not seen_it:
            seen_it.append(order_id)
            raise _ProcessStopped(f"the process stopped inside a handler of {order_id}")

    return stop


def _stopped_inside_a_handler(deliver: Callable[..., object], folder: Path) -> None:
    """Deliver three messages; the process stops inside the handlers of the second one,
    before its confirmation. ``seen`` is kept, as a record outside the process would be,
    and every message comes again (re-sent or reclaimed)."""
    _, outbox = _shop_outbox(folder, 3, "stopped.db")
    bus, shop, seen, registry = EventBus(), Shop(), set[str](), order_registry()
    bus.register(OrderCreated, _stop_at_first_sight_of("o-2"))  # runs before the shop's
    shop.register(bus)
    messages = outbox.waiting()
    for message in messages:
        with contextlib.suppress(_ProcessStopped):
            deliver(message, bus, registry, seen)
    for message in messages:
        deliver(message, bus, registry, seen)
    subjects = [mail.subject for mail in shop.mailer.sent]
    expect(
        "Order o-2 confirmed" in subjects,
        "the process stopped inside the handlers of evt-2, before o-2's confirmation; when "
        "evt-2 came again your function skipped it, so o-2 was never confirmed (the check "
        "keeps seen across the stop, as a record outside the process would be)",
        "add message.event_id to seen only after bus.dispatch(...) has returned: an id in "
        "seen must mean 'its handlers ran', not 'it arrived'",
    )


class _Consumer:
    """A publisher that hands each message to the learner's ``deliver``."""

    def __init__(self, deliver: Callable[..., object], bus: EventBus, seen: set[str]) -> None:
        self.deliver = deliver
        self.bus = bus
        self.seen = seen
        self.calls = 0
        self.registry = order_registry()

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        for message in messages:
            self.calls += 1
            self.deliver(message, self.bus, self.registry, self.seen)


# ---------------------------------------------------------------------- exercise 3


def journal_after_a_kill() -> list[Delivery]:
    """What a group's records hold after w1 died holding four entries: w2 and w3 shared the
    work, w2 reclaimed w1's entries (second deliveries), a re-sent copy was skipped as a
    duplicate, and one entry failed once before w3 handled it."""
    created = "OrderCreated"
    records = [Delivery(f"evt-{n}", created, "w1", 1, "pending") for n in range(1, 5)]
    records += [Delivery(f"evt-{n}", created, "w2" if n % 2 else "w3", 1, "handled")
                for n in range(5, 13)]  # fmt: skip
    records += [Delivery("evt-13", created, "w3", 1, "failed", "RuntimeError: mail server busy")]
    records += [Delivery(f"evt-{n}", created, "w2", 2, "handled") for n in range(1, 5)]
    records += [Delivery("evt-13", created, "w3", 2, "handled")]
    records += [Delivery("evt-6", created, "w2", 1, "duplicate")]
    return records


@exercise("Exercise 3: who did the work")
def ex3(handled_by_worker: Callable[[list[Delivery]], object]) -> str:
    records = journal_after_a_kill()
    answer = handled_by_worker(list(records))
    expect(isinstance(answer, dict), f"return a dict {{consumer: count}}, got {answer!r}")
    assert isinstance(answer, dict)  # for the type checker: expect() stopped otherwise
    expect(
        "w1" not in answer or answer["w1"] == 0,
        f"w1 handled nothing (it died holding its entries), yet your count gives it {answer}",
        "count only deliveries whose outcome is 'handled'; 'pending' ones were never finished",
    )
    expect(
        answer.get("w2") == 8,
        f"w2 handled 8 events (4 of its own, 4 reclaimed from w1); your count says "
        f"{answer.get('w2')!r}",
        "a redelivery (delivery 2) that was handled counts too; a 'duplicate' does not",
    )
    expect(
        answer.get("w3") == 5,
        f"w3 handled 5 events (one after a failed first try); your count says {answer.get('w3')!r}",
        "count the 'handled' outcome only: a 'failed' delivery is retried, not done",
    )
    expect(
        {name: count for name, count in answer.items() if count} == {"w2": 8, "w3": 5},
        f"expected {{'w2': 8, 'w3': 5}}, got {answer}",
    )
    return "13 events, each handled once, by the two workers that stayed alive"


# ---------------------------------------------------------------------- exercise 4

HandleOnce = Callable[[sqlite3.Connection, str, Callable[[sqlite3.Connection], None]], object]


class _CrashAtTheMark(sqlite3.Connection):
    """A connection whose first write of a mark into ``handled`` dies, as the process would.

    SQLite's authorizer sees every statement as it is prepared, whatever wrote it
    (``INSERT``, ``INSERT OR IGNORE``, ``REPLACE``, ``execute`` or a cursor): at the first
    insert into ``handled`` it refuses the statement, and ``execute`` then raises the crash.
    """

    armed = False
    crashed = False

    def arm(self) -> None:
        self.armed = True
        self.set_authorizer(self._stop_at_the_mark)

    def _stop_at_the_mark(self, action: int, table: str | None, *_: object) -> int:
        if self.armed and action == sqlite3.SQLITE_INSERT and table == "handled":
            self.armed, self.crashed = False, True
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError:
            if self.crashed:
                raise SimulatedCrash("simulated crash: the process stopped at the mark") from None
            raise


def _open(path: Path, *, crash_at_mark: bool = False, **options: Any) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10, isolation_level=None, factory=_CrashAtTheMark, **options)
    assert isinstance(db, _CrashAtTheMark)
    db.execute("CREATE TABLE IF NOT EXISTS handled (event_id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS receipts (event_id TEXT, note TEXT)")
    if crash_at_mark:
        db.arm()
    return db


def _receipt(note: str) -> Callable[[sqlite3.Connection], None]:
    def effect(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO receipts VALUES (?, ?)", ("", note))

    return effect


def _crashing_receipt(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO receipts VALUES (?, ?)", ("", "half-done"))
    raise SimulatedCrash("simulated crash: the process stopped inside the handler")


def _failing_receipt(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO receipts VALUES (?, ?)", ("", "half-done"))
    raise ValueError("the receipt template is broken")


def _count(path: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        return int(db.execute(sql).fetchone()[0])


def _receipts(path: Path) -> int:
    return _count(path, "SELECT COUNT(*) FROM receipts")


def _marked(path: Path, event_id: str) -> bool:
    return bool(_count(path, f"SELECT COUNT(*) FROM handled WHERE event_id = '{event_id}'"))


def _deliver_crashing(handle_once: HandleOnce, path: Path, event_id: str, **how: Any) -> bool:
    """One delivery that dies half-way; closing the connection is the process going away.
    Return whether it died (at the mark, that needs a mark written through ``db``)."""
    db = _open(path, crash_at_mark=bool(how.get("at_mark")))
    effect = _receipt("first try") if how.get("at_mark") else _crashing_receipt
    died = True
    try:
        handle_once(db, event_id, effect)
        died = False
    except SimulatedCrash:
        pass
    except sqlite3.DatabaseError:  # the refused mark, when it went through a cursor
        if not getattr(db, "crashed", False):
            raise
    db.close()
    return died


def _redeliver(handle_once: HandleOnce, path: Path, event_id: str) -> None:
    """The restarted process gets the entry again."""
    with contextlib.closing(_open(path)) as db:
        handle_once(db, event_id, _receipt("second try"))


@exercise("Exercise 4 (stretch): an inbox by hand")
def ex4(handle_once: HandleOnce) -> str:
    expect(callable(handle_once), f"pass your function itself, got {handle_once!r}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "effects.db"
        db = _open(path)
        first, again = (
            handle_once(db, "evt-1", _receipt("a")),
            handle_once(db, "evt-1", _receipt("a")),
        )
        expect(
            _receipts(path) == 1,
            f"evt-1 was delivered twice and the file holds {_receipts(path)} receipts; the "
            "copy must be skipped",
            "look the id up in handled first; after the effect, write the id there",
        )
        expect(
            first is True and again is False,
            f"return True when the effect ran and False for a duplicate, got {first!r} then "
            f"{again!r}",
        )
        handle_once(db, "evt-2", _receipt("a"))
        expect(
            _receipts(path) == 2,
            "evt-2 has the same content as evt-1 but is another event, and your function "
            "skipped it: key by the event id only",
        )
        try:
            handle_once(db, "evt-3", _failing_receipt)
            raised = False
        except ValueError:
            raised = True
        expect(
            raised,
            "the effect raised ValueError and your function swallowed it: let it through, so "
            "the consumer leaves the entry pending and it is delivered again",
        )
        expect(
            _receipts(path) == 2 and not _marked(path, "evt-3"),
            "the effect of evt-3 raised half-way, and its half-done receipt or its mark "
            "stayed in the file: a failed delivery must leave nothing behind",
            "do the mark and the effect inside one transaction (BEGIN ... COMMIT) and ROLLBACK "
            "when the effect raises",
        )
        try:
            handle_once(db, "evt-4", _receipt("a"))
            usable = ""
        except sqlite3.Error as error:
            usable = f"{type(error).__name__}: {error}"
        expect(
            not usable,
            f"after a failed effect the next delivery failed with {usable}: end the "
            "transaction (ROLLBACK) before raising",
        )
        db.close()
        _deliver_crashing(handle_once, path, "evt-5")
        expect(
            not _marked(path, "evt-5"),
            "the process died inside the effect of evt-5, and its mark was already committed: "
            "the redelivery will be skipped and the effect never happens",
            "commit the mark together with the effect, in one transaction, never before it",
        )
        _redeliver(handle_once, path, "evt-5")
        expect(
            _deliver_crashing(handle_once, path, "evt-6", at_mark=True),
            "the check stops the process when your function writes evt-6's mark, and it never "
            "wrote one: the marks must go in the table handled, through db",
            'db.execute("INSERT INTO handled VALUES (?)", (event_id,)) is the mark',
        )
        _redeliver(handle_once, path, "evt-6")
        expect(
            _receipts(path) == 5,
            "the process died after an effect and before its mark, and the effect stayed: the "
            f"redelivery did it again ({_receipts(path) - 3} receipts for evt-5 and evt-6, "
            "expected 2)",
            "an effect committed on its own survives the crash without its mark; commit both "
            "in one transaction",
        )
        errors = _at_once(handle_once, path, "evt-7")
        expect(
            not errors,
            f"two deliveries of evt-7 at the same time: one failed with {(errors or [''])[0]}",
            "start with BEGIN IMMEDIATE: the second delivery then waits for the first to "
            "commit, and sees its mark, instead of both reading 'not handled' first",
        )
        expect(
            _receipts(path) == 6,
            f"two deliveries of evt-7 at the same time gave {_receipts(path) - 5} receipts: "
            "both read 'not handled' before either wrote its mark",
            "start with BEGIN IMMEDIATE: from there on no other connection can write the file, "
            "so the second delivery waits, then sees the mark",
        )
        returned, failure = _while_another_process_holds(handle_once, path, "evt-8")
        expect(
            not failure and _receipts(path) == 7,
            "another process was in the middle of evt-8 (its mark and receipt written, not "
            "committed yet) when your function got the same id: "
            + (f"it failed with {failure}" if failure else "it did the effect as well (2 receipts)")
            + "; whatever made your two threads wait for each other does not reach another "
            "process",
            "only SQLite's own lock is seen by every process: BEGIN IMMEDIATE waits for the "
            "other's COMMIT, and the lookup after it finds the other's mark",
        )
        expect(
            returned is False,
            f"evt-8 was handled by another process, so it is a duplicate here: return False, "
            f"got {returned!r}",
        )
    return (
        "the effect and its mark commit together, keyed by the event id, and a second "
        "delivery waits for the first: once per event id, through crashes and races"
    )


def _while_another_process_holds(
    handle_once: HandleOnce, path: Path, event_id: str
) -> tuple[object, str]:
    """Another process (a connection of the check's own) has begun handling ``event_id``:
    its mark and receipt are written, not committed. Deliver the same id to the learner's
    function in a thread; once that has started a statement, let the other commit. Return
    what the function returned and the error it raised, if any."""
    other = sqlite3.connect(path, timeout=10, isolation_level=None)
    db = _open(path, check_same_thread=False)
    started = threading.Event()
    db.set_trace_callback(lambda statement: started.set())
    outcome: list[object] = [None, ""]

    def deliver() -> None:
        try:
            outcome[0] = handle_once(db, event_id, _receipt("this process"))
        except Exception as error:  # reported to the learner, not raised in a thread
            outcome[1] = f"{type(error).__name__}: {error}"

    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO handled VALUES (?)", (event_id,))
        other.execute("INSERT INTO receipts VALUES (?, ?)", (event_id, "other process"))
        thread = threading.Thread(target=deliver)
        thread.start()
        started.wait(5)
        thread.join(0.3)  # time to reach the lock (or to get past it, if nothing stops it)
        other.execute("COMMIT")
        thread.join(30)
    finally:
        other.close()
        db.close()
    return outcome[0], str(outcome[1])


def _at_once(handle_once: HandleOnce, path: Path, event_id: str) -> list[str]:
    """Deliver ``event_id`` from two threads, each with its own connection, whose effects
    wait for each other (up to half a second), so both are in flight together if they can."""
    both_inside = threading.Barrier(2, timeout=0.5)
    errors: list[str] = []

    def effect(db: sqlite3.Connection) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_inside.wait()
        db.execute("INSERT INTO receipts VALUES (?, ?)", (event_id, "at once"))

    def deliver() -> None:
        db = _open(path)
        try:
            handle_once(db, event_id, effect)
        except Exception as error:  # reported to the learner, not raised in a thread
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            db.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors
