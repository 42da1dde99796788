"""A worker process: the handlers of a module, fed by a Redis Streams consumer group.

The handlers a learner registered on an in-process bus run unchanged in a worker: the
worker builds an :class:`~eda_lesson.core.bus.EventBus`, lets a function of your module register
the handlers on it (``register(bus)``, exactly as in a notebook), and feeds it from a
stream through a :class:`~eda_lesson.transport.redis_streams.StreamConsumer`. Start one per
process::

    python -m eda_lesson.transport.worker --handlers myshop.handlers:register \\
        --stream orders --group shop --consumer w1

and as many as you like beside it with other ``--consumer`` names: the group shares the
entries among them. ``python -m eda_lesson.transport.worker --help`` explains every option.

A worker logs each event it handles and its progress (counts), reconnects with a growing
pause when Redis goes away, creates the stream and group again if they are deleted under
it, trims the stream and its processed ids every minute by the safe rule of
:func:`~eda_lesson.transport.redis_streams.trim_group`, and on SIGINT or SIGTERM finishes the
batch in hand, stores its marks and acknowledgements, and exits 0 (a second signal stops it
at once). When Redis cannot be reached at the start it says where it looked and how to start
one, and exits 3; when Redis refuses it (password, user, database) it says what to change,
and exits 4. Everything a log line quotes from an entry is escaped, so an entry cannot forge
a line.

The same command lists, shows and replays what the group set aside::

    python -m eda_lesson.transport.worker --stream orders --group shop --dead-letters list
    python -m eda_lesson.transport.worker --stream orders --group shop --dead-letters show ID
    python -m eda_lesson.transport.worker --stream orders --group shop --dead-letters replay ID
    python -m eda_lesson.transport.worker --handlers myshop.handlers:register \\
        --stream orders --group shop --parked replay all

(a parked entry is replayed only once the registry of ``--handlers`` or ``--registry`` can
read it).

:class:`Worker` is the same thing as a Python object, for tests and notebooks:
``worker.process_batch()`` handles one batch, ``worker.run(stop_after=10)`` or
``worker.run(until_idle=True)`` loops; the returned counts are deterministic when the
inputs are, so a notebook can print them.

What it does not do: publish (see :mod:`eda_lesson.patterns.outbox`), run handlers concurrently
inside one process (run more processes), or supervise itself (a process manager restarts a
worker that died; its pending entries are reclaimed meanwhile by the others).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import math
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import FrameType

from eda_lesson.core.extras import missing_extra
from eda_lesson.core.text import plural

try:
    import redis
except ImportError as error:
    raise missing_extra("broker", __name__, error) from error

from eda_lesson.core.bus import EventBus, Middleware
from eda_lesson.core.checks import handler_name
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.transport.redis_streams import (
    BatchReport,
    Delivery,
    DeliveryLog,
    HeldEntry,
    RedisRefusedError,
    RedisUnavailableError,
    StreamConsumer,
    StreamKeyError,
    StreamKeys,
    StreamStatus,
    TrimReport,
    UnknownHeldEntryError,
    check_name,
    check_redis_url,
    connect,
    describe_client,
    printable,
    read_held,
    replay_dead_letters,
    replay_parked,
    talking_to,
)

__all__ = ["Worker", "WorkerStats", "main", "registry_for"]

LOGGER = logging.getLogger("eda_lesson.transport.worker")
LOGGER.addHandler(logging.NullHandler())  # a library logs only where the program asks it to

HandlerSetup = Callable[[EventBus], object]
"""A function that registers handlers on the bus it is given (it may return a registry)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_REDIS, EXIT_REFUSED = 0, 1, 2, 3, 4


