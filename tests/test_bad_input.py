"""Mistakes a learner makes get an error that names the problem and the fix, and lose nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eda_lesson import EventBus


@dataclass(frozen=True)
class OrderCreated:
    order_id: str


@dataclass(frozen=True)
class OrderPaid:
    order_id: str


def handle(event: OrderCreated) -> None: ...


def test_dispatch_of_a_class_says_to_create_an_instance() -> None:
    with pytest.raises(TypeError) as caught:
        EventBus().dispatch(OrderCreated)
    assert str(caught.value) == (
        "dispatch() takes an event instance, got the class OrderCreated; "
        "create one first: dispatch(OrderCreated(...))"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "got None"), ("OrderCreated", "got 'OrderCreated' (a str)"), (42, "got 42 (an int)")],
)
def test_dispatch_of_a_non_event_says_what_it_got(value: object, shown: str) -> None:
    with pytest.raises(TypeError, match="dispatch\\(\\) takes an event instance") as caught:
        EventBus().dispatch(value)
    assert shown in str(caught.value)
    assert "frozen dataclass" in str(caught.value)


def test_a_bad_dispatch_inside_a_handler_is_that_handlers_failure() -> None:
    bus, received = EventBus(), []

    def careless(event: OrderCreated) -> None:
        bus.dispatch(OrderPaid)  # the class, not an instance

    bus.register(OrderCreated, careless)
    bus.register(OrderCreated, received.append)
    result = bus.dispatch(OrderCreated("o-1"))
    assert received == [OrderCreated("o-1")]
    (failure,) = result.failures
    assert "got the class OrderPaid" in str(failure.error)


def test_register_with_an_instance_says_to_pass_the_class() -> None:
    with pytest.raises(TypeError, match="pass the class OrderCreated itself, not an instance"):
        EventBus().register(OrderCreated("o-1"), handle)  # type: ignore[arg-type]


def test_register_with_a_string_says_it_wants_a_class() -> None:
    with pytest.raises(TypeError, match="takes an event class, got 'OrderCreated' \\(a str\\)"):
        EventBus().register("OrderCreated", handle)  # type: ignore[arg-type]


def test_register_with_swapped_arguments_shows_the_right_order() -> None:
    with pytest.raises(TypeError, match="write register\\(OrderCreated, handle\\)"):
        EventBus().register(handle, OrderCreated)  # type: ignore[arg-type]


def test_register_of_something_not_callable() -> None:
    with pytest.raises(TypeError, match="handler must be callable, got 'send email' \\(a str\\)"):
        EventBus().register(OrderCreated, "send email")  # type: ignore[arg-type]


def test_register_of_a_handler_needing_what_nobody_provides_names_the_parameter() -> None:
    def two_args(event: OrderCreated, mailer: object) -> None: ...

    with pytest.raises(
        TypeError, match="needs 'mailer', which this bus does not provide"
    ) as caught:
        EventBus().register(OrderCreated, two_args)
    assert "EventBus(dependencies={'mailer': ...})" in str(caught.value)


def test_register_of_a_handler_that_takes_no_message() -> None:
    def no_args() -> None: ...

    with pytest.raises(TypeError, match="takes no message; a handler's first parameter is"):
        EventBus().register(OrderCreated, no_args)


def test_handlers_with_defaults_or_star_args_are_fine() -> None:
    bus = EventBus()

    def with_default(event: OrderCreated, retries: int = 3) -> None: ...

    def with_star(*args: object) -> None: ...

    bus.register(OrderCreated, with_default)
    bus.register(OrderCreated, with_star)
    assert bus.dispatch(OrderCreated("o-1")).ok


def test_subscribe_without_an_annotation_says_how_to_fix_it() -> None:
    def unannotated(event):  # type: ignore[no-untyped-def]
        ...

    with pytest.raises(TypeError) as caught:
        EventBus().subscribe(unannotated)
    message = str(caught.value)
    assert "cannot tell which event" in message and "'event' has no type annotation" in message
    assert "@bus.subscribe(OrderCreated)" in message


def test_subscribe_with_an_unresolvable_string_annotation() -> None:
    namespace: dict[str, object] = {}
    exec("def handle(event: 'NoSuchEvent') -> None: ...", namespace)
    with pytest.raises(TypeError, match=r"could not resolve the annotation .*NoSuchEvent"):
        EventBus().subscribe(namespace["handle"])


def test_subscribe_with_a_non_class_annotation() -> None:
    def handle_number(event: int | None) -> None: ...

    with pytest.raises(TypeError, match="is not an event class"):
        EventBus().subscribe(handle_number)


def test_failed_registration_leaves_the_bus_unchanged() -> None:
    bus = EventBus()
    bus.register(OrderCreated, handle)
    with pytest.raises(TypeError):
        bus.register(OrderCreated, 42)  # type: ignore[arg-type]
    assert bus.handlers_for(OrderCreated) == [handle]


def test_register_of_a_builtin_type_is_refused() -> None:
    with pytest.raises(TypeError, match="str is not an event class"):
        EventBus().register(str, handle)


def test_middleware_must_be_callable() -> None:
    with pytest.raises(TypeError, match="middleware must be a function"):
        EventBus().use("logging")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="middleware must be a function"):
        EventBus().register(OrderCreated, handle, middleware=[None])  # type: ignore[list-item]
