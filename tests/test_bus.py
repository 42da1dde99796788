"""The event bus, specified by example: registration, order, cascades, failures, threads."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import pytest

from eda_lesson import CascadeLimitError, EventBus, Subscription


@dataclass(frozen=True)
class OrderEvent:
    order_id: str


@dataclass(frozen=True)
class OrderCreated(OrderEvent):
    total: float = 0.0


@dataclass(frozen=True)
class OrderPaid(OrderEvent):
    pass


@dataclass(frozen=True)
class ReceiptSent(OrderEvent):
    pass


@dataclass(frozen=True)
class Ping:
    n: int


class Calls:
    """Collects what handlers saw, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def handler(self, label: str):  # type: ignore[no-untyped-def]
        def handle(event: object) -> None:
            self.seen.append(f"{label}:{type(event).__name__}")

        handle.__qualname__ = f"handle_{label}"
        return handle


# ---------------------------------------------------------------------- registration


def test_registered_handler_receives_the_event() -> None:
    bus, received = EventBus(), []
    bus.register(OrderCreated, received.append)
    event = OrderCreated("o-1", 42.0)
    bus.dispatch(event)
    assert received == [event]


def test_register_returns_the_handler_so_it_can_decorate() -> None:
    bus = EventBus()

    def handle(event: OrderCreated) -> None: ...

    assert bus.register(OrderCreated, handle) is handle


def test_subscribe_reads_the_event_type_from_the_annotation() -> None:
    bus, received = EventBus(), []

    @bus.subscribe
    def on_created(event: OrderCreated) -> None:
        received.append(event)

    bus.dispatch(OrderCreated("o-1"))
    bus.dispatch(OrderPaid("o-1"))
    assert received == [OrderCreated("o-1")]
    assert bus.handlers_for(OrderCreated) == [on_created]


def test_subscribe_resolves_string_annotations_from_future_import() -> None:
    # This module uses `from __future__ import annotations`, so the annotation is a string.
    bus = EventBus()

    @bus.subscribe
    def on_paid(event: OrderPaid) -> None: ...

    assert on_paid.__annotations__["event"] == "OrderPaid"
    assert bus.handlers_for(OrderPaid) == [on_paid]


def test_subscribe_with_explicit_types_and_unions() -> None:
    bus = EventBus()

    @bus.subscribe(OrderCreated, OrderPaid)
    def explicit(event: object) -> None: ...

    @bus.subscribe
    def union(event: OrderCreated | ReceiptSent) -> None: ...

    assert bus.handlers_for(OrderCreated) == [explicit, union]
    assert bus.handlers_for(OrderPaid) == [explicit]
    assert bus.handlers_for(ReceiptSent) == [union]


def test_unregister_removes_only_that_handler() -> None:
    bus, calls = EventBus(), Calls()
    first, second = calls.handler("first"), calls.handler("second")
    bus.register(OrderCreated, first)
    bus.register(OrderCreated, second)
    bus.unregister(OrderCreated, first)
    bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["second:OrderCreated"]


def test_unregister_of_an_unknown_handler_says_what_is_registered() -> None:
    bus = EventBus()

    def known(event: OrderCreated) -> None: ...

    def unknown(event: OrderCreated) -> None: ...

    bus.register(OrderCreated, known)
    with pytest.raises(ValueError, match=r"unknown is not registered for OrderCreated.*known"):
        bus.unregister(OrderCreated, unknown)
    assert bus.handlers_for(OrderCreated) == [known]


def test_describe_lists_every_registration() -> None:
    bus = EventBus()

    def send_confirmation(event: OrderCreated) -> None: ...

    def audit(event: object) -> None: ...

    bus.register(OrderCreated, send_confirmation)
    bus.register(object, audit)
    assert bus.describe() == (
        "EventBus with 2 handlers for 2 event types\n"
        "  OrderCreated\n"
        "    -> test_describe_lists_every_registration.send_confirmation\n"
        "  object\n"
        "    -> test_describe_lists_every_registration.audit"
    )
    assert repr(bus) == "EventBus(2 handlers for 2 event types)"


def test_subscriptions_expose_event_type_handler_and_name() -> None:
    bus = EventBus()

    def send_confirmation(event: OrderCreated) -> None: ...

    bus.register(OrderCreated, send_confirmation)
    (subscription,) = bus.subscriptions()
    assert isinstance(subscription, Subscription)
    assert subscription.message_type is OrderCreated
    assert subscription.handler is send_confirmation
    assert subscription.name.endswith("send_confirmation")


# ---------------------------------------------------------------------- re-running a cell