@dataclasses.dataclass
class WorkerStats:
    """What a worker has done so far."""

    consumer: str
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    parked: int = 0
    reclaimed: int = 0
    batches: int = 0
    reconnects: int = 0
    trimmed: int = 0
    """Stream entries this worker trimmed."""
    forgotten: int = 0
    """Processed ids this worker forgot (older than the group needs)."""

    def add(self, report: BatchReport) -> None:
        counts = report.counts()
        self.handled += counts["handled"]
        self.duplicates += counts["duplicate"]
        self.failed += counts["failed"]
        self.parked += counts["parked"]
        self.dead_lettered += counts["dead-lettered"]
        self.reclaimed += report.reclaimed
        self.batches += 1

    @property
    def deliveries(self) -> int:
        return self.handled + self.duplicates + self.failed + self.parked + self.dead_lettered

    def __str__(self) -> str:
        parts = [
            f"{self.handled} handled",
            plural(self.duplicates, "duplicate"),
            f"{self.failed} failed",
            f"{self.dead_lettered} dead-lettered",
        ]
        if self.parked:
            parts.append(f"{self.parked} parked")
        if self.reclaimed:
            parts.append(f"{self.reclaimed} reclaimed")
        if self.reconnects:
            parts.append(plural(self.reconnects, "reconnect"))
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"WorkerStats({self.consumer}: {self})"


def registry_for(bus: EventBus) -> EventRegistry:
    """A registry of the event classes ``bus`` has handlers for, each under its class name.

    Only dataclass events qualify. A handler registered for a base class (``OrderEvent``)
    does not make its subclasses readable: pass a registry naming them instead.
    """
    types = [
        s.message_type for s in bus.subscriptions() if dataclasses.is_dataclass(s.message_type)
    ]
    if not types:
        raise ValueError(
            "the handlers registered nothing a worker can read: register handlers for "
            "dataclass events, or give the worker an EventRegistry"
        )
    return EventRegistry.of(*dict.fromkeys(types))


def _check_seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} is a number of seconds from 0 (finite), got {value!r}")
    return float(value)


