"""Pictures of a dispatch and of a bus's registrations.

- :func:`draw_flow` draws the causal graph of one dispatch, left to right by cascade depth
  (events, then the handler calls they reached, then the events those produced, ...), and with
  ``upto=k`` the state after step ``k``: done, current, queued and not yet run.
  :class:`FlowPicture` is the same picture kept for a step-through: drawn once, restyled at
  each step (what an explorer redraws per step is only what changed). Alike siblings are
  folded into one stacked box with a count (:mod:`eda_lesson.views.folding`); a cascade too
  large for a page is drawn tighter (closer boxes, smaller labels) and, when even that is too
  large, cut to a page, with a note saying what was left out.
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
always gives the same picture, with no random seed anywhere. The colours and shapes are the
palette's (:mod:`eda_lesson.views.palette`), drawn with the one kit of
:mod:`eda_lesson.views.sheet`, with a legend on every picture. Each function returns the
figure, which Jupyter shows as a PNG and whose text form says what it shows; none dispatches.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.text import Text

from eda_lesson.book.chapters import CHAPTERS, Chapter
from eda_lesson.core.bus import BaseBus
from eda_lesson.core.checks import handler_name
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.views.folding import PAGE, PAGE_LAYERS, PAGE_ROWS, folded_graph, page_graph
from eda_lesson.views.graphs import (
    check_step,
    error_text,
    registration_graph,
    step_caption,
)
from eda_lesson.views.labels import shorten, two_lines, wrap
from eda_lesson.views.palette import (
    CALL,
    COMMAND,
    CURRENT,
    EDGE,
    EVENT,
    FADED_EDGE,
    FADED_TEXT,
    FAILED,
    INKS,
    PANEL,
    PENDING,
    PLAIN,
    QUEUED,
    TEXT,
    UNHANDLED,
    Ink,
)
from eda_lesson.views.sheet import (
    FONT_SIZE,
    SMALL,
    TITLE_HEIGHT,
    Chart,
    Key,
    Sheet,
    describe,
    paint,
)

if TYPE_CHECKING:
    from eda_lesson.patterns.unit_of_work import UnitOfWork

__all__ = [
    "FlowPicture",
    "OrderedCall",
    "calls_in_order",
    "draw_flow",
    "draw_nested_vs_queue",
    "draw_registrations",
    "draw_series_map",
    "draw_timeline",
    "draw_unit_of_work",
    "flow_layout",
]

# Sizes in inches: a sheet maps one data unit to one inch, so text fits its box.
COLUMN = 2.3  # from one layer's centre to the next
BOX = (1.9, 0.46)
ROW = 0.62  # from one node's centre to the next in a layer
MARGIN = 0.25
MIN_WIDTH = 6.8
LABEL_CHARS = 26
NOTE_HEIGHT = 0.3
"""Inches for a one-line note under a drawing; each further line takes :data:`NOTE_LINE`."""
NOTE_LINE = 0.15
NOTE_LINES = 3


# ---------------------------------------------------------------------- the flow of a dispatch


def flow_layout(graph: Any) -> dict[Hashable, tuple[float, float]]:
    """Grid positions ``(x, y)`` for the nodes of a :func:`~eda_lesson.views.graphs.flow_graph`.

    ``x`` is the node's ``layer`` (0: the dispatched event, 1: its handler calls, 2: the events
    they produced, ...). Within a layer nodes go top to bottom by event index or step, centred
    on ``y = 0`` one unit apart (``y`` grows upwards, as in matplotlib).
    """
    layers: dict[int, list[tuple[int, Hashable]]] = {}
    for node, data in graph.nodes(data=True):
        order = data["step"] if data["kind"] == "call" else data["index"]
        layers.setdefault(data["layer"], []).append((order, node))
    positions: dict[Hashable, tuple[float, float]] = {}
    for layer, members in layers.items():
        members.sort(key=lambda member: member[0])
        middle = (len(members) - 1) / 2
        for row, (_, node) in enumerate(members):
            positions[node] = (float(layer), middle - row)
    return positions


def draw_flow(
    result: DispatchResult,
    *,
    upto: int | None = None,
    ax: Axes | None = None,
    fold: bool = True,
    unfold: Collection[int] = (),
) -> Figure:
    """Draw the cascade of ``result`` as a layered causal graph, left to right.

    With ``upto=k`` (0 to the number of steps) the picture is the cascade after step ``k``:
    calls up to ``k`` are done, call ``k`` is outlined as the current step, events produced
    but not handled yet are queued, and the rest is faded. A failure or a missing handler
    shows only once the cascade has reached it. Draws into ``ax`` when given.

    At least three sibling events whose sub-cascades have the same shape are drawn as one
    stacked box, "x 200 OrderPaid, each: ..." (see :mod:`eda_lesson.views.folding`); a sibling
    that differs stays on its own. ``unfold={1}`` draws the group whose first event is #1 one
    by one, ``fold=False`` every group; ``unfold`` takes the first indexes of any groups
    (:attr:`FlowPicture.groups`), the others staying folded.

    Whatever the cascade, the figure fits :data:`PAGE`: a cascade too wide or too tall for the
    usual spacing is drawn tighter, and one too large even for that is cut to
    :data:`~eda_lesson.views.folding.PAGE_LAYERS` layers of
    :data:`~eda_lesson.views.folding.PAGE_ROWS` boxes (the rule of
    :func:`~eda_lesson.views.folding.page_graph`); a note on the picture, and the same words in
    its text form, say what was left out.
    """
    if upto is not None:
        check_step(result, upto)
    picture = FlowPicture(result, stepping=upto is not None, ax=ax, fold=fold, unfold=unfold)
    return picture.show(upto).figure


class FlowPicture:
    """The picture :func:`draw_flow` draws, kept to be shown at one step after another.

    The layout, the boxes, the arrows and the legend are made once; :meth:`show` restyles
    them for a step. Showing step ``k`` gives exactly the picture ``draw_flow(result,
    upto=k)`` draws (``stepping=False``: the picture of the whole dispatch, ``upto=None``).
    ``fold`` and ``unfold`` are ``draw_flow``'s; :attr:`groups` are the folded groups drawn
    and :attr:`left_out` what was cut to fit :data:`PAGE` (false when nothing was);
    :attr:`note` is the note saying so (empty when nothing was).

    >>> picture = FlowPicture(result)  # doctest: +SKIP
    >>> png = figure_to_png(picture.show(2).figure)  # doctest: +SKIP
    """

    def __init__(
        self,
        result: DispatchResult,
        *,
        stepping: bool = True,
        ax: Axes | None = None,
        fold: bool = True,
        unfold: Collection[int] = (),
    ) -> None:
        self.result = result
        graph = folded_graph(result, fold=fold, unfold=unfold)
        self.groups = graph.graph["groups"]
        graph, self.left_out = page_graph(graph)
        self._graph = graph
        positions = flow_layout(graph)
        columns = 1 + max(x for x, _ in positions.values())
        rows = max(_layer_sizes(positions).values())
        commands = any(data.get("command") for _, data in graph.nodes(data=True))
        legend = _flow_legend(stepping=stepping, commands=commands, folded=bool(self.groups))
        note = self.left_out.note() if self.left_out else ""
        spacing = _fit(int(columns), rows, legend, note)
        grid = _Grid.make(ax, columns, rows, legend, note=note, spacing=spacing)
        box_size = spacing.box
        self._arrows: list[tuple[Hashable, Hashable, FancyArrowPatch]] = []
        for source, target in graph.edges():
            arrow = grid.arrow(positions[source], positions[target])
            self._arrows.append((source, target, arrow))
        self._boxes: dict[Hashable, tuple[FancyBboxPatch, Text]] = {}
        self._decks: dict[Hashable, FancyBboxPatch] = {}
        for node, data in graph.nodes(data=True):
            kind = "command" if data.get("command") else data["kind"]
            centre = grid.at(positions[node])
            gid = f"{data['kind']}-{node[1]}"
            if data["kind"] == "group":  # a stack of alike boxes
                behind = (centre[0] + _DECK, centre[1] - _DECK)
                ink = INKS["command" if data["command"] else "event"]
                self._decks[node] = grid.sheet.box(
                    behind, box_size, ink=ink, gid=f"{gid}-stack", zorder=1
                )
                kind = "command" if data["command"] else "event"
            box = grid.sheet.box(centre, box_size, ink=INKS[kind], gid=gid)
            label = grid.sheet.text(*centre, "", fontsize=spacing.fontsize, gid=f"{gid}-label")
            self._boxes[node] = (box, label)
        self._title = grid.sheet.title("")
        self.sheet = grid.sheet
        self.note = note
        self._chars = spacing.chars

    @property
    def figure(self) -> Figure:
        return self.sheet.figure

    @property
    def graph(self) -> Any:
        """The graph drawn: folded, and cut to the page when large."""
        return self._graph

    def show(self, upto: int | None = None) -> FlowPicture:
        """Restyle the picture for the cascade after step ``upto`` (the whole dispatch with
        None) and return it."""
        if upto is not None:
            check_step(self.result, upto)
        states = _flow_states(self._graph, upto)
        for source, target, arrow in self._arrows:
            colour, width = _edge_style(states[source], states[target])
            arrow.set_color(colour)
            arrow.set_linewidth(width)
        for node, (box, label) in self._boxes.items():
            state = states[node]
            paint(box, _node_ink(state))
            if node in self._decks:
                paint(self._decks[node], _node_ink(state))
            label.set_text(_node_label(self._graph.nodes[node], state.category, self._chars))
            label.set_color(FADED_TEXT if state.state == "pending" else TEXT)
        words = step_caption(self.result, upto)
        self.sheet.retitle(self._title, words)
        if self.groups or self.note:
            describe(self.figure, _described(words, self.groups, self.note))
        return self


@dataclass(frozen=True)
class _State:
    category: str  # "event", "command", "unhandled", "call" or "failed": what the node is
    state: str  # "done", "current", "queued" or "pending": how far the cascade got


def _flow_states(graph: Any, upto: int | None) -> dict[Hashable, _State]:
    """What each node is, and how far the cascade had got with it after step ``upto``."""
    last = graph.graph["steps"] if upto is None else upto
    states: dict[Hashable, _State] = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "group":
            states[node] = _group_state(data, last, upto)
            continue
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
        reached = last >= data["calls_before"] if data["unhandled"] else data["step"] <= last
        state = "done" if reached else "queued" if produced else "pending"
        unhandled = data["unhandled"] and state == "done"
        kind = "command" if data["command"] else "event"
        states[node] = _State("unhandled" if unhandled else kind, state)
    return states


def _group_state(data: dict[str, Any], last: int, upto: int | None) -> _State:
    """A folded group is done once all its steps are, current while they run (its last
    step included)."""
    kind = "unhandled" if data["unhandled"] else "command" if data["command"] else "event"
    produced = data["caused_by"] is None or data["caused_by"] <= last
    if upto is None or (data["step"] is None and produced):
        return _State(kind, "done")
    if data["step"] is not None and data["last_step"] < last:
        return _State(kind, "done")
    if data["step"] is not None and data["step"] <= last:
        return _State(kind, "current")
    return _State(kind, "queued" if produced else "pending")


def _described(words: str, groups: Sequence[Any], note: str) -> str:
    """The text form of a folded or cut picture: the caption, the folds, what was left out."""
    parts = [words]
    for group in groups[:3]:
        parts.append(f"folded: x {group.count} {group.type_name} from #{group.first}")
    if len(groups) > 3:
        parts.append(f"and {plural(len(groups) - 3, 'more folded group')}")
    if note:
        parts.append(note)
    return "; ".join(parts)


def _node_label(data: dict[str, Any], category: str, chars: int = LABEL_CHARS) -> str:
    """A box's words, each line cut to ``chars`` characters."""
    if data["kind"] == "group":
        return two_lines(f"x {data['count']} {data['label']}", data["summary"], chars)
    if data["kind"] == "event":
        label = f"#{data['index']} {data['label']}"
        return two_lines(label, "no handler" if category == "unhandled" else None, chars)
    label = f"{data['step']}. {shorten(data['label'], chars - 4)}"
    failure = None
    if category == "failed":
        failure = "failed: " + str(data["error"]).split(":", 1)[0]
    return two_lines(label, failure, chars)


