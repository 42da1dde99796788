"""Order per key with several workers: partitioned streams, one owner per partition at a time.

Real parts only: a redis-server on 127.0.0.1, three worker processes, one of them SIGKILLed in
the middle of the run. Each handler call writes a row through an inbox, so the rows say in
which order each key's events were handled, by whom, and that each was handled once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis_server import RedisServer, running_redis

from eda_lesson import EventBus
from eda_lesson.core.messages import Message
from eda_lesson.patterns.inbox import Inbox
from eda_lesson.patterns.outbox import Outbox, Relay
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.transport.partitions import (
    Leases,
    PartitionedPublisher,
    PartitionedWorker,
    partition_of,
    partition_stream,
)
from eda_lesson.transport.redis_streams import connect

STREAM = "steps"
PARTITIONS = 6
KEYS = 10
STEPS = 40


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@dataclass(frozen=True)
class Step(Message):
    key: str
    seq: int


def registry() -> EventRegistry:
    return EventRegistry.of(Step)


def _open_effects(path: str) -> Inbox:
    inbox = Inbox(path)
    inbox.db.execute("CREATE TABLE IF NOT EXISTS handled (key TEXT, seq INTEGER, worker TEXT)")
    return inbox


def _work(url: str, name: str, effects: str, stop_file: str, die_after: int | None) -> None:
    """One worker process: handle steps until the stop file appears, or, given ``die_after``,
    SIGKILL itself as it starts the next event once it has committed that many: it dies in the
    middle of a batch, holding the rest of it pending, whatever the machine's speed."""
    inbox = _open_effects(effects)
    committed = 0

    def record(step: Step, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO handled VALUES (?, ?, ?)", (step.key, step.seq, name))

    def paced(call: Callable[[Step], object], subscription: object) -> Callable[[Step], object]:
        # Outside the inbox's transaction: a worker pausing there would hold the shared file's
        # write lock, and SQLite's back-off lets the others starve it.
        def step_by_step(step: Step) -> object:
            nonlocal committed
            if die_after is not None and committed >= die_after:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.004)
            result = call(step)
            committed += 1
            return result

        return step_by_step

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Step, record, middleware=[paced, inbox.once(name="record")])
    worker = PartitionedWorker(
        bus, registry(), client=connect(url), stream=STREAM, partitions=PARTITIONS,
        group="steps", consumer=name, lease_ms=800, batch=10,
    )  # fmt: skip
    while not Path(stop_file).exists():
        if not worker.process_round():
            time.sleep(0.01)
    worker.close()


def _handled(path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path, timeout=30) as db:
        return [
            tuple(row) for row in db.execute("SELECT key, seq, worker FROM handled ORDER BY rowid")
        ]  # type: ignore[misc]


def _publish_all(store_path: Path, url: str) -> Relay:
    store = SQLiteEventStore(store_path, registry())
    outbox = Outbox(store, id_prefix="row-")
    for seq in range(STEPS):
        for key in range(KEYS):
            stream_id = f"k-{key}"
            store.append(stream_id, [Step(stream_id, seq, event_id=f"{stream_id}/{seq}")], seq)
    relay = Relay(outbox, PartitionedPublisher(connect(url), STREAM, PARTITIONS), batch_size=50)
    relay.publish_pending()
    return relay


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("waited too long")
        time.sleep(0.05)


