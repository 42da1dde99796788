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


def no_with_block(command: PayOrder, uow: OrderUnitOfWork) -> str:
    order = uow.orders.load(command.order_id)
    order.pay(command.amount)
    uow.commit()
    return order.status


def loaded_before_the_block(command: PayOrder, uow: OrderUnitOfWork) -> str:
    order = uow.orders.load(command.order_id)
    with uow:
        order.pay(command.amount)
        uow.commit()
    return order.status


def committed_before_paying(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        uow.commit()
        order.pay(command.amount)
    return order.status


def block_around_the_load_only(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
    order.pay(command.amount)
    uow.commit()
    return order.status


def solution_1_with_as(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow as work:
        order = work.orders.load(command.order_id)
        order.pay(command.amount)
        work.commit()
        return order.status


def test_exercise_1_passes_right_variants_of_the_solution() -> None:
    correct(check.ex1(solution_1_with_as))


def test_exercise_1_says_leaving_the_block_wrote_nothing_and_dropped_the_event() -> None:
    not_yet(check.ex1(stub_pay_order), "nothing was written", "the OrderPaid was dropped")


def test_exercise_1_says_a_handler_without_a_block_decides_on_a_stale_copy() -> None:
    not_yet(
        check.ex1(no_with_block),
        "PayOrder('o-1', 40.0) was refused",
        "another unit of work cancelled o-1",
        "raised StaleOrderError",
        "the copy of o-1 loaded for the refused payment, which the unit of work still held",
        "with uow:",
        "fresh uow.orders",
    )


def test_exercise_1_says_an_order_loaded_before_the_block_is_not_saved() -> None:
    feedback = check.ex1(loaded_before_the_block)
    not_yet(feedback, "committed, but the commit saved nothing", "not loaded in the with block")
    assert "without a commit" not in repr(feedback)


def test_exercise_1_says_a_commit_before_the_payment_saves_nothing() -> None:
    not_yet(check.ex1(committed_before_paying), "committed before the order took the payment")


def test_exercise_1_refuses_a_block_around_the_load_only() -> None:
    not_yet(
        check.ex1(block_around_the_load_only),
        "committed after its with block had ended (the block held only the load)",
        "indent order.pay(command.amount) and uow.commit() into the with block",
    )


def test_exercise_1_says_a_commit_after_the_block_saved_the_copy_without_its_events() -> None:
    not_yet(check.ex1(commit_after_the_block), "committed after the with block had ended")


def test_exercise_1_says_a_unit_of_work_of_its_own_is_not_the_one_the_bus_collects_from() -> None:
    not_yet(check.ex1(loaded_elsewhere), "not by the unit of work the bus gave your handler")


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


def names_the_table_version_only(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError(f"order {order.id} is at version {row.version}")


def names_the_copy_version_only(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError(f"this copy of order {order.id} was loaded at {order.version}")


def names_the_order_only(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError(f"conflict on order {order.id}")


def names_a_fixed_number(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError("conflict on order 12")


def names_the_next_version(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version != order.version:
        raise StaleOrderError(f"the table is at {row.version}, expected {order.version + 1}")


def conflict_only_one_version_ahead(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version == order.version + 1:
        raise StaleOrderError(f"table {row.version}, loaded {order.version}")


def solution_2_greater_than(row: StoredOrder | None, order: Order) -> None:
    if row is not None and row.version > order.version:
        raise StaleOrderError(f"loaded at {order.version}, the table is at {row.version}")


def test_exercise_2_passes_right_variants_of_the_solution() -> None:
    correct(check.ex2(solution_2_greater_than))


def test_exercise_2_wants_the_version_the_copy_was_loaded_at_named() -> None:
    not_yet(
        check.ex2(names_the_table_version_only),
        "names the table's version (9) but not the one the copy was loaded at (7)",
    )


def test_exercise_2_wants_the_version_of_the_table_named() -> None:
    not_yet(
        check.ex2(names_the_copy_version_only),
        "names the version the copy was loaded at (7) but not the table's (9)",
    )


def test_exercise_2_is_not_fooled_by_digits_from_elsewhere() -> None:
    for answer in (names_the_order_only, names_a_fixed_number):
        not_yet(check.ex2(answer), "names neither", "loaded at version 7", "at version 9")


def test_exercise_2_refuses_the_version_about_to_be_written_for_the_loaded_one() -> None:
    not_yet(check.ex2(names_the_next_version), "but not the one the copy was loaded at (7)")


def test_exercise_2_wants_a_conflict_however_far_the_table_moved_on() -> None:
    not_yet(check.ex2(conflict_only_one_version_ahead), "up to version 9", "returned None")


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


def one_try_too_many(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for attempt in range(attempts + 1):
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
                return order.status
        except StaleOrderError:
            if attempt == attempts:
                raise
    raise ValueError("attempts must be at least 1")


def one_try_too_few(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for attempt in range(attempts - 1):
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
                return order.status
        except StaleOrderError:
            if attempt == attempts - 2:
                raise
    raise ValueError("attempts must be at least 2")


def ignores_attempts(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    return solution_3(command, uow)


def no_attempts_parameter(command: PayOrder, uow: OrderUnitOfWork) -> str:
    return solution_3(command, uow)


def returns_conflict(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    try:
        return solution_3(command, uow, attempts)
    except StaleOrderError:
        return "conflict"


def reloads_in_the_same_block(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    with uow:
        for attempt in range(attempts):
            order = uow.orders.load(command.order_id)
            order.pay(command.amount)
            try:
                uow.commit()
                break
            except StaleOrderError:
                if attempt == attempts - 1:
                    raise
    return order.status


def reloads_without_a_block(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    for attempt in range(attempts):
        try:
            order = uow.orders.load(command.order_id)
            order.pay(command.amount)
            uow.commit()
            return order.status
        except StaleOrderError:
            if attempt == attempts - 1:
                raise
    raise ValueError("attempts must be at least 1")


def commits_the_old_copy_in_a_new_block(
    command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3
) -> str:
    order = None
    for attempt in range(attempts):
        try:
            with uow:
                if order is None:
                    order = uow.orders.load(command.order_id)
                    order.pay(command.amount)
                uow.commit()
                return order.status
        except StaleOrderError:
            if attempt == attempts - 1:
                raise
    raise ValueError("attempts must be at least 1")


def solution_3_while_loop(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    tries = 0
    while True:
        tries += 1
        try:
            with uow:
                order = uow.orders.load(command.order_id)
                order.pay(command.amount)
                uow.commit()
            return order.status
        except StaleOrderError:
            if tries >= attempts:
                raise


def test_exercise_3_passes_right_variants_of_the_solution() -> None:
    correct(check.ex3(solution_3_while_loop))


def test_exercise_3_refuses_one_try_too_many() -> None:
    not_yet(check.ex3(one_try_too_many), "tried 4 times: 1 try too many", "first one included")


def test_exercise_3_refuses_one_try_too_few() -> None:
    not_yet(check.ex3(one_try_too_few), "gave up after 2 tries, not 3")


def test_exercise_3_wants_the_attempts_parameter_used() -> None:
    not_yet(
        check.ex3(ignores_attempts),
        "called with attempts=5",
        "after 3 tries, not 5: it does not use its attempts parameter",
    )


def test_exercise_3_wants_the_attempts_parameter_kept() -> None:
    not_yet(check.ex3(no_attempts_parameter), "attempts=5", "raised TypeError", "attempts: int = 3")


def test_exercise_3_names_what_the_handler_returned_not_the_dispatch_result() -> None:
    feedback = check.ex3(returns_conflict)
    not_yet(feedback, "your handler returned 'conflict' (a str)", "never as a status it returns")
    assert "DispatchResult" not in repr(feedback), repr(feedback)


def test_exercise_3_says_a_retry_needs_a_new_with_block() -> None:
    for answer in (reloads_in_the_same_block, reloads_without_a_block):
        feedback = check.ex3(answer)
        not_yet(
            feedback,
            "decided again without a new with block",
            "refused to be paid twice",
            "A retry needs a new unit of work: a new with block",
        )
        assert "the table says created" not in repr(feedback), repr(feedback)


def test_exercise_3_says_a_new_block_commits_only_what_was_loaded_in_it() -> None:
    not_yet(check.ex3(commits_the_old_copy_in_a_new_block), "the commit of its retry saved nothing")


def conflict_as_a_refusal(command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3) -> str:
    try:
        return no_retry(command, uow, attempts)
    except StaleOrderError as error:
        raise DomainError(str(error)) from error


def test_exercise_3_does_not_take_a_conflict_raised_as_a_refusal_for_a_second_decision() -> None:
    feedback = check.ex3(conflict_as_a_refusal)
    not_yet(feedback, "the payment raised DomainError: order o-1 is at version 2")
    assert "decided again" not in repr(feedback), repr(feedback)


# ---------------------------------------------------------------------- more of exercise 1


def typo_in_a_field(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.id)  # type: ignore[attr-defined]
        order.pay(command.amount)
        uow.commit()
    return order.status


def pays_the_total(command: PayOrder, uow: OrderUnitOfWork) -> str:
    with uow:
        order = uow.orders.load(command.order_id)
        order.pay()
        uow.commit()
    return order.status


def no_block_conflict_hidden(command: PayOrder, uow: OrderUnitOfWork) -> str:
    try:
        return no_with_block(command, uow)
    except StaleOrderError:
        return "try again later"


def fresh_repository_by_hand(command: PayOrder, uow: OrderUnitOfWork) -> str:
    uow.orders = type(uow.orders)(uow.table)
    return no_with_block(command, uow)


def test_exercise_1_says_what_the_handler_raised_on_a_payment_the_order_takes() -> None:
    not_yet(check.ex1(typo_in_a_field), "paying o-1, a created order", "raised AttributeError")


def test_exercise_1_wants_the_command_amount_paid() -> None:
    not_yet(check.ex1(pays_the_total), "with 40: your handler returned 'paid'", "command.amount")


def test_exercise_1_says_what_a_handler_without_a_block_did_with_the_conflict() -> None:
    feedback = check.ex1(no_block_conflict_hidden)
    not_yet(feedback, "then came PayOrder('o-1', 42.0)", "returned 'try again later'")


def test_exercise_1_refuses_a_commit_without_a_with_block_even_when_the_result_is_right() -> None:
    not_yet(check.ex1(fresh_repository_by_hand), "committed without a with block")


# ---------------------------------------------------------------------- more of exercise 3


def commits_again_without_a_block(
    command: PayOrder, uow: OrderUnitOfWork, attempts: int = 3
) -> str:
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


def test_exercise_3_says_committing_again_without_a_block_commits_the_stale_copy() -> None:
    not_yet(
        check.ex3(commits_again_without_a_block),
        "committed 3 times without a with block",
        "the same stale copy again",
    )
