"""Redis Streams as the broker: publish outbox messages, consume them in a consumer group.

We do not build a broker; Redis Streams already has what the lesson needs. A *stream* is an
append-only log of entries. A *consumer group* shares the entries of a stream among its
*consumers* (worker processes): each entry goes to one of them, stays *pending* until that
consumer *acknowledges* it (XACK), and can be *reclaimed* (XAUTOCLAIM) by another consumer
once it has been pending longer than an idle time, because the consumer holding it died.

* :class:`StreamPublisher` is a :class:`~eda_lesson.patterns.outbox.Publisher`: the relay hands it
  outbox messages and it adds them to the stream (XADD, a batch in one round trip).
* :class:`StreamConsumer` reads entries for one consumer of a group (XREADGROUP), turns each
  back into an event through the explicit :class:`~eda_lesson.patterns.serialization.EventRegistry`,
  dispatches it on an :class:`~eda_lesson.core.bus.EventBus` (the same handlers and middleware
  as in one process), and acknowledges what it finished. :mod:`eda_lesson.transport.worker` runs one
  in a loop, as a process.

An entry holds four fields: ``event_id``, ``type`` (the registry name), ``version`` and
``payload`` (the event's fields as JSON). Nothing is imported or unpickled because an entry
names it: a type the registry does not know, or a payload that is not valid JSON for it,
goes to the dead-letter stream with the reason, and no handler sees it.

What happens to each entry
--------------------------
``handled``
    Every handler succeeded: the event id is marked processed and the entry acknowledged.
``duplicate``
    The event id was processed before (a relay re-sent it, or a redelivery): acknowledged
    without calling any handler.
``failed``
    A handler raised: the entry stays pending, and is delivered again (to this or another
    consumer) once it has been idle ``claim_idle_ms``. That idle time is the retry delay.
``dead-lettered``
    The entry cannot be read, or failed on its ``max_deliveries``-th delivery, or was
    delivered more than ``max_deliveries`` times without ever being acknowledged (its
    consumers died while handling it: a poison pill). It is added to the dead-letter stream
    with its reason, then acknowledged, and the consumer goes on with the next entry.

Effectively once, and where that stops
--------------------------------------
Delivery is *at least once*: an entry stays pending until acknowledged, a dead consumer's
entries are reclaimed, and the relay re-sends what it did not mark sent. So a consumer sees
duplicates, and deduplicates them by event id in a *processed-ids record*, a Redis hash
``event id -> consumer`` (which also tells a drawing who handled what).

The order is: handler effects, then mark processed, then acknowledge; and the mark and the
acknowledgement go in one MULTI transaction, so an acknowledged entry is always marked and a
marked event never runs again. What remains is the window between a handler's effect and
the mark: a consumer that dies there has done the effect, but the event is not marked, so it
runs again after the reclaim. Marks are written once per batch, so the window is at most one
batch (``batch=1`` narrows it to one event, at a cost in throughput). Two more limits: a
duplicate delivered to two consumers *at the same time* runs in both (neither has marked it
yet); and when one handler of an event fails, the retry calls every handler of that event
again. An effect outside Redis (a row in a database, an email) cannot join the Redis
transaction; to make it exactly once, make the effect itself idempotent, keyed by the event
id or a business key (an upsert, ``INSERT OR IGNORE``, an idempotency key for the mailer).
At-least-once delivery plus deduplication plus idempotent effects gives "effectively once".

What this module does not do: run the loop, handle signals or reconnect (that is
:mod:`eda_lesson.transport.worker`), trim streams or the processed-ids record (they grow; a
real system trims them by age), or replay dead letters.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from eda_lesson.core.extras import missing_extra
from eda_lesson.core.text import plural

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.typing import EncodableT, FieldT
except ImportError as error:
    raise missing_extra("broker", __name__, error) from error

from eda_lesson.core.bus import EventBus, require_sync_bus
from eda_lesson.core.result import DispatchResult
from eda_lesson.patterns.serialization import EventRegistry

if TYPE_CHECKING:
    from eda_lesson.patterns.outbox import OutboxMessage

__all__ = [
    "DEFAULT_REDIS_URL",
    "OUTCOMES",
    "BatchReport",
    "Delivery",
    "DeliveryLog",
    "RedisUnavailableError",
    "StreamConsumer",
    "StreamDeadLetter",
    "StreamKeys",
    "StreamPublisher",
    "StreamStatus",
    "connect",
    "describe_client",
    "entry_fields",
    "processed_by",
    "read_dead_letters",
    "read_journal",
    "redis_url",
    "stream_status",
    "talking_to",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

OUTCOMES = ("handled", "duplicate", "failed", "dead-lettered")
"""What can happen to one delivery of an entry, in the order tables list them."""

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)

Fields = dict[FieldT, EncodableT]
"""The fields of a stream entry, as redis-py takes them."""


# ---------------------------------------------------------------------- connecting


def redis_url(url: str | None = None) -> str:
    """``url`` if given, else the ``REDIS_URL`` environment variable, else 127.0.0.1:6379."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def connect(
    url: str | None = None, *, timeout: float = 5.0, read_timeout: float | None = 30.0
) -> redis.Redis:
    """A client for ``url`` (see :func:`redis_url`); it connects on first use.

    redis-py's own retries are turned off: a worker and a relay decide themselves when to try
    again, and say so in their logs. ``read_timeout`` must exceed the longest blocking read.
    """
    return redis.Redis.from_url(
        redis_url(url),
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=read_timeout,
        retry=Retry(NoBackoff(), 0),
    )


