"""The event store at its edges: bad input refused before anything changes, files it may
not write, locks held too long, and paths that are no store at all."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eda_lesson.patterns.serialization import UnwritableEventError
from eda_lesson.patterns.store import (
    CorruptEventError,
    EventStore,
    InMemoryEventStore,
    ReadOnlyStoreError,
    SQLiteEventStore,
    StoreLockedError,
    StoreOpenError,
)
from eda_lesson.shop.events import LineItem, OrderCreated, OrderPaid
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.read_models import OrdersByStatus, RevenuePerCustomer

CREATED = OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),))
PAID = OrderPaid("o-1", 42.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, path: Path) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    with SQLiteEventStore(path, order_registry()) as sqlite_store:
        yield sqlite_store


def _rows_on_disk(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    db.close()
    return int(count)


# ---------------------------------------------------------------------- refused before written


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (OrderPaid("o-1", "42"), r"OrderPaid\.amount should be a number"),  # type: ignore[arg-type]
        (OrderCreated(123, "c-7", 1.0), r"order_id should be a string"),  # type: ignore[arg-type]
        (OrderCreated("o-1", None, 1.0), r"customer_id should be a string"),  # type: ignore[arg-type]
        (OrderPaid("o-\udc80", 1.0), "lone surrogate"),
        (OrderCreated("o-1", "c", 1.0, [LineItem("b")]), r"items should be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_one_unwritable_event_fails_the_whole_append_and_writes_nothing(
    path: Path, bad: object, problem: str
) -> None:
    with SQLiteEventStore(path, order_registry()) as store:
        store.append("order-o-1", [CREATED], 0)
        with pytest.raises(UnwritableEventError, match=problem) as caught:
            store.append("order-o-1", [PAID, bad, OrderPaid("o-1", 1.0)], expected_version=1)
        assert str(caught.value).startswith("append to 'order-o-1' (event 2 of 3): cannot write")
        assert store.version("order-o-1") == 1 and store.last_position() == 1
    assert _rows_on_disk(path) == 1


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (OrderPaid("o-1", "42"), r"OrderPaid\.amount should be a number"),  # type: ignore[arg-type]
        (OrderCreated(123, "c-7", 1.0), r"order_id should be a string"),  # type: ignore[arg-type]
        (OrderCreated("o-1", None, 1.0), r"customer_id should be a string"),  # type: ignore[arg-type]
        (OrderPaid("o-\udc80", 1.0), "lone surrogate"),
        (OrderCreated("o-1", "c", 1.0, [LineItem("b")]), r"items should be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_an_in_memory_store_given_the_registry_refuses_what_the_sqlite_store_refuses(
    bad: object, problem: str
) -> None:
    store = InMemoryEventStore(order_registry())
    store.append("order-o-1", [CREATED], 0)
    with pytest.raises(UnwritableEventError, match=problem) as caught:
        store.append("order-o-1", [PAID, bad, OrderPaid("o-1", 1.0)], expected_version=1)
    assert str(caught.value).startswith("append to 'order-o-1' (event 2 of 3): cannot write")
    assert store.version("order-o-1") == 1 and len(store) == 1
    assert [stored.event for stored in store.read_all()] == [CREATED]


def test_an_in_memory_store_without_a_registry_keeps_any_object_and_refuses_a_wrong_registry() -> (
    None
):
    store = InMemoryEventStore()
    odd = OrderPaid("o-1", "42")  # type: ignore[arg-type]
    store.append("order-o-1", [odd], 0)
    assert store.read("order-o-1")[0].event is odd
    with pytest.raises(TypeError, match="registry is an EventRegistry"):
        InMemoryEventStore({"OrderPaid": OrderPaid})  # type: ignore[arg-type]


def test_after_a_refused_append_the_aggregate_and_every_projection_still_load(
    path: Path,
) -> None:
    """The bug this guards against: the store used to write such events, and from then on
    loading the order and catching up any projection raised CorruptEventError for ever."""
    with SQLiteEventStore(path, order_registry()) as store:
        store.append(Order.stream_for("o-1"), [CREATED], 0)
        for bad in (OrderPaid("o-1", "42"), OrderPaid(7, 1.0)):  # type: ignore[arg-type]
            with pytest.raises(UnwritableEventError):
                store.append(Order.stream_for("o-1"), [bad], 1)
        store.append(Order.stream_for("o-1"), [PAID], 1)
    with SQLiteEventStore(path, order_registry()) as store:
        order = Order.from_events(s.event for s in store.read(Order.stream_for("o-1")))
        assert order.status == "paid"
        for projection in (OrdersByStatus(), RevenuePerCustomer()):
            assert projection.catch_up(store) == 2


def test_a_stream_id_that_is_not_valid_text_is_refused_by_both_stores(
    store: EventStore,
) -> None:
    for call in (
        lambda: store.append("order-\ud800", [CREATED], 0),
        lambda: store.read("order-\ud800"),
        lambda: store.version("order-\ud800"),
    ):
        with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at index 6"):
            call()
    with pytest.raises(TypeError, match="a stream id is a non-empty string"):
        store.read(7)  # type: ignore[arg-type]
    assert store.last_position() == 0


def test_reads_far_beyond_the_end_give_nothing(store: EventStore) -> None:
    store.append("order-o-1", [CREATED, PAID], 0)
    for far in (2**63 - 1, 2**63, 2**80):
        assert store.read("order-o-1", from_version=far) == []
        assert list(store.read_all(far)) == []


def test_read_all_checks_its_argument_when_called_not_when_first_iterated(
    store: EventStore,
) -> None:
    with pytest.raises(TypeError, match="from_position is a whole number from 0"):
        store.read_all(-1)
    with pytest.raises(TypeError, match="from_position is a whole number from 0"):
        store.read_all("3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "problem"),
    [
        ({"page_size": 0}, ValueError, "page_size is how many rows to fetch at once, from 1"),
        ({"page_size": -5}, ValueError, "page_size"),
        ({"page_size": True}, ValueError, "page_size"),
        ({"page_size": "100"}, ValueError, "page_size"),
        ({"timeout": -1}, ValueError, "timeout is a number of seconds, 0 or more"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "30"}, ValueError, "timeout"),
        ({"read_only": "yes"}, TypeError, "read_only is True, False or None"),
        ({"synchronous": "EXTRA"}, ValueError, "synchronous is 'FULL', 'NORMAL' or 'OFF'"),
    ],
)
def test_bad_options_are_refused_before_the_file_is_touched(
    path: Path, options: dict[str, Any], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        SQLiteEventStore(path, order_registry(), **options)
    assert not path.exists()


def test_read_all_with_a_page_of_one_row_reads_everything(path: Path) -> None:
    with SQLiteEventStore(path, order_registry(), page_size=1) as store:
        store.append("order-o-1", [CREATED, PAID], 0)
        assert [s.event for s in store.read_all()] == [CREATED, PAID]


# ---------------------------------------------------------------------- read-only stores


def _store_file(path: Path, events: int = 2) -> Path:
    with SQLiteEventStore(path, order_registry()) as store:
        store.append("order-o-1", [CREATED, PAID][:events], 0)
    return path


def test_a_store_opened_read_only_reads_and_refuses_appends_before_changing_anything(
    path: Path,
) -> None:
    _store_file(path)
    with SQLiteEventStore(path, order_registry(), read_only=True) as store:
        assert store.read_only and [s.event for s in store.read("order-o-1")] == [CREATED, PAID]
        assert OrdersByStatus().catch_up(store) == 2
        assert repr(store) == f"SQLiteEventStore({str(path)!r}, 2 events in 1 stream, read-only)"
        with pytest.raises(ReadOnlyStoreError, match=r"it is read-only \(opened with read_only"):
            store.append("order-o-1", [OrderPaid("o-1", 1.0)], 2)
        with pytest.raises(ReadOnlyStoreError, match="Nothing was written"):
            store.append("order-o-2", [CREATED], 0)
    assert _rows_on_disk(path) == 2


def test_a_read_only_store_sees_what_a_writer_appends_meanwhile(path: Path) -> None:
    _store_file(path, events=1)
    with (
        SQLiteEventStore(path, order_registry()) as writer,
        SQLiteEventStore(path, order_registry(), read_only=True) as reader,
    ):
        projection = OrdersByStatus()
        assert projection.catch_up(reader) == 1
        writer.append("order-o-1", [PAID], 1)
        assert projection.catch_up(reader) == 1
        assert projection.status == {"o-1": "paid"}


def test_read_only_needs_an_existing_event_store(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="there is no such file to read"):
        SQLiteEventStore(tmp_path / "missing.db", order_registry(), read_only=True)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ValueError, match="an in-memory store starts empty"):
        SQLiteEventStore(":memory:", order_registry(), read_only=True)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE customers (id TEXT)")
    db.close()
    with pytest.raises(StoreOpenError, match="holds no events table: is it an event store"):
        SQLiteEventStore(other, order_registry(), read_only=True)
    garbage = _write(tmp_path / "notes.db", b"x" * 4096)
    with pytest.raises(StoreOpenError, match="the file is not an SQLite database"):
        SQLiteEventStore(garbage, order_registry(), read_only=True)


def _as_a_user_who_may_not_write(check: Callable[[], object]) -> tuple[str, Any]:
    """Run ``check`` in a forked child that really cannot write the files chmod protected.

    As root, permissions do not stop writes, so the child becomes the unprivileged user
    nobody first; the parent then only reads what the child reports."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            results.put(("ok", check()))
        except BaseException as error:  # reported, not raised: the parent asserts
            results.put(("error", f"{type(error).__name__}: {error}"))

    process = context.Process(target=child)
    process.start()
    status, value = results.get(timeout=60)
    process.join(timeout=60)
    return status, value


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the unprivileged child can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="store-ro-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        for root, folders, _ in os.walk(folder):
            for name in folders:
                os.chmod(os.path.join(root, name), 0o777)
        os.chmod(folder, 0o777)
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def _read_and_try_to_append(path: Path) -> object:
    with SQLiteEventStore(path, order_registry()) as store:
        events = [s.event for s in store.read("order-o-1")]
        try:
            store.append("order-o-1", [OrderPaid("o-1", 1.0)], len(events))
        except ReadOnlyStoreError as error:
            return store.read_only, events, str(error)
        return store.read_only, events, "appended!"


