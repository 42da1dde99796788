"""The broker path under real failures: worker processes SIGKILLed mid-batch, a relay killed
between publishing and marking, Redis killed and restarted, poison messages.

Everything is real: a redis-server on a free port of 127.0.0.1, worker processes started as
``python -m eda_lesson.transport.worker --handlers test_broker_reliability:register``, the
outbox in a SQLite file. The handlers below record what they do in a SQLite file shared by every
process:
``calls`` gets a row per handler call, ``confirmations`` a row per order, written with
``INSERT OR IGNORE`` (an idempotent effect keyed by the order). So the tests can tell apart
"a handler ran twice" (allowed: delivery is at least once) from "an order was confirmed
twice" (never), and "nothing was lost" (every order confirmed).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.outbox import Outbox, Relay
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import OrderCancelled, OrderCreated
from eda_lesson.transport.redis_streams import (
    StreamPublisher,
    connect,
    processed_by,
    read_dead_letters,
    read_journal,
    read_parked,
    stream_status,
)

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
REGISTRY = EventRegistry.of(OrderCreated, OrderCancelled)
STREAM, GROUP = "orders", "shop"


# ---------------------------------------------------------------------- the workers' handlers

_effects: sqlite3.Connection | None = None
_calls_here = 0


def register(bus: EventBus) -> EventRegistry:
    """What every worker process of these tests runs."""
    bus.register(OrderCreated, confirm_order)
    bus.register(OrderCancelled, refuse_cancellation)
    return REGISTRY


def confirm_order(event: OrderCreated) -> None:
    _hang_if_asked()
    db = _effects_db()
    with db:
        db.execute("INSERT INTO calls VALUES (?, ?, 'confirm')", (event.order_id, _worker()))
        db.execute("INSERT OR IGNORE INTO confirmations VALUES (?, ?)", (event.order_id, _worker()))


def refuse_cancellation(event: OrderCancelled) -> None:
    db = _effects_db()
    with db:
        db.execute("INSERT INTO calls VALUES (?, ?, 'refuse')", (event.order_id, _worker()))
    raise RuntimeError(f"cannot cancel {event.order_id}")


def _hang_if_asked() -> None:
    """With HANG_AFTER=n, the n-th call in this process stops dead (before its effect), after
    touching HANG_MARKER: the test then SIGKILLs a worker known to be inside a batch."""
    global _calls_here
    _calls_here += 1
    if _calls_here == int(os.environ.get("HANG_AFTER", "0")):
        Path(os.environ["HANG_MARKER"]).touch()
        time.sleep(3600)


def _worker() -> str:
    return os.environ.get("WORKER_NAME", "test")


def _effects_db(path: str | None = None) -> sqlite3.Connection:
    global _effects
    if path is not None:
        return _open_effects(path)
    if _effects is None:
        _effects = _open_effects(os.environ["EFFECTS_DB"])
    return _effects


def _open_effects(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # safe against a killed process, which is our case
    db.execute("CREATE TABLE IF NOT EXISTS calls (order_id TEXT, worker TEXT, kind TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS confirmations (order_id TEXT PRIMARY KEY, worker TEXT)")
    return db


# ---------------------------------------------------------------------- processes


class Workers:
    """Worker processes of one test; every one is stopped (or killed) at the end."""

    def __init__(self, server: RedisServer, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.effects = folder / "effects.db"
        _effects_db(str(self.effects)).close()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *options: str, **env: str) -> subprocess.Popen[bytes]:
        path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
        environment = {
            **os.environ,
            "PYTHONPATH": path,
            "EFFECTS_DB": str(self.effects),
            "WORKER_NAME": name,
            **env,
        }
        command = [
            sys.executable, "-m", "eda_lesson.transport.worker",
            "--handlers", "test_broker_reliability:register",
            "--stream", STREAM, "--group", GROUP, "--consumer", name,
            "--redis-url", self.server.url, "--block-ms", "100", *options,
        ]  # fmt: skip
        with open(self.log_path(name), "wb") as log:
            process = subprocess.Popen(command, stderr=log, env=environment)
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text()

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, *names: str) -> None:
        """SIGTERM, as an operator would; each must exit 0 (its log tells why not)."""
        for name in names:
            self.processes[name].send_signal(signal.SIGTERM)
        for name in names:
            code = self.processes[name].wait(timeout=20)
            assert code == 0, f"worker {name} exited {code}:\n{self.log(name)}"

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def calls(self, kind: str = "confirm") -> Counter[str]:
        with _effects_db(str(self.effects)) as db:
            rows = db.execute("SELECT order_id FROM calls WHERE kind = ?", (kind,)).fetchall()
        return Counter(order_id for (order_id,) in rows)

    def confirmations(self) -> list[str]:
        with _effects_db(str(self.effects)) as db:
            rows = db.execute("SELECT order_id FROM confirmations ORDER BY order_id").fetchall()
        return [order_id for (order_id,) in rows]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@contextmanager
def worker_processes(server: RedisServer, folder: Path) -> Iterator[Workers]:
    group = Workers(server, folder)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    with worker_processes(redis_server, tmp_path) as group:
        yield group


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _order_ids(count: int) -> list[str]:
    return sorted(f"o-{n:03d}" for n in range(1, count + 1))


def _publish_orders(client: redis.Redis, numbers: range) -> None:
    publisher = StreamPublisher(client, STREAM, registry=REGISTRY)
    for n in numbers:
        publisher.send(OrderCreated(f"o-{n:03d}", "c-7", 10.0), event_id=f"evt-{n}")


def _wait_for_consumers(client: redis.Redis, *names: str) -> None:
    """Until the workers have joined the group (they do once they reach Redis)."""
    _wait_for(
        lambda: set(names) <= set(stream_status(client, STREAM, GROUP).consumers),
        f"workers {', '.join(names)} to join the group",
    )


def _processed(client: redis.Redis) -> int:
    return int(client.hlen(f"{STREAM}:{GROUP}:processed"))


# ---------------------------------------------------------------------- the tests


def test_a_worker_sigkilled_mid_batch_loses_nothing_and_every_order_is_confirmed_once(
    redis_server: RedisServer, workers: Workers
) -> None:
    client = connect(redis_server.url)
    _publish_orders(client, range(1, 201))
    marker = workers.folder / "hung"
    workers.start(
        "a", "--batch", "10", "--claim-idle-ms", "1000", HANG_AFTER="15", HANG_MARKER=str(marker)
    )
    _wait_for(marker.exists, "worker a to stop dead in its second batch")
    workers.kill("a")  # orders 11-14 confirmed, not marked; 11-20 pending for a dead worker
    workers.start("b", "--batch", "10", "--claim-idle-ms", "1000")
    workers.start("c", "--batch", "10", "--claim-idle-ms", "1000")
    _wait_for_consumers(client, "b", "c")
    _wait_for(lambda: _processed(client) == 200, "every order to be processed")
    workers.stop("b", "c")

    assert workers.confirmations() == _order_ids(200), "nothing lost, nothing confirmed twice"
    calls = workers.calls()
    assert all(calls[order] == 2 for order in ("o-011", "o-012", "o-013", "o-014")), (
        "the orders the dead worker confirmed without marking ran again: duplicates, absorbed"
    )
    # More duplicates appear only on a machine so loaded that a live worker's batch outlasts
    # the idle time and is reclaimed under it; they are absorbed the same way.
    assert max(calls.values()) <= 2
    who = Counter(processed_by(client, STREAM, GROUP).values())
    assert who["a"] == 10 and who["b"] + who["c"] == 190
    status = stream_status(client, STREAM, GROUP)
    assert (status.pending, status.dead_letters) == (0, 0)
    assert "reclaimed" in workers.log("b") + workers.log("c")


_RELAY_UNTIL_MARK = """
import sys, time
from pathlib import Path
from eda_lesson.shop.order import order_registry
from eda_lesson.patterns.outbox import Outbox, Relay
from eda_lesson.transport.redis_streams import StreamPublisher, connect
from eda_lesson.patterns.store import SQLiteEventStore

