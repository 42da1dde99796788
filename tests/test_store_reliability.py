"""The SQLite event store under stress: real files, real threads, real processes, SIGKILL,
and corrupt rows written behind the store's back."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import ConcurrencyError, CorruptEventError, SQLiteEventStore
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.read_models import OrdersByStatus

STREAM = "tally"
REGISTRY = EventRegistry.of(OrderPaid, OrderCreated)


def _land(store: SQLiteEventStore, writer: str, appends: int) -> int:
    """Append ``appends`` batches (1-3 events, tagged writer:batch:index), retrying on
    conflict as a real writer would; return how many conflicts it met."""
    conflicts = 0
    for batch in range(appends):
        size = 1 + batch % 3
        events = [OrderPaid(f"{writer}:{batch}:{i}", float(size)) for i in range(size)]
        while True:
            try:
                store.append(STREAM, events, store.version(STREAM))
                break
            except ConcurrencyError:
                conflicts += 1
    return conflicts


def _assert_every_append_landed_once_and_whole(
    path: Path, writers: list[str], appends: int
) -> None:
    with SQLiteEventStore(path, REGISTRY) as store:
        stored = store.read(STREAM)
        positions = [s.position for s in store.read_all()]
    count = sum(1 + batch % 3 for batch in range(appends)) * len(writers)
    assert positions == list(range(1, count + 1)), "the global order has gaps"
    assert [s.version for s in stored] == list(range(1, count + 1))
    tags = [s.event.order_id for s in stored]
    assert len(set(tags)) == len(tags) == count, "an event was lost or duplicated"
    # Each append is whole: the events of one batch sit next to each other, in order.
    for index, tag in enumerate(tags):
        writer, batch, item = tag.split(":")
        if item != "0":
            assert tags[index - 1] == f"{writer}:{batch}:{int(item) - 1}"
    for writer in writers:
        batches = [tag.split(":")[1] for tag in tags if tag.startswith(f"{writer}:")]
        assert list(dict.fromkeys(int(b) for b in batches)) == list(range(appends))


def test_threads_with_their_own_connections_never_lose_or_duplicate_an_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    SQLiteEventStore(path, REGISTRY).close()
    writers = [f"t{i}" for i in range(8)]
    start, conflicts = threading.Barrier(len(writers)), Counter[str]()

    def write(writer: str) -> None:
        with SQLiteEventStore(path, REGISTRY) as store:
            start.wait()
            conflicts[writer] = _land(store, writer, appends=20)

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(conflicts.values()) > 0, "the writers never collided: the test proved nothing"
    _assert_every_append_landed_once_and_whole(path, writers, appends=20)


def test_threads_sharing_one_store_object_never_lose_or_duplicate_an_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    writers = [f"s{i}" for i in range(8)]
    with SQLiteEventStore(path, REGISTRY) as store:
        start = threading.Barrier(len(writers))

        def write(writer: str) -> None:
            start.wait()
            _land(store, writer, appends=20)

        threads = [threading.Thread(target=write, args=(w,)) for w in writers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    _assert_every_append_landed_once_and_whole(path, writers, appends=20)


_WRITER_PROCESS = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_store_reliability import REGISTRY, _land
from eda_lesson.patterns.store import SQLiteEventStore
path, writer, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with SQLiteEventStore(path, REGISTRY) as store:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    print(json.dumps({{"writer": writer, "conflicts": _land(store, writer, appends=30)}}))
"""


def test_processes_appending_to_one_stream_never_lose_or_duplicate_an_append(
    tmp_path: Path,
) -> None:
    path, go = tmp_path / "events.db", tmp_path / "go"
    SQLiteEventStore(path, REGISTRY).close()
    script = _WRITER_PROCESS.format(tests=str(Path(__file__).parent))
    writers = [f"p{i}" for i in range(4)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), writer, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for writer in writers
    ]
    for process in processes:  # every process has opened the store: start them together
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    go.touch()
    reports = [json.loads(process.communicate(timeout=60)[0]) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0]
    assert sorted(report["writer"] for report in reports) == writers
    assert sum(report["conflicts"] for report in reports) > 0, "no collisions: proved nothing"
    _assert_every_append_landed_once_and_whole(path, writers, appends=30)