def test_reregistering_a_redefined_function_replaces_it_in_place() -> None:
    bus, seen = EventBus(), []
    namespace: dict[str, object] = {"seen": seen}
    source = "def send_confirmation(event):\n    seen.append({version})\n"
    for version in (1, 2):  # what re-running a notebook cell does: a new function, same name
        exec(source.format(version=version), namespace)
        bus.register(OrderCreated, namespace["send_confirmation"])  # type: ignore[arg-type]
    bus.dispatch(OrderCreated("o-1"))
    assert seen == [2]
    assert len(bus.handlers_for(OrderCreated)) == 1


def test_reregistering_keeps_the_handlers_position() -> None:
    bus, namespace = EventBus(), {}
    exec("def first(event): pass\ndef second(event): pass", namespace)
    bus.register(OrderCreated, namespace["first"])  # type: ignore[arg-type]
    bus.register(OrderCreated, namespace["second"])  # type: ignore[arg-type]
    exec("def first(event): pass", namespace)
    bus.register(OrderCreated, namespace["first"])  # type: ignore[arg-type]
    assert [h.__name__ for h in bus.handlers_for(OrderCreated)] == ["first", "second"]
    assert bus.handlers_for(OrderCreated)[0] is namespace["first"]


def test_registering_the_same_function_twice_keeps_one() -> None:
    bus, received = EventBus(), []

    def handle(event: OrderCreated) -> None:
        received.append(event)

    bus.register(OrderCreated, handle)
    bus.register(OrderCreated, handle)
    bus.dispatch(OrderCreated("o-1"))
    assert len(received) == 1


def test_different_lambdas_are_never_merged() -> None:
    bus, seen = EventBus(), []
    bus.register(OrderCreated, lambda e: seen.append("a"))
    bus.register(OrderCreated, lambda e: seen.append("b"))
    bus.dispatch(OrderCreated("o-1"))
    assert seen == ["a", "b"]


def test_closures_made_by_one_factory_are_different_handlers() -> None:
    bus, calls = EventBus(), Calls()

    def make(label: str):  # type: ignore[no-untyped-def]
        def handle(event: object) -> None:
            calls.seen.append(label)

        return handle

    bus.register(OrderCreated, make("x"))
    bus.register(OrderCreated, make("y"))
    bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["x", "y"]


def test_bound_methods_of_two_instances_are_different_handlers() -> None:
    class Mailer:
        def __init__(self) -> None:
            self.sent = 0

        def send(self, event: OrderCreated) -> None:
            self.sent += 1

    bus, first, second = EventBus(), Mailer(), Mailer()
    bus.register(OrderCreated, first.send)
    bus.register(OrderCreated, second.send)
    bus.register(OrderCreated, first.send)  # a new bound-method object for the same pair
    bus.dispatch(OrderCreated("o-1"))
    assert (first.sent, second.sent) == (1, 1)


def test_partials_are_matched_by_identity() -> None:
    bus, seen = EventBus(), []

    def record(label: str, event: object) -> None:
        seen.append(label)

    bus.register(OrderCreated, functools.partial(record, "a"))
    bus.register(OrderCreated, functools.partial(record, "b"))
    bus.dispatch(OrderCreated("o-1"))
    assert seen == ["a", "b"]


# ---------------------------------------------------------------------- call order


def test_handlers_run_in_registration_order() -> None:
    bus, calls = EventBus(), Calls()
    for label in "abc":
        bus.register(OrderCreated, calls.handler(label))
    bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["a:OrderCreated", "b:OrderCreated", "c:OrderCreated"]


def test_base_class_handlers_receive_subclass_events_after_exact_ones() -> None:
    bus, calls = EventBus(), Calls()
    bus.register(object, calls.handler("everything"))
    bus.register(OrderEvent, calls.handler("any_order"))
    bus.register(OrderPaid, calls.handler("paid"))
    bus.dispatch(OrderPaid("o-1"))
    bus.dispatch(Ping(1))
    assert calls.seen == [
        "paid:OrderPaid",
        "any_order:OrderPaid",
        "everything:OrderPaid",
        "everything:Ping",
    ]


def test_a_handler_reachable_through_two_classes_runs_once() -> None:
    bus, calls = EventBus(), Calls()
    handle = calls.handler("h")
    bus.register(OrderEvent, handle)
    bus.register(OrderPaid, handle)
    bus.dispatch(OrderPaid("o-1"))
    assert calls.seen == ["h:OrderPaid"]