def _node_ink(state: _State) -> Ink:
    """The ink of a node: what it is, then how far the cascade got with it (the current step
    outlined, a queued event dashed, the rest grey); a failure's hatching stays."""
    ink = INKS[state.category]
    if state.state == "current":
        return ink.but(stroke=CURRENT.stroke, width=CURRENT.width)
    if state.state == "queued":
        return ink.but(fill=QUEUED.fill, stroke=QUEUED.stroke, dashes=QUEUED.dashes, width=1.2)
    if state.state == "pending":
        return PENDING
    return ink


def _edge_style(source: _State, target: _State) -> tuple[str, float]:
    if target.state == "current":
        return CURRENT.stroke, 2.0
    if target.state == "pending" or source.state == "pending":
        return FADED_EDGE, 1.0
    return EDGE, 1.2


def _flow_legend(*, stepping: bool, commands: bool = False, folded: bool = False) -> list[Key]:
    keys = [Key("command", COMMAND)] if commands else []
    if folded:
        keys.append(Key("x n: alike events, folded", EVENT.but(width=2.4)))
    keys += [
        Key("event", EVENT),
        Key("handler call", CALL),
        Key("failed call", FAILED),
        Key("unhandled event", UNHANDLED),
    ]
    if stepping:
        keys += [
            Key("current step", CALL.but(stroke=CURRENT.stroke, width=2.5)),
            Key("queued event", QUEUED),
            Key("not yet run", PENDING),
        ]
    return keys


