"""EventRegistry: events to JSON and back, versions, upcasting, and clear errors on bad data."""

from __future__ import annotations

import datetime as dt
import enum
import json
import pickle
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eda_lesson.patterns.serialization import (
    EventFormatError,
    EventRegistry,
    FutureEventVersionError,
    MalformedEventError,
    MissingUpcasterError,
    UnknownEventTypeError,
    UnregisteredEventError,
)
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid


class Currency(enum.Enum):
    EUR = "EUR"
    GBP = "GBP"


@dataclass(frozen=True)
class PriceChanged:
    sku: str
    price: Decimal
    currency: Currency
    at: dt.datetime
    on: dt.date
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)
    pair: tuple[int, str] = (0, "")


@pytest.fixture
def registry() -> EventRegistry:
    return EventRegistry.of(OrderCreated, OrderPaid, OrderCancelled)


def test_to_json_gives_name_version_and_compact_payload(registry: EventRegistry) -> None:
    assert registry.to_json(OrderPaid("o-1", 42.0)) == (
        "OrderPaid",
        1,
        '{"order_id":"o-1","amount":42.0}',
    )


def test_nested_line_items_round_trip(registry: EventRegistry) -> None:
    event = OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2), LineItem("pen")))
    name, version, payload = registry.to_json(event)
    assert json.loads(payload)["items"] == [
        {"sku": "book", "quantity": 2},
        {"sku": "pen", "quantity": 1},
    ]
    back = registry.from_json(name, version, payload)
    assert back == event
    assert isinstance(back.items, tuple)
    assert isinstance(back.items[0], LineItem)


def test_decimals_enums_datetimes_and_containers_round_trip() -> None:
    registry = EventRegistry.of(PriceChanged)
    event = PriceChanged(
        "book",
        Decimal("19.990"),
        Currency.GBP,
        dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
        dt.date(2024, 5, 1),
        tags=["sale"],
        stock={"north": 3},
        pair=(2, "x"),
    )
    name, version, payload = registry.to_json(event)
    assert json.loads(payload)["price"] == "19.990"  # a string: no precision lost
    assert registry.from_json(name, version, payload) == event


def test_register_works_as_a_decorator_with_a_name_and_version() -> None:
    registry = EventRegistry()

    @registry.register(name="order.refunded", version=2)
    @dataclass(frozen=True)
    class Refunded:
        order_id: str

    assert registry.name_of(Refunded("o-1")) == "order.refunded"
    assert registry.version_of("order.refunded") == 2
    assert registry.class_of("order.refunded") is Refunded
    assert "order.refunded" in registry and Refunded in registry


def test_re_registering_a_rerun_class_replaces_the_old_one() -> None:
    registry = EventRegistry()

    def define() -> type:
        @dataclass(frozen=True)
        class Pinged:
            n: int

        return Pinged

    first, second = define(), define()
    registry.register(first)
    registry.register(second)
    assert len(registry) == 1
    assert registry.class_of("Pinged") is second
    with pytest.raises(UnregisteredEventError):
        registry.to_json(first(1))


def test_a_name_taken_by_another_class_is_refused(registry: EventRegistry) -> None:
    @dataclass(frozen=True)
    class OrderPaid:  # same name, different class
        order_id: str

    taken = r"already registered for eda_lesson\.shop\.events\.OrderPaid"
    with pytest.raises(ValueError, match=taken):
        registry.register(OrderPaid)


def test_one_class_cannot_have_two_names(registry: EventRegistry) -> None:
    with pytest.raises(ValueError, match="already registered as 'OrderPaid'"):
        registry.register(OrderPaid, name="Paid")


def test_only_dataclasses_are_registered() -> None:
    class NotADataclass:
        pass

    with pytest.raises(TypeError, match=r"dataclass event class.*@dataclass\(frozen=True\)"):
        EventRegistry().register(NotADataclass)


def test_a_field_json_cannot_hold_is_refused_when_registering() -> None:
    @dataclass(frozen=True)
    class Tagged:
        tags: set[str]

    with pytest.raises(TypeError, match=r"Tagged\.tags: the type set\[str\] cannot be stored"):
        EventRegistry().register(Tagged)


def test_an_unregistered_event_cannot_be_written(registry: EventRegistry) -> None:
    @dataclass(frozen=True)
    class Unknown:
        x: int

    with pytest.raises(UnregisteredEventError, match=r"register it first: registry.register"):
        registry.to_json(Unknown(1))


def test_not_a_number_is_refused_when_writing(registry: EventRegistry) -> None:
    with pytest.raises(TypeError, match="cannot write"):
        registry.to_json(OrderPaid("o-1", float("nan")))


# ---------------------------------------------------------------------- bad data


def test_an_unknown_name_is_an_error_listing_the_known_ones(registry: EventRegistry) -> None:
    with pytest.raises(UnknownEventTypeError, match=r"'OrderRefunded'.*OrderCancelled, Order"):
        registry.from_json("OrderRefunded", 1, "{}")