class Worker:
    """One consumer of a consumer group, with its bus, its loop and its reconnects.

    ``handlers`` is a function ``register(bus)`` that registers handlers on the worker's
    bus (it may return the :class:`EventRegistry` to decode with), or a ready bus.
    ``middleware`` wraps every handler (retry, dead letters, idempotency: see
    :mod:`eda_lesson.core.middleware`); it is installed before ``register`` runs. Without a
    ``registry`` the worker reads the event classes its handlers are registered for
    (:func:`registry_for`). ``client`` is a redis-py client; without one the worker
    connects to ``redis_url`` (default: ``REDIS_URL``, else 127.0.0.1:6379).
    ``trim_every`` (seconds, 0 for never) is how often :meth:`run` trims the stream and the
    processed ids (:meth:`StreamConsumer.trim`); it trims once at the start too.
    The other options are those of :class:`~eda_lesson.transport.redis_streams.StreamConsumer`.
    """

    def __init__(
        self,
        handlers: HandlerSetup | EventBus,
        registry: EventRegistry | None = None,
        *,
        client: redis.Redis | None = None,
        redis_url: str | None = None,
        stream: str = "events",
        group: str = "workers",
        consumer: str = "worker-1",
        batch: int = 100,
        block_ms: int = 1000,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        middleware: Iterable[Middleware] = (),
        journal: bool = False,
        park_unknown: bool = True,
        max_entry_bytes: int = 1024 * 1024,
        keep_stream_ms: int = 24 * 3600 * 1000,
        remember_processed_ms: int = 7 * 24 * 3600 * 1000,
        trim_every: float = 60.0,
        keep: int | None = 10_000,
        keep_bytes: int | None = 16 * 1024 * 1024,
        reconnect_for: float = 60.0,
        log_deliveries: bool = True,
        progress_every: int = 1,
        logger: logging.Logger = LOGGER,
    ) -> None:
        self.reconnect_for = _check_seconds("reconnect_for", reconnect_for)
        self.trim_every = _check_seconds("trim_every", trim_every)
        self.bus, returned = _build_bus(handlers, middleware)
        if registry is None:
            registry = returned if isinstance(returned, EventRegistry) else registry_for(self.bus)
        self.registry = registry
        self.client = client if client is not None else _client(redis_url, block_ms)
        self.url = describe_client(self.client)
        self.consumer = StreamConsumer(
            self.client,
            self.bus,
            registry,
            stream=stream,
            group=group,
            consumer=consumer,
            batch=batch,
            block_ms=block_ms,
            max_deliveries=max_deliveries,
            claim_idle_ms=claim_idle_ms,
            journal=journal,
            keep=keep,
            keep_bytes=keep_bytes,
            park_unknown=park_unknown,
            max_entry_bytes=max_entry_bytes,
            keep_stream_ms=keep_stream_ms,
            remember_processed_ms=remember_processed_ms,
            on_delivery=self._log_delivery,
        )
        self.log_deliveries = log_deliveries
        self.progress_every = max(1, progress_every)
        self.logger = logger
        self.stats = WorkerStats(consumer)
        self.stop_reason = ""
        # A plain flag, not a threading.Event: a signal handler may set it at any moment, and
        # Event.set() takes a lock the interrupted code might be holding.
        self._stop_requested = False
        self._next_progress = self.progress_every
        self._recreated_seen = 0
        self._next_trim = 0.0

    @property
    def name(self) -> str:
        """The consumer name, under which the group knows this worker."""
        return self.consumer.consumer

    @property
    def deliveries(self) -> DeliveryLog:
        """This worker's deliveries, newest last (see :class:`DeliveryLog`)."""
        return self.consumer.deliveries

    # ------------------------------------------------------------------ connecting

    def connect(self, wait_for: float = 0.0) -> None:
        """Check that Redis answers and the group exists, trying for up to ``wait_for``
        seconds; raise :class:`RedisUnavailableError` (naming the URL) if it never does.
        A :class:`RedisRefusedError` (password, user, database) is raised at once: waiting
        does not mend it."""
        wait_for = _check_seconds("wait_for", wait_for)
        started, delay = time.monotonic(), 0.05
        while True:
            try:
                self._prepare()
                return
            except RedisUnavailableError:
                if time.monotonic() - started + delay > wait_for or self._stop_requested:
                    raise
            self._pause(delay)
            delay = min(delay * 2, 1.0)

    def _pause(self, seconds: float) -> None:
        """Sleep, in short naps so that a stop request cuts the pause short."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _prepare(self) -> None:
        with talking_to(self.client):
            self.client.ping()
        self.consumer.ensure_group()

    def _reconnect(self, error: RedisUnavailableError) -> None:
        self.logger.warning(
            f"{self.name} lost Redis at {printable(error.url)} ({printable(error.problem)}); "
            f"reconnecting for up to {self.reconnect_for:g} s"
        )
        try:
            self.connect(wait_for=self.reconnect_for)
        except RedisUnavailableError:
            if self._stop_requested:
                return
            raise
        self.stats.reconnects += 1
        self.logger.info(f"{self.name} reconnected to Redis at {self.url}")

    # ------------------------------------------------------------------ working

    def process_batch(self, *, wait: bool = True, limit: int | None = None) -> BatchReport:
        """Handle one batch (see :meth:`StreamConsumer.process_batch`) and count it."""
        report = self.consumer.process_batch(wait=wait, limit=limit)
        if self.consumer.groups_recreated > self._recreated_seen:
            self._recreated_seen = self.consumer.groups_recreated
            self.logger.warning(
                f"{self.name}: the stream {self.consumer.stream!r} or its group "
                f"{self.consumer.group!r} vanished (deleted, or Redis restarted without its "
                "data); created them again, reading the stream from its start"
            )
        if report.deliveries:
            self.stats.add(report)
            if self.stats.deliveries >= self._next_progress:
                self.logger.info(f"{self.name} progress: {self.stats}")
                step = self.progress_every
                self._next_progress = (self.stats.deliveries // step + 1) * step
        return report

    def trim(self) -> TrimReport:
        """Trim the stream and the processed ids now (see :meth:`StreamConsumer.trim`)."""
        report = self.consumer.trim()
        self.stats.trimmed += report.entries
        self.stats.forgotten += report.processed
        if report.entries or report.processed:
            self.logger.info(
                f"{self.name} trimmed {plural(report.entries, 'stream entry', 'stream entries')}"
                f" every group had acknowledged, and forgot {report.processed} processed ids"
            )
        if report.held:
            self.logger.warning(
                f"{self.name} dropped {plural(report.held, 'held entry', 'held entries')} from "
                "the dead-letter and parking streams, past their age or count limit; replay "
                "or copy what you need sooner"
            )
        return report

    def _trim_if_due(self) -> None:
        if not self.trim_every or time.monotonic() < self._next_trim:
            return
        self._next_trim = time.monotonic() + self.trim_every
        try:
            self.trim()
        except RedisRefusedError as error:
            # A user allowed to consume but not to trim: say so once, and stop trying.
            self.trim_every = 0.0
            self.logger.warning(
                f"{self.name} may not trim, so it stops trying (give its user XTRIM, HDEL "
                f"and EVALSHA, or run with --trim-every 0): {printable(str(error), 500)}"
            )
        except (redis.ResponseError, StreamKeyError) as error:
            # Trimming is housekeeping: a failure is reported, the handling goes on.
            self.logger.warning(f"{self.name} could not trim: {printable(str(error), 500)}")

    def run(
        self,
        stop_after: int | None = None,
        *,
        until_idle: bool = False,
        wait_for_redis: float = 0.0,
    ) -> WorkerStats:
        """Handle batches until :meth:`stop` is called, ``stop_after`` deliveries were made,
        or (with ``until_idle``) a batch finds nothing to do; return the counts.

        At the start Redis is given ``wait_for_redis`` seconds to answer; later, connection
        losses are retried for up to ``reconnect_for`` seconds in a row. A :meth:`stop`
        asked for before the run starts makes it return at once."""
        if stop_after is not None:
            _check_count("stop_after", stop_after)
        if not self._stop_requested:
            self.stop_reason = ""
        self.connect(wait_for=wait_for_redis)
        self.logger.info(self._ready_line())
        self._next_trim = 0.0
        done = 0
        while not self._stop_requested:
            limit = None if stop_after is None else stop_after - done
            if limit is not None and limit <= 0:
                break
            try:
                self._trim_if_due()
                report = self.process_batch(wait=not until_idle, limit=limit)
            except RedisUnavailableError as error:
                self._reconnect(error)
                continue
            done += len(report)
            if until_idle and not report.deliveries:
                break
        reason = f" ({self.stop_reason})" if self.stop_reason else ""
        self.logger.info(f"{self.name} stopped{reason}: {self.stats}")
        self._stop_requested = False  # the next run starts afresh
        return self.stats

    def stop(self, reason: str = "") -> None:
        """Ask :meth:`run` to return once the batch in hand is stored (safe to call from a
        signal handler or another thread)."""
        self.stop_reason = self.stop_reason or reason
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    # ------------------------------------------------------------------ telling

    def _ready_line(self) -> str:
        handlers = ", ".join(
            f"{subscription.message_type.__name__} -> {subscription.name}"
            for subscription in self.bus.subscriptions()
        )
        return printable(
            f"{self.name} ready: stream {self.consumer.stream!r}, group {self.consumer.group!r} "
            f"at {self.url}; reads {', '.join(self.registry.names())}; handlers: {handlers}"
        )

    def _log_delivery(self, delivery: Delivery) -> None:
        # Delivery records are printable already; escaping again is idempotent and keeps the
        # promise local: nothing from an entry reaches the log unescaped.
        what = printable(f"{delivery.type_name or '?'} {delivery.event_id or '?'}")
        reason = printable(delivery.reason)
        again = f" (delivery {delivery.delivery})" if delivery.delivery > 1 else ""
        if delivery.outcome == "failed":
            self.logger.warning(
                f"{self.name} failed {what} on delivery {delivery.delivery} of "
                f"{self.consumer.max_deliveries}, will retry: {reason}"
            )
        elif delivery.outcome == "dead-lettered":
            self.logger.warning(f"{self.name} dead-lettered {what}: {reason}")
        elif delivery.outcome == "parked":
            self.logger.warning(
                f"{self.name} parked {what} in {self.consumer.keys.parked} (replay it with "
                f"--parked replay once the workers know it): {reason}"
            )
        elif self.log_deliveries:
            verb = "handled" if delivery.outcome == "handled" else "skipped duplicate"
            self.logger.info(f"{self.name} {verb} {what}{again}")

    def status(self) -> StreamStatus:
        """Counts of the stream and group, from Redis (every worker's work)."""
        return self.consumer.status()

    def __repr__(self) -> str:
        return f"Worker({self.name} on {self.consumer.stream}/{self.consumer.group}: {self.stats})"


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} is a positive whole number, got {value!r}")