_DECK = 0.07  # how far the box behind a folded group's box peeks out


@dataclass(frozen=True)
class _Spacing:
    """How closely a flow is drawn: columns ``column`` apart, rows ``row`` apart, boxes of
    ``box`` inches whose labels have lines of ``chars`` characters at ``fontsize`` points."""

    column: float
    row: float
    box: tuple[float, float]
    chars: int
    fontsize: float


def _floor(inches: float) -> float:
    """Rounded down to a thousandth: a layout that fits exactly still fits once summed."""
    return int(inches * 1000) / 1000


def _note_lines(note: str, width: float) -> list[str]:
    """The note wrapped to the width of a sheet (:data:`SMALL` type, about 13 characters an
    inch), on at most :data:`NOTE_LINES` lines."""
    return wrap(note, int(width * 13), NOTE_LINES) if note else []


def _bottom(legend: Sequence[Key], width: float, note: str) -> float:
    """The room below a flow's boxes: the legend, and the note when there is one."""
    bottom = Sheet.legend_height(legend, width) + 0.05
    lines = len(_note_lines(note, width))
    return bottom + (NOTE_HEIGHT + NOTE_LINE * (lines - 1) if lines else 0)


# From the usual spacing to the tightest, which holds PAGE_LAYERS columns across PAGE and
# PAGE_ROWS rows under a title and above the tallest legend (on the narrowest sheet) and a
# note of NOTE_LINES lines: whatever page_graph keeps, some spacing fits the page.
_ACROSS = [(COLUMN, BOX[0], LABEL_CHARS, FONT_SIZE), (2.05, 1.7, 24, 8.0), (1.85, 1.5, 22, 7.5)]
_ACROSS.append(
    (_floor((PAGE[0] - 2 * MARGIN - 1.35) / (PAGE_LAYERS - 1)), 1.35, 21, 7.0),
)
_TALLEST_BOTTOM = (
    Sheet.legend_height(_flow_legend(stepping=True, commands=True, folded=True), MIN_WIDTH)
    + 0.05
    + NOTE_HEIGHT
    + NOTE_LINE * (NOTE_LINES - 1)
)
_DOWN = [(ROW, BOX[1]), (0.54, 0.42), (0.48, 0.38)]
_DOWN.append((_floor((PAGE[1] - TITLE_HEIGHT - _TALLEST_BOTTOM) / PAGE_ROWS), 0.34))
_FULL = _Spacing(COLUMN, ROW, BOX, LABEL_CHARS, FONT_SIZE)


