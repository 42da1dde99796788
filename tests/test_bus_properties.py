"""Invariants of the bus, checked on generated cascades (hypothesis)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson import EventBus


@dataclass(frozen=True)
class Node:
    """An event whose name says where it sits in a generated tree."""

    name: str


# A "program": for each handler (by position), a map from event name to the children it emits,
# and the set of event names on which it raises.
programs = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(["r", "a", "b", "c"]),
            st.lists(st.sampled_from(["a", "b", "c", "leaf"]), max_size=3),
            max_size=4,
        ),
        st.sets(st.sampled_from(["r", "a", "b", "c", "leaf"]), max_size=2),
    ),
    min_size=1,
    max_size=4,
)


def reference_order(program, limit: int) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """The (event name, handler position) calls a breadth-first bus must make, computed with
    a plain queue and no bus at all."""
    calls, queue, events = [], deque(["r"]), 1
    while queue and events <= limit:
        name = queue.popleft()
        for position, (children, raises) in enumerate(program):
            calls.append((name, position))
            if name in raises:
                continue
            for child in children.get(name, []):
                queue.append(child)
                events += 1
    return calls


def build_bus(program) -> EventBus:  # type: ignore[no-untyped-def]
    bus = EventBus(max_cascade=10_000)
    for children, raises in program:

        def handler(event: Node, children=children, raises=raises) -> list[Node]:
            if event.name in raises:
                raise RuntimeError(event.name)
            return [Node(child) for child in children.get(event.name, [])]

        bus.register(Node, handler)
    return bus


@settings(max_examples=200, deadline=None)
@given(programs)
def test_calls_follow_a_breadth_first_queue_and_failures_do_not_stop_others(program) -> None:  # type: ignore[no-untyped-def]
    bus = build_bus(program)
    bus.max_cascade = 200
    try:
        result = bus.dispatch(Node("r"))
    except Exception as error:  # the generated program may loop; that must be the limit error
        from eda_lesson import CascadeLimitError

        assert isinstance(error, CascadeLimitError)
        return
    expected = reference_order(program, limit=10_000)
    handlers = bus.handlers_for(Node)
    actual = [
        (result.events[c.event_index].event.name, handlers.index(c.handler)) for c in result.calls
    ]
    assert actual == expected
    raised = [(n, p) for n, p in expected if n in program[p][1]]
    assert [
        (result.events[c.event_index].event.name, handlers.index(c.handler))
        for c in result.failures
    ] == raised


@settings(max_examples=200, deadline=None)
@given(programs)
def test_every_event_but_the_first_was_produced_by_exactly_one_earlier_call(program) -> None:  # type: ignore[no-untyped-def]
    bus = build_bus(program)
    bus.max_cascade = 200
    try:
        result = bus.dispatch(Node("r"))
    except Exception:
        return
    produced_by = {index: call.step for call in result.calls for index in call.produced}
    assert set(produced_by) == set(range(1, len(result.events)))
    for record in result.events:
        assert record.caused_by == produced_by.get(record.index)
        if record.caused_by is not None:
            cause = result.calls[record.caused_by - 1]
            assert cause.event_index < record.index
            assert record.depth == result.events[cause.event_index].depth + 1
    assert [c.step for c in result.calls] == list(range(1, len(result.calls) + 1))
    assert len(result.calls) == len(result.events) * len(program)
