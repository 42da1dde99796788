"""What a bus knows and what one dispatch did, as graphs and as text for docs.

- :func:`registration_graph` turns a bus's registrations into a networkx ``DiGraph``: event
  types, handlers, which handler listens to which type, and which type is a subclass of which
  (so a handler on ``OrderEvent`` is seen reaching ``OrderPaid``).
- :func:`flow_graph` turns one :class:`~eda_lesson.core.result.DispatchResult` into the causal graph
  of its cascade: every event occurrence, every handler call, every event a call produced.
- :func:`to_mermaid` writes that graph as a Mermaid flowchart (GitHub renders it in Markdown),
  and :func:`step_table` as a plain-text table of the steps. Both fold alike siblings into
  one group with a count (:mod:`eda_lesson.views.folding`), so a loop of 200 orders stays short.

Everything is read from the bus's registrations and from the result's records; this module
never dispatches, never calls a handler and draws nothing (:mod:`eda_lesson.views.flow` draws
these graphs). It loads networkx, so ``import eda_lesson`` never imports it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import networkx as nx  # type: ignore[import-untyped]

from eda_lesson.core.text import plural
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import INKS, TEXT, Ink

if TYPE_CHECKING:
    from eda_lesson.core.bus import BaseBus
    from eda_lesson.core.result import DispatchResult, EventRecord, HandlerCall
    from eda_lesson.views.folding import FoldGroup

_NO_GROUPS: Mapping[int, FoldGroup] = MappingProxyType({})

__all__ = [
    "StepRow",
    "check_step",
    "error_text",
    "flow_graph",
    "registration_graph",
    "step_caption",
    "step_rows",
    "step_table",
    "to_mermaid",
]

# ---------------------------------------------------------------------- registrations


def registration_graph(bus: BaseBus, *, event_types: Iterable[type] = ()) -> nx.DiGraph:
    """The registrations of ``bus`` as a directed graph.

    Nodes are ``("event_type", name)`` and ``("handler", name)``, with attributes ``kind``
    (``"event_type"`` or ``"handler"``) and ``label``; event types also carry ``type`` (the
    class), ``registered`` (handlers listen to it directly) and ``handled`` (some handler is
    reached, directly or through a base class); handlers carry ``handler`` (the callable).

    Edges point the way events travel: ``event type -> handler`` (``relation="listens"``,
    ``position`` = its place in that type's call order) and ``subclass -> nearest registered
    base`` (``relation="subclass_of"``). So the handlers a dispatch of type ``T`` calls are
    exactly the handlers reachable from ``T``'s node.

    ``event_types`` adds types with no handler of their own (to show them unhandled).
    """
    graph = nx.DiGraph(name="registrations")
    subscriptions = bus.subscriptions()
    types: list[type] = list(dict.fromkeys([s.message_type for s in subscriptions]))
    types += [t for t in dict.fromkeys(event_types) if t not in types]
    type_nodes = _unique_type_nodes(types)
    for cls in types:
        graph.add_node(
            type_nodes[cls],
            kind="event_type",
            label=type_nodes[cls][1],
            type=cls,
            registered=False,
            handled=False,
            command=_is_command_type(cls),
        )
    handler_nodes: list[tuple[object, tuple[str, str]]] = []
    positions: dict[type, int] = {}
    for subscription in subscriptions:
        node = _handler_node(handler_nodes, subscription.handler, subscription.name)
        graph.add_node(node, kind="handler", label=node[1], handler=subscription.handler)
        source = type_nodes[subscription.message_type]
        graph.nodes[source]["registered"] = True
        position = positions.get(subscription.message_type, 0)
        positions[subscription.message_type] = position + 1
        graph.add_edge(source, node, relation="listens", position=position)
    for cls in types:
        for base in _nearest_bases(cls, types):
            graph.add_edge(type_nodes[cls], type_nodes[base], relation="subclass_of")
    for cls in types:
        node = type_nodes[cls]
        graph.nodes[node]["handled"] = any(
            graph.nodes[n]["kind"] == "handler" for n in nx.descendants(graph, node)
        )
    return graph


def _is_command_type(cls: type) -> bool:
    from eda_lesson.core.messages import Command

    return issubclass(cls, Command)


def _unique_type_nodes(types: list[type]) -> dict[type, tuple[str, str]]:
    """A readable node per class: its qualified name, with the module when two clash."""
    nodes: dict[type, tuple[str, str]] = {}
    taken: set[str] = set()
    for cls in types:
        name = cls.__qualname__
        if name in taken:
            name = f"{cls.__module__}.{cls.__qualname__}"
        taken.add(name)
        nodes[cls] = ("event_type", name)
    return nodes


def _handler_node(
    known: list[tuple[object, tuple[str, str]]], handler: object, name: str
) -> tuple[str, str]:
    """The node of ``handler``: one node per handler, even when it listens to several types.

    Handlers are compared with ``==`` (two bound methods of one object's method are equal);
    a different handler with a name already taken gets a numbered name, never a memory address.
    """
    for other, node in known:
        if other is handler or _equal(other, handler):
            return node
    taken = {node[1] for _, node in known}
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name} ({number})", number + 1
    node = ("handler", unique)
    known.append((handler, node))
    return node


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a callable with an odd __eq__ is simply a different handler
        return False


def _nearest_bases(cls: type, types: list[type]) -> list[type]:
    """The registered base classes of ``cls`` that no other registered base lies between."""
    bases = [base for base in cls.__mro__[1:] if base in types]
    return [
        base
        for base in bases
        if not any(other is not base and issubclass(other, base) for other in bases)
    ]


# ---------------------------------------------------------------------- one dispatch


def flow_graph(result: DispatchResult) -> nx.DiGraph:
    """The causal graph of one dispatch, built from the result's records only.

    Nodes are ``("event", index)`` and ``("call", step)``. Every node has ``kind``
    (``"event"`` or ``"call"``), ``label``, ``depth`` (generation of the cascade), ``layer``
    (``2 * depth`` for events, ``2 * depth + 1`` for calls: left to right in drawings),
    ``step`` (a call's step; for an event the step of its first handler call, None when
    unhandled), ``failed``, ``unhandled`` and ``error`` (``"ValueError: message"`` or None).
    Events also carry ``index``, ``event``, ``caused_by``, ``command`` (the message is a
    :class:`~eda_lesson.core.bus.Command`) and ``text`` (a short repr); calls
    carry ``event_index``, ``produced``, ``started`` and ``ended``.

    Edges: ``event -> call`` (``relation="handled_by"``, ``position`` = call order for that
    event) and ``call -> event`` (``relation="produced"``). Graph attributes: ``event`` (type
    name of the dispatched event), ``steps`` (number of calls) and ``ok``.
    """
    calls, records = result.calls, result.events
    graph = nx.DiGraph(name="flow", event=type(result.event).__name__, steps=len(calls))
    graph.graph["ok"] = result.ok
    for record in records:
        graph.add_node(("event", record.index), **_event_attributes(record))
    for call in calls:
        depth = records[call.event_index].depth
        graph.add_node(("call", call.step), **_call_attributes(call, depth))
    for record in records:
        for position, step in enumerate(record.handled_by):
            graph.add_edge(
                ("event", record.index), ("call", step), relation="handled_by", position=position
            )
    for call in calls:
        for index in call.produced:
            graph.add_edge(("call", call.step), ("event", index), relation="produced")
    return graph


def _event_attributes(record: EventRecord) -> dict[str, Any]:
    return {
        "kind": "event",
        "label": record.type_name,
        "index": record.index,
        "event": record.event,
        "text": shorten(repr(record.event), 60),
        "depth": record.depth,
        "layer": 2 * record.depth,
        "step": record.handled_by[0] if record.handled_by else None,
        "caused_by": record.caused_by,
        "failed": False,
        "unhandled": record.unhandled,
        "command": record.is_command,
        "error": None,
    }


def _call_attributes(call: HandlerCall, depth: int) -> dict[str, Any]:
    return {
        "kind": "call",
        "label": call.name,
        "step": call.step,
        "event_index": call.event_index,
        "depth": depth,
        "layer": 2 * depth + 1,
        "failed": call.error is not None,
        "unhandled": False,
        "error": error_text(call.error),
        "produced": call.produced,
        "started": call.started,
        "ended": call.ended,
    }


def error_text(error: BaseException | None) -> str | None:
    """``"ValueError: message"`` (just the class name when the message is empty), or None."""
    if error is None:
        return None
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# ---------------------------------------------------------------------- text exports


def to_mermaid(result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()) -> str:
    """The cascade of ``result`` as a Mermaid flowchart, left to right.

    Node ids are stable: ``e0, e1, ...`` for events by index and ``c1, c2, ...`` for calls by
    step, so the text of a cascade changes only when the cascade does. Every node has a class
    (its colours and border from :data:`~eda_lesson.views.palette.INKS`, as in the drawings):
    ``edaEvent``, ``edaCommand`` (a hexagon), ``edaHandler``, ``edaFailed`` (a bold dashed
    border) and ``edaUnhandled`` (a dotted one). Labels are quoted and escaped, so any class name,
    handler name or error message renders as written (see :func:`_mermaid_text`).
    Paste it into Markdown between ```` ```mermaid ```` fences and GitHub draws it.

    At least three alike sibling events are one node ``g<first index>`` (class ``edaFolded``,
    a bold border), "x 200 OrderPaid · each: ..."; ``unfold`` and ``fold=False`` as in
    :func:`~eda_lesson.views.flow.draw_flow`.

    Like the drawing, the export keeps to one page (the rule of
    :func:`~eda_lesson.views.folding.page_graph`): at most
    :data:`~eda_lesson.views.folding.PAGE_LAYERS` layers of
    :data:`~eda_lesson.views.folding.PAGE_ROWS` nodes. When it leaves some out, a ``%%``
    comment and a note node ``leftout`` (class ``edaNote``, dashed) say what, in the words of
    the drawing's note.
    """
    from eda_lesson.views.folding import folded_graph, page_graph

    graph, left_out = page_graph(folded_graph(result, fold=fold, unfold=unfold))
    lines = ["flowchart LR"]
    if left_out:
        note = _mermaid_text(left_out.note(), 400)
        lines += [f"    %% {note}", f'    leftout["{note}"]:::edaNote']
    for node, data in graph.nodes(data=True):
        lines.append("    " + _mermaid_node(node, data))
    for source, target in graph.edges():
        lines.append(f"    {_mermaid_id(source)} --> {_mermaid_id(target)}")
    commands = any(data.get("command") for _, data in graph.nodes(data=True))
    for kind, name in _MERMAID_CLASSES.items():
        if kind == "command" and not commands:
            continue
        lines.append(f"    classDef {name} {_mermaid_style(INKS[kind])}")
    if graph.graph["groups"]:
        lines.append(f"    classDef edaFolded {_mermaid_style(INKS['event'].but(width=2.4))}")
    if left_out:
        lines.append(f"    classDef edaNote {_mermaid_style(INKS['pending'].but(dashes='--'))}")
    return "\n".join(lines) + "\n"


#: Mermaid's dash patterns (SVG ``stroke-dasharray``) for the palette's line styles.
_MERMAID_DASHES = {"--": "6 3", ":": "2 2", "-.": "6 2 2 2"}


def _mermaid_style(ink: Ink) -> str:
    """A ``classDef`` body with the ink's colours and its border's width and dashes (Mermaid
    has no hatching: a failure's second cue there is its bold dashed border)."""
    style = f"fill:{ink.fill},stroke:{ink.stroke},color:{TEXT}"
    if ink.width != 1.2:
        style += f",stroke-width:{ink.width:g}px"
    if ink.dashes in _MERMAID_DASHES:
        style += f",stroke-dasharray:{_MERMAID_DASHES[ink.dashes]}"
    return style


#: The Mermaid class of each kind of node, in the order of the ``classDef`` lines. The ``eda``
#: prefix keeps every name clear of the flowchart's keywords: a class named ``call`` (or
#: ``end``, ``click``, ``style``, ``class``, ``default``, ...) makes the whole diagram fail to
#: parse (mermaid-js/mermaid#4245).
_MERMAID_CLASSES: dict[str, str] = {
    "event": "edaEvent",
    "command": "edaCommand",
    "call": "edaHandler",
    "failed": "edaFailed",
    "unhandled": "edaUnhandled",
}

# Written between our own words in a label. Not a line break: Mermaid's ``<br/>`` vanishes
# where nbconvert pastes the diagram into HTML unescaped, and ``\n`` is not a break in every
# Mermaid; long labels wrap by themselves.
_MERMAID_SEPARATOR = " · "


def _mermaid_id(node: tuple[str, int]) -> str:
    return {"event": "e", "group": "g"}.get(node[0], "c") + str(node[1])


def _mermaid_node(node: tuple[str, int], data: dict[str, Any]) -> str:
    if data["kind"] == "group":
        label = _mermaid_text(f"x {data['count']} {data['label']}") + _MERMAID_SEPARATOR
        label += _mermaid_text(data["summary"], 60)
        return f'{_mermaid_id(node)}(["{label}"]):::edaFolded'
    label = _mermaid_text(data["label"])
    if data["kind"] == "event":
        kind = "unhandled" if data["unhandled"] else "command" if data["command"] else "event"
        if data["unhandled"]:
            label += _MERMAID_SEPARATOR + "no handler"
        if data["command"]:  # a hexagon: a request, where an event is a rounded fact
            return f'{_mermaid_id(node)}{{{{"{label}"}}}}:::{_MERMAID_CLASSES[kind]}'
        return f'{_mermaid_id(node)}(["{label}"]):::{_MERMAID_CLASSES[kind]}'
    # "1. name" would be read as a Markdown list by Mermaid; "step 1: name" is not.
    label = f"step {data['step']}: {label}"
    kind = "failed" if data["failed"] else "call"
    if data["failed"]:
        label += _MERMAID_SEPARATOR + "failed: " + _mermaid_text(data["error"])
    return f'{_mermaid_id(node)}["{label}"]:::{_MERMAID_CLASSES[kind]}'


# Characters written as Mermaid entity codes (``#quot;``, ``#35;``: Mermaid turns them into
# the character itself, in every renderer), with the reason each one needs it.
_MERMAID_ESCAPES: dict[str, str] = {
    '"': "#quot;",  # ends the quoted label
    "#": "#35;",  # starts an entity code
    "&": "#amp;",  # labels are HTML: an entity,
    "<": "#lt;",  # markup,
    ">": "#gt;",  # (raw in nbconvert's <pre class="mermaid">, too)
    "%": "#37;",  # %% starts a comment, and %%{...}%% a directive even inside a label
    "`": "#96;",  # "`...`" is a Markdown string
    "\\": "#92;",  # \n is a line break in newer Mermaid
}
# While it renders, Mermaid writes an entity code as "\ufb02\xb0...\xb6\xdf" and at the end turns
# every such pair back into "&" and ";", also where a label holds them ("\ufb02\xb0x\xb6\xdf" would
# become "&x;" and spoil the SVG): an invisible word joiner keeps the two apart.
_MERMAID_PLACEHOLDERS = ("\ufb02\xb0", "\xb6\xdf")


def _mermaid_text(text: str, limit: int = 40) -> str:
    """``text`` on one line, cut to ``limit`` characters and escaped for a quoted label.

    Line breaks, tabs and runs of whitespace become one space (a node is one line of Mermaid).
    The characters of ``_MERMAID_ESCAPES`` and every character that is not printable become
    entity codes; other unicode (accents, CJK, emoji) stays as it is, and so does a name like
    ``Shop.send_receipt``. A colon not followed by a space becomes ``#58;``: Mermaid strips a
    ``;`` from any line where ``style`` or ``classDef`` comes before such a colon and a ``#``.
    A word joiner goes between the two characters of Mermaid's placeholders, and an empty
    label becomes a no-break space (``#160;``): Mermaid refuses ``""``.
    """
    short = shorten(" ".join(text.split()), limit)
    escaped = []
    for position, char in enumerate(short):
        following = short[position + 1 : position + 2]
        if char == ":" and following != " ":
            escaped.append("#58;")
        elif char in _MERMAID_ESCAPES:
            escaped.append(_MERMAID_ESCAPES[char])
        elif not char.isprintable():
            escaped.append(f"#{ord(char)};")
        else:
            escaped.append(char)
        if char + following in _MERMAID_PLACEHOLDERS:
            escaped.append("#8288;")
    return "".join(escaped) or "#160;"


@dataclass(frozen=True)
class StepRow:
    """One line of a step table: a handler call, or an event that no handler took."""

    step: int | None
    """The call's step; None for an unhandled event."""
    event_index: int
    event: str
    """``"#0 OrderPaid"``"""
    handler: str
    """The handler's name; empty for an unhandled event."""
    outcome: str
    failed: bool
    unhandled: bool
    count: int = 1
    """The events the row stands for: more than one for a folded group."""
    calls: int = 1
    """The handler calls the row stands for (a folded group's, all of them)."""


def step_rows(
    result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()
) -> list[StepRow]:
    """The steps of a dispatch in the order they ran, unhandled events where the queue met them.

    A folded group of alike events (see :mod:`eda_lesson.views.folding`) is one row, where its
    first member's first step ran; ``unfold`` and ``fold=False`` as in ``draw_flow``.
    """
    from eda_lesson.views.folding import folded_index

    rows: list[StepRow] = []
    records = result.events
    _, hidden, head = folded_index(result, fold=fold, unfold=unfold)
    for record in records:
        if record.index in head:
            group = head[record.index]
            event = f"#{record.index} {record.type_name} x {group.count}"
            calls = group.calls_each * group.count
            outcome = f"{plural(calls, 'call')}" + (
                f", steps {group.steps[0]} to {group.steps[-1]}" if group.steps else ""
            )
            if group.failed_each:
                outcome += f", {group.failed_each * group.count} failed"
            first = group.steps[0] if group.steps else None
            rows.append(
                StepRow(
                    first,
                    record.index,
                    event,
                    group.summary(),
                    outcome,
                    group.failed_each > 0,
                    group.unhandled,
                    group.count,
                    calls,
                )
            )
            continue
        if record.index in hidden:
            continue
        event = f"#{record.index} {record.type_name}" + " (command)" * record.is_command
        if record.unhandled:
            rows.append(StepRow(None, record.index, event, "", "no handler", False, True))
        for step in record.handled_by:
            call = result.calls[step - 1]
            outcome = _outcome(call, records, head, hidden)
            rows.append(
                StepRow(
                    step, record.index, event, call.name, outcome, call.error is not None, False
                )
            )
    return rows


def _outcome(
    call: HandlerCall,
    records: tuple[EventRecord, ...],
    head: Mapping[int, FoldGroup] = _NO_GROUPS,
    hidden: Collection[int] = (),
) -> str:
    """What a call did; a folded group it produced is named once, with its count."""
    if call.error is not None:
        return "failed: " + shorten(error_text(call.error) or "", 60)
    if call.produced:
        return "ok, produced " + ", ".join(
            f"#{index} {records[index].type_name}"
            + (f" x {head[index].count}" if index in head else "")
            for index in call.produced
            if index in head or index not in hidden
        )
    return "ok"


def step_table(result: DispatchResult, *, fold: bool = True, unfold: Collection[int] = ()) -> str:
    """The steps of a dispatch as a plain-text table: step, event, handler, outcome.

    >>> print(step_table(result))  # doctest: +SKIP
    step  event                 handler                outcome
       1  #0 OrderPaid          Shop.mark_paid         ok
       3  #0 OrderPaid          Shop.request_shipment  ok, produced #1 ShipmentRequested
    """
    header = ("step", "event", "handler", "outcome")
    cells = [
        (
            "-" if row.step is None else str(row.step),
            row.event,
            row.handler or "(none)",
            row.outcome,
        )
        for row in step_rows(result, fold=fold, unfold=unfold)
    ]
    widths = [max(len(line[column]) for line in [header, *cells]) for column in range(3)]
    lines = []
    for step, event, handler, outcome in [header, *cells]:
        text = f"{step:>{widths[0]}}  {event:<{widths[1]}}  {handler:<{widths[2]}}  {outcome}"
        lines.append(text.rstrip())
    return "\n".join(lines)


def step_caption(result: DispatchResult, upto: int | None = None) -> str:
    """One line telling where a step-through stands, e.g. ``step 2 of 5: Shop.send_receipt
    handles #0 OrderPaid``; with ``upto=None``, a summary of the whole dispatch."""
    calls = result.calls
    if upto is None:
        word = "message" if any(record.is_command for record in result.events) else "event"
        parts = [plural(len(result.events), word), plural(len(calls), "handler call")]
        if result.failures:
            parts.append(f"{len(result.failures)} failed")
        if result.unhandled:
            parts.append(f"{len(result.unhandled)} unhandled")
        return f"dispatch of {type(result.event).__name__}: " + ", ".join(parts)
    check_step(result, upto)
    if upto == 0:
        return (
            f"step 0 of {len(calls)}: {type(result.event).__name__} dispatched, no handler ran yet"
        )
    call = calls[upto - 1]
    record = result.events[call.event_index]
    text = f"step {upto} of {len(calls)}: {call.name} handles #{record.index} {record.type_name}"
    if call.error is not None:
        text += f" and fails ({shorten(error_text(call.error) or '', 50)})"
    return text


def check_step(result: DispatchResult, upto: int) -> None:
    """Refuse a step number the dispatch does not have, saying which ones it has."""
    steps = len(result.calls)
    if isinstance(upto, bool) or not isinstance(upto, int) or not 0 <= upto <= steps:
        raise ValueError(
            f"step {upto!r} is not a step of this dispatch: it has {plural(steps, 'step')}, "
            f"so choose a whole number from 0 (nothing handled yet) to {steps} (all done)"
        )
