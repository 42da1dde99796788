"""The capstone's checks: each reference solution passes, and each plausible wrong answer
fails with its own message."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from feedback import correct, not_yet

from eda_lesson import Command
from eda_lesson.book.exercises import capstone_returns_and_refunds as check
from eda_lesson.core.clock import VirtualClock
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


def test_ex1_says_which_call_of_the_handler_raised_and_where_to_fix_it() -> None:
    def forgets_the_time(command: check.RequestReturn, desk: check.ReturnsDesk) -> None:
        with desk.purchase(command.order_id) as purchase:
            purchase.request_return(command.reason)  # type: ignore[call-arg]

    feedback = check.ex1(check.RequestReturn, forgets_the_time)
    not_yet(
        feedback,
        "dispatching RequestReturn('o-1', 'too small') to your handler raised TypeError",
        "missing 1 required positional argument: 'now'",
        "(in forgets_the_time)",
        "Your exercise cell only defined that code; the check ran it",
    )
    assert "run your cell on its own" not in f"{feedback!r} {feedback.hint}"


def test_ex1_says_the_bus_provides_only_the_desk_to_a_handler_asking_for_more() -> None:
    def asks_for_a_shop(command: check.RequestReturn, shop: object) -> None:
        pass

    not_yet(
        check.ex1(check.RequestReturn, asks_for_a_shop),
        "registering your handler for RequestReturn on the desk's bus (it provides desk)",
        "needs 'shop'",
        "name the handler's parameters command and desk",
    )


def test_ex1_finds_a_handler_that_turns_the_refusal_into_another_error() -> None:
    def translates(command: check.RequestReturn, desk: check.ReturnsDesk) -> None:
        try:
            with desk.purchase(command.order_id) as purchase:
                purchase.request_return(command.reason, desk.clock.now())
        except DomainError as error:
            raise ValueError(str(error)) from error

    not_yet(
        check.ex1(check.RequestReturn, translates),
        "asking a second return for o-1 raised ValueError",
        "(in translates)",
        "should hear that refusal as itself",
    )


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


def floor_days(window: str) -> type:
    """A rule that counts whole days, or one that compares seconds as the statement says."""

    class Attempt(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            if self.status != "shipped":
                raise DomainError("not returnable")
            age = now - (self.shipped_at or 0.0)
            late = {
                "whole days": int(age // DAY) > check.RETURN_DAYS,
                "rounded days": round(age / DAY) > check.RETURN_DAYS,
                "seconds": age > check.RETURN_DAYS * DAY,
                "days as a fraction": age / DAY > check.RETURN_DAYS,
            }[window]
            if late:
                raise DomainError("late")
            self.record(check.ReturnRequested(self.id, self.customer_id, reason, now))

    return Attempt


def test_ex2_holds_the_window_to_the_second_on_both_sides_of_day_30() -> None:
    for counts_days in ("whole days", "rounded days"):
        not_yet(
            check.ex2(floor_days(counts_days)),
            "asked 30.5 days after shipping was accepted",
            "compare seconds, not whole days",
        )
    correct(check.ex2(floor_days("seconds")))
    correct(check.ex2(floor_days("days as a fraction")))
    not_yet(check.ex2(rule(window="<")), "exactly 30 days after shipping was refused")
    not_yet(check.ex2(rule(window="none")), "31 days after shipping was accepted")


def test_ex2_says_a_refused_rule_raises_domain_error_not_value_error() -> None:
    class RaisesValueError(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            if self.status != "shipped" or now - (self.shipped_at or 0.0) > 30 * DAY:
                raise ValueError("no return")
            self.record(check.ReturnRequested(self.id, self.customer_id, reason, now))

    feedback = check.ex2(RaisesValueError)
    not_yet(
        feedback,
        "for 31 days after shipping, request_return('too small', 2678400) raised ValueError",
        "a refused rule raises DomainError",
        "the series' error for a broken rule",
        "raise DomainError(...) for each broken rule",
    )
    assert "running your code raised" not in feedback.message


def test_ex2_says_which_request_raised_when_it_should_have_been_let_through() -> None:
    class Crashes(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            self.record(check.ReturnRequested(self.id, self.customer, reason, now))  # type: ignore[attr-defined]

    not_yet(
        check.ex2(Crashes),
        "for day 3 after shipping, request_return('too small', 259200) raised AttributeError",
        "(in request_return)",
        "this request should be let through",
    )


def test_ex2_reminds_that_times_are_seconds_when_day_3_is_refused() -> None:
    class CountsDaysAsSeconds(check.Purchase):
        def request_return(self, reason: str, now: float) -> None:
            if self.status != "shipped" or now - (self.shipped_at or 0.0) > check.RETURN_DAYS:
                raise DomainError("late")
            self.record(check.ReturnRequested(self.id, self.customer_id, reason, now))

    not_yet(check.ex2(CountsDaysAsSeconds), "asked 3 days later was refused", "DAY = 86400 s")


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


@dataclass(frozen=True)
class RefundPaid:
    order_id: str
    amount: float


def test_ex3_names_a_wrong_name_as_a_name_and_a_wrong_order_as_an_order() -> None:
    renamed = check.ex3(check.ReturnReceived, RefundPaid, check.RefundFailed)
    not_yet(
        renamed,
        "the class given for RefundIssued is called RefundPaid",
        "must be called exactly RefundIssued",
        "rename RefundPaid to RefundIssued",
    )
    assert "in this order" not in f"{renamed!r} {renamed.hint}"
    not_yet(
        check.ex3(check.RefundIssued, check.ReturnReceived, check.RefundFailed),
        "you passed RefundIssued where ReturnReceived goes",
        "pass the classes in this order",
    )


def test_ex3_says_the_check_sends_a_float_amount_and_str_ids() -> None:
    @dataclass(frozen=True)
    class ReturnReceived:
        order_id: str
        amount: Decimal

    @dataclass(frozen=True)
    class RefundIssued:
        order_id: str
        amount: int

    @dataclass(frozen=True)
    class RefundFailed:
        order_id: int
        reason: str

    not_yet(
        check.ex3(ReturnReceived, check.RefundIssued, check.RefundFailed),
        "ReturnReceived.amount is declared Decimal",
        "sends a float amount such as 30.0",
        "declare amount: float",
    )
    not_yet(
        check.ex3(check.ReturnReceived, RefundIssued, check.RefundFailed),
        "RefundIssued.amount is declared int",
        "sends a float amount such as 30.0",
    )
    not_yet(
        check.ex3(check.ReturnReceived, check.RefundIssued, RefundFailed),
        "RefundFailed.order_id is declared int",
        "a str such as 'o-1'",
    )


def test_ex3_accepts_the_field_types_as_real_types_or_as_their_names() -> None:
    fields = {"order_id": str, "amount": float}
    received = dataclass(frozen=True)(type("ReturnReceived", (), {"__annotations__": fields}))
    correct(check.ex3(received, check.RefundIssued, check.RefundFailed))
    correct(check.ex3(check.ReturnReceived, check.RefundIssued, check.RefundFailed))


def test_ex3_says_which_call_raised_when_an_event_cannot_be_built() -> None:
    @dataclass(frozen=True)
    class ReturnReceived:
        order_id: str
        amount: float

        def __post_init__(self) -> None:
            raise RuntimeError("no amounts today")

    not_yet(
        check.ex3(ReturnReceived, check.RefundIssued, check.RefundFailed),
        "building ReturnReceived('o-1', 30.0) raised RuntimeError: no amounts today",
        "(in __post_init__)",
    )


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


class PopsTheCustomer(check.OpenReturns):
    @applies(check.RefundIssued)
    def _refunded(self, event: check.RefundIssued) -> None:
        customer = self.customer_of.pop(event.order_id)
        self.open[customer].remove(event.order_id)
        if not self.open[customer]:
            del self.open[customer]


class RemovesBlindly(check.OpenReturns):
    @applies(check.RefundIssued)
    def _refunded(self, event: check.RefundIssued) -> None:
        customer = self.customer_of[event.order_id]
        self.open[customer].remove(event.order_id)
        if not self.open[customer]:
            del self.open[customer]


class ForgetsTheDeletedCustomer(check.OpenReturns):
    @applies(check.RefundIssued)
    def _refunded(self, event: check.RefundIssued) -> None:
        customer = self.customer_of[event.order_id]
        if event.order_id in self.open[customer]:
            self.open[customer].remove(event.order_id)
        if not self.open[customer]:
            del self.open[customer]


class Toggles(check.OpenReturns):
    @applies(check.RefundIssued)
    def _refunded(self, event: check.RefundIssued) -> None:
        customer = self.customer_of[event.order_id]
        orders = self.open.setdefault(customer, [])
        if event.order_id in orders:
            orders.remove(event.order_id)
        else:
            orders.append(event.order_id)
        if not orders:
            del self.open[customer]


def test_ex4_requires_a_repeated_refund_to_change_nothing() -> None:
    not_yet(
        check.ex4(PopsTheCustomer),
        "a second RefundIssued(order_id='o-1', amount=30.0)",
        "raise KeyError: 'o-1' (in _refunded)",
        "a repeated RefundIssued must change nothing",
        "do nothing when the order is not open",
    )
    not_yet(
        check.ex4(RemovesBlindly),
        "a second RefundIssued(order_id='o-1', amount=30.0)",
        "raise ValueError: list.remove(x): x not in list",
    )
    not_yet(
        check.ex4(ForgetsTheDeletedCustomer),
        "a second RefundIssued(order_id='o-4', amount=5.0)",
        "raise KeyError: 'c-9'",
    )
    not_yet(
        check.ex4(Toggles),
        "after a second RefundIssued for o-1 and for o-4, your read model has",
        "a repeated RefundIssued must change nothing",
    )


@dataclass(frozen=True)
class RefundIssued:
    """The learner's own event of exercise 3: same name as the desk's, another class."""

    order_id: str
    amount: float


def open_returns(requested: type, *issued: type) -> type:
    """The reference read model, written afresh with its methods marked for these classes
    (a subclass of check.OpenReturns would inherit the right marks)."""

    class Attempt(Projection):
        def reset(self) -> None:
            super().reset()
            self.open: dict[str, list[str]] = {}
            self.customer_of: dict[str, str] = {}

        @applies(requested)
        def _requested(self, event: check.ReturnRequested) -> None:
            self.customer_of[event.order_id] = event.customer_id
            self.open.setdefault(event.customer_id, []).append(event.order_id)

        @applies(*issued)
        def _refunded(self, event: check.RefundIssued) -> None:
            customer = self.customer_of.get(event.order_id)
            if customer is None or event.order_id not in self.open.get(customer, []):
                return
            self.open[customer].remove(event.order_id)
            if not self.open[customer]:
                del self.open[customer]

    return Attempt


@dataclass(frozen=True)
class ReturnRequested:
    """The learner's own copy of the given event: same name as the desk's, another class."""

    order_id: str
    customer_id: str
    reason: str
    requested_at: float


def test_ex4_says_to_mark_the_desks_class_when_a_namesake_is_marked() -> None:
    feedback = check.ex4(open_returns(check.ReturnRequested, RefundIssued))
    not_yet(
        feedback,
        "marks a method for a class called RefundIssued, but not the desk's",
        "the store holds check.RefundIssued",
        "no return is ever closed",
        "@applies(check.RefundIssued)",
    )
    assert "o-1 was refunded" not in feedback.message
    correct(check.ex4(open_returns(check.ReturnRequested, RefundIssued, check.RefundIssued)))
    not_yet(
        check.ex4(open_returns(ReturnRequested, check.RefundIssued)),
        "a class called ReturnRequested, but not the desk's",
        "no return is ever opened",
    )


def test_ex4_says_a_missing_customer_has_no_entry_rather_than_none() -> None:
    feedback = check.ex4(ClosesOnFailureToo)
    not_yet(feedback, "o-3's refund failed", "your read model has no entry for c-8")
    assert "None" not in feedback.message


def test_ex4_names_the_event_a_read_model_failed_on() -> None:
    class Fails(check.OpenReturns):
        @applies(check.RefundFailed)
        def _failed(self, event: check.RefundFailed) -> None:
            raise RuntimeError("not written yet")

    not_yet(
        check.ex4(Fails),
        "catching up on the story's events, your read model raised RuntimeError: not "
        "written yet (in _failed) on RefundFailed(order_id='o-3'",
    )


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


def test_ex5_accepts_the_deadlines_as_a_list_of_pairs_too() -> None:
    as_list = StateMachine("attempt", "new", (REQUESTED, RECEIVED, ISSUED, FAILED), [WAIT])  # type: ignore[arg-type]
    correct(check.ex5(as_list))


def test_ex5_refuses_a_compensation_flag_on_a_happy_path_step() -> None:
    for step in (ISSUED, RECEIVED):
        flagged = Transition(step.source, step.trigger, step.target, step.sends, True)
        others = [t for t in (REQUESTED, RECEIVED, ISSUED, FAILED) if t != step]
        not_yet(
            check.ex5(machine(*others, flagged, deadlines=(WAIT,))),
            f"{step.source} --{step.trigger}--> {step.target} is marked compensating=True",
            "it is no compensation",
            "Only the step taken on RefundFailed is one",
        )


def test_ex5_a_class_where_a_name_goes_is_refused_as_the_machine_is_built() -> None:
    # The learner's own cell fails, before any check runs, with a message naming the fix.
    with pytest.raises(TypeError, match="write sends='IssueRefund', not the class IssueRefund"):
        Transition("awaiting parcel", "ReturnReceived", "refunding", sends=check.IssueRefund)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="write trigger='ReturnRequested', not the class"):
        Transition("new", check.ReturnRequested, "awaiting parcel")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"not a dict: write deadlines=\(\('refunding'"):
        StateMachine("returns", "new", (REQUESTED, RECEIVED), {"refunding": WAIT[1]})  # type: ignore[arg-type]


def test_ex5_names_a_trigger_the_saga_never_hears_and_a_command_the_desk_lacks() -> None:
    misspelt = Transition("awaiting parcel", "ParcelReceived", "refunding", sends="IssueRefund")
    not_yet(
        check.ex5(machine(REQUESTED, misspelt, ISSUED, FAILED)),
        "moves on 'ParcelReceived', an event the saga never hears",
        "ReturnRequested, ReturnReceived, RefundIssued, RefundFailed",
    )
    unknown = Transition("awaiting parcel", "ReturnReceived", "refunding", sends="Refund")
    not_yet(
        check.ex5(machine(REQUESTED, unknown, ISSUED, FAILED)),
        "sends 'Refund', a command the desk does not have",
        "IssueRefund and NotifySupport",
    )


def test_ex5_finds_commands_sent_by_the_wrong_step_of_the_happy_path() -> None:
    tells_support = Transition("refunding", "RefundIssued", "refunded", sends="NotifySupport")
    not_yet(
        check.ex5(machine(REQUESTED, RECEIVED, tells_support, FAILED, deadlines=(WAIT,))),
        "the refund was paid, yet support got [('o-1', 'too small')]",
    )
    refunds_again = Transition("refunding", "RefundIssued", "refunded", sends="IssueRefund")
    not_yet(
        check.ex5(machine(REQUESTED, RECEIVED, refunds_again, FAILED, deadlines=(WAIT,))),
        "the gateway was asked 2 times for one refund",
    )


def test_ex5_says_the_stub_has_no_step_on_return_received() -> None:
    not_yet(
        check.ex5(machine(REQUESTED)),
        "nothing was refunded (the saga is in 'awaiting parcel'; your machine does not move "
        "on ReturnReceived in 'awaiting parcel')",
    )


def test_ex5_turns_a_wrongly_shaped_deadline_entry_into_a_message() -> None:
    odd = machine(REQUESTED, RECEIVED, ISSUED, FAILED, deadlines=(WAIT,))
    object.__setattr__(odd, "deadlines", (WAIT[1],))  # changed after it was built
    not_yet(check.ex5(odd), "deadlines holds Deadline(", "a tuple of (state, Deadline) pairs")


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


def command_first(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    outgoing = [command, *saga_events] if command is not None else saga_events
    store.append(stream_id, outgoing, expected_version)


def concatenates_and_returns_nothing(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    store.append(stream_id, saga_events + ([command] if command else []), expected_version)
    return []


def command_first_in_two_appends(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    if command is not None:
        expected_version = store.append(stream_id, [command], expected_version)
    store.append(stream_id, saga_events, expected_version)


def command_to_its_own_stream(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    store.append(stream_id, saga_events, expected_version)
    if command is not None:
        store.append("commands", [command], store.version("commands"))


def both_to_another_stream(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    if command is None:
        store.append(stream_id, saga_events, expected_version)
    else:
        store.append("commands", [*saga_events, command], store.version("commands"))


def fails_with_a_command(store, stream_id, expected_version, saga_events, command):  # type: ignore[no-untyped-def]
    outgoing = [*saga_events, command.order_id] if command is not None else saga_events
    store.append(stream_id, outgoing, expected_version)


def test_ex6_accepts_one_append_in_either_order_and_an_empty_answer() -> None:
    correct(check.ex6(command_first))
    correct(check.ex6(concatenates_and_returns_nothing))


def test_the_command_first_order_replays_the_saga_the_same_way(tmp_path: Path) -> None:
    """The saga's fold counts the command and moves only on its own event, so the order
    within one append changes nothing, the deadline's retry included."""
    outcomes = []
    for name, save_move in (("first", command_first), ("last", check.save_through_outbox)):
        clock = VirtualClock()
        desk = check.ReturnsDesk(tmp_path / f"{name}.db", clock=clock, save_move=save_move)
        desk.gateway.silent.add("o-1")
        desk.place_and_ship("o-1", "c-7", 30.0)
        desk.bus.dispatch(check.RequestReturn("o-1", "too small"))
        desk.bus.dispatch(check.ReceiveParcel("o-1"))
        desk.deliver()
        for _ in range(2):
            clock.advance(DAY)
            desk.check_deadlines()
        saga = desk.process.saga("o-1")
        outcomes.append((saga.path, saga.sent, saga.version, desk.gateway.requests))
        outcomes.append(desk.support.tickets)
    assert outcomes[0] == outcomes[2] and outcomes[1] == outcomes[3]
    assert outcomes[0][0][-1] == "with support" and outcomes[0][3] == 2


