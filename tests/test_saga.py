"""Order fulfilment: the process manager's state machine, its compensation, its state kept as
events; and the choreographed version reaching the same outcomes."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem, OrderCreated, OrderShipped
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    ChoreographedFulfilment,
    FulfilmentAdvanced,
    FulfilmentSaga,
    FulfilmentStarted,
    OrchestratedFulfilment,
    PaymentFailed,
    fulfilment_registry,
)

BOOK = [LineItem("book", 1)]

Fulfilment = type[OrchestratedFulfilment] | type[ChoreographedFulfilment]
BOTH = [OrchestratedFulfilment, ChoreographedFulfilment]


def event_names(result: object) -> list[str]:
    return [record.type_name for record in result.events]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- orchestration


def test_a_paid_order_is_reserved_charged_and_shipped() -> None:
    shop = OrchestratedFulfilment(stock={"book": 2})
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert result.ok
    assert event_names(result) == [
        "OrderCreated",
        "ReserveStock",
        "StockReserved",
        "ChargePayment",
        "OrderPaid",
        "RequestShipment",
        "OrderShipped",
    ]
    saga = shop.saga("o-1")
    assert (saga.state, saga.finished) == ("shipped", True)
    assert [t.trigger for t in saga.path] == [
        "OrderCreated",
        "StockReserved",
        "OrderPaid",
        "OrderShipped",
    ]
    assert shop.order("o-1").status == "shipped"
    assert shop.warehouse.inventory.stock == {"book": 1}
    assert shop.payments.received == {"o-1": 12.0}


def test_a_failed_payment_releases_the_stock_and_cancels_the_order() -> None:
    shop = OrchestratedFulfilment(stock={"book": 2})
    shop.payments.declined.add("o-1")
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert event_names(result)[4:] == [
        "PaymentFailed",
        "ReleaseStock",
        "StockReleased",
        "CancelOrder",
        "OrderCancelled",
    ]
    saga = shop.saga("o-1")
    assert saga.state == "cancelled"
    assert [t.target for t in saga.path if t.compensating] == ["releasing stock", "cancelling"]
    order = shop.order("o-1")
    assert (order.status, order.cancel_reason) == ("cancelled", "card declined for order o-1")
    assert shop.warehouse.inventory.stock == {"book": 2}
    assert shop.warehouse.inventory.reserved == {}
    assert shop.payments.received == {} and shop.shipping.shipped == []


def test_an_order_out_of_stock_is_cancelled_without_charging() -> None:
    shop = OrchestratedFulfilment(stock={"book": 0})
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert "ChargePayment" not in event_names(result)
    assert shop.saga("o-1").state == "cancelled"
    assert shop.order("o-1").cancel_reason == "order o-1 wants 1 x book, only 0 left"


def test_the_saga_state_is_kept_as_events_and_rebuilt_from_them(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    shop = OrchestratedFulfilment(
        stock={"book": 1}, store=SQLiteEventStore(path, fulfilment_registry())
    )
    shop.payments.decline_all = True
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    reopened = OrchestratedFulfilment(store=SQLiteEventStore(path, fulfilment_registry()))
    saga = reopened.saga("o-1")
    assert (saga.state, saga.reason) == ("cancelled", "card declined for order o-1")
    stored = [s.event for s in reopened.store.read("fulfilment-o-1")]
    assert stored[0] == FulfilmentStarted("o-1", 12.0, tuple(BOOK))
    assert [e.state for e in stored[1:] if isinstance(e, FulfilmentAdvanced)] == [
        "awaiting payment",
        "releasing stock",
        "cancelling",
        "cancelled",
    ]
    frames = FulfilmentSaga.history(stored)
    assert [saga.state for _, saga in frames][:2] == ["awaiting stock", "awaiting payment"]


def test_an_event_the_saga_does_not_expect_is_ignored_and_not_recorded() -> None:
    shop = OrchestratedFulfilment(stock={"book": 1})
    shop.payments.declined.add("o-1")
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    version = shop.store.version("fulfilment-o-1")
    assert shop.process.react(OrderShipped("o-1")) is None
    assert shop.process.react(PaymentFailed("o-9")) is None  # an order it never managed
    assert shop.store.version("fulfilment-o-1") == version
    with pytest.raises(LookupError, match="no fulfilment started for order 'o-9'"):
        shop.saga("o-9")


def test_every_handler_call_in_a_saga_run_succeeds_on_a_sqlite_store(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "shop.db", fulfilment_registry())
    shop = OrchestratedFulfilment(stock={"book": 3}, store=store)
    shop.payments.declined.add("o-2")
    results = [shop.place_order(f"o-{n}", "c-7", BOOK, total=5.0) for n in (1, 2, 3)]
    assert all(result.ok for result in results)
    assert [shop.saga(f"o-{n}").state for n in (1, 2, 3)] == ["shipped", "cancelled", "shipped"]
    assert repr(shop) == "OrchestratedFulfilment(Warehouse(book=1), 6 streams)"


# ---------------------------------------------------------------------- the state machine


def test_the_state_machine_is_data_a_drawing_can_use() -> None:
    assert FULFILMENT.states() == [
        "new",
        "awaiting stock",
        "awaiting payment",
        "cancelling",
        "awaiting shipment",
        "releasing stock",
        "shipped",
        "cancelled",
    ]
    assert FULFILMENT.final_states() == ["shipped", "cancelled"]
    assert ("awaiting payment", "releasing stock", "PaymentFailed / ReleaseStock") in (
        FULFILMENT.edges()
    )
    assert repr(FULFILMENT) == "StateMachine('order fulfilment': 8 states, 8 transitions)"
    assert "PaymentFailed--> releasing stock, sends ReleaseStock  (compensation)" in (
        FULFILMENT.describe()
    )


def test_every_state_is_reachable_and_every_trigger_is_a_registered_event() -> None:
    reachable, queue = {FULFILMENT.initial}, deque([FULFILMENT.initial])
    while queue:
        state = queue.popleft()
        for t in FULFILMENT.transitions:
            if t.source == state and t.target not in reachable:
                reachable.add(t.target)
                queue.append(t.target)
    assert reachable == set(FULFILMENT.states())
    assert set(FULFILMENT.triggers()) <= set(fulfilment_registry().names())


def test_each_state_has_at_most_one_transition_per_trigger() -> None:
    pairs = [(t.source, t.trigger) for t in FULFILMENT.transitions]
    assert len(pairs) == len(set(pairs))


# ---------------------------------------------------------------------- choreography


def test_choreography_has_no_commands_only_reactions() -> None:
    shop = ChoreographedFulfilment(stock={"book": 1})
    shop.payments.declined.add("o-1")
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert event_names(result) == [
        "OrderCreated",
        "StockReserved",
        "PaymentFailed",
        "StockReleased",
        "OrderCancelled",
    ]
    assert [call.name for call in result.calls] == [
        "ChoreographedFulfilment.reserve_stock",
        "ChoreographedFulfilment.charge_payment",
        "ChoreographedFulfilment.release_stock",
        "ChoreographedFulfilment.cancel_order",
    ]


@pytest.mark.parametrize(
    ("stock", "declined", "status"),
    [(2, False, "shipped"), (2, True, "cancelled"), (0, False, "cancelled")],
)
def test_orchestration_and_choreography_reach_the_same_outcome(
    stock: int, declined: bool, status: str
) -> None:
    outcomes = []
    for kind in BOTH:
        shop = kind(stock={"book": stock})
        shop.payments.decline_all = declined
        assert shop.place_order("o-1", "c-7", BOOK, total=12.0).ok
        outcomes.append(
            (
                shop.order("o-1").status,
                shop.warehouse.inventory.stock,
                shop.payments.received,
                shop.shipping.shipped,
            )
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == status


def test_participants_have_short_stable_reprs() -> None:
    shop = OrchestratedFulfilment(stock={"book": 2})
    shop.payments.declined.update({"o-9", "o-2"})
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert repr(shop.payments) == "PaymentGateway(declines o-2, o-9; received o-1=12)"
    assert repr(shop.warehouse) == "Warehouse(book=1)"
    assert repr(shop.saga("o-1")) == "FulfilmentSaga('o-1', state='shipped', version=4)"
    assert repr(shop.process) == "FulfilmentProcess('order fulfilment')"
    assert repr(ChoreographedFulfilment()) == "ChoreographedFulfilment(Warehouse(empty), 0 streams)"


# ---------------------------------------------------------------------- the saga's commands


@pytest.mark.parametrize("command", ["ReserveStock", "ChargePayment", "RequestShipment"])
def test_each_command_the_saga_sends_is_a_command_with_exactly_one_handler(command: str) -> None:
    import eda_lesson.shop.fulfilment as fulfilment
    from eda_lesson import Command

    command_type = getattr(fulfilment, command)
    assert issubclass(command_type, Command)
    shop = OrchestratedFulfilment(stock={"book": 1})
    with pytest.raises(ValueError, match="already has its handler"):
        shop.bus.register(command_type, lambda message: None)


def test_the_compensations_are_commands_too_and_the_cancellation_is_the_shops_own() -> None:
    from eda_lesson import Command
    from eda_lesson.shop import commands, fulfilment

    assert issubclass(fulfilment.ReleaseStock, Command)
    shop = OrchestratedFulfilment(stock={})  # nothing in stock: the saga asks to cancel
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    cancels = [r.event for r in result.events if r.type_name == "CancelOrder"]
    assert [type(c) for c in cancels] == [commands.CancelOrder]  # the shop's own command


def test_a_saga_command_with_no_participant_is_refused_not_lost() -> None:
    from eda_lesson import EventBus, UnhandledCommandError
    from eda_lesson.shop.fulfilment import FulfilmentProcess, ReserveStock

    bus = EventBus()
    process = FulfilmentProcess(OrchestratedFulfilment().store)
    bus.register(OrderCreated, process.react)
    result = bus.dispatch(OrderCreated("o-1", "c-7", 12.0, tuple(BOOK)))
    (error,) = result.errors.values()
    assert isinstance(error, UnhandledCommandError) and "ReserveStock" in str(error)
    with pytest.raises(UnhandledCommandError):
        bus.dispatch(ReserveStock("o-1", tuple(BOOK)))


def test_participants_answer_with_events_in_the_same_cascade_and_return_nothing() -> None:
    shop = OrchestratedFulfilment(stock={"book": 1})
    result = shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert "StockReserved" in event_names(result) and result.ok
    commands = [call.name for call in result.calls if "Fulfilment." in call.name]
    assert len(commands) == 3  # reserve, charge, ship: each answered without returning
    assert not result.returns  # a command handler's return value is an answer: none here
