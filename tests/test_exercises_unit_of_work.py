"""The checks of notebook 06's exercises: each fails on the notebook's starting point and on
plausible wrong answers, each with its own message, and passes on the published solution."""

from __future__ import annotations

from feedback import correct, not_yet

from eda_lesson.book.exercises import unit_of_work as check
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import PayOrder
from eda_lesson.shop.stored_order import Order, OrderUnitOfWork, StaleOrderError, StoredOrder

# ---------------------------------------------------------------------- exercise 1


def stub_pay_order(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
    return order.status


def solution_1(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
        uow.commit()
    return order.status


def commit_after_the_block(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
    uow.commit()
    return order.status


def refusal_as_a_status(command: PayOrder, uow: OrderUnitOfWork) -> str:
    try:
        return solution_1(command, uow)
    except DomainError as error:
        return f"refused: {error}"


def loaded_elsewhere(command: PayOrder, uow: OrderUnitOfWork) -> str:
    other = OrderUnitOfWork(uow.table)
    order = other.orders.load(command.order_id)
    order.pay(command.amount)
    other.commit()
    return order.status


def returns_nothing(command: PayOrder, uow: OrderUnitOfWork) -> None:
    solution_1(command, uow)


def test_exercise_1_passes_the_solution() -> None:
    correct(check.ex1(solution_1))


def test_exercise_1_says_the_starting_point_rolled_back() -> None:
    not_yet(check.ex1(stub_pay_order), "without a commit rolled the payment back")


def test_exercise_1_says_a_commit_after_the_block_drops_the_events() -> None:
    not_yet(check.ex1(commit_after_the_block), "OrderPaid was dropped", "inside the with block")


def test_exercise_1_says_a_unit_of_work_of_its_own_publishes_nothing() -> None:
    not_yet(check.ex1(loaded_elsewhere), "OrderPaid was dropped")


def test_exercise_1_rejects_a_refusal_returned_as_a_status() -> None:
    not_yet(check.ex1(refusal_as_a_status), "returned 'refused: order o-2", "DomainError")


def test_exercise_1_wants_the_status_returned() -> None:
    not_yet(check.ex1(returns_nothing), "returned None", "return order.status")


# ---------------------------------------------------------------------- exercise 2


def stub_check_version(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version + 1:
        raise StaleOrderError("someone else saved the order")


def solution_2(row: StoredOrder | None, order: Order) -> None:
    if row is None:
        return
    if row.version != order.version:
        raise StaleOrderError(
            f"order {order.id} is at version {row.version} in the table, but this copy was "
            f"loaded at version {order.version}"
        )


def no_check(row: StoredOrder | None, order: Order) -> None:
    return None


def refuses_a_changed_copy(row: StoredOrder | None, order: Order) -> None:
    if row is None or order.events:
        raise StaleOrderError(f"order {order.id} changed")


def new_orders_refused(row: StoredOrder | None, order: Order) -> None:
    if row is None or row.version != order.version:
        raise StaleOrderError("version 1 and 2 differ")


def domain_error_instead(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise DomainError(f"version {row.version}, loaded {order.version}")


def silent_message(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError("conflict")


def test_exercise_2_passes_the_solution() -> None:
    correct(check.ex2(solution_2))


def test_exercise_2_says_the_starting_point_blames_somebody_who_does_not_exist() -> None:
    not_yet(check.ex2(stub_check_version), "nobody saved o-1", "row.version with order.version")


def test_exercise_2_rejects_a_check_that_refuses_any_changed_copy() -> None:
    not_yet(check.ex2(refuses_a_changed_copy), "nobody saved o-1", "not that the copy was changed")


def test_exercise_2_lets_new_orders_through() -> None:
    not_yet(check.ex2(new_orders_refused), "a new order, never saved")


def test_exercise_2_rejects_no_check_with_the_lost_update() -> None:
    not_yet(check.ex2(no_check), "would overwrite the cancellation")


def test_exercise_2_wants_a_stale_order_error() -> None:
    not_yet(check.ex2(domain_error_instead), "raised as DomainError", "not a rule of the domain")


def test_exercise_2_wants_both_versions_in_the_message() -> None:
    not_yet(check.ex2(silent_message), "does not say which versions met")


# ---------------------------------------------------------------------- exercise 3


def stub_pay_with_retry(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
        for attempt in range(attempts):
            try:
                uow.commit()
                break
            except StaleOrderError:
                if attempt == attempts - 1:
                    raise
    return order.status


def solution_3(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for attempt in range(attempts):
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
                return order.status
        except StaleOrderError:
            if attempt == attempts - 1:
                raise
    raise ValueError(f"attempts must be at least 1, got {attempts}")


def no_retry(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
        uow.commit()
    return order.status


def version_copied(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay(command.amount)
        try:
            uow.commit()
        except StaleOrderError:
            order.version = uow.table.rows[order.id].version
            uow.commit()
    return order.status


def retries_refusals_too(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for attempt in range(attempts):
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
                return order.status
        except (StaleOrderError, DomainError):
            if attempt == attempts - 1:
                raise
    raise ValueError("attempts must be at least 1")


def retries_forever(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for _ in range(50):
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
                return order.status
        except StaleOrderError:
            continue
    raise StaleOrderError("gave up")


def conflict_as_a_status(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    try:
        return solution_3(command, uow, attempts)
    except StaleOrderError:
        return "conflict, try later"


def test_exercise_3_passes_the_solution() -> None:
    correct(check.ex3(solution_3))


def test_exercise_3_says_the_starting_point_commits_the_stale_copy_again() -> None:
    not_yet(check.ex3(stub_pay_with_retry), "the same stale copy again", "whole with block")


def test_exercise_3_says_a_handler_without_retry_lets_the_conflict_through() -> None:
    not_yet(check.ex3(no_retry), "let the StaleOrderError through at the first try")


def test_exercise_3_rejects_copying_the_version_onto_the_stale_copy() -> None:
    not_yet(check.ex3(version_copied), "free gift is gone")


def test_exercise_3_says_a_refusal_is_not_a_conflict() -> None:
    not_yet(check.ex3(retries_refusals_too), "a refusal is not a conflict")


def test_exercise_3_wants_a_limit_on_attempts() -> None:
    not_yet(check.ex3(retries_forever), "give up after a few attempts")


def test_exercise_3_rejects_a_conflict_returned_as_a_status() -> None:
    not_yet(check.ex3(conflict_as_a_status), "never as a status it returns")
