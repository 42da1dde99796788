"""Repeated structure in a cascade, folded: 200 alike orders drawn once, with a count.

A handler that loops (one ``BatchImported`` becoming 200 ``OrderPaid``) makes a cascade of
hundreds of events whose sub-cascades all look the same. :func:`fold_groups` finds them: the
*shape* of an event's sub-cascade is its type, its handler calls in order (name and outcome)
and, for each call, the shapes of the events it produced (:func:`shapes`). Siblings (the events
one handler call produced) with the same shape form a group; a group of at least
:data:`FOLD_AT` is folded into one box, "x 200 OrderPaid, each: mark_paid, send_receipt, …".
A sibling whose sub-cascade differs (one call failed, an event nobody handled) has another
shape, so it stays outside the group, drawn on its own: the exceptions stay visible.

:func:`folded_graph` is :func:`~eda_lesson.views.graphs.flow_graph` with each folded group
replaced by one node of kind ``"group"``; with ``fold=False`` it holds the same nodes and
edges as ``flow_graph``. :func:`bound_graph` cuts a graph to a number of layers and rows and
says what it left out; :func:`page_graph` is the one page rule, :data:`PAGE_LAYERS` by
:data:`PAGE_ROWS` boxes, that the drawings and the Mermaid export share. Drawings, the Mermaid
export and the step table all read these.
Nothing here dispatches or draws.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx  # type: ignore[import-untyped]

from eda_lesson.core.text import plural
from eda_lesson.views.labels import shorten

if TYPE_CHECKING:
    from eda_lesson.core.result import DispatchResult

__all__ = [
    "FOLD_AT",
    "PAGE",
    "PAGE_LAYERS",
    "PAGE_ROWS",
    "FoldGroup",
    "LeftOut",
    "bound_graph",
    "fold_groups",
    "folded_graph",
    "page_graph",
    "shapes",
]

FOLD_AT = 3
"""The fewest alike siblings folded into one group: two alike orders are still drawn twice."""

PAGE = (12.0, 8.0)
"""The most a cascade's picture takes, in inches: a notebook page."""
PAGE_LAYERS = 7
"""The most layers of a cascade a page shows (event, calls, events, ... left to right): the
drawing's tightest spacing is made to hold this many columns in :data:`PAGE`'s width."""
PAGE_ROWS = 12
"""The most boxes a layer of a page shows, top to bottom (the tightest spacing holds them,
with the title, the legend and a note saying what was left out)."""
_NAMED = 3  # the most kinds of event (or handlers) a note names


@dataclass(frozen=True)
class FoldGroup:
    """Alike siblings folded into one: ``members`` are their event indexes, the first one
    naming the group (``unfold={first}`` draws them one by one again)."""

    members: tuple[int, ...]
    type_name: str
    handlers: tuple[str, ...]
    """The handler names of one member's calls, in call order."""
    events_each: int
    """Events in one member's sub-cascade, the member included."""
    calls_each: int
    steps: tuple[int, ...]
    """Every step the group's sub-cascades ran, in order."""
    failed_each: int
    unhandled: bool
    hidden: frozenset[int] = field(default=frozenset(), repr=False, compare=False)
    """Every event the group stands for: its members and their sub-cascades."""

    @property
    def first(self) -> int:
        """The index of the first member: the group's name in ``unfold``."""
        return self.members[0]

    @property
    def count(self) -> int:
        """How many alike events the group folds."""
        return len(self.members)

    def summary(self) -> str:
        """``"each: mark_paid, send_receipt, request_shipment (+2 more calls)"``."""
        if self.unhandled:
            return "each: no handler"
        names = list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in self.handlers))
        text = "each: " + ", ".join(names[:3])
        more = self.calls_each - len(self.handlers[:3])
        if self.calls_each > 3:
            text += f" (+{more} more {'call' if more == 1 else 'calls'})"
        if self.failed_each:
            text += f", {self.failed_each} failed"
        return text


@dataclass(frozen=True)
class LeftOut:
    """What :func:`bound_graph` did not keep, counted in events and handler calls.

    >>> LeftOut(40, 80, layers=2, rows=12, names=("ShipmentRequested", "OrderShipped")).note()
    'left out: 40 events (ShipmentRequested, OrderShipped), 80 handler calls; 2 deeper layers, ...'
    """

    events: int = 0
    calls: int = 0
    layers: int = 0
    """Layers cut off on the right."""
    rows: int = 0
    """Boxes cut off below the last row of a layer."""
    names: tuple[str, ...] = ()
    """The first few kinds of event left out (their type names, in the layout's order), or the
    handlers' names when only calls were."""

    def __bool__(self) -> bool:
        return bool(self.events or self.calls)

    def note(self) -> str:
        """What was left out, in one line: the picture's note and the export's comment."""
        named = f" ({', '.join(self.names)})" if self.names else ""
        events, calls = plural(self.events, "event"), plural(self.calls, "handler call")
        parts = [f"left out: {events}{named if self.events else ''}, {calls}"]
        if named and not self.events:
            parts[0] += named
        where = []
        if self.layers:
            where.append(plural(self.layers, "deeper layer"))
        if self.rows:
            where.append(plural(self.rows, "more box", "more boxes"))
        if where:
            parts.append(", ".join(where))
        parts.append("see step_table(result) for them all")
        return "; ".join(parts)