def test_three_workers_one_killed_handle_each_keys_events_in_order_exactly_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    effects, stop = tmp_path / "effects.db", tmp_path / "stop"
    _open_effects(str(effects)).close()
    spawn = multiprocessing.get_context("spawn")
    die_after = {"w1": 5, "w2": None, "w3": None}
    workers = {
        name: spawn.Process(
            target=_work, args=(redis_server.url, name, str(effects), str(stop), dies)
        )
        for name, dies in die_after.items()
    }
    for process in workers.values():
        process.start()
    leases = Leases(connect(redis_server.url), STREAM, lease_ms=800)
    owners = lambda: {leases.owner_of(partition) for partition in range(PARTITIONS)}  # noqa: E731
    _wait_for(lambda: owners() == {"w1", "w2", "w3"}, 60)  # each holds its share
    _publish_all(tmp_path / "store.db", redis_server.url)
    killed = workers["w1"]
    killed.join(60)  # w1 kills itself in the middle of a batch (see _work)
    assert killed.exitcode == -signal.SIGKILL, f"w1 ended with {killed.exitcode}"
    _wait_for(lambda: len(_handled(effects)) >= KEYS * STEPS, 90)
    stop.touch()
    for name in ("w2", "w3"):
        workers[name].join(30)
        assert workers[name].exitcode == 0, name
    handled = _handled(effects)
    for key in range(KEYS):
        seqs = [seq for k, seq, _ in handled if k == f"k-{key}"]
        assert seqs == list(range(STEPS)), f"k-{key} handled as {seqs}"
    by_killed = {k for k, _, worker in handled if worker == "w1"}
    assert by_killed, "w1 handled nothing before it was killed: the test proves nothing"
    taken_over = {k for k, _, worker in handled if worker != "w1" and k in by_killed}
    assert taken_over, "nobody took over the partitions of the killed worker"


def test_one_key_always_lands_in_the_same_partition() -> None:
    assert partition_of("order-o-1", 8) == partition_of("order-o-1", 8)
    spread = {partition_of(f"order-o-{n}", 8) for n in range(200)}
    assert spread == set(range(8))
    assert partition_stream("orders", 3) == "orders:p3"


def test_a_lease_is_held_by_one_owner_and_runs_out_when_not_renewed(
    redis_server: RedisServer,
) -> None:
    leases = Leases(connect(redis_server.url), "s", lease_ms=200)
    assert leases.acquire(0, "a") and not leases.acquire(0, "b")
    assert leases.renew(0, "a") and not leases.renew(0, "b")
    time.sleep(0.3)
    assert leases.owner_of(0) is None and leases.acquire(0, "b")
    leases.release(0, "a")  # not a's any more: nothing happens
    assert leases.owner_of(0) == "b"
    leases.release(0, "b")
    assert leases.owner_of(0) is None


def test_workers_share_the_partitions_out_evenly_and_a_leaving_one_hands_them_over(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url)
    one = PartitionedWorker(
        EventBus(), registry(), client=client, stream="even", partitions=6, consumer="one"
    )
    assert len(one.rebalance()) == 6
    two = PartitionedWorker(
        EventBus(), registry(), client=client, stream="even", partitions=6, consumer="two"
    )
    two.rebalance()
    one.rebalance()  # sees two workers: gives up half
    assert len(two.rebalance()) == 3 and len(one.owned) == 3
    assert set(one.owned).isdisjoint(two.owned)
    one.close()
    assert sorted(two.rebalance()) == list(range(6))


