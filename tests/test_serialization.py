"""EventRegistry: events to JSON and back, versions, upcasting, and clear errors on bad data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import pickle
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson.patterns.serialization import (
    EventFormatError,
    EventRegistry,
    FutureEventVersionError,
    MalformedEventError,
    MissingUpcasterError,
    UnknownEventTypeError,
    UnregisteredEventError,
    UnwritableEventError,
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


# ---------------------------------------------------------------------- what we write we can read


class Pair(enum.Enum):
    """Members with tuple values: JSON gives them back as lists, which are no member."""

    LEFT = (1, 2)
    RIGHT = (3, 4)


@dataclass(frozen=True)
class Dated:
    on: dt.date
    at: dt.datetime | None = None
    code: int | str = 0
    amount: Decimal = Decimal(0)
    price: Decimal | str = ""
    size: Currency = Currency.EUR
    tags: tuple[str, ...] = ()
    names: list[str] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)
    item: LineItem = field(default_factory=lambda: LineItem("book"))
    pair: tuple[int, str] = (0, "")
    ratio: float = 0.0
    note: str | None = None


class Opaque(enum.Enum):
    """A member whose value JSON cannot hold at all."""

    ONLY = object()


@dataclass(frozen=True)
class Node:
    """A type that holds itself: a tree, not something a JSON object of fields can be."""

    name: str
    child: Node | None = None


class SpecialItem(LineItem):
    """A subclass of a nested field's class: reading would give back a plain LineItem."""


TODAY = dt.date(2024, 5, 1)

_UNREADABLE: dict[str, tuple[object, str]] = {
    "str in a float field": (OrderPaid("o-1", "42"), r"OrderPaid\.amount should be a number"),  # type: ignore[arg-type]
    "int in a str field": (
        OrderCreated(123, "c-7", 1.0),  # type: ignore[arg-type]
        r"OrderCreated\.order_id should be a string, got 123",
    ),
    "None in a str field": (
        OrderCreated("o-1", None, 1.0),  # type: ignore[arg-type]
        r"OrderCreated\.customer_id should be a string, got None",
    ),
    "bool in an int field": (
        OrderCreated("o-1", "c", 1.0, (LineItem("b", True),)),
        r"items\[\]\.quantity should be a whole number, got True",
    ),
    "nan in a float field": (OrderPaid("o-1", float("nan")), r"amount should be a finite number"),
    "infinity in a float field": (OrderPaid("o-1", float("inf")), "JSON has no NaN or infinity"),
    "a datetime in a date field": (
        Dated(dt.datetime(2024, 5, 1, 12, 30)),  # a datetime is a date subclass: typed fine
        r"Dated\.on should be a date, got the datetime .*pass its \.date\(\)",
    ),
    "a string in a datetime field": (
        Dated(TODAY, at="2024-05-01"),  # type: ignore[arg-type]
        r"Dated\.at should be a datetime, got str '2024-05-01'.*fromisoformat",
    ),
    "True in an int | str field": (Dated(TODAY, code=True), r"Dated\.code should be int \| str"),
    "a float in a Decimal field": (
        Dated(TODAY, amount=1.5),  # type: ignore[arg-type]
        r"Dated\.amount should be a Decimal, got float 1\.5.*Decimal\('19\.99'\)",
    ),
    "a Decimal that is not a number": (Dated(TODAY, amount=Decimal("NaN")), "equals nothing"),
    "text a Decimal | str union reads back as a Decimal": (
        Dated(TODAY, price="1.5"),
        r"Dated\.price: '1\.5' would be read back as Decimal\('1\.5'\)",
    ),
    "a plain value in an Enum field": (
        Dated(TODAY, size="EUR"),  # type: ignore[arg-type]
        r"Dated\.size should be a Currency member, got str 'EUR'",
    ),
    "a list in a tuple field": (
        Dated(TODAY, tags=["sale"]),  # type: ignore[arg-type]
        r"Dated\.tags should be a tuple \(it is read back as one\), got list.*tuple\(\.\.\.\)",
    ),
    "a tuple in a list field": (
        Dated(TODAY, names=("ada",)),  # type: ignore[arg-type]
        r"Dated\.names should be a list",
    ),
    "a non-str dict key": (
        Dated(TODAY, stock={1: 2}),  # type: ignore[dict-item]
        r"Dated\.stock has the key 1: JSON keys are strings",
    ),
    "a subclass in a nested field": (
        Dated(TODAY, item=SpecialItem("pen")),
        r"Dated\.item should be a LineItem exactly, got SpecialItem",
    ),
    "another class in a nested field": (
        Dated(TODAY, item=OrderPaid("o-1")),  # type: ignore[arg-type]
        r"Dated\.item should be a LineItem, got OrderPaid",
    ),
    "a short fixed tuple": (
        Dated(TODAY, pair=(1,)),  # type: ignore[arg-type]
        r"Dated\.pair should be a tuple of 2",
    ),
    "a lone surrogate in a field": (
        OrderPaid("o-\ud800"),
        r"OrderPaid\.order_id holds text that is not valid Unicode: the lone surrogate",
    ),
    "a lone surrogate deep inside": (
        Dated(TODAY, stock={"north\udcff": 1}),
        r"Dated\.stock \(a key\) holds text that is not valid Unicode",
    ),
    "an int too long for JSON text": (
        Dated(TODAY, code=10**5000),
        "JSON refused a value",
    ),
}


