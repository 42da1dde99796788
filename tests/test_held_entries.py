"""Dead letters and parked entries you can act on: listed, shown and replayed, from Python and
from the worker command; a rolling upgrade where the producers move first loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, free_port, running_redis

from eda_lesson import EventBus
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderPaid
from eda_lesson.transport import redis_streams
from eda_lesson.transport.redis_streams import (
    HeldEntry,
    StreamConsumer,
    StreamPublisher,
    UnknownHeldEntryError,
    connect,
    read_dead_letters,
    read_held,
    read_parked,
    replay_dead_letters,
    replay_parked,
    stream_status,
)

TESTS = Path(__file__).resolve().parent
OLD = EventRegistry.of(OrderCreated, OrderPaid, OrderCancelled)


# ---------------------------------------------------------------------- the upgraded program


@dataclass(frozen=True)
class PaidWithCurrency:
    """OrderPaid, version 2: it knows its currency."""

    order_id: str
    amount: float = 0.0
    currency: str = "EUR"


@dataclass(frozen=True)
class OrderRefunded:
    order_id: str
    amount: float


def new_registry() -> EventRegistry:
    registry = EventRegistry.of(OrderCreated, OrderCancelled, OrderRefunded)
    registry.register(PaidWithCurrency, name="OrderPaid", version=2)
    registry.upcaster("OrderPaid", 1, lambda payload: {**payload, "currency": "EUR"})
    return registry


SEEN: list[object] = []


def register_upgraded(bus: EventBus) -> EventRegistry:
    """``--handlers test_held_entries:register_upgraded``: the program after the upgrade."""
    bus.register(PaidWithCurrency, SEEN.append)
    bus.register(OrderRefunded, SEEN.append)
    bus.register(OrderCreated, SEEN.append)
    return new_registry()


# ---------------------------------------------------------------------- helpers


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return connect(redis_server.url)


def _consumer(
    client: redis.Redis, registry: EventRegistry, bus: EventBus, **options: Any
) -> StreamConsumer:
    options = {"stream": "orders", "group": "shop", "consumer": "w1", **options}
    return StreamConsumer(client, bus, registry, **options)


def _recording_bus(*types: type) -> tuple[EventBus, list[object]]:
    seen: list[object] = []
    bus = EventBus()
    for event_type in types:
        bus.register(event_type, seen.append)
    return bus, seen


def _raw_entries(redis_server: RedisServer, key: str) -> list[dict[bytes, bytes]]:
    raw = redis.Redis(port=redis_server.port)
    return [fields for _, fields in raw.xrange(key)]


def _command(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "eda_lesson.transport.worker", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path, **env},
    )


# ---------------------------------------------------------------------- parking


def _rolling_upgrade(client: redis.Redis) -> None:
    """The producers run the new program; the workers still run the old one."""
    upgraded = StreamPublisher(client, "orders", registry=new_registry())
    upgraded.send(OrderCreated("o-1", "c-7", 10.0), event_id="evt-1")
    upgraded.send(PaidWithCurrency("o-1", 10.0, "CHF"), event_id="evt-2")
    upgraded.send(OrderRefunded("o-1", 10.0), event_id="evt-3")
    client.xadd("orders", {"event_id": "evt-4", "type": "Mystery", "version": 1, "payload": "{}"})


def test_events_newer_than_the_workers_are_parked_not_taken_out_of_the_flow(
    client: redis.Redis,
) -> None:
    _rolling_upgrade(client)
    bus, seen = _recording_bus(OrderCreated, OrderPaid)
    old = _consumer(client, OLD, bus)
    report = old.process_batch(wait=False)
    assert [(d.event_id, d.outcome) for d in report.deliveries] == [
        ("evt-1", "handled"),
        ("evt-2", "parked"),
        ("evt-3", "parked"),
        ("evt-4", "parked"),
    ]
    assert report.deliveries[1].reason.startswith(
        "FutureEventVersionError: OrderPaid v2 was written by a newer program"
    )
    assert seen == [OrderCreated("o-1", "c-7", 10.0)]
    status = stream_status(client, "orders", "shop")
    assert (status.pending, status.parked, status.dead_letters) == (0, 3, 0)
    parked = read_parked(client, "orders", "shop")
    assert [(p.event_id, p.type_name, p.version) for p in parked] == [
        ("evt-2", "OrderPaid", "2"),
        ("evt-3", "OrderRefunded", "1"),
        ("evt-4", "Mystery", "1"),
    ]
    assert old.replay_parked() == [], "the old workers still cannot read any of them"
    assert len(read_parked(client, "orders", "shop")) == 3


def test_parked_events_are_replayed_once_the_workers_know_them(client: redis.Redis) -> None:
    _rolling_upgrade(client)
    old_bus, _ = _recording_bus(OrderCreated, OrderPaid)
    _consumer(client, OLD, old_bus).process_batch(wait=False)
    bus, seen = _recording_bus(OrderCreated, PaidWithCurrency, OrderRefunded)
    new = _consumer(client, new_registry(), bus, consumer="w2")
    replayed = new.replay_parked()
    assert len(replayed) == 2
    [left] = read_parked(client, "orders", "shop")
    assert left.type_name == "Mystery", "what the new program does not know stays parked"
    report = new.process_batch(wait=False)
    assert [(d.event_id, d.outcome) for d in report.deliveries] == [
        ("evt-2", "handled"),
        ("evt-3", "handled"),
    ]
    assert seen == [PaidWithCurrency("o-1", 10.0, "CHF"), OrderRefunded("o-1", 10.0)]
    with pytest.raises(UnknownHeldEntryError, match="holds no entry"):
        replay_parked(client, "orders", "shop", new_registry(), [replayed[0][0]])


# ---------------------------------------------------------------------- dead letters


def _failing_then_fixed(client: redis.Redis) -> tuple[StreamConsumer, list[object], list[bool]]:
    seen: list[object] = []
    broken = [True]

    def cancel(event: OrderCancelled) -> None:
        if broken[0]:
            raise RuntimeError(f"cannot cancel {event.order_id}")
        seen.append(event)

    bus = EventBus()
    bus.register(OrderCancelled, cancel)
    return _consumer(client, OLD, bus, max_deliveries=1), seen, broken


def test_a_dead_letter_is_replayed_after_the_fix_and_handled(client: redis.Redis) -> None:
    consumer, seen, broken = _failing_then_fixed(client)
    StreamPublisher(client, "orders", registry=OLD).send(OrderCancelled("o-1"), event_id="e-1")
    assert consumer.process_batch(wait=False).counts()["dead-lettered"] == 1
    [letter] = consumer.dead_letters()
    assert letter.reason == (
        "failed on delivery 1 of 1: _failing_then_fixed.cancel: RuntimeError: cannot cancel o-1"
    )
    assert letter.held_id and letter.source_entry and letter.consumer == "w1"
    broken[0] = False
    [(held_id, new_id)] = consumer.replay_dead_letters([letter.held_id])
    assert held_id == letter.held_id and new_id > letter.source_entry
    assert consumer.dead_letters() == []
    assert [d.outcome for d in consumer.process_batch(wait=False).deliveries] == ["handled"]
    assert seen == [OrderCancelled("o-1")]
    with pytest.raises(UnknownHeldEntryError, match=f"holds no entry {held_id}"):
        consumer.replay_dead_letters([held_id])
    with pytest.raises(ValueError, match="'latest' is not a stream entry id"):
        consumer.replay_dead_letters(["latest"])


def test_a_replay_adds_the_entry_back_once_even_if_asked_twice_at_the_same_time(
    client: redis.Redis,
) -> None:
    consumer, _, _ = _failing_then_fixed(client)
    StreamPublisher(client, "orders", registry=OLD).send(OrderCancelled("o-1"), event_id="e-1")
    consumer.process_batch(wait=False)
    key = consumer.keys.dead_letters
    stale = read_held(client, key)  # two operators read the list, then both replay
    first = redis_streams._replay(client, key, "orders", stale)
    second = redis_streams._replay(client, key, "orders", stale)
    assert len(first) == 1 and second == []
    assert client.xlen("orders") == 2


def test_a_dead_letter_keeps_and_replays_the_entry_byte_for_byte(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    original = {
        b"event_id": b"e-\xff",
        b"type": b"OrderPaid",
        b"version": b"1",
        b"payload": b'{"order_id":"o-1"}',
        b"held:reason": b"a field of the producer's, named like ours",
        b"trace": b"\x00\x01",
    }
    client.xadd("orders", original)  # type: ignore[arg-type]
    bus, _ = _recording_bus(OrderPaid)
    consumer = _consumer(client, OLD, bus)
    consumer.process_batch(wait=False)
    [letter] = read_dead_letters(client, "orders", "shop")
    assert dict(letter.fields) == original
    assert letter.event_id == "e-\\xff"
    assert letter.reason.startswith("malformed entry: event_id 'e-\\xff' is not UTF-8 text")
    [stored] = _raw_entries(redis_server, consumer.keys.dead_letters)
    assert stored[b"held:original:held:reason"] == original[b"held:reason"]
    replay_dead_letters(client, "orders", "shop", [letter.held_id])
    assert _raw_entries(redis_server, "orders")[-1] == original


def test_the_held_records_have_short_reprs(client: redis.Redis) -> None:
    consumer, _, _ = _failing_then_fixed(client)
    StreamPublisher(client, "orders", registry=OLD).send(OrderCancelled("o-1"), event_id="e-1")
    consumer.process_batch(wait=False)
    [letter] = consumer.dead_letters()
    assert isinstance(letter, HeldEntry)
    assert repr(letter).startswith("HeldEntry(e-1 OrderCancelled after 1 delivery: failed on")


# ---------------------------------------------------------------------- the command


def _dead_letters_of_every_kind(client: redis.Redis) -> None:
    consumer, _, _ = _failing_then_fixed(client)
    StreamPublisher(client, "orders", registry=OLD).send(OrderCancelled("o-1"), event_id="e-1")
    client.xadd("orders", {"event_id": "e-2\nforged line", "type": "OrderPaid", "version": 1,
                           "payload": '{"order_id":"o-2"}', "trace": "t-9"})  # fmt: skip
    consumer.process_batch(wait=False)


def test_the_command_lists_and_shows_dead_letters_with_their_reasons(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    _dead_letters_of_every_kind(client)
    common = ("--stream", "orders", "--group", "shop", "--redis-url", redis_server.url)
    listed = _command(*common, "--dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "orders:shop:dead: 2 dead letters"
    first, second = [letter.held_id for letter in read_dead_letters(client, "orders", "shop")]
    assert lines[1].startswith(f"  {first}  e-1  OrderCancelled v1  1 delivery  failed on")
    assert lines[2].startswith(f"  {second}  e-2\\nforged line  OrderPaid v1  1 delivery  ")
    assert len(lines) == 3, "an escaped newline stays on its line"
    shown = _command(*common, "--dead-letters", "show", second)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"dead letter {second} in orders:shop:dead",
        "  event_id:      e-2\\nforged line",
        "  type:          OrderPaid",
        "  version:       1",
        "  reason:        malformed entry: event_id 'e-2\\nforged line' holds a control "
        "character or surrounding spaces",
        "  deliveries:    1",
        "  consumer:      w1",
        f"  source entry:  {read_dead_letters(client, 'orders', 'shop')[1].source_entry}",
        '  payload:       {"order_id":"o-2"}',
        "  field trace: t-9",
    ]


def test_the_command_replays_dead_letters_by_id_or_all(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    _dead_letters_of_every_kind(client)
    common = ("--stream", "orders", "--group", "shop", "--redis-url", redis_server.url)
    first, _ = [letter.held_id for letter in read_dead_letters(client, "orders", "shop")]
    one = _command(*common, "--dead-letters", "replay", first)
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0] == "replayed 1 entry into orders"
    assert one.stdout.splitlines()[1].startswith(f"  {first} -> ")
    rest = _command(*common, "--dead-letters", "replay", "all")
    assert rest.stdout.splitlines()[0] == "replayed 1 entry into orders"
    assert read_dead_letters(client, "orders", "shop") == []
    assert client.xlen("orders") == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--dead-letters", "replay"), "--dead-letters replay takes the IDs to replay, or all"),
        (("--dead-letters", "list", "1-0"), "--dead-letters list takes no ID"),
        (("--dead-letters", "show"), "--dead-letters show takes one ID"),
        (("--dead-letters", "drop", "1-0"), "--dead-letters takes list, show ID or replay ID"),
        (("--dead-letters", "show", "abc"), "'abc' is not a stream entry id"),
        (("--dead-letters", "show", "1-0"), "orders:shop:dead holds no entry 1-0; list what"),
        (("--parked", "replay", "all"), "--parked replay adds back only what this worker can read"),
    ],
)
def test_the_command_says_how_to_ask_for_held_entries(
    redis_server: RedisServer, arguments: tuple[str, ...], message: str
) -> None:
    run = _command(
        "--stream", "orders", "--group", "shop", "--redis-url", redis_server.url, *arguments
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_the_command_replays_only_the_parked_entries_the_upgraded_handlers_read(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    _rolling_upgrade(client)
    old_bus, _ = _recording_bus(OrderCreated, OrderPaid)
    _consumer(client, OLD, old_bus).process_batch(wait=False)
    common = ("--stream", "orders", "--group", "shop", "--redis-url", redis_server.url)
    listed = _command(*common, "--parked", "list")
    assert listed.stdout.splitlines()[0] == "orders:shop:parked: 3 parked entries"
    run = _command(
        *common, "--handlers", "test_held_entries:register_upgraded", "--parked", "replay", "all"
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "replayed 2 entries into orders"
    assert lines[-1].endswith(
        "stays parked: Mystery v1 is not readable by this worker's registry "
        "(OrderCancelled, OrderCreated, OrderPaid, OrderRefunded)"
    )
    handled = _command(
        *common, "--handlers", "test_held_entries:register_upgraded", "--consumer", "w2",
        "--until-idle",
    )  # fmt: skip
    assert handled.returncode == 0, handled.stderr
    assert "w2 handled OrderPaid evt-2" in handled.stderr
    assert "w2 handled OrderRefunded evt-3" in handled.stderr


def test_listing_dead_letters_without_redis_exits_3() -> None:
    run = _command("--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--dead-letters", "list")
    assert run.returncode == 3
    assert "cannot reach Redis at" in run.stderr
