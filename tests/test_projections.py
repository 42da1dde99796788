"""Projections: read models that catch up from a position and rebuild to the same result."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.store import (
    CorruptEventError,
    EventStore,
    InMemoryEventStore,
    SQLiteEventStore,
    StoredEvent,
)
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.read_models import OrdersByStatus, RevenuePerCustomer


def shop_history(store: EventStore) -> None:
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 10.0), OrderPaid("o-1", 10.0)], 0)
    store.append("order-o-2", [OrderCreated("o-2", "c-8", 5.0)], 0)
    store.append("order-o-3", [OrderCreated("o-3", "c-7", 7.0), OrderPaid("o-3", 7.0)], 0)
    store.append("order-o-3", [OrderCancelled("o-3", "changed my mind")], 2)
    store.append("order-o-1", [OrderShipped("o-1", "T-1")], 2)


def test_orders_by_status_follows_each_order() -> None:
    store = InMemoryEventStore()
    shop_history(store)
    projection = OrdersByStatus()
    assert projection.catch_up(store) == 7
    assert projection.by_status() == {
        "created": ["o-2"],
        "paid": [],
        "shipped": ["o-1"],
        "cancelled": ["o-3"],
    }
    assert repr(projection) == "OrdersByStatus(at position 7: created 1, shipped 1, cancelled 1)"


def test_revenue_per_customer_takes_refunds_off() -> None:
    store = InMemoryEventStore()
    shop_history(store)
    projection = RevenuePerCustomer()
    projection.catch_up(store)
    assert projection.revenue == {"c-7": 10.0, "c-8": 0.0}
    assert repr(projection) == "RevenuePerCustomer(at position 7: c-7=10, c-8=0)"


def test_catch_up_reads_only_what_is_new() -> None:
    store = InMemoryEventStore()
    projection = OrdersByStatus()
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 10.0)], 0)
    assert projection.catch_up(store) == 1
    assert projection.catch_up(store) == 0
    store.append("order-o-1", [OrderPaid("o-1", 10.0)], 1)
    assert projection.catch_up(store) == 1
    assert (projection.position, projection.status) == (2, {"o-1": "paid"})


def test_an_event_seen_twice_is_applied_once() -> None:
    projection = RevenuePerCustomer()
    created = StoredEvent(1, "order-o-1", 1, OrderCreated("o-1", "c-7", 10.0))
    paid = StoredEvent(2, "order-o-1", 2, OrderPaid("o-1", 10.0))
    for stored in (created, paid, paid, created):
        projection.project(stored)
    assert projection.revenue == {"c-7": 10.0}


def test_rebuild_starts_from_zero_and_gives_the_same_read_model(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "shop.db", order_registry())
    shop_history(store)
    projection = OrdersByStatus()
    projection.catch_up(store)
    projection.status["o-1"] = "lost"  # a read model gone wrong, or whose code changed
    assert projection.rebuild(store) == 7
    assert projection.snapshot() == {"o-1": "shipped", "o-2": "created", "o-3": "cancelled"}


def test_a_projection_of_its_own_needs_only_reset_and_when() -> None:
    class PaidCount(Projection):
        def reset(self) -> None:
            super().reset()
            self.count = 0

        @applies(OrderPaid, OrderCancelled)
        def _paid(self, event: OrderPaid | OrderCancelled) -> None:
            self.count += 1

    store = InMemoryEventStore()
    shop_history(store)
    projection = PaidCount()
    projection.catch_up(store)
    assert projection.count == 3
    with pytest.raises(NotImplementedError, match="PaidCount does not define snapshot"):
        projection.snapshot()


# ---------------------------------------------------------------------- the property

steps = st.lists(
    st.tuples(
        st.sampled_from(["create", "pay", "cancel", "ship", "catch up"]),
        st.integers(0, 3),  # which order
        st.sampled_from(["c-1", "c-2"]),
    ),
    max_size=25,
)


def _run(store: EventStore, plan: list[tuple[str, int, str]]) -> tuple[object, object]:
    """Apply the plan through Order aggregates, catching the live projections up at each
    'catch up' step; return their read models."""
    live = (OrdersByStatus(), RevenuePerCustomer())
    for action, number, customer in plan:
        if action == "catch up":
            for projection in live:
                projection.catch_up(store)
            continue
        order_id = f"o-{number}"
        events = [s.event for s in store.read(Order.stream_for(order_id))]
        if action == "create":
            if events:
                continue
            order = Order.create(order_id, customer, float(number + 1))
        else:
            if not events:
                continue
            order = Order.from_events(events)
            try:
                {"pay": order.pay, "cancel": order.cancel, "ship": order.ship}[action]()
            except DomainError:
                continue
        store.append(order.stream_id, order.pending, order.saved_version)
    for projection in live:
        projection.catch_up(store)
    return live[0].snapshot(), live[1].snapshot()


@settings(max_examples=80, deadline=None)
@given(steps)
def test_rebuilding_from_zero_equals_live_updating(plan: list[tuple[str, int, str]]) -> None:
    for store in (InMemoryEventStore(), SQLiteEventStore(":memory:", order_registry())):
        live = _run(store, plan)
        rebuilt = (OrdersByStatus(), RevenuePerCustomer())
        for projection in rebuilt:
            projection.rebuild(store)
        assert (rebuilt[0].snapshot(), rebuilt[1].snapshot()) == live


def test_a_projection_method_for_a_base_class_hears_its_subclasses_nearest_first() -> None:
    """The bus's rule: walk the event class's MRO; a projection takes the first method found."""
    from dataclasses import dataclass

    from eda_lesson.patterns.event_methods import applies
    from eda_lesson.patterns.projections import Projection
    from eda_lesson.patterns.store import InMemoryEventStore

    @dataclass(frozen=True)
    class Happened:
        order_id: str

    @dataclass(frozen=True)
    class Paid(Happened):
        pass

    @dataclass(frozen=True)
    class Refunded(Paid):
        pass

    class Seen(Projection):
        def reset(self) -> None:
            super().reset()
            self.lines: list[str] = []

        @applies(Happened)
        def anything(self, event: Happened) -> None:
            self.lines.append(f"happened {type(event).__name__}")

        @applies(Paid)
        def paid(self, event: Paid) -> None:
            self.lines.append(f"paid {type(event).__name__}")

    store = InMemoryEventStore()
    store.append("o-1", [Happened("o-1"), Paid("o-1"), Refunded("o-1")], 0)
    seen = Seen()
    seen.catch_up(store)
    assert seen.lines == ["happened Happened", "paid Paid", "paid Refunded"]


def test_an_aggregate_applies_by_the_same_rule_nearest_base_first() -> None:
    from dataclasses import dataclass

    from eda_lesson.patterns.aggregate import Aggregate
    from eda_lesson.patterns.event_methods import applies

    @dataclass(frozen=True)
    class Changed:
        n: int

    @dataclass(frozen=True)
    class Grown(Changed):
        pass

    @dataclass(frozen=True)
    class GrownTwice(Grown):
        pass

    class Counter(Aggregate):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[str] = []

        @applies(Changed)
        def _changed(self, event: Changed) -> None:
            self.log.append("changed")

        @applies(Grown)
        def _grown(self, event: Grown) -> None:
            self.log.append("grown")

    counter = Counter.from_events([Changed(1), Grown(2), GrownTwice(3)])
    assert counter.log == ["changed", "grown", "grown"]


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_catch_up_stops_exactly_at_a_corrupt_event_whatever_the_page_size(
    tmp_path: Path, page_size: int
) -> None:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path, order_registry()) as store:
        shop_history(store)  # positions 1 to 7
        store._db.execute("UPDATE events SET payload = 'not json' WHERE position = 5")
    with SQLiteEventStore(path, order_registry(), page_size=page_size) as store:
        projection = OrdersByStatus()
        with pytest.raises(CorruptEventError, match=r"position 5\): .*not valid JSON") as caught:
            projection.catch_up(store)
        assert projection.position == 4 and caught.value.position == 5
        assert projection.status == {"o-1": "paid", "o-2": "created", "o-3": "created"}
        rebuilt = OrdersByStatus()
        with pytest.raises(CorruptEventError):
            rebuilt.rebuild(store)
        assert rebuilt.snapshot() == projection.snapshot()  # the same stop, from scratch