def stop_dead(batch):
    Path(sys.argv[3]).touch()
    time.sleep(3600)

store = SQLiteEventStore(sys.argv[1], order_registry())
relay = Relay(Outbox(store), StreamPublisher(connect(sys.argv[2]), "orders"), before_mark=stop_dead)
relay.publish_pending()
"""


def test_a_relay_killed_between_publish_and_mark_resends_and_the_duplicates_are_absorbed(
    redis_server: RedisServer, workers: Workers
) -> None:
    client = connect(redis_server.url)
    store = SQLiteEventStore(workers.folder / "shop.db", REGISTRY)
    outbox = Outbox(store, id_prefix="evt-")
    _append_orders(store, range(1, 31))
    marker = workers.folder / "published"
    relay = subprocess.Popen(
        [sys.executable, "-c", _RELAY_UNTIL_MARK, store.path, redis_server.url, str(marker)]
    )
    try:
        _wait_for(marker.exists, "the relay to publish its batch")
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
    assert outbox.counts() == (0, 30), "published, never marked sent"
    assert client.xlen(STREAM) == 30

    workers.start("w1", "--journal")
    _wait_for(lambda: _processed(client) == 30, "the first copies to be handled")
    Relay(outbox, StreamPublisher(client, STREAM)).publish_pending()  # the restarted relay
    assert outbox.counts() == (30, 0)
    _wait_for(lambda: len(read_journal(client, STREAM, GROUP)) == 60, "the re-sent copies")
    workers.stop("w1")

    assert client.xlen(STREAM) == 60
    assert read_journal(client, STREAM, GROUP).counts() == {
        "handled": 30,
        "duplicate": 30,
        "failed": 0,
        "parked": 0,
        "dead-lettered": 0,
    }
    assert set(workers.calls().values()) == {1}, "no handler saw a re-sent copy"
    assert workers.confirmations() == _order_ids(30)


def test_workers_reconnect_after_redis_restarts_and_nothing_acknowledged_is_lost(
    tmp_path: Path,
) -> None:
    with (
        running_redis(tmp_path / "redis", appendonly=True) as server,
        worker_processes(server, tmp_path) as workers,
    ):
        client = connect(server.url)
        store = SQLiteEventStore(tmp_path / "shop.db", REGISTRY)
        outbox = Outbox(store, id_prefix="evt-")
        stop_relay = threading.Event()
        relay = Relay(outbox, StreamPublisher(connect(server.url), STREAM), batch_size=10)
        follower = threading.Thread(
            target=relay.run, args=(stop_relay,), kwargs={"poll_seconds": 0.01, "retry_for": 20}
        )
        options = ("--claim-idle-ms", "500", "--batch", "10", "--reconnect-for", "20")
        workers.start("w1", *options)
        workers.start("w2", *options)
        _wait_for_consumers(client, "w1", "w2")
        follower.start()
        try:
            _append_orders(store, range(1, 31))
            _wait_for(lambda: _processed(client) >= 10, "some orders to be acknowledged")
            acknowledged = processed_by(client, STREAM, GROUP)
            server.kill()
            _append_orders(store, range(31, 46))  # the shop keeps taking orders meanwhile
            time.sleep(0.3)
            server.start()  # same port, same folder: it reads its append-only file back
            _append_orders(store, range(46, 61))
            _wait_for(lambda: _processed(client) == 60, "every order after the restart")
            # Acknowledgements of the last second before the kill may be lost with the
            # append-only file's tail: those entries come back pending, and are reclaimed (as
            # duplicates) once idle. Wait for that too before stopping the workers.
            _wait_for(
                lambda: stream_status(client, STREAM, GROUP).pending == 0,
                "the entries whose acknowledgements the restart lost to be reclaimed",
            )
        finally:
            stop_relay.set()
            follower.join(timeout=20)
        workers.stop("w1", "w2")

        after = processed_by(client, STREAM, GROUP)
        assert acknowledged.items() <= after.items(), "an acknowledged event was forgotten"
        assert workers.confirmations() == _order_ids(60)
        assert outbox.counts() == (60, 0)
        assert stream_status(client, STREAM, GROUP).pending == 0
        logs = workers.log("w1") + workers.log("w2")
        assert "lost Redis at" in logs and "reconnected to Redis" in logs


def _append_orders(store: SQLiteEventStore, numbers: range) -> None:
    for n in numbers:
        store.append(f"order-{n}", [OrderCreated(f"o-{n:03d}", "c-7", 10.0)], expected_version=0)


def test_poison_messages_end_in_the_dead_letter_stream_and_the_worker_keeps_going(
    redis_server: RedisServer, workers: Workers
) -> None:
    client = connect(redis_server.url)
    raw = redis.Redis(port=redis_server.port)
    _publish_orders(client, range(1, 6))
    client.xadd(STREAM, {"event_id": "bad-1", "type": "Refund", "version": 1, "payload": "{}"})
    client.xadd(STREAM, {"event_id": "bad-2", "type": "OrderCreated", "version": 1,
                         "payload": '{"order_id": "o-x", '})  # fmt: skip
    StreamPublisher(client, STREAM, registry=REGISTRY).send(
        OrderCancelled("o-001"), event_id="bad-3"
    )
    raw.xadd(STREAM, {"event_id": b"bad-4\xff", "type": "OrderCreated", "version": 1,
                      "payload": "{}"})  # fmt: skip
    nameless = '{"order_id": "o-y", "customer_id": "c", "total": 1.0}'
    client.xadd(STREAM, {"event_id": "", "type": "OrderCreated", "version": 1,
                         "payload": nameless})  # fmt: skip
    _publish_orders(client, range(6, 11))
    workers.start("w1", "--max-deliveries", "3", "--claim-idle-ms", "100")
    _wait_for(
        lambda: len(read_dead_letters(client, STREAM, GROUP)) == 4 and _processed(client) == 10,
        "four dead letters and ten orders",
    )
    _publish_orders(client, range(11, 16))
    _wait_for(lambda: _processed(client) == 15, "the orders sent after the poison")
    workers.stop("w1")

    letters = {letter.event_id: letter for letter in read_dead_letters(client, STREAM, GROUP)}
    assert letters["bad-2"].reason.startswith(
        "MalformedEventError: OrderCreated v1: the payload is not valid JSON"
    )
    assert letters["bad-3"].reason == (
        "failed on delivery 3 of 3: refuse_cancellation: RuntimeError: cannot cancel o-001"
    )
    assert letters["bad-4\\xff"].reason.startswith("malformed entry: event_id 'bad-4\\xff'")
    assert letters[""].reason.startswith("malformed entry: event_id is empty")
    assert [letters[k].deliveries for k in ("bad-2", "bad-3", "bad-4\\xff", "")] == [1, 3, 1, 1]
    [parked] = read_parked(client, STREAM, GROUP)
    assert parked.event_id == "bad-1"
    assert parked.reason.startswith("UnknownEventTypeError: unknown event type 'Refund'")
    assert workers.calls("refuse") == Counter({"o-001": 3})
    assert workers.confirmations() == _order_ids(15)
    assert stream_status(client, STREAM, GROUP).pending == 0
    log = workers.log("w1")
    assert log.count("dead-lettered") >= 4 and "parked Refund bad-1" in log