def shapes(result: DispatchResult) -> list[int]:
    """The shape of each event's sub-cascade, as a number: two events have the same number
    exactly when their types, their handler calls (names, in order, and whether and how each
    failed) and, recursively, the shapes of what each call produced are the same. Linear in
    the size of the cascade."""
    records, calls = result.events, result.calls
    known: dict[tuple[Any, ...], int] = {}
    shape = [0] * len(records)
    for record in reversed(records):  # an event's children come after it in the queue
        parts = []
        for step in record.handled_by:
            call = calls[step - 1]
            error = None if call.error is None else type(call.error).__qualname__
            parts.append((call.name, error, tuple(shape[i] for i in call.produced)))
        key = (type(record.event), tuple(parts))
        shape[record.index] = known.setdefault(key, len(known))
    return shape


def fold_groups(
    result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()
) -> list[FoldGroup]:
    """The groups of at least :data:`FOLD_AT` alike siblings, outermost first; none with
    ``fold=False``. ``unfold`` holds groups' first event indexes to leave unfolded (their
    members are drawn one by one, and groups inside them are folded in their turn)."""
    if not fold:
        return []
    shape = shapes(result)
    groups: list[FoldGroup] = []
    hidden: set[int] = set()
    for call in result.calls:
        if len(call.produced) < FOLD_AT or call.event_index in hidden:
            continue
        alike: dict[int, list[int]] = {}
        for index in call.produced:
            alike.setdefault(shape[index], []).append(index)
        for members in alike.values():
            if len(members) >= FOLD_AT and members[0] not in unfold:
                group = _group(result, tuple(members))
                groups.append(group)
                hidden |= group.hidden
    return groups


def folded_index(
    result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()
) -> tuple[list[FoldGroup], set[int], dict[int, FoldGroup]]:
    """The groups of ``result``, the indexes of the events they hide, and each group by the
    index of its first event (where a picture or a table shows it)."""
    groups = fold_groups(result, fold=fold, unfold=unfold)
    hidden: set[int] = set()
    head: dict[int, FoldGroup] = {}
    for group in groups:
        hidden |= group.hidden
        head[group.first] = group
    return groups, hidden, head


def _group(result: DispatchResult, members: tuple[int, ...]) -> FoldGroup:
    records, calls = result.events, result.calls
    hidden: set[int] = set()
    steps: list[int] = []
    failed = 0
    for member in members:
        stack = [member]
        while stack:
            index = stack.pop()
            hidden.add(index)
            for step in records[index].handled_by:
                steps.append(step)
                call = calls[step - 1]
                failed += call.error is not None
                stack.extend(call.produced)
    first = records[members[0]]
    handlers = tuple(calls[step - 1].name for step in first.handled_by)
    return FoldGroup(
        members=members,
        type_name=first.type_name,
        handlers=handlers,
        events_each=len(hidden) // len(members),
        calls_each=len(steps) // len(members),
        steps=tuple(sorted(steps)),
        failed_each=failed // len(members),
        unhandled=first.unhandled,
        hidden=frozenset(hidden),
    )


def folded_graph(
    result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()
) -> nx.DiGraph:
    """The flow graph of ``result`` with each folded group as one node.

    Nodes and edges are those of :func:`~eda_lesson.views.graphs.flow_graph`, in the same
    order, less the members of folded groups and their sub-cascades; each group is a node
    ``("group", first)`` where its first member was, with ``kind="group"``, ``label`` (the type
    name), ``count``, ``summary``, ``group`` (the :class:`FoldGroup`), ``index``, ``depth``,
    ``layer``, ``step`` (its first step), ``last_step``, ``caused_by``, ``command`` and
    ``unhandled``. Every node also has ``events`` and ``calls``: how many of the cascade's
    events and handler calls it stands for; event nodes have ``calls_before`` (the calls of
    all the events before it, when an unhandled one is met). Graph attribute ``groups`` lists
    the groups.
    """
    from eda_lesson.views.graphs import _call_attributes, _event_attributes

    records, calls = result.events, result.calls
    groups, hidden, head = folded_index(result, fold=fold, unfold=unfold)
    graph = nx.DiGraph(name="flow", event=type(result.event).__name__, steps=len(calls))
    graph.graph["ok"] = result.ok
    graph.graph["groups"] = groups
    before = 0
    for record in records:
        if record.index in head:
            group = head[record.index]
            graph.add_node(("group", record.index), **_group_attributes(record, group))
        elif record.index not in hidden:
            attributes = _event_attributes(record)
            attributes.update(events=1, calls=0, calls_before=before)
            graph.add_node(("event", record.index), **attributes)
        before += len(record.handled_by)
    for call in calls:
        if call.event_index not in hidden:
            attributes = _call_attributes(call, records[call.event_index].depth)
            attributes.update(events=0, calls=1)
            graph.add_node(("call", call.step), **attributes)
    for record in records:
        if record.index in hidden:
            continue
        for position, step in enumerate(record.handled_by):
            graph.add_edge(
                ("event", record.index), ("call", step), relation="handled_by", position=position
            )
    for call in calls:
        if call.event_index in hidden:
            continue
        for index in call.produced:
            if index in head:
                graph.add_edge(("call", call.step), ("group", index), relation="produced")
            elif index not in hidden:
                graph.add_edge(("call", call.step), ("event", index), relation="produced")
    return graph


