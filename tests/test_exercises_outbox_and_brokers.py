"""Each check of notebook 11 fails on the stub and on a plausible wrong answer, and passes on
the solution (the same code as the notebook's hidden solutions)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

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
