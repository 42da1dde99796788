"""Sagas that cannot hang or lose a command: deadlines on the clock, commands in the outbox.

A step whose answer never comes is asked again and then given up as the state's deadline
says (into the step's failure and its compensation, or flagged for a person after the pivot);
with the outbox, a command is saved with the saga's move, so a crash only delays it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eda_lesson.core.clock import VirtualClock
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    FulfilmentRetried,
    FulfilmentStalled,
    OrchestratedFulfilment,
    OutboxFulfilment,
    fulfilment_registry,
)

BOOK = [LineItem("book", 1)]


def _orchestrated(clock: VirtualClock) -> OrchestratedFulfilment:
    return OrchestratedFulfilment(stock={"book": 2}, clock=clock)


def test_an_unanswered_payment_is_asked_again_then_given_up_and_compensated() -> None:
    clock = VirtualClock()
    shop = _orchestrated(clock)
    shop.payments.unanswered.add("o-1")
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    saga = shop.saga("o-1")
    assert (saga.state, saga.due_at, saga.attempts) == ("awaiting payment", 60.0, 1)
    assert shop.check_deadlines() == []  # not late yet
    for attempt, now in ((2, 60), (3, 120)):
        clock.advance(60)
        shop.check_deadlines()
        saga = shop.saga("o-1")
        assert (saga.state, saga.attempts, saga.due_at) == ("awaiting payment", attempt, now + 60)
    clock.advance(60)
    shop.check_deadlines()
    saga = shop.saga("o-1")
    assert saga.state == "cancelled" and "no answer in 'awaiting payment' after 3 tries" in (
        saga.reason
    )
    assert shop.order("o-1").status == "cancelled" and shop.warehouse.inventory.stock == {"book": 2}
    assert shop.payments.received == {}
    retried = [s.event for s in shop.store.read("fulfilment-o-1") if s.type_name.endswith("ied")]
    assert retried == [
        FulfilmentRetried("o-1", "awaiting payment", 2, 120.0),
        FulfilmentRetried("o-1", "awaiting payment", 3, 180.0),
    ]


def test_an_answer_to_a_repeated_request_moves_the_saga_on_and_charges_once() -> None:
    clock = VirtualClock()
    shop = _orchestrated(clock)
    shop.payments.unanswered.add("o-1")
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    clock.advance(60)
    shop.payments.unanswered.clear()  # the network is back
    shop.check_deadlines()
    assert shop.saga("o-1").state == "shipped" and shop.payments.received == {"o-1": 12.0}
    clock.advance(600)
    assert shop.check_deadlines() == []  # a finished saga waits for nothing


def test_a_saga_whose_answers_come_never_acts_on_the_clock() -> None:
    clock = VirtualClock()
    shop = _orchestrated(clock)
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    clock.advance(10_000)
    assert shop.check_deadlines() == [] and shop.saga("o-1").state == "shipped"


def test_after_the_pivot_an_unanswered_step_is_flagged_for_a_person_not_undone() -> None:
    """The money is taken: shipping that never answers is asked again, then the saga is
    flagged as stalled and left alone (no automatic refund)."""
    clock = VirtualClock()
    shop = _orchestrated(clock)
    shipped = []
    shop.shipping.ship = lambda order_id: shipped.append(order_id) or ""  # type: ignore[method-assign]
    shop._ship = lambda order_id: shipped.append(order_id)  # type: ignore[method-assign]
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert shop.saga("o-1").state == "awaiting shipment"
    clock.advance(120)
    shop.check_deadlines()
    clock.advance(120)
    shop.check_deadlines()
    saga = shop.saga("o-1")
    assert saga.stalled == "no answer in 'awaiting shipment' after 2 tries"
    assert saga.state == "awaiting shipment" and "stalled" in repr(saga)
    assert shipped == ["o-1", "o-1"] and shop.order("o-1").status == "paid"
    clock.advance(1_000)
    assert shop.check_deadlines() == []
    stalled = [s.event for s in shop.store.read("fulfilment-o-1") if s.type_name.endswith("led")]
    assert stalled == [FulfilmentStalled("o-1", "awaiting shipment", saga.stalled)]


def test_a_repeated_reserve_request_reserves_once() -> None:
    shop = _orchestrated(VirtualClock())
    first = shop.warehouse.reserve("o-1", tuple(BOOK))
    again = shop.warehouse.reserve("o-1", tuple(BOOK))
    assert first == again and shop.warehouse.inventory.stock == {"book": 1}


# ---------------------------------------------------------------------- through the outbox


def test_with_the_outbox_every_command_is_saved_with_the_sagas_move(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "f.db", fulfilment_registry())
    shop = OutboxFulfilment(store, {"book": 2}, clock=VirtualClock())
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    shop.deliver()
    types = [s.type_name for s in store.read("fulfilment-o-1")]
    assert types == [
        "FulfilmentStarted", "ReserveStock",
        "FulfilmentAdvanced", "ChargePayment",
        "FulfilmentAdvanced", "RequestShipment",
        "FulfilmentAdvanced",
    ]  # fmt: skip
    assert shop.order("o-1").status == "shipped" and shop.outbox.counts()[1] == 0


def test_a_process_that_dies_after_the_saga_asked_loses_no_command(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    first = OutboxFulfilment(SQLiteEventStore(path, fulfilment_registry()), {"book": 2})
    first.place_order("o-1", "c-7", BOOK, total=12.0)
    first.relay.publish_batch()  # OrderCreated reached the saga, which asked for stock...
    assert first.saga("o-1").sent == ["ReserveStock"] and first.warehouse.inventory.reserved == {}
    # ...and the process died before the relay sent the request. A new one starts:
    second = OutboxFulfilment(SQLiteEventStore(path, fulfilment_registry()), {"book": 2})
    second.deliver()
    assert second.order("o-1").status == "shipped" and second.warehouse.inventory.stock == {
        "book": 1
    }


def test_with_the_outbox_a_deadline_resends_through_the_outbox_too(tmp_path: Path) -> None:
    clock = VirtualClock()
    store = SQLiteEventStore(tmp_path / "f.db", fulfilment_registry())
    shop = OutboxFulfilment(store, {"book": 2}, clock=clock)
    shop.payments.unanswered.add("o-1")
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    shop.deliver()
    for _ in range(3):
        clock.advance(60)
        shop.check_deadlines()
    saga = shop.saga("o-1")
    assert saga.sent == [
        "ReserveStock", "ChargePayment", "ChargePayment", "ChargePayment",
        "ReleaseStock", "CancelOrder",
    ]  # fmt: skip
    assert saga.state == "cancelled" and shop.outbox.counts()[1] == 0


# ---------------------------------------------------------------------- the data


def test_the_fulfilment_machine_states_its_deadlines() -> None:
    text = FULFILMENT.describe()
    assert "awaiting payment: wait 60 s, ask 2 more times, then PaymentFailed" in text
    assert "awaiting shipment: wait 120 s, ask 1 more time, then flag for a person" in text


def test_a_deadline_that_cannot_be_kept_is_refused_when_the_machine_is_built() -> None:
    step = (Transition("a", "Done", "b"),)
    with pytest.raises(ValueError, match="not a state"):
        StateMachine("m", "a", step, deadlines=(("c", Deadline(1)),))
    with pytest.raises(ValueError, match="no transition leaves 'a' on that trigger"):
        StateMachine("m", "a", step, deadlines=(("a", Deadline(1, gives_up_as="Failed")),))
    with pytest.raises(ValueError, match="positive number of seconds"):
        Deadline(0)
    with pytest.raises(ValueError, match="whole number"):
        Deadline(1, retries=-1)


def test_a_process_without_a_clock_sets_no_deadline_and_says_how_to_get_one() -> None:
    shop = OrchestratedFulfilment(stock={"book": 2})
    shop.payments.unanswered.add("o-1")
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    assert shop.saga("o-1").due_at is None
    with pytest.raises(ValueError, match=r"clock=WallClock\(\)"):
        shop.check_deadlines()


def test_a_wall_clock_tells_calendar_time() -> None:
    import time

    from eda_lesson.core.clock import WallClock

    before = time.time()
    assert before <= WallClock().now() <= time.time() and repr(WallClock()) == "WallClock()"


def test_a_stalled_compensation_sent_again_by_a_person_moves_on_and_is_no_longer_stalled() -> None:
    from eda_lesson.shop.fulfilment import ReleaseStock

    clock = VirtualClock()
    shop = _orchestrated(clock)
    shop.payments.declined.add("o-1")
    release = shop.warehouse.release

    def warehouse_down(order_id: str, reason: str = "") -> None:
        raise ConnectionError("the warehouse does not answer")

    shop.warehouse.release = warehouse_down  # type: ignore[assignment,method-assign]
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    for _ in range(4):
        clock.advance(30)
        shop.check_deadlines()
    assert shop.saga("o-1").stalled and shop.warehouse.inventory.stock == {"book": 1}
    # Each re-send reached the warehouse and failed: kept, not raised, so other sagas' sends go on
    assert [(type(c).__name__, type(e).__name__) for c, e in shop.failed_sends] == [
        ("ReleaseStock", "ConnectionError")
    ] * 3
    shop.warehouse.release = release  # type: ignore[method-assign]
    shop.bus.dispatch(ReleaseStock("o-1", shop.saga("o-1").reason))
    saga = shop.saga("o-1")
    assert (saga.state, saga.stalled) == ("cancelled", "")
    assert shop.warehouse.inventory.stock == {"book": 2}


def test_a_failing_resend_does_not_stop_the_next_sagas_resend() -> None:
    clock = VirtualClock()
    shop = OrchestratedFulfilment(stock={"book": 2}, clock=clock)
    shop.payments.unanswered.update({"o-1", "o-2"})
    shop.place_order("o-1", "c-7", BOOK, total=12.0)
    shop.place_order("o-2", "c-8", BOOK, total=12.0)
    charge = shop.payments.charge

    def gateway_down_for_o1(order_id: str, amount: float) -> bool:
        if order_id == "o-1":
            raise ConnectionError("the gateway does not answer")
        return charge(order_id, amount)

    shop.payments.charge = gateway_down_for_o1  # type: ignore[method-assign]
    shop.payments.unanswered.clear()
    clock.advance(60)
    sent = shop.check_deadlines()  # o-1's saga is the older one: its re-send fails first
    assert [result.message.order_id for result in sent] == ["o-2"]  # type: ignore[attr-defined]
    assert [command.order_id for command, _ in shop.failed_sends] == ["o-1"]  # type: ignore[attr-defined]
    assert shop.saga("o-2").state == "shipped" and shop.saga("o-1").state == "awaiting payment"


_ONE_STEP = (Transition("waiting", "Answered", "done"),)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Transition("a", "X", "b", sends=Deadline),
            "write sends='Deadline', not the class",
        ),
        (lambda: Transition("a", OrchestratedFulfilment, "b"), "trigger takes .* name, a str"),
        (lambda: Transition("a", "", "b"), "a non-empty str; got ''"),
        (lambda: Transition("a", "X", "b", compensating="yes"), "compensating is True or False"),
        (
            lambda: StateMachine("m", "waiting", _ONE_STEP, {"waiting": Deadline(5)}),  # type: ignore[arg-type]
            r"not a dict: write deadlines=\(\('waiting', Deadline\(...\)\),\)",
        ),
        (
            lambda: StateMachine("m", "waiting", _ONE_STEP, ("waiting", Deadline(5))),  # type: ignore[arg-type]
            "one bare pair: wrap it",
        ),
        (
            lambda: StateMachine("m", "waiting", _ONE_STEP, (Deadline(5),)),  # type: ignore[arg-type]
            r"each deadline is a \(state, Deadline\) pair",
        ),
        (
            lambda: StateMachine("m", "waiting", ("waiting", "Answered", "done")),  # type: ignore[arg-type]
            "transitions is a tuple of Transition",
        ),
    ],
)
def test_a_machine_built_the_wrong_shape_is_refused_naming_the_right_one(
    build: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "30"])
def test_a_deadline_is_a_finite_positive_number_of_seconds(seconds: object) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Deadline(seconds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retries is a whole number"):
        Deadline(5, retries=True)
    assert StateMachine("m", "waiting", _ONE_STEP, (("waiting", Deadline(5)),)).deadline(
        "waiting"
    ) == Deadline(5)