def describe_client(client: redis.Redis) -> str:
    """The address a client talks to, as a URL without the password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port, db = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"redis://{host}:{port}/{db}"


class RedisUnavailableError(ConnectionError):
    """Redis cannot be reached; the message names the address and how to start one."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        port = urllib.parse.urlsplit(url).port or 6379 if url.startswith("redis") else 6379
        super().__init__(
            f"cannot reach Redis at {url} ({problem.rstrip('.')}). Start one with "
            f"`redis-server --port {port} --bind 127.0.0.1` (not installed? "
            "`sudo apt-get install redis-server`), or point --redis-url or REDIS_URL at a "
            "running server"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.url, self.problem)


@contextmanager
def talking_to(client: redis.Redis) -> Iterator[None]:
    """Turn redis-py's connection errors into :class:`RedisUnavailableError`."""
    try:
        yield
    except _CONNECTION_ERRORS as error:
        problem = str(error) or type(error).__name__
        raise RedisUnavailableError(describe_client(client), problem) from error


# ---------------------------------------------------------------------- names of keys


class StreamKeys(NamedTuple):
    """The Redis keys one consumer group uses beside its stream."""

    stream: str
    group: str

    @property
    def processed(self) -> str:
        """Hash ``event id -> consumer`` of the events this group has handled."""
        return f"{self.stream}:{self.group}:processed"

    @property
    def dead_letters(self) -> str:
        """Stream of the entries this group gave up on, each with its reason."""
        return f"{self.stream}:{self.group}:dead"

    @property
    def journal(self) -> str:
        """Stream of every delivery and its outcome (written when the journal is on)."""
        return f"{self.stream}:{self.group}:deliveries"


# ---------------------------------------------------------------------- publishing


def entry_fields(event_id: str, event_type: str, version: int, payload: str) -> Fields:
    """The fields of a stream entry carrying one event."""
    return {"event_id": event_id, "type": event_type, "version": version, "payload": payload}


