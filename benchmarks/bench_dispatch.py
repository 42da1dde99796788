"""What one dispatch costs: eda_lesson beside a direct call, a ten-line bus and popular peers.

Run it with ``python benchmarks/bench_dispatch.py`` (``pip install -e ".[bench]"`` first for
blinker, pyee and PyPubSub). Every case runs in this one process, interleaved round by round,
and the table reports the median nanoseconds per dispatch and the ratio to the reference bus
with the same number of handlers. Absolute numbers depend on the machine; the ratios are the
point. ``--quick`` makes a short smoke run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from timing import measure, parse_arguments, print_setting

from eda_lesson import Command, EventBus


@dataclass(frozen=True)
class OrderPaid:
    order_id: str


@dataclass(frozen=True)
class ReceiptSent:
    order_id: str


@dataclass(frozen=True)
class ShipmentRequested:
    order_id: str


@dataclass(frozen=True)
class PayOrder(Command):
    order_id: str


EVENT = OrderPaid("o-1")
COMMAND = PayOrder("o-1")


def handler(event: object) -> None:
    """The work every case does per handler: nothing, so the bus's own cost shows."""


class ReferenceBus:
    """The ten-line dict-of-lists bus: the floor any bus with a registry has to pay."""

    def __init__(self) -> None:
        self.handlers: dict[type, list[Callable[[object], object]]] = {}

    def register(self, event_type: type, handler: Callable[[object], object]) -> None:
        self.handlers.setdefault(event_type, []).append(handler)

    def dispatch(self, event: object) -> None:
        for handle in self.handlers.get(type(event), ()):
            handle(event)


class QueueBus:
    """A Cosmic-Python-style bus: a queue, a loop, try/except around each handler."""

    def __init__(self) -> None:
        self.handlers: dict[type, list[Callable[[object], object]]] = {}

    def register(self, event_type: type, handler: Callable[[object], object]) -> None:
        self.handlers.setdefault(event_type, []).append(handler)

    def dispatch(self, event: object) -> None:
        queue = [event]
        while queue:
            current = queue.pop(0)
            for handle in self.handlers.get(type(current), ()):
                try:
                    produced = handle(current)
                except Exception:
                    continue
                if produced is not None:
                    queue.append(produced)


# ---------------------------------------------------------------------- cases


def one_handler_cases() -> dict[str, Callable[[], object]]:
    reference, queue_bus, bus = ReferenceBus(), QueueBus(), EventBus()
    for target in (reference, queue_bus, bus):
        target.register(OrderPaid, handler)

    def eda_full_story() -> object:
        result = bus.dispatch(EVENT)
        return result.calls, result.events  # builds every record of the story

    cases: dict[str, Callable[[], object]] = {
        "direct function call": lambda: handler(EVENT),
        "reference bus (dict of lists)": lambda: reference.dispatch(EVENT),
        "queue bus (Cosmic Python style)": lambda: queue_bus.dispatch(EVENT),
        "eda_lesson dispatch": lambda: bus.dispatch(EVENT),
        "eda_lesson dispatch + full story read": eda_full_story,
    }
    cases.update(peer_cases())
    return cases


def peer_cases() -> dict[str, Callable[[], object]]:
    cases: dict[str, Callable[[], object]] = {}
    try:
        import blinker

        signal = blinker.Signal()
        signal.connect(handler, weak=False)
        cases["blinker Signal.send"] = lambda: signal.send(EVENT)
    except ImportError:
        pass
    try:
        import pyee

        emitter = pyee.EventEmitter()
        emitter.on("order_paid", handler)
        cases["pyee EventEmitter.emit"] = lambda: emitter.emit("order_paid", EVENT)
    except ImportError:
        pass
    try:
        from pubsub import pub

        pub.subscribe(_pubsub_listener, "order_paid")
        cases["PyPubSub sendMessage"] = lambda: pub.sendMessage("order_paid", event=EVENT)
    except ImportError:
        pass
    return cases


def _pubsub_listener(event: object) -> None:
    """PyPubSub keeps weak references: a module-level function stays alive."""


def ten_handler_cases() -> dict[str, Callable[[], object]]:
    reference, bus = ReferenceBus(), EventBus()
    for _ in range(10):
        # ten distinct functions, so the bus does not merge them as one re-registered handler
        reference.register(OrderPaid, _fresh_handler())
        bus.register(OrderPaid, _fresh_handler())
    return {
        "reference bus, 10 handlers": lambda: reference.dispatch(EVENT),
        "eda_lesson, 10 handlers": lambda: bus.dispatch(EVENT),
    }


def _fresh_handler() -> Callable[[object], None]:
    def handle(event: object) -> None:
        pass

    return handle


def command_cases() -> dict[str, Callable[[], object]]:
    """A command with its one handler, whose answer the caller reads."""
    reference, bus = ReferenceBus(), EventBus()
    reference.register(PayOrder, handler)
    bus.register(PayOrder, answer)
    return {
        "reference bus, one handler": lambda: reference.dispatch(COMMAND),
        "eda_lesson command, answer read": lambda: bus.dispatch(COMMAND).returned,
    }


def answer(command: object) -> str:
    return "paid"


def cascade_cases() -> dict[str, Callable[[], object]]:
    """Three levels: OrderPaid -> ReceiptSent -> ShipmentRequested, one handler each."""
    reference, queue_bus, bus = ReferenceBus(), QueueBus(), EventBus()
    reference.register(OrderPaid, lambda e: reference.dispatch(ReceiptSent(e.order_id)))  # type: ignore[attr-defined]
    reference.register(ReceiptSent, lambda e: reference.dispatch(ShipmentRequested(e.order_id)))  # type: ignore[attr-defined]
    reference.register(ShipmentRequested, handler)
    for target in (queue_bus, bus):
        target.register(OrderPaid, lambda e: ReceiptSent(e.order_id))  # type: ignore[attr-defined]
        target.register(ReceiptSent, lambda e: ShipmentRequested(e.order_id))  # type: ignore[attr-defined]
        target.register(ShipmentRequested, handler)
    return {
        "reference bus, 3-level cascade (nested calls)": lambda: reference.dispatch(EVENT),
        "queue bus, 3-level cascade": lambda: queue_bus.dispatch(EVENT),
        "eda_lesson, 3-level cascade": lambda: bus.dispatch(EVENT),
    }


def print_table(title: str, results: dict[str, float], reference: str) -> None:
    print(f"\n{title}")
    print(f"{'case':48} {'ns/dispatch':>12} {'x reference':>12}")
    for name, ns in results.items():
        print(f"{name:48} {ns:12.0f} {ns / results[reference]:12.2f}")


def main(argv: list[str] | None = None) -> None:
    rounds, loops = parse_arguments((__doc__ or "").splitlines()[0], argv)
    print_setting(rounds, loops)
    print_table(
        "One handler", measure(one_handler_cases(), rounds, loops), "reference bus (dict of lists)"
    )
    print_table(
        "Ten handlers", measure(ten_handler_cases(), rounds, loops), "reference bus, 10 handlers"
    )
    print_table("Command", measure(command_cases(), rounds, loops), "reference bus, one handler")
    print_table(
        "Cascade",
        measure(cascade_cases(), rounds, loops),
        "reference bus, 3-level cascade (nested calls)",
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