@pytest.fixture
def dated() -> EventRegistry:
    return EventRegistry.of(OrderCreated, OrderPaid, Dated)


@pytest.mark.parametrize("case", sorted(_UNREADABLE))
def test_writing_refuses_what_reading_would_refuse_and_names_the_field(
    dated: EventRegistry, case: str
) -> None:
    event, problem = _UNREADABLE[case]
    with pytest.raises(UnwritableEventError, match=problem) as caught:
        dated.to_json(event)
    assert "Nothing was written" in str(caught.value)
    assert caught.value.event_type == type(event).__name__
    assert isinstance(caught.value, TypeError)  # a wrong value, like any call with one


def test_the_values_the_refusals_above_differ_from_are_written_and_read_back(
    dated: EventRegistry,
) -> None:
    fine = [
        OrderPaid("o-1", 42),  # an int is a number
        Dated(TODAY, at=dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), code="x"),
        Dated(TODAY, code=7, amount=Decimal("Infinity"), price=Decimal("1.5"), tags=("sale",)),
        Dated(TODAY, price="cheap", size=Currency.GBP, stock={"north": 3}, pair=(1, "a")),
        Dated(TODAY, names=["ada"], item=LineItem("pen", 2), ratio=-0.0, note="Zoë 🙂"),
    ]
    for event in fine:
        assert dated.from_json(*dated.to_json(event)) == event


def test_an_enum_whose_values_json_changes_is_refused_at_registration() -> None:
    @dataclass(frozen=True)
    class Sided:
        side: Pair

    with pytest.raises(TypeError, match=r"Sided\.side: Pair\.LEFT has the value \(1, 2\)"):
        EventRegistry().register(Sided)

    @dataclass(frozen=True)
    class Hidden:
        what: Opaque | None = None

    with pytest.raises(TypeError, match=r"give the members of .*Opaque str, int or float"):
        EventRegistry().register(Hidden)


def test_initvar_fields_recursive_types_and_bad_names_are_refused_at_registration() -> None:
    @dataclass(frozen=True)
    class Scaled:
        raw: int
        scale: InitVar[int] = 1

    with pytest.raises(TypeError, match=r"InitVar fields \(scale\) .*cannot be stored"):
        EventRegistry().register(Scaled)

    with pytest.raises(TypeError, match=r"Node\.child: Node holds itself"):
        EventRegistry().register(Node)
    with pytest.raises(ValueError, match="non-empty string of valid text"):
        EventRegistry().register(OrderPaid, name="Paid\ud800")