def _build_bus(
    handlers: HandlerSetup | EventBus, middleware: Iterable[Middleware]
) -> tuple[EventBus, object]:
    layers = tuple(middleware)
    if isinstance(handlers, EventBus):
        if layers:
            handlers.use(*layers)
        return handlers, None
    if not callable(handlers):
        raise TypeError(
            f"a worker takes a function register(bus) that registers its handlers, or an "
            f"EventBus; got {type(handlers).__name__}"
        )
    bus = EventBus(middleware=layers)
    returned = handlers(bus)
    if not bus.subscriptions():
        raise ValueError(
            f"{handler_name(handlers)}(bus) registered no handler; it should call "
            "bus.register(EventType, handler) (or shop.register(bus)) for the events to handle"
        )
    return bus, returned


def _client(url: str | None, block_ms: int) -> redis.Redis:
    # The read timeout must outlast the longest blocking read, or a quiet stream would look
    # like a dead connection.
    return connect(url, timeout=2.0, read_timeout=block_ms / 1000 + 10.0)


# ---------------------------------------------------------------------- the command


class UsageError(Exception):
    """The command line names something that cannot be used (exit code 2)."""


def load_object(spec: str, option: str) -> object:
    """The object ``MODULE:NAME`` names (the operator's choice on the command line)."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(
            f"{option} takes MODULE:NAME, such as myshop.handlers:register; got {spec!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(
            f"cannot import {module_name!r}, named by {option} ({error}); run the worker "
            "from the folder that holds it, or add that folder to PYTHONPATH"
        ) from None
    value: object = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise UsageError(
                f"{module_name} has no {attribute!r}, named by {option}; "
                f"define it there, or name another: {option} {module_name}:NAME"
            ) from None
    return value


# -- argument types: each names what it wants and gives an example; argparse adds the option


def _whole(low: int, example: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) < low:
            raise argparse.ArgumentTypeError(
                f"a whole number from {low} is needed (such as {example}), got {text!r}"
            )
        return int(text)

    return parse


def _seconds(example: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or value > 10**9:
            raise argparse.ArgumentTypeError(
                f"a number of seconds from 0 is needed (such as {example}), got {text!r}"
            )
        return value

    return parse


def _name(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check_name(what, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _url(text: str) -> str:
    try:
        return check_redis_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


HELD_ACTIONS = ("list", "show", "replay")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eda_lesson.transport.worker",
        description=(
            "Run the handlers of a module as a worker of a Redis Streams consumer group. "
            "Each entry of the stream is checked, decoded through an explicit event "
            "registry, dispatched on an EventBus holding your handlers, and acknowledged "
            "once handled; failures are retried and finally dead-lettered, malformed "
            "entries dead-lettered at once, entries of unknown types or newer versions "
            "parked. Stop it with Ctrl-C or SIGTERM: it finishes and acknowledges the batch "
            "in hand first. With --dead-letters or --parked it lists, shows or replays what "
            "the group set aside instead."
        ),
        epilog=(
            "Exit codes: 0 stopped cleanly, 1 unexpected error, 2 bad arguments or handlers, "
            "3 Redis unreachable, 4 Redis refused us (password, user or database). Start a "
            "local Redis with `redis-server --port 6379 --bind 127.0.0.1`."
        ),
    )
    add = parser.add_argument
    add(
        "--handlers",
        metavar="MODULE:FUNCTION",
        help="function that registers the handlers on the bus it is given, register(bus); "
        "it may return the EventRegistry to decode with (example: myshop.handlers:register); "
        "needed to run a worker and for --parked replay",
    )
    add(
        "--registry",
        metavar="MODULE:NAME",
        help="EventRegistry (or a function returning one) naming the event types to read; "
        "default: the registry --handlers returns, else the event classes it subscribed to",
    )
    add(
        "--middleware",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="middleware wrapping every handler, middleware(call, subscription) -> call; "
        "repeat the option for several, the first given is the outermost",
    )
    add(
        "--stream",
        default="events",
        type=_name("--stream"),
        help="the Redis stream to read (default: %(default)s)",
    )
    add(
        "--group",
        default="workers",
        type=_name("--group"),
        help="the consumer group to join (default: %(default)s)",
    )
    add(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        type=_name("--consumer"),
        help="this worker's name in the group; give each running worker its own "
        "(default: host name and process id)",
    )
    add(
        "--redis-url",
        default=None,
        type=_url,
        metavar="URL",
        help="where Redis listens, with the password if it needs one, redis://:PASSWORD@HOST:"
        "PORT/DB (default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    add(
        "--batch",
        type=_whole(1, "--batch 100"),
        default=100,
        help="entries read per batch; marks and acknowledgements are stored once per batch, so "
        "a worker killed mid-batch has its finished part run again (default: %(default)s)",
    )
    add(
        "--block-ms",
        type=_whole(1, "--block-ms 1000"),
        default=1000,
        metavar="MS",
        help="how long one read waits for new entries, and so how long stopping can take "
        "(default: %(default)s)",
    )
    add(
        "--max-deliveries",
        type=_whole(1, "--max-deliveries 5"),
        default=5,
        metavar="N",
        help="an entry that fails on its N-th delivery goes to the dead-letter stream "
        "(default: %(default)s)",
    )
    add(
        "--claim-idle-ms",
        type=_whole(0, "--claim-idle-ms 30000"),
        default=30_000,
        metavar="MS",
        help="reclaim entries pending this long (left by a dead worker, or failed earlier "
        "and due for a retry); keep it well above the time a batch takes, or live workers' "
        "entries are reclaimed under them (default: %(default)s)",
    )
    add(
        "--unknown-events",
        choices=("park", "dead-letter"),
        default="park",
        help="what to do with an entry of a type or version this worker does not know: park "
        "it in <stream>:<group>:parked to replay later (a rolling upgrade), or dead-letter "
        "it (default: %(default)s)",
    )
    add(
        "--max-entry-bytes",
        type=_whole(1, "--max-entry-bytes 1048576"),
        default=1024 * 1024,
        metavar="N",
        help="an entry larger than this is dead-lettered unread (default: %(default)s)",
    )
    add(
        "--journal",
        action="store_true",
        help="also record every delivery in the stream <stream>:<group>:deliveries",
    )
    add(
        "--trim-every",
        type=_seconds("--trim-every 60"),
        default=60.0,
        metavar="SECONDS",
        help="how often to trim the stream below what every group acknowledged, and the "
        "processed ids the group no longer needs; 0: never (default: %(default)s)",
    )
    add(
        "--keep-stream-for",
        type=_seconds("--keep-stream-for 86400"),
        default=86_400.0,
        metavar="SECONDS",
        help="keep the entries of the last SECONDS before the newest one, acknowledged or "
        "not, for looking at and for groups added later (default: %(default)s, a day)",
    )
    add(
        "--remember-processed-for",
        type=_seconds("--remember-processed-for 604800"),
        default=604_800.0,
        metavar="SECONDS",
        help="remember a processed id this long behind the oldest entry the group still "
        "needs; longer than a relay can stay down between publishing and marking "
        "(default: %(default)s, a week)",
    )
    add(
        "--stop-after",
        type=_whole(1, "--stop-after 100"),
        metavar="N",
        help="stop after N deliveries",
    )
    add("--until-idle", action="store_true", help="stop when a batch finds nothing to do")
    add(
        "--wait-for-redis",
        type=_seconds("--wait-for-redis 2"),
        default=2.0,
        metavar="SECONDS",
        help="at the start, how long to keep trying to reach Redis (default: %(default)s)",
    )
    add(
        "--reconnect-for",
        type=_seconds("--reconnect-for 60"),
        default=60.0,
        metavar="SECONDS",
        help="after losing Redis, how long to keep reconnecting before giving up "
        "(default: %(default)s)",
    )
    add(
        "--quiet",
        action="store_true",
        help="log failures, dead letters and progress every 1,000 deliveries only",
    )
    held = parser.add_mutually_exclusive_group()
    held.add_argument(
        "--dead-letters",
        nargs="+",
        metavar=("ACTION", "ID"),
        help="instead of running: list the group's dead letters, show ID (every field, with "
        "its reason), or replay ID ... (or replay all) back into the stream",
    )
    held.add_argument(
        "--parked",
        nargs="+",
        metavar=("ACTION", "ID"),
        help="instead of running: list, show ID or replay ID ... (or all) the entries the "
        "group parked; replay adds back only those the registry of --handlers or --registry "
        "can read now",
    )
    return parser


def worker_from_arguments(args: argparse.Namespace) -> Worker:
    """The worker the command line describes (raises :class:`UsageError` if it cannot)."""
    handlers = load_object(args.handlers, "--handlers")
    if not callable(handlers):
        raise UsageError(f"--handlers {args.handlers} is not a function register(bus)")
    registry = _registry_from(args.registry) if args.registry else None
    middleware: list[Middleware] = []
    for spec in args.middleware:
        layer = load_object(spec, "--middleware")
        if not callable(layer):
            raise UsageError(f"--middleware {spec} is not a middleware(call, subscription)")
        middleware.append(layer)
    url = _url_from(args)
    try:
        return Worker(
            handlers,
            registry,
            redis_url=url,
            stream=args.stream,
            group=args.group,
            consumer=args.consumer,
            batch=args.batch,
            block_ms=args.block_ms,
            max_deliveries=args.max_deliveries,
            claim_idle_ms=args.claim_idle_ms,
            middleware=middleware,
            journal=args.journal,
            park_unknown=args.unknown_events == "park",
            max_entry_bytes=args.max_entry_bytes,
            keep_stream_ms=round(args.keep_stream_for * 1000),
            remember_processed_ms=round(args.remember_processed_for * 1000),
            trim_every=args.trim_every,
            reconnect_for=args.reconnect_for,
            log_deliveries=not args.quiet,
            progress_every=1000 if args.quiet else 1,
        )
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None


def _url_from(args: argparse.Namespace) -> str | None:
    """--redis-url (checked by its type), else REDIS_URL checked here, naming it."""
    if args.redis_url is not None:
        return str(args.redis_url)
    from_environment = os.environ.get("REDIS_URL")
    if from_environment:
        try:
            check_redis_url(from_environment)
        except ValueError as error:
            raise UsageError(f"REDIS_URL: {error}; fix the variable, or give --redis-url") from None
    return from_environment or None


def _registry_from(spec: str) -> EventRegistry:
    registry = load_object(spec, "--registry")
    if not isinstance(registry, EventRegistry) and callable(registry):
        registry = registry()
    if not isinstance(registry, EventRegistry):
        raise UsageError(
            f"--registry {spec} is not an EventRegistry (nor a function returning one)"
        )
    return registry


def _registry_of_command(args: argparse.Namespace) -> EventRegistry:
    """The registry a worker of this command line would read with (for --parked replay)."""
    if args.registry:
        return _registry_from(args.registry)
    if not args.handlers:
        raise UsageError(
            "--parked replay adds back only what this worker can read now: give --handlers "
            "MODULE:FUNCTION (or --registry MODULE:NAME) naming the upgraded handlers"
        )
    handlers = load_object(args.handlers, "--handlers")
    if not callable(handlers):
        raise UsageError(f"--handlers {args.handlers} is not a function register(bus)")
    try:
        bus, returned = _build_bus(handlers, ())
        return returned if isinstance(returned, EventRegistry) else registry_for(bus)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None


def _stop_on_signals(worker: Worker) -> None:
    def on_signal(number: int, frame: FrameType | None) -> None:
        if worker.stopping:  # asked twice: the user means now
            raise KeyboardInterrupt
        worker.stop(f"{signal.Signals(number).name}, after storing the batch in hand")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


# ---------------------------------------------------------------------- dead letters, parked


def _held_command(args: argparse.Namespace) -> int:
    """--dead-letters or --parked: list, show or replay; print to stdout."""
    dead = args.dead_letters is not None
    option = "--dead-letters" if dead else "--parked"
    action, *ids = args.dead_letters if dead else args.parked
    if action not in HELD_ACTIONS:
        raise UsageError(
            f"{option} takes list, show ID or replay ID ... (or replay all); got "
            f"'{printable(action, 40)}'"
        )
    if action == "list" and ids:
        raise UsageError(f"{option} list takes no ID; to see one: {option} show ID")
    if action == "show" and len(ids) != 1:
        raise UsageError(f"{option} show takes one ID, such as {option} show 1700000000000-0")
    if action == "replay" and not ids:
        raise UsageError(f"{option} replay takes the IDs to replay, or all: {option} replay all")
    everything = ids == ["all"]
    registry = _registry_of_command(args) if action == "replay" and not dead else None
    client = connect(_url_from(args), timeout=2.0)
    keys = StreamKeys(args.stream, args.group)
    key = keys.dead_letters if dead else keys.parked
    word = "dead letter" if dead else "parked entry"
    try:
        if action == "list":
            held = read_held(client, key)
            print(f"{key}: {plural(len(held), word, 'dead letters' if dead else 'parked entries')}")
            for entry in held:
                print(_held_line(entry))
        elif action == "show":
            [entry] = read_held(client, key, ids)
            print(_held_details(entry, word, key))
        elif dead:
            replayed = replay_dead_letters(
                client, args.stream, args.group, None if everything else ids
            )
            _print_replayed(replayed, args.stream)
        else:
            assert registry is not None
            before = read_held(client, key, None if everything else ids)
            replayed = replay_parked(
                client, args.stream, args.group, registry, None if everything else ids
            )
            _print_replayed(replayed, args.stream)
            done = {held_id for held_id, _ in replayed}
            for entry in before:
                if entry.held_id not in done:
                    print(
                        f"  {entry.held_id} stays parked: {entry.type_name} v{entry.version} is "
                        f"not readable by this worker's registry ({', '.join(registry.names())})"
                    )
    except UnknownHeldEntryError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    return EXIT_OK


def _held_line(entry: HeldEntry) -> str:
    version = f" v{entry.version}" if entry.version else ""
    return printable(
        f"  {entry.held_id}  {entry.event_id or '?'}  {entry.type_name or '?'}{version}  "
        f"{plural(entry.deliveries, 'delivery', 'deliveries')}  {printable(entry.reason, 160)}"
    )


def _held_details(entry: HeldEntry, word: str, key: str) -> str:
    others = {
        name: value
        for name, value in entry.fields.items()
        if name not in (b"event_id", b"type", b"version", b"payload")
    }
    lines = [
        f"{word} {entry.held_id} in {key}",
        f"  event_id:      {entry.event_id}",
        f"  type:          {entry.type_name}",
        f"  version:       {entry.version}",
        f"  reason:        {entry.reason}",
        f"  deliveries:    {entry.deliveries}",
        f"  consumer:      {entry.consumer}",
        f"  source entry:  {entry.source_entry}",
        f"  payload:       {printable(entry.payload, 100_000)}",
    ]
    for name, value in others.items():
        lines.append(
            f"  field {printable(repr(name)[2:-1], 40)}: {printable(repr(value)[2:-1], 500)}"
        )
    return "\n".join(printable(line, 100_200) for line in lines)


def _print_replayed(replayed: Sequence[tuple[str, str]], stream: str) -> None:
    print(f"replayed {plural(len(replayed), 'entry', 'entries')} into {stream}")
    for held_id, new_id in replayed:
        print(f"  {held_id} -> {new_id}")


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dead_letters is None and args.parked is None and not args.handlers:
        parser.error(
            "--handlers MODULE:FUNCTION is required to run a worker (such as --handlers "
            "myshop.handlers:register); --dead-letters and --parked work without it"
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.dead_letters is not None or args.parked is not None:
        return _run_safely("worker", lambda: _held_command(args))
    try:
        worker = worker_from_arguments(args)
    except UsageError as error:
        print(f"worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    _stop_on_signals(worker)

    def run() -> int:
        worker.run(
            stop_after=args.stop_after,
            until_idle=args.until_idle,
            wait_for_redis=args.wait_for_redis,
        )
        return EXIT_OK

    return _run_safely(f"worker {worker.name}", run, worker)


def _run_safely(who: str, work: Callable[[], int], worker: Worker | None = None) -> int:
    """``work()``'s exit code, or the exit code and a one-line message for what stopped it."""
    try:
        return work()
    except UsageError as error:
        print(f"{who}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RedisUnavailableError as error:
        print(f"{who}: {error}", file=sys.stderr)
        return EXIT_NO_REDIS
    except RedisRefusedError as error:
        print(f"{who}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except StreamKeyError as error:
        print(f"{who}: {printable(str(error), 1000)}", file=sys.stderr)
        return EXIT_ERROR
    except redis.RedisError as error:
        print(
            f"{who}: Redis answered with an error it cannot go on after: "
            f"{type(error).__name__}: {printable(str(error), 1000)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        stats = f": {worker.stats}" if worker is not None else ""
        print(f"{who}: interrupted during a batch{stats}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
