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
``payload`` (the event's fields as JSON). Anyone who can write to the stream can write
anything into an entry, so the consumer reads entries as bytes and checks every field
before it trusts one (see `What makes an entry malformed`_). Nothing is imported or
unpickled because an entry names it.

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
``parked``
    A well-formed entry of a type this consumer's registry does not know, or of a newer
    version than it knows (the producers were upgraded first, in a rolling upgrade). It is
    kept in the *parking stream* with the reason, then acknowledged; nothing is lost, and
    :func:`replay_parked` puts it back in the stream once the workers know it. With
    ``park_unknown=False`` such entries are dead-lettered instead.
``dead-lettered``
    The entry is malformed, or its payload does not fit its class, or it failed on its
    ``max_deliveries``-th delivery, or it was delivered more than ``max_deliveries`` times
    without ever being acknowledged (its consumers died while handling it: a poison pill).
    It is added to the dead-letter stream with its reason, then acknowledged, and the
    consumer goes on with the next entry.

A dead letter or a parked entry is the original entry, field for field and byte for byte,
plus fields named ``held:...`` saying why (``held:reason``, ``held:deliveries``,
``held:consumer``, ``held:source_entry``). :func:`read_dead_letters` and :func:`read_parked`
list them, :func:`replay_dead_letters` and :func:`replay_parked` add the original back to
the stream (as a new entry, which every group of the stream then reads; the groups that
handled the event already skip it as a duplicate) and remove it from where it was held,
in one atomic step, so a replay never runs twice.

What makes an entry malformed
-----------------------------
A missing field; an ``event_id`` or ``type`` that is empty, not UTF-8, longer than 200
characters, or holds a control character (a newline would forge a line in a log); a
``version`` that is not a whole number from 1 written in ASCII digits; a payload that is
not UTF-8, or holds NaN, an infinite number or a lone surrogate (the registry never writes
those, so reading refuses them too); an entry larger than ``max_entry_bytes``. A malformed
entry is dead-lettered with its reason; it never stops the rest of its batch, nor the group.
Fields an entry has beyond the four are kept (and copied into dead letters), not read.

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

Trimming, for workers that run for ever
---------------------------------------
:func:`trim_group` (a worker calls it every minute) trims the stream and the
processed-ids record by a rule that never loses work:

* The stream is trimmed (XTRIM MINID) only below the oldest entry that *some* group of the
  stream still needs: for each group, its oldest pending entry, or if none is pending, the
  entry after the last one it was given (XINFO GROUPS, XPENDING). A stream without groups is
  not trimmed. Entries younger than ``keep_stream_ms`` (measured from the newest entry, in
  the stream's own clock) are kept anyway, for looking at and for groups added later.
* A processed id is forgotten once the entry that carried it is more than
  ``remember_processed_ms`` older than the oldest entry the group still needs. A copy of an
  event can only arrive later than the original if a relay re-sent it, so that setting must
  exceed the longest a relay can stay down between publishing and marking (7 days by
  default). The times are kept in a sorted set beside the hash (:attr:`StreamKeys.processed_times`);
  an id found without a time (marked before the set existed, or by hand) is given the time
  of the trim that found it, and forgotten that long after.
* Working out the point and trimming are one atomic step (a script that looks at the groups
  again), so a group created at id 0 or moved back with XGROUP SETID meanwhile keeps its
  entries. Entries trimmed before such a group existed are gone: ``keep_stream_ms`` is the
  margin for groups added late.
* The dead-letter and parking streams keep 30 days and at most a million entries each by
  default (``keep_held_ms``, ``keep_held``; None keeps all): held entries are for people to
  look at and replay, and a flood of bad input must not fill the server.

What this module does not do: run the loop, handle signals or reconnect (that is
:mod:`eda_lesson.transport.worker`). Nor can it refuse an oversized entry before reading it:
Redis hands over whole entries, so an entry over ``max_entry_bytes`` written by some other
producer is read into memory once, then dead-lettered. Our publishers refuse such entries
before adding them (:func:`outbox_entry`); cap what others may write with Redis's own limits
(``proto-max-bulk-len``) and a bounded ``batch``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

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
from eda_lesson.core.messages import delivered_as
from eda_lesson.core.result import DispatchResult
from eda_lesson.patterns.outbox import UndeliverableError
from eda_lesson.patterns.serialization import (
    EventRegistry,
    FutureEventVersionError,
    MissingUpcasterError,
    UnknownEventTypeError,
)

if TYPE_CHECKING:
    from eda_lesson.patterns.outbox import OutboxMessage

__all__ = [
    "DEFAULT_MAX_ENTRY_BYTES",
    "DEFAULT_REDIS_URL",
    "OUTCOMES",
    "BatchReport",
    "Delivery",
    "DeliveryLog",
    "HeldEntry",
    "RedisRefusedError",
    "RedisUnavailableError",
    "StreamConsumer",
    "StreamDeadLetter",
    "StreamKeyError",
    "StreamKeys",
    "StreamPublisher",
    "StreamStatus",
    "TrimReport",
    "UnknownHeldEntryError",
    "check_name",
    "check_redis_url",
    "connect",
    "describe_client",
    "entry_fields",
    "outbox_entry",
    "printable",
    "processed_by",
    "read_dead_letters",
    "read_held",
    "read_journal",
    "read_parked",
    "redis_url",
    "replay_dead_letters",
    "replay_parked",
    "safe_trim_point",
    "stream_status",
    "talking_to",
    "trim_group",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

OUTCOMES = ("handled", "duplicate", "failed", "parked", "dead-lettered")
"""What can happen to one delivery of an entry, in the order tables list them."""

MAX_NAME = 200
"""The longest ``event_id`` or ``type`` an entry may carry, in characters."""

MAX_REASON = 2000
"""Reasons (error messages, which can quote a payload) are clipped to this many characters."""

_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
_AUTH_ERRORS: tuple[type[Exception], ...] = (
    redis.AuthenticationError,
    *(
        (redis.exceptions.AuthorizationError,)
        if hasattr(redis.exceptions, "AuthorizationError")
        else ()
    ),
)
_RAW = {"NEVER_DECODE": True}
"""Passed to ``execute_command``: this reply comes as bytes, whatever the client decodes."""

Fields = dict[FieldT, EncodableT]
"""The fields of a stream entry, as redis-py takes them."""

_parse_url: Callable[[str], dict[str, Any]] = redis.connection.parse_url


# ---------------------------------------------------------------------- text we did not write


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\x1b``,
    ``\\u2028``), clipped to ``limit`` characters: safe to put in a log line or a table.

    Backslashes are left alone, so escaping twice changes nothing; a forged ``\\n`` then reads
    like an escaped newline, but it can never start a new line.
    """
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text


def _escape(ch: str) -> str:
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in special:
        return special[ch]
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _shown(raw: object, limit: int = MAX_NAME) -> str:
    """Bytes (or text) from Redis as printable text, whatever they hold."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "backslashreplace")
    return printable(str(raw), limit)


def _str(raw: object) -> str:
    return raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)


def _reason(text: str) -> str:
    return printable(text, MAX_REASON)


# ---------------------------------------------------------------------- connecting


def redis_url(url: str | None = None) -> str:
    """``url`` if given, else the ``REDIS_URL`` environment variable, else 127.0.0.1:6379."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def _without_password(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can use it as it means; a ValueError saying what is wrong otherwise.

    redis-py reads ``redis://host:6379/abc`` as database 0 and gives a traceback for a port
    out of range; this check says what is wrong and what a good URL looks like. The message
    never repeats a password.
    """
    shown = printable(_without_password(url), 300)
    example = "redis://127.0.0.1:6379/0 (or redis://:PASSWORD@HOST:PORT/DB)"
    if not isinstance(url, str) or not url:
        raise ValueError(f"a Redis URL is needed, such as {example}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"the Redis URL {shown} cannot be read ({error}); use {example}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(
            f"the Redis URL {shown} starts with {scheme}; it starts with redis://, "
            f"rediss:// (TLS) or unix://, such as {example}"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(
                f"the Redis URL {shown} names no socket; use unix:///path/to/redis.sock, "
                f"or a TCP address such as {example}"
            )
    else:
        if port == 0:
            raise ValueError(
                f"the Redis URL {shown} has port 0; a port is 1-65535, such as {example}"
            )
        database = parts.path.strip("/")
        if "/" in database or (database and not re.fullmatch(r"[0-9]{1,9}", database)):
            raise ValueError(
                f"the Redis URL {shown} names the database {database!r}; a database is a "
                f"number (0, 1, ...) at the end of the URL, such as {example}"
            )
    query = urllib.parse.parse_qs(parts.query)
    if "db" in query and not all(re.fullmatch(r"[0-9]{1,9}", value) for value in query["db"]):
        raise ValueError(
            f"the Redis URL {shown} has db={query['db'][0]!r}; a database is a number (0, 1, ...)"
        )
    try:
        _parse_url(url)
    except ValueError as error:
        raise ValueError(f"the Redis URL {shown} cannot be used: {error}") from None
    return url


def connect(
    url: str | None = None, *, timeout: float = 5.0, read_timeout: float | None = 30.0
) -> redis.Redis:
    """A client for ``url`` (see :func:`redis_url`); it connects on first use.

    The URL is checked first (:func:`check_redis_url`: a ValueError names what is wrong).
    redis-py's own retries are turned off: a worker and a relay decide themselves when to try
    again, and say so in their logs. ``read_timeout`` must exceed the longest blocking read.
    """
    return redis.Redis.from_url(
        check_redis_url(redis_url(url)),
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
        self.problem = printable(problem, 500)
        port = urllib.parse.urlsplit(url).port or 6379 if url.startswith("redis") else 6379
        super().__init__(
            f"cannot reach Redis at {url} ({self.problem.rstrip('.')}). Start one with "
            f"`redis-server --port {port} --bind 127.0.0.1` (not installed? "
            "`sudo apt-get install redis-server`), or point --redis-url or REDIS_URL at a "
            "running server"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.url, self.problem)


class RedisRefusedError(Exception):
    """Redis answered, but refused us: no password, a wrong one, a user without the right,
    or a database number it does not have. Trying again will not help; the message says
    what to change."""

    def __init__(self, url: str, problem: str, fix: str) -> None:
        self.url = url
        self.problem = printable(problem, 500)
        self.fix = fix
        super().__init__(f"Redis at {url} refused us: {self.problem.rstrip('.')}; {fix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.url, self.problem, self.fix)


class StreamKeyError(RuntimeError):
    """A key the consumer uses holds something other than what it needs (WRONGTYPE)."""


@contextmanager
def talking_to(client: redis.Redis) -> Iterator[None]:
    """Turn redis-py's connection errors into :class:`RedisUnavailableError`, and its
    refusals (password, permission, database) into :class:`RedisRefusedError`."""
    try:
        yield
    except _AUTH_ERRORS as error:
        raise _refusal(client, error) from error
    except _CONNECTION_ERRORS as error:
        problem = str(error) or type(error).__name__
        raise RedisUnavailableError(describe_client(client), problem) from error
    except redis.ResponseError as error:
        text = str(error)
        if isinstance(error, redis.exceptions.NoPermissionError) or "DB index" in text:
            raise _refusal(client, error) from error
        raise


def _refusal(client: redis.Redis, error: Exception) -> RedisRefusedError:
    url = describe_client(client)
    kwargs = client.connection_pool.connection_kwargs
    text = str(error) or type(error).__name__
    where = "--redis-url or REDIS_URL"
    if "DB index" in text:
        fix = (
            f"it has no database {kwargs.get('db', 0)}: use a number below its `databases` "
            f"setting (16 unless configured), such as {url.rsplit('/', 1)[0]}/0, in {where}"
        )
        return RedisRefusedError(url, text, fix)
    if isinstance(error, redis.exceptions.NoPermissionError):
        user = kwargs.get("username") or "default"
        fix = (
            f"the user {user!r} may not use these keys or commands; give it the rights "
            "(ACL SETUSER) or connect as another user"
        )
        return RedisRefusedError(url, text, fix)
    address = url.removeprefix("redis://")
    if kwargs.get("password") is None:
        fix = (
            f"this server requires a password: put it in {where}, such as "
            f"redis://:PASSWORD@{address} (or redis://USER:PASSWORD@{address})"
        )
    else:
        fix = f"the user name or password is wrong: check the one in {where}"
    return RedisRefusedError(url, text, fix)


def _raw(client: redis.Redis | redis.client.Pipeline, *args: EncodableT) -> Any:
    """Run one command and return its reply as bytes (the client may decode the others);
    on a pipeline, queue it."""
    execute: Callable[..., Any] = client.execute_command
    return execute(*args, **_RAW)


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
    def processed_times(self) -> str:
        """Sorted set ``event id -> ms`` (from the id of the entry that carried it), which
        tells trimming how old a processed id is."""
        return f"{self.stream}:{self.group}:processed-times"

    @property
    def dead_letters(self) -> str:
        """Stream of the entries this group gave up on, each with its reason."""
        return f"{self.stream}:{self.group}:dead"

    @property
    def parked(self) -> str:
        """Stream of the entries this group could not read yet (unknown type or version)."""
        return f"{self.stream}:{self.group}:parked"

    @property
    def journal(self) -> str:
        """Stream of every delivery and its outcome (written when the journal is on)."""
        return f"{self.stream}:{self.group}:deliveries"

    def all(self) -> tuple[str, ...]:
        """Every key of the group beside the stream (to delete them, say)."""
        return (self.processed, self.processed_times, self.dead_letters, self.parked, self.journal)


# ---------------------------------------------------------------------- publishing


def entry_fields(event_id: str, event_type: str, version: int, payload: str) -> Fields:
    """The fields of a stream entry carrying one event."""
    return {"event_id": event_id, "type": event_type, "version": version, "payload": payload}


DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024
"""The largest entry a consumer takes by default; publishers refuse larger ones."""

_FIELD_NAME_BYTES = len("event_id") + len("type") + len("version") + len("payload")


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _plain_name(text: str) -> bool:
    """True for the usual id or type name, which every consumer takes: short printable ASCII
    without spaces around it (anything else is checked by :func:`_name_field`)."""
    return (
        0 < len(text) <= MAX_NAME
        and text.isascii()
        and text.isprintable()
        and text[0] != " "
        and text[-1] != " "
    )


def outbox_entry(message: OutboxMessage, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES) -> Fields:
    """The entry fields of an outbox message, or :class:`UndeliverableError` for one that
    every consumer would dead-letter (an id it refuses, an entry over ``max_entry_bytes``):
    refused here, the relay parks it in the outbox, where it can be fixed and requeued,
    instead of writing it to the stream for every consumer to read and throw away."""
    event_id, event_type, payload = message.event_id, message.event_type, message.payload
    fields = entry_fields(event_id, event_type, message.schema_version, payload)
    for name, value in (("event_id", event_id), ("type", event_type)):
        if not _plain_name(value):
            problem = _name_field(name, value.encode("utf-8", "surrogatepass"))
            if isinstance(problem, _Problem):
                raise UndeliverableError(f"consumers would dead-letter this entry: {problem.text}")
    size = (
        _FIELD_NAME_BYTES
        + sum(map(_utf8_length, (event_id, event_type, payload)))
        + len(str(message.schema_version))
    )
    if size > max_entry_bytes:
        raise UndeliverableError(
            f"the entry would be {size:,} bytes, more than max_entry_bytes={max_entry_bytes:,} "
            "that consumers take; publish large data elsewhere and put a reference in the event"
        )
    return fields


class StreamPublisher:
    """Adds outbox messages to a Redis stream; a :class:`~eda_lesson.patterns.outbox.Publisher`.

    A batch goes in one MULTI transaction (one round trip): all its entries are added or,
    if the connection breaks first, none, and the relay publishes the batch again.
    ``send(event, event_id=...)`` publishes one event without an outbox (needs ``registry``).
    ``maxlen`` caps the stream's length (approximately) if given; prefer :func:`trim_group`,
    which never trims what a group has not acknowledged. A message no consumer would take
    (see :func:`outbox_entry`) raises UndeliverableError before anything is added, so the
    relay parks it in the outbox.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str = "events",
        *,
        registry: EventRegistry | None = None,
        maxlen: int | None = None,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        _check_positive("max_entry_bytes", max_entry_bytes)
        self.client = client
        self.stream = stream
        self.registry = registry
        self.maxlen = maxlen
        self.max_entry_bytes = max_entry_bytes
        self.published = 0

    def publish(self, messages: Sequence[OutboxMessage]) -> list[str]:
        """Add ``messages`` to the stream in order; return their entry ids."""
        entries = [outbox_entry(message, self.max_entry_bytes) for message in messages]
        pipe = self.client.pipeline(transaction=True)
        for fields in entries:
            pipe.xadd(self.stream, fields, maxlen=self.maxlen)
        with talking_to(self.client):
            ids = pipe.execute()
        self.published += len(messages)
        return [str(entry_id) for entry_id in ids]

    def send(self, event: object, *, event_id: str) -> str:
        """Add one event to the stream, encoded through the registry; return its entry id.

        An ``event_id`` the consumers would refuse (empty, longer than 200 characters, with a
        control character) raises ValueError here, where the mistake is made."""
        if self.registry is None:
            raise TypeError(
                "send() encodes the event through a registry: "
                "StreamPublisher(client, stream, registry=EventRegistry.of(...))"
            )
        name, version, payload = self.registry.to_json(event)
        problem = _name_field("event_id", event_id.encode("utf-8", "surrogatepass"))
        if isinstance(problem, _Problem):
            raise ValueError(
                f"send() would write an entry every consumer dead-letters: {problem.text}; "
                "give each event a short printable id, such as send(event, event_id='evt-1')"
            )
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
    """One delivery of one entry to one consumer, and what came of it.

    Every text field is printable (control characters escaped), whatever the entry held.
    """

    event_id: str
    type_name: str
    consumer: str
    delivery: int
    """1 for the first delivery, 2 for the first redelivery, ..."""
    outcome: str
    """One of :data:`OUTCOMES`."""
    reason: str = ""
    """Why it failed, was parked or was dead-lettered (at most :data:`MAX_REASON` characters)."""
    entry_id: str = ""
    """The stream entry id (it holds a timestamp: keep it out of notebook outputs)."""
    result: DispatchResult | None = None
    """The dispatch result, in the :class:`BatchReport` of the batch that dispatched it
    (a :class:`DeliveryLog` drops it, to stay small)."""

    def __repr__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"Delivery({self.event_id} {self.type_name} -> {self.consumer}, "
            f"delivery {self.delivery}: {self.outcome}{why})"
        )


_DELIVERY_BYTES = 120 + 5 * sys.getsizeof("")
"""A delivery's tuple and its five strings when empty (CPython); each character adds at
least a byte."""


def _size(delivery: Delivery) -> int:
    """About how many bytes a delivery (without its result) holds in memory: a lower bound
    for text beyond ASCII, which is rare in ids and reasons, and cheap to work out (every
    delivery of an ever-running worker goes through here)."""
    event_id, type_name, consumer, _, _, reason, entry_id, _ = delivery
    return (
        _DELIVERY_BYTES
        + len(event_id)
        + len(type_name)
        + len(consumer)
        + len(reason)
        + len(entry_id)
    )


class DeliveryLog:
    """Deliveries in the order they were recorded: the newest ``keep`` of them, and no more
    than ``keep_bytes`` bytes of them (the oldest go first).

    A log keeps records, not events: the dispatch result (which holds the event and what
    every handler returned) is dropped, so a long-running worker's log stays small.
    """

    def __init__(
        self,
        deliveries: Iterable[Delivery] = (),
        *,
        keep: int | None = 10_000,
        keep_bytes: int | None = 16 * 1024 * 1024,
    ) -> None:
        self.keep = keep
        self.keep_bytes = keep_bytes
        self._items: deque[Delivery] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0
        """About how many bytes the kept deliveries hold."""
        for delivery in deliveries:
            self.add(delivery)

    def add(self, delivery: Delivery) -> None:
        if delivery.result is not None:
            delivery = delivery._replace(result=None)
        size = _size(delivery)
        self._items.append(delivery)
        self._sizes.append(size)
        self.bytes += size
        while self._items and (
            (self.keep is not None and len(self._items) > self.keep)
            or (self.keep_bytes is not None and self.bytes > self.keep_bytes)
        ):
            self._items.popleft()
            self.bytes -= self._sizes.popleft()

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


_NO_FIELDS: Mapping[bytes, bytes] = MappingProxyType({})


class HeldEntry(NamedTuple):
    """An entry a consumer group set aside, in its dead-letter or its parking stream.

    The text fields are for reading (printable, clipped); ``fields`` holds the original
    entry byte for byte, which is what a replay adds back to the stream.
    """

    event_id: str
    type_name: str
    reason: str
    deliveries: int
    consumer: str
    payload: str
    """The payload as text, non-UTF-8 bytes escaped (``\\xff``)."""
    source_entry: str
    """The id of the original entry in the stream."""
    held_id: str = ""
    """Its id in the dead-letter or parking stream: what ``show`` and ``replay`` take."""
    version: str = ""
    fields: Mapping[bytes, bytes] = _NO_FIELDS
    """The original entry's fields, exactly as they were."""

    def __repr__(self) -> str:
        return (
            f"HeldEntry({self.event_id or '?'} {self.type_name or '?'} after "
            f"{plural(self.deliveries, 'delivery', 'deliveries')}: {self.reason})"
        )


StreamDeadLetter = HeldEntry
"""The earlier name of :class:`HeldEntry`, kept for code written against it."""


class StreamStatus(NamedTuple):
    """Counts of a stream and one of its consumer groups, for notebooks and tests."""

    stream: str
    group: str
    length: int
    pending: int
    processed: int
    dead_letters: int
    consumers: tuple[str, ...]
    parked: int = 0

    def __repr__(self) -> str:
        parked = f", {self.parked} parked" if self.parked else ""
        return (
            f"StreamStatus({self.stream}/{self.group}: {plural(self.length, 'entry', 'entries')}"
            f", {self.pending} pending, {self.processed} processed, "
            f"{plural(self.dead_letters, 'dead letter')}{parked})"
        )


class TrimReport(NamedTuple):
    """What one :func:`trim_group` removed."""

    entries: int
    """Stream entries removed."""
    processed: int
    """Processed ids forgotten."""
    kept_from: str = ""
    """The stream entry id below which entries could go ("" when none could)."""
    held: int = 0
    """Dead letters and parked entries removed for age or count."""

    def __repr__(self) -> str:
        held = f", {self.held} held entries trimmed" if self.held else ""
        return (
            f"TrimReport({plural(self.entries, 'entry', 'entries')} trimmed, "
            f"{self.processed} processed ids forgotten{held})"
        )


# ---------------------------------------------------------------------- reading an entry


class _Entry(NamedTuple):
    entry_id: str
    fields: Mapping[bytes, bytes]
    delivery: int


class _Envelope(NamedTuple):
    """What a well-formed entry says: who it is, what it is, and its payload as text."""

    event_id: str
    type_name: str
    version: int
    payload: str


class _Malformed(NamedTuple):
    reason: str
    event_id: str
    type_name: str


_REQUIRED = (b"event_id", b"type", b"version", b"payload")
_VERSION = re.compile(rb"[1-9][0-9]{0,8}")
# What might hide a number JSON cannot hold (NaN, Infinity, 1e999, 400 digits) or a lone
# surrogate escape: only payloads that match are parsed a second time, strictly.
_SUSPECT = re.compile(r"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{300}|\\u[dD]")
_PARK = (UnknownEventTypeError, FutureEventVersionError, MissingUpcasterError)


def _envelope(fields: Mapping[bytes, bytes], max_entry_bytes: int) -> _Envelope | _Malformed:
    """The entry's fields, checked: what a well-formed entry says, or why it is malformed.

    Every entry of every batch comes through here, so the common case (all four fields
    there, ASCII names, nothing suspect) is tried first in a few steps; anything else is
    checked field by field by :func:`_envelope_checked`, which words the reason."""
    try:
        event_id = fields[b"event_id"].decode("ascii")
        type_name = fields[b"type"].decode("ascii")
        raw_version = fields[b"version"]
        payload = fields[b"payload"].decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return _envelope_checked(fields, max_entry_bytes)
    if (
        _plain_name(event_id)
        and _plain_name(type_name)
        and _VERSION.fullmatch(raw_version)
        and sum(map(len, fields)) + sum(map(len, fields.values())) <= max_entry_bytes
        and not _SUSPECT.search(payload)
    ):
        return _Envelope(event_id, type_name, int(raw_version), payload)
    return _envelope_checked(fields, max_entry_bytes)


def _envelope_checked(
    fields: Mapping[bytes, bytes], max_entry_bytes: int
) -> _Envelope | _Malformed:
    """The entry's fields checked one by one; the first problem found, as a reason."""

    def malformed(problem: str) -> _Malformed:
        return _Malformed(
            _reason(f"malformed entry: {problem}"),
            _shown(fields.get(b"event_id", b"")),
            _shown(fields.get(b"type", b"")),
        )

    size = sum(map(len, fields)) + sum(map(len, fields.values()))
    if size > max_entry_bytes:
        return malformed(
            f"{size:,} bytes, more than max_entry_bytes={max_entry_bytes:,}; publish large "
            "data elsewhere and put a reference in the event"
        )
    missing = [name.decode() for name in _REQUIRED if name not in fields]
    if missing:
        return malformed(f"missing field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    names: list[str] = []
    for field in (b"event_id", b"type"):
        text = _name_field(field.decode(), fields[field])
        if isinstance(text, _Problem):
            return malformed(text.text)
        names.append(text)
    raw_version = fields[b"version"]
    if not _VERSION.fullmatch(raw_version):
        return malformed(
            f"version '{_shown(raw_version, 40)}' is not a whole number from 1 (1, 2, ...)"
        )
    try:
        payload = fields[b"payload"].decode("utf-8")
    except UnicodeDecodeError as error:
        return malformed(
            f"the payload is not UTF-8 text (byte {error.start}: "
            f"{_shown(fields[b'payload'][error.start : error.start + 4], 20)})"
        )
    if _SUSPECT.search(payload):
        problem = _strict_payload_problem(payload)
        if problem:
            return malformed(problem)
    return _Envelope(names[0], names[1], int(raw_version), payload)


class _Problem(NamedTuple):
    text: str


class _Undecodable(NamedTuple):
    """What reading an entry's payload raised (kept, to be told in its delivery)."""

    error: Exception


def _name_field(name: str, raw: bytes) -> str | _Problem:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Problem(f"{name} '{_shown(raw, 60)}' is not UTF-8 text")
    if not text.strip():
        return _Problem(
            f"{name} is {'empty' if not text else 'blank'}; every entry needs one "
            "(the outbox gives each event its id, the registry its type)"
        )
    if len(text) > MAX_NAME:
        return _Problem(f"{name} is {len(text):,} characters long, more than {MAX_NAME}")
    if not text.isprintable() or text != text.strip():
        return _Problem(
            f"{name} '{printable(text, 60)}' holds a control character or surrounding spaces"
        )
    return text


class _RefusedValueError(Exception):
    """A value in a payload that the registry would never have written."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedValueError(
            f"the number {text[:20]}{'...' * (len(text) > 20)}, too large for a float"
        )
    return value


def _constant(text: str) -> float:
    raise _RefusedValueError(text)


def _strict_payload_problem(payload: str) -> str:
    """Why the payload holds what writing refuses (NaN, Infinity, lone surrogates); "" if not."""
    try:
        data = json.loads(payload, parse_float=_finite, parse_constant=_constant)
    except _RefusedValueError as refused:
        return (
            f"the payload holds {refused}, which JSON does not allow and EventRegistry never "
            "writes; fix the producer"
        )
    except (ValueError, RecursionError):
        return ""  # not JSON at all: the registry says so in its own words
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return (
                    "the payload holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                    "text and cannot be written back; fix the producer"
                )
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return ""


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------- consuming


class StreamConsumer:
    """One consumer of a consumer group: reads entries, dispatches them, acknowledges them.

    ``process_batch()`` first reclaims up to ``batch`` entries that have been pending longer
    than ``claim_idle_ms`` (left by a consumer that died, or failed earlier), then reads new
    entries to fill the batch, waiting up to ``block_ms`` when there is nothing at all.
    Keep ``claim_idle_ms`` well above the time a batch takes: a live consumer's entries that
    are idle that long are reclaimed under it (harmless, but the work is done twice).
    Each entry is checked, decoded through ``registry``, deduplicated by event id, and
    dispatched on ``bus``; see the module docstring for the outcomes and for what
    "effectively once" promises. The group is created (reading the stream from its start)
    if it is missing, and created again if the stream or the group is deleted meanwhile.

    ``deliveries`` keeps the newest ``keep`` deliveries of this consumer, and at most
    ``keep_bytes`` of them, without their dispatch results; with ``journal=True`` each
    delivery is also added to the group's journal stream, where :func:`read_journal` finds
    the deliveries of every consumer process. ``deduplicate=False`` keeps no processed-ids
    record in Redis (no lookup before a batch, no marks after it): only for handlers that
    deduplicate themselves, such as handlers behind an
    :class:`~eda_lesson.patterns.inbox.Inbox`, whose mark commits with the effect; copies
    inside one batch are still caught. ``on_delivery`` is called with each delivery
    once its outcome is stored in Redis (a worker logs them). ``park_unknown``,
    ``max_entry_bytes``, ``keep_stream_ms`` and ``remember_processed_ms`` are explained in
    the module docstring.

    ``in_order=True`` never handles an entry before the ones ahead of it: when a delivery
    fails, the rest of its batch is left pending unhandled, and the next batch starts again
    from the oldest pending entry, the failed one, alone, until it is handled or
    dead-lettered. For a stream that one consumer reads at a time (a partition, see
    :mod:`eda_lesson.transport.partitions`) with ``claim_idle_ms=0``. An entry left waiting
    behind a failure counts that batch as one of its deliveries.

    ``around_batch`` is a context manager factory entered around the handling of each batch
    and left before the batch is acknowledged, such as ``inbox.batch`` (one transaction for
    the batch's effects, committed before any entry is acknowledged).
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
        keep_bytes: int | None = 16 * 1024 * 1024,
        park_unknown: bool = True,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        keep_stream_ms: int = 24 * 3600 * 1000,
        remember_processed_ms: int = 7 * 24 * 3600 * 1000,
        on_delivery: Callable[[Delivery], object] | None = None,
        in_order: bool = False,
        around_batch: Callable[[], AbstractContextManager[object]] | None = None,
        deduplicate: bool = True,
    ) -> None:
        require_sync_bus(bus, "StreamConsumer")
        if not isinstance(registry, EventRegistry):
            raise TypeError(
                f"StreamConsumer decodes entries through an EventRegistry, got "
                f"{type(registry).__name__}; build one with EventRegistry.of(OrderCreated, ...)"
            )
        if not client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError(
                "StreamConsumer reads replies as text: give it a client made with "
                "decode_responses=True, such as eda_lesson.transport.redis_streams.connect(url)"
            )
        _check_positive("batch", batch)
        _check_positive("max_deliveries", max_deliveries)
        _check_positive("claim_idle_ms", claim_idle_ms, allow_zero=True)
        _check_positive("max_entry_bytes", max_entry_bytes)
        _check_positive("keep_stream_ms", keep_stream_ms, allow_zero=True)
        _check_positive("remember_processed_ms", remember_processed_ms, allow_zero=True)
        for name, limit in (("keep", keep), ("keep_bytes", keep_bytes)):
            if limit is not None:
                _check_positive(name, limit, allow_zero=True)
        if block_ms is not None:
            _check_positive("block_ms", block_ms)
        for name, value in (("stream", stream), ("group", group), ("consumer", consumer)):
            check_name(name, value)
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
        self.park_unknown = park_unknown
        self.max_entry_bytes = max_entry_bytes
        self.keep_stream_ms = keep_stream_ms
        self.remember_processed_ms = remember_processed_ms
        self.on_delivery = on_delivery
        self.in_order = in_order
        self.around_batch = around_batch
        self.deduplicate = bool(deduplicate)
        self._blocked = False  # in order: the last batch stopped at an entry that failed
        self.deliveries = DeliveryLog(keep=keep, keep_bytes=keep_bytes)
        self.groups_recreated = 0
        """How often the stream or the group vanished and was created again."""
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
        with self._explained():
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
        if not size:
            return BatchReport(())
        try:
            entries, reclaimed, vanished = self._collect(size, wait)
        except redis.ResponseError as error:
            if not _group_gone(error):
                raise self._explain(error) from error
            # The stream or the group was deleted (while we waited on it, or Redis restarted
            # without its data): create them again and read on.
            self.groups_recreated += 1
            self._claim_cursor = "0-0"
            self.ensure_group()
            try:
                entries, reclaimed, vanished = self._collect(size, wait=False)
            except redis.ResponseError as again:
                if not _group_gone(again):
                    raise self._explain(again) from again
                self._group_ready = False
                return BatchReport(())
        if not entries:
            return BatchReport((), 0, vanished)
        with self._explained():
            deliveries = self._handle(entries)
        return BatchReport(tuple(deliveries), reclaimed, vanished)

    def _collect(self, size: int, wait: bool) -> tuple[list[_Entry], int, int]:
        if self.in_order:
            self._claim_cursor = "0-0"  # the oldest pending entry first, every time
            if self._blocked:
                size = 1  # only the entry that failed, until it is done with
        entries, vanished = self._reclaim(size)
        reclaimed = len(entries)
        room = size - reclaimed
        if room > 0:
            block = self.block_ms if wait and not entries else None
            entries += self._read_new(room, block)
        return entries, reclaimed, vanished

    def _reclaim(self, count: int) -> tuple[list[_Entry], int]:
        """Take over entries pending longer than the idle time; with their delivery counts."""
        with talking_to(self.client):
            reply = _raw(
                self.client, "XAUTOCLAIM", self.stream, self.group, self.consumer,
                self.claim_idle_ms, self._claim_cursor, "COUNT", count,
            )  # fmt: skip
        self._claim_cursor = _str(reply[0])
        vanished = len(reply[2]) if len(reply) > 2 else 0
        claimed = [(_str(entry_id), fields) for entry_id, fields in reply[1] if fields is not None]
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
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        with talking_to(self.client):
            reply = _raw(
                self.client, "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count,
                *block, "STREAMS", self.stream, ">",
            )  # fmt: skip
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3: {stream: [entries]}
            batches = [entries for lists in reply.values() for entries in lists]
        else:  # RESP2: [[stream, entries]]
            batches = [entries for _, entries in reply]
        return [
            _Entry(_str(entry_id), fields, 1)
            for entries in batches
            for entry_id, fields in entries or ()
            if fields is not None
        ]

    def _handle(self, entries: list[_Entry]) -> list[Delivery]:
        envelopes = [_envelope(entry.fields, self.max_entry_bytes) for entry in entries]
        # Decoded before the batch's transaction (around_batch) opens: an inbox shared by
        # several workers is then locked only while handlers run, not while JSON is read.
        decoded = [self._decode(envelope) for envelope in envelopes]
        processed_before = self._processed_before(envelopes)
        work = _Work(remember=self.deduplicate)
        self._blocked = False
        with self.around_batch() if self.around_batch is not None else nullcontext():
            self._handle_each(entries, envelopes, decoded, processed_before, work)
        self._store(work)
        for delivery in work.deliveries:
            self.deliveries.add(delivery)
            if self.on_delivery is not None:
                self.on_delivery(delivery)
        return work.deliveries

    def _processed_before(self, envelopes: list[_Envelope | _Malformed]) -> set[str]:
        if not self.deduplicate:
            return set()
        ids = list({e.event_id: None for e in envelopes if isinstance(e, _Envelope)})
        with talking_to(self.client):
            done = _raw(self.client, "HMGET", self.keys.processed, *ids) if ids else []
        return {event_id for event_id, who in zip(ids, done, strict=True) if who}

    def _handle_each(
        self,
        entries: list[_Entry],
        envelopes: list[_Envelope | _Malformed],
        decoded: list[object],
        processed_before: set[str],
        work: _Work,
    ) -> None:
        for entry, envelope, event in zip(entries, envelopes, decoded, strict=True):
            if self._blocked:
                break  # in order: what follows a failed entry waits for it (left pending)
            record = _Recorder(self.consumer, entry, envelope)
            if isinstance(envelope, _Malformed):
                work.dead(entry, record("dead-lettered", envelope.reason))
            elif envelope.event_id in processed_before or envelope.event_id in work.handled_ids:
                work.ack(entry, record("duplicate"))
            elif entry.delivery > self.max_deliveries:
                reason = (
                    f"delivered {entry.delivery} times without being acknowledged; the consumers "
                    "that took it may have died while handling it"
                )
                work.dead(entry, record("dead-lettered", reason))
            else:
                self._dispatch_decoded(entry, event, record, work)
                failed = work.deliveries[-1].outcome == "failed"
                self._blocked = self.in_order and failed

    def _decode(self, envelope: _Envelope | _Malformed) -> object:
        """The entry's event, or the :class:`_Undecodable` error that reading it raised."""
        if isinstance(envelope, _Malformed):
            return None
        try:
            return self.registry.from_json(envelope.type_name, envelope.version, envelope.payload)
        except Exception as error:  # EventFormatError, or a class refusing its own fields
            return _Undecodable(error)

    def _dispatch_decoded(
        self, entry: _Entry, event: object, record: _Recorder, work: _Work
    ) -> None:
        if isinstance(event, _Undecodable):
            error = event.error
            reason = f"{type(error).__name__}: {error}"
            if isinstance(error, _PARK) and self.park_unknown:
                work.park(entry, record("parked", reason))
            else:
                work.dead(entry, record("dead-lettered", reason))
            return
        self._dispatch(entry, event, record, work)

    def _dispatch(self, entry: _Entry, event: object, record: _Recorder, work: _Work) -> None:
        result: DispatchResult | None
        try:
            with delivered_as(event, record.event_id):  # handlers can tell a redelivery
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

    def _store(self, work: _Work) -> None:
        """Marks, held entries, acknowledgements (and the journal) in one transaction."""
        if not (work.acks or self.journal):
            return
        pipe = self.client.pipeline(transaction=True)
        if work.marks:
            pipe.hset(self.keys.processed, mapping=work.marks)
            pipe.zadd(self.keys.processed_times, work.mark_times)
        for entry, delivery in work.dead_letters:
            pipe.xadd(self.keys.dead_letters, _held_fields(entry, delivery))
        for entry, delivery in work.parked:
            pipe.xadd(self.keys.parked, _held_fields(entry, delivery))
        if work.acks:
            pipe.xack(self.stream, self.group, *work.acks)
        if self.journal:
            for delivery in work.deliveries:
                pipe.xadd(self.keys.journal, _journal_fields(delivery), maxlen=100_000)
        with talking_to(self.client):
            pipe.execute()

    @contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except redis.ResponseError as error:
            raise self._explain(error) from error

    def _explain(self, error: redis.ResponseError) -> Exception:
        """A WRONGTYPE error, as a StreamKeyError naming the key; anything else unchanged."""
        if "WRONGTYPE" not in str(error):
            return error
        wanted = {self.stream: "stream", self.keys.processed: "hash", self.keys.processed_times:
                  "zset", self.keys.dead_letters: "stream", self.keys.parked: "stream",
                  self.keys.journal: "stream"}  # fmt: skip
        with talking_to(self.client):
            found = {key: _str(_raw(self.client, "TYPE", key)) for key in wanted}
        wrong = [
            f"{key!r} holds a {found[key]}, not a {kind}"
            for key, kind in wanted.items()
            if found[key] not in (kind, "none")
        ]
        return StreamKeyError(
            f"{'; '.join(wrong) or str(error)}: something else uses that name. Delete the key "
            f"if it is left over (DEL key), or give the worker another --stream or --group"
        )

    # ------------------------------------------------------------------ trimming

    def trim(self, *, approximate: bool = True) -> TrimReport:
        """Trim the stream and this group's processed ids by the safe rule (see the module
        docstring), with this consumer's ``keep_stream_ms`` and ``remember_processed_ms``."""
        with self._explained():
            return trim_group(
                self.client,
                self.stream,
                self.group,
                keep_stream_ms=self.keep_stream_ms,
                remember_processed_ms=self.remember_processed_ms,
                approximate=approximate,
            )

    # ------------------------------------------------------------------ looking at it

    def status(self) -> StreamStatus:
        return stream_status(self.client, self.stream, self.group)

    def dead_letters(self) -> list[HeldEntry]:
        return read_dead_letters(self.client, self.stream, self.group)

    def parked(self) -> list[HeldEntry]:
        return read_parked(self.client, self.stream, self.group)

    def replay_dead_letters(self, ids: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """See :func:`replay_dead_letters`."""
        return replay_dead_letters(self.client, self.stream, self.group, ids)

    def replay_parked(self, ids: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """See :func:`replay_parked`; only what this consumer's registry can read now."""
        return replay_parked(self.client, self.stream, self.group, self.registry, ids)

    def __repr__(self) -> str:
        return (
            f"StreamConsumer({self.consumer} in {self.stream}/{self.group}: "
            f"{_summary(len(self.deliveries), self.deliveries.counts())})"
        )


def _group_gone(error: redis.ResponseError) -> bool:
    text = str(error)
    # NOGROUP: the group is gone. UNBLOCKED: the stream was deleted while we waited on it.
    return text.startswith(("NOGROUP", "UNBLOCKED"))


class _Recorder:
    """Makes the Delivery records of one entry."""

    def __init__(self, consumer: str, entry: _Entry, envelope: _Envelope | _Malformed) -> None:
        self.consumer = consumer
        self.entry = entry
        self.event_id = envelope.event_id
        self.type_name = envelope.type_name

    def __call__(
        self, outcome: str, reason: str = "", result: DispatchResult | None = None
    ) -> Delivery:
        return Delivery(
            self.event_id,
            self.type_name,
            self.consumer,
            self.entry.delivery,
            outcome,
            _reason(reason) if reason else "",
            self.entry.entry_id,
            result,
        )


class _Work:
    """What a batch decided, to be stored in one transaction."""

    def __init__(self, *, remember: bool = True) -> None:
        self.remember = remember
        """Keep processed-id marks for Redis (off when the handlers deduplicate themselves)."""
        self.deliveries: list[Delivery] = []
        self.marks: dict[FieldT, EncodableT] = {}
        self.mark_times: dict[str, float] = {}
        self.acks: list[str] = []
        self.dead_letters: list[tuple[_Entry, Delivery]] = []
        self.parked: list[tuple[_Entry, Delivery]] = []
        self.handled_ids: set[str] = set()

    def handled(self, entry: _Entry, delivery: Delivery) -> None:
        if self.remember:
            self.marks[delivery.event_id] = delivery.consumer
            self.mark_times[delivery.event_id] = _id_ms(entry.entry_id)
        self.handled_ids.add(delivery.event_id)
        self.ack(entry, delivery)

    def ack(self, entry: _Entry, delivery: Delivery) -> None:
        self.acks.append(entry.entry_id)
        self.deliveries.append(delivery)

    def dead(self, entry: _Entry, delivery: Delivery) -> None:
        self.dead_letters.append((entry, delivery))
        self.ack(entry, delivery)

    def park(self, entry: _Entry, delivery: Delivery) -> None:
        self.parked.append((entry, delivery))
        self.ack(entry, delivery)

    def keep_pending(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)


def _failures(result: DispatchResult) -> str:
    return "; ".join(
        f"{call.name}: {type(call.error).__name__}: {call.error}" for call in result.failures
    )


# ---------------------------------------------------------------------- held entries

_HELD = b"held:"
_ORIGINAL = b"held:original:"


def _held_fields(entry: _Entry, delivery: Delivery) -> Fields:
    """The original fields byte for byte (a field whose name starts with ``held:`` is kept as
    ``held:original:NAME``), then why the entry is held."""
    fields: Fields = {}
    for name, value in entry.fields.items():
        fields[_ORIGINAL + name if name.startswith(_HELD) else name] = value
    fields.update(
        {
            b"held:reason": delivery.reason,
            b"held:deliveries": delivery.delivery,
            b"held:consumer": delivery.consumer,
            b"held:source_entry": entry.entry_id,
        }
    )
    return fields


def _original_fields(held: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    original: dict[bytes, bytes] = {}
    for name, value in held.items():
        if name.startswith(_ORIGINAL):
            original[name[len(_ORIGINAL) :]] = value
        elif not name.startswith(_HELD):
            original[name] = value
    return original


def _held_entry(held_id: object, held: Mapping[bytes, bytes]) -> HeldEntry:
    fields = _original_fields(held)
    deliveries = held.get(b"held:deliveries", b"0")
    return HeldEntry(
        _shown(fields.get(b"event_id", b"")),
        _shown(fields.get(b"type", b"")),
        _shown(held.get(b"held:reason", b""), MAX_REASON),
        int(deliveries) if deliveries.isdigit() else 0,
        _shown(held.get(b"held:consumer", b"")),
        _shown(fields.get(b"payload", b""), 1_000_000),
        _shown(held.get(b"held:source_entry", b"")),
        _str(held_id),
        _shown(fields.get(b"version", b""), 40),
        MappingProxyType(fields),
    )


class UnknownHeldEntryError(LookupError):
    """No dead letter (or parked entry) has the id asked for."""


def read_held(client: redis.Redis, key: str, ids: Iterable[str] | None = None) -> list[HeldEntry]:
    """The entries of a dead-letter or parking stream ``key``, oldest first (those of ``ids``
    only, in that order, if given: an :class:`UnknownHeldEntryError` names any not there)."""
    if ids is None:
        with talking_to(client):
            entries = _raw(client, "XRANGE", key, "-", "+")
        return [_held_entry(held_id, fields) for held_id, fields in entries if fields]
    wanted = [_check_entry_id(held_id) for held_id in ids]
    pipe = client.pipeline(transaction=False)
    for held_id in wanted:
        _raw(pipe, "XRANGE", key, held_id, held_id)
    with talking_to(client):
        replies = pipe.execute()
    missing = [held_id for held_id, reply in zip(wanted, replies, strict=True) if not reply]
    if missing:
        raise UnknownHeldEntryError(
            f"{key} holds no entry {', '.join(missing)}; list what it holds first "
            f"(--dead-letters list, --parked list, or XRANGE {key} - +)"
        )
    return [_held_entry(reply[0][0], reply[0][1]) for reply in replies]


def read_dead_letters(client: redis.Redis, stream: str, group: str) -> list[HeldEntry]:
    """The entries the group gave up on, oldest first, each with its reason."""
    return read_held(client, StreamKeys(stream, group).dead_letters)


def read_parked(client: redis.Redis, stream: str, group: str) -> list[HeldEntry]:
    """The entries the group could not read yet, oldest first, each with its reason."""
    return read_held(client, StreamKeys(stream, group).parked)


# Atomic, so that two operators replaying the same entry add it back once: the held entry is
# looked up, added back and deleted in one step, and nothing is deleted if XADD fails.
_REPLAY = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local added = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return added
"""


def _replay(
    client: redis.Redis, key: str, stream: str, held: Sequence[HeldEntry]
) -> list[tuple[str, str]]:
    script = client.register_script(_REPLAY)
    replayed = []
    for entry in held:
        args: list[EncodableT] = [entry.held_id]
        for name, value in entry.fields.items():
            args += [name, value]
        if len(args) == 1:
            continue  # an entry without fields cannot be added back; leave it where it is
        with talking_to(client):
            added = script(keys=[key, stream], args=args, client=client)
        if added:
            replayed.append((entry.held_id, _str(added)))
    return replayed


def replay_dead_letters(
    client: redis.Redis, stream: str, group: str, ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """Add dead letters (those of ``ids``, or every one) back to the stream as they were
    first written, and delete them from the dead-letter stream; return ``(dead-letter id,
    new entry id)`` for each. Fix what made them fail first, or they come back."""
    key = StreamKeys(stream, group).dead_letters
    return _replay(client, key, stream, read_held(client, key, ids))


def replay_parked(
    client: redis.Redis,
    stream: str,
    group: str,
    registry: EventRegistry,
    ids: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    """Add parked entries back to the stream, those (of ``ids``, or all) whose type and
    version ``registry`` can read now; the others stay parked. Returns ``(parked id, new
    entry id)`` for each replayed."""
    key = StreamKeys(stream, group).parked
    held = read_held(client, key, ids)
    return _replay(client, key, stream, [entry for entry in held if _readable(registry, entry)])


def _readable(registry: EventRegistry, entry: HeldEntry) -> bool:
    """Whether ``registry`` knows the entry's type and version now (a payload that does not
    fit is found out by the consumer, which dead-letters it with the reason)."""
    envelope = _envelope(entry.fields, sys.maxsize)
    if not isinstance(envelope, _Envelope):
        return True
    try:
        registry.from_json(envelope.type_name, envelope.version, envelope.payload)
    except _PARK:
        return False
    except Exception:  # the consumer will dead-letter it, with the reason
        return True
    return True


def _check_entry_id(entry_id: str) -> str:
    if not isinstance(entry_id, str) or not re.fullmatch(r"[0-9]{1,20}-[0-9]{1,20}", entry_id):
        raise ValueError(
            f"'{printable(str(entry_id), 60)}' is not a stream entry id; ids look like "
            "1700000000000-0 (list them to see which there are)"
        )
    return entry_id


# ---------------------------------------------------------------------- trimming


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _after(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


def _pairs(item: Any) -> dict[str, Any]:
    """An XINFO reply item as a dict with text keys (RESP2 gives a flat list, RESP3 a map)."""
    if isinstance(item, dict):
        return {_str(key): value for key, value in item.items()}
    values = iter(item)
    return {_str(key): value for key, value in zip(values, values, strict=False)}


def _group_positions(client: redis.Redis, stream: str) -> dict[str, str]:
    """For each group of ``stream``: the oldest entry it still needs (its oldest pending
    entry, else the one after the last it was given)."""
    with talking_to(client):
        if not client.exists(stream):
            return {}
        groups = [_pairs(item) for item in _raw(client, "XINFO", "GROUPS", stream)]
    positions = {}
    for info in groups:
        name = _str(info["name"])
        position = _after(_str(info["last-delivered-id"]))
        if int(info["pending"]):
            with talking_to(client):
                summary = _raw(client, "XPENDING", stream, info["name"])
            oldest = summary["min"] if isinstance(summary, dict) else summary[1]
            if oldest is not None:
                position = min(position, _str(oldest), key=_id_key)
        positions[name] = position
    return positions


def safe_trim_point(client: redis.Redis, stream: str, *, keep_ms: int = 0) -> str | None:
    """The entry id below which every entry of ``stream`` can go: the oldest entry some group
    still needs, and not within ``keep_ms`` of the newest entry. ``None`` when nothing may go
    (no group, or an empty stream)."""
    positions = _group_positions(client, stream)
    if not positions:
        return None
    with talking_to(client):
        newest = _raw(client, "XREVRANGE", stream, "+", "-", "COUNT", 1)
    if not newest:
        return None
    candidates = [*positions.values(), f"{max(0, _id_ms(_str(newest[0][0])) - keep_ms)}-0"]
    return min(candidates, key=_id_key)


# Atomic, so that a processed id marked again while we trim is not forgotten with the old.
_FORGET = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
end
return #ids
"""


# Atomic: the groups are looked at again in the same step that trims, so a group created at
# id 0, or moved back with XGROUP SETID, after the point was worked out still keeps its entries.
_TRIM_BELOW = """
local function parts(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function before(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  return am < bm or (am == bm and as < bs)
end
local point = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, point} end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local last = info['last-delivered-id']
  local dash = string.find(last, '-', 1, true)
  local _, seq = parts(last)
  local need = string.sub(last, 1, dash) .. string.format('%d', seq + 1)
  if tonumber(info['pending']) > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if oldest and before(oldest, need) then need = oldest end
  end
  if before(need, point) then point = need end
end
if ARGV[2] == '1' then
  return {redis.call('XTRIM', KEYS[1], 'MINID', '~', point), point}
end
return {redis.call('XTRIM', KEYS[1], 'MINID', point), point}
"""


def _trim_below(client: redis.Redis, stream: str, point: str, approximate: bool) -> tuple[int, str]:
    """XTRIM MINID ``point``, lowered first to what any group needs at that moment."""
    script = client.register_script(_TRIM_BELOW)
    with talking_to(client):
        removed, kept_from = script(keys=[stream], args=[point, int(approximate)], client=client)
    return int(removed), _str(kept_from)


def trim_group(
    client: redis.Redis,
    stream: str,
    group: str,
    *,
    keep_stream_ms: int = 24 * 3600 * 1000,
    remember_processed_ms: int = 7 * 24 * 3600 * 1000,
    keep_held_ms: int | None = 30 * 24 * 3600 * 1000,
    keep_held: int | None = 1_000_000,
    approximate: bool = True,
    chunk: int = 1000,
    max_chunks: int = 100,
) -> TrimReport:
    """Trim ``stream`` below :func:`safe_trim_point`, and forget the processed ids of
    ``group`` carried by entries more than ``remember_processed_ms`` older than the oldest
    entry the group still needs (see the module docstring for why that is safe).

    The group's dead-letter and parking streams keep what was held in the last
    ``keep_held_ms`` (by the server's clock), and at most ``keep_held`` entries each: they are
    for people to look at, but a flood of bad input must not fill the server. ``None`` keeps
    them all. The report counts what went, so a worker can log it.

    ``approximate`` lets Redis trim whole internal nodes only (cheaper; it never trims more).
    At most ``chunk * max_chunks`` processed ids are forgotten per call; the next call goes on.
    """
    _check_positive("keep_stream_ms", keep_stream_ms, allow_zero=True)
    _check_positive("remember_processed_ms", remember_processed_ms, allow_zero=True)
    for name, limit in (("keep_held_ms", keep_held_ms), ("keep_held", keep_held)):
        if limit is not None:
            _check_positive(name, limit, allow_zero=True)
    keys = StreamKeys(stream, group)
    point = safe_trim_point(client, stream, keep_ms=keep_stream_ms)
    removed, kept_from = 0, ""
    if point is not None:
        removed, kept_from = _trim_below(client, stream, point, approximate)
    position = _group_positions(client, stream).get(group)
    forgotten = 0
    if position is not None:
        _date_undated_marks(client, keys, _id_ms(position), chunk, max_chunks)
        cutoff = _id_ms(position) - remember_processed_ms
        script = client.register_script(_FORGET)
        for _ in range(max_chunks):
            with talking_to(client):
                count = int(script(keys=[keys.processed, keys.processed_times],
                                   args=[cutoff, chunk], client=client))  # fmt: skip
            forgotten += count
            if count < chunk:
                break
    held = _trim_held(client, keys, keep_held_ms, keep_held)
    return TrimReport(removed, forgotten, kept_from, held)


def _date_undated_marks(
    client: redis.Redis, keys: StreamKeys, now_ms: int, chunk: int, max_chunks: int
) -> int:
    """Give a time to processed ids that have none (marked by a version that kept no times,
    or by hand), as if marked now: otherwise they would be remembered for ever."""
    with talking_to(client):
        if int(client.hlen(keys.processed)) <= int(client.zcard(keys.processed_times)):
            return 0
        dated, cursor = 0, 0
        for _ in range(max_chunks):
            cursor, marks = client.hscan(keys.processed, cursor, count=chunk)
            if marks:
                scored = [part for event_id in marks for part in (now_ms, event_id)]
                dated += int(_raw(client, "ZADD", keys.processed_times, "NX", *scored))
            if not cursor:
                break
    return dated


def _trim_held(client: redis.Redis, keys: StreamKeys, keep_ms: int | None, keep: int | None) -> int:
    """Trim the dead-letter and parking streams by age and by count; how many went."""
    gone = 0
    with talking_to(client):
        if keep_ms is not None:
            seconds, micros = client.time()
            oldest_kept = f"{max(0, int(seconds) * 1000 + int(micros) // 1000 - keep_ms)}-0"
        for stream in (keys.dead_letters, keys.parked):
            if keep_ms is not None:
                gone += int(client.xtrim(stream, minid=oldest_kept, approximate=False))
            if keep is not None:
                gone += int(client.xtrim(stream, maxlen=keep, approximate=False))
    return gone


# ---------------------------------------------------------------------- reading records


def processed_by(client: redis.Redis, stream: str, group: str) -> dict[str, str]:
    """``event id -> consumer`` for every event the group has handled (all processes)."""
    with talking_to(client):
        reply = _raw(client, "HGETALL", StreamKeys(stream, group).processed)
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
    return {_shown(event_id): _shown(consumer) for event_id, consumer in pairs}


def read_journal(client: redis.Redis, stream: str, group: str) -> DeliveryLog:
    """Every delivery the group's consumers recorded (with ``journal=True``), oldest first."""
    with talking_to(client):
        entries = _raw(client, "XRANGE", StreamKeys(stream, group).journal, "-", "+")

    def text(fields: Mapping[bytes, bytes], name: bytes, limit: int = MAX_NAME) -> str:
        return _shown(fields.get(name, b""), limit)

    deliveries = []
    for _, f in entries:
        if not f:
            continue
        number = f.get(b"delivery", b"0")
        deliveries.append(
            Delivery(
                text(f, b"event_id"),
                text(f, b"type"),
                text(f, b"consumer"),
                int(number) if number.isdigit() else 0,
                text(f, b"outcome"),
                text(f, b"reason", MAX_REASON),
                text(f, b"entry"),
            )
        )
    return DeliveryLog(deliveries, keep=None, keep_bytes=None)


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


def stream_status(client: redis.Redis, stream: str, group: str) -> StreamStatus:
    """Length, pending entries, processed events, dead letters, parked entries and
    consumers of a group."""
    keys = StreamKeys(stream, group)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(stream)
    pipe.hlen(keys.processed)
    pipe.xlen(keys.dead_letters)
    pipe.xlen(keys.parked)
    pipe.exists(stream)
    with talking_to(client):
        length, processed, dead, parked, exists = pipe.execute()
    pending = 0
    consumers: tuple[str, ...] = ()
    if exists:
        with talking_to(client):
            groups = [_pairs(item) for item in _raw(client, "XINFO", "GROUPS", stream)]
            found = [g for g in groups if _str(g["name"]) == group]
            if found:
                pending = int(found[0]["pending"])
                infos = [_pairs(item) for item in _raw(client, "XINFO", "CONSUMERS", stream, group)]
                consumers = tuple(sorted(_shown(info["name"]) for info in infos))
    return StreamStatus(
        stream, group, int(length), pending, int(processed), int(dead), consumers, int(parked)
    )


# ---------------------------------------------------------------------- small helpers


def check_name(name: str, value: object) -> str:
    """``value`` if it can name a stream, group or consumer: a non-empty printable string of
    at most 200 characters (it goes into key names and log lines)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is a non-empty name, got {value!r}")
    if len(value) > MAX_NAME or not value.isprintable():
        raise ValueError(
            f"{name} is a name of at most {MAX_NAME} printable characters (no newline or "
            f"control character), got '{printable(value, 60)}'"
        )
    return value


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a whole number from 0" if allow_zero else "a positive whole number"
        raise ValueError(f"{name} is {kind}, got {value!r}")


def _summary(total: int, counts: Mapping[str, int]) -> str:
    parts = [f"{counts[outcome]} {outcome}" for outcome in OUTCOMES if counts[outcome]]
    head = plural(total, "delivery", "deliveries")
    return f"{head}: {', '.join(parts)}" if parts else head