def test_a_store_file_this_process_may_not_write_is_opened_read_only(
    shared_folder: Path,
) -> None:
    path = _store_file(shared_folder / "events.db")
    path.chmod(0o444)
    status, (read_only, events, refusal) = _as_a_user_who_may_not_write(
        lambda: _read_and_try_to_append(path)
    )
    assert status == "ok" and read_only is True and events == [CREATED, PAID]
    assert "it is read-only (this process may not write the file)" in refusal
    assert _rows_on_disk(path) == 2


def test_a_store_in_a_folder_this_process_may_not_write_is_still_read(
    shared_folder: Path,
) -> None:
    path = _store_file(shared_folder / "events.db")  # WAL mode, closed: no -wal file left
    path.chmod(0o666)  # the file could be written; the folder, where SQLite works, not
    shared_folder.chmod(0o555)
    status, (read_only, events, refusal) = _as_a_user_who_may_not_write(
        lambda: _read_and_try_to_append(path)
    )
    assert status == "ok" and read_only is True and events == [CREATED, PAID]
    assert "the file or its folder cannot be written" in refusal
    assert "read as the file stands, since nobody can write in its folder" in refusal
    assert sorted(p.name for p in shared_folder.iterdir()) == ["events.db"]


def test_read_only_false_refuses_a_store_it_may_not_write(shared_folder: Path) -> None:
    path = _store_file(shared_folder / "events.db")
    path.chmod(0o444)
    status, message = _as_a_user_who_may_not_write(
        lambda: SQLiteEventStore(path, order_registry(), read_only=False)
    )
    assert status == "error"
    assert message.startswith("ReadOnlyStoreError: cannot write to the event store")
    assert "read_only=False, but this process may not write the file" in message


