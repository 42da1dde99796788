"""What an event store costs: our SQLite and in-memory stores beside the eventsourcing library.

Run it with ``python benchmarks/bench_store.py`` (``pip install eventsourcing`` first; without
it, its rows are left out). Four workloads of N events (10,000 by default), each timed in
this one process, round by round, every round on fresh database files:

* **append one by one**: an aggregate records one event, the event is appended: N times;
* **append in batches**: the aggregate records 100 events, they are appended at once;
* **replay**: read the N-event stream back and rebuild the aggregate from it;
* **read all**: read every event of the store in global order into a projection.

The peers do the same work at the same durability: the ``eventsourcing`` library's SQLite
application (WAL, SQLite's default ``synchronous=FULL``), and plain ``sqlite3`` with one JSON
column (WAL, ``FULL``), the floor for any store on SQLite. Our store runs WAL + ``FULL`` too;
a row with ``synchronous=NORMAL`` is shown for comparison, marked as less durable. Only our
store checks every field of every event against its declared type, when writing and when
reading; the peers take that cost nowhere. The table gives the median events per second and
the ratio to eventsourcing, then each target against its peer, measured in the same run.
``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from eda_lesson.patterns.aggregate import Aggregate
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import EventStore, InMemoryEventStore, SQLiteEventStore

BATCH = 100
WORKLOADS = ("append one by one", "append in batches", "replay", "read all")


# ---------------------------------------------------------------------- our side


@dataclass(frozen=True)
class Counted:
    tally_id: str
    amount: int


class Tally(Aggregate):
    """The benchmark's aggregate: it counts, one event per count."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def count(self, amount: int) -> None:
        self.record(Counted(self.id, amount))

    @applies(Counted)
    def _counted(self, event: Counted) -> None:
        self.id = event.tally_id
        self.total += event.amount


class TotalCounted(Projection):
    def reset(self) -> None:
        super().reset()
        self.total = 0

    @applies(Counted)
    def _counted(self, event: Counted) -> None:
        self.total += event.amount


class OurStore:
    """Our aggregate and store: record on the aggregate, append what it recorded."""

    def __init__(self, make_store: Callable[[Path], EventStore]) -> None:
        self.make_store = make_store

    def open(self, folder: Path) -> None:
        self.store = self.make_store(folder / "ours.db")

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def append(self, tally_id: str, count: int, batch: int) -> None:
        tally = Tally()
        tally.id = tally_id
        for start in range(0, count, batch):
            for amount in range(start, start + batch):
                tally.count(amount)
            self.store.append(tally.stream_id, tally.pending, tally.saved_version)
            tally.collect_pending()

    def replay(self, tally_id: str) -> int:
        stored = self.store.read(Tally.stream_for(tally_id))
        return Tally.from_events([s.event for s in stored]).total

    def read_all(self) -> int:
        projection = TotalCounted()
        projection.catch_up(self.store)
        return projection.total


class PlainSQLite:
    """Plain sqlite3 at the same durability: one table, JSON payloads, no objects built."""

    def open(self, folder: Path) -> None:
        self.db = sqlite3.connect(folder / "plain.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id TEXT, "
            "version INTEGER, payload TEXT, UNIQUE (stream_id, version))"
        )

    def close(self) -> None:
        self.db.close()

    def append(self, tally_id: str, count: int, batch: int) -> None:
        insert = "INSERT INTO events (stream_id, version, payload) VALUES (?, ?, ?)"
        for start in range(0, count, batch):
            rows = [
                (tally_id, n + 1, json.dumps({"tally_id": tally_id, "amount": n}))
                for n in range(start, start + batch)
            ]
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(insert, rows)
            self.db.execute("COMMIT")

    def replay(self, tally_id: str) -> int:
        rows = self.db.execute(
            "SELECT payload FROM events WHERE stream_id = ? ORDER BY version", (tally_id,)
        )
        return sum(json.loads(payload)["amount"] for (payload,) in rows)

    def read_all(self) -> int:
        rows = self.db.execute("SELECT payload FROM events ORDER BY position")
        return sum(json.loads(payload)["amount"] for (payload,) in rows)


# ---------------------------------------------------------------------- eventsourcing


def eventsourcing_peer() -> Any:
    """The eventsourcing library's SQLite application doing the same work, or None."""
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate as LibraryAggregate
        from eventsourcing.domain import event
    except ImportError:
        return None

    class LibraryTally(LibraryAggregate):  # type: ignore[misc]
        def __init__(self) -> None:
            self.total = 0

        @event("Counted")  # type: ignore[misc]
        def count(self, amount: int) -> None:
            self.total += amount

    class LibraryApplication:
        def open(self, folder: Path) -> None:
            self.app = Application(
                env={
                    "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(folder / "eventsourcing.db"),
                }
            )
            self.ids: dict[str, Any] = {}

        def close(self) -> None:
            self.app.close()

        def append(self, tally_id: str, count: int, batch: int) -> None:
            tally = LibraryTally()
            self.ids[tally_id] = tally.id
            self.app.save(tally)
            for start in range(0, count, batch):
                for amount in range(start, start + batch):
                    tally.count(amount)
                self.app.save(tally)

        def replay(self, tally_id: str) -> int:
            return int(self.app.repository.get(self.ids[tally_id]).total)

        def read_all(self) -> int:
            total, start = 0, 1
            recorder, to_event = self.app.recorder, self.app.mapper.to_domain_event
            while True:
                page = recorder.select_notifications(start=start, limit=1000)
                for notification in page:
                    total += getattr(to_event(notification), "amount", 0)
                if len(page) < 1000:
                    return total
                start = page[-1].id + 1

    return LibraryApplication()