def _fit(columns: int, rows: int, legend: Sequence[Key], note: str) -> _Spacing:
    """The loosest spacing at which ``columns`` layers of at most ``rows`` boxes, the title,
    the legend and the note fit :data:`PAGE`: closer columns and smaller labels first, then
    closer rows. At most :data:`PAGE_LAYERS` by :data:`PAGE_ROWS` always fit."""
    across = next(
        (level for level in _ACROSS if 2 * MARGIN + level[1] + (columns - 1) * level[0] <= PAGE[0]),
        _ACROSS[-1],
    )
    column, box_width, chars, fontsize = across
    width = max(MIN_WIDTH, 2 * MARGIN + box_width + (columns - 1) * column)
    room = PAGE[1] - TITLE_HEIGHT - _bottom(legend, width, note)
    row, box_height = next((level for level in _DOWN if rows * level[0] <= room), _DOWN[-1])
    return _Spacing(column, row, (box_width, box_height), chars, fontsize)


def _layer_sizes(positions: dict[Hashable, tuple[float, float]]) -> dict[float, int]:
    sizes: dict[float, int] = {}
    for x, _ in positions.values():
        sizes[x] = sizes.get(x, 0) + 1
    return sizes


@dataclass(frozen=True)
class _Grid:
    """Boxes on a grid of a sheet: columns :data:`COLUMN` apart, rows :data:`ROW` apart
    (or as ``spacing`` says), the title on top and the legend below."""

    sheet: Sheet
    left: float  # x of the centre of column 0
    middle: float  # y of grid row 0
    spacing: _Spacing = _FULL

    @classmethod
    def make(
        cls,
        ax: Axes | None,
        columns: float,
        rows: int,
        legend: Sequence[Key],
        *,
        left_room: float = 0,
        note: str = "",
        spacing: _Spacing = _FULL,
    ) -> _Grid:
        box_width = spacing.box[0]
        content = left_room + box_width + (columns - 1) * spacing.column
        width = max(MIN_WIDTH, content + 2 * MARGIN)
        bottom = _bottom(legend, width, note)
        sheet = Sheet.new(width, TITLE_HEIGHT + rows * spacing.row + bottom, ax)
        sheet.legend(legend)
        if note:
            lines = _note_lines(note, width)
            room = NOTE_HEIGHT + NOTE_LINE * (len(lines) - 1)
            words = "\n".join(lines)
            sheet.text(width / 2, bottom - room / 2, words, fontsize=SMALL, gid="left-out")
        left = (width - content) / 2 + left_room + box_width / 2
        return cls(sheet, left, bottom + rows * spacing.row / 2, spacing)

    def at(self, place: tuple[float, float]) -> tuple[float, float]:
        return (
            self.left + place[0] * self.spacing.column,
            self.middle + place[1] * self.spacing.row,
        )

    def arrow(self, source: tuple[float, float], target: tuple[float, float]) -> FancyArrowPatch:
        """From the right edge of one box to the left edge of the next column's box."""
        (x1, y1), (x2, y2) = self.at(source), self.at(target)
        half = self.spacing.box[0] / 2
        return self.sheet.arrow((x1 + half, y1), (x2 - half, y2))


