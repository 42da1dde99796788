"""The broker's pictures, drawn from real runs: units of work that crashed between their
writes, an outbox in a SQLite file with a relay, and deliveries of a consumer group on a real
redis-server (a dead consumer's pending entries, reclaims, retries, dead letters, duplicates)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.outbox import (
    BusPublisher,
    DualWriteUnitOfWork,
    Outbox,
    OutboxUnitOfWork,
    Relay,
    SimulatedCrash,
    simulate_crash,
)
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import OrderCancelled, OrderCreated
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import Delivery, StreamConsumer, StreamPublisher, connect
from eda_lesson.views.broker import (
    DeliveryExplorer,
    draw_deliveries,
    draw_dual_write,
    draw_outbox,
    pending_deliveries,
)
from eda_lesson.views.sheet import figure_to_png

REGISTRY = EventRegistry.of(OrderCreated, OrderCancelled)


@pytest.fixture(autouse=True)
def no_warnings() -> Iterator[None]:
    """Drawing warns about nothing (matplotlib's layout and deprecation warnings fail)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", DeprecationWarning)
        yield


def texts(figure: object) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- dual write


def _crashed(uow: UnitOfWork) -> UnitOfWork:
    with uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 12.0))
        with pytest.raises(SimulatedCrash):
            uow.commit()
    return uow


def test_dual_write_picture_names_what_each_crash_lost(tmp_path: Path) -> None:
    def store(name: str) -> SQLiteEventStore:
        return SQLiteEventStore(tmp_path / name, order_registry())

    outbox_store = store("outbox.db")
    runs = {
        "save first": _crashed(
            DualWriteUnitOfWork(store("a.db"), EventBus(), between=simulate_crash)
        ),
        "publish first": _crashed(
            DualWriteUnitOfWork(
                store("b.db"), EventBus(), publish_first=True, between=simulate_crash
            )
        ),
        "outbox": _crashed(
            OutboxUnitOfWork(outbox_store, Outbox(outbox_store), after_save=simulate_crash)
        ),
    }
    figure = draw_dual_write(runs)
    words = texts(figure)
    assert repr(figure) == "<picture: 3 commits: 2 left the store and the world disagreeing>"
    assert "state saved,\nevent lost" in words
    assert "event published,\nstate lost" in words
    assert "saved with its message:\nnothing lost" in words
    assert "publish\nto the bus\n(never)" in words and "save\nto the store\n(never)" in words
    assert figure_to_png(figure).startswith(b"\x89PNG")


def test_dual_write_picture_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        draw_dual_write({})


# ---------------------------------------------------------------------- the outbox