def test_reading_refuses_lone_surrogates_and_non_finite_numbers_as_writing_does(
    registry: EventRegistry,
) -> None:
    escaped = '{"order_id": "o-\\ud800", "amount": 1}'
    with pytest.raises(MalformedEventError, match=r"OrderPaid\.order_id holds text that is not"):
        registry.from_json("OrderPaid", 1, escaped)
    with pytest.raises(MalformedEventError, match="not valid Unicode"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-\ud800"}')  # a raw one
    with pytest.raises(MalformedEventError, match="not valid Unicode"):
        registry.from_json("OrderPaid", 1, escaped.encode())
    with pytest.raises(MalformedEventError, match="NaN is not a number JSON allows"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1", "amount": NaN}')
    with pytest.raises(MalformedEventError, match=r"amount should be a finite number, got inf"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1", "amount": 1e999}')
    # A surrogate pair spelled as two escapes is one valid character, and reads fine.
    assert registry.from_json("OrderPaid", 1, '{"order_id": "\\ud83d\\ude00"}').order_id == "😀"


def test_unusual_but_valid_payloads_take_the_long_way_and_still_read(
    registry: EventRegistry,
) -> None:
    expected = OrderPaid("o-1", 2.5)
    for payload in (
        ' {"order_id": "o-1", "amount": 2.5}\n',  # blanks around it
        '{"order_id": "o\\u002d1", "amount": 2.5}',  # an escape
        b'{"order_id": "o-1", "amount": 2.5}',  # bytes, as some brokers hand them over
    ):
        assert registry.from_json("OrderPaid", 1, payload) == expected


def test_broken_json_of_every_kind_is_malformed_never_another_error(
    registry: EventRegistry,
) -> None:
    for payload in ("", "{", "[" * 100_000, '{"order_id": "o-1"} x', "null", '"text"', 12):
        with pytest.raises(MalformedEventError):
            registry.from_json("OrderPaid", 1, payload)  # type: ignore[arg-type]


def test_fields_left_out_for_their_defaults_are_still_checked(registry: EventRegistry) -> None:
    assert registry.from_json("OrderPaid", 1, '{"order_id": "o-1"}') == OrderPaid("o-1")
    with pytest.raises(MalformedEventError, match=r"OrderPaid\.order_id should be a string"):
        registry.from_json("OrderPaid", 1, '{"order_id": 7}')
    with pytest.raises(MalformedEventError, match="does not have: amout"):
        registry.from_json("OrderPaid", 1, '{"order_id": "o-1", "amout": 1}')  # same count


# -- the round trip as properties: anything written reads back equal, and the reverse

_surrogates = st.characters(categories=["Cs"])
_any_text = st.text(max_size=6) | st.tuples(
    st.text(max_size=3), _surrogates, st.text(max_size=3)
).map("".join)
_zones = st.none() | st.builds(
    dt.timezone, st.timedeltas(-dt.timedelta(hours=23, minutes=59), dt.timedelta(hours=23))
)
_decimals = st.decimals(allow_nan=False)
_line_items = st.builds(LineItem, st.text(max_size=5), st.integers(-(2**70), 2**70))
_plain_values = st.none() | st.booleans() | st.integers() | st.floats() | _any_text
# One of each kind a field can hold, chosen evenly, so that every kind meets every field.
_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    _any_text,
    st.decimals(),
    st.datetimes(timezones=_zones),
    st.dates(),
    st.sampled_from(Currency),
    _line_items,
    st.lists(_plain_values, max_size=3),
    st.lists(_plain_values, max_size=3).map(tuple),
    st.lists(_line_items, max_size=2).map(tuple),
    st.dictionaries(_any_text | st.integers(), _plain_values, max_size=3),
    # text another type would read as its own: "1.5", "2024-05-01", "EUR"
    st.decimals().map(str) | st.dates().map(str) | st.sampled_from([c.value for c in Currency]),
)
_valid_fields: dict[str, st.SearchStrategy[Any]] = {
    "on": st.dates(),
    "at": st.none() | st.datetimes(timezones=_zones),
    "code": st.integers() | st.text(),
    "amount": _decimals,
    "price": _decimals,  # a string here might be read back as a Decimal: see above
    "size": st.sampled_from(Currency),
    "tags": st.lists(st.text(), max_size=3).map(tuple),
    "names": st.lists(st.text(), max_size=3),
    "stock": st.dictionaries(st.text(), st.integers(), max_size=3),
    "item": _line_items,
    "pair": st.tuples(st.integers(), st.text()),
    "ratio": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
    "note": st.none() | st.text(),
}
well_typed = st.builds(Dated, **_valid_fields)


@st.composite
def one_field_off(draw: st.DrawFn) -> Dated:
    """A well-typed event with one field holding anything at all (with more, the first
    refused field would hide whether the others are checked)."""
    event = draw(well_typed)
    name = draw(st.sampled_from(sorted(_valid_fields)))
    return dataclasses.replace(event, **{name: draw(_anything)})


@given(well_typed)
def test_every_well_typed_event_is_written_and_read_back_equal(event: Dated) -> None:
    registry = EventRegistry.of(Dated)
    assert registry.from_json(*registry.to_json(event)) == event


@settings(max_examples=1000)  # every field meets every kind of value several times
@given(one_field_off())
def test_whatever_to_json_accepts_from_json_gives_back_equal(event: Dated) -> None:
    registry = EventRegistry.of(Dated)
    try:
        written = registry.to_json(event)
    except UnwritableEventError:
        return
    back = registry.from_json(*written)
    assert back == event
    assert type(back.code) is type(event.code) and type(back.tags) is tuple


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=500)
@given(
    well_typed,
    st.dictionaries(st.sampled_from(sorted(_valid_fields)), _json_values, min_size=1, max_size=1),
)
def test_whatever_from_json_accepts_to_json_writes_back(
    event: Dated, changes: dict[str, Any]
) -> None:
    registry = EventRegistry.of(Dated)
    name, version, payload = registry.to_json(event)
    try:
        mangled = json.dumps({**json.loads(payload), **changes})
    except UnicodeEncodeError:  # json.dumps itself cannot write a lone surrogate key
        return
    try:
        read = registry.from_json(name, version, mangled)
    except MalformedEventError:
        return
    assert registry.from_json(*registry.to_json(read)) == read


# ---------------------------------------------------------------------- read what was written, only


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ('{"order_id":"o-1","amount":1.0,"order_id":"o-2"}', "order_id"),
        ('{"order_id":"o-1","amount":1.0,"amount":2.0}', "amount"),
        (b'{"order_id":"o-1","order_id":"o-1","amount":1.0}', "order_id"),  # same value twice
        (
            '{"order_id":"o-1","customer_id":"c","total":1.0,'
            '"items":[{"sku":"a","quantity":1,"sku":"b"}]}',
            "sku",
        ),  # nested, in a line item
    ],
)
def test_a_key_given_twice_is_refused_instead_of_keeping_the_last(
    payload: str | bytes, key: str
) -> None:
    registry = EventRegistry.of(OrderCreated, OrderPaid)
    name = "OrderCreated" if "customer_id" in str(payload) else "OrderPaid"
    with pytest.raises(MalformedEventError, match=f"the key '{key}' appears twice in one object"):
        registry.from_json(name, 1, payload)