# ---------------------------------------------------------------------- SIGKILL mid-append

BATCH = 20_000

_BIG_APPENDS = """
import sys
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import OrderPaid
from eda_lesson.patterns.store import SQLiteEventStore
store = SQLiteEventStore(sys.argv[1], EventRegistry.of(OrderPaid))
for batch in range(1, 1000):
    events = [OrderPaid(f"{{batch}}:{{i}}", float(batch)) for i in range({size})]
    version = store.version("big")
    print("begin", batch, flush=True)
    store.append("big", events, version)
    print("done", batch, flush=True)
"""


def _writer_holds_the_lock(path: Path) -> bool:
    """True while another connection is inside a write transaction on ``path``."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:  # "database is locked"
        return True
    finally:
        probe.close()


def _kill_during_third_append(path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _BIG_APPENDS.format(size=BATCH), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.split() == ["begin", "3"]:
                break
        deadline = time.monotonic() + 10
        while not _writer_holds_the_lock(path):
            assert time.monotonic() < deadline, "the writer never started its transaction"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def test_a_process_killed_mid_append_leaves_all_of_it_or_none(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    lost_in_flight = 0
    for _ in range(3):
        _kill_during_third_append(path)
        with SQLiteEventStore(path, EventRegistry.of(OrderPaid)) as store:
            assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = store.read("big")
            version = len(stored)
            assert version % BATCH == 0, f"a partial append survived: {version} events"
            sizes = Counter(s.event.order_id.split(":")[0] for s in stored)
            assert set(sizes.values()) <= {BATCH}, "a batch is incomplete"
            assert [s.position for s in store.read_all()] == list(range(1, version + 1))
            lost_in_flight += "3" not in sizes
            # The store is usable straight away: the next append lands after the survivors.
            store.append("big", [OrderPaid("after")], version)
            store._db.execute("DELETE FROM events")  # a fresh store for the next round
    assert lost_in_flight > 0, "every kill landed after a commit: the test proved nothing"


# ---------------------------------------------------------------------- corrupt rows


def _write_row(
    path: Path, stream_id: str, version: int, name: str, schema: int, payload: Any
) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events (stream_id, version, event_type, schema_version, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (stream_id, version, name, schema, payload),
        )
    db.close()


@pytest.fixture
def store_with_one_good_event(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    with SQLiteEventStore(path, REGISTRY) as store:
        store.append("order-o-1", [OrderCreated("o-1", "c-7", 42.0)], expected_version=0)
    return path


@pytest.mark.parametrize(
    ("name", "schema", "payload", "problem"),
    [
        ("OrderRefunded", 1, '{"order_id": "o-1"}', "unknown event type 'OrderRefunded'"),
        ("OrderPaid", 1, '{"order_id": "o-1", "amount": ', "not valid JSON"),
        ("OrderPaid", 7, '{"order_id": "o-1"}', "v7 was written by a newer program"),
        ("OrderPaid", 1, '{"order_id": "o-1", "amount": "ten"}', "amount should be a number"),
        ("OrderPaid", 1, 42, "a JSON int, not an object of fields"),
    ],
)
def test_a_corrupt_row_is_reported_with_its_stream_version_and_position(
    store_with_one_good_event: Path, name: str, schema: int, payload: Any, problem: str
) -> None:
    path = store_with_one_good_event
    _write_row(path, "order-o-1", 2, name, schema, payload)
    where = "cannot read stream 'order-o-1' version 2 (global position 2)"
    with SQLiteEventStore(path, REGISTRY) as store:
        with pytest.raises(CorruptEventError, match=problem) as caught:
            store.read("order-o-1")
        assert str(caught.value).startswith(where)
        assert (caught.value.stream_id, caught.value.version, caught.value.position) == (
            "order-o-1",
            2,
            2,
        )
        with pytest.raises(CorruptEventError, match=problem):
            list(store.read_all())
        assert [s.version for s in store.read("order-o-1", from_version=2)] == []


def test_a_projection_stops_before_a_corrupt_row_and_can_resume_once_fixed(
    store_with_one_good_event: Path,
) -> None:
    path = store_with_one_good_event
    _write_row(path, "order-o-2", 1, "OrderCreated", 1, "not json")
    projection = OrdersByStatus()
    with SQLiteEventStore(path, REGISTRY, page_size=1) as store:
        with pytest.raises(CorruptEventError, match="stream 'order-o-2' version 1"):
            projection.catch_up(store)
        assert projection.position == 1
        store._db.execute(
            "UPDATE events SET payload = ? WHERE position = 2",
            ('{"order_id":"o-2","customer_id":"c-8","total":1.0}',),
        )
        assert projection.catch_up(store) == 1
    assert projection.status == {"o-1": "created", "o-2": "created"}


class _Exploit:
    """Unpickling this would create a file: proof that pickle ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


