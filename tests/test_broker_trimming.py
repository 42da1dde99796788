"""Bounded for ever: the stream and the processed-ids record are trimmed by a rule that never
drops an entry some group still needs, nor an id a copy could still arrive for.

Entries are added with explicit ids (``1000-0``, ``2000-0``, ...), so the stream's own clock,
which every rule here reads, is in the test's hands.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import OrderCancelled, OrderPaid
from eda_lesson.transport.redis_streams import (
    StreamConsumer,
    StreamKeys,
    TrimReport,
    connect,
    processed_by,
    safe_trim_point,
    trim_group,
)
from eda_lesson.transport.worker import Worker

REGISTRY = EventRegistry.of(OrderPaid, OrderCancelled)
KEYS = StreamKeys("orders", "shop")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return connect(redis_server.url)


def _add(client: redis.Redis, at_ms: int, event_id: str, stream: str = "orders") -> None:
    fields = {"event_id": event_id, "type": "OrderPaid", "version": 1,
              "payload": f'{{"order_id":"{event_id}"}}'}  # fmt: skip
    client.xadd(stream, fields, id=f"{at_ms}-0")  # type: ignore[arg-type]


def _fill(client: redis.Redis, count: int = 10, step: int = 1000) -> None:
    """Entries at 1000, 2000, ... ms carrying evt-1, evt-2, ..."""
    pipe = client.pipeline(transaction=False)
    for n in range(1, count + 1):
        fields = {"event_id": f"evt-{n}", "type": "OrderPaid", "version": 1,
                  "payload": f'{{"order_id":"o-{n}"}}'}  # fmt: skip
        pipe.xadd("orders", fields, id=f"{n * step}-0")  # type: ignore[arg-type]
    pipe.execute()


def _consumer(client: redis.Redis, group: str = "shop", **options: Any) -> StreamConsumer:
    bus = EventBus()
    bus.register(OrderPaid, lambda event: None)
    options = {"stream": "orders", "group": group, "consumer": f"{group}-1", "batch": 1000,
               "keep_stream_ms": 0, **options}  # fmt: skip
    return StreamConsumer(client, bus, REGISTRY, **options)


def _ids(client: redis.Redis) -> list[str]:
    return [entry_id for entry_id, _ in client.xrange("orders")]


def connect_raw(client: redis.Redis) -> redis.Redis:
    """The same server, replies as bytes."""
    return redis.Redis(connection_pool=redis.ConnectionPool(**{
        **client.connection_pool.connection_kwargs, "decode_responses": False}))  # fmt: skip


def _trim(client: redis.Redis, **options: Any) -> TrimReport:
    options = {"keep_stream_ms": 0, "approximate": False, **options}
    return trim_group(client, "orders", "shop", **options)


# ---------------------------------------------------------------------- the stream


def test_the_stream_is_never_trimmed_below_what_some_group_has_not_acknowledged(
    client: redis.Redis,
) -> None:
    _fill(client)
    _consumer(client).process_batch(wait=False)  # shop: all ten acknowledged
    client.xgroup_create("orders", "audit", id="0")
    [[_, read]] = client.xreadgroup("audit", "a1", {"orders": ">"}, count=3)
    client.xack("orders", "audit", read[0][0])  # audit holds 2000-0 and 3000-0, not 4000-0 on
    assert safe_trim_point(client, "orders") == "2000-0"
    assert _trim(client).entries == 1
    assert _ids(client)[0] == "2000-0", "the oldest entry audit holds is kept"
    client.xack("orders", "audit", "2000-0", "3000-0")
    assert _trim(client).entries == 2
    assert _ids(client)[0] == "4000-0", "audit has not been given 4000-0 yet: it stays"
    assert _trim(client).entries == 0


def test_a_group_that_has_read_nothing_keeps_the_whole_stream(client: redis.Redis) -> None:
    _fill(client)
    _consumer(client).process_batch(wait=False)
    client.xgroup_create("orders", "late", id="0")
    assert safe_trim_point(client, "orders") == "0-1"
    assert _trim(client).entries == 0 and len(_ids(client)) == 10


def test_a_stream_without_groups_is_not_trimmed(client: redis.Redis) -> None:
    _fill(client)
    assert safe_trim_point(client, "orders") is None
    assert _trim(client) == TrimReport(0, 0, "")
    assert safe_trim_point(client, "nothing-here") is None


def test_entries_younger_than_keep_stream_ms_stay_though_acknowledged(
    client: redis.Redis,
) -> None:
    _fill(client)
    _consumer(client).process_batch(wait=False)
    report = _trim(client, keep_stream_ms=3000)
    assert report.kept_from == "7000-0" and report.entries == 6
    assert _ids(client) == ["7000-0", "8000-0", "9000-0", "10000-0"]


def test_approximate_trimming_never_goes_below_the_safe_point(client: redis.Redis) -> None:
    _fill(client, count=1000, step=1)
    _consumer(client).process_batch(wait=False)
    client.xgroup_create("orders", "audit", id="0")
    client.xreadgroup("audit", "a1", {"orders": ">"}, count=550)
    client.xack("orders", "audit", *[f"{n}-0" for n in range(1, 501)])  # 501-550 pending
    report = _trim(client, approximate=True)
    assert report.kept_from == "501-0"
    assert 0 < report.entries <= 500, "whole nodes of 100 entries, never past 501-0"
    assert _ids(client)[0] <= "501-0" and "501-0" in _ids(client)
    assert len(_ids(client)) == 1000 - report.entries


# ---------------------------------------------------------------------- processed ids


def test_processed_ids_are_forgotten_only_well_behind_what_the_group_still_needs(
    client: redis.Redis,
) -> None:
    _fill(client)
    consumer = _consumer(client)
    consumer.process_batch(wait=False)
    assert client.zscore(KEYS.processed_times, "evt-3") == 3000, "the time of its entry"
    report = _trim(client, remember_processed_ms=3000)
    # The group needs entries from 10000-1 on; ids carried before 7000 ms are forgotten.
    assert report.processed == 6
    assert sorted(processed_by(client, "orders", "shop")) == ["evt-10", "evt-7", "evt-8", "evt-9"]
    assert client.zcard(KEYS.processed_times) == 4
    _add(client, 11_000, "evt-9")  # a re-sent copy, within the remembered time
    assert [d.outcome for d in consumer.process_batch(wait=False).deliveries] == ["duplicate"]


def test_a_lagging_group_remembers_its_processed_ids(client: redis.Redis) -> None:
    _fill(client)
    refused: list[str] = []

    def refuse(event: OrderPaid) -> None:
        if event.order_id == "o-2":
            refused.append(event.order_id)
            raise RuntimeError("not yet")

    bus = EventBus()
    bus.register(OrderPaid, refuse)
    StreamConsumer(client, bus, REGISTRY, stream="orders", group="shop").process_batch(wait=False)
    assert refused == ["o-2"], "evt-2 stays pending: the group still needs 2000-0"
    assert _trim(client, remember_processed_ms=3000).processed == 0
    assert len(processed_by(client, "orders", "shop")) == 9
    assert _ids(client)[0] == "2000-0"


def test_ids_marked_without_a_time_are_dated_by_the_trim_that_finds_them_then_forgotten(
    client: redis.Redis,
) -> None:
    client.hset(KEYS.processed, "evt-old", "w0")  # marked by hand, or by an older version
    _fill(client)
    consumer = _consumer(client)
    consumer.process_batch(wait=False)
    # Remembering nothing beyond the group's position keeps ids of that very millisecond:
    # evt-10, and evt-old, dated now (10000 ms, where the group stands).
    assert _trim(client, remember_processed_ms=0).processed == 9
    assert processed_by(client, "orders", "shop") == {"evt-old": "w0", "evt-10": "shop-1"}
    assert client.zscore(KEYS.processed_times, "evt-old") == 10_000
    _add(client, 20_000, "evt-20")
    consumer.process_batch(wait=False)
    assert _trim(client, remember_processed_ms=5000).processed == 2
    assert processed_by(client, "orders", "shop") == {"evt-20": "shop-1"}


def test_a_time_already_kept_is_never_moved_by_the_dating(client: redis.Redis) -> None:
    _fill(client, count=3)
    _consumer(client).process_batch(wait=False)
    client.hset(KEYS.processed, "evt-hand", "w0")
    _trim(client, remember_processed_ms=10**9)
    assert client.zscore(KEYS.processed_times, "evt-1") == 1000
    assert client.zscore(KEYS.processed_times, "evt-hand") == 3000


# ---------------------------------------------------------------------- trimming is atomic


def test_a_group_created_at_id_0_after_the_point_was_worked_out_keeps_every_entry(
    client: redis.Redis,
) -> None:
    from eda_lesson.transport.redis_streams import _trim_below

    _fill(client)
    _consumer(client).process_batch(wait=False)
    stale = safe_trim_point(client, "orders")
    assert stale == "10000-0", "everything but the newest entry could go"
    client.xgroup_create("orders", "late", id="0")  # between working it out and trimming
    assert _trim_below(client, "orders", stale, approximate=False) == (0, "0-1")
    assert len(_ids(client)) == 10


def test_a_group_moved_back_with_setid_after_the_point_was_worked_out_keeps_its_entries(
    client: redis.Redis,
) -> None:
    from eda_lesson.transport.redis_streams import _trim_below

    _fill(client)
    _consumer(client).process_batch(wait=False)
    client.xgroup_create("orders", "audit", id="$")
    stale = safe_trim_point(client, "orders")
    client.xgroup_setid("orders", "audit", id="4000-0")  # audit wants 4000-1 on again
    removed, kept_from = _trim_below(client, "orders", stale or "", approximate=False)
    assert kept_from == "4000-1" and removed == 4
    assert _ids(client)[0] == "5000-0"


def test_a_group_with_pending_entries_created_meanwhile_keeps_its_oldest_pending(
    client: redis.Redis,
) -> None:
    from eda_lesson.transport.redis_streams import _trim_below

    _fill(client)
    _consumer(client).process_batch(wait=False)
    stale = safe_trim_point(client, "orders")
    client.xgroup_create("orders", "audit", id="2000-0")
    client.xreadgroup("audit", "a1", {"orders": ">"}, count=8)  # 3000-0 .. 10000-0 pending
    assert _trim_below(client, "orders", stale or "", approximate=False) == (2, "3000-0")


# ---------------------------------------------------------------------- held entries


def _hold(client: redis.Redis, stream: str, count: int) -> None:
    for n in range(count):
        client.xadd(stream, {"event_id": f"bad-{n}", "held:reason": "test"})


def test_held_entries_are_trimmed_by_count_and_the_report_says_how_many(
    client: redis.Redis,
) -> None:
    _fill(client)
    _consumer(client).process_batch(wait=False)
    _hold(client, KEYS.dead_letters, 30)
    _hold(client, KEYS.parked, 5)
    report = _trim(client, keep_held=10)
    assert report.held == 20
    assert client.xlen(KEYS.dead_letters) == 10 and client.xlen(KEYS.parked) == 5
    newest = [fields[b"event_id"] for _, fields in connect_raw(client).xrange(KEYS.dead_letters)]
    assert newest == [f"bad-{n}".encode() for n in range(20, 30)], "the newest stay"
    assert "20 held entries trimmed" in repr(report)


def test_held_entries_are_trimmed_by_age_on_the_servers_clock(client: redis.Redis) -> None:
    seconds, _ = client.time()
    now_ms = int(seconds) * 1000
    client.xadd(KEYS.dead_letters, {"event_id": "ancient"}, id=f"{now_ms - 40 * 86_400_000}-0")
    client.xadd(KEYS.dead_letters, {"event_id": "recent"}, id=f"{now_ms - 86_400_000}-0")
    assert _trim(client).held == 1, "30 days by default"
    assert client.xlen(KEYS.dead_letters) == 1
    assert _trim(client, keep_held_ms=None, keep_held=None).held == 0


def test_held_entries_are_all_kept_when_asked(client: redis.Redis) -> None:
    _hold(client, KEYS.parked, 50)
    assert _trim(client, keep_held=None, keep_held_ms=None).held == 0
    assert client.xlen(KEYS.parked) == 50
    with pytest.raises(ValueError, match="keep_held"):
        _trim(client, keep_held=-1)


def test_forgetting_goes_in_chunks_and_the_next_trim_goes_on(client: redis.Redis) -> None:
    _fill(client, count=50, step=10)
    _consumer(client).process_batch(wait=False)
    first = _trim(client, remember_processed_ms=0, chunk=10, max_chunks=2)
    assert first.processed == 20
    assert _trim(client, remember_processed_ms=0, chunk=10, max_chunks=100).processed == 29
    assert client.hlen(KEYS.processed) == 1 and client.zcard(KEYS.processed_times) == 1


# ---------------------------------------------------------------------- the worker


def test_the_worker_trims_at_its_start_and_says_so(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(client, count=300, step=1)
    bus = EventBus()
    bus.register(OrderPaid, lambda event: None)
    options = {"client": client, "stream": "orders", "group": "shop", "batch": 500}
    Worker(bus, REGISTRY, trim_every=0, **options).run(until_idle=True)  # type: ignore[arg-type]
    assert client.xlen("orders") == 300, "trim_every=0: never"
    worker = Worker(bus, REGISTRY, keep_stream_ms=0, remember_processed_ms=0, **options)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="eda_lesson.transport.worker"):
        worker.run(until_idle=True)
    assert worker.stats.trimmed >= 200 and worker.stats.forgotten == 299
    assert client.xlen("orders") == 300 - worker.stats.trimmed
    assert any(
        m.getMessage().startswith(f"worker-1 trimmed {worker.stats.trimmed} stream entries")
        for m in caplog.records
    )


def test_with_the_defaults_a_fresh_stream_is_left_whole(client: redis.Redis) -> None:
    for n in range(300):
        client.xadd("orders", {"event_id": f"e-{n}", "type": "OrderPaid", "version": 1,
                               "payload": '{"order_id":"o"}'})  # fmt: skip
    bus = EventBus()
    bus.register(OrderPaid, lambda event: None)
    worker = Worker(bus, REGISTRY, client=client, stream="orders", group="shop", batch=500)
    worker.run(until_idle=True)
    assert worker.trim() == TrimReport(0, 0, worker.trim().kept_from)
    assert client.xlen("orders") == 300 and client.hlen(KEYS.processed) == 300
