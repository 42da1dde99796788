"""The unit of work saves first and publishes after; the deliberately wrong one shows why."""

from __future__ import annotations

from pathlib import Path

import pytest

from eda_lesson import EventBus
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.store import (
    ConcurrencyError,
    EventStore,
    InMemoryEventStore,
    SQLiteEventStore,
)
from eda_lesson.patterns.unit_of_work import (
    AggregateNotFoundError,
    PublishBeforeCommitUnitOfWork,
    UnitOfWork,
)
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.order import Order, order_registry


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EventStore:
    if request.param == "memory":
        return InMemoryEventStore()
    return SQLiteEventStore(tmp_path / "shop.db", order_registry())


def place(store: EventStore, bus: EventBus, order_id: str = "o-1") -> None:
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).add(Order.create(order_id, "c-7", 42.0))
        uow.commit()


def test_commit_saves_the_events_before_any_handler_sees_them(store: EventStore) -> None:
    bus, seen_in_store = EventBus(), []

    @bus.subscribe
    def look_at_the_store(event: OrderCreated) -> None:
        seen_in_store.append([s.event for s in store.read("order-o-1")])

    place(store, bus)
    assert seen_in_store == [[OrderCreated("o-1", "c-7", 42.0)]]


def test_commit_returns_the_dispatch_results_of_the_published_events(store: EventStore) -> None:
    bus = EventBus()
    receipts: list[str] = []
    bus.register(OrderPaid, lambda event: receipts.append(event.order_id))
    place(store, bus)
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get("o-1").pay()
        (result,) = uow.commit()
    assert result.event == OrderPaid("o-1", 42.0) and result.ok
    assert uow.published == [OrderPaid("o-1", 42.0)]
    assert receipts == ["o-1"]
    assert store.version("order-o-1") == 2


def test_a_conflicting_commit_publishes_nothing(store: EventStore) -> None:
    bus, receipts = EventBus(), []
    bus.register(OrderPaid, lambda event: receipts.append(event.order_id))
    place(store, bus)
    with UnitOfWork(store, bus) as first, UnitOfWork(store, bus) as second:
        first.repository(Order).get("o-1").cancel("out of stock")
        second.repository(Order).get("o-1").pay()
        first.commit()
        with pytest.raises(ConcurrencyError, match="'order-o-1' is at version 2"):
            second.commit()
    assert receipts == []
    assert second.published == []
    assert [step.action for step in second.steps] == ["load", "conflict", "discard"]
    assert Order.from_events(s.event for s in store.read("order-o-1")).status == "cancelled"


def test_publishing_before_commit_tells_the_world_about_a_payment_that_never_happened(
    store: EventStore,
) -> None:
    bus, receipts = EventBus(), []
    bus.register(OrderPaid, lambda event: receipts.append(f"receipt for {event.order_id}"))
    place(store, bus)
    with UnitOfWork(store, bus) as first, PublishBeforeCommitUnitOfWork(store, bus) as second:
        first.repository(Order).get("o-1").cancel("out of stock")
        second.repository(Order).get("o-1").pay()
        first.commit()
        with pytest.raises(ConcurrencyError):
            second.commit()
    # The bug: the customer got a receipt, but the store says the order was cancelled.
    assert receipts == ["receipt for o-1"]
    assert [type(s.event).__name__ for s in store.read("order-o-1")] == [
        "OrderCreated",
        "OrderCancelled",
    ]
    assert [step.action for step in second.steps] == ["load", "publish", "conflict", "discard"]


def test_leaving_without_commit_discards_the_recorded_events(store: EventStore) -> None:
    bus, heard = EventBus(), []
    bus.register(OrderCreated, heard.append)
    with UnitOfWork(store, bus) as uow:
        order = Order.create("o-1", "c-7", 42.0)
        uow.repository(Order).add(order)
    assert uow.status == "discarded"
    assert order.pending == []
    assert store.stream_ids() == [] and heard == []
    assert str(uow.steps[-1]) == "discard: OrderCreated of order-o-1 (not committed)"


