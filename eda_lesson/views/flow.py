"""Pictures of a dispatch and of a bus's registrations, drawn with matplotlib.

- :func:`draw_flow` draws the causal graph of one dispatch, left to right by cascade depth
  (events, then the handler calls they reached, then the events those produced, ...), and with
  ``upto=k`` the state after step ``k``: done, current, queued and not yet run.
- :func:`draw_registrations` draws which handler listens to which event type.
- :func:`draw_timeline` draws the handler calls in the order they ran, on the bus's clock when
  it kept one (the async bus does), else one slot per step.
- :func:`draw_nested_vs_queue` draws one cascade twice, side by side: in the order nested calls
  would run it, and in the order the bus's queue ran it.
- :func:`draw_unit_of_work` draws the flow of a command through aggregate, unit of work, event
  store and bus, from :attr:`UnitOfWork.steps <eda_lesson.patterns.unit_of_work.UnitOfWork.steps>`.
- :func:`draw_series_map` draws the notebook series as a map: a lane per part, its chapters
  in reading order.

The layouts are computed here, from the graphs of :mod:`eda_lesson.views.graphs`: the same result
always gives the same picture, with no random seed anywhere. One colour language
(:data:`eda_lesson.views.graphs.COLOURS`) and a legend on every picture.

Drawings use matplotlib's object API (``Figure``), never pyplot's global state, so no figure
is left open, none is shown twice, and it works headless. Each function returns the Figure,
which Jupyter shows as a PNG; it does not dispatch and keeps no state between calls.
"""

from __future__ import annotations

import io
import itertools
import textwrap
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from matplotlib import rc_context
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.path import Path

from eda_lesson.book.chapters import CHAPTERS, Chapter
from eda_lesson.core.bus import BaseBus
from eda_lesson.core.checks import handler_name
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.views.graphs import (
    COLOURS,
    check_step,
    error_text,
    flow_graph,
    registration_graph,
    shorten,
    step_caption,
)

if TYPE_CHECKING:
    from eda_lesson.patterns.unit_of_work import UnitOfWork

__all__ = [
    "NotebookFigure",
    "OrderedCall",
    "calls_in_order",
    "draw_flow",
    "draw_nested_vs_queue",
    "draw_registrations",
    "draw_series_map",
    "draw_timeline",
    "draw_unit_of_work",
    "figure_to_png",
    "flow_layout",
]

# Sizes in inches: our own figures map one data unit to one inch, so text fits its box.
COLUMN = 2.3  # from one layer's centre to the next
BOX_WIDTH = 1.9
BOX_HEIGHT = 0.46
ROW = 0.62  # from one node's centre to the next in a layer
MARGIN = 0.25
TITLE_HEIGHT = 0.45
LEGEND_ROW = 0.26
LEGEND_COLUMN = 1.55
MIN_WIDTH = 6.8
LABEL_CHARS = 26
FONT_SIZE = 8.5
TEXT = "#111827"
FADED_TEXT = "#9ca3af"
EDGE = "#4b5563"
FADED_EDGE = "#d1d5db"


Dashes = Literal["-", "--"]


class NotebookFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG, whether or not pyplot was imported."""

    def _repr_png_(self) -> bytes:
        return figure_to_png(self)


def figure_to_png(figure: Figure, *, dpi: float = 100) -> bytes:
    """The figure rendered to PNG bytes (for an ``ipywidgets.Image``, a file, a test).

    Tuned for redrawing at every step of a step-through: text is rasterised without font
    hinting (a third less time on label-heavy drawings, barely visible at 100 dpi) and the
    PNG is lightly compressed (zlib's default level costs more than it saves on flat colours).
    """
    buffer = io.BytesIO()
    with rc_context({"text.hinting": "no_hinting"}):
        figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


# ---------------------------------------------------------------------- the flow of a dispatch


def flow_layout(graph: Any) -> dict[Hashable, tuple[float, float]]:
    """Grid positions ``(x, y)`` for the nodes of a :func:`~eda_lesson.views.graphs.flow_graph`.

    ``x`` is the node's ``layer`` (0: the dispatched event, 1: its handler calls, 2: the events
    they produced, ...). Within a layer nodes go top to bottom by event index or step, centred
    on ``y = 0`` one unit apart (``y`` grows upwards, as in matplotlib).
    """
    layers: dict[int, list[tuple[int, Hashable]]] = {}
    for node, data in graph.nodes(data=True):
        order = data["index"] if data["kind"] == "event" else data["step"]
        layers.setdefault(data["layer"], []).append((order, node))
    positions: dict[Hashable, tuple[float, float]] = {}
    for layer, members in layers.items():
        members.sort(key=lambda member: member[0])
        middle = (len(members) - 1) / 2
        for row, (_, node) in enumerate(members):
            positions[node] = (float(layer), middle - row)
    return positions


def draw_flow(result: DispatchResult, *, upto: int | None = None, ax: Axes | None = None) -> Figure:
    """Draw the cascade of ``result`` as a layered causal graph, left to right.

    With ``upto=k`` (0 to the number of steps) the picture is the cascade after step ``k``:
    calls up to ``k`` are done, call ``k`` is outlined as the current step, events produced
    but not handled yet are queued, and the rest is faded. A failure or a missing handler
    shows only once the cascade has reached it. Draws into ``ax`` when given.
    """
    if upto is not None:
        check_step(result, upto)
    graph = flow_graph(result)
    positions = flow_layout(graph)
    states = _flow_states(graph, upto)
    columns = 1 + max(x for x, _ in positions.values())
    rows = max(_layer_sizes(positions).values())
    commands = any(data.get("command") for _, data in graph.nodes(data=True))
    legend = _flow_legend(stepping=upto is not None, commands=commands)
    canvas = _Canvas.make(ax, columns, rows, legend_rows=-(-len(legend) // 4))
    for source, target in graph.edges():
        canvas.arrow(
            positions[source], positions[target], **_edge_style(states[source], states[target])
        )
    for node, data in graph.nodes(data=True):
        category, state = states[node].category, states[node].state
        canvas.box(
            positions[node],
            _node_label(data, category),
            shape=_shape(data, category),
            gid=f"{data['kind']}-{node[1]}",
            **_node_style(category, state),
        )
    canvas.finish(step_caption(result, upto), legend)
    return canvas.figure


@dataclass(frozen=True)
class _State:
    category: str  # "event", "command", "unhandled", "call" or "failed": what the node is
    state: str  # "done", "current", "queued" or "pending": how far the cascade got


def _flow_states(graph: Any, upto: int | None) -> dict[Hashable, _State]:
    """What each node is, and how far the cascade had got with it after step ``upto``."""
    last = graph.graph["steps"] if upto is None else upto
    calls_before: dict[int, int] = {}  # event index -> calls of the events before it
    count = 0
    for node, data in graph.nodes(data=True):
        if data["kind"] == "event":
            calls_before[data["index"]] = count
            count += graph.out_degree(node)
    states: dict[Hashable, _State] = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "call":
            step = data["step"]
            state = "done" if step < last else "current" if step == last else "pending"
            if upto is None:
                state = "done"
            failed = data["failed"] and state != "pending"
            states[node] = _State("failed" if failed else "call", state)
            continue
        produced = data["caused_by"] is None or data["caused_by"] <= last
        # An unhandled event is met once the calls of every event before it are done.
        reached = last >= calls_before[data["index"]] if data["unhandled"] else data["step"] <= last
        state = "done" if reached else "queued" if produced else "pending"
        unhandled = data["unhandled"] and state == "done"
        kind = "command" if data["command"] else "event"
        states[node] = _State("unhandled" if unhandled else kind, state)
    return states


def _shape(data: dict[str, Any], category: str) -> str:
    """A box's outline: rounded for an event (a fact), an arrow for a command (a request
    pointing at its one handler), square for a handler; never colour alone."""
    if data.get("command"):
        return "command"
    return "event" if data["kind"] in ("event", "event_type") else "call"


def _node_label(data: dict[str, Any], category: str) -> str:
    if data["kind"] == "event":
        label = f"#{data['index']} {data['label']}"
        return _two_lines(label, "no handler" if category == "unhandled" else None)
    label = f"{data['step']}. {shorten(data['label'], LABEL_CHARS - 4)}"
    failure = None
    if category == "failed":
        failure = "failed: " + str(data["error"]).split(":", 1)[0]
    return _two_lines(label, failure)


def _two_lines(first: str, second: str | None) -> str:
    first = shorten(first, LABEL_CHARS)
    return first if second is None else f"{first}\n{shorten(second, LABEL_CHARS)}"


def _node_style(category: str, state: str) -> dict[str, Any]:
    fill, stroke = COLOURS[category]
    style = {"face": fill, "edge": stroke, "width": 1.2, "dashes": "-", "text": TEXT}
    if category == "unhandled":
        style["dashes"] = "--"
    if state == "current":
        style.update(edge=COLOURS["current"][1], width=3.0)
    elif state == "queued":
        style.update(face=COLOURS["queued"][0], edge=COLOURS["queued"][1], dashes="--")
    elif state == "pending":
        style.update(face=COLOURS["pending"][0], edge=COLOURS["pending"][1], text=FADED_TEXT)
    return style


def _edge_style(source: _State, target: _State) -> dict[str, Any]:
    if target.state == "current":
        return {"colour": COLOURS["current"][1], "width": 2.0}
    if target.state == "pending" or source.state == "pending":
        return {"colour": FADED_EDGE, "width": 1.0}
    return {"colour": EDGE, "width": 1.2}


@dataclass(frozen=True)
class _Key:
    """One entry of a legend: a small swatch (or a line) and its words."""

    label: str
    face: str
    edge: str
    dashes: Dashes = "-"
    width: float = 1.2
    line: bool = False
    shape: str = "swatch"


def _key(colour: str, label: str, *, dashes: Dashes = "-") -> _Key:
    fill, stroke = COLOURS[colour]
    return _Key(label, fill, stroke, dashes, shape="command" if colour == "command" else "swatch")


def _flow_legend(*, stepping: bool, commands: bool = False) -> list[_Key]:
    keys = [_key("command", "command")] if commands else []
    keys += [
        _key("event", "event"),
        _key("call", "handler call"),
        _key("failed", "failed call"),
        _key("unhandled", "unhandled event", dashes="--"),
    ]
    if stepping:
        current = _Key("current step", COLOURS["call"][0], COLOURS["current"][1], width=2.5)
        keys += [
            current,
            _key("queued", "queued event", dashes="--"),
            _key("pending", "not yet run"),
        ]
    return keys


def _layer_sizes(positions: dict[Hashable, tuple[float, float]]) -> dict[float, int]:
    sizes: dict[float, int] = {}
    for x, _ in positions.values():
        sizes[x] = sizes.get(x, 0) + 1
    return sizes


# ---------------------------------------------------------------------- registrations


def draw_registrations(
    bus: BaseBus, *, ax: Axes | None = None, event_types: Iterable[type] = ()
) -> Figure:
    """Draw which handler listens to which event type: types on the left, handlers on the right.

    A dashed arc joins a subclass to its base class ("is a"): a handler on the base hears the
    subclass too. A type that no handler hears (``event_types`` adds such types) is drawn as
    unhandled. Handlers of one type are listed top to bottom in the order the bus calls them.
    """
    graph = registration_graph(bus, event_types=event_types)
    positions = _registration_layout(graph)
    rows = 1 + 2 * max((y for _, y in positions.values()), default=0)
    has_bases = any(r == "subclass_of" for _, _, r in graph.edges(data="relation"))
    canvas = _Canvas.make(ax, 2, int(rows), legend_rows=1, left_room=0.45 if has_bases else 0)
    for source, target, relation in graph.edges(data="relation"):
        if relation == "listens":
            canvas.arrow(positions[source], positions[target], colour=EDGE, width=1.2)
        else:
            canvas.arc(positions[source], positions[target])
    for node, data in graph.nodes(data=True):
        if data["kind"] == "handler":
            label, category = shorten(data["label"], LABEL_CHARS), "call"
        else:
            kind = "command" if data["command"] else "event"
            category = kind if data["handled"] else "unhandled"
            label = _two_lines(data["label"], None if data["handled"] else "no handler")
        canvas.box(
            positions[node],
            label,
            shape=_shape(data, category),
            gid=f"{data['kind']}-{data['label']}",
            **_node_style(category, "done"),
        )
    handlers = sum(1 for _, data in graph.nodes(data=True) if data["kind"] == "handler")
    types = graph.number_of_nodes() - handlers
    commands = any(data.get("command") for _, data in graph.nodes(data=True))
    kind = "message type" if commands else "event type"
    title = f"registrations: {plural(handlers, 'handler')}, {plural(types, kind)}"
    legend = [_key("command", "command type")] if commands else []
    legend += [
        _key("event", "event type"),
        _key("call", "handler"),
        _key("unhandled", "no handler", dashes="--"),
        _Key("is a (subclass of)", EDGE, EDGE, dashes="--", line=True),
    ]
    canvas.finish(title, legend)
    return canvas.figure


def _registration_layout(graph: Any) -> dict[Hashable, tuple[float, float]]:
    """Types in column 0, handlers in column 1, rows top to bottom centred on ``y = 0``.

    Handlers are ordered by the mean row of the types they listen to, so the arrows of one type
    stay together; each type sits level with the middle of its handlers, never overlapping.
    """
    types = [n for n, kind in graph.nodes(data="kind") if kind == "event_type"]
    handlers = [n for n, kind in graph.nodes(data="kind") if kind == "handler"]
    type_order = {node: order for order, node in enumerate(types)}

    def handler_key(node: Hashable) -> tuple[float, int]:
        sources = [type_order[s] for s in graph.predecessors(node)]
        return (sum(sources) / len(sources), handlers.index(node))

    rows = {node: float(row) for row, node in enumerate(sorted(handlers, key=handler_key))}
    positions = {node: (1.0, row) for node, row in rows.items()}
    previous = -1.0
    for node in types:
        listeners = [rows[n] for n in graph.successors(node) if n in rows]
        wanted = sum(listeners) / len(listeners) if listeners else previous + 1
        previous = max(wanted, previous + 1)
        positions[node] = (0.0, previous)
    middle = max((row for _, row in positions.values()), default=0.0) / 2
    return {node: (x, middle - row) for node, (x, row) in positions.items()}


# ---------------------------------------------------------------------- timeline


def draw_timeline(result: DispatchResult, *, ax: Axes | None = None) -> Figure:
    """Draw each handler call of ``result`` as a bar on its own row, in the order they ran.

    When the bus kept time (``HandlerCall.started``/``ended``, as the async bus does), the bars
    sit at those times, Gantt-style, so overlapping calls are seen overlapping. Otherwise each
    step gets one slot. Next to each bar: the event the call handled.
    """
    calls = result.calls
    rows = max(len(calls), 1)
    if ax is None:
        width, height = 7.6, 1.3 + 0.34 * rows
        figure: Figure = NotebookFigure(figsize=(width, height))
        ax = figure.add_axes((2.3 / width, 0.75 / height, 1 - 2.5 / width, 1 - 1.15 / height))
    figure = _root_figure(ax)
    timed = result.timed and all(c.started is not None and c.ended is not None for c in calls)
    spans = _timeline_spans(result, timed)
    finish = max((start + length for start, length in spans), default=1.0)
    for row, (call, (start, length)) in enumerate(zip(calls, spans, strict=True)):
        fill, stroke = COLOURS["failed" if call.error is not None else "call"]
        ax.barh(row, length, left=start, height=0.6, color=fill, edgecolor=stroke, linewidth=1.2)
        note = f"#{call.event_index} {result.events[call.event_index].type_name}"
        if call.error is not None:
            note += " · failed: " + str(error_text(call.error)).split(":", 1)[0]
        ax.text(start + length + finish * 0.01, row, note, va="center", fontsize=7.5, color=EDGE)
    ax.set_yticks(range(len(calls)), [f"{c.step}. {shorten(c.name, 28)}" for c in calls])
    ax.tick_params(axis="y", labelsize=FONT_SIZE, length=0)
    ax.set_ylim(rows - 0.4, -0.6)
    if timed:
        ax.set_xlim(0, finish * 1.45)
        ax.set_xlabel("time since the first call started (bus clock)", fontsize=FONT_SIZE)
    else:
        ax.set_xlim(0, finish + 2.2)
        ax.set_xticks([c.step - 0.5 for c in calls], [str(c.step) for c in calls])
        ax.set_xlabel("step (handler calls in the order they ran)", fontsize=FONT_SIZE)
    if not calls:
        ax.text(0.5, 0, f"no handler ran: #0 {type(result.event).__name__} had none", ha="left")
    ax.tick_params(axis="x", labelsize=FONT_SIZE)
    ax.grid(axis="x", color=FADED_EDGE, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        f"timeline of the {type(result.event).__name__} dispatch: "
        f"{plural(len(calls), 'handler call')}",
        fontsize=10,
    )
    ax.legend(
        handles=[
            Patch(facecolor=COLOURS[c][0], edgecolor=COLOURS[c][1], label=label)
            for c, label in (("call", "handler call"), ("failed", "failed call"))
        ],
        loc="upper right",
        fontsize=7.5,
        frameon=False,
    )
    return figure


def _timeline_spans(result: DispatchResult, timed: bool) -> list[tuple[float, float]]:
    """(start, length) of each call's bar: bus-clock times from the first start, or slots."""
    calls = result.calls
    if not timed:
        return [(call.step - 1 + 0.05, 0.9) for call in calls]
    first = min(call.started or 0.0 for call in calls)
    last = max(call.ended or 0.0 for call in calls)
    thinnest = (last - first) * 0.004 or 0.001  # an instant call still shows as a sliver
    return [
        ((call.started or 0.0) - first, max((call.ended or 0.0) - (call.started or 0.0), thinnest))
        for call in calls
    ]


