"""What the broker path costs: outbox -> relay -> Redis Streams -> worker, beside raw redis-py.

Run it with ``python benchmarks/bench_broker.py`` (``--quick`` for a smoke run of a few
seconds). It starts its own ``redis-server`` on a free port of 127.0.0.1 in a temporary
folder (no persistence) and stops it at the end. N events (10,000 by default), each an
``OrderCreated`` of about 100 bytes of JSON, go through:

* **raw redis-py**: XADD in pipelined batches, then XREADGROUP in batches with one XACK per
  batch: the least any Redis Streams consumer does, with no decoding and no handler;
* **our relay**: the events wait in a SQLite outbox (WAL, ``synchronous=FULL``); the relay
  reads them in order, publishes each batch in one MULTI and marks it sent;
* **our worker**: XAUTOCLAIM, XREADGROUP, the registry decodes each entry, the processed-ids
  check, the bus dispatches it to a handler, then marks and XACK in one MULTI per batch;
* **end to end**: the relay publishing while worker processes (``python -m
  eda_lesson.transport.worker``) consume, timed until every event is marked processed; with 1, 2
  and 4 workers, and once in one process (relay, then worker) like the raw case.

Batches are the same size everywhere (1,000 by default). The table gives the median events
per second of the rounds and the ratio to the raw redis-py row of the same section. Filling
the outbox (appending to the event store) is not timed: it is the state change, not the
transport.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import redis

from eda_lesson import EventBus
from eda_lesson.patterns.outbox import Outbox, Relay
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem, OrderCreated
from eda_lesson.transport.redis_streams import (
    Fields,
    StreamKeys,
    StreamPublisher,
    connect,
    entry_fields,
)
from eda_lesson.transport.worker import Worker

HERE = Path(__file__).resolve().parent
REGISTRY = EventRegistry.of(OrderCreated)
HANDLED: list[str] = []


# ---------------------------------------------------------------------- the handler


def confirm(event: OrderCreated) -> None:
    """The benchmark's handler: about the least a real one does."""
    HANDLED.append(event.order_id)


def register(bus: EventBus) -> EventRegistry:
    """What the worker processes load: ``--handlers bench_broker:register``."""
    bus.register(OrderCreated, confirm)
    return REGISTRY


def order(number: int) -> OrderCreated:
    return OrderCreated(f"o-{number}", f"c-{number % 97}", 42.5, (LineItem("book", 1),))


# ---------------------------------------------------------------------- a redis-server