class StreamPublisher:
    """Adds outbox messages to a Redis stream; a :class:`~eda_lesson.patterns.outbox.Publisher`.

    A batch goes in one MULTI transaction (one round trip): all its entries are added or,
    if the connection breaks first, none, and the relay publishes the batch again.
    ``send(event, event_id=...)`` publishes one event without an outbox (needs ``registry``).
    ``maxlen`` caps the stream's length (approximately) if given.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str = "events",
        *,
        registry: EventRegistry | None = None,
        maxlen: int | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.registry = registry
        self.maxlen = maxlen
        self.published = 0

    def publish(self, messages: Sequence[OutboxMessage]) -> list[str]:
        """Add ``messages`` to the stream in order; return their entry ids."""
        pipe = self.client.pipeline(transaction=True)
        for message in messages:
            fields = entry_fields(
                message.event_id, message.event_type, message.schema_version, message.payload
            )
            pipe.xadd(self.stream, fields, maxlen=self.maxlen)
        with talking_to(self.client):
            ids = pipe.execute()
        self.published += len(messages)
        return [str(entry_id) for entry_id in ids]

    def send(self, event: object, *, event_id: str) -> str:
        """Add one event to the stream, encoded through the registry; return its entry id."""
        if self.registry is None:
            raise TypeError(
                "send() encodes the event through a registry: "
                "StreamPublisher(client, stream, registry=EventRegistry.of(...))"
            )
        name, version, payload = self.registry.to_json(event)
        with talking_to(self.client):
            entry_id = self.client.xadd(
                self.stream, entry_fields(event_id, name, version, payload), maxlen=self.maxlen
            )
        self.published += 1
        return str(entry_id)

    def __repr__(self) -> str:
        return f"StreamPublisher({self.stream!r}, {self.published} published)"


# ---------------------------------------------------------------------- records


class Delivery(NamedTuple):
    """One delivery of one entry to one consumer, and what came of it."""

    event_id: str
    type_name: str
    consumer: str
    delivery: int
    """1 for the first delivery, 2 for the first redelivery, ..."""
    outcome: str
    """One of :data:`OUTCOMES`."""
    reason: str = ""
    """Why it failed or was dead-lettered."""
    entry_id: str = ""
    """The stream entry id (it holds a timestamp: keep it out of notebook outputs)."""
    result: DispatchResult | None = None
    """The dispatch result, when the event was dispatched in this process."""

    def __repr__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"Delivery({self.event_id} {self.type_name} -> {self.consumer}, "
            f"delivery {self.delivery}: {self.outcome}{why})"
        )


class DeliveryLog:
    """Deliveries in the order they were recorded (the newest ``keep`` of them)."""

    def __init__(self, deliveries: Iterable[Delivery] = (), *, keep: int | None = 10_000) -> None:
        self._items: deque[Delivery] = deque(deliveries, maxlen=keep)

    def add(self, delivery: Delivery) -> None:
        self._items.append(delivery)

    def counts(self) -> dict[str, int]:
        """How many deliveries ended in each outcome (every outcome listed, zeros too)."""
        tally = Counter(delivery.outcome for delivery in self._items)
        return {outcome: tally[outcome] for outcome in OUTCOMES}

    def handled_by(self) -> dict[str, str]:
        """``event id -> consumer`` for every event handled."""
        return {d.event_id: d.consumer for d in self._items if d.outcome == "handled"}

    def per_consumer(self) -> dict[str, dict[str, int]]:
        """Per consumer (sorted by name), how many deliveries ended in each outcome."""
        table: dict[str, Counter[str]] = {}
        for delivery in self._items:
            table.setdefault(delivery.consumer, Counter())[delivery.outcome] += 1
        return {name: {o: table[name][o] for o in OUTCOMES} for name in sorted(table)}

    def for_event(self, event_id: str) -> list[Delivery]:
        """Every delivery of one event, in order."""
        return [delivery for delivery in self._items if delivery.event_id == event_id]

    def redelivered(self) -> list[Delivery]:
        """The deliveries that were not an entry's first."""
        return [delivery for delivery in self._items if delivery.delivery > 1]

    def describe(self, limit: int = 20) -> str:
        """A line per delivery (the first ``limit``), for notebooks and logs."""
        lines = [repr(self)]
        for number, d in enumerate(self._items):
            if number == limit:
                lines.append(f"  ... ({len(self._items) - limit} more)")
                break
            why = f"  {d.reason}" if d.reason else ""
            lines.append(
                f"  {d.event_id or '?':>10}  {d.type_name or '?':<18} {d.consumer:<10} "
                f"#{d.delivery}  {d.outcome}{why}"
            )
        return "\n".join(lines)

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Delivery:
        return self._items[index]

    def __repr__(self) -> str:
        return f"DeliveryLog({_summary(len(self._items), self.counts())})"