def test_a_commit_after_the_block_discarded_the_changes_is_refused(store: EventStore) -> None:
    from eda_lesson.patterns.state_unit_of_work import BlockEndedError

    bus, heard = EventBus(), list[object]()
    bus.register(OrderCreated, heard.append)
    with UnitOfWork(store, bus) as uow:
        order = Order.create("o-1", "c-7", 42.0)
        uow.repository(Order).add(order)
    with pytest.raises(BlockEndedError, match="Nothing was saved"):
        uow.commit()  # before the fix: "committed", with nothing saved and nothing said
    assert uow.status == "discarded" and store.stream_ids() == [] and heard == []


def test_an_error_in_the_block_saves_nothing(store: EventStore) -> None:
    place(store, EventBus())
    with pytest.raises(DomainError), UnitOfWork(store, EventBus()) as uow:
        order = uow.repository(Order).get("o-1")
        order.cancel()
        order.ship()  # refused: the whole unit of work is abandoned
    assert store.version("order-o-1") == 1


def test_one_unit_of_work_changes_one_aggregate(store: EventStore) -> None:
    bus = EventBus()
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 1.0))
        uow.repository(Order).add(Order.create("o-2", "c-7", 1.0))
        with pytest.raises(DomainError, match=r"2 changed \(order-o-1, order-o-2\)"):
            uow.commit()
    assert store.stream_ids() == []


def test_getting_a_missing_order_says_how_to_create_it(store: EventStore) -> None:
    with pytest.raises(AggregateNotFoundError, match=r"no Order 'o-9'.*Order.create"):
        UnitOfWork(store, EventBus()).repository(Order).get("o-9")


def test_the_steps_tell_the_story_of_a_command(store: EventStore) -> None:
    place(store, EventBus())
    with UnitOfWork(store, EventBus()) as uow:
        uow.repository(Order).get("o-1").pay()
        uow.commit()
    assert uow.describe() == (
        "UnitOfWork(committed, 3 steps)\n"
        "  1. load: order-o-1 at version 1\n"
        "  2. save: OrderPaid to order-o-1, version 1 -> 2\n"
        "  3. publish: OrderPaid"
    )
    assert repr(uow.repository(Order)) == "Repository(Order, 1 in use)"


def test_a_commit_with_nothing_changed_publishes_nothing(store: EventStore) -> None:
    place(store, EventBus())
    with UnitOfWork(store, EventBus()) as uow:
        uow.repository(Order).get("o-1")
        assert uow.commit() == []
    assert repr(uow) == "UnitOfWork(committed, 1 step)"


def test_getting_an_order_twice_gives_the_same_object(store: EventStore) -> None:
    place(store, EventBus())
    with UnitOfWork(store, EventBus()) as uow:
        first = uow.repository(Order).get("o-1")
        first.pay()
        second = uow.repository(Order).get("o-1")
        assert second is first
        second.ship()
        uow.commit()
    assert store.version("order-o-1") == 3


class _Interrupted(BaseException):
    """Something no handler error record catches: the process being told to stop."""


def test_a_publish_that_fails_after_the_save_leaves_the_status_saved_not_discarded() -> None:
    """The store holds the events, so the unit of work must not say it threw them away."""
    store, bus = InMemoryEventStore(), EventBus()

    def stop(event: object) -> None:
        raise _Interrupted

    bus.register(OrderCreated, stop)
    with pytest.raises(_Interrupted), UnitOfWork(store, bus) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        uow.commit()
    assert [stored.type_name for stored in store.read("order-o-1")] == ["OrderCreated"]
    assert uow.status == "saved" and uow.published == []
    assert str(uow.steps[-1]) == "unpublished: 1 saved event not published"
    assert repr(uow) == "UnitOfWork(saved, 3 steps)"