def test_malformed_json_is_an_error(registry: EventRegistry) -> None:
    with pytest.raises(MalformedEventError, match="not valid JSON"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1",')


def test_json_that_is_not_an_object_is_an_error(registry: EventRegistry) -> None:
    with pytest.raises(MalformedEventError, match="JSON list, not an object"):
        registry.from_json("OrderPaid", 1, '["o-1", 42.0]')


def test_a_field_of_the_wrong_type_is_named(registry: EventRegistry) -> None:
    with pytest.raises(MalformedEventError, match=r"OrderPaid\.amount should be a number"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1", "amount": "lots"}')
    with pytest.raises(MalformedEventError, match=r"items\[\]\.quantity should be a whole"):
        registry.from_json(
            "OrderCreated",
            1,
            '{"order_id":"o","customer_id":"c","total":1,"items":[{"sku":"b","quantity":true}]}',
        )


def test_unknown_and_missing_fields_are_named(registry: EventRegistry) -> None:
    with pytest.raises(MalformedEventError, match="does not have: amout"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1", "amout": 1}')
    with pytest.raises(MalformedEventError, match="missing required fields: order_id"):
        registry.from_json("OrderPaid", 1, '{"amount": 1}')


def test_a_future_version_is_an_error_saying_to_upgrade(registry: EventRegistry) -> None:
    with pytest.raises(FutureEventVersionError, match="v3 was written by a newer program"):
        registry.from_json("OrderPaid", 3, '{"order_id": "o-1"}')


def test_every_format_error_is_a_value_error(registry: EventRegistry) -> None:
    for error in (UnknownEventTypeError, MalformedEventError, FutureEventVersionError):
        assert issubclass(error, EventFormatError) and issubclass(error, ValueError)


_MARKER: list[str] = []


class _Exploit:
    """Unpickling this would call _MARKER.append: proof that pickle ran."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_MARKER.append, ("unpickled!",))


def test_data_never_imports_or_unpickles_anything(registry: EventRegistry, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(UnknownEventTypeError):
        registry.from_json("os.system", 1, json.dumps({"command": f"touch {target}"}))
    with pytest.raises(UnknownEventTypeError):
        registry.from_json("eda_lesson.shop.OrderShipped", 1, '{"order_id": "o-1"}')
    with pytest.raises(MalformedEventError):
        registry.from_json("OrderPaid", 1, pickle.dumps(_Exploit()))
    assert _MARKER == []
    assert not target.exists()


# ---------------------------------------------------------------------- upcasting


def _order_placed_v3(registry: EventRegistry) -> type:
    @dataclass(frozen=True)
    class OrderPlaced:
        order_id: str
        total: Decimal
        currency: str

    registry.register(OrderPlaced, version=3)
    return OrderPlaced


def test_upcasters_run_step_by_step_to_the_current_version() -> None:
    registry = EventRegistry()
    placed = _order_placed_v3(registry)
    steps: list[int] = []

    @registry.upcaster("OrderPlaced", from_version=1)
    def total_as_string(payload: dict[str, Any]) -> dict[str, Any]:
        steps.append(1)
        return {**payload, "total": str(payload["total"])}

    @registry.upcaster("OrderPlaced", from_version=2)
    def add_currency(payload: dict[str, Any]) -> dict[str, Any]:
        steps.append(2)
        return {**payload, "currency": "EUR"}

    event = registry.from_json("OrderPlaced", 1, '{"order_id": "o-1", "total": 12.5}')
    assert event == placed("o-1", Decimal("12.5"), "EUR")
    assert steps == [1, 2]
    assert registry.from_json("OrderPlaced", 2, '{"order_id":"o","total":"1"}').currency == "EUR"
    assert steps == [1, 2, 2]
    assert "upcasts v1->v2, v2->v3" in registry.describe()


def test_a_missing_upcaster_step_is_named() -> None:
    registry = EventRegistry()
    _order_placed_v3(registry)
    registry.upcaster("OrderPlaced", 1, lambda payload: payload)
    with pytest.raises(MissingUpcasterError, match=r"no upcaster turns v2 into v3.*from_version=2"):
        registry.from_json("OrderPlaced", 1, '{"order_id": "o-1", "total": "1"}')


def test_a_failing_upcaster_is_reported_as_malformed_data() -> None:
    registry = EventRegistry()
    _order_placed_v3(registry)
    registry.upcaster("OrderPlaced", 1, lambda payload: {**payload, "total": payload["sum"]})
    registry.upcaster("OrderPlaced", 2, lambda payload: payload)
    with pytest.raises(MalformedEventError, match=r"upcaster from v1 to v2 failed.*KeyError"):
        registry.from_json("OrderPlaced", 1, '{"order_id": "o-1", "total": 1}')


def test_upcast_alone_shows_the_payload_a_notebook_can_print() -> None:
    registry = EventRegistry()
    _order_placed_v3(registry)
    registry.upcaster("OrderPlaced", 1, lambda payload: {**payload, "total": "1"})
    registry.upcaster("OrderPlaced", 2, lambda payload: {**payload, "currency": "EUR"})
    assert registry.upcast("OrderPlaced", 1, {"order_id": "o"}) == {
        "order_id": "o",
        "total": "1",
        "currency": "EUR",
    }


def test_repr_and_describe_are_short_and_stable(registry: EventRegistry) -> None:
    assert repr(registry) == "EventRegistry(3 event types)"
    assert registry.describe().splitlines()[1] == (
        "  OrderCancelled v1: eda_lesson.shop.events.OrderCancelled"
    )


# ---------------------------------------------------------------------- property

line_items = st.builds(LineItem, st.text(min_size=1), st.integers(-(2**53), 2**53))
orders = st.builds(
    OrderCreated,
    st.text(),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(line_items, max_size=4).map(tuple),
)


@given(orders)
def test_any_order_created_survives_the_round_trip(event: OrderCreated) -> None:
    registry = EventRegistry.of(OrderCreated)
    assert registry.from_json(*registry.to_json(event)) == event