class BatchReport(NamedTuple):
    """What one :meth:`StreamConsumer.process_batch` did."""

    deliveries: tuple[Delivery, ...]
    reclaimed: int = 0
    """How many of them were taken over from a consumer that had left them pending."""
    vanished: int = 0
    """Pending entries found deleted from the stream (trimmed) while reclaiming."""

    def counts(self) -> dict[str, int]:
        tally = Counter(delivery.outcome for delivery in self.deliveries)
        return {outcome: tally[outcome] for outcome in OUTCOMES}

    def __len__(self) -> int:
        return len(self.deliveries)

    def __repr__(self) -> str:
        reclaimed = f", {self.reclaimed} reclaimed" if self.reclaimed else ""
        return f"BatchReport({_summary(len(self.deliveries), self.counts())}{reclaimed})"


class StreamDeadLetter(NamedTuple):
    """An entry a consumer group gave up on, as kept in the dead-letter stream."""

    event_id: str
    type_name: str
    reason: str
    deliveries: int
    consumer: str
    payload: str
    source_entry: str
    """The id of the original entry in the stream."""

    def __repr__(self) -> str:
        return (
            f"StreamDeadLetter({self.event_id or '?'} {self.type_name or '?'} after "
            f"{plural(self.deliveries, 'delivery', 'deliveries')}: {self.reason})"
        )


class StreamStatus(NamedTuple):
    """Counts of a stream and one of its consumer groups, for notebooks and tests."""

    stream: str
    group: str
    length: int
    pending: int
    processed: int
    dead_letters: int
    consumers: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"StreamStatus({self.stream}/{self.group}: {plural(self.length, 'entry', 'entries')}"
            f", {self.pending} pending, {self.processed} processed, "
            f"{plural(self.dead_letters, 'dead letter')})"
        )


# ---------------------------------------------------------------------- consuming


class _Entry(NamedTuple):
    entry_id: str
    fields: Mapping[str, str]
    delivery: int


class _UndecodableError(Exception):
    """An entry that cannot become an event (its reason is the message)."""


