"""The checks of notebook 03's exercises: each fails on the notebook's starting point and on a
plausible wrong answer, saying what is wrong, and passes on the published solution."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feedback import correct, not_yet

from eda_lesson import DispatchResult, EventBus, Handler, handler_name
from eda_lesson.book.exercises import dispatch_and_flow as check
from eda_lesson.shop.events import OrderPaid, OrderShipped, ShipmentRequested

# ---------------------------------------------------------------------- exercise 1

SOLUTION_1 = [
    "request_shipment",
    "mark_paid",
    "AuditLog.record",
    "ship_order",
    "record",
    "Shop.notify_shipped",
    "record",
]


def test_ex1_an_empty_prediction_is_told_how_many_calls_there_are() -> None:
    not_yet(check.ex1([]), "7 handler calls", "your list has 0", "AuditLog.record")


def test_ex1_the_nested_order_is_recognised_as_such() -> None:
    nested = [
        "request_shipment",
        "ship_order",
        "notify_shipped",
        "record",
        "record",
        "mark_paid",
        "record",
    ]
    not_yet(check.ex1(nested), "nested calls", "queues a produced event")


def test_ex1_registration_order_is_corrected_with_the_base_class_rule() -> None:
    in_registration_order = ["record", *SOLUTION_1[:2], "ship_order", "record"]
    in_registration_order += ["notify_shipped", "record"]
    not_yet(
        check.ex1(in_registration_order),
        "step 1 is request_shipment, you wrote record",
        "base classes",
    )


def test_ex1_not_a_list_of_names_is_refused() -> None:
    not_yet(check.ex1("request_shipment"), "list of handler names")


def test_ex1_accepts_short_or_qualified_names() -> None:
    correct(check.ex1(SOLUTION_1))
    correct(check.ex1([f"Shop.{n}" if "." not in n else n for n in SOLUTION_1]))


def test_the_bus_of_exercise_1_runs_the_published_solution() -> None:
    calls = check.exercise1_bus().dispatch(OrderPaid("o-1", 42.0)).calls
    assert [c.name.rsplit(".", 1)[-1] for c in calls] == [n.rsplit(".", 1)[-1] for n in SOLUTION_1]


# ---------------------------------------------------------------------- exercise 2


def problems_stub(result: DispatchResult) -> list[str]:
    return []


def problems_with_dispatched_event(result: DispatchResult) -> list[str]:
    lines = []
    for call in result.failures:
        lines.append(f"{call.name} failed on #0 {type(result.event).__name__}")
    return lines


def problems_without_unhandled(result: DispatchResult) -> list[str]:
    lines = []
    for call in result.failures:
        record = result.events[call.event_index]
        lines.append(f"{call.name} failed on #{record.index} {record.type_name}")
    return lines


def problems_solution(result: DispatchResult) -> list[str]:
    lines = []
    for call in result.failures:
        record = result.events[call.event_index]
        lines.append(f"{call.name} failed on #{record.index} {record.type_name}")
    for record in result.unhandled:
        lines.append(f"no handler for #{record.index} {record.type_name}")
    return lines


def test_ex2_the_stub_misses_the_failures() -> None:
    not_yet(check.ex2(problems_stub), "for the failed calls", "print_receipt failed on #0")


def test_ex2_naming_the_dispatched_event_for_every_failure_is_caught() -> None:
    not_yet(
        check.ex2(problems_with_dispatched_event),
        "#1 ShipmentRequested",
        "result.events[call.event_index]",
    )


def test_ex2_forgetting_unhandled_events_is_caught() -> None:
    not_yet(check.ex2(problems_without_unhandled), "no handler for #2 OrderShipped", "unhandled")


def test_ex2_passes_on_the_solution() -> None:
    correct(check.ex2(problems_solution))


# ---------------------------------------------------------------------- exercise 3


def pack_parcel_stub(event: ShipmentRequested) -> None:
    print(f"packing {event.order_id}")


def pack_parcel_returning_a_string(event: ShipmentRequested) -> str:
    return f"PARCEL-{event.order_id}"


def pack_parcel_for_one_order(event: ShipmentRequested) -> OrderShipped:
    return OrderShipped("o-9", tracking_code="PARCEL-o-9")


notebook_bus = EventBus()


def pack_parcel_dispatching_elsewhere(event: ShipmentRequested) -> None:
    notebook_bus.dispatch(OrderShipped(event.order_id, f"PARCEL-{event.order_id}"))


def pack_parcel(event: ShipmentRequested) -> OrderShipped:
    return OrderShipped(event.order_id, tracking_code=f"PARCEL-{event.order_id}")


def test_ex3_a_handler_that_returns_nothing_stops_the_cascade(capsys: Any) -> None:
    not_yet(check.ex3(pack_parcel_stub), "returned nothing", "return the event")
    capsys.readouterr()


def test_ex3_dispatching_on_another_bus_is_explained() -> None:
    not_yet(check.ex3(pack_parcel_dispatching_elsewhere), "returned nothing", "bus of the notebook")


def test_ex3_returning_a_plain_value_reports_the_buses_complaint() -> None:
    not_yet(check.ex3(pack_parcel_returning_a_string), "raised TypeError", "returned 'PARCEL-o-9'")


def test_ex3_a_hard_coded_order_id_fails_for_the_second_order() -> None:
    not_yet(check.ex3(pack_parcel_for_one_order), "ShipmentRequested('o-10')", "event.order_id")


def test_ex3_passes_on_the_solution_and_leaves_the_shop_alone() -> None:
    correct(check.ex3(pack_parcel))


# ---------------------------------------------------------------------- exercise 4

Handlers = Mapping[type, Sequence[Handler]]


def first_generation_only(handlers: Handlers, event: object) -> list[str]:
    called = []
    for handler in handlers.get(type(event), []):
        called.append(handler_name(handler))
        handler(event)
    return called


def nested(handlers: Handlers, event: object) -> list[str]:
    called = []
    for handler in handlers.get(type(event), []):
        called.append(handler_name(handler))
        produced = handler(event)
        if produced is not None:
            called += nested(handlers, produced)
    return called


def with_a_stack(handlers: Handlers, event: object) -> list[str]:
    called, stack = [], [event]
    while stack:
        current = stack.pop()
        for handler in handlers.get(type(current), []):
            called.append(handler_name(handler))
            produced = handler(current)
            if produced is not None:
                stack.append(produced)
    return called


def without_get(handlers: Handlers, event: object) -> list[str]:
    called, queue = [], deque([event])
    while queue:
        current = queue.popleft()
        for handler in handlers[type(current)]:
            called.append(handler_name(handler))
            produced = handler(current)
            if produced is not None:
                queue.append(produced)
    return called


def dispatch_in_order(handlers: Handlers, event: object) -> list[str]:
    called, queue = [], deque([event])
    while queue:
        current = queue.popleft()
        for handler in handlers.get(type(current), []):
            called.append(handler_name(handler))
            produced = handler(current)
            if produced is not None:
                queue.append(produced)
    return called


def test_ex4_the_stub_is_told_to_keep_going_until_the_queue_is_empty() -> None:
    not_yet(check.ex4(first_generation_only), "breadth-first is", "back of the queue")


def test_ex4_recursion_is_recognised_as_the_nested_order() -> None:
    not_yet(check.ex4(nested), "nested order", "append it to the queue")


def test_ex4_a_stack_is_recognised() -> None:
    not_yet(check.ex4(with_a_stack), "a stack", "popleft")


def test_ex4_an_event_without_handlers_must_not_raise() -> None:
    not_yet(check.ex4(without_get), "raised KeyError", "handlers.get")


def test_ex4_returning_handlers_instead_of_names_is_explained() -> None:
    def handlers_not_names(handlers: Handlers, event: object) -> list[object]:
        return list(handlers.get(type(event), []))

    not_yet(check.ex4(handlers_not_names), "not their names", "handler_name")


def test_ex4_passes_on_the_solution() -> None:
    correct(check.ex4(dispatch_in_order))


# ---------------------------------------------------------------------- the notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_dispatch_and_flow.ipynb"


def test_the_mermaid_block_in_notebook_03_is_the_printed_export() -> None:
    """The Markdown copy (drawn by GitHub) must not drift from what to_mermaid prints."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    text = ["".join(c["source"]) for c in cells]
    printed = next(
        "".join(out.get("text", ""))
        for cell, source in zip(cells, text, strict=True)
        if cell["cell_type"] == "code" and "print(to_mermaid(" in source
        for out in cell["outputs"]
    )
    blocks = [re.search(r"```mermaid\n(.*?)```", source, re.DOTALL) for source in text]
    pasted = [block.group(1) for block in blocks if block]
    assert [text.rstrip("\n") for text in pasted] == [printed.rstrip("\n")]