def test_handlers_for_reports_the_call_order_and_follows_changes() -> None:
    bus, calls = EventBus(), Calls()
    base, exact = calls.handler("base"), calls.handler("exact")
    bus.register(OrderEvent, base)
    assert bus.handlers_for(OrderPaid) == [base]
    bus.register(OrderPaid, exact)
    assert bus.handlers_for(OrderPaid) == [exact, base]
    assert bus.handlers_for(OrderPaid("o-1")) == [exact, base]


# ---------------------------------------------------------------------- cascades


def test_returned_events_are_handled_after_the_current_events_handlers() -> None:
    bus, calls = EventBus(), Calls()
    bus.register(OrderCreated, lambda e: OrderPaid(e.order_id))
    bus.register(OrderCreated, calls.handler("after_return"))
    bus.register(OrderPaid, calls.handler("paid"))
    bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["after_return:OrderCreated", "paid:OrderPaid"]


def test_dispatch_inside_a_handler_is_queued_not_recursive() -> None:
    bus, calls = EventBus(), Calls()

    def pay(event: OrderCreated) -> None:
        calls.seen.append("pay:start")
        nested = bus.dispatch(OrderPaid(event.order_id))
        calls.seen.append(f"pay:end:{len(nested.calls) if nested.is_complete() else 'queued'}")

    bus.register(OrderCreated, pay)
    bus.register(OrderCreated, calls.handler("second"))
    bus.register(OrderPaid, calls.handler("paid"))
    result = bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["pay:start", "pay:end:queued", "second:OrderCreated", "paid:OrderPaid"]
    assert [r.type_name for r in result.events] == ["OrderCreated", "OrderPaid"]
    assert result.events[1].caused_by == 1


def test_cascade_is_breadth_first_across_generations() -> None:
    bus, order = EventBus(), []

    @dataclass(frozen=True)
    class Node:
        name: str

    tree = {"root": ["a", "b"], "a": ["a1", "a2"], "b": ["b1"]}

    def expand(event: Node) -> list[Node]:
        order.append(event.name)
        return [Node(child) for child in tree.get(event.name, [])]

    bus.register(Node, expand)
    result = bus.dispatch(Node("root"))
    assert order == ["root", "a", "b", "a1", "a2", "b1"]
    assert [r.depth for r in result.events] == [0, 1, 1, 2, 2, 2]


def test_handlers_may_return_a_tuple_or_a_generator_of_events() -> None:
    bus, received = EventBus(), []

    def as_tuple(event: OrderCreated) -> tuple[OrderPaid, ...]:
        return (OrderPaid("t1"), OrderPaid("t2"))

    def as_generator(event: OrderCreated):  # type: ignore[no-untyped-def]
        yield ReceiptSent("g1")

    bus.register(OrderCreated, as_tuple)
    bus.register(OrderCreated, as_generator)
    bus.register(OrderEvent, received.append)
    bus.dispatch(OrderCreated("o-1"))
    assert [e.order_id for e in received] == ["o-1", "t1", "t2", "g1"]


def test_each_thread_gets_its_own_cascade() -> None:
    bus = EventBus()
    barrier = threading.Barrier(2)
    seen: dict[str, list[str]] = {"A": [], "B": []}

    def step(event: Ping) -> Ping | None:
        # Both threads sit inside a handler at the same time before going on.
        if event.n == 0:
            barrier.wait(timeout=5)
        seen[threading.current_thread().name].append(str(event.n))
        return Ping(event.n + 1) if event.n < 3 else None

    bus.register(Ping, step)
    results = {}

    def run(name: str) -> None:
        results[name] = bus.dispatch(Ping(0))

    threads = [threading.Thread(target=run, args=(n,), name=n) for n in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"A": ["0", "1", "2", "3"], "B": ["0", "1", "2", "3"]}
    assert [len(results[n].events) for n in "AB"] == [4, 4]


def test_runaway_cascade_stops_and_names_the_repeating_types() -> None:
    bus = EventBus(max_cascade=50)

    @dataclass(frozen=True)
    class PaymentRetried:
        n: int

    bus.register(OrderPaid, lambda e: PaymentRetried(1))
    bus.register(PaymentRetried, lambda e: OrderPaid("again"))
    with pytest.raises(CascadeLimitError, match="passed 50 events") as caught:
        bus.dispatch(OrderPaid("o-1"))
    message = str(caught.value)
    assert "OrderPaid x" in message and "PaymentRetried x" in message
    assert "max_cascade" in message
    assert len(caught.value.result.events) == 51
    # The thread is not left "inside a dispatch": the next dispatch starts a new cascade.
    bus.unregister(PaymentRetried, bus.handlers_for(PaymentRetried)[0])
    assert len(bus.dispatch(OrderPaid("o-2")).events) == 2


