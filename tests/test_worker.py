"""The worker: the same handlers behind a consumer group, as an object and as a command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, free_port, running_redis

from eda_lesson import EventBus, Handler, Subscription
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import (
    RedisUnavailableError,
    StreamPublisher,
    connect,
    processed_by,
    stream_status,
)
from eda_lesson.transport.worker import Worker, registry_for

TESTS = Path(__file__).resolve().parent
REGISTRY = EventRegistry.of(OrderCreated, OrderPaid, OrderCancelled)


# ---------------------------------------------------------------------- handlers for the command


def register(bus: EventBus) -> EventRegistry:
    """``--handlers test_worker:register``: the shop, and a cancellation that always fails."""
    Shop(stock={"book": 100}).register(bus)
    bus.register(OrderCancelled, refuse_cancellation)
    return REGISTRY


def refuse_cancellation(event: OrderCancelled) -> None:
    raise RuntimeError(f"cannot cancel {event.order_id}")


def register_slow(bus: EventBus) -> None:
    """``--handlers test_worker:register_slow``: takes a while per order, and says when the
    first one started (the file named by $STARTED)."""

    def confirm_slowly(event: OrderCreated) -> None:
        Path(os.environ["STARTED"]).touch()
        time.sleep(0.05)

    bus.register(OrderCreated, confirm_slowly)


def register_nothing(bus: EventBus) -> None:
    """Registers no handler at all."""


# ---------------------------------------------------------------------- helpers


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return connect(redis_server.url)


def _publish(client: redis.Redis, events: list[tuple[str, object]], stream: str = "orders") -> None:
    publisher = StreamPublisher(client, stream, registry=REGISTRY)
    for event_id, event in events:
        publisher.send(event, event_id=event_id)


def _orders(count: int, start: int = 1) -> list[tuple[str, object]]:
    return [(f"evt-{n}", OrderCreated(f"o-{n}", "c-7", 10.0)) for n in range(start, start + count)]


def _worker(client: redis.Redis, handlers: Any = None, **options: Any) -> tuple[Worker, Shop]:
    shop = Shop(stock={"book": 100})
    options = {"stream": "orders", "group": "shop", "consumer": "w1", "client": client, **options}
    return Worker(handlers or shop.register, REGISTRY, **options), shop


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "eda_lesson.transport.worker", *arguments]


def _environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def _wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


# ---------------------------------------------------------------------- the object


def test_a_worker_runs_the_shop_handlers_unchanged_and_counts_what_it_did(
    client: redis.Redis,
) -> None:
    _publish(client, [*_orders(3), ("evt-1", OrderCreated("o-1", "c-7", 10.0))])
    worker, shop = _worker(client)
    stats = worker.run(until_idle=True)
    assert repr(stats) == "WorkerStats(w1: 3 handled, 1 duplicate, 0 failed, 0 dead-lettered)"
    assert shop.orders.status == {"o-1": "created", "o-2": "created", "o-3": "created"}
    assert repr(worker) == (
        "Worker(w1 on orders/shop: 3 handled, 1 duplicate, 0 failed, 0 dead-lettered)"
    )
    assert worker.status().pending == 0


def test_run_stop_after_makes_exactly_that_many_deliveries(client: redis.Redis) -> None:
    _publish(client, _orders(10))
    worker, shop = _worker(client, batch=4)
    assert worker.run(stop_after=6).deliveries == 6
    assert len(shop.orders.status) == 6
    assert worker.run(stop_after=4).deliveries == 10, "counted per run, the stats in total"
    assert stream_status(client, "orders", "shop").processed == 10


def test_process_batch_handles_one_batch_for_a_notebook_to_step_through(
    client: redis.Redis,
) -> None:
    _publish(client, _orders(5))
    worker, _ = _worker(client, batch=2)
    sizes = [len(worker.process_batch(wait=False)) for _ in range(4)]
    assert sizes == [2, 2, 1, 0]
    assert worker.stats.batches == 3


def test_two_workers_share_the_entries_of_their_group(client: redis.Redis) -> None:
    _publish(client, _orders(6))
    first, first_shop = _worker(client, consumer="w1", batch=2)
    second, second_shop = _worker(client, consumer="w2", batch=2)
    for _ in range(2):
        first.process_batch(wait=False)
        second.process_batch(wait=False)
    first.process_batch(wait=False)
    assert sorted(first_shop.orders.status) == ["o-1", "o-2", "o-5", "o-6"]
    assert sorted(second_shop.orders.status) == ["o-3", "o-4"]
    who = processed_by(client, "orders", "shop")
    assert sorted(who.values()) == ["w1", "w1", "w1", "w1", "w2", "w2"]


def test_middleware_given_to_the_worker_wraps_every_handler(client: redis.Redis) -> None:
    seen: list[str] = []

    def trace(call: Handler, subscription: Subscription) -> Handler:
        def traced(event: object) -> object:
            seen.append(subscription.name)
            return call(event)

        return traced

    _publish(client, _orders(1))
    worker, _ = _worker(client, middleware=[trace])
    worker.run(until_idle=True)
    assert seen == ["Shop.record_order", "Shop.send_confirmation", "Shop.reserve_stock"]


def test_without_a_registry_the_worker_reads_the_classes_its_handlers_subscribe_to(
    client: redis.Redis,
) -> None:
    shop = Shop()
    worker = Worker(shop.register, client=client, stream="orders", group="shop")
    assert worker.registry.names() == [
        "OrderCancelled",
        "OrderCreated",
        "OrderPaid",
        "OrderShipped",
        "ShipmentRequested",
    ]
    assert Worker(register, client=client).registry is REGISTRY  # what register returned
    bus = EventBus()
    bus.register(object, print)
    with pytest.raises(ValueError, match="registered nothing a worker can read"):
        registry_for(bus)


def test_a_register_function_that_registers_nothing_is_refused(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="register_nothing\\(bus\\) registered no handler"):
        Worker(register_nothing, client=client)
    with pytest.raises(TypeError, match="a function register\\(bus\\)"):
        Worker("shop", client=client)  # type: ignore[arg-type]


def test_the_worker_logs_each_delivery_and_its_progress(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    _publish(client, [*_orders(1), ("evt-1", OrderCreated("o-1", "c", 1.0))])
    _publish(client, [("evt-9", OrderCancelled("o-1"))])
    worker, _ = _worker(client, handlers=register, max_deliveries=1)
    with caplog.at_level(logging.INFO, logger="eda_lesson.transport.worker"):
        worker.run(until_idle=True)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("w1 ready: stream 'orders', group 'shop' at redis://127.0.0.1:")
    assert lines[1:] == [
        "w1 handled OrderCreated evt-1",
        "w1 skipped duplicate OrderCreated evt-1",
        "w1 dead-lettered OrderCancelled evt-9: failed on delivery 1 of 1: "
        "refuse_cancellation: RuntimeError: cannot cancel o-1",
        "w1 progress: 1 handled, 1 duplicate, 0 failed, 1 dead-lettered",
        "w1 stopped: 1 handled, 1 duplicate, 0 failed, 1 dead-lettered",
    ]


def test_stop_from_another_thread_ends_the_run_after_the_batch_in_hand(
    client: redis.Redis,
) -> None:
    worker, _ = _worker(client, block_ms=50)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        _publish(client, _orders(3))
        _wait_for(lambda: worker.stats.handled == 3)
    finally:
        worker.stop("test")
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert worker.stop_reason == "test"


def test_a_worker_reconnects_when_redis_restarts_and_goes_on(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    worker, shop = _worker(connect(redis_server.url, read_timeout=5), block_ms=50)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        _publish(client, _orders(2))
        _wait_for(lambda: worker.stats.handled == 2)
        redis_server.kill()
        time.sleep(0.2)  # the worker meets the dead connection and starts retrying
        redis_server.start()
        _publish(connect(redis_server.url), _orders(2, start=3))  # the old data is gone
        _wait_for(lambda: worker.stats.handled == 4)
    finally:
        worker.stop()
        runner.join(timeout=10)
    assert worker.stats.reconnects >= 1
    assert "o-3" in shop.orders.status and "o-4" in shop.orders.status


def test_a_worker_that_cannot_reach_redis_says_where_it_looked() -> None:
    port = free_port()
    worker = Worker(Shop().register, redis_url=f"redis://127.0.0.1:{port}/0", reconnect_for=0.2)
    with pytest.raises(
        RedisUnavailableError, match=f"cannot reach Redis at redis://127.0.0.1:{port}/0"
    ):
        worker.connect(wait_for=0.2)


# ---------------------------------------------------------------------- the command


def test_help_explains_every_option() -> None:
    run = subprocess.run(_command("--help"), capture_output=True, text=True, timeout=60, check=True)
    for option in (
        "--handlers MODULE:FUNCTION",
        "--registry MODULE:NAME",
        "--middleware MODULE:NAME",
        "--stream",
        "--group",
        "--consumer",
        "--redis-url URL",
        "--batch",
        "--block-ms MS",
        "--max-deliveries N",
        "--claim-idle-ms MS",
        "--journal",
        "--stop-after N",
        "--until-idle",
        "--wait-for-redis SECONDS",
        "--reconnect-for SECONDS",
        "--quiet",
    ):
        assert option in run.stdout, option
    assert "Exit codes: 0 stopped cleanly" in run.stdout
    assert "REDIS_URL" in run.stdout


def test_the_command_exits_3_naming_the_url_when_redis_is_unreachable() -> None:
    port = free_port()
    run = subprocess.run(
        _command(
            "--handlers",
            "test_worker:register",
            "--redis-url",
            f"redis://127.0.0.1:{port}/0",
            "--wait-for-redis",
            "0.2",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert run.returncode == 3
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in run.stderr
    assert f"redis-server --port {port} --bind 127.0.0.1" in run.stderr


@pytest.mark.parametrize(
    ("handlers", "message"),
    [
        ("test_worker", "--handlers takes MODULE:NAME, such as myshop.handlers:register"),
        ("no_such_module_here:register", "cannot import 'no_such_module_here'"),
        ("test_worker:no_such_function", "test_worker has no 'no_such_function'"),
        ("test_worker:TESTS", "is not a function register(bus)"),
        ("test_worker:register_nothing", "register_nothing(bus) registered no handler"),
    ],
)
def test_the_command_exits_2_when_the_handlers_cannot_be_used(handlers: str, message: str) -> None:
    run = subprocess.run(
        _command("--handlers", handlers),
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert run.returncode == 2
    assert message in run.stderr


def test_the_command_handles_the_stream_and_stops_cleanly_on_sigterm(
    redis_server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    _publish(client, [*_orders(3), ("evt-9", OrderCancelled("o-1"))])
    log = tmp_path / "worker.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            _command(
                "--handlers",
                "test_worker:register",
                "--stream",
                "orders",
                "--group",
                "shop",
                "--consumer",
                "w1",
                "--redis-url",
                redis_server.url,
                "--block-ms",
                "100",
                "--max-deliveries",
                "2",
                "--claim-idle-ms",
                "0",
            ),
            stderr=output,
            env=_environment(),
        )
    try:
        _wait_for(lambda: stream_status(client, "orders", "shop").dead_letters == 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
    lines = log.read_text().splitlines()
    assert "w1 handled OrderCreated evt-1" in lines
    assert "w1 progress: 3 handled, 0 duplicates, 1 failed, 0 dead-lettered" in lines
    assert any(
        line.startswith("w1 failed OrderCancelled evt-9 on delivery 1 of 2") for line in lines
    )
    assert any(line.startswith("w1 dead-lettered OrderCancelled evt-9") for line in lines)
    assert lines[-1] == (
        "w1 stopped (SIGTERM, after storing the batch in hand): "
        "3 handled, 0 duplicates, 1 failed, 1 dead-lettered, 1 reclaimed"
    )
    assert stream_status(client, "orders", "shop").pending == 0


def test_sigint_during_a_batch_finishes_and_acknowledges_that_batch(
    redis_server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    _publish(client, _orders(40))
    started = tmp_path / "started"
    process = subprocess.Popen(
        _command(
            "--handlers",
            "test_worker:register_slow",
            "--stream",
            "orders",
            "--group",
            "shop",
            "--consumer",
            "w1",
            "--redis-url",
            redis_server.url,
            "--batch",
            "10",
            "--quiet",
        ),
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(STARTED=str(started)),
    )
    try:
        _wait_for(started.exists)
        process.send_signal(signal.SIGINT)  # about 0.5 s of the first batch still to go
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    status = stream_status(client, "orders", "shop")
    assert (status.processed, status.pending) == (10, 0), "the whole batch, acknowledged"
    assert "w1 stopped (SIGINT, after storing the batch in hand): 10 handled" in stderr


def test_the_command_can_stop_by_itself_when_idle_or_after_n(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    _publish(client, _orders(5))
    common = ("--handlers", "test_worker:register", "--stream", "orders", "--group", "shop",
              "--redis-url", redis_server.url, "--quiet")  # fmt: skip
    first = subprocess.run(
        _command(*common, "--consumer", "w1", "--stop-after", "2", "--batch", "1"),
        capture_output=True, text=True, timeout=60, env=_environment(),
    )  # fmt: skip
    second = subprocess.run(
        _command(*common, "--consumer", "w2", "--until-idle", "--journal"),
        capture_output=True, text=True, timeout=60, env=_environment(),
    )  # fmt: skip
    assert (first.returncode, second.returncode) == (0, 0)
    assert "w1 stopped: 2 handled" in first.stderr
    assert "w2 stopped: 3 handled" in second.stderr
    assert sorted(processed_by(client, "orders", "shop").values()) == ["w1", "w1", "w2", "w2", "w2"]
    assert client.xlen("orders:shop:deliveries") == 3, "only w2 kept a journal"
