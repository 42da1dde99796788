"""The capstone's checks: each reference solution passes, and each plausible wrong answer
fails with its own message."""

from __future__ import annotations

from dataclasses import dataclass

from eda_lesson import Command
from eda_lesson.book.exercises import capstone_returns_and_refunds as check
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.patterns.event_methods import applies
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.saga import Deadline, StateMachine, Transition

DAY = check.DAY


def message(feedback: object) -> str:
    assert not feedback, feedback
    return str(feedback.message)  # type: ignore[attr-defined]


def test_every_reference_solution_passes_its_check() -> None:
    assert check.ex1(check.RequestReturn, check.request_return)
    assert check.ex2(check.ReturnablePurchase)
    assert check.ex3(check.ReturnReceived, check.RefundIssued, check.RefundFailed)
    assert check.ex4(check.OpenReturns)
    assert check.ex5(check.RETURN_PROCESS)
    assert check.ex6(check.save_through_outbox)


# ---------------------------------------------------------------- exercise 1


@dataclass(frozen=True)
class ReturnRequestedCommand(Command):
    order_id: str
    reason: str


def test_ex1_refuses_a_command_that_is_not_a_command() -> None:
    @dataclass(frozen=True)
    class RequestReturn:
        order_id: str
        reason: str

    assert "is not a Command" in message(check.ex1(RequestReturn, check.request_return))


def test_ex1_refuses_a_mutable_command_and_wrong_fields() -> None:
    @dataclass
    class RequestReturn(Command):
        order_id: str
        reason: str

    assert "frozen dataclass" in message(check.ex1(RequestReturn, check.request_return))

    @dataclass(frozen=True)
    class RequestReturn2(Command):
        order: str
        why: str

    assert "has the fields" in message(check.ex1(RequestReturn2, check.request_return))


def test_ex1_refuses_a_past_tense_name() -> None:
    @dataclass(frozen=True)
    class ReturnRequested(Command):
        order_id: str
        reason: str

    assert "reads like a fact" in message(check.ex1(ReturnRequested, check.request_return))


def test_ex1_finds_a_handler_that_does_nothing_or_drops_the_reason_or_the_clock() -> None:
    def does_nothing(command: check.RequestReturn, desk: check.ReturnsDesk) -> None:
        pass

    def no_reason(command: check.RequestReturn, desk: check.ReturnsDesk) -> None:
        with desk.purchase(command.order_id) as purchase:
            purchase.request_return("", desk.clock.now())

    def no_clock(command: check.RequestReturn, desk: check.ReturnsDesk) -> None:
        with desk.purchase(command.order_id) as purchase:
            purchase.request_return(command.reason, 0.0)

    assert "no ReturnRequested" in message(check.ex1(check.RequestReturn, does_nothing))
    assert "not the command's" in message(check.ex1(check.RequestReturn, no_reason))
    assert "clock read" in message(check.ex1(check.RequestReturn, no_clock))


def test_ex1_finds_a_handler_that_swallows_the_refusal() -> None:
    def swallows(command: check.RequestReturn, desk: check.ReturnsDesk) -> object:
        try:
            with desk.purchase(command.order_id) as purchase:
                purchase.request_return(command.reason, desk.clock.now())
        except DomainError as error:
            return error
        return None

    assert "reached the caller as a success" in message(check.ex1(check.RequestReturn, swallows))


# ---------------------------------------------------------------- exercise 2