def test_the_same_keys_once_each_are_read_as_before() -> None:
    registry = EventRegistry.of(OrderPaid)
    assert registry.from_json("OrderPaid", 1, '{"amount":1.0,"order_id":"o-1"}') == OrderPaid(
        "o-1", 1.0
    )


@dataclass(frozen=True)
class Charged:
    order_id: str
    amount: float


@pytest.mark.parametrize(
    ("upcast", "problem"),
    [
        (lambda old: {**old, "amount": float("nan")}, "ValueError"),
        (lambda old: {**old, "amount": float("inf")}, "ValueError"),
        (lambda old: {"order_id": "o-\ud800", "amount": 1.0}, "lone surrogate"),
        (lambda old: {"order_id": "o-1", "amount": 1.0, "seen": {1, 2}}, "TypeError"),
    ],
)
def test_what_an_upcaster_returns_must_be_writable_too(
    upcast: Callable[[dict[str, Any]], dict[str, Any]], problem: str
) -> None:
    registry = EventRegistry()
    registry.register(Charged, version=2)
    registry.upcaster("Charged", 1, upcast)
    with pytest.raises(
        MalformedEventError, match="the upcasters from v1 returned fields"
    ) as caught:
        registry.from_json("Charged", 1, '{"order_id":"o-1"}')
    assert problem in str(caught.value) and "fix the upcaster" in str(caught.value)


def test_a_good_upcaster_still_reads_and_what_it_reads_writes_back() -> None:
    registry = EventRegistry()
    registry.register(Charged, version=2)
    registry.upcaster(
        "Charged", 1, lambda old: {"order_id": old["order_id"], "amount": old["cents"] / 100}
    )
    event = registry.from_json("Charged", 1, '{"order_id":"o-\u00e9","cents":250}')
    assert event == Charged("o-\u00e9", 2.5)
    assert registry.from_json(*registry.to_json(event)) == event