def test_stored_data_never_runs_anything(store_with_one_good_event: Path, tmp_path: Path) -> None:
    path = store_with_one_good_event
    target = tmp_path / "pwned"
    _write_row(path, "order-o-1", 2, "os.system", 1, json.dumps({"command": f"touch {target}"}))
    _write_row(path, "order-o-2", 1, "OrderPaid", 1, pickle.dumps(_Exploit(target)))
    with SQLiteEventStore(path, REGISTRY) as store:
        with pytest.raises(CorruptEventError, match=r"unknown event type 'os\.system'"):
            store.read("order-o-1")
        with pytest.raises(CorruptEventError, match="not valid JSON"):
            store.read("order-o-2")
    assert not target.exists()


def test_a_projection_applies_the_good_events_that_share_a_page_with_a_corrupt_row(
    store_with_one_good_event: Path,
) -> None:
    """With the default page of 1,000 rows, the good events around a broken one are in the
    same page: they used to be dropped with it, so the projection never moved."""
    path = store_with_one_good_event
    with SQLiteEventStore(path, REGISTRY) as store:
        store.append("order-o-2", [OrderCreated("o-2", "c-8", 5.0)], expected_version=0)
    _write_row(path, "order-o-2", 2, "OrderPaid", 1, '{"order_id": "o-2", "amount": "five"}')
    with SQLiteEventStore(path, REGISTRY) as store:
        store.append("order-o-3", [OrderCreated("o-3", "c-9", 7.0)], expected_version=0)
        projection = OrdersByStatus()
        with pytest.raises(CorruptEventError, match=r"global position 3\).*amount should be"):
            projection.catch_up(store)
        assert projection.position == 2  # exactly the row before the broken one
        assert projection.status == {"o-1": "created", "o-2": "created"}
        with pytest.raises(CorruptEventError):  # and it stays there until the row is fixed
            projection.catch_up(store)
        assert projection.position == 2
        store._db.execute(
            "UPDATE events SET payload = ? WHERE position = 3", ('{"order_id":"o-2","amount":5}',)
        )
        assert projection.catch_up(store) == 2
    assert projection.status == {"o-1": "created", "o-2": "paid", "o-3": "created"}


def _open_new_store_at_once(path: str, barrier: Any, writer: int) -> str:
    try:
        barrier.wait(timeout=30)
        with SQLiteEventStore(path, REGISTRY, timeout=10) as store:
            store.append(f"writer-{writer}", [OrderPaid(f"p{writer}", 1.0)], 0)
        return "ok"
    except Exception as error:  # reported to the parent, which asserts
        return f"{type(error).__name__}: {error}"


def test_processes_creating_the_same_new_store_at_the_same_moment_all_succeed(
    tmp_path: Path,
) -> None:
    """Eight processes opening one file that does not exist yet used to fail now and then
    with "database is locked" after a millisecond, at PRAGMA journal_mode=WAL."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, ProcessPoolExecutor(8, mp_context=context) as pool:
        barrier = manager.Barrier(8)  # all eight open at once, round after round
        for round_number in range(20):
            path = str(tmp_path / f"new-{round_number}.db")
            outcomes = list(pool.map(_open_new_store_at_once, [path] * 8, [barrier] * 8, range(8)))
            assert outcomes == ["ok"] * 8, f"round {round_number}: {outcomes}"
            with SQLiteEventStore(path, REGISTRY) as store:
                assert len(store) == 8
                assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
