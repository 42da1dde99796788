"""Event stores: streams with versions, optimistic concurrency, one global order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eda_lesson.patterns.serialization import EventRegistry, UnregisteredEventError
from eda_lesson.patterns.store import (
    ConcurrencyError,
    EventStore,
    InMemoryEventStore,
    SQLiteEventStore,
    StoredEvent,
)
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.order import order_registry

CREATED = OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),))
PAID = OrderPaid("o-1", 42.0)
SHIPPED = OrderShipped("o-1", "TRACK-0001")
OTHER = OrderCreated("o-2", "c-8", 5.0)


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    path = ":memory:" if request.param == "sqlite-memory" else tmp_path / "events.db"
    with SQLiteEventStore(path, order_registry()) as sqlite_store:
        yield sqlite_store


def test_append_returns_the_new_version_and_read_gives_the_events_in_order(
    store: EventStore,
) -> None:
    assert store.append("order-o-1", [CREATED], expected_version=0) == 1
    assert store.append("order-o-1", [PAID, SHIPPED], expected_version=1) == 3
    assert store.read("order-o-1") == [
        StoredEvent(1, "order-o-1", 1, CREATED),
        StoredEvent(2, "order-o-1", 2, PAID),
        StoredEvent(3, "order-o-1", 3, SHIPPED),
    ]
    assert store.version("order-o-1") == 3


def test_read_from_a_version_gives_the_events_after_it(store: EventStore) -> None:
    store.append("order-o-1", [CREATED, PAID, SHIPPED], expected_version=0)
    assert [s.event for s in store.read("order-o-1", from_version=1)] == [PAID, SHIPPED]
    assert store.read("order-o-1", from_version=3) == []
    assert store.read("no-such-stream") == []
    assert store.version("no-such-stream") == 0


def test_a_stale_expected_version_raises_and_writes_nothing(store: EventStore) -> None:
    store.append("order-o-1", [CREATED, PAID], expected_version=0)
    with pytest.raises(ConcurrencyError) as caught:
        store.append("order-o-1", [OrderCancelled("o-1")], expected_version=1)
    error = caught.value
    assert (error.stream_id, error.expected_version, error.actual_version) == ("order-o-1", 1, 2)
    assert "'order-o-1' is at version 2, but the append expected version 1" in str(error)
    assert "Nothing was written" in str(error)
    assert store.version("order-o-1") == 2
    assert store.last_position() == 2
    assert [s.event for s in store.read_all()] == [CREATED, PAID]


def test_a_new_stream_expects_version_zero(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError, match="at version 0, but the append expected version 4"):
        store.append("order-o-1", [CREATED], expected_version=4)
    assert store.stream_ids() == []


def test_read_all_follows_the_global_order_across_streams(store: EventStore) -> None:
    store.append("order-o-1", [CREATED], expected_version=0)
    store.append("order-o-2", [OTHER], expected_version=0)
    store.append("order-o-1", [PAID], expected_version=1)
    everything = list(store.read_all())
    assert [(s.position, s.stream_id, s.version) for s in everything] == [
        (1, "order-o-1", 1),
        (2, "order-o-2", 1),
        (3, "order-o-1", 2),
    ]
    assert [s.position for s in store.read_all(from_position=2)] == [3]
    assert store.last_position() == 3
    assert store.stream_ids() == ["order-o-1", "order-o-2"]


def test_an_empty_append_checks_the_version_and_writes_nothing(store: EventStore) -> None:
    assert store.append("order-o-1", [], expected_version=0) == 0
    assert store.stream_ids() == []
    with pytest.raises(ConcurrencyError):
        store.append("order-o-1", [], expected_version=1)


def test_append_explains_common_mistakes(store: EventStore) -> None:
    with pytest.raises(TypeError, match=r"wrap a single event: append\(stream_id, \[event\]"):
        store.append("order-o-1", CREATED, expected_version=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes event instances"):
        store.append("order-o-1", [OrderCreated], expected_version=0)
    with pytest.raises(TypeError, match="0 for a new stream"):
        store.append("order-o-1", [CREATED], expected_version=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty string"):
        store.append("", [CREATED], expected_version=0)
    assert store.last_position() == 0


def test_stores_satisfy_the_protocol(store: EventStore) -> None:
    assert isinstance(store, EventStore)
    assert StoredEvent(1, "s", 1, PAID).type_name == "OrderPaid"


def test_describe_lists_events_in_global_order(store: EventStore) -> None:
    store.append("order-o-1", [CREATED, PAID], expected_version=0)
    text = store.describe(limit=1)  # type: ignore[attr-defined]
    assert text.splitlines()[1].startswith("     1  order-o-1  v1  OrderCreated(order_id='o-1'")
    assert text.splitlines()[2] == "  ... (1 more)"


# ---------------------------------------------------------------------- SQLite specifics


def test_sqlite_store_keeps_events_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with SQLiteEventStore(path, order_registry()) as store:
        store.append("order-o-1", [CREATED, PAID], expected_version=0)
    with SQLiteEventStore(path, order_registry()) as store:
        assert [s.event for s in store.read("order-o-1")] == [CREATED, PAID]
        assert store.append("order-o-1", [SHIPPED], expected_version=2) == 3


def test_sqlite_store_writes_json_rows_that_can_be_read_by_eye(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "shop.db", order_registry()) as store:
        store.append("order-o-1", [PAID], expected_version=0)
        (row,) = store.rows()
    assert row == (1, "order-o-1", 1, "OrderPaid", 1, '{"order_id":"o-1","amount":42.0}')
    assert row.payload.startswith("{")


def test_sqlite_file_store_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "shop.db", order_registry()) as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_sqlite_schema_refuses_a_duplicate_version_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    SQLiteEventStore(path, order_registry()).append("s", [PAID], 0)
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute(
            "INSERT INTO events (stream_id, version, event_type, schema_version, payload) "
            "VALUES ('s', 1, 'OrderPaid', 1, '{}')"
        )


def test_an_event_that_cannot_be_written_leaves_the_batch_unwritten(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Unregistered:
        order_id: str

    with SQLiteEventStore(tmp_path / "shop.db", order_registry()) as store:
        with pytest.raises(UnregisteredEventError):
            store.append("order-o-1", [CREATED, Unregistered("o-1")], expected_version=0)
        assert store.version("order-o-1") == 0
        assert store.append("order-o-1", [CREATED], expected_version=0) == 1


def test_read_all_pages_through_a_large_store(tmp_path: Path) -> None:
    registry = EventRegistry.of(OrderPaid)
    with SQLiteEventStore(tmp_path / "shop.db", registry, page_size=3) as store:
        store.append("s", [OrderPaid(f"o-{i}") for i in range(10)], expected_version=0)
        assert [s.position for s in store.read_all()] == list(range(1, 11))
        assert [s.position for s in store.read_all(from_position=6)] == [7, 8, 9, 10]


def test_sqlite_store_needs_a_registry() -> None:
    with pytest.raises(TypeError, match=r"needs an EventRegistry.*EventRegistry.of"):
        SQLiteEventStore(":memory:", None)  # type: ignore[arg-type]


def test_store_reprs_are_short_and_stable(tmp_path: Path) -> None:
    memory = InMemoryEventStore()
    memory.append("order-o-1", [CREATED], 0)
    assert repr(memory) == "InMemoryEventStore(1 event in 1 stream)"
    sqlite_store = SQLiteEventStore(":memory:", order_registry())
    sqlite_store.append("order-o-1", [CREATED, PAID], 0)
    sqlite_store.append("order-o-2", [OTHER], 0)
    assert repr(sqlite_store) == "SQLiteEventStore(':memory:', 3 events in 2 streams)"
    assert len(sqlite_store) == 3
    sqlite_store.close()
    assert repr(sqlite_store) == "SQLiteEventStore(':memory:', closed)"


def test_a_refusal_from_a_trigger_is_passed_on_not_taken_for_a_version_conflict(
    tmp_path: Path,
) -> None:
    """Only the (stream, version) constraint means "someone else appended"."""
    import sqlite3

    from eda_lesson.patterns.serialization import EventRegistry
    from eda_lesson.shop.events import OrderCreated

    store = SQLiteEventStore(tmp_path / "s.db", EventRegistry.of(OrderCreated))
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute(
            "CREATE TRIGGER no_more BEFORE INSERT ON events BEGIN "
            "SELECT RAISE(ABORT, 'closed for the night'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="closed for the night"):
        store.append("order-o-1", [OrderCreated("o-1", "c-7", 1.0)], expected_version=0)
    assert store.version("order-o-1") == 0