def test_a_new_store_in_a_folder_this_process_may_not_write_says_so(
    shared_folder: Path,
) -> None:
    shared_folder.chmod(0o555)
    status, message = _as_a_user_who_may_not_write(
        lambda: SQLiteEventStore(shared_folder / "new.db", order_registry())
    )
    assert status == "error" and message.startswith("StoreOpenError: cannot open the event")
    assert "cannot be created here; check that the folder exists" in message


# ---------------------------------------------------------------------- locks and bad paths


def test_a_store_locked_longer_than_the_timeout_says_so_and_writes_nothing(path: Path) -> None:
    _store_file(path, events=1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock and does not let go
    try:
        with SQLiteEventStore(path, order_registry(), timeout=0.2) as store:
            with pytest.raises(StoreLockedError, match=r"stayed locked .* for 0\.2 s while "):
                store.append("order-o-1", [PAID], 1)
            assert store.version("order-o-1") == 1  # reading is never blocked in WAL mode
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _rows_on_disk(path) == 1


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda folder: folder, "the path is a folder; give the name of a file in it"),
        (lambda folder: folder / "no" / "such" / "folder.db", "check that the folder exists"),
        (lambda folder: _write(folder / "notes.db", b"x" * 4096), "not an SQLite database"),
    ],
)
def test_a_path_that_is_no_store_gives_a_clear_error(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    with pytest.raises(StoreOpenError, match=problem):
        SQLiteEventStore(make(tmp_path), order_registry())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------- text that is not UTF-8


def _insert_raw(path: Path, stream_id: object, version: int, name: object, payload: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events (stream_id, version, event_type, schema_version, payload) "
            "VALUES (CAST(? AS TEXT), ?, CAST(? AS TEXT), 1, CAST(? AS TEXT))",
            (stream_id, version, name, payload),
        )
    db.close()


@pytest.mark.parametrize(
    ("stream_id", "name", "payload", "what"),
    [
        ("order-o-1", "OrderPaid", b'{"order_id": "o-\xff"}', "payload"),
        ("order-o-1", b"Order\xfePaid", b'{"order_id": "o-1"}', "event type"),
        (b"order-o-\xff", "OrderPaid", b'{"order_id": "o-1"}', "stream id"),
    ],
)
def test_text_that_is_not_utf8_is_a_corrupt_row_named_by_its_position(
    path: Path, stream_id: object, name: object, payload: object, what: str
) -> None:
    _store_file(path)
    _insert_raw(path, stream_id, 3, name, payload)
    with SQLiteEventStore(path, order_registry()) as store:
        store.append("order-o-2", [OrderCreated("o-2", "c-8", 1.0)], 0)
        with pytest.raises(CorruptEventError, match=f"the {what} is not UTF-8 text") as caught:
            list(store.read_all())
        assert (caught.value.version, caught.value.position) == (3, 3)
        read = store.read_all()
        assert [next(read).position, next(read).position] == [1, 2]  # the good ones first
        with pytest.raises(CorruptEventError):
            next(read)
        if what != "stream id":
            with pytest.raises(CorruptEventError, match=f"the {what} is not UTF-8 text"):
                store.read("order-o-1")
        assert [s.position for s in store.read_all(3)] == [4]  # past it, the rest reads


def test_a_log_that_cannot_be_read_in_a_folder_that_cannot_be_written_is_named(
    shared_folder: Path, tmp_path: Path
) -> None:
    with SQLiteEventStore(tmp_path / "events.db", order_registry()) as writer:
        writer.append("order-o-1", [CREATED, PAID], 0)
        # A copy taken while the writer is open: the events sit in the -wal file still.
        for suffix in ("", "-wal"):
            copied = shared_folder / f"events.db{suffix}"
            copied.write_bytes((tmp_path / f"events.db{suffix}").read_bytes())
            copied.chmod(0o644)
    assert (shared_folder / "events.db-wal").stat().st_size > 0
    shared_folder.chmod(0o555)
    status, message = _as_a_user_who_may_not_write(
        lambda: SQLiteEventStore(shared_folder / "events.db", order_registry())
    )
    assert status == "error" and message.startswith("StoreOpenError:")
    assert "its wal file holds changes not yet in the main file" in message


def test_a_store_read_as_the_file_stands_sees_what_was_appended_after_it_was_opened(
    shared_folder: Path,
) -> None:
    """SQLite's "immutable" reading trusts the file never to change; if somebody who may write
    (here root, whom permissions do not stop) appends after we opened, we must not answer
    from the stale copy."""
    path = _store_file(shared_folder / "events.db", events=1)
    path.chmod(0o666)
    shared_folder.chmod(0o555)
    context = multiprocessing.get_context("fork")
    opened, appended, results = context.Event(), context.Event(), context.Queue()

    def reader() -> None:
        os.setgid(65534)
        os.setuid(65534)
        with SQLiteEventStore(path, order_registry()) as store:
            before = [stored.event for stored in store.read("order-o-1")]
            opened.set()
            appended.wait(30)
            after = [stored.event for stored in store.read("order-o-1")]
            everything = [stored.event for stored in store.read_all()]
            results.put(
                (store.read_only_reason, before, after, everything, store.version("order-o-1"))
            )

    if os.geteuid() != 0:
        pytest.skip("needs root: the writer must write where the reader may not")
    process = context.Process(target=reader)
    process.start()
    assert opened.wait(30)
    with SQLiteEventStore(path, order_registry()) as writer:
        writer.append("order-o-1", [PAID], expected_version=1)
    appended.set()
    reason, before, after, everything, version = results.get(timeout=60)
    process.join(timeout=60)
    assert "read as the file stands" in reason
    assert before == [CREATED]
    assert after == everything == [CREATED, PAID] and version == 2
