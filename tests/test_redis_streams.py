"""Redis Streams transport against a real redis-server: publishing, consumer groups,
acknowledgements, retries by delivery count, reclaiming, dead letters, deduplication."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, free_port, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.outbox import Outbox, Relay, SimulatedCrash, simulate_crash
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid
from eda_lesson.shop.order import order_registry
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import (
    DEFAULT_REDIS_URL,
    BatchReport,
    Delivery,
    RedisUnavailableError,
    StreamConsumer,
    StreamKeys,
    StreamPublisher,
    connect,
    processed_by,
    read_dead_letters,
    read_journal,
    read_parked,
    redis_url,
    stream_status,
)

REGISTRY = EventRegistry.of(OrderCreated, OrderPaid, OrderCancelled)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return connect(redis_server.url)


def _shop_consumer(client: redis.Redis, **options: Any) -> tuple[StreamConsumer, Shop]:
    bus, shop = EventBus(), Shop(stock={"book": 10})
    shop.register(bus)
    options = {"stream": "orders", "group": "shop", "consumer": "w1", **options}
    return StreamConsumer(client, bus, REGISTRY, **options), shop


def _send(client: redis.Redis, *events: tuple[str, object]) -> StreamPublisher:
    publisher = StreamPublisher(client, "orders", registry=REGISTRY)
    for event_id, event in events:
        publisher.send(event, event_id=event_id)
    return publisher


def _outcomes(report: BatchReport) -> list[tuple[str, str]]:
    return [(delivery.event_id, delivery.outcome) for delivery in report.deliveries]


def _poison_bus(calls: list[str]) -> EventBus:
    bus = EventBus()

    def refuse(event: OrderCancelled) -> None:
        calls.append(event.order_id)
        raise RuntimeError(f"cannot cancel {event.order_id}")

    bus.register(OrderCancelled, refuse)
    return bus


# ---------------------------------------------------------------------- connecting


def test_the_redis_url_comes_from_the_argument_then_redis_url_then_localhost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert redis_url() == DEFAULT_REDIS_URL == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:7000/1")
    assert redis_url() == "redis://127.0.0.1:7000/1"
    assert redis_url("redis://127.0.0.1:7001/2") == "redis://127.0.0.1:7001/2"


def test_an_unreachable_redis_is_named_with_how_to_start_one() -> None:
    port = free_port()
    client = connect(f"redis://127.0.0.1:{port}/0", timeout=1)
    with pytest.raises(RedisUnavailableError) as caught:
        _send(client, ("evt-1", OrderPaid("o-1")))
    message = str(caught.value)
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in message
    assert f"redis-server --port {port} --bind 127.0.0.1" in message
    assert "sudo apt-get install redis-server" in message
    assert isinstance(caught.value, ConnectionError)


# ---------------------------------------------------------------------- publishing


def test_the_publisher_adds_one_entry_per_event_with_id_type_version_and_json(
    client: redis.Redis,
) -> None:
    publisher = _send(client, ("evt-1", OrderPaid("o-1", 42.0)))
    [(_, fields)] = client.xrange("orders")
    assert fields == {
        "event_id": "evt-1",
        "type": "OrderPaid",
        "version": "1",
        "payload": '{"order_id":"o-1","amount":42.0}',
    }
    assert repr(publisher) == "StreamPublisher('orders', 1 published)"


def test_the_relay_publishes_the_outbox_to_the_stream_and_a_crash_before_marking_duplicates(
    client: redis.Redis, tmp_path: Path
) -> None:
    store = SQLiteEventStore(tmp_path / "shop.db", order_registry())
    outbox = Outbox(store, id_prefix="evt-")
    store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    store.append("order-o-2", [OrderCreated("o-2", "c-8", 10.0)], expected_version=0)
    publisher = StreamPublisher(client, "orders")
    with pytest.raises(SimulatedCrash):
        Relay(outbox, publisher, before_mark=simulate_crash).publish_pending()
    Relay(outbox, publisher).publish_pending()
    assert [fields["event_id"] for _, fields in client.xrange("orders")] == [
        "evt-1",
        "evt-2",
        "evt-1",
        "evt-2",
    ]
    consumer, shop = _shop_consumer(client)
    report = consumer.process_batch(wait=False)
    assert _outcomes(report) == [
        ("evt-1", "handled"),
        ("evt-2", "handled"),
        ("evt-1", "duplicate"),
        ("evt-2", "duplicate"),
    ]
    assert shop.orders.status == {"o-1": "created", "o-2": "created"}
    assert len(shop.mailer.sent) == 2


# ---------------------------------------------------------------------- consuming


def test_the_consumer_runs_the_unchanged_shop_handlers_and_acknowledges_each_entry(
    client: redis.Redis,
) -> None:
    _send(
        client,
        ("evt-1", OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),))),
        ("evt-2", OrderPaid("o-1", 42.0)),
    )
    consumer, shop = _shop_consumer(client)
    report = consumer.process_batch(wait=False)
    assert _outcomes(report) == [("evt-1", "handled"), ("evt-2", "handled")]
    assert shop.summary().splitlines()[:2] == ["orders:    o-1=shipped", "stock:     book=8"]
    assert shop.shipping.shipped == ["o-1"], "the cascade ran inside the consumer"
    assert stream_status(client, "orders", "shop").pending == 0
    assert processed_by(client, "orders", "shop") == {"evt-1": "w1", "evt-2": "w1"}
    paid = report.deliveries[1]
    assert paid.result is not None and [c.name for c in paid.result.calls][-1] == (
        "Shop.notify_shipped"
    )


def test_a_duplicate_event_id_is_acknowledged_without_calling_a_handler(
    client: redis.Redis,
) -> None:
    consumer, shop = _shop_consumer(client)
    _send(client, ("evt-1", OrderCreated("o-1", "c-7", 42.0)))
    consumer.process_batch(wait=False)
    _send(client, ("evt-1", OrderCreated("o-1", "c-7", 42.0)))
    report = consumer.process_batch(wait=False)
    assert _outcomes(report) == [("evt-1", "duplicate")]
    assert len(shop.mailer.sent) == 1
    assert stream_status(client, "orders", "shop").pending == 0


def test_copies_of_one_event_in_the_same_batch_are_handled_once(client: redis.Redis) -> None:
    event = OrderCreated("o-1", "c-7", 42.0)
    _send(client, ("evt-1", event), ("evt-1", event), ("evt-2", OrderPaid("o-1", 42.0)))
    consumer, shop = _shop_consumer(client)
    report = consumer.process_batch(wait=False)
    assert _outcomes(report) == [
        ("evt-1", "handled"),
        ("evt-1", "duplicate"),
        ("evt-2", "handled"),
    ]
    assert len([m for m in shop.mailer.sent if m.subject == "Order o-1 confirmed"]) == 1


def test_a_failed_entry_stays_pending_until_its_idle_time_passes(client: redis.Redis) -> None:
    calls: list[str] = []
    consumer = StreamConsumer(
        client, _poison_bus(calls), REGISTRY, stream="orders", group="shop", claim_idle_ms=60_000
    )
    _send(client, ("evt-1", OrderCancelled("o-1")))
    first = consumer.process_batch(wait=False)
    assert _outcomes(first) == [("evt-1", "failed")]
    assert first.deliveries[0].reason == "_poison_bus.refuse: RuntimeError: cannot cancel o-1"
    assert consumer.process_batch(wait=False).deliveries == ()
    assert stream_status(client, "orders", "shop").pending == 1
    assert calls == ["o-1"]


def test_a_failing_entry_is_retried_then_dead_lettered_on_its_last_delivery(
    client: redis.Redis,
) -> None:
    calls: list[str] = []
    consumer = StreamConsumer(
        client,
        _poison_bus(calls),
        REGISTRY,
        stream="orders",
        group="shop",
        max_deliveries=3,
        claim_idle_ms=0,
    )
    _send(client, ("evt-1", OrderCancelled("o-1")), ("evt-2", OrderPaid("o-2", 1.0)))
    reports = [consumer.process_batch(wait=False) for _ in range(4)]
    assert [_outcomes(report) for report in reports] == [
        [("evt-1", "failed"), ("evt-2", "handled")],
        [("evt-1", "failed")],
        [("evt-1", "dead-lettered")],
        [],
    ]
    assert [d.delivery for d in consumer.deliveries.for_event("evt-1")] == [1, 2, 3]
    assert calls == ["o-1"] * 3
    [letter] = read_dead_letters(client, "orders", "shop")
    assert (letter.event_id, letter.type_name, letter.deliveries) == ("evt-1", "OrderCancelled", 3)
    assert letter.reason == (
        "failed on delivery 3 of 3: _poison_bus.refuse: RuntimeError: cannot cancel o-1"
    )
    assert letter.payload == '{"order_id":"o-1","reason":""}'
    assert stream_status(client, "orders", "shop").pending == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"event_id": "x-2", "type": "OrderPaid", "version": 1, "payload": "{not json"},
            "MalformedEventError: OrderPaid v1: the payload is not valid JSON",
        ),
        (
            {"event_id": "x-3", "type": "OrderPaid", "version": 1, "payload": '{"amount":1}'},
            "MalformedEventError: stored OrderPaid v1: the payload does not fit the class",
        ),
        (
            {"event_id": "x-5", "type": "OrderPaid", "version": "one", "payload": "{}"},
            "malformed entry: version 'one' is not a whole number from 1",
        ),
        ({"note": "hello"}, "malformed entry: missing fields event_id, type, version, payload"),
    ],
)
def test_an_unreadable_entry_is_dead_lettered_with_its_reason_and_never_executed(
    client: redis.Redis, fields: dict[str, Any], reason: str
) -> None:
    consumer, shop = _shop_consumer(client)
    client.xadd("orders", fields)
    _send(client, ("evt-9", OrderPaid("o-9", 1.0)))
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered", "handled"]
    assert report.deliveries[0].reason.startswith(reason)
    [letter] = read_dead_letters(client, "orders", "shop")
    assert letter.reason.startswith(reason) and letter.deliveries == 1
    assert shop.orders.status == {"o-9": "shipped"}, "only the readable event was handled"
    assert stream_status(client, "orders", "shop").pending == 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"event_id": "x-1", "type": "Refund", "version": 1, "payload": "{}"},
            "UnknownEventTypeError: unknown event type 'Refund'",
        ),
        (
            {"event_id": "x-4", "type": "OrderPaid", "version": 9, "payload": "{}"},
            "FutureEventVersionError: OrderPaid v9 was written by a newer program",
        ),
        (
            {"event_id": "x-7", "type": "__import__('os').system", "version": 1, "payload": "{}"},
            "UnknownEventTypeError: unknown event type \"__import__('os').system\"",
        ),
    ],
)
def test_an_entry_of_an_unknown_type_or_newer_version_is_parked_not_executed(
    client: redis.Redis, fields: dict[str, Any], reason: str
) -> None:
    consumer, shop = _shop_consumer(client)
    client.xadd("orders", fields)
    _send(client, ("evt-9", OrderPaid("o-9", 1.0)))
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["parked", "handled"]
    assert report.deliveries[0].reason.startswith(reason)
    [parked] = read_parked(client, "orders", "shop")
    assert parked.reason.startswith(reason) and parked.event_id == fields["event_id"]
    assert read_dead_letters(client, "orders", "shop") == []
    assert shop.orders.status == {"o-9": "shipped"}
    status = stream_status(client, "orders", "shop")
    assert (status.pending, status.parked, status.dead_letters) == (0, 1, 0)
    assert repr(status).endswith("0 dead letters, 1 parked)")


def test_without_parking_an_unknown_type_is_dead_lettered(client: redis.Redis) -> None:
    consumer, _ = _shop_consumer(client, park_unknown=False)
    client.xadd("orders", {"event_id": "x-1", "type": "Refund", "version": 1, "payload": "{}"})
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered"]
    assert read_parked(client, "orders", "shop") == []
    assert read_dead_letters(client, "orders", "shop")[0].reason.startswith("UnknownEventTypeError")


def test_entries_left_pending_by_a_dead_consumer_are_reclaimed_by_another(
    client: redis.Redis,
) -> None:
    _send(client, *((f"evt-{n}", OrderCreated(f"o-{n}", "c", 1.0)) for n in range(1, 4)))
    dead, _ = _shop_consumer(client, consumer="dead")
    dead.ensure_group()
    # The dead consumer read the entries and died before handling them.
    client.xreadgroup("shop", "dead", {"orders": ">"}, count=2)
    survivor, shop = _shop_consumer(client, consumer="w2", claim_idle_ms=0)
    report = survivor.process_batch(wait=False)
    assert report.reclaimed == 2
    assert [(d.event_id, d.consumer, d.delivery) for d in report.deliveries] == [
        ("evt-1", "w2", 2),
        ("evt-2", "w2", 2),
        ("evt-3", "w2", 1),
    ]
    assert sorted(shop.orders.status) == ["o-1", "o-2", "o-3"]
    assert set(processed_by(client, "orders", "shop").values()) == {"w2"}
    assert [d.event_id for d in survivor.deliveries.redelivered()] == ["evt-1", "evt-2"]


def test_entries_are_not_reclaimed_before_their_idle_time(client: redis.Redis) -> None:
    _send(client, ("evt-1", OrderCreated("o-1", "c", 1.0)))
    _shop_consumer(client, consumer="dead")[0].ensure_group()
    client.xreadgroup("shop", "dead", {"orders": ">"}, count=1)
    survivor, shop = _shop_consumer(client, consumer="w2", claim_idle_ms=60_000)
    assert survivor.process_batch(wait=False).deliveries == ()
    assert shop.orders.status == {}


def test_an_entry_whose_consumers_keep_dying_is_dead_lettered_without_running_again(
    client: redis.Redis,
) -> None:
    _send(client, ("evt-1", OrderCreated("o-1", "c", 1.0)))
    _shop_consumer(client, consumer="dead")[0].ensure_group()
    client.xreadgroup("shop", "dead", {"orders": ">"}, count=1)
    [[_, [(entry_id, _)]]] = client.xreadgroup("shop", "dead", {"orders": "0"})  # delivery 2
    survivor, shop = _shop_consumer(client, consumer="w2", claim_idle_ms=0, max_deliveries=2)
    report = survivor.process_batch(wait=False)  # the reclaim makes it delivery 3
    assert [(d.outcome, d.delivery) for d in report.deliveries] == [("dead-lettered", 3)]
    assert "delivered 3 times without being acknowledged" in report.deliveries[0].reason
    assert shop.orders.status == {}
    assert read_dead_letters(client, "orders", "shop")[0].source_entry == entry_id


def test_a_limit_makes_a_batch_smaller(client: redis.Redis) -> None:
    _send(client, *((f"evt-{n}", OrderPaid(f"o-{n}", 1.0)) for n in range(5)))
    consumer, _ = _shop_consumer(client, batch=4)
    sizes = [len(consumer.process_batch(wait=False, limit=2)) for _ in range(3)]
    assert sizes == [2, 2, 1]
    assert len(consumer.process_batch(wait=False)) == 0


def test_the_consumer_recreates_a_group_that_vanished(client: redis.Redis) -> None:
    consumer, shop = _shop_consumer(client)
    consumer.process_batch(wait=False)
    client.delete("orders")  # the stream and its group are gone, as after a restart without data
    _send(client, ("evt-1", OrderPaid("o-1", 1.0)))
    report = consumer.process_batch(wait=False)
    assert _outcomes(report) == [("evt-1", "handled")]
    assert shop.orders.status == {"o-1": "shipped"}


def test_the_journal_records_the_deliveries_of_every_consumer(client: redis.Redis) -> None:
    _send(client, *((f"evt-{n}", OrderPaid(f"o-{n}", 1.0)) for n in range(1, 5)))
    first, _ = _shop_consumer(client, consumer="w1", journal=True, batch=2)
    second, _ = _shop_consumer(client, consumer="w2", journal=True, batch=2)
    first.process_batch(wait=False)
    second.process_batch(wait=False)
    _send(client, ("evt-1", OrderPaid("o-1", 1.0)))
    first.process_batch(wait=False)
    journal = read_journal(client, "orders", "shop")
    assert [(d.event_id, d.consumer, d.outcome) for d in journal] == [
        ("evt-1", "w1", "handled"),
        ("evt-2", "w1", "handled"),
        ("evt-3", "w2", "handled"),
        ("evt-4", "w2", "handled"),
        ("evt-1", "w1", "duplicate"),
    ]
    assert journal.per_consumer() == {
        "w1": {"handled": 2, "duplicate": 1, "failed": 0, "parked": 0, "dead-lettered": 0},
        "w2": {"handled": 2, "duplicate": 0, "failed": 0, "parked": 0, "dead-lettered": 0},
    }
    assert journal.handled_by() == {"evt-1": "w1", "evt-2": "w1", "evt-3": "w2", "evt-4": "w2"}


def test_the_status_counts_entries_pending_processed_dead_letters_and_consumers(
    client: redis.Redis,
) -> None:
    assert repr(stream_status(client, "orders", "shop")) == (
        "StreamStatus(orders/shop: 0 entries, 0 pending, 0 processed, 0 dead letters)"
    )
    _send(client, ("evt-1", OrderPaid("o-1", 1.0)))
    client.xadd("orders", {"broken": "yes"})
    consumer, _ = _shop_consumer(client)
    consumer.process_batch(wait=False)
    status = consumer.status()
    assert repr(status) == (
        "StreamStatus(orders/shop: 2 entries, 0 pending, 1 processed, 1 dead letter)"
    )
    assert status.consumers == ("w1",)


def test_records_have_short_stable_reprs(client: redis.Redis) -> None:
    _send(client, ("evt-1", OrderPaid("o-1", 1.0)), ("evt-1", OrderPaid("o-1", 1.0)))
    consumer, _ = _shop_consumer(client)
    report = consumer.process_batch(wait=False)
    assert repr(report) == "BatchReport(2 deliveries: 1 handled, 1 duplicate)"
    assert repr(report.deliveries[0]) == "Delivery(evt-1 OrderPaid -> w1, delivery 1: handled)"
    assert repr(consumer) == (
        "StreamConsumer(w1 in orders/shop: 2 deliveries: 1 handled, 1 duplicate)"
    )
    assert consumer.deliveries.describe() == (
        "DeliveryLog(2 deliveries: 1 handled, 1 duplicate)\n"
        "       evt-1  OrderPaid          w1         #1  handled\n"
        "       evt-1  OrderPaid          w1         #1  duplicate"
    )
    assert Delivery("e", "T", "w", 2, "failed", "boom").__repr__() == (
        "Delivery(e T -> w, delivery 2: failed (boom))"
    )


def test_the_consumer_refuses_settings_that_cannot_work(client: redis.Redis) -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="batch is a positive whole number, got 0"):
        StreamConsumer(client, bus, REGISTRY, batch=0)
    with pytest.raises(ValueError, match="claim_idle_ms is a whole number from 0"):
        StreamConsumer(client, bus, REGISTRY, claim_idle_ms=-1)
    with pytest.raises(TypeError, match=r"EventRegistry\.of"):
        StreamConsumer(client, bus, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consumer is a non-empty name"):
        StreamConsumer(client, bus, REGISTRY, consumer="")
    with pytest.raises(ValueError, match="decode_responses=True"):
        StreamConsumer(redis.Redis(), bus, REGISTRY)
    with pytest.raises(TypeError, match="through a registry"):
        StreamPublisher(client).send(OrderPaid("o-1"), event_id="e")


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_consumer_works_with_either_redis_protocol(
    redis_server: RedisServer, protocol: int
) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True, protocol=protocol)
    _send(client, ("evt-1", OrderPaid("o-1", 1.0)))
    client.xadd("orders", {"event_id": "x", "type": "Nope", "version": 1, "payload": "{}"})
    client.xadd(
        "orders", {"event_id": b"y\xff", "type": "OrderPaid", "version": 1, "payload": "{}"}
    )
    dead, _ = _shop_consumer(client, consumer="dead")
    dead.ensure_group()
    client.xreadgroup("shop", "dead", {"orders": ">"}, count=1)
    consumer, _ = _shop_consumer(client, consumer="w1", claim_idle_ms=0)
    report = consumer.process_batch(wait=False)
    assert [(d.event_id, d.delivery, d.outcome) for d in report.deliveries] == [
        ("evt-1", 2, "handled"),
        ("x", 1, "parked"),
        ("y\\xff", 1, "dead-lettered"),
    ]
    assert consumer.status().consumers == ("dead", "w1")


def test_keys_of_a_group_are_named_after_stream_and_group() -> None:
    keys = StreamKeys("orders", "shop")
    assert keys.all() == (
        "orders:shop:processed",
        "orders:shop:processed-times",
        "orders:shop:dead",
        "orders:shop:parked",
        "orders:shop:deliveries",
    )
    assert (keys.processed, keys.dead_letters, keys.parked, keys.journal) == (
        "orders:shop:processed",
        "orders:shop:dead",
        "orders:shop:parked",
        "orders:shop:deliveries",
    )
