"""Durable projections: the read model and its checkpoint commit together, so a restart resumes
after the last committed event and a crash at any point neither skips nor repeats one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eda_lesson.patterns.checkpoints import SQLiteProjection
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.store import EventStore, InMemoryEventStore, StoredEvent
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid

pytestmark = pytest.mark.filterwarnings("error")


class CrashError(Exception):
    """The process dying, as far as the database can tell."""


class Revenue(SQLiteProjection):
    """Payments per customer, in a table."""

    effects: list[str]

    def create_tables(self) -> None:
        self.effects = []
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS customer_of (order_id TEXT PRIMARY KEY, c TEXT)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS revenue (customer TEXT PRIMARY KEY, amount REAL)"
        )

    @applies(OrderCreated)
    def _created(self, event: OrderCreated) -> None:
        self.db.execute(
            "INSERT INTO customer_of VALUES (?, ?)", (event.order_id, event.customer_id)
        )
        self.db.execute("INSERT OR IGNORE INTO revenue VALUES (?, 0)", (event.customer_id,))

    @applies(OrderPaid)
    def _paid(self, event: OrderPaid) -> None:
        self.effects.append(f"receipt for {event.order_id}")  # outside the transaction
        self.db.execute(
            "UPDATE revenue SET amount = amount + ? "
            "WHERE customer = (SELECT c FROM customer_of WHERE order_id = ?)",
            (event.amount, event.order_id),
        )

    def revenue(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT customer, amount FROM revenue ORDER BY customer"))


class CrashBeforeSaving(Revenue):
    """Dies after applying the batch's events, before the checkpoint is written."""

    def save_position(self, position: int) -> None:
        raise CrashError(f"died before saving position {position}")


def shop(store: EventStore) -> EventStore:
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 10.0), OrderPaid("o-1", 10.0)], 0)
    store.append("order-o-2", [OrderCreated("o-2", "c-8", 5.0)], 0)
    store.append("order-o-3", [OrderCreated("o-3", "c-7", 7.0), OrderPaid("o-3", 7.0)], 0)
    store.append("order-o-2", [OrderPaid("o-2", 5.0), OrderCancelled("o-2", "oops")], 1)
    return store


WANTED = {"c-7": 17.0, "c-8": 5.0}


def test_a_restarted_projection_resumes_after_its_saved_position(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 10.0), OrderPaid("o-1", 10.0)], 0)
    with Revenue(tmp_path / "read.db") as first:
        assert first.catch_up(store) == 2
    shop_rest = [OrderCreated("o-2", "c-8", 5.0), OrderPaid("o-2", 5.0)]
    store.append("order-o-2", shop_rest, 0)
    with Revenue(tmp_path / "read.db") as restarted:
        assert restarted.position == 2
        assert restarted.catch_up(store) == 2  # only what is new
        assert restarted.revenue() == {"c-7": 10.0, "c-8": 5.0}
        assert repr(restarted) == "Revenue(at position 4)"


def test_a_crash_between_applying_and_saving_rolls_the_changes_back(tmp_path: Path) -> None:
    store = shop(InMemoryEventStore())
    with (
        CrashBeforeSaving(tmp_path / "read.db", name="Revenue") as dying,
        pytest.raises(CrashError),
    ):
        dying.catch_up(store)
    with Revenue(tmp_path / "read.db") as restarted:
        assert (restarted.position, restarted.revenue()) == (0, {})  # nothing half-done
        restarted.catch_up(store)
        assert restarted.revenue() == WANTED  # each payment counted once


class DiesReading(InMemoryEventStore):
    """A store whose reader dies just before handing over the event at ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def read_all(self, from_position: int = 0) -> Iterator[StoredEvent]:
        for stored in super().read_all(from_position):
            if stored.position == self.at:
                raise CrashError(f"died reading position {self.at}")
            yield stored


@pytest.mark.parametrize("crash_at", range(1, 8))
def test_a_crash_while_reading_any_event_neither_skips_nor_repeats_one(
    tmp_path: Path, crash_at: int
) -> None:
    store = shop(DiesReading(crash_at))
    with Revenue(tmp_path / "read.db", batch_size=2) as dying, pytest.raises(CrashError):
        dying.catch_up(store)
    store.at = 0  # the restarted process reads fine
    with Revenue(tmp_path / "read.db", batch_size=2) as restarted:
        assert restarted.position == ((crash_at - 1) // 2) * 2  # the whole batches before it
        restarted.catch_up(store)
        assert (restarted.position, restarted.revenue()) == (7, WANTED)


@pytest.mark.parametrize("order_id", ["o-1", "o-3", "o-2"])
def test_a_crash_while_applying_a_payment_neither_skips_nor_repeats_one(
    tmp_path: Path, order_id: str
) -> None:
    class DiesApplying(Revenue):
        @applies(OrderPaid)
        def _paid(self, event: OrderPaid) -> None:
            super()._paid(event)  # the table is already changed when the process dies
            if event.order_id == order_id:
                raise CrashError(f"died applying the payment of {order_id}")

    store = shop(InMemoryEventStore())
    path = tmp_path / "read.db"
    with DiesApplying(path, name="Revenue", batch_size=2) as dying, pytest.raises(CrashError):
        dying.catch_up(store)
    with Revenue(path, batch_size=2) as restarted:
        restarted.catch_up(store)
        assert (restarted.position, restarted.revenue()) == (7, WANTED)


def test_an_error_in_a_method_rolls_back_its_whole_batch(tmp_path: Path) -> None:
    class Fussy(Revenue):
        @applies(OrderCancelled)
        def _cancelled(self, event: OrderCancelled) -> None:
            self.db.execute("DELETE FROM revenue")
            raise ValueError("cannot handle a cancellation")

    store = shop(InMemoryEventStore())
    with Fussy(tmp_path / "read.db", batch_size=3) as fussy:
        with pytest.raises(ValueError, match="cannot handle"):
            fussy.catch_up(store)
        assert fussy.position == 6  # two batches committed; the third, with the error, not
        assert fussy.revenue() == WANTED  # the DELETE went with the rolled-back batch


def test_effects_outside_the_database_are_repeated_after_a_crash(tmp_path: Path) -> None:
    """The limit of the guarantee: only what is in the transaction is rolled back."""
    store = shop(InMemoryEventStore())
    dying = CrashBeforeSaving(tmp_path / "read.db", name="Revenue")
    with pytest.raises(CrashError):
        dying.catch_up(store)
    restarted = Revenue(tmp_path / "read.db")
    restarted.catch_up(store)
    receipts = dying.effects + restarted.effects
    assert receipts.count("receipt for o-1") == 2
    assert restarted.revenue() == WANTED


def test_two_projections_keep_their_own_checkpoints_in_one_file(tmp_path: Path) -> None:
    store = shop(InMemoryEventStore())
    with Revenue(tmp_path / "read.db", name="early", batch_size=1) as early:
        early.catch_up(store)
    with Revenue(tmp_path / "read.db", name="late") as late:
        assert late.position == 0
    with Revenue(tmp_path / "read.db", name="early") as again:
        assert again.position == 7


def test_a_batch_size_must_be_a_positive_whole_number() -> None:
    with pytest.raises(ValueError, match="batch_size is a whole number of events from 1"):
        Revenue(":memory:", batch_size=0)


def test_a_closed_projection_says_so() -> None:
    projection = Revenue(":memory:")
    projection.close()
    assert repr(projection) == "Revenue(closed)"
