"""Aggregate snapshots: a cache of an aggregate's state that loads to the same state from fewer
events, ignored when the class changed, refused when it is ahead of its stream."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eda_lesson.patterns.snapshots import (
    Snapshot,
    SnapshotAheadError,
    SnapshotStore,
    due,
    load,
    restore,
    take_snapshot,
)
from eda_lesson.patterns.store import EventStore, InMemoryEventStore
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.order import Order

pytestmark = pytest.mark.filterwarnings("error")


def saved(store: EventStore, order: Order) -> Order:
    store.append(order.stream_id, order.pending, order.saved_version)
    order.collect_pending()
    return order


def shipped_order(store: EventStore, snapshots: SnapshotStore | None = None) -> Order:
    order = saved(store, Order.create("o-1", "c-7", 42.0, [LineItem("book", 2)]))
    order.pay()
    saved(store, order)
    if snapshots is not None:
        snapshots.save(order)
    order.ship("T-1")
    return saved(store, order)


def replayed(store: EventStore, order_id: str) -> Order:
    return Order.from_events(s.event for s in store.read(Order.stream_for(order_id)))


def test_loading_from_a_snapshot_gives_the_same_state_as_replaying_every_event() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    shipped_order(store, snapshots)
    loaded = load(store, Order, "o-1", snapshots)
    assert loaded.aggregate == replayed(store, "o-1")
    assert loaded.aggregate.state() == replayed(store, "o-1").state()
    assert (loaded.snapshot_version, loaded.events_read) == (2, 1)


def test_without_a_snapshot_every_event_is_read() -> None:
    store = InMemoryEventStore()
    shipped_order(store)
    loaded = load(store, Order, "o-1", SnapshotStore())
    assert loaded.aggregate == replayed(store, "o-1")
    assert (loaded.snapshot_version, loaded.events_read, loaded.note) == (0, 3, "")


def test_a_loaded_aggregate_can_be_changed_and_saved_at_the_right_version() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    order = saved(store, Order.create("o-2", "c-7", 5.0))
    snapshots.save(order)
    loaded = load(store, Order, "o-2", snapshots).aggregate
    assert (loaded.version, loaded.saved_version, loaded.pending) == (1, 1, [])
    loaded.cancel("changed my mind")
    assert store.append(loaded.stream_id, loaded.pending, loaded.saved_version) == 2


def test_a_snapshot_and_the_aggregate_restored_from_it_share_no_mutable_state() -> None:
    store = InMemoryEventStore()
    order = shipped_order(store)
    snapshot = take_snapshot(order)
    first = restore(snapshot, Order)
    first.status = "tampered"
    assert restore(snapshot, Order).status == "shipped"
    order.status = "tampered too"
    assert restore(snapshot, Order).status == "shipped"


def test_a_snapshot_of_a_newer_class_version_is_ignored_and_every_event_replayed() -> None:
    class OrderV2(Order):
        stream_prefix = "order"
        snapshot_version = 2

    store, snapshots = InMemoryEventStore(), SnapshotStore()
    shipped_order(store)
    order = OrderV2.from_events(s.event for s in store.read("order-o-1"))
    snapshots.save(order)  # written by the newer class
    loaded = load(store, Order, "o-1", snapshots)  # the older class loads it: a rollback
    assert loaded.snapshot_version == 0 and loaded.events_read == 3
    assert loaded.note == "snapshot of OrderV2 v2 ignored (the class is Order v1)"
    assert loaded.aggregate == replayed(store, "o-1")


def test_a_snapshot_of_the_same_name_but_an_older_shape_is_ignored_too() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    shipped_order(store, snapshots)  # a snapshot at version 2, written by Order v1
    kept = snapshots.latest("order-o-1")
    assert kept is not None
    snapshots.put(replace(kept, class_version=0, version=3))  # as an older release wrote it
    loaded = load(store, Order, "o-1", snapshots)
    assert (loaded.snapshot_version, loaded.events_read) == (0, 3)
    assert loaded.note == "snapshot of Order v0 ignored (the class is Order v1)"


def test_restoring_a_snapshot_of_another_class_version_is_refused_with_the_reason() -> None:
    class OrderV3(Order):
        stream_prefix = "order"
        snapshot_version = 3

    store = InMemoryEventStore()
    snapshot = replace(take_snapshot(shipped_order(store)), aggregate_type="OrderV3")
    with pytest.raises(ValueError, match=r"written by OrderV3 v1, and the class is now v3"):
        restore(snapshot, OrderV3)
    with pytest.raises(ValueError, match="is of a Cart, not a OrderV3"):
        restore(Snapshot("cart-1", 3, "Cart", 3, {}), OrderV3)


def test_a_snapshot_beyond_the_streams_version_is_refused() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    other_history = shipped_order(InMemoryEventStore())  # version 3, somewhere else
    snapshots.save(other_history)
    saved(store, Order.create("o-1", "c-7", 42.0))  # this store's o-1 has one event
    with pytest.raises(SnapshotAheadError, match=r"version 3, but the stream holds only 1 event"):
        load(store, Order, "o-1", snapshots)
    snapshots.forget("order-o-1")
    assert load(store, Order, "o-1", snapshots).events_read == 1


def test_a_snapshot_is_taken_only_of_what_the_store_holds() -> None:
    order = Order.create("o-1", "c-7", 42.0)
    with pytest.raises(ValueError, match=r"1 unsaved event; .* commit first"):
        take_snapshot(order)
    with pytest.raises(ValueError, match="a blank aggregate has nothing to snapshot"):
        take_snapshot(Order())
    with pytest.raises(TypeError, match="takes an event-sourced Aggregate"):
        take_snapshot("order")  # type: ignore[arg-type]


def test_the_store_keeps_the_newest_snapshot_of_each_stream() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    order = shipped_order(store)
    newest = snapshots.save(order)
    older = take_snapshot(Order.from_events(s.event for s in store.read("order-o-1")[:2]))
    snapshots.put(older)
    assert snapshots.latest("order-o-1") is newest
    assert repr(snapshots) == "SnapshotStore(1 snapshot)"
    assert repr(newest) == "Snapshot('order-o-1' at version 3, Order v1)"


def test_a_snapshot_is_due_every_so_many_events() -> None:
    store, snapshots = InMemoryEventStore(), SnapshotStore()
    order = shipped_order(store)
    assert due(order, snapshots, every=3) and not due(order, snapshots, every=4)
    snapshots.save(order)
    assert not due(order, snapshots, every=1)
    with pytest.raises(ValueError, match="every is a whole number"):
        due(order, snapshots, every=0)


def test_loading_an_empty_stream_says_there_is_nothing_to_load() -> None:
    with pytest.raises(LookupError, match="'order-o-9' is empty"):
        load(InMemoryEventStore(), Order, "o-9", SnapshotStore())
