"""Each check of notebook 11 fails on the stub and on a plausible wrong answer, and passes on
the solution (the same code as the notebook's hidden solutions)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from feedback import correct, not_yet

from eda_lesson.book.exercises import outbox_and_brokers as check

Effect = Callable[[sqlite3.Connection], None]

# ---------------------------------------------------------------------- exercise 1


def relay_stub(outbox: Any, publisher: Any) -> int:
    messages = outbox.waiting()
    publisher.publish(messages)
    return len(messages)


def relay_marking_first(outbox: Any, publisher: Any) -> int:
    messages = outbox.waiting()
    outbox.mark_sent(messages)
    publisher.publish(messages)
    return len(messages)


def relay_solution(outbox: Any, publisher: Any) -> int:
    messages = outbox.waiting()
    if messages:
        publisher.publish(messages)
        outbox.mark_sent(messages)
    return len(messages)


def test_ex1_fails_when_nothing_is_marked_sent() -> None:
    feedback = check.ex1(relay_stub)
    assert not feedback and "marked sent" in feedback.message


def test_ex1_fails_when_messages_are_marked_before_the_broker_took_them() -> None:
    feedback = check.ex1(relay_marking_first)
    assert not feedback and "broker refused" in feedback.message


def test_ex1_passes_on_the_solution() -> None:
    assert check.ex1(relay_solution)


def relay_one_message_at_a_time(outbox: Any, publisher: Any) -> int:
    messages = outbox.waiting()
    for message in messages:
        publisher.publish([message])
        outbox.mark_sent([message])
    return len(messages)


def test_ex1_passes_on_a_relay_that_publishes_and_marks_one_message_at_a_time() -> None:
    correct(check.ex1(relay_one_message_at_a_time))


# ---------------------------------------------------------------------- exercise 2


def deliver_stub(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    bus.dispatch(registry.from_json(message.event_type, message.schema_version, message.payload))


def deliver_by_type(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    if message.event_type in seen:
        return
    bus.dispatch(registry.from_json(message.event_type, message.schema_version, message.payload))
    seen.add(message.event_type)


def deliver_solution(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    if message.event_id in seen:
        return
    bus.dispatch(registry.from_json(message.event_type, message.schema_version, message.payload))
    seen.add(message.event_id)


def test_ex2_fails_when_re_sent_copies_are_handled_again() -> None:
    feedback = check.ex2(deliver_stub)
    assert not feedback and "confirmed 6 times" in feedback.message


def test_ex2_fails_when_deduplicating_by_event_type() -> None:
    feedback = check.ex2(deliver_by_type)
    assert not feedback and "event ids" in feedback.hint


def test_ex2_passes_on_the_solution() -> None:
    assert check.ex2(deliver_solution)


def deliver_the_message_itself(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    if message.event_id in seen:
        return
    bus.dispatch(message)  # an OutboxMessage: no handler takes it
    seen.add(message.event_id)


def deliver_marking_before_dispatch(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    if message.event_id in seen:
        return
    seen.add(message.event_id)
    bus.dispatch(registry.from_json(message.event_type, message.schema_version, message.payload))


def deliver_marking_in_finally(message: Any, bus: Any, registry: Any, seen: set[str]) -> None:
    if message.event_id in seen:
        return
    try:
        event = registry.from_json(message.event_type, message.schema_version, message.payload)
        bus.dispatch(event)
    finally:
        seen.add(message.event_id)


def test_ex2_fails_when_the_message_is_dispatched_without_decoding_it() -> None:
    not_yet(check.ex2(deliver_the_message_itself), "no confirmation at all", "registry.from_json")


def test_ex2_fails_when_the_id_is_marked_before_the_handlers_ran() -> None:
    not_yet(
        check.ex2(deliver_marking_before_dispatch),
        "stopped inside the handlers of evt-2",
        "o-2 was never confirmed",
        "only after bus.dispatch(...) has returned",
    )


def test_ex2_fails_when_the_id_is_marked_even_if_the_handlers_stopped() -> None:
    not_yet(check.ex2(deliver_marking_in_finally), "o-2 was never confirmed")


# ---------------------------------------------------------------------- exercise 3


def count_every_delivery(deliveries: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in deliveries:
        counts[delivery.consumer] = counts.get(delivery.consumer, 0) + 1
    return counts


def count_first_deliveries_handled(deliveries: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in deliveries:
        if delivery.outcome == "handled" and delivery.delivery == 1:
            counts[delivery.consumer] = counts.get(delivery.consumer, 0) + 1
    return counts


def count_handled(deliveries: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for delivery in deliveries:
        if delivery.outcome == "handled":
            counts[delivery.consumer] = counts.get(delivery.consumer, 0) + 1
    return counts


def test_ex3_fails_when_every_delivery_counts() -> None:
    feedback = check.ex3(count_every_delivery)
    assert not feedback and "w1 handled nothing" in feedback.message


def test_ex3_fails_when_reclaimed_entries_are_not_counted() -> None:
    feedback = check.ex3(count_first_deliveries_handled)
    assert not feedback and "reclaimed" in feedback.message


def test_ex3_fails_on_an_empty_answer() -> None:
    assert not check.ex3(lambda deliveries: {})


def test_ex3_passes_on_the_solution() -> None:
    assert check.ex3(count_handled)


# ---------------------------------------------------------------------- exercise 4

SEEN = "SELECT 1 FROM handled WHERE event_id = ?"
MARK = "INSERT INTO handled VALUES (?)"


def handle_once(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(SEEN, (event_id,)).fetchone():
            db.execute("ROLLBACK")
            return False
        db.execute(MARK, (event_id,))
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def handle_stub(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    effect(db)
    return True


def handle_once_per_connection(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    if getattr(db, "used", False):  # "something was handled already": not keyed by id
        return False
    effect(db)
    db.used = True  # type: ignore[attr-defined]
    return True


def handle_marking_first_on_its_own(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    if db.execute(SEEN, (event_id,)).fetchone():
        return False
    db.execute(MARK, (event_id,))  # committed at once: autocommit
    effect(db)
    return True


def handle_marking_after_on_its_own(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    if db.execute(SEEN, (event_id,)).fetchone():
        return False
    db.execute("BEGIN")
    try:
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")  # the effect is committed here, the mark only afterwards
    db.execute(MARK, (event_id,))
    return True


def handle_swallowing_errors(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    try:
        return handle_once(db, event_id, effect)
    except Exception:
        return False


def handle_without_rollback(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    db.execute("BEGIN IMMEDIATE")
    if db.execute(SEEN, (event_id,)).fetchone():
        db.execute("ROLLBACK")
        return False
    db.execute(MARK, (event_id,))
    effect(db)  # raises with the transaction still open
    db.execute("COMMIT")
    return True


def handle_with_a_deferred_begin(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    db.execute("BEGIN")
    try:
        if db.execute(SEEN, (event_id,)).fetchone():
            db.execute("ROLLBACK")
            return False
        db.execute(MARK, (event_id,))
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def handle_checking_outside_the_transaction(
    db: sqlite3.Connection, event_id: str, effect: Effect
) -> bool:
    if db.execute(SEEN, (event_id,)).fetchone():  # both deliveries can read "not yet" here
        return False
    db.execute("BEGIN IMMEDIATE")
    try:
        effect(db)
        db.execute("INSERT OR IGNORE INTO handled VALUES (?)", (event_id,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def test_ex4_fails_on_the_stub_with_a_nudge() -> None:
    feedback = check.ex4(handle_stub)
    assert not feedback and "delivered twice" in feedback.message
    assert "Hint" not in repr(feedback)


def test_ex4_fails_when_it_is_not_keyed_by_the_event_id() -> None:
    feedback = check.ex4(handle_once_per_connection)
    assert not feedback and "key by the event id" in feedback.message


def test_ex4_fails_when_the_mark_commits_before_the_effect() -> None:
    feedback = check.ex4(handle_marking_first_on_its_own)
    assert not feedback and "half-done receipt or its mark" in feedback.message


def test_ex4_fails_when_the_effect_commits_before_the_mark() -> None:
    feedback = check.ex4(handle_marking_after_on_its_own)
    assert not feedback and "before its mark, and the effect stayed" in feedback.message


def test_ex4_fails_when_it_swallows_the_handlers_error() -> None:
    feedback = check.ex4(handle_swallowing_errors)
    assert not feedback and "swallowed it" in feedback.message


def test_ex4_fails_when_a_failed_effect_leaves_its_transaction_open() -> None:
    feedback = check.ex4(handle_without_rollback)
    assert not feedback and "end the transaction (ROLLBACK)" in feedback.message


def test_ex4_fails_when_two_deliveries_at_once_collide_on_a_deferred_begin() -> None:
    feedback = check.ex4(handle_with_a_deferred_begin)
    assert not feedback and "at the same time" in feedback.message
    assert "BEGIN IMMEDIATE" in feedback.hint


def test_ex4_fails_when_the_mark_is_looked_up_before_the_transaction() -> None:
    feedback = check.ex4(handle_checking_outside_the_transaction)
    assert not feedback and "both read 'not handled'" in feedback.message


def test_ex4_passes_on_the_solution() -> None:
    assert check.ex4(handle_once)


def handle_with_a_process_lock(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
    with PROCESS_LOCK:  # serialises this process's threads, not two processes
        if db.execute(SEEN, (event_id,)).fetchone():
            return False
        db.execute("BEGIN")
        try:
            db.execute(MARK, (event_id,))
            effect(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return True


PROCESS_LOCK = threading.Lock()


def handle_with_a_process_lock_ignoring_marks(
    db: sqlite3.Connection, event_id: str, effect: Effect
) -> bool:
    with PROCESS_LOCK:
        if db.execute(SEEN, (event_id,)).fetchone():
            return False
        db.execute("BEGIN")
        try:
            db.execute("INSERT OR IGNORE INTO handled VALUES (?)", (event_id,))
            effect(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return True


def _effect_then_mark(mark: Callable[[sqlite3.Connection, str], object]) -> Callable[..., bool]:
    def handle(db: sqlite3.Connection, event_id: str, effect: Effect) -> bool:
        if db.execute(SEEN, (event_id,)).fetchone():
            return False
        db.execute("BEGIN IMMEDIATE")
        try:
            effect(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")  # the effect is committed here, the mark only afterwards
        mark(db, event_id)
        return True

    return handle


def handle_keeping_marks_in_a_table_of_its_own(
    db: sqlite3.Connection, event_id: str, effect: Effect
) -> bool:
    db.execute("CREATE TABLE IF NOT EXISTS done (id TEXT PRIMARY KEY)")
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM done WHERE id = ?", (event_id,)).fetchone():
            db.execute("ROLLBACK")
            return False
        db.execute("INSERT INTO done VALUES (?)", (event_id,))
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def handle_marking_with_insert_or_ignore(
    db: sqlite3.Connection, event_id: str, effect: Effect
) -> bool:
    db.execute("BEGIN")  # deferred, but its first statement is the write: the lock comes first
    try:
        if not db.execute("INSERT OR IGNORE INTO handled VALUES (?)", (event_id,)).rowcount:
            db.execute("ROLLBACK")
            return False
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def handle_taking_the_primary_key_as_the_lookup(
    db: sqlite3.Connection, event_id: str, effect: Effect
) -> bool:
    db.execute("BEGIN IMMEDIATE")
    try:
        try:
            db.execute(MARK, (event_id,))
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            return False
        effect(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return True


def test_ex4_fails_when_only_a_lock_inside_the_process_keeps_deliveries_apart() -> None:
    not_yet(
        check.ex4(handle_with_a_process_lock),
        "another process was in the middle of evt-8",
        "it failed with IntegrityError",
        "BEGIN IMMEDIATE",
    )
    not_yet(
        check.ex4(handle_with_a_process_lock_ignoring_marks),
        "another process was in the middle of evt-8",
        "it did the effect as well (2 receipts)",
    )


def test_ex4_fails_when_the_effect_commits_before_a_mark_written_with_replace() -> None:
    replace = _effect_then_mark(lambda db, i: db.execute("REPLACE INTO handled VALUES (?)", (i,)))
    not_yet(check.ex4(replace), "before its mark, and the effect stayed")


def test_ex4_fails_when_the_effect_commits_before_a_mark_written_through_a_cursor() -> None:
    cursor = _effect_then_mark(lambda db, i: db.cursor().execute(MARK, (i,)))
    not_yet(check.ex4(cursor), "before its mark, and the effect stayed")


def test_ex4_fails_when_the_marks_are_not_in_the_table_handled() -> None:
    not_yet(
        check.ex4(handle_keeping_marks_in_a_table_of_its_own),
        "it never wrote one",
        "INSERT INTO handled",
    )


def test_ex4_passes_on_other_right_answers() -> None:
    correct(check.ex4(handle_marking_with_insert_or_ignore))
    correct(check.ex4(handle_taking_the_primary_key_as_the_lookup))
