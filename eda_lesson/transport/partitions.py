"""Order per key: a stream split into partitions, each partition read by one worker at a time.

One consumer group hands entries to whichever worker asks first, so with several workers two
events of one order can be handled at the same time, or the second before the first. When the
order matters per key (the events of one aggregate), split the stream:

* :class:`PartitionedPublisher` adds each message to the partition its key falls in (by
  default the message's event-store stream, so every event of ``order-o-1`` lands in one
  partition, in the order the store gave them). ``{stream}:p0``, ``{stream}:p1``, ...
* :class:`PartitionedWorker` owns some partitions at a time, by leases in Redis that it
  renews while it runs (``SET ... NX PX``). Workers share the partitions out evenly; a worker
  that dies stops renewing, its leases run out, and the others take its partitions over.
* Inside a partition a worker reads in order and never skips ahead: an entry whose handling
  failed is handled again before anything after it (``StreamConsumer(in_order=True)``), and a
  new owner first takes over what the last one left pending.

What this guarantees: the events of one key are handled one at a time, in the order they were
published, as long as a worker whose lease ran out stops before its successor starts. A worker
that freezes longer than its lease (a long pause, a stopped VM) and then resumes can overlap
with its successor for the batch it was in; the lease is renewed before every batch and
ownership checked again, which keeps that window to one batch, and an inbox (see
:mod:`eda_lesson.patterns.inbox`) makes a repeat harmless. Messages of different keys are in no
particular order; nor are those of one key published by two relays at once.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from eda_lesson.core.bus import EventBus
from eda_lesson.core.extras import missing_extra
from eda_lesson.patterns.outbox import OutboxMessage
from eda_lesson.patterns.serialization import EventRegistry

try:
    import redis
except ImportError as error:  # exercised by tests/test_package.py
    raise missing_extra("broker", __name__, error) from error

from eda_lesson.transport.redis_streams import (
    DEFAULT_MAX_ENTRY_BYTES,
    BatchReport,
    StreamConsumer,
    outbox_entry,
    talking_to,
)

__all__ = [
    "Leases",
    "PartitionedPublisher",
    "PartitionedWorker",
    "partition_of",
    "partition_stream",
]

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def partition_of(key: str, partitions: int) -> int:
    """The partition ``key`` falls in: the same in every process and every run (a hash of
    the key's bytes; not ``hash()``, which differs between processes)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_stream(stream: str, partition: int) -> str:
    """The Redis stream of one partition: ``orders:p3``."""
    return f"{stream}:p{partition}"


def _check_partitions(partitions: object) -> int:
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions is a whole number from 1, got {partitions!r}")
    return partitions


class PartitionedPublisher:
    """Adds outbox messages to the partition streams of ``stream``, by key; a
    :class:`~eda_lesson.patterns.outbox.Publisher` for a relay.

    ``key(message)`` names what must stay in order (default: the message's event-store
    stream). A batch goes in one MULTI transaction, in the order the outbox gave it.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        partitions: int,
        *,
        key: Callable[[OutboxMessage], str] = lambda message: message.stream_id,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.client = client
        self.stream = stream
        self.partitions = _check_partitions(partitions)
        self.key = key
        self.published = 0

    def publish(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        entries = [
            (
                partition_of(self.key(message), self.partitions),
                outbox_entry(message, self.max_entry_bytes),
            )
            for message in messages
        ]
        pipe = self.client.pipeline(transaction=True)
        for partition, fields in entries:
            pipe.xadd(partition_stream(self.stream, partition), fields)
        with talking_to(self.client):
            pipe.execute()
        self.published += len(messages)

    def __repr__(self) -> str:
        return (
            f"PartitionedPublisher({self.stream!r}, {self.partitions} partitions, "
            f"{self.published} published)"
        )


class Leases:
    """Who owns which partition of ``stream``, and which workers are alive, in Redis."""

    def __init__(self, client: redis.Redis, stream: str, *, lease_ms: int) -> None:
        if isinstance(lease_ms, bool) or not isinstance(lease_ms, int) or lease_ms < 100:
            raise ValueError(
                f"lease_ms is a whole number of milliseconds from 100, got {lease_ms!r}"
            )
        self.client = client
        self.stream = stream
        self.lease_ms = lease_ms
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def key(self, partition: int) -> str:
        return f"{self.stream}:owner:{partition}"

    @property
    def members_key(self) -> str:
        return f"{self.stream}:workers"

    def acquire(self, partition: int, owner: str) -> bool:
        """Take ``partition`` if nobody holds it; True if ``owner`` holds it now."""
        with talking_to(self.client):
            taken = self.client.set(self.key(partition), owner, nx=True, px=self.lease_ms)
        return bool(taken) or self.owner_of(partition) == owner

    def renew(self, partition: int, owner: str) -> bool:
        """Extend ``owner``'s lease; False if it ran out and someone else may hold it."""
        with talking_to(self.client):
            return bool(self._renew(keys=[self.key(partition)], args=[owner, self.lease_ms]))

    def release(self, partition: int, owner: str) -> None:
        """Give ``partition`` up (only if ``owner`` still holds it)."""
        with talking_to(self.client):
            self._release(keys=[self.key(partition)], args=[owner])

    def owner_of(self, partition: int) -> str | None:
        with talking_to(self.client):
            owner = self.client.get(self.key(partition))
        return None if owner is None else str(owner)

    def heartbeat(self, owner: str) -> int:
        """Say ``owner`` is alive; return how many workers are (seen within one lease)."""
        now = time.time()
        with talking_to(self.client):
            pipe = self.client.pipeline(transaction=True)
            pipe.zadd(self.members_key, {owner: now})
            pipe.zremrangebyscore(self.members_key, "-inf", now - self.lease_ms / 1000)
            pipe.zcard(self.members_key)
            *_, alive = pipe.execute()
        return max(1, int(alive))

    def leave(self, owner: str) -> None:
        with talking_to(self.client):
            self.client.zrem(self.members_key, owner)


class PartitionedWorker:
    """Handles the partitions of ``stream`` it holds leases for, each in order.

    Every round it says it is alive, renews its leases (dropping any it lost), gives up
    partitions beyond its fair share or takes free ones up to it, then handles one batch of
    each partition it holds. ``run(stop)`` repeats rounds; :meth:`close` releases the leases
    so the others can take over at once instead of after a lease. ``around_batch`` (such as
    ``inbox.batch``) and ``deduplicate`` are passed to each partition's consumer
    (:class:`~eda_lesson.transport.redis_streams.StreamConsumer`).
    """

    def __init__(
        self,
        bus: EventBus,
        registry: EventRegistry,
        *,
        client: redis.Redis,
        stream: str,
        partitions: int,
        group: str = "workers",
        consumer: str | None = None,
        lease_ms: int = 5_000,
        batch: int = 50,
        max_deliveries: int = 5,
        journal: bool = False,
        around_batch: Callable[[], AbstractContextManager[object]] | None = None,
        deduplicate: bool = True,
    ) -> None:
        self.bus = bus
        self.around_batch = around_batch
        self.deduplicate = deduplicate
        self.registry = registry
        self.client = client
        self.stream = stream
        self.partitions = _check_partitions(partitions)
        self.group = group
        self.name = consumer or f"worker-{os.getpid()}"
        self.leases = Leases(client, stream, lease_ms=lease_ms)
        self.batch = batch
        self.max_deliveries = max_deliveries
        self.journal = journal
        self.owned: dict[int, StreamConsumer] = {}
        self.handled = 0
        self.taken_over = 0
        """How many partitions this worker took while another held entries there pending."""

    # ------------------------------------------------------------------ ownership

    def rebalance(self) -> list[int]:
        """Renew, give up or take partitions; return the ones held now, in order."""
        alive = self.leases.heartbeat(self.name)
        for partition in list(self.owned):
            if not self.leases.renew(partition, self.name):
                del self.owned[partition]  # the lease ran out: someone else may hold it
        fair = math.ceil(self.partitions / alive)
        for partition in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - fair)]:
            self._give_up(partition)
        for partition in self._search_order():
            if len(self.owned) >= fair:
                break
            if partition not in self.owned and self.leases.acquire(partition, self.name):
                self.owned[partition] = self._consumer(partition)
        return sorted(self.owned)

    def _search_order(self) -> list[int]:
        """Partitions to try, starting at a place of this worker's own, so workers starting
        together do not all go for partition 0."""
        start = partition_of(self.name, self.partitions)
        return [(start + step) % self.partitions for step in range(self.partitions)]

    def _give_up(self, partition: int) -> None:
        self.owned.pop(partition, None)
        self.leases.release(partition, self.name)

    def _consumer(self, partition: int) -> StreamConsumer:
        consumer = StreamConsumer(
            self.client,
            self.bus,
            self.registry,
            stream=partition_stream(self.stream, partition),
            group=self.group,
            consumer=self.name,
            batch=self.batch,
            block_ms=None,
            max_deliveries=self.max_deliveries,
            claim_idle_ms=0,  # what the last owner left pending is ours now, first
            journal=self.journal,
            in_order=True,
            around_batch=self.around_batch,
            deduplicate=self.deduplicate,
        )
        consumer.ensure_group()
        return consumer

    # ------------------------------------------------------------------ work

    def process_round(self) -> int:
        """One round: rebalance, then one batch of each partition held; return how many
        entries were delivered."""
        delivered = 0
        for partition in self.rebalance():
            if not self.leases.renew(partition, self.name):
                self.owned.pop(partition, None)
                continue
            report: BatchReport = self.owned[partition].process_batch(wait=False)
            delivered += len(report)
            self.taken_over += bool(report.reclaimed)
        self.handled += delivered
        return delivered

    def run(
        self,
        stop: Any = None,
        *,
        until_idle: bool = False,
        idle_pause: float = 0.02,
    ) -> int:
        """Rounds until ``stop`` (a ``threading.Event``) is set, or, with ``until_idle``, until
        a round delivers nothing; return how many entries were delivered."""
        total = 0
        while stop is None or not stop.is_set():
            delivered = self.process_round()
            total += delivered
            if not delivered:
                if until_idle:
                    break
                time.sleep(idle_pause)
        return total

    def close(self) -> None:
        """Release every lease and leave, so the others take over without waiting."""
        for partition in list(self.owned):
            self._give_up(partition)
        self.leases.leave(self.name)

    def __repr__(self) -> str:
        held = ", ".join(str(p) for p in sorted(self.owned)) or "none"
        return (
            f"PartitionedWorker({self.name!r} on {self.stream!r}: partitions {held} of "
            f"{self.partitions}, {self.handled} delivered)"
        )