def _group_attributes(record: Any, group: FoldGroup) -> dict[str, Any]:
    return {
        "kind": "group",
        "label": group.type_name,
        "count": group.count,
        "summary": group.summary(),
        "group": group,
        "index": record.index,
        "depth": record.depth,
        "layer": 2 * record.depth,
        "step": group.steps[0] if group.steps else None,
        "last_step": group.steps[-1] if group.steps else None,
        "caused_by": record.caused_by,
        "failed": group.failed_each > 0,
        "unhandled": group.unhandled,
        "command": record.is_command,
        "error": None,
        "events": group.events_each * group.count,
        "calls": group.calls_each * group.count,
    }


def bound_graph(graph: nx.DiGraph, *, layers: int, rows: int) -> tuple[nx.DiGraph, LeftOut]:
    """``graph`` cut to its first ``layers`` layers and ``rows`` boxes a layer (in the order
    of the layout: by event index, by step), and what was left out. A box whose cause was
    left out is left out too, so every box kept is reached from the dispatched event."""
    order: dict[int, list[tuple[int, Hashable]]] = {}
    for node, data in graph.nodes(data=True):
        key = data["index"] if data["kind"] != "call" else data["step"]
        order.setdefault(data["layer"], []).append((key, node))
    dropped: list[Hashable] = []
    gone: set[Hashable] = set()
    cut_layers = cut_rows = 0
    for layer in sorted(order):
        members = sorted(order[layer], key=lambda member: member[0])
        if layer >= layers:
            dropped.extend(node for _, node in members)
            gone.update(node for _, node in members)
            cut_layers += 1
            continue
        kept = 0
        for _, node in members:
            if any(p in gone for p in graph.predecessors(node)) or kept >= rows:
                dropped.append(node)
                gone.add(node)
                cut_rows += kept >= rows
            else:
                kept += 1
    if not dropped:
        return graph, LeftOut()
    events = sum(graph.nodes[n]["events"] for n in dropped)
    calls = sum(graph.nodes[n]["calls"] for n in dropped)
    return _without(graph, gone), LeftOut(
        events, calls, cut_layers, cut_rows, _names(graph, dropped)
    )


def _without(graph: nx.DiGraph, gone: set[Hashable]) -> nx.DiGraph:
    """A copy of ``graph`` less the nodes ``gone``, its nodes and edges in the same order (a
    networkx subgraph's order follows a set's, which may change from one run to the next)."""
    kept = nx.DiGraph()
    kept.graph.update(graph.graph)
    kept.add_nodes_from((n, data) for n, data in graph.nodes(data=True) if n not in gone)
    kept.add_edges_from(
        (u, v, data) for u, v, data in graph.edges(data=True) if u not in gone and v not in gone
    )
    return kept


def _names(graph: nx.DiGraph, dropped: list[Hashable]) -> tuple[str, ...]:
    """The first few kinds of event among ``dropped`` (handlers, when no event is)."""
    for kinds in (("event", "group"), ("call",)):
        names = dict.fromkeys(
            shorten(graph.nodes[n]["label"], 24) for n in dropped if graph.nodes[n]["kind"] in kinds
        )
        if names:
            listed = list(names)[:_NAMED]
            return (*listed, "…") if len(names) > _NAMED else tuple(listed)
    return ()


def page_graph(graph: nx.DiGraph) -> tuple[nx.DiGraph, LeftOut]:
    """``graph`` cut to one page, :data:`PAGE_LAYERS` layers of at most :data:`PAGE_ROWS`
    boxes, and what was left out: the rule the drawings and the Mermaid export share. A graph
    that fits is returned as it is, with nothing left out.

    >>> from eda_lesson import EventBus
    >>> from eda_lesson.shop.events import OrderPaid, ShipmentRequested
    >>> bus = EventBus()
    >>> _ = bus.register(OrderPaid, lambda paid: [ShipmentRequested(f"o-{n}") for n in range(40)])
    >>> result = bus.dispatch(OrderPaid("o", 1.0))
    >>> graph, left_out = page_graph(folded_graph(result, fold=False))
    >>> left_out.note()
    'left out: 28 events (ShipmentRequested), 0 handler calls; 28 more boxes; see step_table...'
    >>> sum(1 for _, layer in graph.nodes(data="layer") if layer == 2) == PAGE_ROWS
    True
    """
    return bound_graph(graph, layers=PAGE_LAYERS, rows=PAGE_ROWS)