# ---------------------------------------------------------------------- registrations


def draw_registrations(
    bus: BaseBus, *, ax: Axes | None = None, event_types: Iterable[type] = ()
) -> Figure:
    """Draw which handler listens to which event type: types on the left, handlers on the right.

    A dashed arc joins a subclass to its base class ("is a"): a handler on the base hears the
    subclass too. A type that no handler hears (``event_types`` adds such types) is drawn as
    unhandled. Handlers of one type are listed top to bottom in the order the bus calls them.

    The drawing fits a page (:data:`~eda_lesson.views.folding.PAGE`): past the rows a page
    holds at the closest spacing (14) it keeps the first types, in the order they were
    registered, each with its handlers, and a note under it says what it left out;
    ``bus.describe()`` lists every registration.
    """
    whole = registration_graph(bus, event_types=event_types)
    commands = any(data.get("command") for _, data in whole.nodes(data=True))
    legend = [Key("command type", COMMAND)] if commands else []
    legend += [
        Key("event type", EVENT),
        Key("handler", CALL),
        Key("no handler", UNHANDLED),
        Key("is a (subclass of)", PLAIN.but(dashes="--"), line=True),
    ]
    kind = "message type" if commands else "event type"
    most = _registration_rows(legend)
    graph = _registrations_on_a_page(whole, most)
    positions = _registration_layout(graph)
    rows = _rows_of(positions)
    has_bases = any(r == "subclass_of" for _, _, r in graph.edges(data="relation"))
    note = _registrations_left_out(whole, graph, kind, most)
    spacing = _fit(2, rows, legend, note)
    grid = _Grid.make(
        ax, 2, rows, legend, left_room=0.45 if has_bases else 0, note=note, spacing=spacing
    )
    for source, target, relation in graph.edges(data="relation"):
        if relation == "listens":
            grid.arrow(positions[source], positions[target])
        else:
            _is_a_arc(grid, positions[source], positions[target])
    chars = spacing.chars
    for node, data in graph.nodes(data=True):
        if data["kind"] == "handler":
            label, ink = shorten(data["label"], chars), CALL
        else:
            ink = (COMMAND if data["command"] else EVENT) if data["handled"] else UNHANDLED
            label = two_lines(data["label"], None if data["handled"] else "no handler", chars)
        grid.sheet.box(
            grid.at(positions[node]),
            spacing.box,
            label,
            ink=ink,
            gid=f"{data['kind']}-{data['label']}",
            fontsize=spacing.fontsize,
        )
    handlers = sum(1 for _, data in whole.nodes(data=True) if data["kind"] == "handler")
    types = whole.number_of_nodes() - handlers
    grid.sheet.title(f"registrations: {plural(handlers, 'handler')}, {plural(types, kind)}")
    return grid.sheet.figure


def _rows_of(positions: dict[Hashable, tuple[float, float]]) -> int:
    """How many rows a registration layout (centred on ``y = 0``) spans."""
    return int(1 + 2 * max((y for _, y in positions.values()), default=0))


def _registration_rows(legend: Sequence[Key]) -> int:
    """How many rows of registrations fit :data:`PAGE` at the closest spacing, under the
    title and above ``legend`` and a two-line note."""
    note = "left out: " + "x" * int(MIN_WIDTH * 13)  # as long as two lines of the note
    room = PAGE[1] - TITLE_HEIGHT - _bottom(legend, MIN_WIDTH, note)
    return max(PAGE_ROWS, int(room / _DOWN[-1][0]))


def _registrations_on_a_page(graph: Any, most: int) -> Any:
    """``graph`` itself when it fits ``most`` rows; else the first types, each with its
    handlers in call order, as long as they fit (a type whose first handler does not fit is
    left out with it)."""
    if _rows_of(_registration_layout(graph)) <= most:
        return graph
    kept: list[Hashable] = []
    for node, kind in graph.nodes(data="kind"):
        if kind != "event_type":
            continue
        listeners = sorted(
            (h for h in graph.successors(node) if graph.nodes[h]["kind"] == "handler"),
            key=lambda h: graph.edges[node, h]["position"],
        )
        new = [h for h in listeners if h not in kept]
        for count, addition in enumerate([node, *new]):
            if _rows_of(_registration_layout(_kept(graph, [*kept, addition]))) > most:
                if count == 1 and not any(h in kept for h in listeners):
                    kept.remove(node)  # the type would stand without any of its handlers
                return _kept(graph, kept)
            kept.append(addition)
    return _kept(graph, kept)


