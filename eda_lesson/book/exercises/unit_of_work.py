"""Checks for the exercises of notebook 06 (the unit of work): a command handler that loads,
decides and commits; the version check of optimistic concurrency; and a handler that retries
a command after a conflict by loading again and deciding again.

Each check builds its own table of orders, unit of work and bus, runs the learner's code
against them and returns :class:`~eda_lesson.book.exercises.Feedback`; the learner's objects
are never changed. A conflict is an error the caller sees, never a status a handler returns:
the checks refuse a handler that swallows one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eda_lesson.book.exercises import exercise, expect
from eda_lesson.core.bus import EventBus
from eda_lesson.core.result import DispatchResult, describe_value
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


# ---------------------------------------------------------------------- exercise 1


@exercise("Exercise 1: a command handler with a unit of work")
def ex1(pay_order: PayHandler) -> str:
    """``pay_order(command, uow)``: with uow, load the order, pay it, commit."""
    expect(
        callable(pay_order),
        f"pass your function itself, got {describe_value(pay_order)}",
        "check.ex1(pay_order), without parentheses after the name",
    )
    uow = OrderUnitOfWork(_table(_created(), _cancelled()))
    bus, heard = _wired(pay_order, uow)
    result = bus.dispatch(PayOrder("o-1", 42.0))
    row = uow.table.rows["o-1"]
    expect(
        row.status == "paid" or heard,
        "after PayOrder the table still says o-1 is created and nobody heard anything: leaving "
        "the with block without a commit rolled the payment back",
        "call uow.commit() inside the with block, after order.pay(command.amount)",
    )
    expect(
        row.status == "paid" and row.version == 2,
        f"the bus heard {_names(heard)}, but the table says o-1 is {row.status} at version "
        f"{row.version}: the events were published without the order being saved",
        "load the order through the unit of work (uow.orders.load(command.order_id)) and commit",
    )
    expect(
        heard == [OrderPaid("o-1", 42.0)],
        f"the order was saved as paid, but the bus heard {_names(heard) or 'nothing'}: the "
        "OrderPaid was dropped. A commit outside the with block saves the state after the "
        "rollback already threw the events away",
        "commit inside the with block, before it ends",
    )
    expect(
        result.returned == "paid",
        f"the handler returned {describe_value(result.returned)}",
        "return the order's status after the commit: return order.status",
    )
    uow = OrderUnitOfWork(_table(_created(), _cancelled()))
    bus, heard = _wired(pay_order, uow)
    returned, error = _call(lambda: bus.dispatch(PayOrder("o-2", 42.0)))
    answer = returned.returned if isinstance(returned, DispatchResult) else returned
    expect(
        isinstance(error, DomainError),
        f"paying the cancelled order o-2: your handler {_outcome(answer, error)}; the order's "
        "refusal must reach the caller as the DomainError it is, not as a status",
        "do not catch the DomainError: let it leave the with block, which rolls back",
    )
    expect(
        uow.table.rows["o-2"].status == "cancelled" and not heard,
        f"the refused payment still reached the table or the bus (heard {_names(heard)})",
        "let order.pay(...) refuse before anything is committed",
    )
    return "load, decide, commit: the bus heard only what was saved"


# ---------------------------------------------------------------------- exercise 2

VersionCheck = Callable[[StoredOrder | None, Order], None]


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
    stale = _created()
    stale.version = 1
    moved = StoredOrder.of(_cancelled("o-1"), 2)
    returned, error = _call(lambda: check_version(moved, stale))
    expect(
        error is not None,
        f"o-1 was loaded at version 1 and another unit of work saved version 2 since, yet "
        f"your check {_outcome(returned, error)}: the payment would overwrite the cancellation",
        "raise when row.version != order.version",
    )
    expect(
        isinstance(error, StaleOrderError),
        f"the conflict was raised as {type(error).__name__}: {error}; a conflict is not a rule "
        "of the domain, and callers retry only on StaleOrderError",
        "raise StaleOrderError(...) (from eda_lesson.shop.stored_order)",
    )
    expect(
        "2" in str(error) and "1" in str(error),
        f"the message {str(error)!r} does not say which versions met: whoever reads it cannot "
        "tell a conflict from a bug",
        "say both versions: the table's (row.version) and the copy's (order.version)",
    )
    return "a conflict only when the table moved on, told with both versions"


# ---------------------------------------------------------------------- exercise 3


class _RacingUnitOfWork(OrderUnitOfWork):
    """A unit of work that, on its first ``conflicts`` commits, lets a clerk save the order
    first (another unit of work on the same table), and counts its loads and commits."""

    def __init__(self, table: OrderTable, clerk: Callable[[Order], None], conflicts: int) -> None:
        super().__init__(table)
        self.clerk, self.conflicts = clerk, conflicts
        self.blocks = 0
        self.tries = 0

    def __enter__(self) -> _RacingUnitOfWork:
        self.blocks += 1
        return super().__enter__()

    def _commit(self) -> None:
        self.tries += 1
        if self.tries <= self.conflicts:
            with OrderUnitOfWork(self.table) as clerk:
                self.clerk(clerk.orders.load("o-1"))
                clerk.commit()
        super()._commit()


def _free_gift(order: Order) -> None:
    order.add_item("gift", 1, 0.0)


def _cancel(order: Order) -> None:
    order.cancel("out of stock")


def _race(
    handler: PayHandler, clerk: Callable[[Order], None], conflicts: int
) -> tuple[_RacingUnitOfWork, list[object], object, Exception | None]:
    uow = _RacingUnitOfWork(_table(_created()), clerk, conflicts)
    bus, heard = _wired(handler, uow)
    returned, error = _call(lambda: bus.dispatch(PayOrder("o-1", 42.0)))
    return uow, heard, returned, error


@exercise("Exercise 3 (stretch): retry after a conflict")
def ex3(pay_with_retry: PayHandler) -> str:
    """``pay_with_retry(command, uow)``: pay; on StaleOrderError load again, decide again."""
    expect(
        callable(pay_with_retry),
        f"pass your function itself, got {describe_value(pay_with_retry)}",
        "check.ex3(pay_with_retry), without parentheses after the name",
    )
    uow, heard, returned, error = _race(pay_with_retry, _free_gift, conflicts=1)
    row = uow.table.rows["o-1"]
    gift = LineItem("gift", 1) in row.items
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
        not (uow.tries > 1 and uow.blocks == 1),
        f"your handler committed {uow.tries} times in one with block: the same stale copy "
        "again, which the table refuses every time",
        "retry the whole with block: a fresh load gives the version the clerk saved",
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
    uow, heard, returned, error = _race(pay_with_retry, _cancel, conflicts=1)
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
    uow, heard, returned, error = _race(pay_with_retry, _free_gift, conflicts=99)
    expect(
        uow.blocks < 10,
        f"with a clerk saving before every commit, your handler tried {uow.blocks} times: "
        "give up after a few attempts",
        "loop for attempt in range(3); after the last, let the StaleOrderError reach the caller",
    )
    expect(
        isinstance(error, StaleOrderError),
        f"after giving up, your handler {_outcome(returned, error)}; a conflict it could not "
        "resolve must reach the caller as a StaleOrderError, never as a status it returns",
        "re-raise the last StaleOrderError (a bare raise in the except block of the last try)",
    )
    expect(
        not heard and uow.table.rows["o-1"].status == "created",
        f"the payment never committed, yet the bus heard {_names(heard)}",
        "publish nothing yourself: the unit of work hands over committed events only",
    )
    return "conflict: load again and decide again; refusal: stop; too many conflicts: raise"
