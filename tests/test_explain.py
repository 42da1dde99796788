""" "Why was my handler not called?": the bus answers for every reason it knows, with the fix."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eda_lesson import Command, EventBus
from eda_lesson.core.asyncbus import AsyncEventBus
from eda_lesson.core.explain import REASONS
from eda_lesson.core.middleware import idempotent
from eda_lesson.shop.events import OrderCancelled, OrderCreated, OrderEvent, OrderPaid


def send_receipt(event: OrderPaid) -> None: ...


def restock(event: OrderCancelled) -> None: ...


@dataclass(frozen=True)
class Refund(Command):
    order_id: str


def refund(command: Refund) -> None: ...


def other_refund(command: Refund) -> None: ...


def test_a_registered_handler_is_called_and_said_so() -> None:
    bus = EventBus()
    bus.register(OrderPaid, send_receipt)
    why = bus.explain(OrderPaid("o-1", 1.0), send_receipt)
    assert why.called and why.reason == "called"
    assert str(why) == "send_receipt is called for OrderPaid."


def test_a_handler_for_a_base_class_is_called_and_the_base_is_named() -> None:
    bus = EventBus()
    bus.register(OrderEvent, send_receipt)
    why = bus.explain(OrderPaid, send_receipt)
    assert why.called and "registered for OrderEvent, a base class" in why.text


def test_a_handler_never_registered_gets_the_register_line() -> None:
    bus = EventBus()
    bus.register(OrderPaid, restock)
    why = bus.explain(OrderPaid, send_receipt)
    assert not why.called and why.reason == "not registered"
    assert "OrderPaid is heard by restock" in why.text
    assert why.text.endswith("bus.register(OrderPaid, send_receipt)")


def test_a_handler_registered_for_another_type_says_which() -> None:
    bus = EventBus()
    bus.register(OrderCancelled, send_receipt)
    bus.register(OrderCreated, send_receipt)
    why = bus.explain(OrderPaid, send_receipt)
    assert why.reason == "other type" and "OrderCancelled, OrderCreated only" in why.text


def test_a_different_function_with_the_same_name_replaced_the_one_asked_about() -> None:
    """Two cells both defining ``notify``: the second registration replaces the first."""
    bus = EventBus()
    namespace: dict[str, object] = {}
    exec("def notify(event):\n    return 'first'", {"__name__": "cell"}, namespace)
    first = namespace["notify"]
    exec("def notify(event):\n    return 'second'", {"__name__": "cell"}, namespace)
    second = namespace["notify"]
    bus.register(OrderPaid, first)  # type: ignore[arg-type]
    bus.register(OrderPaid, second)  # type: ignore[arg-type]
    assert bus.explain(OrderPaid, first).reason == "replaced"  # type: ignore[arg-type]
    assert "the bus calls the newest definition" in bus.explain(OrderPaid, first).text  # type: ignore[arg-type]
    assert bus.explain(OrderPaid, second).called  # type: ignore[arg-type]
    assert [action for action, _ in bus.removed] == ["replaced"]


def test_an_unregistered_handler_is_said_to_be_unregistered() -> None:
    bus = EventBus()
    bus.register(OrderPaid, send_receipt)
    bus.unregister(OrderPaid, send_receipt)
    why = bus.explain(OrderPaid("o-1", 1.0), send_receipt)
    assert why.reason == "unregistered" and "Register it again" in why.text


def test_a_command_names_its_one_handler() -> None:
    bus = EventBus()
    bus.register(Refund, refund)
    why = bus.explain(Refund("o-1"), other_refund)
    assert why.reason == "command has another handler"
    assert "exactly one handler, refund." in why.text


def test_a_handler_behind_skipping_middleware_is_called_but_may_be_skipped() -> None:
    bus = EventBus()
    bus.register(OrderPaid, send_receipt, middleware=[idempotent()])
    why = bus.explain(OrderPaid, send_receipt)
    assert why.called and why.reason == "called, may be skipped" and "Idempotent" in why.text


def test_a_handler_can_be_named_by_a_string() -> None:
    bus = EventBus()
    bus.register(OrderPaid, send_receipt)
    assert bus.explain(OrderPaid, "send_receipt").called
    assert bus.explain(OrderPaid, "test_explain.send_receipt").called
    assert bus.explain(OrderPaid, "ship").reason == "not registered"


def test_the_async_bus_explains_the_same_way() -> None:
    async def notify(event: OrderPaid) -> None: ...

    bus = AsyncEventBus()
    bus.register(OrderCancelled, notify)
    assert bus.explain(OrderPaid, notify).reason == "other type"


def test_every_reason_is_listed_and_only_these_are_given() -> None:
    assert len(REASONS) == len(set(REASONS)) == 7


def test_a_bus_remembers_a_bounded_number_of_removals() -> None:
    from eda_lesson.core.bus import REMOVED_KEPT

    bus = EventBus()
    for _ in range(REMOVED_KEPT + 10):
        bus.register(OrderPaid, send_receipt)
        bus.unregister(OrderPaid, send_receipt)
    assert len(bus.removed) == REMOVED_KEPT


def test_explaining_a_class_that_cannot_be_dispatched_is_the_dispatch_error() -> None:
    with pytest.raises(TypeError):
        EventBus().explain(int, send_receipt)