def test_bad_settings_are_refused(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    with pytest.raises(ValueError, match="partitions"):
        PartitionedPublisher(client, "s", 0)
    with pytest.raises(ValueError, match="lease_ms"):
        Leases(client, "s", lease_ms=5)


def test_in_order_a_failed_entry_is_handled_again_before_anything_after_it(
    redis_server: RedisServer,
) -> None:
    from eda_lesson.transport.redis_streams import StreamConsumer, StreamPublisher

    client = connect(redis_server.url)
    publisher = StreamPublisher(client, "one", registry=registry())
    for seq in range(5):
        publisher.send(Step("k", seq), event_id=f"k/{seq}")
    seen: list[int] = []
    failures = {2: 2}  # step 2 fails twice, then works

    def record(step: Step) -> None:
        if failures.get(step.seq, 0):
            failures[step.seq] -= 1
            raise ConnectionError("the printer is busy")
        seen.append(step.seq)

    bus = EventBus()
    bus.register(Step, record)
    consumer = StreamConsumer(
        client, bus, registry(), stream="one", group="g", consumer="c",
        batch=10, block_ms=None, claim_idle_ms=0, in_order=True,
    )  # fmt: skip
    while consumer.process_batch(wait=False).deliveries:
        pass
    assert seen == [0, 1, 2, 3, 4]
    assert [d.outcome for d in consumer.deliveries][:4] == [
        "handled",
        "handled",
        "failed",
        "failed",
    ]


def test_a_batch_is_acknowledged_only_after_its_around_batch_block_committed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A commit that fails (the disk is full, the process dies) leaves the whole batch
    pending, effects and marks gone together, so the redelivery does each effect once."""
    from contextlib import contextmanager

    from eda_lesson.transport.redis_streams import StreamConsumer, StreamPublisher

    client = connect(redis_server.url)
    publisher = StreamPublisher(client, "batched", registry=registry())
    for seq in range(3):
        publisher.send(Step("k", seq), event_id=f"k/{seq}")
    inbox = _open_effects(str(tmp_path / "effects.db"))

    def record(step: Step, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO handled VALUES (?, ?, ?)", (step.key, step.seq, "c"))

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Step, record, middleware=[inbox.once(name="record")])

    @contextmanager
    def batch_that_cannot_commit() -> Iterator[None]:
        with inbox.batch():
            yield
            raise OSError("disk full")

    settings = {"stream": "batched", "group": "g", "consumer": "c", "block_ms": None}
    failing = StreamConsumer(
        client, bus, registry(), around_batch=batch_that_cannot_commit, **settings
    )  # type: ignore[arg-type]
    with pytest.raises(OSError):
        failing.process_batch(wait=False)
    assert (
        _handled(tmp_path / "effects.db") == []
        and len(client.xpending_range("batched", "g", "-", "+", 10)) == 3
    )
    working = StreamConsumer(
        client, bus, registry(), around_batch=inbox.batch, claim_idle_ms=0, **settings
    )  # type: ignore[arg-type]
    working.process_batch(wait=False)
    assert [seq for _, seq, _ in _handled(tmp_path / "effects.db")] == [0, 1, 2]
    assert client.xpending_range("batched", "g", "-", "+", 10) == []


def test_without_the_redis_record_the_inbox_alone_deduplicates_and_nothing_is_marked_in_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from eda_lesson.transport.redis_streams import StreamConsumer, StreamKeys, entry_fields

    client = connect(redis_server.url)
    inbox = _open_effects(str(tmp_path / "effects.db"))

    def record(step: Step, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO handled VALUES (?, ?, ?)", (step.key, step.seq, "w"))

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Step, record, middleware=[inbox.once(name="record")])
    consumer = StreamConsumer(client, bus, registry(), stream=STREAM, block_ms=None,
                              around_batch=inbox.batch, deduplicate=False)  # fmt: skip

    def send(*ids: str) -> None:
        for event_id in ids:
            _, _, payload = registry().to_json(Step("k", int(event_id[-1]), event_id=event_id))
            client.xadd(STREAM, entry_fields(event_id, "Step", 1, payload))  # type: ignore[arg-type]

    send("e-1", "e-2", "e-1")  # a copy inside one batch
    first = consumer.process_batch(wait=False)
    assert [d.outcome for d in first.deliveries] == ["handled", "handled", "duplicate"]
    send("e-2")  # a copy in a later batch: it reaches the handler, the inbox skips it
    second = consumer.process_batch(wait=False)
    assert [d.outcome for d in second.deliveries] == ["handled"]
    assert inbox.skipped.total == 1
    rows = inbox.db.execute("SELECT key, seq FROM handled ORDER BY rowid").fetchall()
    assert rows == [("k", 1), ("k", 2)]
    assert client.exists(StreamKeys(STREAM, "workers").processed) == 0
    assert client.xpending(STREAM, "workers")["pending"] == 0