def rule(*, window: str = "<=", shipped_only: bool = True, once: bool = True) -> type:
    class Attempt(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            if shipped_only and self.status == "placed":
                raise DomainError("not shipped")
            if once and self.status not in ("shipped", "placed"):
                raise DomainError("twice")
            age = now - (self.shipped_at or 0.0)
            limit = check.RETURN_DAYS * DAY
            if (window == "<=" and age > limit) or (window == "<" and age >= limit):
                raise DomainError("late")
            self.record(check.ReturnRequested(self.id, self.customer_id, reason, now))

    return Attempt


def test_ex2_finds_each_missing_or_wrong_rule() -> None:
    assert "31 days" in message(check.ex2(rule(window="none")))
    assert "exactly 30 days" in message(check.ex2(rule(window="<")))
    assert "has not shipped" in message(check.ex2(rule(shipped_only=False)))
    assert "second return" in message(check.ex2(rule(once=False)))


def test_ex2_finds_a_rule_that_records_before_refusing_and_a_wrong_event() -> None:
    class RecordsFirst(check.ReturnablePurchase):
        def request_return(self, reason: str, now: float) -> None:
            self.record(check.ReturnRequested(self.id, self.customer_id, reason, now))
            if now - (self.shipped_at or 0.0) > check.RETURN_DAYS * DAY:
                raise DomainError("late")

    class WrongEvent(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            self.record(check.ReturnRequested(self.id, self.customer_id, "", 0.0))

    assert "recorded first" in message(check.ex2(RecordsFirst)) or "was accepted" in message(
        check.ex2(RecordsFirst)
    )
    assert "who asked, why" in message(check.ex2(WrongEvent))
    assert "no request_return of its own" in message(check.ex2(check.Purchase))


# ---------------------------------------------------------------- exercise 3


def test_ex3_finds_commands_mutable_events_wrong_names_and_fields() -> None:
    @dataclass(frozen=True)
    class RefundIssued:
        order_id: str
        amount: float

    @dataclass(frozen=True)
    class RefundFailed:
        order_id: str
        reason: str

    @dataclass(frozen=True)
    class ReceiveReturn:
        order_id: str
        amount: float

    @dataclass
    class ReturnReceived:
        order_id: str
        amount: float

    @dataclass(frozen=True)
    class ReturnReceived2(Command):
        order_id: str
        amount: float

    ReturnReceived2.__name__ = "ReturnReceived"

    @dataclass(frozen=True)
    class ReturnReceived3:
        order_id: str

    ReturnReceived3.__name__ = "ReturnReceived"
    assert "must be called" in message(check.ex3(ReceiveReturn, RefundIssued, RefundFailed))
    assert "frozen" in message(check.ex3(ReturnReceived, RefundIssued, RefundFailed))
    assert "is a Command" in message(check.ex3(ReturnReceived2, RefundIssued, RefundFailed))
    assert "should carry" in message(check.ex3(ReturnReceived3, RefundIssued, RefundFailed))


# ---------------------------------------------------------------- exercise 4


class OpensOnly(Projection):
    open: dict[str, list[str]]

    def reset(self) -> None:
        super().reset()
        self.open = {}

    @applies(check.ReturnRequested)
    def _requested(self, event: check.ReturnRequested) -> None:
        self.open.setdefault(event.customer_id, []).append(event.order_id)


class ClosesOnFailureToo(check.OpenReturns):
    @applies(check.RefundFailed)
    def _failed(self, event: check.RefundFailed) -> None:
        self._refunded(check.RefundIssued(event.order_id, 0.0))


class KeepsEmptyLists(check.OpenReturns):
    @applies(check.RefundIssued)
    def _refunded(self, event: check.RefundIssued) -> None:
        customer = self.customer_of[event.order_id]
        if event.order_id in self.open[customer]:
            self.open[customer].remove(event.order_id)


class SharedState(check.OpenReturns):
    open = {}  # noqa: RUF012 - the mistake under test
    customer_of = {}  # noqa: RUF012

    def reset(self) -> None:
        self.position = 0


def test_ex4_finds_each_wrong_read_model() -> None:
    assert "o-1 was refunded" in message(check.ex4(OpensOnly))
    assert "still open" in message(check.ex4(ClosesOnFailureToo))
    assert "should be" in message(check.ex4(KeepsEmptyLists))
    assert "rebuilt" in message(check.ex4(SharedState)) or "share" in message(
        check.ex4(SharedState)
    )
    assert "Projection subclass" in message(check.ex4(check.OpenReturns()))


# ---------------------------------------------------------------- exercise 5


def machine(*transitions: Transition, deadlines: tuple = ()) -> StateMachine:  # type: ignore[type-arg]
    return StateMachine("attempt", "new", transitions, deadlines)


REQUESTED = Transition("new", "ReturnRequested", "awaiting parcel")
RECEIVED = Transition("awaiting parcel", "ReturnReceived", "refunding", sends="IssueRefund")
ISSUED = Transition("refunding", "RefundIssued", "refunded")
FAILED = Transition(
    "refunding", "RefundFailed", "with support", sends="NotifySupport", compensating=True
)
WAIT = ("refunding", Deadline(DAY, retries=1, gives_up_as="RefundFailed"))


def test_ex5_finds_each_missing_piece_of_the_process() -> None:
    early = Transition("new", "ReturnRequested", "refunding", sends="IssueRefund")
    assert "before the parcel" in message(check.ex5(machine(early, ISSUED)))
    assert "nothing was refunded" in message(check.ex5(machine(REQUESTED)))
    assert "waits for ever" in message(check.ex5(machine(REQUESTED, RECEIVED)))
    assert "support got []" in message(check.ex5(machine(REQUESTED, RECEIVED, ISSUED)))
    plain = Transition("refunding", "RefundFailed", "with support", sends="NotifySupport")
    assert "not marked" in message(check.ex5(machine(REQUESTED, RECEIVED, ISSUED, plain)))
    assert "for ever" in message(check.ex5(machine(REQUESTED, RECEIVED, ISSUED, FAILED)))
    hour = ("refunding", Deadline(3600, retries=1, gives_up_as="RefundFailed"))
    assert "one day" in message(
        check.ex5(machine(REQUESTED, RECEIVED, ISSUED, FAILED, deadlines=(hour,)))
    )
    stalls = ("refunding", Deadline(DAY, retries=1))
    assert "support heard nothing" in message(
        check.ex5(machine(REQUESTED, RECEIVED, ISSUED, FAILED, deadlines=(stalls,)))
    )
    assert check.ex5(machine(REQUESTED, RECEIVED, ISSUED, FAILED, deadlines=(WAIT,)))
    wrong_start = StateMachine("x", "start", (ISSUED,))
    assert "no return ever starts" in message(check.ex5(wrong_start))


# ---------------------------------------------------------------- exercise 6


def sends_directly(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    store.append(stream_id, saga_events, expected_version)
    return command


def sends_twice(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    check.save_through_outbox(store, stream_id, expected_version, saga_events, command)
    return command


def two_appends(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    version = store.append(stream_id, saga_events, expected_version)
    if command is not None:
        store.append(stream_id, [command], version)


def forgets_none(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    store.append(stream_id, [*saga_events, command], expected_version)


def forgets_the_command(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    store.append(stream_id, saga_events, expected_version)


def saves_nothing(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    return None


def test_ex6_finds_each_way_to_lose_or_double_a_command() -> None:
    assert "without going through the outbox" in message(check.ex6(sends_directly))
    assert "went out twice" in message(check.ex6(sends_twice))
    assert "separate appends" in message(check.ex6(two_appends))
    assert "command is None" in message(check.ex6(forgets_none))
    assert "never reached the gateway" in message(check.ex6(forgets_the_command))
    assert "a move without a command saved []" in message(check.ex6(saves_nothing))


# ---------------------------------------------------------------- the desk itself


def test_the_desk_through_the_outbox_sends_nothing_until_the_relay_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = check.ReturnsDesk(tmp_path / "desk.db")
    desk.place_and_ship("o-1", "c-7", 30.0)
    desk.bus.dispatch(check.RequestReturn("o-1", "too small"))
    desk.bus.dispatch(check.ReceiveParcel("o-1"))
    assert desk.gateway.requests == 0 and desk.state("o-1") == "new"
    desk.deliver()
    assert desk.gateway.paid == {"o-1": 30.0} and desk.state("o-1") == "refunded"
    assert desk.outbox is not None and desk.outbox.counts()[1] == 0


def test_the_desk_without_an_outbox_runs_the_whole_flow_in_one_cascade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    desk = check.ReturnsDesk(tmp_path / "desk.db", outbox=False)
    desk.gateway.declined.add("o-1")
    desk.place_and_ship("o-1", "c-7", 30.0)
    desk.bus.dispatch(check.RequestReturn("o-1", "too small"))
    result = desk.bus.dispatch(check.ReceiveParcel("o-1"))
    names = [type(record.event).__name__ for record in result.events]
    assert names == [
        "ReceiveParcel",
        "ReturnReceived",
        "IssueRefund",
        "RefundFailed",
        "NotifySupport",
    ]
    assert desk.support.tickets == [("o-1", "the card was closed")]
