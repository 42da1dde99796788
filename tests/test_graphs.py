"""Graphs and text exports of a bus and of a dispatch (eda_lesson.views.graphs)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, make_dataclass
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lesson import Command, DispatchResult, EventBus
from eda_lesson.shop.events import (
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.services import Shop
from eda_lesson.views.graphs import (
    check_step,
    flow_graph,
    registration_graph,
    step_caption,
    step_rows,
    step_table,
    to_mermaid,
)
from eda_lesson.views.labels import shorten


def shop_bus() -> tuple[EventBus, Shop]:
    bus, shop = EventBus(), Shop()
    shop.register(bus)
    return bus, shop


def paid_cascade() -> DispatchResult:
    bus, _ = shop_bus()
    return bus.dispatch(OrderPaid("o-1", 42.0))


def audit(event: OrderEvent) -> None:
    """Listens to the base class: hears every order event."""


# Handlers of a small cascade with one failure and one unhandled event.
def mark_paid(event: OrderPaid) -> None:
    pass


def send_receipt(event: OrderPaid) -> None:
    raise ConnectionError('mail server said "no"')


def request_shipment(event: OrderPaid) -> ShipmentRequested:
    return ShipmentRequested(event.order_id)


def small_cascade() -> DispatchResult:
    """OrderPaid -> mark_paid, send_receipt (fails), request_shipment -> ShipmentRequested,
    which nobody handles."""
    bus = EventBus()
    for handler in (mark_paid, send_receipt, request_shipment):
        bus.register(OrderPaid, handler)
    return bus.dispatch(OrderPaid("o-1", 42.0))


# ---------------------------------------------------------------------- registration graph


def test_registration_graph_has_a_node_per_event_type_and_per_handler() -> None:
    bus, _ = shop_bus()
    graph = registration_graph(bus)
    types = [n for n, kind in graph.nodes(data="kind") if kind == "event_type"]
    handlers = [n for n, kind in graph.nodes(data="kind") if kind == "handler"]
    assert [name for _, name in types] == [
        "OrderCreated",
        "OrderPaid",
        "ShipmentRequested",
        "OrderShipped",
        "OrderCancelled",
    ]
    assert len(handlers) == 11
    assert graph.nodes["handler", "Shop.mark_paid"]["label"] == "Shop.mark_paid"
    assert graph.nodes["event_type", "OrderPaid"]["type"] is OrderPaid


def test_registration_edges_point_from_event_type_to_handlers_in_call_order() -> None:
    bus, _ = shop_bus()
    graph = registration_graph(bus)
    listeners = sorted(
        (data["position"], target[1])
        for _, target, data in graph.out_edges(("event_type", "OrderPaid"), data=True)
    )
    assert listeners == [
        (0, "Shop.mark_paid"),
        (1, "Shop.send_receipt"),
        (2, "Shop.request_shipment"),
    ]
    assert {r for _, _, r in graph.edges(data="relation")} == {"listens"}


def test_handler_on_a_base_class_is_reached_through_a_subclass_edge() -> None:
    bus, _ = shop_bus()
    bus.register(OrderEvent, audit)
    graph = registration_graph(bus)
    edge = graph.edges[("event_type", "OrderPaid"), ("event_type", "OrderEvent")]
    assert edge["relation"] == "subclass_of"
    assert nx.has_path(graph, ("event_type", "OrderShipped"), ("handler", "audit"))
    assert not nx.has_path(graph, ("event_type", "OrderEvent"), ("handler", "Shop.mark_paid"))


def test_handlers_reachable_from_a_type_are_exactly_those_dispatch_calls() -> None:
    bus, _ = shop_bus()
    bus.register(OrderEvent, audit)
    graph = registration_graph(bus)
    for event_type in (OrderCreated, OrderPaid, ShipmentRequested, OrderShipped, OrderCancelled):
        reachable = {
            node[1]
            for node in nx.descendants(graph, ("event_type", event_type.__qualname__))
            if node[0] == "handler"
        }
        expected = {s.name for s in bus.subscriptions() if issubclass(event_type, s.message_type)}
        assert reachable == expected, event_type


class Base:
    pass


class Middle(Base):
    pass


class Leaf(Middle):
    pass


def on_base(event: Base) -> None:
    pass


def on_leaf(event: Leaf) -> None:
    pass


def on_middle(event: Middle) -> None:
    pass


def test_subclass_edge_goes_to_the_nearest_registered_base_only() -> None:
    bus = EventBus()
    bus.register(Base, on_base)
    bus.register(Leaf, on_leaf)
    assert registration_graph(bus).has_edge(("event_type", "Leaf"), ("event_type", "Base"))
    bus.register(Middle, on_middle)
    graph = registration_graph(bus)
    assert graph.has_edge(("event_type", "Leaf"), ("event_type", "Middle"))
    assert graph.has_edge(("event_type", "Middle"), ("event_type", "Base"))
    assert not graph.has_edge(("event_type", "Leaf"), ("event_type", "Base"))


def test_a_handler_of_several_types_is_one_node_with_several_edges() -> None:
    bus = EventBus()
    bus.register(OrderPaid, audit)
    bus.register(OrderCancelled, audit)
    graph = registration_graph(bus)
    assert sorted(source[1] for source in graph.predecessors(("handler", "audit"))) == [
        "OrderCancelled",
        "OrderPaid",
    ]


def test_two_different_handlers_with_one_name_get_two_readable_nodes() -> None:
    bus, first, second = EventBus(), Shop(), Shop()
    bus.register(OrderPaid, first.mark_paid)
    bus.register(OrderPaid, second.mark_paid)
    graph = registration_graph(bus)
    handlers = [n[1] for n, kind in graph.nodes(data="kind") if kind == "handler"]
    assert handlers == ["Shop.mark_paid", "Shop.mark_paid (2)"]
    assert all("0x" not in str(node) for node in graph.nodes)


def test_event_types_without_any_handler_are_marked_unhandled() -> None:
    bus, _ = shop_bus()
    graph = registration_graph(bus, event_types=[OrderEvent])
    assert graph.nodes["event_type", "OrderEvent"]["handled"] is False
    assert graph.nodes["event_type", "OrderEvent"]["registered"] is False
    assert graph.nodes["event_type", "OrderPaid"]["handled"] is True


# ---------------------------------------------------------------------- flow graph


def test_flow_graph_of_a_paid_order_is_the_layered_causal_cascade() -> None:
    graph = flow_graph(paid_cascade())
    assert list(graph.nodes) == [
        ("event", 0),
        ("event", 1),
        ("event", 2),
        ("call", 1),
        ("call", 2),
        ("call", 3),
        ("call", 4),
        ("call", 5),
    ]
    assert set(graph.edges) == {
        (("event", 0), ("call", 1)),
        (("event", 0), ("call", 2)),
        (("event", 0), ("call", 3)),
        (("call", 3), ("event", 1)),
        (("event", 1), ("call", 4)),
        (("call", 4), ("event", 2)),
        (("event", 2), ("call", 5)),
    }
    labels = {node: data["label"] for node, data in graph.nodes(data=True)}
    assert labels["event", 1] == "ShipmentRequested"
    assert labels["call", 4] == "Shop.ship_order"
    layers = {node: data["layer"] for node, data in graph.nodes(data=True)}
    assert layers == {
        ("event", 0): 0,
        ("call", 1): 1,
        ("call", 2): 1,
        ("call", 3): 1,
        ("event", 1): 2,
        ("call", 4): 3,
        ("event", 2): 4,
        ("call", 5): 5,
    }
    assert graph.nodes["event", 2]["step"] == 5  # handled at step 5
    assert graph.nodes["event", 2]["caused_by"] == 4
    assert graph.graph == {"name": "flow", "event": "OrderPaid", "steps": 5, "ok": True}


def test_flow_graph_marks_a_failed_call_with_its_error() -> None:
    graph = flow_graph(small_cascade())
    failed = graph.nodes["call", 2]
    assert failed["failed"] is True
    assert failed["error"] == 'ConnectionError: mail server said "no"'
    assert graph.nodes["call", 1]["failed"] is False
    assert graph.nodes["call", 1]["error"] is None
    assert graph.graph["ok"] is False


def test_flow_graph_marks_an_event_no_handler_took_as_unhandled() -> None:
    graph = flow_graph(small_cascade())
    assert graph.nodes["event", 1]["unhandled"] is True
    assert graph.nodes["event", 1]["step"] is None
    assert graph.out_degree(("event", 1)) == 0
    assert graph.nodes["event", 0]["unhandled"] is False


def test_flow_graph_of_an_event_nobody_listens_to_is_one_unhandled_node() -> None:
    graph = flow_graph(EventBus().dispatch(OrderPaid("o-1")))
    assert list(graph.nodes(data="unhandled")) == [(("event", 0), True)]
    assert graph.graph["steps"] == 0


# Random cascades: four event types, each with a few handlers that produce later types
# (by returning them or by dispatching them), some of which fail.
STEP_TYPES = [make_dataclass(f"Stage{i}", [("n", int)], frozen=True) for i in range(4)]
handler_specs = st.tuples(
    st.lists(st.integers(min_value=1, max_value=3), max_size=2),  # produced: type offsets
    st.booleans(),  # fails
    st.booleans(),  # dispatches instead of returning
)
programs = st.lists(st.lists(handler_specs, max_size=3), min_size=4, max_size=4)


def build_program(program: list[list[tuple[list[int], bool, bool]]]) -> EventBus:
    bus = EventBus()
    for level, specs in enumerate(program):
        for number, (offsets, fails, dispatches) in enumerate(specs):
            produced = [STEP_TYPES[level + o] for o in offsets if level + o < len(STEP_TYPES)]
            handler = make_handler(bus, produced, fails, dispatches)
            handler.__qualname__ = f"stage{level}_handler{number}"
            bus.register(STEP_TYPES[level], handler)
    return bus


def make_handler(bus: EventBus, produced: list[type], fails: bool, dispatches: bool) -> Any:
    def handle(event: Any) -> Any:
        if fails:
            raise RuntimeError(f"handler failed on {event.n}")
        events = [cls(event.n + 1) for cls in produced]
        if dispatches:
            for new in events:
                bus.dispatch(new)
            return None
        return events

    return handle


@settings(max_examples=60, deadline=None)
@given(programs)
def test_flow_graph_invariants_hold_for_any_cascade(program: Any) -> None:
    result = build_program(program).dispatch(STEP_TYPES[0](0))
    graph = flow_graph(result)
    assert graph.number_of_nodes() == len(result.events) + len(result.calls)
    assert nx.is_directed_acyclic_graph(graph)
    for source, target in graph.edges:
        assert graph.nodes[target]["layer"] == graph.nodes[source]["layer"] + 1
    for call in result.calls:
        assert list(graph.predecessors(("call", call.step))) == [("event", call.event_index)]
        assert graph.nodes["call", call.step]["failed"] == (call.error is not None)
    for record in result.events:
        causes = list(graph.predecessors(("event", record.index)))
        expected = [] if record.caused_by is None else [("call", record.caused_by)]
        assert causes == expected
        assert graph.nodes["event", record.index]["unhandled"] == record.unhandled
    rows = step_rows(result)
    assert [row.step for row in rows if row.step is not None] == list(
        range(1, len(result.calls) + 1)
    )
    assert sum(row.unhandled for row in rows) == len(result.unhandled)
    from eda_lesson.views.folding import folded_graph, page_graph

    page, left_out = page_graph(folded_graph(result))
    mermaid = to_mermaid(result)
    assert mermaid.count(" --> ") == page.number_of_edges(), "the page the drawing keeps"
    assert ("left out" in mermaid) == bool(left_out)
    if not left_out:
        assert page.number_of_edges() <= graph.number_of_edges()


# ---------------------------------------------------------------------- text exports


def test_mermaid_text_of_a_small_cascade() -> None:
    assert to_mermaid(small_cascade()) == (
        "flowchart LR\n"
        '    e0(["OrderPaid"]):::edaEvent\n'
        '    e1(["ShipmentRequested · no handler"]):::edaUnhandled\n'
        '    c1["step 1: mark_paid"]:::edaHandler\n'
        '    c2["step 2: send_receipt · '
        'failed: ConnectionError: mail server said #quot;no#quot;"]:::edaFailed\n'
        '    c3["step 3: request_shipment"]:::edaHandler\n'
        "    e0 --> c1\n"
        "    e0 --> c2\n"
        "    e0 --> c3\n"
        "    c3 --> e1\n"
        "    classDef edaEvent fill:#bbe1f6,stroke:#0072b2,color:#111827\n"
        "    classDef edaHandler fill:#99d8c7,stroke:#009e73,color:#111827\n"
        "    classDef edaFailed fill:#f0c7a6,stroke:#d55e00,color:#111827,"
        "stroke-width:2px,stroke-dasharray:6 3\n"
        "    classDef edaUnhandled fill:#f6dda6,stroke:#e69f00,color:#111827,"
        "stroke-width:1.8px,stroke-dasharray:2 2\n"
    )


def test_mermaid_ids_are_stable_across_dispatches() -> None:
    assert to_mermaid(paid_cascade()) == to_mermaid(paid_cascade())


@dataclass(frozen=True)
class Tagged:
    tag: str


def mermaid_label(text: str, node: str = "c1") -> str:
    """The quoted label of ``node`` in a Mermaid export."""
    line = next(line for line in text.splitlines() if line.strip().startswith(node))
    return line[line.index('"') + 1 : line.rindex('"')]


def test_mermaid_escapes_what_would_break_a_label() -> None:
    def weird(event: Tagged) -> None:
        raise ValueError('<b>"#1;"</b> & 100%%')

    bus = EventBus()
    bus.register(Tagged, weird)
    inner = mermaid_label(to_mermaid(bus.dispatch(Tagged("x"))))
    assert not set(inner) & set('"<>&%')
    assert "#lt;b#gt;#quot;#35;1;#quot;#lt;/b#gt; #amp; 100#37;#37;" in inner


def test_mermaid_labels_stay_on_one_line_and_keep_readable_unicode() -> None:
    def name(event: Tagged) -> None:
        raise ValueError("first\nsecond\r\n\tthird")

    name.__qualname__ = "Café.注文\r\n\t📦"
    bus = EventBus()
    bus.register(Tagged, name)
    text = to_mermaid(bus.dispatch(Tagged("x")))
    assert len(text.splitlines()) == 1 + 2 + 1 + 4  # header, two nodes, one edge, four classes
    assert mermaid_label(text) == "step 1: Café.注文 📦 · failed: ValueError: first second third"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("`Markdown`", "#96;Markdown#96;"),  # "`...`" would be a Markdown string
        ("restyle a:<b>", "restyle a#58;#lt;b#gt;"),  # Mermaid drops a ";" after style ... :#
        ("a: b", "a: b"),
        ("zero\u200bwidth", "zero#8203;width"),
        ("\ufb02\xb0x\xb6\xdf", "\ufb02#8288;\xb0x\xb6#8288;\xdf"),  # Mermaid's placeholders
        ("", "#160;"),  # Mermaid refuses an empty label
        ("Shop.send_receipt", "Shop.send_receipt"),
    ],
)
def test_mermaid_writes_awkward_names_as_entity_codes(name: str, label: str) -> None:
    bus = EventBus()
    event_type = make_dataclass(name or "Empty", [("tag", str)], frozen=True)
    event_type.__name__ = name
    bus.register(event_type, mark_paid)
    assert mermaid_label(to_mermaid(bus.dispatch(event_type("x"))), "e0") == label


def test_mermaid_class_names_are_never_mermaid_keywords() -> None:
    keywords = {"call", "end", "click", "style", "class", "classDef", "default", "subgraph"}
    keywords |= {"graph", "linkStyle", "flowchart", "direction", "href", "callback"}
    text = to_mermaid(small_cascade())
    classes = {line.split()[1] for line in text.splitlines() if "classDef" in line}
    used = {line.rsplit(":::", 1)[1] for line in text.splitlines() if ":::" in line}
    assert used <= classes
    assert classes == {"edaEvent", "edaHandler", "edaFailed", "edaUnhandled"}
    assert not {name.lower() for name in classes} & {word.lower() for word in keywords}


def test_step_table_lists_every_call_in_order_with_its_outcome() -> None:
    assert step_table(small_cascade()) == (
        "step  event                 handler           outcome\n"
        "   1  #0 OrderPaid          mark_paid         ok\n"
        "   2  #0 OrderPaid          send_receipt      "
        'failed: ConnectionError: mail server said "no"\n'
        "   3  #0 OrderPaid          request_shipment  ok, produced #1 ShipmentRequested\n"
        "   -  #1 ShipmentRequested  (none)            no handler"
    )


def test_step_caption_tells_where_a_step_through_stands() -> None:
    result = small_cascade()
    assert step_caption(result) == (
        "dispatch of OrderPaid: 2 events, 3 handler calls, 1 failed, 1 unhandled"
    )
    assert step_caption(result, 0) == "step 0 of 3: OrderPaid dispatched, no handler ran yet"
    assert step_caption(result, 1) == "step 1 of 3: mark_paid handles #0 OrderPaid"
    assert step_caption(result, 2) == (
        "step 2 of 3: send_receipt handles #0 OrderPaid and fails "
        '(ConnectionError: mail server said "no")'
    )


@pytest.mark.parametrize("step", [-1, 4, 1.5, True, "2"])
def test_a_step_the_dispatch_does_not_have_is_refused_with_the_valid_range(step: Any) -> None:
    with pytest.raises(
        ValueError, match=r"it has 3 steps, so choose a whole number from 0 .* to 3"
    ):
        check_step(small_cascade(), step)


def test_shorten_keeps_the_last_part_of_a_dotted_name_and_marks_cuts() -> None:
    assert shorten("Shop.mark_paid", 20) == "Shop.mark_paid"
    assert shorten("Shop.request_shipment", 18) == "request_shipment"
    assert shorten("an error message that goes on", 10) == "an error …"
    assert len(shorten("x" * 100, 26)) == 26


def test_importing_eda_lesson_loads_no_graph_or_drawing_library() -> None:
    code = (
        "import sys, eda_lesson\n"
        "heavy = ('networkx', 'matplotlib', 'ipywidgets')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "import eda_lesson.views.graphs\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert run.stdout.splitlines() == ["[]", "['networkx']"]


@dataclass(frozen=True)
class ShipOrder(Command):
    order_id: str


def test_commands_have_their_own_shape_and_class_in_mermaid_and_are_marked_in_tables() -> None:
    bus = EventBus()
    bus.register(OrderPaid, lambda event: ShipOrder(event.order_id))
    bus.register(ShipOrder, ship_order)
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    text = to_mermaid(result)
    assert 'e1{{"ShipOrder"}}:::edaCommand' in text and "classDef edaCommand " in text
    assert 'e0(["OrderPaid"]):::edaEvent' in text
    assert "classDef edaCommand " not in to_mermaid(small_cascade())
    assert "#1 ShipOrder (command)" in step_table(result)
    assert step_caption(result).startswith("dispatch of OrderPaid: 2 messages")


def ship_order(command: ShipOrder) -> str:
    return "tracking-1"