def test_max_cascade_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_cascade"):
        EventBus(max_cascade=0)


# ---------------------------------------------------------------------- failures


def test_handler_failure_does_not_stop_other_handlers_or_the_cascade() -> None:
    bus, calls = EventBus(), Calls()

    def broken(event: OrderCreated) -> None:
        raise RuntimeError("mail server down")

    bus.register(OrderCreated, broken)
    bus.register(OrderCreated, lambda e: OrderPaid(e.order_id))
    bus.register(OrderPaid, calls.handler("paid"))
    result = bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["paid:OrderPaid"]
    assert not result.ok
    (failure,) = result.failures
    assert failure.handler is broken
    assert isinstance(failure.error, RuntimeError)


def test_failures_turn_into_an_exception_group_with_notes() -> None:
    bus = EventBus()

    def first(event: OrderCreated) -> None:
        raise ValueError("bad total")

    def second(event: OrderCreated) -> None:
        raise KeyError("sku")

    bus.register(OrderCreated, first)
    bus.register(OrderCreated, second)
    result = bus.dispatch(OrderCreated("o-1"))
    with pytest.raises(ExceptionGroup) as caught:
        result.raise_if_failed()
    group = caught.value
    assert str(group).startswith("2 handlers failed while dispatching OrderCreated")
    assert [type(e) for e in group.exceptions] == [ValueError, KeyError]
    assert group.exceptions[0].__notes__ == [
        "in handler test_failures_turn_into_an_exception_group_with_notes.first "
        "for OrderCreated(order_id='o-1', total=0.0)"
    ]
    # asking twice does not add the note twice
    result.exception_group()
    assert len(group.exceptions[0].__notes__) == 1


def test_raise_if_failed_returns_the_result_when_all_went_well() -> None:
    bus = EventBus()
    bus.register(OrderCreated, lambda e: None)
    result = bus.dispatch(OrderCreated("o-1"))
    assert result.raise_if_failed() is result
    assert result.exception_group() is None


def test_fail_fast_reraises_the_original_error_at_once() -> None:
    bus, calls = EventBus(fail_fast=True), Calls()

    def broken(event: OrderCreated) -> None:
        raise RuntimeError("boom")

    bus.register(OrderCreated, broken)
    bus.register(OrderCreated, calls.handler("never"))
    with pytest.raises(RuntimeError, match="boom") as caught:
        bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == []
    assert "in handler" in caught.value.__notes__[0]
    # the thread's cascade was cleaned up
    bus.unregister(OrderCreated, broken)
    assert bus.dispatch(OrderCreated("o-2")).ok


def test_keyboard_interrupt_is_not_swallowed() -> None:
    bus = EventBus()

    def interrupted(event: OrderCreated) -> None:
        raise KeyboardInterrupt

    bus.register(OrderCreated, interrupted)
    with pytest.raises(KeyboardInterrupt):
        bus.dispatch(OrderCreated("o-1"))
    bus.unregister(OrderCreated, interrupted)
    assert bus.dispatch(OrderCreated("o-1")).ok


def test_a_handler_returning_a_plain_value_is_a_recorded_failure() -> None:
    bus = EventBus()

    def chatty(event: OrderCreated) -> str:
        return "email sent"

    bus.register(OrderCreated, chatty)
    result = bus.dispatch(OrderCreated("o-1"))
    (failure,) = result.failures
    assert isinstance(failure.error, TypeError)
    assert "returned 'email sent' (a str)" in str(failure.error)
    assert len(result.events) == 1


def test_a_generator_handler_that_raises_keeps_what_it_yielded_before() -> None:
    bus = EventBus()

    def halfway(event: OrderCreated):  # type: ignore[no-untyped-def]
        yield OrderPaid(event.order_id)
        raise RuntimeError("stopped halfway")

    bus.register(OrderCreated, halfway)
    result = bus.dispatch(OrderCreated("o-1"))
    assert [type(f.error) for f in result.failures] == [RuntimeError]


def test_events_dispatched_before_a_handler_failed_are_still_handled() -> None:
    bus, calls = EventBus(), Calls()

    def dispatch_then_fail(event: OrderCreated) -> None:
        bus.dispatch(OrderPaid(event.order_id))
        raise RuntimeError("after dispatching")

    bus.register(OrderCreated, dispatch_then_fail)
    bus.register(OrderPaid, calls.handler("paid"))
    result = bus.dispatch(OrderCreated("o-1"))
    assert calls.seen == ["paid:OrderPaid"]
    assert result.events[1].caused_by == 1 and not result.ok