class StreamConsumer:
    """One consumer of a consumer group: reads entries, dispatches them, acknowledges them.

    ``process_batch()`` first reclaims up to ``batch`` entries that have been pending longer
    than ``claim_idle_ms`` (left by a consumer that died, or failed earlier), then reads new
    entries to fill the batch, waiting up to ``block_ms`` when there is nothing at all.
    Keep ``claim_idle_ms`` well above the time a batch takes: a live consumer's entries that
    are idle that long are reclaimed under it (harmless, but the work is done twice).
    Each entry is decoded through ``registry``, deduplicated by event id, and dispatched on
    ``bus``; see the module docstring for the outcomes and for what "effectively once"
    promises. The group is created (reading the stream from its start) if it is missing.

    ``deliveries`` keeps the newest ``keep`` deliveries of this consumer; with
    ``journal=True`` each delivery is also added to the group's journal stream, where
    :func:`read_journal` finds the deliveries of every consumer process. ``on_delivery`` is
    called with each delivery once its outcome is stored in Redis (a worker logs them).
    """

    def __init__(
        self,
        client: redis.Redis,
        bus: EventBus,
        registry: EventRegistry,
        *,
        stream: str = "events",
        group: str = "workers",
        consumer: str = "worker-1",
        batch: int = 100,
        block_ms: int | None = 1000,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        journal: bool = False,
        keep: int | None = 10_000,
        on_delivery: Callable[[Delivery], object] | None = None,
    ) -> None:
        require_sync_bus(bus, "StreamConsumer")
        if not isinstance(registry, EventRegistry):
            raise TypeError(
                f"StreamConsumer decodes entries through an EventRegistry, got "
                f"{type(registry).__name__}; build one with EventRegistry.of(OrderCreated, ...)"
            )
        if not client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError(
                "StreamConsumer reads entries as text: give it a client made with "
                "decode_responses=True, such as eda_lesson.transport.redis_streams.connect(url)"
            )
        _check_positive("batch", batch)
        _check_positive("max_deliveries", max_deliveries)
        _check_positive("claim_idle_ms", claim_idle_ms, allow_zero=True)
        if block_ms is not None:
            _check_positive("block_ms", block_ms)
        for name, value in (("stream", stream), ("group", group), ("consumer", consumer)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} is a non-empty name, got {value!r}")
        self.client = client
        self.bus = bus
        self.registry = registry
        self.keys = StreamKeys(stream, group)
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.journal = journal
        self.on_delivery = on_delivery
        self.deliveries = DeliveryLog(keep=keep)
        self._claim_cursor = "0-0"
        self._group_ready = False

    @property
    def stream(self) -> str:
        return self.keys.stream

    @property
    def group(self) -> str:
        return self.keys.group

    def ensure_group(self) -> bool:
        """Create the consumer group (and the stream) unless it exists, and join it as this
        consumer; True if the group was created."""
        try:
            with talking_to(self.client):
                self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
            created = False
        else:
            created = True
        # Joining now, rather than at the first entry read, lists an idle consumer too.
        with talking_to(self.client):
            self.client.xgroup_createconsumer(self.stream, self.group, self.consumer)
        self._group_ready = True
        return created

    # ------------------------------------------------------------------ one batch

    def process_batch(self, *, wait: bool = True, limit: int | None = None) -> BatchReport:
        """Reclaim, read, dispatch and acknowledge one batch; return what happened.

        With ``wait=False`` it does not wait for new entries when there are none; ``limit``
        makes the batch smaller than ``batch`` entries (a notebook handling a few at a time).
        Raises :class:`RedisUnavailableError` when Redis cannot be reached; entries already
        dispatched in the batch are then delivered again later (see the module docstring).
        """
        if not self._group_ready:
            self.ensure_group()
        size = self.batch if limit is None else max(0, min(limit, self.batch))
        try:
            entries, vanished = self._reclaim(size) if size else ([], 0)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_group()  # the group vanished (Redis restarted without persistence)
            entries, vanished = self._reclaim(size)
        reclaimed = len(entries)
        room = size - reclaimed
        if room > 0:
            block = self.block_ms if wait and not entries else None
            entries += self._read_new(room, block)
        if not entries:
            return BatchReport((), 0, vanished)
        deliveries = self._handle(entries)
        return BatchReport(tuple(deliveries), reclaimed, vanished)

    def _reclaim(self, count: int) -> tuple[list[_Entry], int]:
        """Take over entries pending longer than the idle time; with their delivery counts."""
        with talking_to(self.client):
            reply = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=self._claim_cursor,
                count=count,
            )
        self._claim_cursor = str(reply[0])
        vanished = len(reply[2]) if len(reply) > 2 else 0
        claimed = [(str(entry_id), fields) for entry_id, fields in reply[1] if fields is not None]
        if not claimed:
            return [], vanished
        pipe = self.client.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        with talking_to(self.client):
            details = pipe.execute()
        counts = {str(d[0]["message_id"]): int(d[0]["times_delivered"]) for d in details if d}
        # An entry acknowledged in between has no pending detail: another consumer finished it.
        entries = [
            _Entry(entry_id, fields, counts[entry_id])
            for entry_id, fields in claimed
            if entry_id in counts
        ]
        return entries, vanished

    def _read_new(self, count: int, block_ms: int | None) -> list[_Entry]:
        with talking_to(self.client):
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3: {stream: [entries]}
            batches = [entries for lists in reply.values() for entries in lists]
        else:  # RESP2: [[stream, entries]]
            batches = [entries for _, entries in reply]
        return [
            _Entry(str(entry_id), fields, 1)
            for entries in batches
            for entry_id, fields in _entries_of(entries)
        ]

    def _handle(self, entries: list[_Entry]) -> list[Delivery]:
        decoded = [self._decode(entry) for entry in entries]
        ids = [event_id for event_id, _, _ in decoded if event_id]
        with talking_to(self.client):
            done = (
                cast("list[str | None]", self.client.hmget(self.keys.processed, ids)) if ids else []
            )
        processed_before = {event_id for event_id, who in zip(ids, done, strict=True) if who}
        work = _Work()
        for entry, (event_id, type_name, event) in zip(entries, decoded, strict=True):
            record = functools.partial(self._delivery, entry, event_id, type_name)
            if isinstance(event, _UndecodableError):
                work.dead(entry, record("dead-lettered", str(event)))
            elif event_id in processed_before or event_id in work.handled_ids:
                work.ack(entry, record("duplicate"))
            elif entry.delivery > self.max_deliveries:
                reason = (
                    f"delivered {entry.delivery} times without being acknowledged; the consumers "
                    "that took it may have died while handling it"
                )
                work.dead(entry, record("dead-lettered", reason))
            else:
                self._dispatch(entry, event, record, work)
        self._store(work)
        for delivery in work.deliveries:
            self.deliveries.add(delivery)
            if self.on_delivery is not None:
                self.on_delivery(delivery)
        return work.deliveries

    def _decode(self, entry: _Entry) -> tuple[str, str, object]:
        fields = entry.fields
        event_id, type_name = fields.get("event_id", ""), fields.get("type", "")
        missing = [
            name for name in ("event_id", "type", "version", "payload") if name not in fields
        ]
        if missing:
            problem = (
                f"malformed entry: missing field{'s' * (len(missing) > 1)} {', '.join(missing)}"
            )
            return event_id, type_name, _UndecodableError(problem)
        try:
            version = int(fields["version"])
        except ValueError:
            return (
                event_id,
                type_name,
                _UndecodableError(
                    f"malformed entry: version {fields['version']!r} is not a whole number"
                ),
            )
        try:
            event = self.registry.from_json(type_name, version, fields["payload"])
        except Exception as error:  # EventFormatError, or a class refusing its own fields
            return event_id, type_name, _UndecodableError(f"{type(error).__name__}: {error}")
        return event_id, type_name, event

    def _dispatch(
        self, entry: _Entry, event: object, record: Callable[..., Delivery], work: _Work
    ) -> None:
        result: DispatchResult | None
        try:
            result = self.bus.dispatch(event)
        except Exception as error:  # fail_fast, a cascade limit: the bus itself gave up
            result, reason = None, f"{type(error).__name__}: {error}"
        else:
            reason = "" if result.ok else _failures(result)
        if not reason:
            work.handled(entry, record("handled", "", result))
        elif entry.delivery >= self.max_deliveries:
            reason = f"failed on delivery {entry.delivery} of {self.max_deliveries}: {reason}"
            work.dead(entry, record("dead-lettered", reason, result))
        else:
            work.keep_pending(record("failed", reason, result))

    def _delivery(
        self,
        entry: _Entry,
        event_id: str,
        type_name: str,
        outcome: str,
        reason: str = "",
        result: DispatchResult | None = None,
    ) -> Delivery:
        return Delivery(
            event_id,
            type_name,
            self.consumer,
            entry.delivery,
            outcome,
            reason,
            entry.entry_id,
            result,
        )

    def _store(self, work: _Work) -> None:
        """Marks, dead letters, acknowledgements (and the journal) in one transaction."""
        if not (work.acks or self.journal):
            return
        pipe = self.client.pipeline(transaction=True)
        if work.marks:
            pipe.hset(self.keys.processed, mapping=work.marks)
        for entry, delivery in work.dead_letters:
            pipe.xadd(self.keys.dead_letters, _dead_letter_fields(entry, delivery))
        if work.acks:
            pipe.xack(self.stream, self.group, *work.acks)
        if self.journal:
            for delivery in work.deliveries:
                pipe.xadd(self.keys.journal, _journal_fields(delivery), maxlen=100_000)
        with talking_to(self.client):
            pipe.execute()

    # ------------------------------------------------------------------ looking at it

    def status(self) -> StreamStatus:
        return stream_status(self.client, self.stream, self.group)

    def dead_letters(self) -> list[StreamDeadLetter]:
        return read_dead_letters(self.client, self.stream, self.group)

    def __repr__(self) -> str:
        return (
            f"StreamConsumer({self.consumer} in {self.stream}/{self.group}: "
            f"{_summary(len(self.deliveries), self.deliveries.counts())})"
        )