# ---------------------------------------------------------------------- the canvas


@dataclass
class _Canvas:
    """An Axes whose data units are inches, with helpers to place boxes on a grid."""

    figure: Figure
    ax: Axes
    width: float
    height: float
    left: float  # x of the centre of column 0
    middle: float  # y of grid row 0

    @classmethod
    def make(
        cls, ax: Axes | None, columns: float, rows: int, *, legend_rows: int, left_room: float = 0
    ) -> _Canvas:
        content = left_room + BOX_WIDTH + (columns - 1) * COLUMN
        width = max(MIN_WIDTH, content + 2 * MARGIN)
        bottom = MARGIN + legend_rows * LEGEND_ROW
        height = TITLE_HEIGHT + rows * ROW + bottom
        figure, ax = _inch_axes(ax, width, height)
        left = (width - content) / 2 + left_room + BOX_WIDTH / 2
        middle = bottom + rows * ROW / 2
        return cls(figure, ax, width, height, left, middle)

    def at(self, grid: tuple[float, float]) -> tuple[float, float]:
        return (self.left + grid[0] * COLUMN, self.middle + grid[1] * ROW)

    def box(
        self,
        grid: tuple[float, float],
        label: str,
        *,
        shape: str,
        gid: str,
        face: str,
        edge: str,
        width: float,
        dashes: str,
        text: str,
    ) -> None:
        x, y = self.at(grid)
        style = _BOX_STYLES[shape]
        patch = FancyBboxPatch(
            (x - BOX_WIDTH / 2, y - BOX_HEIGHT / 2),
            BOX_WIDTH,
            BOX_HEIGHT,
            boxstyle=style,
            facecolor=face,
            edgecolor=edge,
            linewidth=width,
            linestyle=dashes,
            zorder=2,
        )
        patch.set_gid(gid)
        self._add(patch)
        self.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=FONT_SIZE,
            color=text,
            gid=gid + "-label",
        )

    def arrow(
        self, source: tuple[float, float], target: tuple[float, float], *, colour: str, width: float
    ) -> None:
        (x1, y1), (x2, y2) = self.at(source), self.at(target)
        arrow = FancyArrowPatch(
            (x1 + BOX_WIDTH / 2, y1),
            (x2 - BOX_WIDTH / 2, y2),
            arrowstyle="-|>",
            mutation_scale=10,
            shrinkA=0,
            shrinkB=1,
            color=colour,
            linewidth=width,
            zorder=1,
        )
        self._add(arrow)

    def arc(self, source: tuple[float, float], target: tuple[float, float]) -> None:
        """A dashed arc left of a column, from a subclass's box down or up to its base's box."""
        (x, y1), (_, y2) = self.at(source), self.at(target)
        distance = abs(y2 - y1)
        bend = min(0.6, 0.7 / distance) * (1 if y2 < y1 else -1)
        arc = FancyArrowPatch(
            (x - BOX_WIDTH / 2, y1),
            (x - BOX_WIDTH / 2, y2),
            connectionstyle=f"arc3,rad={bend:.3f}",
            arrowstyle="-|>",
            mutation_scale=9,
            color=EDGE,
            linestyle="--",
            linewidth=1.0,
            zorder=1,
        )
        self._add(arc)

    def _add(self, artist: Artist) -> None:
        # add_artist, not add_patch: the limits are set already, and add_patch would spend
        # about a millisecond per arrow recomputing them.
        self.ax.add_artist(artist)

    def text(self, x: float, y: float, words: str, **style: Any) -> None:
        # parse_math=False: a "$" in a handler's name is text, not the start of a formula.
        self.ax.text(x, y, words, parse_math=False, **style)

    def finish(self, title: str, legend: list[_Key]) -> None:
        """Write the title above the drawing and the legend below it."""
        title = shorten(title, int(self.width * 11))
        self.text(self.width / 2, self.height - TITLE_HEIGHT / 2, title, **_CENTRED, fontsize=10)
        # Drawn by hand, four keys a row: matplotlib's legend costs ~10 ms a redraw.
        columns = min(4, len(legend))
        start = (self.width - columns * LEGEND_COLUMN) / 2
        rows = -(-len(legend) // 4)
        for number, key in enumerate(legend):
            x = start + (number % 4) * LEGEND_COLUMN
            y = MARGIN + (rows - 1 - number // 4) * LEGEND_ROW
            self._add(_swatch(key, x, y))
            self.text(x + 0.4, y, key.label, ha="left", va="center", fontsize=8, color=TEXT)


_CENTRED: dict[str, Any] = {"ha": "center", "va": "center", "color": TEXT}


def _arrow_box(x0: float, y0: float, width: float, height: float, mutation_size: float) -> Path:
    """A box whose right end is a point, inside its own bounds: how a command is drawn."""
    tip = min(width / 3, height * 0.45)
    corners = [
        (x0, y0),
        (x0 + width - tip, y0),
        (x0 + width, y0 + height / 2),
        (x0 + width - tip, y0 + height),
        (x0, y0 + height),
        (x0, y0),
    ]
    return Path(corners, closed=True)


#: The outline of each shape of box (see :func:`_shape`).
_BOX_STYLES: dict[str, Any] = {
    "event": "round,pad=0,rounding_size=0.2",
    "call": "round,pad=0,rounding_size=0.04",
    "command": _arrow_box,
}


def _swatch(key: _Key, x: float, y: float) -> Artist:
    """The small sample of a legend entry whose left end is at (x, y): a line or a box."""
    if key.line:
        return Line2D(
            [x, x + 0.3], [y, y], color=key.edge, linestyle=key.dashes, linewidth=key.width
        )
    if key.shape == "command":  # the same arrow outline as a command's box
        return FancyBboxPatch(
            (x, y - 0.07),
            0.24,
            0.14,
            boxstyle=_BOX_STYLES["command"],
            facecolor=key.face,
            edgecolor=key.edge,
            linewidth=key.width,
        )
    return Rectangle(
        (x, y - 0.07),
        0.3,
        0.14,
        facecolor=key.face,
        edgecolor=key.edge,
        linestyle=key.dashes,
        linewidth=key.width,
    )


def _root_figure(ax: Axes) -> Figure:
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ValueError("the Axes given as ax= belongs to no Figure; create it with a Figure")
    return figure


# ---------------------------------------------------------------------- nested calls and the queue


class OrderedCall(NamedTuple):
    """One handler call, as a picture of call order needs it."""

    event: str
    """The event it handled, named so that two occurrences differ: ``"#0 OrderPaid"``."""
    handler: str
    depth: int
    """Handler calls between this call's event and the dispatched event (0 for the latter)."""


def calls_in_order(result: DispatchResult) -> list[OrderedCall]:
    """The handler calls of ``result`` in the order the bus ran them (breadth-first)."""
    events = result.events
    return [
        OrderedCall(
            f"#{call.event_index} {events[call.event_index].type_name}",
            call.name,
            events[call.event_index].depth,
        )
        for call in result.calls
    ]


_ORDER_ROW = 0.5  # inches from one call to the next
_ORDER_BOX = (1.75, 0.36)  # width, height of a call's box
_INDENT = 0.34  # inches per level of depth
_PANEL = 4.6  # width of one side
_BRACKET = 0.14  # from a bracket to the boxes it holds


def draw_nested_vs_queue(
    nested: Sequence[tuple[str, str, int]], result: DispatchResult, *, ax: Axes | None = None
) -> Figure:
    """Draw one cascade twice, side by side: run by nested calls, and run by the bus's queue.

    ``nested`` lists the calls of a naive bus that handles a produced event at once, inside
    the handler call that produced it: ``(event, handler, depth)`` in the order they ran (an
    :class:`OrderedCall` is such a tuple). ``result`` is the same cascade run by the bus.
    Each call is a box numbered by when it ran and indented by depth; a bracket joins the
    calls of one event. With nested calls the dispatched event's bracket stays open while
    the events it caused are handled inside it; with the queue, brackets follow each other.
    """
    left = [_ordered_call(item) for item in nested]
    right = calls_in_order(result)
    rows = max(len(left), len(right), 1)
    width = 2 * _PANEL + 3 * MARGIN
    top = TITLE_HEIGHT + 0.75  # the title, then each side's heading and caption
    height = top + rows * _ORDER_ROW + MARGIN + LEGEND_ROW + 0.1
    figure, ax = _inch_axes(ax, width, height)
    first_row = height - top - _ORDER_ROW / 2
    sides = (("nested", "nested calls (a naive bus)", left), ("queue", "EventBus: a queue", right))
    for number, (name, heading, calls) in enumerate(sides):
        x = MARGIN + number * (_PANEL + MARGIN)
        _text(ax, x + _PANEL / 2, height - TITLE_HEIGHT - 0.1, heading, fontsize=9.5, weight="bold")
        _text(ax, x + _PANEL / 2, height - TITLE_HEIGHT - 0.38, _order_caption(calls), fontsize=8)
        _draw_order_side(ax, name, calls, x, first_row)
    title = f"one cascade, two orders: {plural(len(right), 'handler call')}"
    legend = [
        _key("call", "handler call (step. name)"),
        _key("event", "the event it handles"),
        _Key("one event's calls", COLOURS["event"][1], COLOURS["event"][1], line=True),
    ]
    _finish_inches(ax, width, height, title, legend)
    return figure


def _ordered_call(item: tuple[str, str, int]) -> OrderedCall:
    if not isinstance(item, tuple) or len(item) != 3 or not isinstance(item[2], int):
        raise TypeError(
            f"each nested call is (event, handler, depth), such as ('#0 OrderPaid', "
            f"'Shop.mark_paid', 0); got {item!r}"
        )
    return OrderedCall(str(item[0]), str(item[1]), item[2])


def _order_caption(calls: list[OrderedCall]) -> str:
    """Which steps the first event's handlers ran at: contiguous with a queue, not nested."""
    if not calls:
        return "no handler ran"
    first = calls[0].event
    steps = [str(step) for step, call in enumerate(calls, 1) if call.event == first]
    listed = steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + " and " + steps[-1]
    return f"{first} handled at step{'s' * (len(steps) > 1)} {listed}"


def _draw_order_side(ax: Axes, side: str, calls: list[OrderedCall], x: float, top: float) -> None:
    box_width, box_height = _ORDER_BOX
    rows_of: dict[str, list[int]] = {}
    for row, call in enumerate(calls):
        rows_of.setdefault(call.event, []).append(row)
        left = x + _BRACKET + 0.1 + call.depth * _INDENT
        y = top - row * _ORDER_ROW
        fill, stroke = COLOURS["call"]
        label = f"{row + 1}. {shorten(call.handler, 22)}"
        _rect(ax, left, y, box_width, label, face=fill, edge=stroke, gid=f"{side}-call-{row + 1}")
        tag = shorten(call.event, 24)
        fill, stroke = COLOURS["event"]
        tag_width = 0.2 + 0.064 * len(tag)
        _rect(
            ax,
            left + box_width + 0.08,
            y,
            tag_width,
            tag,
            face=fill,
            edge=stroke,
            gid=f"{side}-event-{row + 1}",
            rounded=True,
            height=box_height * 0.8,
            fontsize=7.5,
        )
    for event, rows in rows_of.items():
        depth = calls[rows[0]].depth
        bracket_x = x + 0.1 + depth * _INDENT
        upper, lower = top - rows[0] * _ORDER_ROW, top - rows[-1] * _ORDER_ROW
        colour = COLOURS["event"][1]
        spine = Line2D([bracket_x, bracket_x], [upper, lower], color=colour, linewidth=1.4)
        spine.set_gid(f"{side}-bracket-{event}")
        ax.add_artist(spine)
        for row in rows:
            y = top - row * _ORDER_ROW
            ax.add_artist(
                Line2D([bracket_x, bracket_x + _BRACKET], [y, y], color=colour, linewidth=1.4)
            )


# ---------------------------------------------------------------------- a command's flow


_LANES = ("aggregate", "unit of work", "event store", "bus and handlers")
_LANE_OF = {
    "command": 0,
    "load": 2,
    "add": 1,
    "save": 2,
    "conflict": 2,
    "publish": 3,
    "handlers": 3,
    "discard": 1,
}
_WORK_ROW = 0.82  # inches from one step to the next
_WORK_BOX = (1.95, 0.6)
_WRAP = 27  # characters per line of a step's detail


@dataclass(frozen=True)
class _WorkBox:
    kind: str  # a WorkStep action, "command" or "handlers"
    lines: tuple[str, ...]
    colour: str  # a key of COLOURS, or "command"


def draw_unit_of_work(
    uow: UnitOfWork,
    results: Sequence[DispatchResult] = (),
    *,
    command: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the flow of one command through aggregate, unit of work, event store and bus.

    Each of ``uow.steps`` is a box in the lane of whoever did it, top to bottom in the order
    they happened: the aggregate loaded or added, the events saved (or the save refused with
    a conflict) in the event store, each event published on the bus, what was discarded. Under
    each publish, a box tells the handler calls: from ``results`` (what ``commit()`` returned)
    when given, else the handlers the bus has for that event. ``command`` (such as
    ``"order.pay()"``) adds the aggregate's decision, after the loading and before the rest.
    """
    boxes = _work_boxes(uow, results, command)
    lane_width = _WORK_BOX[0] + 0.35
    width = len(_LANES) * lane_width + 2 * MARGIN
    top = TITLE_HEIGHT + 0.4  # the title, then the lanes' names
    height = top + max(len(boxes), 1) * _WORK_ROW + MARGIN + LEGEND_ROW * 2 + 0.1
    figure, ax = _inch_axes(ax, width, height)
    first_row = height - top - _WORK_ROW / 2
    bottom = first_row - (len(boxes) - 0.5) * _WORK_ROW
    centres = [MARGIN + (lane + 0.5) * lane_width for lane in range(len(_LANES))]
    for name, x in zip(_LANES, centres, strict=True):
        _text(ax, x, height - TITLE_HEIGHT - 0.12, name, fontsize=9, weight="bold")
        lifeline = Line2D(
            [x, x], [height - top + 0.05, bottom], color=FADED_EDGE, linewidth=1.0, ls="--"
        )
        lifeline.set_zorder(0)
        ax.add_artist(lifeline)
    committing = [row for row, box in enumerate(boxes) if box.kind in _COMMIT]
    if committing:
        _commit_bar(ax, centres[1], first_row, committing[0], committing[-1])
    places = []
    for row, box in enumerate(boxes):
        x, y = centres[_LANE_OF[box.kind]], first_row - row * _WORK_ROW
        places.append((x, y))
        _rect(
            ax,
            x - _WORK_BOX[0] / 2,
            y,
            _WORK_BOX[0],
            "\n".join(box.lines),
            height=_WORK_BOX[1],
            gid=f"work-{row + 1}",
            **_work_style(box.colour),
        )
    for (x1, y1), (x2, y2) in itertools.pairwise(places):
        _work_arrow(ax, (x1, y1), (x2, y2))
    actions = [step.action for step in uow.steps]
    title = f"{type(uow).__name__}: " + (" → ".join(actions) if actions else "nothing done yet")
    legend = [
        _Key("command", "#ffffff", EDGE),
        _key("call", "done"),
        _key("event", "event published"),
        _key("failed", "refused or failed"),
        _Key("discarded", COLOURS["pending"][0], FADED_TEXT, dashes="--"),
    ]
    _finish_inches(ax, width, height, title, legend)
    return figure


def _work_boxes(
    uow: UnitOfWork, results: Sequence[DispatchResult], command: str | None
) -> list[_WorkBox]:
    boxes: list[_WorkBox] = []
    published = 0
    for number, step in enumerate(uow.steps, 1):
        if command is not None and step.action != "load":
            boxes.append(_command_box(command))
            command = None
        header = f"{number}. {step.action}"
        lines = (header, *textwrap.wrap(step.detail, _WRAP)[:2])
        colour = {"conflict": "failed", "publish": "event", "discard": "pending"}.get(
            step.action, "call"
        )
        boxes.append(_WorkBox(step.action, lines, colour))
        if step.action == "publish":
            boxes.append(_handlers_box(uow, results, published))
            published += 1
    if command is not None:
        boxes.append(_command_box(command))
    return boxes


_COMMIT = frozenset({"save", "conflict", "publish", "handlers"})


def _commit_bar(ax: Axes, x: float, first_row: float, first: int, last: int) -> None:
    """A bar in the unit of work's lane along the steps that ``commit()`` took."""
    upper = first_row - first * _WORK_ROW + _WORK_BOX[1] / 2
    lower = first_row - last * _WORK_ROW - _WORK_BOX[1] / 2
    bar = FancyBboxPatch(
        (x - 0.3, lower),
        0.6,
        upper - lower,
        boxstyle="round,pad=0,rounding_size=0.08",
        facecolor="#f9fafb",
        edgecolor=EDGE,
        linewidth=1.0,
        zorder=1,
    )
    bar.set_gid("commit")
    ax.add_artist(bar)
    _text(ax, x, (upper + lower) / 2, "commit()", fontsize=8.5, rotation=90, gid="commit-label")


def _command_box(command: str) -> _WorkBox:
    return _WorkBox("command", ("command:", shorten(command, _WRAP), "records events"), "command")


def _handlers_box(uow: UnitOfWork, results: Sequence[DispatchResult], number: int) -> _WorkBox:
    """What the bus did with the ``number``-th published event."""
    if number < len(results):
        result = results[number]
        names = list(dict.fromkeys(shorten(call.name, _WRAP) for call in result.calls))
        header = plural(len(result.calls), "handler call")
        if result.failures:
            header += f", {len(result.failures)} failed"
        colour = "failed" if result.failures else "call"
    elif number < len(uow.published):
        handlers = uow.bus.handlers_for(uow.published[number])
        names = [shorten(handler_name(handler), _WRAP) for handler in handlers]
        header = f"heard by {plural(len(handlers), 'handler')}"
        colour = "call"
    else:
        return _WorkBox("handlers", ("handlers", "(not known)"), "pending")
    listed = textwrap.wrap(", ".join(name.rsplit(".", 1)[-1] for name in names), _WRAP)
    if len(listed) > 2:
        listed = [listed[0], shorten(listed[1] + " …", _WRAP)]
    return _WorkBox("handlers", (header, *listed), colour)


def _work_style(colour: str) -> dict[str, Any]:
    if colour == "command":
        return {"face": "#ffffff", "edge": EDGE}
    fill, stroke = COLOURS[colour]
    if colour == "pending":
        return {"face": fill, "edge": FADED_TEXT, "dashes": "--", "text": "#4b5563"}
    return {"face": fill, "edge": stroke}


def _work_arrow(ax: Axes, source: tuple[float, float], target: tuple[float, float]) -> None:
    """From one step's box to the next: straight down within a lane, else across then down."""
    (x1, y1), (x2, y2) = source, target
    half_width, half_height = _WORK_BOX[0] / 2, _WORK_BOX[1] / 2
    if x1 == x2:
        start, style = (x1, y1 - half_height), "arc3"
    else:
        side = half_width if x2 > x1 else -half_width
        start, style = (x1 + side, y1), "angle,angleA=0,angleB=90,rad=0"
    arrow = FancyArrowPatch(
        start,
        (x2, y2 + half_height),
        connectionstyle=style,
        arrowstyle="-|>",
        mutation_scale=10,
        shrinkA=0,
        shrinkB=1,
        color=EDGE,
        linewidth=1.2,
        zorder=1,
    )
    ax.add_artist(arrow)


# ---------------------------------------------------------------------- drawing in inches


def _inch_axes(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    """An Axes whose data units are inches (a new figure of this size when ``ax`` is None)."""
    if ax is None:
        figure: Figure = NotebookFigure(figsize=(width, height))
        ax = figure.add_axes((0, 0, 1, 1))
    else:
        figure = _root_figure(ax)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return figure, ax


def _rect(
    ax: Axes,
    left: float,
    y: float,
    width: float,
    label: str,
    *,
    face: str,
    edge: str,
    gid: str,
    height: float = _ORDER_BOX[1],
    rounded: bool = False,
    dashes: str = "-",
    text: str = TEXT,
    fontsize: float = FONT_SIZE,
) -> None:
    """A box whose left edge is ``left`` and whose middle is at height ``y``, with its label."""
    style = "round,pad=0,rounding_size=0.12" if rounded else "round,pad=0,rounding_size=0.04"
    patch = FancyBboxPatch(
        (left, y - height / 2),
        width,
        height,
        boxstyle=style,
        facecolor=face,
        edgecolor=edge,
        linewidth=1.2,
        linestyle=dashes,
        zorder=2,
    )
    patch.set_gid(gid)
    ax.add_artist(patch)
    _text(ax, left + width / 2, y, label, fontsize=fontsize, color=text, gid=gid + "-label")


def _text(ax: Axes, x: float, y: float, words: str, **style: Any) -> None:
    style = {"ha": "center", "va": "center", "color": TEXT, **style}
    ax.text(x, y, words, parse_math=False, zorder=3, **style)


def _finish_inches(ax: Axes, width: float, height: float, title: str, legend: list[_Key]) -> None:
    """The title on top and a one-row legend at the bottom, as :class:`_Canvas` draws them."""
    _text(ax, width / 2, height - TITLE_HEIGHT / 2, shorten(title, int(width * 11)), fontsize=10)
    # Each key as wide as its words, so long labels never run into the next swatch.
    spans = [0.4 + 0.062 * len(key.label) + 0.3 for key in legend]
    x, y = (width - sum(spans) + 0.3) / 2, MARGIN
    for key, span in zip(legend, spans, strict=True):
        ax.add_artist(_swatch(key, x, y))
        _text(ax, x + 0.4, y, key.label, ha="left", fontsize=8)
        x += span


# ---------------------------------------------------------------------- the map of the series

_MAP_ROW = 0.72  # from one chapter's centre to the next: room for an arrow between boxes
_LANE_WIDTH = BOX_WIDTH + 0.24
_PART_HEADER = 0.5
_PART_CHARS = 24


def draw_series_map(chapters: Sequence[Chapter] = CHAPTERS, *, ax: Axes | None = None) -> Figure:
    """Draw the notebook series as a map: one lane per part, its chapters top to bottom.

    Parts go left to right in the order they first appear in ``chapters``. A part starts on
    the row where the part before it ended, so the reading order is one path of arrows, down
    a lane and across to the next. The first chapter is outlined: start there. Draws into
    ``ax`` when given.
    """
    parts = _chapters_by_part(chapters)
    places = _map_places(parts)
    rows = 1 + max((row for _, row in places.values()), default=0)
    width = max(MIN_WIDTH, len(parts) * COLUMN - (COLUMN - _LANE_WIDTH) + 2 * MARGIN)
    bottom = MARGIN + LEGEND_ROW
    height = TITLE_HEIGHT + _PART_HEADER + rows * _MAP_ROW + bottom
    figure, ax = _inch_axes(ax, width, height)
    left = (width - len(parts) * COLUMN + COLUMN) / 2  # the centre of the first lane
    canvas = _Canvas(figure, ax, width, height, left, bottom + (rows - 0.5) * _MAP_ROW)
    for lane, part in enumerate(parts):
        _draw_lane(canvas, lane, part, bottom, height - TITLE_HEIGHT)
    reading = [chapter for members in parts.values() for chapter in members]
    for before, after in itertools.pairwise(reading):
        _map_arrow(canvas, places[before], places[after])
    for position, chapter in enumerate(reading):
        style = _node_style("event", "current" if position == 0 else "done")
        canvas.box(
            _map_grid(places[chapter]),
            _chapter_label(chapter),
            shape="event",
            gid=f"chapter-{chapter.number:02d}",
            **style,
        )
    title = f"the series: {plural(len(reading), 'chapter')} in {plural(len(parts), 'part')}"
    legend = [
        _key("event", "chapter"),
        _Key("start here", COLOURS["event"][0], COLOURS["current"][1], width=2.5),
        _key("pending", "part"),
        _Key("reading order", EDGE, EDGE, line=True),
    ]
    canvas.finish(title, legend)
    return canvas.figure


def _chapters_by_part(chapters: Iterable[Chapter]) -> dict[str, list[Chapter]]:
    parts: dict[str, list[Chapter]] = {}
    for chapter in chapters:
        parts.setdefault(chapter.part, []).append(chapter)
    return parts


def _map_places(parts: dict[str, list[Chapter]]) -> dict[Chapter, tuple[int, int]]:
    """(lane, row) of each chapter: a staircase, each part starting where the last
    one ended, so that the arrow from one part to the next is level."""
    places: dict[Chapter, tuple[int, int]] = {}
    row = 0
    for lane, members in enumerate(parts.values()):
        for offset, chapter in enumerate(members):
            places[chapter] = (lane, row + offset)
        row += len(members) - 1
    return places


def _map_grid(place: tuple[int, int]) -> tuple[float, float]:
    """A (lane, row) place as grid coordinates of the canvas (whose rows are ``ROW`` apart)."""
    lane, row = place
    return (float(lane), -row * _MAP_ROW / ROW)


def _draw_lane(canvas: _Canvas, lane: int, part: str, bottom: float, top: float) -> None:
    """The grey band of one part, with the part's name at its head."""
    x, _ = canvas.at((lane, 0))
    fill, stroke = COLOURS["pending"]
    band = FancyBboxPatch(
        (x - _LANE_WIDTH / 2, bottom),
        _LANE_WIDTH,
        top - bottom,
        boxstyle="round,pad=0,rounding_size=0.08",
        facecolor=fill,
        edgecolor=stroke,
        linewidth=1.0,
        zorder=0,
    )
    band.set_gid(f"part-{part}")
    canvas._add(band)
    name = "\n".join(textwrap.wrap(part, _PART_CHARS)[:2])
    canvas.text(x, top - _PART_HEADER / 2, name, **_CENTRED, fontsize=9, fontweight="bold")


def _chapter_label(chapter: Chapter) -> str:
    """``NN Title`` on at most two lines that fit a box."""
    lines = textwrap.wrap(f"{chapter.number:02d} {chapter.title}", LABEL_CHARS - 2)
    if len(lines) > 2:
        lines = [lines[0], shorten(" ".join(lines[1:]), LABEL_CHARS - 2)]
    return "\n".join(lines)


def _map_arrow(canvas: _Canvas, source: tuple[int, int], target: tuple[int, int]) -> None:
    """Down a lane from box to box, or across from one lane to the next."""
    (x1, y1), (x2, y2) = canvas.at(_map_grid(source)), canvas.at(_map_grid(target))
    if source[0] == target[0]:
        start, end = (x1, y1 - BOX_HEIGHT / 2), (x2, y2 + BOX_HEIGHT / 2)
    else:
        start, end = (x1 + BOX_WIDTH / 2, y1), (x2 - BOX_WIDTH / 2, y2)
    arrow = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=10,
        shrinkA=0,
        shrinkB=1,
        color=EDGE,
        linewidth=1.2,
        zorder=1,
    )
    canvas._add(arrow)