def test_ex6_says_which_part_a_split_move_loses() -> None:
    not_yet(
        check.ex6(command_first_in_two_appends),
        "appended the command first and the saga's move in a second append",
        "the saga, whose move was lost, stays in 'awaiting parcel'",
    )
    not_yet(
        check.ex6(command_to_its_own_stream),
        "separate appends (['ReturnProcessMoved'] to 'return-o-1', then ['IssueRefund'] to "
        "'commands')",
        "keeps the move and loses the command",
    )
    not_yet(
        check.ex6(both_to_another_stream),
        "went in one append, but to 'commands', not to the saga's stream 'return-o-1'",
    )


def test_ex6_says_when_save_move_raised_inside_the_relay() -> None:
    not_yet(
        check.ex6(fails_with_a_command),
        "when the saga moved, the process manager called save_move(store, 'return-o-1', 1, "
        "['ReturnProcessMoved'], IssueRefund), and your save_move raised",
        "(in fails_with_a_command)",
    )


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


def test_a_failed_compensation_waits_in_the_outbox_and_the_next_relay_run_sends_it(
    tmp_path: Path,
) -> None:
    desk = check.ReturnsDesk(tmp_path / "desk.db")
    desk.gateway.declined.add("o-1")
    desk.support.offline = True
    desk.place_and_ship("o-1", "c-7", 30.0)
    desk.bus.dispatch(check.RequestReturn("o-1", "too small"))
    desk.bus.dispatch(check.ReceiveParcel("o-1"))
    try:
        desk.deliver()
    except ConnectionError as error:
        assert "offline" in str(error)
    else:
        raise AssertionError("a support desk that is offline fails the delivery")
    assert desk.outbox is not None
    assert [m.event_type for m in desk.outbox.waiting()] == ["ReturnProcessMoved", "NotifySupport"]
    assert desk.state("o-1") == "with support" and desk.support.tickets == []
    desk.support.offline = False
    desk.deliver()
    assert desk.support.tickets == [("o-1", "the card was closed")]
    assert desk.outbox.counts()[1] == 0