class _Work:
    """What a batch decided, to be stored in one transaction."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.marks: dict[FieldT, EncodableT] = {}
        self.acks: list[str] = []
        self.dead_letters: list[tuple[_Entry, Delivery]] = []
        self.handled_ids: set[str] = set()

    def handled(self, entry: _Entry, delivery: Delivery) -> None:
        self.marks[delivery.event_id] = delivery.consumer
        self.handled_ids.add(delivery.event_id)
        self.ack(entry, delivery)

    def ack(self, entry: _Entry, delivery: Delivery) -> None:
        self.acks.append(entry.entry_id)
        self.deliveries.append(delivery)

    def dead(self, entry: _Entry, delivery: Delivery) -> None:
        self.dead_letters.append((entry, delivery))
        self.ack(entry, delivery)

    def keep_pending(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)


def _entries_of(entries: Any) -> list[tuple[Any, Any]]:
    return [(entry_id, fields) for entry_id, fields in entries or ()]


def _failures(result: DispatchResult) -> str:
    return "; ".join(
        f"{call.name}: {type(call.error).__name__}: {call.error}" for call in result.failures
    )


def _dead_letter_fields(entry: _Entry, delivery: Delivery) -> Fields:
    fields: Fields = {key: value for key, value in entry.fields.items() if key in _ENTRY_FIELDS}
    fields.update(
        reason=delivery.reason,
        deliveries=delivery.delivery,
        consumer=delivery.consumer,
        source_entry=entry.entry_id,
    )
    return fields


_ENTRY_FIELDS = frozenset({"event_id", "type", "version", "payload"})


def _journal_fields(delivery: Delivery) -> Fields:
    return {
        "event_id": delivery.event_id,
        "type": delivery.type_name,
        "consumer": delivery.consumer,
        "delivery": delivery.delivery,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "entry": delivery.entry_id,
    }


# ---------------------------------------------------------------------- reading records


def processed_by(client: redis.Redis, stream: str, group: str) -> dict[str, str]:
    """``event id -> consumer`` for every event the group has handled (all processes)."""
    with talking_to(client):
        return dict(cast("dict[str, str]", client.hgetall(StreamKeys(stream, group).processed)))


def read_dead_letters(client: redis.Redis, stream: str, group: str) -> list[StreamDeadLetter]:
    """The entries the group gave up on, oldest first, each with its reason."""
    with talking_to(client):
        entries = cast("list[Any]", client.xrange(StreamKeys(stream, group).dead_letters))
    return [
        StreamDeadLetter(
            fields.get("event_id", ""),
            fields.get("type", ""),
            fields.get("reason", ""),
            int(fields.get("deliveries", 0)),
            fields.get("consumer", ""),
            fields.get("payload", ""),
            fields.get("source_entry", ""),
        )
        for _, fields in entries
    ]


def read_journal(client: redis.Redis, stream: str, group: str) -> DeliveryLog:
    """Every delivery the group's consumers recorded (with ``journal=True``), oldest first."""
    with talking_to(client):
        entries = cast("list[Any]", client.xrange(StreamKeys(stream, group).journal))
    return DeliveryLog(
        (
            Delivery(
                f["event_id"],
                f["type"],
                f["consumer"],
                int(f["delivery"]),
                f["outcome"],
                f.get("reason", ""),
                f.get("entry", ""),
            )
            for _, f in entries
        ),
        keep=None,
    )


