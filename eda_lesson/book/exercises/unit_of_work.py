"""Checks for the exercises of notebook 06 (the unit of work): a command handler that loads,
decides and commits; the version check of optimistic concurrency; and a handler that retries
a command after a conflict by loading again and deciding again.

Each check builds its own table of orders, unit of work and bus, runs the learner's code
against them and returns :class:`~eda_lesson.book.exercises.Feedback`; the learner's objects
are never changed. A handler is sent several commands in a row on one bus and one unit of
work, as in a running shop, so a handler that only works on a fresh unit of work is caught.
A conflict is an error the caller sees, never a status a handler returns: the checks refuse
a handler that swallows one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import DispatchResult, describe_value
from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import PayOrder
from eda_lesson.shop.events import LineItem, OrderEvent, OrderPaid
from eda_lesson.shop.stored_order import (
    Order,
    OrderTable,
    OrderUnitOfWork,
    StaleOrderError,
    StoredOrder,
)

__all__ = ["ex1", "ex2", "ex3"]

PayHandler = Callable[..., Any]


def _call(command: Callable[[], object]) -> tuple[object, Exception | None]:
    """Run a command; what it returned and the exception it raised (one of them is None)."""
    try:
        return command(), None
    except Exception as error:
        return None, error


def _dispatch(bus: EventBus, command: PayOrder) -> tuple[object, Exception | None]:
    """Dispatch ``command``: what its handler returned, and what the dispatch raised."""
    result, error = _call(lambda: bus.dispatch(command))
    return (result.returned if isinstance(result, DispatchResult) else result), error


def _table(*orders: Order) -> OrderTable:
    """A table holding ``orders``, each saved once."""
    table = OrderTable()
    for order in orders:
        table.rows[order.id] = StoredOrder.of(order, 1)
    return table


def _created(order_id: str = "o-1") -> Order:
    return Order(order_id, "c-7", 42.0)


def _cancelled(order_id: str = "o-2") -> Order:
    return Order(order_id, "c-7", 42.0, status="cancelled")


class _WatchedUnitOfWork(OrderUnitOfWork):
    """An OrderUnitOfWork that counts its ``with`` blocks and its commits, and notes what it
    held of order o-1 ("not loaded", or the copy's status) at each commit and each block's
    end, and whether each commit came while a block was open."""

    def __init__(self, table: OrderTable) -> None:
        super().__init__(table)
        self.blocks = 0
        self.open = False
        self.tries = 0
        self.outside_a_block = 0
        self.held_at_commit: list[str] = []
        self.held_at_exit: list[str] = []

    def __enter__(self) -> _WatchedUnitOfWork:
        self.blocks += 1
        self.open = True
        return super().__enter__()

    def __exit__(self, *exc_info: object) -> None:
        self.open = False
        self.held_at_exit.append(self._held())
        super().__exit__(*exc_info)

    def commit(self) -> None:
        self.tries += 1
        self.outside_a_block += not self.open
        self.held_at_commit.append(self._held())
        super().commit()

    def _held(self) -> str:
        held = next((order for order in self.orders.seen if order.id == "o-1"), None)
        return "not loaded" if held is None else held.status


def _wired(handler: PayHandler, uow: OrderUnitOfWork) -> tuple[EventBus, list[object]]:
    """A bus with ``handler`` for PayOrder, collecting from ``uow``, and what it published."""
    heard: list[object] = []
    bus = EventBus(dependencies={"uow": uow}, collect_from=[uow])
    bus.register(PayOrder, handler)
    bus.register(OrderEvent, heard.append)
    return bus, heard


def _names(events: list[object]) -> list[str]:
    return [type(event).__name__ for event in events]


def _outcome(returned: object, error: Exception | None) -> str:
    if error is not None:
        return f"raised {type(error).__name__}: {error}"
    return f"returned {describe_value(returned)}"


def _cancel_elsewhere(table: OrderTable, order_id: str) -> None:
    """Another unit of work (a clerk) cancels the order and saves it."""
    with OrderUnitOfWork(table) as clerk:
        clerk.orders.load(order_id).cancel("out of stock")
        clerk.commit()


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a command handler with a unit of work")
def ex1(pay_order: PayHandler) -> str:
    """``pay_order(command, uow)``: with uow, load the order, pay it, commit."""
    expect(
        callable(pay_order),
        f"pass your function itself, got {describe_value(pay_order)}",
        "check.ex1(pay_order), without parentheses after the name",
    )
    uow = _WatchedUnitOfWork(_table(_created(), _cancelled()))
    bus, heard = _wired(pay_order, uow)
    returned, error = _dispatch(bus, PayOrder("o-1", 42.0))
    row = uow.table.rows["o-1"]
    if error is not None:
        _expect_no_late_commit(uow, error)
    expect(
        error is None,
        f"paying o-1, a created order whose total is 42, with 42: your handler "
        f"{_outcome(returned, error)}, where the order takes this payment",
        "load o-1 with uow.orders.load(command.order_id) and pay it command.amount",
    )
    _expect_a_saving_commit(uow, heard)
    expect(
        row.status == "paid" and row.version == 2,
        f"the bus heard {_names(heard)}, but the table says o-1 is {row.status} at version "
        f"{row.version}: the events were published without the order being saved",
        "load the order through the unit of work (uow.orders.load(command.order_id)) and commit",
    )
    _expect_the_events_of_the_commit(uow, heard)
    expect(
        returned == "paid",
        f"the handler returned {describe_value(returned)}",
        "return the order's status after the commit: return order.status",
    )
    _expect_a_refusal_to_reach_the_caller(pay_order)
    _expect_each_command_to_load_afresh(pay_order)
    _expect_no_late_commit(uow, None)
    return "load, decide, commit: the bus heard only what was saved"


def _expect_a_saving_commit(uow: _WatchedUnitOfWork, heard: list[object]) -> None:
    """The payment of o-1 was saved or heard; if not, say why the commit saved nothing."""
    if uow.table.rows["o-1"].status == "paid" or heard:
        return
    expect(
        uow.tries > 0,
        "after PayOrder the table still says o-1 is created and nobody heard anything: leaving "
        "the with block without a commit rolled the payment back (nothing was written, and "
        "the OrderPaid was dropped)",
        "call uow.commit() inside the with block, after order.pay(command.amount)",
    )
    expect(
        "not loaded" not in uow.held_at_commit,
        "your handler committed, but the commit saved nothing: o-1 was not loaded in the with "
        "block that committed. Entering a with block gives the unit of work a fresh "
        "uow.orders, and a commit saves only the orders loaded through it since",
        "load the order inside the with block, then pay it and commit there",
    )
    expect(
        False,
        "your handler committed before the order took the payment: the commit found nothing "
        "changed to save, and the end of the with block then dropped the OrderPaid",
        "pay first, then commit, both inside the with block",
    )


def _expect_the_events_of_the_commit(uow: _WatchedUnitOfWork, heard: list[object]) -> None:
    """The saved payment was heard as one OrderPaid; if not, say where it was lost."""
    if heard == [OrderPaid("o-1", 42.0)]:
        return
    expect(
        uow.commits > 0,
        "the order was saved as paid, but not by the unit of work the bus gave your handler: "
        "the bus collects only from that one, so the OrderPaid was dropped",
        "use the uow parameter: load through uow.orders and call uow.commit()",
    )
    _expect_no_late_commit(uow, None)
    expect(
        False,
        f"the order was saved as paid, but the bus heard {_names(heard) or 'nothing'} instead "
        "of one OrderPaid",
        "publish nothing yourself: the unit of work hands the committed events to the bus",
    )


def _expect_no_late_commit(uow: _WatchedUnitOfWork, error: Exception | None) -> None:
    """Every commit came inside a with block; if not, say what the late commit did (or that
    the unit of work refused it, ``error``, for one that refuses a commit after its block)."""
    if not uow.outside_a_block:
        return
    refused = (
        "" if error is None else f", and the unit of work refused it ({_outcome(None, error)})"
    )
    if "paid" in uow.held_at_exit:  # paid inside the block, committed after it
        saved = (
            "that commit would have saved the paid copy without it"
            if error is not None
            else "the commit still saved the paid copy in memory, so the table says paid and "
            "the bus heard nothing"
        )
        expect(
            False,
            f"your handler committed after the with block had ended{refused}. The OrderPaid "
            f"was dropped when the block ended: {saved}",
            "commit inside the with block, before it ends",
        )
    expect(
        uow.blocks > 0,
        f"your handler committed without a with block{refused}: entering the block is what "
        "gives each command a fresh uow.orders, and leaving it what drops a decision that was "
        "not committed",
        "load, pay and commit inside `with uow:`",
    )
    expect(
        False,
        f"your handler paid o-1 and committed after its with block had ended (the block held "
        f"only the load){refused}. The decision ran outside the unit of work: the end of the "
        "block is what drops a decision that was not committed, and it had already passed",
        "indent order.pay(command.amount) and uow.commit() into the with block",
    )


def _expect_a_refusal_to_reach_the_caller(pay_order: PayHandler) -> None:
    uow = _WatchedUnitOfWork(_table(_created(), _cancelled()))
    bus, heard = _wired(pay_order, uow)
    returned, error = _dispatch(bus, PayOrder("o-2", 42.0))
    expect(
        isinstance(error, DomainError),
        f"paying the cancelled order o-2: your handler {_outcome(returned, error)}; the order's "
        "refusal must reach the caller as the DomainError it is, not as a status",
        "do not catch the DomainError: let it leave the with block, which rolls back",
    )
    expect(
        uow.table.rows["o-2"].status == "cancelled" and not heard,
        f"the refused payment still reached the table or the bus (heard {_names(heard)})",
        "let order.pay(...) refuse before anything is committed",
    )


def _expect_each_command_to_load_afresh(pay_order: PayHandler) -> None:
    """A refused PayOrder, a cancellation by another unit of work, then PayOrder again: the
    second must be decided on the order as the table holds it now."""
    uow = _WatchedUnitOfWork(_table(_created()))
    bus, _ = _wired(pay_order, uow)
    returned, error = _dispatch(bus, PayOrder("o-1", 40.0))
    expect(
        isinstance(error, DomainError),
        f"paying o-1, whose total is 42, with 40: your handler {_outcome(returned, error)}, "
        "where the order, given the command's amount, refuses a payment that does not match "
        "its total, and its DomainError must reach the caller",
        "pay the command's amount, order.pay(command.amount), and let a DomainError through",
    )
    _cancel_elsewhere(uow.table, "o-1")
    returned, error = _dispatch(bus, PayOrder("o-1", 42.0))
    story = (
        "on one bus, PayOrder('o-1', 40.0) was refused (the total is 42), then another unit "
        "of work cancelled o-1 and saved it, then came PayOrder('o-1', 42.0): the order, "
        "cancelled now, should refuse it with a DomainError"
    )
    expect(
        not isinstance(error, StaleOrderError),
        f"{story}, but your handler raised StaleOrderError: it decided on, and tried to save, "
        "the copy of o-1 loaded for the refused payment, which the unit of work still held. "
        "Nothing had made it load the order again",
        "load, pay and commit inside `with uow:`; entering the block gives the unit of work a "
        "fresh uow.orders, so each command loads the order as the table holds it now",
    )
    expect(
        isinstance(error, DomainError),
        f"{story}; your handler {_outcome(returned, error)}",
        "let the order's DomainError reach the caller",
    )


# ---------------------------------------------------------------------- exercise 2

VersionCheck = Callable[[StoredOrder | None, Order], None]

_LOADED_AT, _TABLE_AT = 7, 9
"""The versions of exercise 2's conflict: numbers that no other part of it holds."""


def _names_number(text: str, number: int) -> bool:
    return re.search(rf"(?<!\d){number}(?!\d)", text) is not None


@exercise("Exercise 2: the version check")
def ex2(check_version: VersionCheck) -> str:
    """``check_version(row, order)`` raises StaleOrderError if ``row`` moved on since ``order``
    was loaded; ``row`` is None for an order never saved."""
    expect(
        callable(check_version),
        f"pass your function itself, got {describe_value(check_version)}",
        "check.ex2(check_version), without parentheses after the name",
    )
    fresh = _created()
    row = StoredOrder.of(fresh, 1)
    fresh.version = 1
    fresh.pay(42.0)
    _, error = _call(lambda: check_version(row, fresh))
    expect(
        error is None,
        f"nobody saved o-1 since it was loaded at version 1 (the table is at version 1 too), "
        f"yet your check {_outcome(None, error)}. A conflict means the table's version differs "
        "from the version the copy was loaded at, not that the copy was changed",
        "compare row.version with order.version, the version the order was loaded at",
    )
    new = Order.create("o-9", "c-7", 5.0)
    _, error = _call(lambda: check_version(None, new))
    expect(
        error is None,
        f"a new order, never saved (row is None), was refused: {_outcome(None, error)}",
        "when row is None there is nothing to conflict with: return",
    )
    error = _expect_a_conflict(check_version)
    _expect_both_versions_named(str(error))
    return "a conflict only when the table moved on, told with both versions"


def _expect_a_conflict(check_version: VersionCheck) -> Exception:
    """The error ``check_version`` raises for a copy loaded at 7 of a row now at 9."""
    stale = Order("o-x", "c-x", 42.0, version=_LOADED_AT)
    moved = StoredOrder.of(Order("o-x", "c-x", 42.0, status="cancelled"), _TABLE_AT)
    returned, error = _call(lambda: check_version(moved, stale))
    expect(
        error is not None,
        f"o-x was loaded at version {_LOADED_AT}, and other units of work saved it since, up "
        f"to version {_TABLE_AT}; yet your check {_outcome(returned, error)}: the payment "
        "would overwrite the cancellation",
        "raise when row.version != order.version",
    )
    assert error is not None
    expect(
        isinstance(error, StaleOrderError),
        f"the conflict was raised as {type(error).__name__}: {error}; a conflict is not a rule "
        "of the domain, and callers retry only on StaleOrderError",
        "raise StaleOrderError(...) (from eda_lesson.shop.stored_order)",
    )
    return error


def _expect_both_versions_named(message: str) -> None:
    """The message of a conflict of a copy loaded at 7 with a row at 9 names 7 and 9."""
    table, copy = _names_number(message, _TABLE_AT), _names_number(message, _LOADED_AT)
    both = "say both versions: the table's (row.version) and the copy's (order.version)"
    expect(
        table or copy,
        f"the copy of o-x was loaded at version {_LOADED_AT} and the table is at version "
        f"{_TABLE_AT}, but your message {message!r} names neither, so it does not say which "
        "versions met: whoever reads it cannot tell a conflict from a bug",
        both,
    )
    expect(
        table,
        f"your message {message!r} names the version the copy was loaded at ({_LOADED_AT}) "
        f"but not the table's ({_TABLE_AT}): whoever reads it cannot tell how far the order "
        "moved on",
        both,
    )
    expect(
        copy,
        f"your message {message!r} names the table's version ({_TABLE_AT}) but not the one "
        f"the copy was loaded at ({_LOADED_AT}): whoever reads it cannot tell which copy was "
        "stale",
        both,
    )


# ---------------------------------------------------------------------- exercise 3


class _RacingUnitOfWork(_WatchedUnitOfWork):
    """A unit of work that, on its first ``conflicts`` commits, lets a clerk save the order
    first (another unit of work on the same table)."""

    def __init__(self, table: OrderTable, clerk: Callable[[Order], None], conflicts: int) -> None:
        super().__init__(table)
        self.clerk, self.conflicts = clerk, conflicts

    def _commit(self) -> None:
        if self.tries <= self.conflicts:
            with OrderUnitOfWork(self.table) as clerk:
                self.clerk(clerk.orders.load("o-1"))
                clerk.commit()
        super()._commit()


def _free_gift(order: Order) -> None:
    order.add_item("gift", 1, 0.0)


def _cancel(order: Order) -> None:
    order.cancel("out of stock")


def _with_attempts(handler: PayHandler, attempts: int) -> PayHandler:
    """``handler`` called with ``attempts=attempts`` (the bus passes only command and uow)."""

    def pay_order(command: PayOrder, uow: OrderUnitOfWork) -> object:
        return handler(command, uow, attempts=attempts)

    return pay_order


def _race(
    handler: PayHandler, clerk: Callable[[Order], None], conflicts: int
) -> tuple[_RacingUnitOfWork, list[object], object, Exception | None]:
    uow = _RacingUnitOfWork(_table(_created()), clerk, conflicts)
    bus, heard = _wired(handler, uow)
    returned, error = _dispatch(bus, PayOrder("o-1", 42.0))
    return uow, heard, returned, error


@exercise("Exercise 3 (stretch): retry after a conflict")
def ex3(pay_with_retry: PayHandler) -> str:
    """``pay_with_retry(command, uow, attempts=3)``: pay; on StaleOrderError load again, decide
    again, ``attempts`` tries in all."""
    expect(
        callable(pay_with_retry),
        f"pass your function itself, got {describe_value(pay_with_retry)}",
        "check.ex3(pay_with_retry), without parentheses after the name",
    )
    _expect_a_harmless_conflict_retried(pay_with_retry)
    uow, _, returned, error = _race(pay_with_retry, _cancel, conflicts=1)
    expect(
        isinstance(error, DomainError),
        f"the clerk cancelled o-1 meanwhile; deciding again, the order refuses the payment, "
        f"but your handler {_outcome(returned, error)}",
        "let the DomainError of the second decision reach the caller",
    )
    expect(
        uow.blocks == 2,
        f"the cancelled order refused the payment, and your handler tried {uow.blocks} times: "
        "a refusal is not a conflict, trying again cannot change the answer",
        "retry on StaleOrderError only",
    )
    _expect_to_give_up(pay_with_retry, 3)
    _expect_to_give_up(pay_with_retry, 5)
    return "conflict: load again and decide again; refusal: stop; too many conflicts: raise"


def _expect_a_harmless_conflict_retried(pay_with_retry: PayHandler) -> None:
    """One conflict with a free gift: the retry pays the order with the gift, once."""
    uow, heard, returned, error = _race(pay_with_retry, _free_gift, conflicts=1)
    row = uow.table.rows["o-1"]
    gift = LineItem("gift", 1) in row.items
    where = "in one with block" if uow.blocks == 1 else "without a with block"
    expect(
        not (row.status == "paid" and not gift),
        "the order was saved as paid, but the clerk's free gift is gone: the retry overwrote "
        "the clerk's save with the stale copy (was its version number changed by hand?)",
        "after a StaleOrderError, start a new with block and load the order again",
    )
    expect(
        not isinstance(error, StaleOrderError) or uow.tries > 1,
        "a clerk saved o-1 while the payment was being decided, and your handler let the "
        "StaleOrderError through at the first try",
        "catch StaleOrderError and try the whole with block again (load, pay, commit)",
    )
    expect(
        not (uow.tries > 1 and uow.blocks <= 1),
        f"your handler committed {uow.tries} times {where}: the same stale copy again, which "
        "the table refuses every time",
        "retry the whole with block: a fresh load gives the version the clerk saved",
    )
    expect(
        not (uow.blocks <= 1 and isinstance(error, DomainError) and "already paid" in str(error)),
        f"after the conflict your handler decided again without a new with block "
        f"({plural(uow.blocks, 'block')} in all), and {_outcome(returned, error)}. Within one "
        "unit of work o-1 stays the copy your handler already paid, loaded again or not, so "
        "the order refused to be paid twice. A retry needs a new unit of work: a new with "
        "block, whose fresh uow.orders loads the order as the clerk saved it",
        "put the with block inside the retry loop: each try enters it anew, loads, pays, commits",
    )
    expect(
        not (error is None and row.status == "created" and "not loaded" in uow.held_at_commit),
        f"your handler {_outcome(returned, error)}, but the table still says o-1 is created: "
        "the commit of its retry saved nothing. A new with block starts a fresh uow.orders, "
        "and commits only the orders loaded through it since, not the copy loaded before",
        "load the order again inside the new with block, and pay that copy",
    )
    expect(
        error is None and row.status == "paid" and gift,
        f"after one conflict with a harmless change (a free gift), the payment "
        f"{_outcome(returned, error)} and the table says {row.status}",
        "the second try loads the order with the gift, pays it and commits",
    )
    expect(
        heard == [OrderPaid("o-1", 42.0)],
        f"the bus heard {_names(heard)}: exactly one OrderPaid should be published",
        "publish nothing yourself: the unit of work hands over the committed events",
    )


def _expect_to_give_up(pay_with_retry: PayHandler, attempts: int) -> None:
    """A clerk saves before every commit: ``attempts`` tries, then the StaleOrderError."""
    handler = pay_with_retry if attempts == 3 else _with_attempts(pay_with_retry, attempts)
    uow, heard, returned, error = _race(handler, _free_gift, conflicts=99)
    given = "with attempts left at 3" if attempts == 3 else f"called with attempts={attempts}"
    expect(
        not (isinstance(error, TypeError) and uow.blocks == 0),
        f"called as pay_with_retry(command, uow, attempts={attempts}), your handler "
        f"{_outcome(returned, error)}",
        "keep the parameter of the starting point: attempts: int = 3",
    )
    expect(
        uow.blocks < 10,
        f"with a clerk saving before every commit, your handler tried {uow.blocks} times: "
        "give up after a few attempts",
        "loop for attempt in range(attempts); after the last, let the StaleOrderError reach "
        "the caller",
    )
    expect(
        uow.blocks <= attempts,
        f"with a clerk saving before every commit, your handler ({given}) tried "
        f"{uow.blocks} times: {plural(uow.blocks - attempts, 'try', 'tries')} too many. "
        "attempts counts every try, the first one included",
        "loop for attempt in range(attempts), and re-raise in the last one",
    )
    expect(
        uow.blocks == attempts or not isinstance(error, StaleOrderError),
        f"with a clerk saving before every commit, your handler ({given}) gave up after "
        f"{plural(uow.blocks, 'try', 'tries')}, not {attempts}"
        + (": it does not use its attempts parameter" if uow.blocks == 3 else ""),
        "loop for attempt in range(attempts), and re-raise in the last one",
    )
    expect(
        isinstance(error, StaleOrderError),
        f"after giving up ({given}), your handler {_outcome(returned, error)}; a conflict it "
        "could not resolve must reach the caller as a StaleOrderError, never as a status it "
        "returns",
        "re-raise the last StaleOrderError (a bare raise in the except block of the last try)",
    )
    expect(
        not heard and uow.table.rows["o-1"].status == "created",
        f"the payment never committed, yet the bus heard {_names(heard)}",
        "publish nothing yourself: the unit of work hands over committed events only",
    )