# ---------------------------------------------------------------------- middleware


def test_middleware_wraps_handlers_outermost_first() -> None:
    bus, trace = EventBus(), []

    def layer(label: str):  # type: ignore[no-untyped-def]
        def middleware(call, subscription):  # type: ignore[no-untyped-def]
            def wrapped(event: object) -> object:
                trace.append(f"{label}>{subscription.name.rsplit('.', 1)[-1]}")
                return call(event)

            return wrapped

        return middleware

    def handle(event: OrderCreated) -> None:
        trace.append("handler")

    bus.use(layer("outer"), layer("inner"))
    bus.register(OrderCreated, handle, middleware=[layer("own")])
    bus.dispatch(OrderCreated("o-1"))
    assert trace == ["outer>handle", "inner>handle", "own>handle", "handler"]


def test_middleware_sees_returned_events_and_failures() -> None:
    bus, seen = EventBus(), []

    def observe(call, subscription):  # type: ignore[no-untyped-def]
        def wrapped(event: object) -> object:
            try:
                produced = call(event)
            except Exception as error:
                seen.append(f"failed:{error}")
                raise
            seen.append(f"returned:{type(produced).__name__}")
            return produced

        return wrapped

    def fail(event: OrderPaid) -> None:
        raise RuntimeError("x")

    bus.use(observe)
    bus.register(OrderCreated, lambda e: OrderPaid(e.order_id))
    bus.register(OrderPaid, fail)
    result = bus.dispatch(OrderCreated("o-1"))
    assert seen == ["returned:OrderPaid", "failed:x"]
    assert len(result.failures) == 1


def test_middleware_added_later_applies_to_existing_handlers() -> None:
    bus, count = EventBus(), []
    bus.register(OrderCreated, lambda e: None)
    bus.dispatch(OrderCreated("o-1"))

    def counting(call, subscription):  # type: ignore[no-untyped-def]
        def wrapped(event: object) -> object:
            count.append(1)
            return call(event)

        return wrapped

    bus.use(counting)
    bus.dispatch(OrderCreated("o-2"))
    assert count == [1]
    assert bus.middleware == (counting,)


def test_middleware_that_returns_nothing_callable_is_rejected_at_registration() -> None:
    bus = EventBus()
    bus.use(lambda call, subscription: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="instead of a callable"):
        bus.register(OrderCreated, lambda e: None)
    assert bus.subscriptions() == []  # refused before anything changed


# ---------------------------------------------------------------------- threads


def _run_threads(count: int, target) -> None:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


def test_registrations_from_many_threads_at_once_are_all_kept() -> None:
    bus, workers, per_worker = EventBus(), 8, 50
    start = threading.Barrier(workers)

    def register_many(n: int) -> None:
        start.wait(timeout=5)
        for _ in range(per_worker):
            bus.register(Ping, lambda event: None)
            bus.handlers_for(Ping)  # reading plans while others write

    _run_threads(workers, register_many)
    assert len(bus.handlers_for(Ping)) == workers * per_worker


def test_dispatches_from_many_threads_reach_every_handler_exactly_once() -> None:
    bus, workers, per_worker, handlers = EventBus(), 8, 300, 4
    counts = [0] * handlers
    lock = threading.Lock()

    def make_handler(n: int):  # type: ignore[no-untyped-def]
        def handle(event: Ping) -> Ping | None:
            with lock:
                counts[n] += 1
            return Ping(-1) if event.n >= 0 and n == 0 else None

        return handle

    for n in range(handlers):
        bus.register(Ping, make_handler(n))
    start = threading.Barrier(workers)
    results = []

    def dispatch_many(n: int) -> None:
        start.wait(timeout=5)
        for i in range(per_worker):
            results.append(bus.dispatch(Ping(i)))

    _run_threads(workers, dispatch_many)
    # each dispatch: Ping(i) reaches 4 handlers, the first returns Ping(-1), reaching 4 more
    assert counts == [workers * per_worker * 2] * handlers
    assert len(results) == workers * per_worker
    assert all(len(r.events) == 2 and len(r.calls) == 8 and r.ok for r in results)


def test_subscribe_given_a_function_after_the_type_says_to_use_register() -> None:
    """``bus.subscribe(OrderPaid, handler)`` used to take the handler for a second message
    type and return a decorator nobody called: the handler was never registered."""
    bus = EventBus()
    with pytest.raises(TypeError, match=r"bus\.register\(MessageType, handler\)"):
        bus.subscribe(OrderPaid, print)  # type: ignore[call-overload]
    assert bus.handlers_for(OrderPaid) == []