def stream_status(client: redis.Redis, stream: str, group: str) -> StreamStatus:
    """Length, pending entries, processed events, dead letters and consumers of a group."""
    keys = StreamKeys(stream, group)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(stream)
    pipe.hlen(keys.processed)
    pipe.xlen(keys.dead_letters)
    pipe.exists(stream)
    with talking_to(client):
        length, processed, dead, exists = pipe.execute()
    pending = 0
    consumers: tuple[str, ...] = ()
    if exists:
        with talking_to(client):
            groups = client.xinfo_groups(stream)
            found = [g for g in groups if g["name"] == group]
            if found:
                pending = int(found[0]["pending"])
                infos = client.xinfo_consumers(stream, group)
                consumers = tuple(sorted(str(info["name"]) for info in infos))
    return StreamStatus(stream, group, int(length), pending, int(processed), int(dead), consumers)


# ---------------------------------------------------------------------- small helpers


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a whole number from 0" if allow_zero else "a positive whole number"
        raise ValueError(f"{name} is {kind}, got {value!r}")


def _summary(total: int, counts: Mapping[str, int]) -> str:
    parts = [f"{counts[outcome]} {outcome}" for outcome in OUTCOMES if counts[outcome]]
    head = plural(total, "delivery", "deliveries")
    return f"{head}: {', '.join(parts)}" if parts else head