# ---------------------------------------------------------------------- running


def run_round(peer: Any, count: int, folder: Path) -> dict[str, float]:
    """Events per second for each workload, on fresh files in ``folder``."""
    peer.open(folder)
    rates = {}
    try:
        rates["append one by one"] = _rate(count, lambda: peer.append("t-1", count, 1))
        rates["append in batches"] = _rate(count, lambda: peer.append("t-2", count, BATCH))
        expected = sum(range(count))
        rates["replay"] = _rate(count, lambda: _check(peer.replay("t-2"), expected))
        rates["read all"] = _rate(2 * count, lambda: _check(peer.read_all(), 2 * expected))
    finally:
        peer.close()
    return rates


def _rate(events: int, work: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return events / (time.perf_counter() - started)


def _check(total: int, expected: int) -> None:
    if total != expected:
        raise AssertionError(f"the benchmark read back {total}, expected {expected}")


def peers(include_library: bool = True) -> dict[str, Any]:
    registry = EventRegistry.of(Counted)
    cases: dict[str, Any] = {
        "eda_lesson SQLite (WAL, FULL)": OurStore(lambda path: SQLiteEventStore(path, registry)),
        "eda_lesson in memory": OurStore(lambda path: InMemoryEventStore()),
        "plain sqlite3 (WAL, FULL)": PlainSQLite(),
        "eda_lesson SQLite (WAL, NORMAL: less durable)": OurStore(
            lambda path: SQLiteEventStore(path, registry, synchronous="NORMAL")
        ),
    }
    library = eventsourcing_peer() if include_library else None
    if library is not None:
        cases["eventsourcing SQLite (WAL, FULL)"] = library
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    count, rounds = (1_000, 1) if args.quick else (args.events, args.rounds)
    count -= count % BATCH
    cases = peers()
    print(_header(count, rounds, args.dir))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, peer in cases.items():  # interleaved, so drifts in the machine hit all
            folder = Path(tempfile.mkdtemp(dir=args.dir))
            try:
                samples[name].append(run_round(peer, count, folder))
            finally:
                shutil.rmtree(folder)
    medians = {
        name: {w: statistics.median(s[w] for s in runs) for w in WORKLOADS}
        for name, runs in samples.items()
    }
    print_table(medians)
    print_targets(medians)


def _header(count: int, rounds: int, folder: Path | None) -> str:
    try:
        library = f"eventsourcing {version('eventsourcing')}"
    except PackageNotFoundError:
        library = "eventsourcing not installed (pip install eventsourcing): its rows are left out"
    synchronous = sqlite3.connect(":memory:").execute("PRAGMA synchronous").fetchone()[0]
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version} (default "
        f"synchronous={synchronous}, 2 is FULL), {library}\n"
        f"{count} events per workload, median of {rounds} round{'s' * (rounds != 1)}, "
        f"files in {folder or tempfile.gettempdir()}"
    )


LIBRARY = "eventsourcing SQLite (WAL, FULL)"


def print_table(medians: dict[str, dict[str, float]]) -> None:
    for workload in WORKLOADS:
        print(f"\n{workload}")
        print(f"{'case':48} {'events/s':>12} {'x eventsourcing':>16}")
        for name, rates in medians.items():
            ratio = ""
            if LIBRARY in medians:
                ratio = f"{rates[workload] / medians[LIBRARY][workload]:16.2f}"
            print(f"{name:48} {rates[workload]:12,.0f} {ratio}")


PLAIN = "plain sqlite3 (WAL, FULL)"
OURS = "eda_lesson SQLite (WAL, FULL)"

# What our store should keep, with every event checked on write and on read: against the
# eventsourcing library, and against plain sqlite3 (the floor: no objects, no checks). A
# target of None only shows the ratio.
TARGETS: tuple[tuple[str, str, float | None], ...] = (
    (LIBRARY, "append one by one", 1.0),
    (LIBRARY, "append in batches", 2.5),
    (LIBRARY, "replay", 5.0),
    (PLAIN, "append in batches", None),
    (PLAIN, "replay", 0.6),
)


def print_targets(medians: dict[str, dict[str, float]]) -> None:
    ours = medians[OURS]
    print("\ntargets (our SQLite store against each peer, same durability, same run)")
    for peer, workload, target in TARGETS:
        if peer not in medians:
            continue
        ratio = ours[workload] / medians[peer][workload]
        against = "eventsourcing" if peer == LIBRARY else "plain sqlite3"
        if target is None:
            print(f"  {workload:20} {ratio:6.2f}x {against:14} (for reference)")
            continue
        verdict = "met" if ratio >= target else "MISSED"
        print(f"  {workload:20} {ratio:6.2f}x {against:14} (target {target:g}x or more): {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