def _kept(graph: Any, nodes: list[Hashable]) -> Any:
    """A new graph of ``nodes`` and the edges between them, in ``graph``'s order (a networkx
    subgraph view may list its nodes in another order, and the layout follows that order)."""
    keep = set(nodes)
    page = type(graph)(**graph.graph)
    page.add_nodes_from((node, data) for node, data in graph.nodes(data=True) if node in keep)
    page.add_edges_from(
        (u, v, data) for u, v, data in graph.edges(data=True) if u in keep and v in keep
    )
    return page


def _registrations_left_out(whole: Any, page: Any, kind: str, most: int) -> str:
    """The note saying what :func:`_registrations_on_a_page` left out ("" for nothing)."""
    if page is whole:
        return ""
    gone = [data["kind"] for node, data in whole.nodes(data=True) if node not in page]
    types, handlers = gone.count("event_type"), gone.count("handler")
    parts = [plural(types, kind)] if types else []
    parts += [plural(handlers, "handler")] if handlers else []
    return (
        f"left out past {most} rows: {' and '.join(parts)}; bus.describe() lists every registration"
    )


def _is_a_arc(grid: _Grid, source: tuple[float, float], target: tuple[float, float]) -> None:
    """A dashed arc left of a column, from a subclass's box down or up to its base's box."""
    (x, y1), (_, y2) = grid.at(source), grid.at(target)
    bend = min(0.6, 0.7 / abs(y2 - y1)) * (1 if y2 < y1 else -1)
    edge = x - BOX[0] / 2
    grid.sheet.arrow((edge, y1), (edge, y2), width=1.0, dashes="--", bend=bend)


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
    chart = Chart.new(7.6, 1.55 + 0.34 * rows, margins=(2.3, 1.0, 0.2, 0.4), ax=ax)
    timed = result.timed and all(c.started is not None and c.ended is not None for c in calls)
    spans = _timeline_spans(result, timed)
    finish = max((start + length for start, length in spans), default=1.0)
    for row, (call, (start, length)) in enumerate(zip(calls, spans, strict=True)):
        chart.bar(row, start, length, CALL if call.error is None else FAILED)
        note = f"#{call.event_index} {result.events[call.event_index].type_name}"
        if call.error is not None:
            note += " · failed: " + str(error_text(call.error)).split(":", 1)[0]
        chart.note(start + length + finish * 0.01, row, note, colour=EDGE)
    labels = [(float(row), f"{c.step}. {shorten(c.name, 28)}") for row, c in enumerate(calls)]
    if timed:
        xlabel, xlim = "time since the first call started (bus clock)", (0, finish * 1.45)
    else:
        xlabel, xlim = "step (handler calls in the order they ran)", (0, finish + 2.2)
    chart.frame(labels, xlabel=xlabel, xlim=xlim, ylim=(rows - 0.4, -0.6))
    if not timed:
        chart.ax.set_xticks([c.step - 0.5 for c in calls], [str(c.step) for c in calls])
    if not calls:
        words = f"no handler ran: #0 {type(result.event).__name__} had none"
        chart.note(0.5, 0, words, ha="left", fontsize=FONT_SIZE, colour=TEXT)
    chart.title(
        f"timeline of the {type(result.event).__name__} dispatch: "
        f"{plural(len(calls), 'handler call')}"
    )
    chart.legend([Key("handler call", CALL), Key("failed call", FAILED)])
    return chart.figure


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
    legend = [
        Key("handler call (step. name)", CALL),
        Key("the event it handles", EVENT),
        Key("one event's calls", PLAIN.but(stroke=EVENT.stroke, width=1.4), line=True),
    ]
    top = TITLE_HEIGHT + 0.75  # the title, then each side's heading and caption
    height = top + rows * _ORDER_ROW + Sheet.legend_height(legend, width, per_row=5)
    sheet = Sheet.new(width, height, ax)
    first_row = height - top - _ORDER_ROW / 2
    sides = (("nested", "nested calls (a naive bus)", left), ("queue", "EventBus: a queue", right))
    for number, (name, heading, calls) in enumerate(sides):
        x = MARGIN + number * (_PANEL + MARGIN)
        middle = x + _PANEL / 2
        sheet.text(middle, height - TITLE_HEIGHT - 0.1, heading, fontsize=9.5, weight="bold")
        sheet.text(middle, height - TITLE_HEIGHT - 0.38, _order_caption(calls), fontsize=8)
        _draw_order_side(sheet, name, calls, x, first_row)
    sheet.title(f"one cascade, two orders: {plural(len(right), 'handler call')}")
    sheet.legend(legend, per_row=5)
    return sheet.figure


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


