"""A soak run: many events through outbox, relay, partitioned streams and three workers, while
workers are killed and Redis restarts, then a check that nothing was lost or done twice.

Run it with ``python benchmarks/bench_soak.py`` (100,000 events; ``--quick`` for a smoke run of
a few thousand). It starts its own ``redis-server`` (append-only file, so a restart keeps the
streams) on a free port of 127.0.0.1, fills a SQLite event store whose outbox holds one row per
event (not timed), then times, from the relay's first batch until the last effect is committed:

* the relay publishing the outbox to ``--partitions`` partition streams by key;
* ``--workers`` worker processes, each a :class:`~eda_lesson.transport.partitions.PartitionedWorker`
  whose one handler writes a row through an :class:`~eda_lesson.patterns.inbox.Inbox`;
* every ``--kill-every`` seconds one worker SIGKILLed and a new one started in its place (forked
  from a server that imported the package once, as a preforking supervisor does), and Redis
  stopped and started again once, at about 40% of the run.

It then checks, and says so, that every event has exactly one effect row, that the events of
each key were handled in the order they were appended, and prints events per second beside raw
redis-py on the same server (XADD in pipelined batches, XREADGROUP and XACK per batch, no
decoding and no handler), with their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from eda_lesson import EventBus
from eda_lesson.core.messages import Message
from eda_lesson.patterns.inbox import Inbox
from eda_lesson.patterns.outbox import Outbox, Relay
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.transport.partitions import PartitionedPublisher, PartitionedWorker
from eda_lesson.transport.redis_streams import RedisUnavailableError, connect, entry_fields

STREAM, GROUP, KEYS = "soak", "soak", 200


@dataclass(frozen=True)
class Step(Message):
    key: str
    seq: int


def registry() -> EventRegistry:
    return EventRegistry.of(Step)


# ---------------------------------------------------------------------- redis, restartable


class Server:
    """A redis-server of our own, with an append-only file so that a restart keeps the data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = shutil.which("redis-server") or sys.exit(
            "redis-server is not installed; install it with `sudo apt-get install redis-server`"
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.folder),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(1000):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.01)
        sys.exit("redis-server did not start")

    def restart(self) -> None:
        self.process.terminate()  # a clean shutdown: the append-only file is flushed
        self.process.wait(timeout=30)
        self.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# ---------------------------------------------------------------------- one worker process


