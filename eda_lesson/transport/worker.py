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
pause when Redis goes away, and on SIGINT or SIGTERM finishes the batch in hand, stores its
marks and acknowledgements, and exits 0 (a second signal stops it at once). When Redis
cannot be reached at the start it says where it looked and how to start one, and exits 3.

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
import os
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
    RedisUnavailableError,
    StreamConsumer,
    StreamStatus,
    connect,
    describe_client,
    talking_to,
)

__all__ = ["Worker", "WorkerStats", "main", "registry_for"]

LOGGER = logging.getLogger("eda_lesson.transport.worker")
LOGGER.addHandler(logging.NullHandler())  # a library logs only where the program asks it to

HandlerSetup = Callable[[EventBus], object]
"""A function that registers handlers on the bus it is given (it may return a registry)."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_REDIS = 0, 1, 2, 3


@dataclasses.dataclass
class WorkerStats:
    """What a worker has done so far."""

    consumer: str
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    batches: int = 0
    reconnects: int = 0

    def add(self, report: BatchReport) -> None:
        counts = report.counts()
        self.handled += counts["handled"]
        self.duplicates += counts["duplicate"]
        self.failed += counts["failed"]
        self.dead_lettered += counts["dead-lettered"]
        self.reclaimed += report.reclaimed
        self.batches += 1

    @property
    def deliveries(self) -> int:
        return self.handled + self.duplicates + self.failed + self.dead_lettered

    def __str__(self) -> str:
        parts = [
            f"{self.handled} handled",
            plural(self.duplicates, "duplicate"),
            f"{self.failed} failed",
            f"{self.dead_lettered} dead-lettered",
        ]
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


class Worker:
    """One consumer of a consumer group, with its bus, its loop and its reconnects.

    ``handlers`` is a function ``register(bus)`` that registers handlers on the worker's
    bus (it may return the :class:`EventRegistry` to decode with), or a ready bus.
    ``middleware`` wraps every handler (retry, dead letters, idempotency: see
    :mod:`eda_lesson.core.middleware`); it is installed before ``register`` runs. Without a
    ``registry`` the worker reads the event classes its handlers are registered for
    (:func:`registry_for`). ``client`` is a redis-py client; without one the worker
    connects to ``redis_url`` (default: ``REDIS_URL``, else 127.0.0.1:6379).
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
        reconnect_for: float = 60.0,
        log_deliveries: bool = True,
        progress_every: int = 1,
        logger: logging.Logger = LOGGER,
    ) -> None:
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
            on_delivery=self._log_delivery,
        )
        self.reconnect_for = reconnect_for
        self.log_deliveries = log_deliveries
        self.progress_every = max(1, progress_every)
        self.logger = logger
        self.stats = WorkerStats(consumer)
        self.stop_reason = ""
        # A plain flag, not a threading.Event: a signal handler may set it at any moment, and
        # Event.set() takes a lock the interrupted code might be holding.
        self._stop_requested = False
        self._next_progress = self.progress_every

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
        seconds; raise :class:`RedisUnavailableError` (naming the URL) if it never does."""
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
            f"{self.name} lost Redis at {error.url} ({error.problem}); "
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
        if report.deliveries:
            self.stats.add(report)
            if self.stats.deliveries >= self._next_progress:
                self.logger.info(f"{self.name} progress: {self.stats}")
                step = self.progress_every
                self._next_progress = (self.stats.deliveries // step + 1) * step
        return report

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
        if not self._stop_requested:
            self.stop_reason = ""
        self.connect(wait_for=wait_for_redis)
        self.logger.info(self._ready_line())
        done = 0
        while not self._stop_requested:
            limit = None if stop_after is None else stop_after - done
            if limit is not None and limit <= 0:
                break
            try:
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
        return (
            f"{self.name} ready: stream {self.consumer.stream!r}, group {self.consumer.group!r} "
            f"at {self.url}; reads {', '.join(self.registry.names())}; handlers: {handlers}"
        )

    def _log_delivery(self, delivery: Delivery) -> None:
        what = f"{delivery.type_name or '?'} {delivery.event_id or '?'}"
        again = f" (delivery {delivery.delivery})" if delivery.delivery > 1 else ""
        if delivery.outcome == "failed":
            self.logger.warning(
                f"{self.name} failed {what} on delivery {delivery.delivery} of "
                f"{self.consumer.max_deliveries}, will retry: {delivery.reason}"
            )
        elif delivery.outcome == "dead-lettered":
            self.logger.warning(f"{self.name} dead-lettered {what}: {delivery.reason}")
        elif self.log_deliveries:
            verb = "handled" if delivery.outcome == "handled" else "skipped duplicate"
            self.logger.info(f"{self.name} {verb} {what}{again}")

    def status(self) -> StreamStatus:
        """Counts of the stream and group, from Redis (every worker's work)."""
        return self.consumer.status()

    def __repr__(self) -> str:
        return f"Worker({self.name} on {self.consumer.stream}/{self.consumer.group}: {self.stats})"


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eda_lesson.transport.worker",
        description=(
            "Run the handlers of a module as a worker of a Redis Streams consumer group. "
            "Each entry of the stream is decoded through an explicit event registry, "
            "dispatched on an EventBus holding your handlers, and acknowledged once "
            "handled; failures are retried and finally dead-lettered. Stop it with "
            "Ctrl-C or SIGTERM: it finishes and acknowledges the batch in hand first."
        ),
        epilog=(
            "Exit codes: 0 stopped cleanly, 1 unexpected error, 2 bad arguments or handlers, "
            "3 Redis unreachable. Start a local Redis with "
            "`redis-server --port 6379 --bind 127.0.0.1`."
        ),
    )
    add = parser.add_argument
    add(
        "--handlers",
        required=True,
        metavar="MODULE:FUNCTION",
        help="function that registers the handlers on the bus it is given, register(bus); "
        "it may return the EventRegistry to decode with (example: myshop.handlers:register)",
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
    add("--stream", default="events", help="the Redis stream to read (default: %(default)s)")
    add("--group", default="workers", help="the consumer group to join (default: %(default)s)")
    add(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="this worker's name in the group; give each running worker its own "
        "(default: host name and process id)",
    )
    add(
        "--redis-url",
        default=None,
        metavar="URL",
        help="where Redis listens (default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    add(
        "--batch",
        type=int,
        default=100,
        help="entries read per batch; marks and acknowledgements are stored once per batch, so "
        "a worker killed mid-batch has its finished part run again (default: %(default)s)",
    )
    add(
        "--block-ms",
        type=int,
        default=1000,
        metavar="MS",
        help="how long one read waits for new entries, and so how long stopping can take "
        "(default: %(default)s)",
    )
    add(
        "--max-deliveries",
        type=int,
        default=5,
        metavar="N",
        help="an entry that fails on its N-th delivery goes to the dead-letter stream "
        "(default: %(default)s)",
    )
    add(
        "--claim-idle-ms",
        type=int,
        default=30_000,
        metavar="MS",
        help="reclaim entries pending this long (left by a dead worker, or failed earlier "
        "and due for a retry); keep it well above the time a batch takes, or live workers' "
        "entries are reclaimed under them (default: %(default)s)",
    )
    add(
        "--journal",
        action="store_true",
        help="also record every delivery in the stream <stream>:<group>:deliveries",
    )
    add("--stop-after", type=int, metavar="N", help="stop after N deliveries")
    add("--until-idle", action="store_true", help="stop when a batch finds nothing to do")
    add(
        "--wait-for-redis",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="at the start, how long to keep trying to reach Redis (default: %(default)s)",
    )
    add(
        "--reconnect-for",
        type=float,
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
    try:
        return Worker(
            handlers,
            registry,
            redis_url=args.redis_url,
            stream=args.stream,
            group=args.group,
            consumer=args.consumer,
            batch=args.batch,
            block_ms=args.block_ms,
            max_deliveries=args.max_deliveries,
            claim_idle_ms=args.claim_idle_ms,
            middleware=middleware,
            journal=args.journal,
            reconnect_for=args.reconnect_for,
            log_deliveries=not args.quiet,
            progress_every=1000 if args.quiet else 1,
        )
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None


def _registry_from(spec: str) -> EventRegistry:
    registry = load_object(spec, "--registry")
    if not isinstance(registry, EventRegistry) and callable(registry):
        registry = registry()
    if not isinstance(registry, EventRegistry):
        raise UsageError(
            f"--registry {spec} is not an EventRegistry (nor a function returning one)"
        )
    return registry


def _stop_on_signals(worker: Worker) -> None:
    def on_signal(number: int, frame: FrameType | None) -> None:
        if worker.stopping:  # asked twice: the user means now
            raise KeyboardInterrupt
        worker.stop(f"{signal.Signals(number).name}, after storing the batch in hand")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker command; return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        worker = worker_from_arguments(args)
    except UsageError as error:
        print(f"worker: {error}", file=sys.stderr)
        return EXIT_USAGE
    _stop_on_signals(worker)
    try:
        worker.run(
            stop_after=args.stop_after,
            until_idle=args.until_idle,
            wait_for_redis=args.wait_for_redis,
        )
    except RedisUnavailableError as error:
        print(f"worker {worker.name}: {error}", file=sys.stderr)
        return EXIT_NO_REDIS
    except KeyboardInterrupt:
        print(f"worker {worker.name}: interrupted during a batch: {worker.stats}", file=sys.stderr)
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