def _draw_order_side(
    sheet: Sheet, side: str, calls: list[OrderedCall], x: float, top: float
) -> None:
    box_width, box_height = _ORDER_BOX
    rows_of: dict[str, list[int]] = {}
    for row, call in enumerate(calls):
        rows_of.setdefault(call.event, []).append(row)
        left = x + _BRACKET + 0.1 + call.depth * _INDENT
        y = top - row * _ORDER_ROW
        label = f"{row + 1}. {shorten(call.handler, 22)}"
        sheet.box(
            (left + box_width / 2, y), _ORDER_BOX, label, ink=CALL, gid=f"{side}-call-{row + 1}"
        )
        tag = shorten(call.event, 24)
        tag_width = 0.2 + 0.064 * len(tag)
        sheet.box(
            (left + box_width + 0.08 + tag_width / 2, y),
            (tag_width, box_height * 0.8),
            tag,
            ink=EVENT,
            fontsize=SMALL,
            gid=f"{side}-event-{row + 1}",
        )
    for event, rows in rows_of.items():
        depth = calls[rows[0]].depth
        bracket_x = x + 0.1 + depth * _INDENT
        upper, lower = top - rows[0] * _ORDER_ROW, top - rows[-1] * _ORDER_ROW
        spine: dict[str, Any] = {"colour": EVENT.stroke, "width": 1.4, "zorder": 2}
        sheet.line([bracket_x, bracket_x], [upper, lower], gid=f"{side}-bracket-{event}", **spine)
        for row in rows:
            y = top - row * _ORDER_ROW
            sheet.line([bracket_x, bracket_x + _BRACKET], [y, y], **spine)


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
_DISCARDED = PENDING.but(stroke=FADED_TEXT, dashes="--", width=1.2)


@dataclass(frozen=True)
class _WorkBox:
    kind: str  # a WorkStep action, "command" or "handlers"
    lines: tuple[str, ...]
    ink: Ink


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
    legend = [
        Key("command", PLAIN),
        Key("done", CALL),
        Key("event published", EVENT),
        Key("refused or failed", FAILED),
        Key("discarded", _DISCARDED),
    ]
    top = TITLE_HEIGHT + 0.4  # the title, then the lanes' names
    bottom = Sheet.legend_height(legend, width, per_row=5)
    height = top + max(len(boxes), 1) * _WORK_ROW + bottom
    sheet = Sheet.new(width, height, ax)
    first_row = height - top - _WORK_ROW / 2
    lowest = first_row - (len(boxes) - 0.5) * _WORK_ROW
    centres = [MARGIN + (lane + 0.5) * lane_width for lane in range(len(_LANES))]
    for name, x in zip(_LANES, centres, strict=True):
        sheet.text(x, height - TITLE_HEIGHT - 0.12, name, fontsize=9, weight="bold")
        lifeline = [height - top + 0.05, lowest]
        sheet.line([x, x], lifeline, colour=FADED_EDGE, dashes="--", zorder=0)
    committing = [row for row, box in enumerate(boxes) if box.kind in _COMMIT]
    if committing:
        _commit_bar(sheet, centres[1], first_row, committing[0], committing[-1])
    places = []
    for row, box in enumerate(boxes):
        x, y = centres[_LANE_OF[box.kind]], first_row - row * _WORK_ROW
        places.append((x, y))
        label = "\n".join(box.lines)
        words = EDGE if box.ink == _DISCARDED else TEXT
        sheet.box((x, y), _WORK_BOX, label, ink=box.ink, text=words, gid=f"work-{row + 1}")
    for (x1, y1), (x2, y2) in itertools.pairwise(places):
        _work_arrow(sheet, (x1, y1), (x2, y2))
    actions = [step.action for step in uow.steps]
    sheet.title(
        f"{type(uow).__name__}: " + (" → ".join(actions) if actions else "nothing done yet")
    )
    sheet.legend(legend, per_row=5)
    return sheet.figure


def _work_boxes(
    uow: UnitOfWork, results: Sequence[DispatchResult], command: str | None
) -> list[_WorkBox]:
    boxes: list[_WorkBox] = []
    published = 0
    for number, step in enumerate(uow.steps, 1):
        if command is not None and step.action != "load":
            boxes.append(_command_box(command))
            command = None
        lines = (f"{number}. {step.action}", *wrap(step.detail, _WRAP))
        ink = {"conflict": FAILED, "publish": EVENT, "discard": _DISCARDED}.get(step.action, CALL)
        boxes.append(_WorkBox(step.action, lines, ink))
        if step.action == "publish":
            boxes.append(_handlers_box(uow, results, published))
            published += 1
    if command is not None:
        boxes.append(_command_box(command))
    return boxes


_COMMIT = frozenset({"save", "conflict", "publish", "handlers"})


def _commit_bar(sheet: Sheet, x: float, first_row: float, first: int, last: int) -> None:
    """A bar in the unit of work's lane along the steps that ``commit()`` took."""
    upper = first_row - first * _WORK_ROW + _WORK_BOX[1] / 2
    lower = first_row - last * _WORK_ROW - _WORK_BOX[1] / 2
    middle = (upper + lower) / 2
    bar = PLAIN.but(fill=PANEL, width=1.0)
    sheet.box((x, middle), (0.6, upper - lower), ink=bar, corner=0.08, gid="commit", zorder=1)
    sheet.text(x, middle, "commit()", rotation=90, gid="commit-label")


