"""What the core guarantees by construction: every way the first version lost work silently
is now impossible or a clear error. One section per class of fault, each with more cases
than the one first reported."""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import itertools
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

import pytest

from eda_lesson import (
    BaseBus,
    CascadeLimitError,
    Command,
    EventBus,
    Subscription,
    UnhandledCommandError,
)
from eda_lesson.core.asyncbus import AsyncEventBus
from eda_lesson.core.bus import PLAN_CACHE_SIZE, require_sync_bus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import (
    NEXT,
    DeadLetterStore,
    RetriesExhaustedError,
    Steps,
    Wait,
    around,
    dead_letters,
    fixed,
    idempotent,
    retry,
)
from eda_lesson.patterns.outbox import BusPublisher
from eda_lesson.patterns.serialization import EventRegistry
from eda_lesson.patterns.store import InMemoryEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Paid:
    order_id: str


@dataclass(frozen=True)
class Receipt:
    n: int


@dataclass(frozen=True)
class Charge(Command):
    order_id: str


@dataclass(frozen=True)
class Stamped:
    event_id: str


def run(coroutine: Any) -> Any:
    return VirtualClock().run(coroutine)


# ---------------------------------------------------------------------- sync-only parts


def test_parts_that_read_the_result_at_once_refuse_an_async_bus_at_construction() -> None:
    registry = EventRegistry.of(Paid)
    makers: list[Callable[[], object]] = [
        lambda: UnitOfWork(InMemoryEventStore(), AsyncEventBus()),  # type: ignore[arg-type]
        lambda: BusPublisher(AsyncEventBus(), registry),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(TypeError, match="needs an EventBus; AsyncEventBus returns a coroutine"):
            make()


def test_the_stream_consumer_refuses_an_async_bus_before_touching_redis() -> None:
    redis = pytest.importorskip("redis")
    from eda_lesson.transport.redis_streams import StreamConsumer

    client = redis.Redis(host="127.0.0.1", port=1, decode_responses=True)  # never connected
    with pytest.raises(TypeError, match="StreamConsumer dispatches and reads the result"):
        StreamConsumer(client, AsyncEventBus(), EventRegistry.of(Paid))  # type: ignore[arg-type]


def test_require_sync_bus_names_what_it_got() -> None:
    assert isinstance(require_sync_bus(EventBus(), "x"), EventBus)
    with pytest.raises(TypeError, match="the outbox relay takes an EventBus, got 'bus'"):
        require_sync_bus("bus", "the outbox relay")


def test_mypy_flags_an_async_bus_where_a_sync_one_is_needed(tmp_path: Path) -> None:
    source = tmp_path / "uses_the_wrong_bus.py"
    source.write_text(
        textwrap.dedent(
            """
            from eda_lesson.core.asyncbus import AsyncEventBus
            from eda_lesson import BaseBus, EventBus
            from eda_lesson.patterns.store import InMemoryEventStore
            from eda_lesson.patterns.unit_of_work import UnitOfWork

            UnitOfWork(InMemoryEventStore(), AsyncEventBus())
            either: BaseBus = AsyncEventBus()
            sync_only: EventBus = AsyncEventBus()
            """
        )
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["7", "9"], checked.stdout


# ---------------------------------------------------------------------- inspection changes nothing


@pytest.mark.parametrize("kind", [list, tuple, str, dict, collections.deque, range, type(None)])
def test_inspecting_a_builtin_type_is_refused_and_changes_nothing(kind: type) -> None:
    bus = EventBus()
    bus.register(Paid, lambda event: [Receipt(1), Receipt(2)])
    with pytest.raises(TypeError, match="is not an event class"):
        bus.handlers_for(kind)
    with pytest.raises(TypeError, match="is not an event class"):
        bus.plan_for(kind)
    result = bus.dispatch(Paid("o-1"))
    assert [record.type_name for record in result.events] == ["Paid", "Receipt", "Receipt"]
    with pytest.raises(TypeError, match="dispatch\\(\\) takes an event instance"):
        bus.dispatch("x")


# ---------------------------------------------------------------------- one rule for return values


@pytest.mark.parametrize(
    "returned",
    [
        collections.deque([Receipt(1)]),
        range(3),
        {"a": Receipt(1)}.values(),
        {Receipt(1)},
        frozenset({Receipt(1)}),
        collections.OrderedDict(a=1),
        "receipt",
        b"receipt",
        42,
        Receipt,
        [Receipt(1), "oops"],
        (Receipt(1), None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_a_return_value_that_is_not_messages_is_a_recorded_failure_and_queues_nothing(
    returned: object,
) -> None:
    bus = EventBus()
    bus.register(Paid, lambda event: returned)
    result = bus.dispatch(Paid("o-1"))
    assert len(result.queue) == 1  # nothing of it joined the queue, not even the good part
    (failure,) = result.failures
    assert isinstance(failure.error, TypeError)
    assert "an event handler returns None, an event, a list or tuple of events" in str(
        failure.error
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Receipt(1),
        lambda: [Receipt(1), Receipt(2)],
        lambda: (Receipt(1), Receipt(2)),
        lambda: (Receipt(n) for n in (1, 2)),
        lambda: iter([Receipt(1), Receipt(2)]),
        lambda: map(Receipt, [1, 2]),
    ],
    ids=["one", "list", "tuple", "generator", "iterator", "map"],
)
def test_messages_come_from_one_a_list_a_tuple_or_an_iterator(make: Callable[[], object]) -> None:
    bus = EventBus()
    bus.register(Paid, lambda event: make())
    result = bus.dispatch(Paid("o-1"))
    assert result.ok and all(r.type_name == "Receipt" for r in result.events[1:])
    assert len(result.events) in (2, 3)


def test_a_namedtuple_event_is_one_event_not_its_fields() -> None:
    Point = collections.namedtuple("Point", "x y")
    bus = EventBus()
    bus.register(Paid, lambda event: Point(1, 2))
    result = bus.dispatch(Paid("o-1"))
    assert [record.event for record in result.events[1:]] == [Point(1, 2)]


def test_an_awaitable_returned_on_a_sync_bus_says_to_use_the_async_bus() -> None:
    async def later() -> None: ...

    bus = EventBus()
    bus.register(Paid, lambda event: later())
    (failure,) = bus.dispatch(Paid("o-1")).failures
    assert "an async def handler runs on an AsyncEventBus" in str(failure.error)


def test_an_async_handler_is_refused_by_the_sync_bus_at_registration() -> None:
    async def charge(event: Paid) -> None: ...

    async def stream(event: Paid) -> Any:
        yield Receipt(1)

    for handler in (charge, stream, functools.partial(charge)):
        with pytest.raises(TypeError, match="is async def; an EventBus calls handlers"):
            EventBus().register(Paid, handler)


# ---------------------------------------------------------------------- bounded


def test_a_generator_that_never_ends_stops_at_the_cascade_limit() -> None:
    pulled = itertools.count()

    def forever(event: Paid) -> Iterator[Receipt]:
        while True:
            yield Receipt(next(pulled))

    bus = EventBus(max_cascade=50)
    bus.register(Paid, forever)
    with pytest.raises(CascadeLimitError, match="passed 50 events") as caught:
        bus.dispatch(Paid("o-1"))
    assert next(pulled) <= 52  # it was pulled one by one and stopped, not drained
    assert len(caught.value.result.queue) <= 52


def test_an_iterator_returned_by_a_plain_function_is_bounded_too() -> None:
    bus = EventBus(max_cascade=20)
    bus.register(Paid, lambda event: map(Receipt, itertools.count()))
    with pytest.raises(CascadeLimitError):
        bus.dispatch(Paid("o-1"))


def test_the_plan_cache_does_not_keep_every_class_ever_dispatched_alive() -> None:
    bus = EventBus()
    bus.register(object, lambda event: None)
    references = []
    for number in range(PLAN_CACHE_SIZE * 2):
        cls = make_dataclass(f"Made{number}", [("n", int)], frozen=True)
        bus.dispatch(cls(number))
        references.append(weakref.ref(cls))
        del cls
    gc.collect()
    alive = sum(1 for reference in references if reference() is not None)
    assert alive <= PLAN_CACHE_SIZE


# ---------------------------------------------------------------------- telling never fails


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def test_an_event_whose_repr_raises_cannot_hide_the_handlers_error() -> None:
    bus = EventBus()

    def fail(event: object) -> None:
        raise ValueError("the real problem")

    bus.register(Unprintable, fail)
    result = bus.dispatch(Unprintable())
    assert "<Unprintable (its repr raised RuntimeError)>" in result.describe()
    group = result.exception_group()
    assert group is not None and isinstance(group.exceptions[0], ValueError)
    with pytest.raises(ExceptionGroup) as caught:
        result.raise_if_failed()
    assert "the real problem" in str(caught.value.exceptions[0])
    fail_fast = EventBus(fail_fast=True)
    fail_fast.register(Unprintable, fail)
    with pytest.raises(ValueError, match="the real problem"):
        fail_fast.dispatch(Unprintable())


def test_an_unprintable_value_returned_by_a_handler_is_still_named() -> None:
    bus = EventBus()
    bus.register(Paid, lambda event: [Unprintable(), 3])
    (failure,) = bus.dispatch(Paid("o-1")).failures
    assert "returned 3 (an int)" in str(failure.error)


# ---------------------------------------------------------------------- middleware fails early


def raising_layer(call: Any, subscription: Subscription) -> Any:
    raise KeyError("config missing")


def none_layer(call: Any, subscription: Subscription) -> Any:
    return None


@pytest.mark.parametrize("layer", [raising_layer, none_layer])
def test_a_middleware_that_cannot_wrap_fails_at_registration_and_changes_nothing(
    layer: Any,
) -> None:
    bus, seen = EventBus(), list[object]()
    bus.register(Paid, seen.append)
    with pytest.raises((KeyError, TypeError)) as caught:
        bus.register(Receipt, seen.append, middleware=[layer])
    told = str(caught.value) + " ".join(getattr(caught.value, "__notes__", []))
    assert "othing was registered or changed" in told
    with pytest.raises((KeyError, TypeError)):
        bus.use(layer)  # every handler is wrapped again at once: one failure, no change
    assert bus.middleware == () and [s.message_type for s in bus.subscriptions()] == [Paid]
    assert bus.dispatch(Paid("o-1")).ok and seen == [Paid("o-1")]


def test_a_plain_wrapper_around_an_async_call_is_refused() -> None:
    def hides_errors(call: Any, subscription: Subscription) -> Any:
        return lambda message: call(message)  # returns the coroutine: errors escape

    async def charge(event: Paid) -> None: ...

    with pytest.raises(TypeError, match="in a plain function, so errors would escape it"):
        AsyncEventBus(middleware=[hides_errors]).register(Paid, charge)


def test_a_layer_may_make_a_call_async_and_the_layers_outside_follow_it() -> None:
    """The wrapper decides by the call it wraps: one layer running a plain handler in a
    thread makes it async, and the retry outside it retries the awaited call."""
    attempts = []

    def in_a_thread(call: Any, subscription: Subscription) -> Any:
        async def threaded(message: object) -> object:
            return await asyncio.to_thread(call, message)

        return threaded

    def flaky(event: Paid) -> None:
        attempts.append(event)
        if len(attempts) < 3:
            raise TimeoutError("busy")

    bus = AsyncEventBus()
    bus.register(Paid, flaky, middleware=[retry(attempts=3, backoff=fixed(0.5)), in_a_thread])
    result = asyncio.run(bus.dispatch(Paid("o-1")))
    assert result.ok and len(attempts) == 3
    with pytest.raises(TypeError, match=r"made the call of .*flaky async, but an EventBus"):
        EventBus().register(Paid, flaky, middleware=[in_a_thread])


# ---------------------------------------------------------------------- generators in middleware


def test_a_failing_generator_handler_is_retried_dead_lettered_and_not_marked_done() -> None:
    clock, letters, tries = VirtualClock(), DeadLetterStore(), []

    def receipts(event: Stamped) -> Iterator[Receipt]:
        tries.append(event)
        yield Receipt(1)
        raise ConnectionError("mail server down mid-way")

    once = idempotent()
    bus = EventBus()
    bus.register(
        Stamped,
        receipts,
        middleware=[
            dead_letters(letters),
            retry(attempts=2, backoff=fixed(1.0), clock=clock),
            once,
        ],
    )
    result = bus.dispatch(Stamped("evt-1"))
    assert len(tries) == 2  # retried
    assert isinstance(result.failures[0].error, RetriesExhaustedError)
    assert len(letters) == 1  # dead-lettered
    assert len(result.queue) == 1  # what it yielded before failing was not published
    bus.dispatch(Stamped("evt-1"))
    assert len(tries) == 4 and once.skipped == []  # a redelivery is not skipped as done


def test_an_async_generator_handler_is_drained_inside_its_middleware() -> None:
    tries = []

    async def receipts(event: Paid) -> Any:
        tries.append(event)
        yield Receipt(len(tries))
        if len(tries) < 2:
            raise ConnectionError("flaky")

    bus = AsyncEventBus()
    bus.register(Paid, receipts, middleware=[retry(attempts=2, backoff=fixed(0.1))])
    result = run(bus.dispatch(Paid("o-1")))
    assert result.ok and [r.event for r in result.events[1:]] == [Receipt(2)]


def test_a_middleware_written_once_runs_around_plain_and_async_handlers() -> None:
    seen: list[str] = []
    clock = VirtualClock()

    @around
    def audit(message: object, subscription: Subscription) -> Steps:
        seen.append(f"before {subscription.name}")
        yield Wait(0.25, clock)
        produced = yield NEXT
        seen.append(f"after {subscription.name}")
        return produced

    def plain(event: Paid) -> None:
        seen.append("plain runs")

    async def awaited(event: Paid) -> None:
        seen.append("async runs")

    sync_bus, async_bus = EventBus(middleware=[audit]), AsyncEventBus(middleware=[audit])
    sync_bus.register(Paid, plain)
    async_bus.register(Paid, awaited)
    sync_bus.dispatch(Paid("o-1"))
    asyncio.run(async_bus.dispatch(Paid("o-1")))
    here = "test_a_middleware_written_once_runs_around_plain_and_async_handlers"
    assert seen == [
        f"before {here}.plain",
        "plain runs",
        f"after {here}.plain",
        f"before {here}.awaited",
        "async runs",
        f"after {here}.awaited",
    ]
    assert clock.now() == 0.5  # each waited on the clock it was given


def test_a_middleware_step_that_is_neither_next_nor_wait_is_a_clear_error() -> None:
    @around
    def confused(message: object, subscription: Subscription) -> Steps:
        yield "call it now"  # type: ignore[misc]

    bus = EventBus(middleware=[confused])
    bus.register(Paid, lambda event: None)
    (failure,) = bus.dispatch(Paid("o-1")).failures
    assert "yield NEXT (call the next layer) or Wait(seconds, clock)" in str(failure.error)


# ---------------------------------------------------------------------- concurrent async cascades


def test_a_dispatch_from_a_task_started_by_a_finished_cascade_starts_its_own() -> None:
    bus = AsyncEventBus(concurrency="concurrent")
    late: list[Any] = []

    async def start_background_work(event: Paid) -> None:
        async def soon() -> None:
            await asyncio.sleep(0.1)  # the cascade is over by then
            late.append(await bus.dispatch(Receipt(7)))

        late.append(asyncio.get_running_loop().create_task(soon()))

    async def quick(event: Paid) -> None: ...

    bus.register(Paid, start_background_work)
    bus.register(Paid, quick)
    bus.register(Receipt, quick)

    async def main() -> Any:
        first = await bus.dispatch(Paid("o-1"))
        await late[0]
        return first

    first = run(main())
    assert [r.event for r in first.events] == [Paid("o-1")]
    assert [r.event for r in late[1].events] == [Receipt(7)]  # handled, in a cascade of its own


def test_a_late_dispatch_joins_a_concurrent_cascade_that_is_still_running() -> None:
    bus = AsyncEventBus(concurrency="concurrent")

    async def start_background_work(event: Paid) -> None:
        async def soon() -> None:
            await asyncio.sleep(0.1)
            await bus.dispatch(Receipt(7))

        asyncio.get_running_loop().create_task(soon())

    async def slow(event: Paid) -> Receipt:
        await asyncio.sleep(0.05)
        return Receipt(1)

    async def takes_a_while(event: Receipt) -> None:
        await asyncio.sleep(0.3)

    async def other(event: Receipt) -> None: ...

    bus.register(Paid, start_background_work)
    bus.register(Paid, slow)
    bus.register(Receipt, takes_a_while)
    bus.register(Receipt, other)
    result = run(bus.dispatch(Paid("o-1")))
    assert [r.event for r in result.events] == [Paid("o-1"), Receipt(1), Receipt(7)]
    assert result.events[2].caused_by == 1  # credited to the handler whose task sent it


# ---------------------------------------------------------------------- commands


def test_a_failing_command_raises_its_own_error_after_its_committed_events_ran() -> None:
    bus, heard = EventBus(), list[object]()

    def charge(command: Charge) -> None:
        bus.dispatch(Paid(command.order_id))  # what it did before failing still happened
        raise PermissionError("card blocked")

    bus.register(Charge, charge)
    bus.register(Paid, heard.append)
    with pytest.raises(PermissionError, match="card blocked"):
        bus.dispatch(Charge("o-1"))
    assert heard == [Paid("o-1")]


def test_a_command_produced_in_a_cascade_with_no_handler_fails_its_producer() -> None:
    @dataclass(frozen=True)
    class Refund(Command):
        order_id: str

    bus = EventBus()
    bus.register(Paid, lambda event: Refund(event.order_id))
    result = bus.dispatch(Paid("o-1"))
    (failure,) = result.failures
    assert isinstance(failure.error, UnhandledCommandError)
    assert result.unhandled[0].type_name == "Refund"


@pytest.mark.parametrize("planned_by", ["a dispatch", "a cascade", "an unregistered handler"])
def test_an_unhandled_command_is_refused_on_every_dispatch_sync_and_async(planned_by: str) -> None:
    # The bus plans each message type once; a command planned without a handler (refused
    # once, met in a cascade, or whose handler was unregistered) must still be refused.
    @dataclass(frozen=True)
    class Refund(Command):
        order_id: str

    for bus in (EventBus(), AsyncEventBus()):
        if planned_by == "a dispatch":
            with pytest.raises(UnhandledCommandError):
                _run(bus.dispatch(Refund("o-1")))
        elif planned_by == "a cascade":
            bus.register(Paid, lambda event: Refund(event.order_id))
            assert not _run(bus.dispatch(Paid("o-1"))).ok
        else:

            def refund(command: Refund) -> None:
                pass

            bus.register(Refund, refund)
            _run(bus.dispatch(Refund("o-1")))
            bus.unregister(Refund, refund)
        for _ in range(2):
            with pytest.raises(UnhandledCommandError, match="dispatched the command"):
                _run(bus.dispatch(Refund("o-1")))


def _run(outcome: Any) -> Any:
    """The result of a dispatch, from either bus (the async one returns a coroutine)."""
    return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome


def test_a_command_handler_cannot_yield_and_handlers_for_object_never_hear_commands() -> None:
    def yields(command: Charge) -> Iterator[Paid]:
        yield Paid(command.order_id)

    with pytest.raises(TypeError, match="is a command: its handler returns an answer"):
        EventBus().register(Charge, yields)
    bus, everything = EventBus(), list[object]()
    bus.register(object, everything.append)
    bus.register(Charge, lambda command: "ok")
    assert bus.dispatch(Charge("o-1")).returned == "ok" and everything == []
    with pytest.raises(TypeError, match="register it for the command class itself"):
        bus.register(Command, everything.append)


def test_a_message_cannot_be_both_a_command_and_an_event() -> None:
    from eda_lesson import Event

    @dataclass(frozen=True)
    class Confused(Command, Event):
        pass

    with pytest.raises(TypeError, match="is both a Command and an Event"):
        EventBus().register(Confused, lambda message: None)


# ---------------------------------------------------------------------- dependencies


def test_dependencies_are_passed_by_name_and_checked_at_registration() -> None:
    mailer: list[str] = []
    bus = EventBus(dependencies={"mailer": mailer, "unused": object()})

    def send(event: Paid, mailer: list[str], retries: int = 3) -> None:
        mailer.append(f"{event.order_id} x{retries}")

    bus.register(Paid, send)
    bus.dispatch(Paid("o-1"))
    assert mailer == ["o-1 x3"]
    with pytest.raises(TypeError, match="needs 'clock', which this bus does not provide"):
        bus.register(Paid, lambda event, clock: None)
    bus.provide(retries=1)  # a later dependency fills a parameter with a default too
    bus.register(Paid, send)
    bus.dispatch(Paid("o-2"))
    assert mailer == ["o-1 x3", "o-2 x1"]


def test_the_signature_check_sees_through_functools_wraps() -> None:
    calls: list[str] = []

    def logged(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append("logged")
            return handler(*args, **kwargs)

        return wrapper

    def with_own_signature(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(event: Paid) -> Any:  # supplies the dependency itself
            return handler(event, mailer=["own"])

        return wrapper

    @logged
    def send(event: Paid, mailer: list[str]) -> None:
        calls.append(f"send {mailer}")

    @with_own_signature
    def send_own(event: Paid, mailer: list[str]) -> None:
        calls.append(f"send_own {mailer}")

    bus = EventBus(dependencies={"mailer": ["bus"]})
    bus.register(Paid, send)
    bus.register(Paid, send_own)
    assert bus.dispatch(Paid("o-1")).ok
    assert calls == ["logged", "send ['bus']", "send_own ['own']"]
    with pytest.raises(TypeError, match="needs 'mailer'"):
        EventBus().register(Paid, send)  # the wrapped signature is what counts


def test_bad_dependencies_and_sources_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="a dependency's name is a parameter name"):
        EventBus(dependencies={"not a name": 1})
    with pytest.raises(TypeError, match="collect_from takes a list of event sources"):
        EventBus(collect_from=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="has no collect_new_events"):
        EventBus(collect_from=[object()])  # type: ignore[list-item]


def test_either_bus_is_a_base_bus_for_code_that_only_reads_registrations() -> None:
    assert isinstance(EventBus(), BaseBus) and isinstance(AsyncEventBus(), BaseBus)
    assert not isinstance(AsyncEventBus(), EventBus)
