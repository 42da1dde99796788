"""What anyone who can write to the stream can do to a consumer group, and what it does back.

A malformed entry (bad bytes, missing fields, wrong types, an empty id, NaN, a huge payload)
is dead-lettered with its reason and acknowledged, byte for byte, and the rest of its batch
is handled; a newline in an entry cannot forge a log line; the stream deleted under a
blocked read is created again; a long-running consumer's memory stays bounded. Every test
runs against a real redis-server.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import (
    Delivery,
    DeliveryLog,
    StreamConsumer,
    StreamKeyError,
    StreamPublisher,
    connect,
    printable,
    read_dead_letters,
    stream_status,
)
from eda_lesson.transport.worker import Worker

TESTS = Path(__file__).resolve().parent
REGISTRY = EventRegistry.of(OrderCreated, OrderPaid, OrderCancelled)
GOOD = {"event_id": "evt-9", "type": "OrderPaid", "version": "1",
        "payload": '{"order_id":"o-9","amount":1.0}'}  # fmt: skip


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return connect(redis_server.url)


def _consumer(client: redis.Redis, **options: Any) -> tuple[StreamConsumer, Shop]:
    bus, shop = EventBus(), Shop(stock={"book": 10})
    shop.register(bus)
    options = {"stream": "orders", "group": "shop", "consumer": "w1", **options}
    return StreamConsumer(client, bus, REGISTRY, **options), shop


def _entry(**changes: object) -> dict[str | bytes, object]:
    """GOOD with some fields changed (``None`` removes a field)."""
    fields: dict[str | bytes, object] = {**GOOD, "event_id": "e-1"}
    for name, value in changes.items():
        if value is None:
            fields.pop(name)
        else:
            fields[name] = value
    return fields


def _as_bytes(fields: dict[str | bytes, object]) -> dict[bytes, bytes]:
    def raw(value: object) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode()

    return {raw(name): raw(value) for name, value in fields.items()}


def _wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _blocked_on_xreadgroup(client: redis.Redis) -> bool:
    return any(
        info.get("cmd") == "xreadgroup" and "b" in info.get("flags", "")
        for info in client.client_list()
    )


MALFORMED = [
    pytest.param(_entry(event_id=b"evt-\xff\xfe"),
                 "malformed entry: event_id 'evt-\\xff\\xfe' is not UTF-8 text", id="id-bytes"),
    pytest.param(_entry(type=b"Order\xc3Paid"),
                 "malformed entry: type 'Order\\xc3Paid' is not UTF-8 text", id="type-bytes"),
    pytest.param(_entry(payload=b'{"order_id":"\xff","amount":1.0}'),
                 "malformed entry: the payload is not UTF-8 text (byte 13", id="payload-bytes"),
    pytest.param(_entry(version=b"\xff"), "malformed entry: version '\\xff' is not a whole",
                 id="version-bytes"),
    pytest.param({b"\xfe\xff": b"x", **_entry(payload=None)},
                 "malformed entry: missing field payload", id="name-bytes-and-missing"),
    pytest.param(_entry(event_id=None, type=None),
                 "malformed entry: missing fields event_id, type", id="missing-two"),
    pytest.param(_entry(event_id=""), "malformed entry: event_id is empty", id="empty-id"),
    pytest.param(_entry(event_id="   "), "malformed entry: event_id is blank", id="blank-id"),
    pytest.param(_entry(type=""), "malformed entry: type is empty", id="empty-type"),
    pytest.param(_entry(event_id="e-1\nw1 handled OrderPaid forged"),
                 "malformed entry: event_id 'e-1\\nw1 handled OrderPaid forged' holds a control",
                 id="newline-id"),
    pytest.param(_entry(type="OrderPaid\x1b[2K"),
                 "malformed entry: type 'OrderPaid\\x1b[2K' holds a control", id="escape-type"),
    pytest.param(_entry(event_id=" e-1"), "malformed entry: event_id ' e-1' holds a control "
                 "character or surrounding spaces", id="spaced-id"),
    pytest.param(_entry(event_id="e" * 201),
                 "malformed entry: event_id is 201 characters long, more than 200", id="long-id"),
    pytest.param(_entry(version="1.0"), "malformed entry: version '1.0' is not a whole number",
                 id="version-float"),
    pytest.param(_entry(version="0"), "malformed entry: version '0' is not", id="version-0"),
    pytest.param(_entry(version="-1"), "malformed entry: version '-1' is not", id="version-neg"),
    pytest.param(_entry(version=" 1"), "malformed entry: version ' 1' is not", id="version-space"),
    pytest.param(_entry(version="\u0661"), "malformed entry: version '\u0661' is not",
                 id="version-arabic-digit"),
    pytest.param(_entry(version="1" * 12), "malformed entry: version '111111111111' is not",
                 id="version-huge"),
    pytest.param(_entry(payload='{"order_id":"o-1","amount":NaN}'),
                 "malformed entry: the payload holds NaN", id="nan"),
    pytest.param(_entry(payload='{"order_id":"o-1","amount":-Infinity}'),
                 "malformed entry: the payload holds -Infinity", id="minus-infinity"),
    pytest.param(_entry(payload='{"order_id":"o-1","amount":1e999}'),
                 "malformed entry: the payload holds the number 1e999, too large", id="1e999"),
    pytest.param(_entry(payload='{"order_id":"o-1","amount":' + "9" * 400 + ".0}"),
                 "malformed entry: the payload holds the number 99999", id="400-digits"),
    pytest.param(_entry(payload='{"order_id":"\\ud800","amount":1.0}'),
                 "malformed entry: the payload holds a lone surrogate", id="lone-surrogate"),
    pytest.param(_entry(payload='{"order_id":"o-1","amount":"12"}'), "MalformedEventError",
                 id="wrong-field-type"),
    pytest.param(_entry(payload='{"order_id":7,"amount":1.0}'), "MalformedEventError",
                 id="wrong-id-type"),
    pytest.param(_entry(payload='["o-1", 1.0]'), "MalformedEventError", id="payload-a-list"),
    pytest.param(_entry(payload="[" * 100_000), "", id="deep-nesting"),
    pytest.param(_entry(payload="x" * (1024 * 1024)),
                 "malformed entry: 1,048,", id="huge-payload"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "reason"), MALFORMED)
def test_a_malformed_entry_is_dead_lettered_byte_for_byte_and_the_batch_goes_on(
    client: redis.Redis, fields: dict[str | bytes, object], reason: str
) -> None:
    consumer, shop = _consumer(client)
    client.xadd("orders", fields)  # type: ignore[arg-type]
    client.xadd("orders", GOOD)  # type: ignore[arg-type]
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered", "handled"]
    assert report.deliveries[0].reason.startswith(reason), report.deliveries[0].reason
    assert report.deliveries[0].reason.isprintable()
    [letter] = read_dead_letters(client, "orders", "shop")
    assert letter.fields == _as_bytes(fields), "the dead letter keeps the entry as it was"
    assert letter.reason == report.deliveries[0].reason
    assert shop.orders.status == {"o-9": "shipped"}
    assert stream_status(client, "orders", "shop").pending == 0


def test_one_batch_of_every_kind_of_malformed_entry_stops_nothing(client: redis.Redis) -> None:
    consumer, shop = _consumer(client, batch=100)
    publisher = StreamPublisher(client, "orders", registry=REGISTRY)
    for number, case in enumerate(MALFORMED):
        client.xadd("orders", case.values[0])
        publisher.send(OrderPaid(f"o-{number}", 1.0), event_id=f"evt-{number}")
    report = consumer.process_batch(wait=False)
    assert report.counts()["dead-lettered"] == len(MALFORMED)
    assert report.counts()["handled"] == len(MALFORMED)
    assert len(shop.orders.status) == len(MALFORMED)
    publisher.send(OrderPaid("o-late", 1.0), event_id="evt-late")
    assert [d.outcome for d in consumer.process_batch(wait=False).deliveries] == ["handled"]
    assert stream_status(client, "orders", "shop").pending == 0


def test_a_non_utf8_entry_held_by_a_dead_consumer_is_reclaimed_and_dead_lettered(
    client: redis.Redis,
) -> None:
    client.xadd("orders", _entry(event_id=b"\xff"))  # type: ignore[arg-type]
    dead, _ = _consumer(client, consumer="dead")
    dead.ensure_group()
    raw = redis.Redis(port=client.connection_pool.connection_kwargs["port"])
    raw.xreadgroup("shop", "dead", {"orders": ">"}, count=1)  # bytes: it does not decode
    survivor, _ = _consumer(client, consumer="w2", claim_idle_ms=0)
    report = survivor.process_batch(wait=False)
    assert [(d.outcome, d.delivery) for d in report.deliveries] == [("dead-lettered", 2)]
    assert report.reclaimed == 1
    assert stream_status(client, "orders", "shop").pending == 0


def test_the_worker_command_survives_a_non_utf8_entry_and_handles_the_rest(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    client.xadd("orders", _entry(event_id=b"evt-\xff"))  # type: ignore[arg-type]
    client.xadd("orders", GOOD)  # type: ignore[arg-type]
    run = subprocess.run(
        [sys.executable, "-m", "eda_lesson.transport.worker", "--handlers",
         "test_worker:register", "--stream", "orders", "--group", "shop", "--consumer", "w1",
         "--redis-url", redis_server.url, "--until-idle"],
        capture_output=True, text=True, timeout=60, env=_environment(),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "w1 dead-lettered OrderPaid evt-\\xff: malformed entry: event_id" in run.stderr
    assert "w1 handled OrderPaid evt-9" in run.stderr
    assert stream_status(client, "orders", "shop").processed == 1


def _environment() -> dict[str, str]:
    import os

    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


# ---------------------------------------------------------------------- identity


def test_entries_with_an_empty_event_id_are_never_taken_for_duplicates(
    client: redis.Redis,
) -> None:
    consumer, shop = _consumer(client)
    for number in range(3):
        client.xadd("orders", _entry(event_id="", payload=f'{{"order_id":"o-{number}"}}'))  # type: ignore[arg-type]
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered"] * 3
    assert all("event_id is empty" in d.reason for d in report.deliveries)
    assert shop.orders.status == {}, "no handler ran for an entry without an identity"
    assert len(read_dead_letters(client, "orders", "shop")) == 3
    assert client.hlen("orders:shop:processed") == 0, "nothing was marked under the empty id"


def test_a_malformed_copy_never_marks_its_event_id_processed(client: redis.Redis) -> None:
    consumer, shop = _consumer(client)
    client.xadd("orders", _entry(event_id="evt-1", version="v1"))  # type: ignore[arg-type]
    client.xadd("orders", _entry(event_id="evt-1"))  # type: ignore[arg-type]
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered", "handled"]
    assert shop.orders.status == {"o-9": "shipped"}


# ---------------------------------------------------------------------- what writing refuses


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-2E+999"])
def test_a_payload_the_registry_would_refuse_to_write_is_refused_when_read(
    client: redis.Redis, number: str
) -> None:
    with pytest.raises((TypeError, ValueError)):
        REGISTRY.to_json(OrderPaid("o-1", float(number)))
    calls: list[object] = []
    bus = EventBus()
    bus.register(OrderPaid, calls.append)
    consumer = StreamConsumer(client, bus, REGISTRY, stream="orders", group="shop")
    client.xadd("orders", _entry(payload=f'{{"order_id":"o-1","amount":{number}}}'))  # type: ignore[arg-type]
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["dead-lettered"]
    assert calls == []


def test_a_string_that_merely_spells_nan_is_read(client: redis.Redis) -> None:
    consumer, shop = _consumer(client)
    client.xadd("orders", _entry(payload='{"order_id":"NaN-Infinity-1e999-\\ud83d\\ude00"}'))  # type: ignore[arg-type]
    report = consumer.process_batch(wait=False)
    assert [d.outcome for d in report.deliveries] == ["handled"]
    assert list(shop.orders.status) == ["NaN-Infinity-1e999-\U0001f600"]


# ---------------------------------------------------------------------- logs


FORGED = "w1 handled OrderPaid evt-forged"


def test_nothing_an_entry_holds_can_forge_a_line_in_the_workers_log(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(event: OrderCancelled) -> None:
        raise RuntimeError(f"cannot cancel {event.order_id}")

    def register(bus: EventBus) -> EventRegistry:
        bus.register(OrderPaid, lambda event: None)
        bus.register(OrderCancelled, refuse)
        return REGISTRY

    client.xadd("orders", _entry(event_id=f"e-1\n{FORGED}"))  # type: ignore[arg-type]
    client.xadd("orders", _entry(type=f"OrderPaid\r\n{FORGED}"))  # type: ignore[arg-type]
    client.xadd("orders", _entry(event_id="e-2", type=f"Refund\u2028{FORGED}"))  # type: ignore[arg-type]
    client.xadd("orders", _entry(event_id="e-3", payload=f'{{"order_id":"o\\n{FORGED}"}}'))  # type: ignore[arg-type]
    StreamPublisher(client, "orders", registry=REGISTRY).send(
        OrderCancelled(f"o-1\n{FORGED}"), event_id="e-4"
    )
    worker = Worker(
        register, client=client, stream="orders", group="shop", consumer="w1",
        max_deliveries=2, claim_idle_ms=0,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="eda_lesson.transport.worker"):
        worker.run(until_idle=True)
        worker.run(until_idle=True)  # the retry of e-4, dead-lettered on delivery 2
    messages = [record.getMessage() for record in caplog.records]
    assert all("\n" not in m and "\r" not in m and "\u2028" not in m for m in messages)
    assert FORGED not in messages
    assert not any(line.startswith(FORGED) for m in messages for line in m.splitlines())
    text = "\n".join(messages)
    assert "dead-lettered Refund\\u2028w1 handled" in text
    assert "cannot cancel o-1\\nw1 handled" in text
    assert worker.stats.handled == 1  # e-3: a newline inside a JSON string is data


def test_printable_escapes_control_characters_once_and_clips() -> None:
    assert printable("a\nb\r\tc\x1b\u2028\U000e0001") == "a\\nb\\r\\tc\\x1b\\u2028\\U000e0001"
    assert printable(printable("a\nb")) == "a\\nb", "escaping twice changes nothing"
    assert printable("x" * 50, 10) == "xxxxxxx..."
    assert printable("plain text, é ü 漢") == "plain text, é ü 漢"


# ---------------------------------------------------------------------- the stream deleted


def test_a_stream_deleted_while_the_worker_blocks_on_it_is_created_again(
    client: redis.Redis, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(
        Shop().register, REGISTRY, client=connect(redis_server.url), stream="orders",
        group="shop", consumer="w1", block_ms=5000,
    )  # fmt: skip
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # the test reports it
            failures.append(error)

    runner = threading.Thread(target=run)
    with caplog.at_level(logging.INFO, logger="eda_lesson.transport.worker"):
        runner.start()
        try:
            _wait_for(lambda: _blocked_on_xreadgroup(client))
            client.delete("orders")
            _wait_for(lambda: worker.consumer.groups_recreated == 1 or bool(failures))
            StreamPublisher(client, "orders", registry=REGISTRY).send(
                OrderPaid("o-1", 1.0), event_id="evt-1"
            )
            _wait_for(lambda: worker.stats.handled == 1 or bool(failures))
            _wait_for(lambda: _blocked_on_xreadgroup(client))
            client.xgroup_destroy("orders", "shop")  # the group alone, this time
            _wait_for(lambda: worker.consumer.groups_recreated == 2 or bool(failures))
        finally:
            worker.stop()
            runner.join(timeout=20)
    assert failures == []
    assert worker.stats.handled == 1
    assert any("vanished" in record.getMessage() for record in caplog.records)
    assert stream_status(client, "orders", "shop").consumers == ("w1",)


def test_the_worker_command_survives_its_stream_being_deleted(
    redis_server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "eda_lesson.transport.worker", "--handlers",
             "test_worker:register", "--stream", "orders", "--group", "shop", "--consumer",
             "w1", "--redis-url", redis_server.url, "--block-ms", "3000"],
            stderr=output, env=_environment(),
        )  # fmt: skip
    try:
        _wait_for(lambda: _blocked_on_xreadgroup(client))
        client.delete("orders")
        _wait_for(lambda: "vanished" in log.read_text() or process.poll() is not None)
        assert process.poll() is None, log.read_text()
        StreamPublisher(client, "orders", registry=REGISTRY).send(
            OrderPaid("o-1", 1.0), event_id="evt-1"
        )
        _wait_for(lambda: stream_status(client, "orders", "shop").processed == 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        process.kill()


def test_a_stream_key_taken_by_another_kind_of_value_is_named_with_the_fix(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    client.set("orders", "not a stream")
    consumer, _ = _consumer(client)
    with pytest.raises(StreamKeyError, match=r"'orders' holds a string, not a stream.*DEL"):
        consumer.process_batch(wait=False)
    run = subprocess.run(
        [sys.executable, "-m", "eda_lesson.transport.worker", "--handlers",
         "test_worker:register", "--stream", "orders", "--group", "shop",
         "--redis-url", redis_server.url, "--until-idle"],
        capture_output=True, text=True, timeout=60, env=_environment(),
    )  # fmt: skip
    assert run.returncode == 1
    assert "'orders' holds a string, not a stream" in run.stderr
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------- memory


@dataclass(frozen=True)
class Bulky:
    blob: str


def test_the_consumer_keeps_records_not_events(client: redis.Redis) -> None:
    registry = EventRegistry.of(Bulky)
    bus = EventBus()
    bus.register(Bulky, lambda event: None)
    consumer = StreamConsumer(client, bus, registry, stream="bulk", group="g", batch=10)
    publisher = StreamPublisher(client, "bulk", registry=registry)
    for number in range(60):
        publisher.send(Bulky(f"{number:03d}" + "x" * 100_000), event_id=f"evt-{number}")
    consumer.process_batch(wait=False)  # warm up: imports, caches, the connection
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        reports = [consumer.process_batch(wait=False) for _ in range(5)]
        assert all(d.result is not None for r in reports for d in r.deliveries), (
            "the batch in hand still carries its results"
        )
        del reports
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(consumer.deliveries) == 60
    assert all(d.result is None for d in consumer.deliveries)
    assert grown < 500_000, f"50 events of 100 kB handled, {grown:,} bytes kept"
    assert consumer.deliveries.bytes < 60 * 1_000


def test_a_delivery_log_is_bounded_in_count_and_in_bytes() -> None:
    log = DeliveryLog(keep=5, keep_bytes=None)
    for number in range(8):
        log.add(Delivery(f"e-{number}", "T", "w1", 1, "handled"))
    assert [d.event_id for d in log] == ["e-3", "e-4", "e-5", "e-6", "e-7"]
    by_bytes = DeliveryLog(keep=None, keep_bytes=20_000)
    for number in range(30):
        by_bytes.add(Delivery(f"e-{number}", "T", "w1", 1, "failed", "r" * 2000))
    assert 0 < len(by_bytes) < 30 and by_bytes.bytes <= 20_000
    assert by_bytes[-1].event_id == "e-29", "the newest are kept"


def test_a_long_reason_is_clipped_in_records_logs_and_dead_letters(client: redis.Redis) -> None:
    def explode(event: OrderCancelled) -> None:
        raise RuntimeError("x" * 1_000_000)

    bus = EventBus()
    bus.register(OrderCancelled, explode)
    consumer = StreamConsumer(
        client, bus, REGISTRY, stream="orders", group="shop", max_deliveries=1
    )
    StreamPublisher(client, "orders", registry=REGISTRY).send(OrderCancelled("o-1"), event_id="e")
    [delivery] = consumer.process_batch(wait=False).deliveries
    assert delivery.outcome == "dead-lettered"
    assert 1000 < len(delivery.reason) <= 2000 and delivery.reason.endswith("...")
    assert read_dead_letters(client, "orders", "shop")[0].reason == delivery.reason


@pytest.mark.parametrize("event_id", ["", " ", "a\nb", "x" * 201, "\ud800"])
def test_the_publisher_refuses_an_event_id_the_consumers_would_dead_letter(
    client: redis.Redis, event_id: str
) -> None:
    publisher = StreamPublisher(client, "orders", registry=REGISTRY)
    with pytest.raises(ValueError, match="send\\(\\) would write an entry every consumer"):
        publisher.send(OrderPaid("o-1", 1.0), event_id=event_id)
    assert client.xlen("orders") == 0


# ---------------------------------------------------------------------- refused before XADD


def _outbox_with(tmp_path: Path, *customers: str) -> Any:
    from eda_lesson.patterns.outbox import Outbox
    from eda_lesson.patterns.store import SQLiteEventStore

    store = SQLiteEventStore(tmp_path / "shop.db", REGISTRY)
    outbox = Outbox(store, id_prefix="evt-")
    for number, customer in enumerate(customers, start=1):
        store.append(f"order-o-{number}", [OrderCreated(f"o-{number}", customer, 1.0)], 0)
    return outbox


@pytest.mark.parametrize("partitioned", [False, True])
def test_an_entry_no_consumer_would_take_is_parked_in_the_outbox_and_never_added(
    client: redis.Redis, tmp_path: Path, partitioned: bool
) -> None:
    from eda_lesson.patterns.outbox import Relay
    from eda_lesson.transport.partitions import PartitionedPublisher

    outbox = _outbox_with(tmp_path, "c-1", "c" * 5000, "c-3")
    publisher: Any = (
        PartitionedPublisher(client, "orders", 1, max_entry_bytes=1000)
        if partitioned
        else StreamPublisher(client, "orders", max_entry_bytes=1000)
    )
    assert Relay(outbox, publisher, batch_size=10).publish_pending() == 3
    stream = "orders:p0" if partitioned else "orders"
    sent = [fields["event_id"] for _, fields in client.xrange(stream)]
    assert sent == ["evt-1", "evt-3"]
    (parked,) = outbox.parked()
    assert parked.message.event_id == "evt-2"
    assert "more than max_entry_bytes=1,000 that consumers take" in parked.reason


def test_the_default_bound_of_publishers_is_the_consumers_own(client: redis.Redis) -> None:
    from eda_lesson.transport.redis_streams import DEFAULT_MAX_ENTRY_BYTES

    consumer, _ = _consumer(client)
    assert consumer.max_entry_bytes == DEFAULT_MAX_ENTRY_BYTES
    assert StreamPublisher(client, "orders").max_entry_bytes == DEFAULT_MAX_ENTRY_BYTES
    with pytest.raises(ValueError, match="max_entry_bytes"):
        StreamPublisher(client, "orders", max_entry_bytes=0)


@pytest.mark.parametrize(
    ("event_id", "event_type", "problem"),
    [
        ("evt-1\nforged line", "OrderPaid", "holds a control character"),
        ("", "OrderPaid", "event_id is empty"),
        ("evt-1", "x" * 300, "type is 300 characters long"),
    ],
)
def test_an_id_or_type_every_consumer_refuses_is_refused_by_the_publisher(
    event_id: str, event_type: str, problem: str
) -> None:
    from eda_lesson.patterns.outbox import OutboxMessage, UndeliverableError
    from eda_lesson.transport.redis_streams import outbox_entry

    message = OutboxMessage(1, event_id, "order-o-1", event_type, 1, '{"order_id":"o-1"}')
    with pytest.raises(
        UndeliverableError, match="consumers would dead-letter this entry"
    ) as caught:
        outbox_entry(message)
    assert problem in str(caught.value)
    good = message._replace(event_id="evt-1", event_type="OrderPaid")
    assert outbox_entry(good)["event_id"] == "evt-1"


_FIELD_BYTES = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"evt-1", b" evt-1", b"evt-1 ", b"e\x00", b"x" * 201, b"x" * 200, b"",
                     b"1", b"0", b"01", b"1234567890", b'{"a":NaN}', b'{"a":1}', b"\xff"]),
    st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([b"event_id", b"type", b"version", b"payload", b"extra"]),
        _FIELD_BYTES,
    ),
    st.sampled_from([10, 64, 1024 * 1024]),
)
def test_the_quick_look_at_an_entry_agrees_with_the_field_by_field_check(
    fields: dict[bytes, bytes], max_entry_bytes: int
) -> None:
    from eda_lesson.transport.redis_streams import _envelope, _envelope_checked

    assert _envelope(fields, max_entry_bytes) == _envelope_checked(fields, max_entry_bytes)


@pytest.mark.parametrize(
    "payload", ['{"note":"' + "x" * 200 + '"}', '{"note":"' + "é" * 100 + '"}']
)
def test_the_publisher_counts_an_entry_as_the_consumer_does_to_the_byte(payload: str) -> None:
    from eda_lesson.patterns.outbox import OutboxMessage, UndeliverableError
    from eda_lesson.transport.redis_streams import _envelope, outbox_entry

    message = OutboxMessage(1, "evt-1", "order-o-1", "Noted", 12, payload)
    fields = {str(k).encode(): str(v).encode() for k, v in outbox_entry(message).items()}
    exact = sum(map(len, fields)) + sum(map(len, fields.values()))
    outbox_entry(message, max_entry_bytes=exact)  # the consumer takes it: so does the publisher
    assert _envelope(fields, exact).__class__.__name__ == "_Envelope"
    with pytest.raises(UndeliverableError, match=f"would be {exact:,} bytes"):
        outbox_entry(message, max_entry_bytes=exact - 1)
    assert _envelope(fields, exact - 1).__class__.__name__ == "_Malformed"