class Server:
    """A redis-server of our own on a free port (the benchmark never touches another)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit(
                "redis-server is not installed; install it with `sudo apt-get install redis-server`"
            )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.01)
        self.stop()
        sys.exit("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# ---------------------------------------------------------------------- the cases


@dataclass
class Setup:
    url: str
    count: int
    batch: int
    folder: Path
    _entries: list[Fields] = field(default_factory=list)

    def client(self) -> redis.Redis:
        return connect(self.url)

    def entries(self) -> list[Fields]:
        """The stream entries of the N events, encoded before any clock starts."""
        if not self._entries:
            for number in range(self.count):
                name, schema, payload = REGISTRY.to_json(order(number))
                self._entries.append(entry_fields(f"evt-{number}", name, schema, payload))
        return self._entries


def raw_publish(setup: Setup, client: redis.Redis, stream: str) -> None:
    entries = setup.entries()
    for start in range(0, setup.count, setup.batch):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + setup.batch]:
            pipe.xadd(stream, fields)
        pipe.execute()


def raw_consume(setup: Setup, client: redis.Redis, stream: str) -> None:
    client.xgroup_create(stream, "raw", id="0", mkstream=True)
    seen = 0
    while seen < setup.count:
        reply = client.xreadgroup("raw", "c1", {stream: ">"}, count=setup.batch)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]
        client.xack(stream, "raw", *ids)
        seen += len(ids)


def filled_outbox(setup: Setup, tag: str) -> Outbox:
    folder = Path(tempfile.mkdtemp(dir=setup.folder))
    store = SQLiteEventStore(folder / "shop.db", REGISTRY)
    outbox = Outbox(store, id_prefix=f"{tag}-")
    for start in range(0, setup.count, 100):
        events = [order(n) for n in range(start, min(start + 100, setup.count))]
        store.append(f"orders-{start}", events, expected_version=0)
    store.close()
    return outbox


def in_process_worker(setup: Setup, client: redis.Redis, stream: str) -> Worker:
    return Worker(
        register, client=client, stream=stream, group="shop", consumer="w1",
        batch=setup.batch, log_deliveries=False, progress_every=10**9,
    )  # fmt: skip


def time_raw(setup: Setup, part: str) -> float:
    client = setup.client()
    client.flushdb()
    setup.entries()
    if part == "consume":
        raw_publish(setup, client, "raw")
        return _rate(setup.count, lambda: raw_consume(setup, client, "raw"))
    if part == "publish":
        return _rate(setup.count, lambda: raw_publish(setup, client, "raw"))
    return _rate(
        setup.count,
        lambda: (raw_publish(setup, client, "raw"), raw_consume(setup, client, "raw")),
    )


def time_relay(setup: Setup) -> float:
    client = setup.client()
    client.flushdb()
    outbox = filled_outbox(setup, "relay")
    relay = Relay(outbox, StreamPublisher(client, "orders"), batch_size=setup.batch)
    rate = _rate(setup.count, relay.publish_pending)
    outbox.close()
    return rate


def time_worker(setup: Setup) -> float:
    client = setup.client()
    client.flushdb()
    raw_publish(setup, client, "orders")
    worker = in_process_worker(setup, client, "orders")
    worker.connect()
    HANDLED.clear()
    rate = _rate(setup.count, lambda: worker.run(until_idle=True))
    _check(len(HANDLED), setup.count)
    return rate


def time_one_process(setup: Setup) -> float:
    client = setup.client()
    client.flushdb()
    outbox = filled_outbox(setup, "one")
    relay = Relay(outbox, StreamPublisher(client, "orders"), batch_size=setup.batch)
    worker = in_process_worker(setup, client, "orders")
    worker.connect()
    HANDLED.clear()
    rate = _rate(setup.count, lambda: (relay.publish_pending(), worker.run(until_idle=True)))
    _check(len(HANDLED), setup.count)
    outbox.close()
    return rate


def time_worker_processes(setup: Setup, workers: int) -> float:
    client = setup.client()
    client.flushdb()
    outbox = filled_outbox(setup, f"p{workers}")
    stream = "orders"
    processes = [_start_worker(setup, stream, f"w{n}") for n in range(1, workers + 1)]
    try:
        _wait_for_consumers(client, stream, workers, processes)
        relay = Relay(outbox, StreamPublisher(client, stream), batch_size=setup.batch)
        processed = StreamKeys(stream, "shop").processed

        def everything() -> None:
            relay.publish_pending()
            while client.hlen(processed) < setup.count:
                time.sleep(0.002)

        rate = _rate(setup.count, everything)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        outbox.close()
    return rate


def _start_worker(setup: Setup, stream: str, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eda_lesson.transport.worker",
            "--handlers",
            "bench_broker:register",
            "--stream",
            stream,
            "--group",
            "shop",
            "--consumer",
            name,
            "--redis-url",
            setup.url,
            "--batch",
            str(setup.batch),
            "--block-ms",
            "100",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_consumers(
    client: redis.Redis, stream: str, count: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            sys.exit("a worker process stopped before the benchmark began")
        try:
            if len(client.xinfo_consumers(stream, "shop")) == count:
                return
        except redis.ResponseError:  # no stream or group yet
            pass
        time.sleep(0.02)
    sys.exit("the worker processes did not start within 60 s")


def _rate(events: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return events / (time.perf_counter() - started)


def _check(handled: int, expected: int) -> None:
    if handled != expected:
        raise AssertionError(f"the handler saw {handled} events, expected {expected}")


# ---------------------------------------------------------------------- the report

SECTIONS: list[tuple[str, list[tuple[str, Callable[[Setup], float]]]]] = [
    (
        "publish",
        [
            ("raw redis-py XADD", lambda s: time_raw(s, "publish")),
            ("eda_lesson relay: outbox -> XADD", time_relay),
        ],
    ),
    (
        "consume",
        [
            ("raw redis-py XREADGROUP + XACK", lambda s: time_raw(s, "consume")),
            ("eda_lesson worker: read, decode, dispatch, mark, ack", time_worker),
        ],
    ),
    (
        "end to end",
        [
            ("raw redis-py XADD + XREADGROUP/XACK", lambda s: time_raw(s, "both")),
            ("eda_lesson outbox -> relay -> streams -> worker, 1 process", time_one_process),
            (
                "eda_lesson outbox -> relay -> streams -> 1 worker",
                lambda s: time_worker_processes(s, 1),
            ),
            (
                "eda_lesson outbox -> relay -> streams -> 2 workers",
                lambda s: time_worker_processes(s, 2),
            ),
            (
                "eda_lesson outbox -> relay -> streams -> 4 workers",
                lambda s: time_worker_processes(s, 4),
            ),
        ],
    ),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--batch", type=int, default=1000, help="batch size everywhere")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 events, 1 round")
    args = parser.parse_args(argv)
    count, rounds = (2000, 1) if args.quick else (args.events, args.rounds)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        server = Server(folder)
        try:
            setup = Setup(server.url, count, min(args.batch, count), folder)
            print(_header(setup, rounds))
            rates = {
                name: statistics.median(case(setup) for _ in range(rounds))
                for _, cases in SECTIONS
                for name, case in cases
            }
        finally:
            server.stop()
    print_table(rates)
    print_target(rates)


def _header(setup: Setup, rounds: int) -> str:
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[2]
    return (
        f"{setup.count:,} events, batches of {setup.batch:,}, median of {rounds} "
        f"round{'s' * (rounds != 1)}; Python {platform.python_version()}, redis-py "
        f"{version('redis')}, redis-server {redis_version.removeprefix('v=')}, "
        f"{os.cpu_count()} CPUs"
    )


def print_table(rates: dict[str, float]) -> None:
    for section, cases in SECTIONS:
        reference = rates[cases[0][0]]
        print(f"\n{section}")
        print(f"{'case':62} {'events/s':>10} {'x raw':>6}")
        for name, _ in cases:
            print(f"{name:62} {rates[name]:10,.0f} {rates[name] / reference:6.2f}")


def print_target(rates: dict[str, float]) -> None:
    raw = rates["raw redis-py XADD + XREADGROUP/XACK"]
    print("\ntarget: end to end at least 0.50x raw redis-py, with batching")
    for name, rate in rates.items():
        if "relay -> streams" in name:
            verdict = "met" if rate >= 0.5 * raw else "NOT met"
            print(
                f"  {name.removeprefix('eda_lesson outbox -> relay -> streams -> '):20} "
                f"{rate / raw:5.2f}x: {verdict}"
            )


if __name__ == "__main__":
    main()
