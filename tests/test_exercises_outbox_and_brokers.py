"""Each check of notebook 09 fails on the stub and on a plausible wrong answer, and passes on
the solution (the same code as the notebook's hidden solutions)."""

from __future__ import annotations

from typing import Any

from eda_lesson.book.exercises import outbox_and_brokers as check

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