def _command_box(command: str) -> _WorkBox:
    return _WorkBox("command", ("command:", shorten(command, _WRAP), "records events"), PLAIN)


def _handlers_box(uow: UnitOfWork, results: Sequence[DispatchResult], number: int) -> _WorkBox:
    """What the bus did with the ``number``-th published event."""
    if number < len(results):
        result = results[number]
        names = list(dict.fromkeys(shorten(call.name, _WRAP) for call in result.calls))
        header = plural(len(result.calls), "handler call")
        if result.failures:
            header += f", {len(result.failures)} failed"
        ink = FAILED if result.failures else CALL
    elif number < len(uow.published):
        handlers = uow.bus.handlers_for(uow.published[number])
        names = [shorten(handler_name(handler), _WRAP) for handler in handlers]
        header = f"heard by {plural(len(handlers), 'handler')}"
        ink = CALL
    else:
        return _WorkBox("handlers", ("handlers", "(not known)"), PENDING)
    listed = wrap(", ".join(name.rsplit(".", 1)[-1] for name in names), _WRAP)
    return _WorkBox("handlers", (header, *listed), ink)


def _work_arrow(sheet: Sheet, source: tuple[float, float], target: tuple[float, float]) -> None:
    """From one step's box to the next: straight down within a lane, else across then down."""
    (x1, y1), (x2, y2) = source, target
    half_width, half_height = _WORK_BOX[0] / 2, _WORK_BOX[1] / 2
    end = (x2, y2 + half_height)
    if x1 == x2:
        sheet.arrow((x1, y1 - half_height), end)
    else:
        side = half_width if x2 > x1 else -half_width
        sheet.arrow((x1 + side, y1), end, corner=True)


# ---------------------------------------------------------------------- the map of the series

_MAP_ROW = 0.72  # from one chapter's centre to the next: room for an arrow between boxes
_LANE_WIDTH = BOX[0] + 0.24
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
    start_here = EVENT.but(stroke=CURRENT.stroke, width=CURRENT.width)
    legend = [
        Key("chapter", EVENT),
        Key("start here", start_here.but(width=2.5)),
        Key("part", PENDING),
        Key("reading order", PLAIN, line=True),
    ]
    bottom = Sheet.legend_height(legend, width)
    height = TITLE_HEIGHT + _PART_HEADER + rows * _MAP_ROW + bottom
    sheet = Sheet.new(width, height, ax)
    first_lane = (width - len(parts) * COLUMN + COLUMN) / 2  # the centre of the first lane
    first_row = bottom + (rows - 0.5) * _MAP_ROW

    def at(place: tuple[int, int]) -> tuple[float, float]:
        return (first_lane + place[0] * COLUMN, first_row - place[1] * _MAP_ROW)

    for lane, part in enumerate(parts):
        _draw_lane(sheet, at((lane, 0))[0], part, bottom, height - TITLE_HEIGHT)
    reading = [chapter for members in parts.values() for chapter in members]
    for before, after in itertools.pairwise(reading):
        _map_arrow(sheet, places[before], places[after], at)
    for position, chapter in enumerate(reading):
        ink = start_here if position == 0 else EVENT
        label = "\n".join(wrap(f"{chapter.number:02d} {chapter.title}", LABEL_CHARS - 2))
        sheet.box(at(places[chapter]), BOX, label, ink=ink, gid=f"chapter-{chapter.number:02d}")
    sheet.title(f"the series: {plural(len(reading), 'chapter')} in {plural(len(parts), 'part')}")
    sheet.legend(legend)
    return sheet.figure


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


def _draw_lane(sheet: Sheet, x: float, part: str, bottom: float, top: float) -> None:
    """The grey band of one part, with the part's name at its head."""
    band = (x, (top + bottom) / 2)
    sheet.box(
        band, (_LANE_WIDTH, top - bottom), ink=PENDING, corner=0.08, gid=f"part-{part}", zorder=0
    )
    name = "\n".join(wrap(part, _PART_CHARS))
    sheet.text(x, top - _PART_HEADER / 2, name, fontsize=9, fontweight="bold")


def _map_arrow(
    sheet: Sheet,
    source: tuple[int, int],
    target: tuple[int, int],
    at: Any,
) -> None:
    """Down a lane from box to box, or across from one lane to the next."""
    (x1, y1), (x2, y2) = at(source), at(target)
    if source[0] == target[0]:
        sheet.arrow((x1, y1 - BOX[1] / 2), (x2, y2 + BOX[1] / 2))
    else:
        sheet.arrow((x1 + BOX[0] / 2, y1), (x2 - BOX[0] / 2, y2))