def work(url: str, name: str, effects: str, partitions: int, batch: int) -> None:
    inbox = Inbox(effects, synchronous="NORMAL")

    def record(step: Step, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO effects VALUES (?, ?)", (step.key, step.seq))

    bus = EventBus(dependencies={"db": inbox.db})
    bus.register(Step, record, middleware=[inbox.once(name="record")])
    client = connect(url)
    worker = PartitionedWorker(
        bus, registry(), client=client, stream=STREAM, partitions=partitions,
        group=GROUP, consumer=name, lease_ms=1000, batch=batch, around_batch=inbox.batch,
        deduplicate=False,  # the inbox deduplicates, in the effect's own transaction
    )  # fmt: skip
    reported = 0
    while True:
        try:
            delivered = worker.process_round()
            if inbox.skipped.total != reported:
                reported = inbox.skipped.total
                client.hset("soak:skips", name, reported)
        except (RedisUnavailableError, redis.ConnectionError):
            time.sleep(0.1)  # Redis restarts: try again
            continue
        if not delivered:
            time.sleep(0.005)


# ---------------------------------------------------------------------- the run


def fill(folder: Path, count: int) -> Outbox:
    store = SQLiteEventStore(folder / "store.db", registry(), synchronous="NORMAL")
    outbox = Outbox(store, id_prefix="row-")
    per_key = count // KEYS
    for key in range(KEYS):
        stream_id = f"k-{key}"
        events = [Step(stream_id, seq, event_id=f"{stream_id}/{seq}") for seq in range(per_key)]
        store.append(stream_id, events, expected_version=0)
    return outbox


def effects_count(path: Path) -> int:
    """How many effect rows there are; rows are never deleted, so the last rowid says it
    without the full count's scan (the run looks every 50 ms; check() counts for real)."""
    with sqlite3.connect(path, timeout=60) as db:
        return int(db.execute("SELECT MAX(rowid) FROM effects").fetchone()[0] or 0)


def relay_until_sent(outbox: Outbox, publisher: PartitionedPublisher) -> None:
    relay = Relay(outbox, publisher, batch_size=1000)
    while True:
        try:
            if not relay.publish_pending():
                return
        except (RedisUnavailableError, redis.ConnectionError):
            time.sleep(0.1)


def raw_reference(url: str, count: int, batch: int) -> float:
    client = redis.Redis.from_url(url)
    fields = [
        entry_fields(f"raw/{n}", "Step", 1, f'{{"key": "k", "seq": {n}}}') for n in range(count)
    ]
    started = time.perf_counter()
    for start in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        for entry in fields[start : start + batch]:
            pipe.xadd("raw", entry)  # type: ignore[arg-type]
        pipe.execute()
    client.xgroup_create("raw", "raw", id="0")
    seen = 0
    while seen < count:
        reply = client.xreadgroup("raw", "c", {"raw": ">"}, count=batch)
        ids = [entry_id for _, entries in reply for entry_id, _ in entries]  # type: ignore[union-attr]
        client.xack("raw", "raw", *ids)
        seen += len(ids)
    rate = count / (time.perf_counter() - started)
    client.delete("raw")
    return rate


def raw_rounds(url: str, count: int, batch: int, rounds: int) -> list[float]:
    """Several rounds of the raw reference: on a shared machine one round can be off by half,
    and the ratio is only as good as the reference (the median is used)."""
    return [raw_reference(url, count, batch) for _ in range(rounds)]


def run(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    server = Server(folder)
    # Replacement workers fork from a server that has imported the package once, as a
    # preforking supervisor starts them: a restart then costs milliseconds of the two cores
    # instead of an interpreter start and its imports (about 0.6 s each).
    spawn = multiprocessing.get_context("forkserver")
    spawn.set_forkserver_preload(["bench_soak", "eda_lesson.transport.partitions", "sqlite3"])
    effects = folder / "effects.db"
    Inbox(effects).db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, seq INTEGER)")
    outbox = fill(folder, args.events)
    total = outbox.counts()[1]
    raw_before = raw_rounds(server.url, min(total, 50_000), args.batch, 2)
    workers: dict[str, multiprocessing.process.BaseProcess] = {}
    born = 0

    def start_worker() -> None:
        nonlocal born
        born += 1
        name = f"w{born}"
        options = (server.url, name, str(effects), args.partitions, args.batch)
        workers[name] = spawn.Process(target=work, args=options, daemon=True)
        workers[name].start()

    for _ in range(args.workers):
        start_worker()
    kills, restarted, done = 0, False, threading.Event()
    started = time.perf_counter()
    relay = threading.Thread(
        target=relay_until_sent,
        args=(outbox, PartitionedPublisher(connect(server.url), STREAM, args.partitions)),
    )
    relay.start()
    next_kill = time.monotonic() + args.kill_every
    while (handled := effects_count(effects)) < total:
        if time.monotonic() - started > args.timeout:
            print(f"FAILED: only {handled} of {total} effects after {args.timeout} s")
            return 1
        if time.monotonic() >= next_kill:
            victim = sorted(workers)[kills % len(workers)]
            os.kill(workers.pop(victim).pid, signal.SIGKILL)  # type: ignore[arg-type]
            kills += 1
            start_worker()
            next_kill = time.monotonic() + args.kill_every
        if not restarted and handled >= total * 0.4:
            server.restart()
            restarted = True
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    done.set()
    relay.join(60)
    skips = sum(int(v) for v in connect(server.url).hvals("soak:skips"))
    for process in workers.values():
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
    ok = check(effects, total)
    ours = total / elapsed
    raws = sorted(raw_before + raw_rounds(server.url, min(total, 50_000), args.batch, 3))
    raw = raws[len(raws) // 2]
    server.stop()
    print(f"events: {total:,} in {KEYS} keys, {args.partitions} partitions, {args.workers} workers")
    print(f"workers SIGKILLed: {kills}, Redis restarted: {'once' if restarted else 'no'}")
    print(f"duplicates absorbed by the inbox (at least): {skips:,}")
    print(f"{'case':<44} {'events/s':>10} {'ratio':>6}")
    rounds = ", ".join(f"{rate:,.0f}" for rate in raws)
    print(f"raw reference, {len(raws)} rounds before and after the soak: {rounds} events/s")
    print(f"{'raw redis-py XADD + XREADGROUP/XACK (median)':<44} {raw:>10,.0f} {1:>6.2f}")
    row = "eda_lesson soak: outbox -> partitions -> workers"
    print(f"{row:<44} {ours:>10,.0f} {ours / raw:>6.2f}")
    print(
        "check: 0 lost, every effect exactly once, each key in order" if ok else "FAILED: see above"
    )
    shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


def check(effects: Path, total: int) -> bool:
    with sqlite3.connect(effects) as db:
        rows = db.execute("SELECT key, seq FROM effects ORDER BY rowid").fetchall()
    distinct = len(set(rows))
    last: dict[str, int] = {}
    out_of_order = 0
    for key, seq in rows:
        if seq != last.get(key, -1) + 1:
            out_of_order += 1
        last[key] = seq
    print(f"effects: {len(rows):,} rows, {distinct:,} distinct, {out_of_order} out of order")
    return len(rows) == distinct == total and out_of_order == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few thousand events")
    args = parser.parse_args()
    if args.quick:
        args.events, args.kill_every, args.timeout = 4_000, 1.0, 240.0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