def test_outbox_picture_shows_sent_and_waiting_rows_and_where_the_relay_reads(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(tmp_path / "shop.db", order_registry())
    outbox = Outbox(store, id_prefix="evt-")
    for number in range(1, 5):
        with OutboxUnitOfWork(store, outbox) as uow:
            uow.repository(Order).add(Order.create(f"o-{number}", "c-7", 12.0))
            uow.commit()
    bus = EventBus()
    Shop().register(bus)
    relay = Relay(outbox, BusPublisher(bus, order_registry()), batch_size=3)
    relay.publish_batch()
    figure = draw_outbox(outbox, relay=relay, limit=3)
    words = texts(figure)
    assert repr(figure) == "<picture: outbox: 3 sent, 1 waiting>"
    assert "BusPublisher\n3 messages published" in words
    assert "... 1 more" in words and "relay" in words
    assert any("evt-3" in word and "order-o-3" in word for word in words)


def test_an_empty_outbox_draws_as_empty(tmp_path: Path) -> None:
    outbox = Outbox(SQLiteEventStore(tmp_path / "shop.db", order_registry()))
    figure = draw_outbox(outbox)
    assert "empty: nothing written yet" in texts(figure)
    assert "relay" not in texts(figure)


# ---------------------------------------------------------------------- deliveries


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as started:
        yield started


def _consumer(client: redis.Redis, name: str, **options: object) -> StreamConsumer:
    bus = EventBus()
    Shop(stock={"book": 10}).register(bus)

    def refuse(event: OrderCancelled) -> None:
        raise RuntimeError(f"cannot cancel {event.order_id}")

    bus.register(OrderCancelled, refuse)
    return StreamConsumer(
        client, bus, REGISTRY, stream="orders", group="shop", consumer=name, block_ms=None,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def _a_group_with_a_dead_consumer(client: redis.Redis) -> tuple[list[Delivery], list[Delivery]]:
    """gone reads three entries and dies; live reclaims them, retries a poison entry until
    it is dead-lettered, and skips a re-sent copy. Returns (held by gone, live's log)."""
    publisher = StreamPublisher(client, "orders", registry=REGISTRY)
    for number in (1, 2, 3):
        publisher.send(OrderCreated(f"o-{number}", "c-7", 1.0), event_id=f"evt-{number}")
    gone = _consumer(client, "gone")
    gone.ensure_group()
    client.xreadgroup("shop", "gone", {"orders": ">"}, count=3)  # read, never acknowledged
    held = pending_deliveries(client, "orders", "shop", "gone")
    publisher.send(OrderCancelled("o-1"), event_id="evt-4")
    publisher.send(OrderCreated("o-2", "c-7", 1.0), event_id="evt-2")  # a re-sent copy
    live = _consumer(client, "live", claim_idle_ms=0, max_deliveries=2)
    for _ in range(4):
        live.process_batch(wait=False)
    return held, list(live.deliveries)


def test_pending_deliveries_are_what_a_consumer_holds_unacknowledged(server: RedisServer) -> None:
    client = connect(server.url)
    held, _ = _a_group_with_a_dead_consumer(client)
    assert [(d.event_id, d.consumer, d.delivery, d.outcome) for d in held] == [
        (f"evt-{n}", "gone", 1, "pending") for n in (1, 2, 3)
    ]
    assert pending_deliveries(client, "orders", "shop") == [], "live finished everything"


def test_deliveries_picture_draws_reclaims_retries_dead_letters_and_duplicates(
    server: RedisServer,
) -> None:
    held, log = _a_group_with_a_dead_consumer(connect(server.url))
    outcomes = sorted((d.event_id, d.delivery, d.outcome) for d in log)
    assert outcomes == [
        ("evt-1", 2, "handled"),
        ("evt-2", 1, "duplicate"),
        ("evt-2", 2, "handled"),
        ("evt-3", 2, "handled"),
        ("evt-4", 1, "failed"),
        ("evt-4", 2, "dead-lettered"),
    ]
    figure = draw_deliveries([*held, *log])
    assert repr(figure) == (
        "<picture: 9 deliveries of 4 events to 2 consumers: 3 handled, 1 duplicate, "
        "1 failed, 1 dead-lettered, 3 pending>"
    )
    words = texts(figure)
    assert {"gone", "live", "0 handled", "3 handled"} <= set(words)
    assert words.count("2") == 4, "each second delivery carries its number"
    assert "delivered again (number: which delivery)" in words
    assert figure_to_png(figure) == figure_to_png(draw_deliveries([*held, *log])), "same input"


def test_lanes_named_in_consumers_are_drawn_first_even_when_empty() -> None:
    records = [Delivery("evt-1", "OrderCreated", "w2", 1, "handled")]
    words = texts(draw_deliveries(records, consumers=["w1"]))
    assert words.index("w1") < words.index("w2")
    assert "0 handled" in words


def test_stepping_draws_only_the_first_deliveries() -> None:
    records = [Delivery(f"evt-{n}", "OrderCreated", "w1", 1, "handled") for n in range(1, 5)]
    figure = draw_deliveries(records, upto=2)
    assert repr(figure) == ("<picture: 2 deliveries of 2 events to 1 consumer: 2 handled>")


def test_the_explorer_steps_through_a_log_and_says_what_each_delivery_was() -> None:
    records = [
        Delivery("evt-1", "OrderCreated", "w1", 1, "handled"),
        Delivery("evt-1", "OrderCreated", "w1", 1, "duplicate"),
        Delivery("evt-2", "OrderCancelled", "w2", 3, "dead-lettered", "failed on delivery 3"),
    ]
    explorer = DeliveryExplorer(records)
    assert repr(explorer) == "DeliveryExplorer: 3 deliveries, showing 3"
    assert explorer.caption() == (
        "3 of 3: evt-2 OrderCancelled to w2 (delivery 3), dead-lettered: failed on delivery 3"
    )
    explorer.step_to(2)
    assert explorer.caption() == "2 of 3: evt-1 OrderCreated to w1, duplicate, skipped"
    explorer.step_to(0)
    assert explorer.caption() == "0 of 3 deliveries: nothing delivered yet"
    with pytest.raises(ValueError, match="0 to 3"):
        explorer.step_to(4)
    with pytest.raises(ValueError, match="at least one delivery"):
        DeliveryExplorer([])


def test_parked_deliveries_are_drawn_and_a_non_utf8_held_entry_is_listed(
    server: RedisServer,
) -> None:
    """A parked delivery has its own mark and words; an entry holding bytes that are not
    UTF-8 is listed as held, its fields escaped, instead of failing the listing."""
    parked = Delivery("evt-1", "OrderRefunded", "w1", 1, "parked", "UnknownEventTypeError: ...")
    figure = draw_deliveries([parked])
    assert "parked, kept for later" in texts(figure)
    client = redis.Redis.from_url(server.url)
    client.xgroup_create("raw", "g", id="0", mkstream=True)
    client.xadd("raw", {b"event_id": b"evt-\xff", b"type": b"OrderPaid", b"payload": b"{}"})
    client.xreadgroup("g", "c", {"raw": ">"}, count=1)
    (held,) = pending_deliveries(client, "raw", "g")
    assert held.event_id == "evt-\\xff" and held.consumer == "c" and held.outcome == "pending"
