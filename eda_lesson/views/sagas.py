"""Pictures and an explorer of a saga: its state machine, one run of it as messages between
participants, orchestration beside choreography, and a widget that makes payment fail.

- :func:`draw_state_machine` draws a :class:`~eda_lesson.patterns.saga.StateMachine` (by default the
  shop's :data:`~eda_lesson.shop.fulfilment.FULFILMENT`) as a graph: states, transitions
  labelled by the event that moves the process and the command it sends, compensating
  transitions dashed in orange, and, when given, the current state lit and the path taken to it.
- :func:`draw_saga_run` draws one run (the :class:`~eda_lesson.core.result.DispatchResult` that
  ``place_order`` returns) as a sequence diagram: one lane per participant, one row per handler
  call, an arrow per message; the failure in vermillion and what it set off (the compensation) in
  orange; events solid, commands (whatever a process manager sends) dashed. ``draw_flow``
  draws the same run as a causal graph, which for a saga is one long chain: lanes show *who*
  talks to whom.
- :func:`draw_saga_comparison` draws an orchestrated run beside a choreographed one.
- :func:`process_path` reads the transitions a run took from its result, and
  :func:`world_at` what the order, the shelf and the payments looked like after each step.
- :class:`SagaExplorer` is a widget: tick "payment fails" and watch the saga compensate,
  step by step, with the state machine lit beside the run. ``run(payment_fails=True)`` and
  ``step_to(k)`` are its Python twins.

The drawings read results and state machines; they never dispatch. The explorer runs a fresh
:class:`~eda_lesson.shop.fulfilment.OrchestratedFulfilment` (or choreographed one) for each
run, so runs never interfere and the same choices always give the same pictures.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from eda_lesson.core.messages import Command
from eda_lesson.core.result import DispatchResult, EventRecord, HandlerCall
from eda_lesson.core.text import plural
from eda_lesson.patterns.saga import StateMachine, Transition
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    ChoreographedFulfilment,
    FulfilmentProcess,
    OrchestratedFulfilment,
    StockReleased,
    StockReserved,
)
from eda_lesson.shop.order import Order
from eda_lesson.views.graphs import check_step, step_caption, step_rows
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import (
    CALL,
    COMPENSATION,
    CURRENT,
    EDGE,
    EVENT,
    FADED_COMPENSATION,
    FADED_EDGE,
    FADED_TEXT,
    FAILED,
    NO_COLOUR,
    PANEL,
    PENDING,
    PLAIN,
    TEXT,
    UNHANDLED,
    Dashes,
    Ink,
)
from eda_lesson.views.sheet import SMALL, Key, Sheet, describe
from eda_lesson.views.stepper import Quiet, Stepper, SteppingExplorer

__all__ = [
    "LANES",
    "SagaExplorer",
    "World",
    "draw_saga_comparison",
    "draw_saga_run",
    "draw_state_machine",
    "lane_of",
    "message_phases",
    "process_path",
    "state_machine_layout",
    "world_at",
]

LANES: dict[str, str] = {
    "react": "process manager",
    "reserve_stock": "warehouse",
    "release_stock": "warehouse",
    "charge_payment": "payments",
    "ship_order": "shipping",
    "cancel_order": "order",
}
"""Which participant each fulfilment handler belongs to, by the handler's method name."""

LANE_ORDER: tuple[str, ...] = ("order", "process manager", "warehouse", "payments", "shipping")
ORIGIN = "order"
"""The lane the first event comes from: placing an order records OrderCreated."""

MARGIN = 0.3
TITLE = 0.5
Wiring = Literal["orchestration", "choreography"]

# ---------------------------------------------------------------------- the state machine

STATE_BOX = (1.6, 0.42)
STATE_COLUMN = 3.05
STATE_ROW = 0.88


def state_machine_layout(machine: StateMachine = FULFILMENT) -> dict[str, tuple[int, int]]:
    """Grid places ``(column, row)`` of the states, row 0 at the top.

    The main line runs down column 0: from the initial state, the first transition that is
    not a compensation, again and again. Every other state goes in the next column, level
    with the state it is first reached from, or in the nearest free row above it (so a
    compensation climbs back up beside the steps it undoes), else below.
    """
    spine = [machine.initial]
    while True:
        onward = [
            t.target
            for t in machine.transitions
            if t.source == spine[-1] and not t.compensating and t.target not in spine
        ]
        if not onward:
            break
        spine.append(onward[0])
    places = {state: (0, row) for row, state in enumerate(spine)}
    for state in machine.states():
        if state in places:
            continue
        sources = [
            places[t.source]
            for t in machine.transitions
            if t.target == state and t.source in places
        ]
        wanted = sources[0][1] if sources else 0
        places[state] = _free_place(set(places.values()), wanted, len(spine))
    return places


def _free_place(taken: set[tuple[int, int]], wanted: int, rows: int) -> tuple[int, int]:
    column = 1
    while True:
        for row in [*range(wanted, -1, -1), *range(wanted + 1, rows + column)]:
            if (column, row) not in taken:
                return (column, row)
        column += 1


def draw_state_machine(
    machine: StateMachine = FULFILMENT,
    *,
    current: str | None = None,
    taken: Iterable[Transition] = (),
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw ``machine`` as a graph: one box per state, one arrow per transition, labelled
    with the event that moves the process (above or beside it) and the message it sends.

    Compensating transitions are dashed and orange; final states have a double border; a
    dot marks where the process starts. With ``current``, that state is lit and the
    transitions ``taken`` to reach it are drawn bold, the others faded.
    """
    if not isinstance(machine, StateMachine):
        raise TypeError(f"draw_state_machine() takes a StateMachine, got {machine!r}")
    if current is not None and current not in machine.states():
        known = ", ".join(repr(s) for s in machine.states())
        raise ValueError(f"{current!r} is not a state of {machine.name} (its states: {known})")
    path = list(taken)
    tracing = current is not None or bool(path)
    places = state_machine_layout(machine)
    columns = 1 + max(c for c, _ in places.values())
    rows = 1 + max(r for _, r in places.values())
    legend = _machine_legend(tracing)
    width = max(6.8, 2 * MARGIN + 0.75 + STATE_BOX[0] + (columns - 1) * STATE_COLUMN + 1.5)
    room = Sheet.legend_height(legend, width)
    height = TITLE + 0.1 + rows * STATE_ROW + room
    sheet = Sheet.new(width, height, ax)
    left = MARGIN + 0.75 + STATE_BOX[0] / 2
    top = height - TITLE - 0.1 - STATE_ROW / 2

    def at(state: str) -> tuple[float, float]:
        column, row = places[state]
        return (left + column * STATE_COLUMN, top - row * STATE_ROW)

    visited = {t.source for t in path} | {t.target for t in path}
    boxes = {
        state: _state_box(
            sheet,
            state,
            at(state),
            _state_look(state, current, visited, tracing),
            final=state in machine.final_states(),
        )
        for state in machine.states()
    }
    _start_marker(sheet, at(machine.initial), boxes[machine.initial])
    for transition in machine.transitions:
        _transition(sheet, transition, places, at, boxes, path, tracing)
    where = f": now {current!r}" if current is not None else ""
    default = (
        f"the {machine.name} state machine{where}"
        if tracing
        else f"the {machine.name} state machine: {plural(len(machine.states()), 'state')}, "
        f"{plural(len(machine.transitions), 'transition')}"
    )
    sheet.title(title or default)
    sheet.legend(legend)
    return sheet.figure


def _machine_legend(tracing: bool) -> list[Key]:
    keys = [
        Key("state", PLAIN),
        Key("final state", PLAIN.but(width=2.2)),
        Key("event / command sent", PLAIN, line=True),
        Key("compensation", COMPENSATION.but(width=1.6), line=True),
    ]
    if tracing:
        keys[2:2] = [Key("current state", _STATE_NOW.but(width=2.5)), Key("state passed", _PASSED)]
        keys.append(Key("path taken", PLAIN.but(stroke=TEXT, width=2.6), line=True))
    return keys


_STATE_NOW = CURRENT.but(shape="rounded")
_PASSED = CALL.but(width=1.4, shape="rounded")
_NOT_PASSED = PLAIN.but(stroke=FADED_EDGE, width=1.1, shape="rounded", words=EDGE)
_STATE = PLAIN.but(width=1.3, shape="rounded")


def _state_look(state: str, current: str | None, visited: set[str], tracing: bool) -> Ink:
    if state == current:
        return _STATE_NOW
    if tracing and state in visited:
        return _PASSED
    if tracing:
        return _NOT_PASSED
    return _STATE


def _state_box(
    sheet: Sheet, state: str, at: tuple[float, float], ink: Ink, *, final: bool
) -> FancyBboxPatch:
    if final:  # a second, outer border: the UML mark of a state where the process ends
        outer = (STATE_BOX[0] + 0.12, STATE_BOX[1] + 0.12)
        sheet.box(at, outer, ink=ink.but(fill=NO_COLOUR, width=ink.width * 0.8))
    words = ink.words if ink == _NOT_PASSED else TEXT
    return sheet.box(at, STATE_BOX, state, ink=ink, text=words, gid=f"state-{state}")


def _start_marker(sheet: Sheet, at: tuple[float, float], box: FancyBboxPatch) -> None:
    x, y = at
    dot = (x - STATE_BOX[0] / 2 - 0.55, y)
    sheet.dot(dot)
    sheet.arrow(dot, at, target=box, colour=TEXT, width=1.2)


def _transition(
    sheet: Sheet,
    transition: Transition,
    places: Mapping[str, tuple[int, int]],
    at: Callable[[str], tuple[float, float]],
    boxes: Mapping[str, FancyBboxPatch],
    path: Sequence[Transition],
    tracing: bool,
) -> None:
    on_path = transition in path
    colour = COMPENSATION.stroke if transition.compensating else EDGE
    width = 1.5
    if tracing and on_path:
        colour = COMPENSATION.stroke if transition.compensating else TEXT
        width = 2.6
    elif tracing:
        colour = FADED_COMPENSATION if transition.compensating else FADED_EDGE
    dashes: Dashes = "--" if transition.compensating else "-"
    (c1, r1), (c2, r2) = places[transition.source], places[transition.target]
    start, end = at(transition.source), at(transition.target)
    neighbours = (c1 == c2 and abs(r1 - r2) == 1) or (r1 == r2 and abs(c1 - c2) == 1)
    bend = 0.0 if neighbours else 0.25
    sheet.arrow(
        start,
        end,
        source=boxes[transition.source],
        target=boxes[transition.target],
        colour=colour,
        width=width,
        dashes=dashes,
        bend=bend,
        gid=f"transition-{transition.source}-{transition.trigger}",
    )
    text_colour = TEXT if not tracing or on_path else EDGE
    if transition.compensating:
        text_colour = COMPENSATION.words
    _transition_label(sheet, transition, start, end, r1 == r2, text_colour)


def _transition_label(
    sheet: Sheet,
    transition: Transition,
    start: tuple[float, float],
    end: tuple[float, float],
    level: bool,
    colour: str,
) -> None:
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    if level:  # a horizontal arrow: the event above it, the command below, centred
        x, gap, align = mid[0], 0.07, "center"
    else:  # beside it, on the right
        x = max(start[0], end[0]) + 0.1 if start[0] == end[0] else mid[0] + 0.1
        gap, align = 0.02, "left"
    style: dict[str, Any] = {"ha": align, "fontsize": SMALL, "colour": colour}
    sheet.text(x, mid[1] + gap, transition.trigger, va="bottom", **style)
    if transition.sends:
        sheet.text(x, mid[1] - gap, f"→ {transition.sends}", va="top", style="italic", **style)


# ---------------------------------------------------------------------- one run, in lanes


def lane_of(handler_name: str, lanes: Mapping[str, str] = LANES) -> str:
    """The participant a handler belongs to: ``lanes`` by its full name, then by its method
    name, else the class that owns it (``Shop.mark_paid`` -> ``Shop``)."""
    if handler_name in lanes:
        return lanes[handler_name]
    owner, _, method = handler_name.rpartition(".")
    if method in lanes:
        return lanes[method]
    return owner or handler_name


def message_phases(result: DispatchResult) -> list[str]:
    """For each event of ``result`` by index: ``"failure"`` for an event whose type name ends
    in ``Failed``, ``"compensation"`` for one that a failure set off (directly or through
    others), else ``"normal"``."""
    phases: list[str] = []
    for record in result.events:
        cause = None
        if record.caused_by is not None:
            cause = phases[result.calls[record.caused_by - 1].event_index]
        if record.type_name.endswith("Failed"):
            phases.append("failure")
        elif cause in ("failure", "compensation"):
            phases.append("compensation")
        else:
            phases.append("normal")
    return phases


@dataclass(frozen=True)
class _Row:
    step: int | None
    event_index: int
    source: str
    target: str | None  # None: no handler took the event
    failed: bool
    reached_after: int  # the step after which the row has happened


def _rows(result: DispatchResult, lanes: Mapping[str, str], origin: str) -> list[_Row]:
    rows: list[_Row] = []
    calls_so_far = 0
    for row in step_rows(result):
        record = result.events[row.event_index]
        producer = result.calls[record.caused_by - 1] if record.caused_by else None
        source = origin if producer is None else lane_of(producer.name, lanes)
        if row.step is None:
            rows.append(_Row(None, row.event_index, source, None, False, calls_so_far))
            continue
        calls_so_far += 1
        target = lane_of(row.handler, lanes)
        rows.append(_Row(row.step, row.event_index, source, target, row.failed, row.step))
    return rows


LANE_PITCH = 1.32
_HEADER = PLAIN.but(fill=PANEL)  # a participant's name at the head of its lane
SEQUENCE_ROW = 0.4
HEADER = 0.5
GUTTER = 0.35


@dataclass(frozen=True)
class _Sequence:
    result: DispatchResult
    rows: list[_Row]
    lanes: list[str]
    phases: list[str]
    title: str

    @property
    def width(self) -> float:
        return 2 * MARGIN + GUTTER + len(self.lanes) * LANE_PITCH

    @property
    def height(self) -> float:
        return TITLE + HEADER + len(self.rows) * SEQUENCE_ROW + 0.15


def _sequence(
    result: DispatchResult, lanes: Mapping[str, str], origin: str, title: str | None
) -> _Sequence:
    if not isinstance(result, DispatchResult):
        raise TypeError(
            "draw_saga_run() takes the DispatchResult of a run, such as what "
            f"place_order(...) returns; got {result!r}"
        )
    rows = _rows(result, lanes, origin)
    used = {origin, *(r.source for r in rows), *(r.target for r in rows if r.target)}
    order = [lane for lane in LANE_ORDER if lane in used]
    order += sorted(lane for lane in used if lane not in order)
    steps = len(result.calls)
    default = f"{type(result.event).__name__} and what followed: {plural(steps, 'step')}"
    return _Sequence(result, rows, order, message_phases(result), title or default)


def _sequence_legend() -> list[Key]:
    return [
        Key("event", EVENT.but(width=1.5), line=True),
        Key("command", EVENT.but(width=1.5, dashes="--"), line=True),
        Key("failure", FAILED.but(width=1.5, dashes="-"), line=True),
        Key("compensation", COMPENSATION.but(width=1.5, dashes="-"), line=True),
        Key("handler call", CALL),
        Key("failed call", FAILED),
        Key("no handler", UNHANDLED.but(width=1.3), line=True),
    ]


def draw_saga_run(
    result: DispatchResult,
    *,
    upto: int | None = None,
    lanes: Mapping[str, str] = LANES,
    origin: str = ORIGIN,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw one run as a sequence diagram: a lane per participant (``lanes`` maps handler
    names to them; the first event comes from ``origin``), a row per handler call in the order
    they ran, an arrow from the participant that produced each message to the one that
    handled it. With ``upto=k`` the rows after step ``k`` are faded and step ``k`` is lit.
    """
    plan = _sequence(result, lanes, origin, title)
    if upto is not None:
        check_step(result, upto)
    legend = _sequence_legend()
    room = Sheet.legend_height(legend, plan.width)
    sheet = Sheet.new(plan.width, plan.height + room, ax)
    _paint_sequence(sheet, plan, MARGIN, sheet.height, upto)
    describe(sheet.figure, plan.title if upto is None else f"{plan.title}, after step {upto}")
    sheet.legend(legend)
    return sheet.figure


def draw_saga_comparison(
    orchestrated: DispatchResult,
    choreographed: DispatchResult,
    *,
    lanes: Mapping[str, str] = LANES,
    origin: str = ORIGIN,
    titles: tuple[str, str] = (
        "orchestration: a process manager sends commands",
        "choreography: participants react to events",
    ),
) -> Figure:
    """Draw two runs of the same process side by side, each as :func:`draw_saga_run` does:
    typically one run of :class:`~eda_lesson.shop.fulfilment.OrchestratedFulfilment` and one of
    :class:`~eda_lesson.shop.fulfilment.ChoreographedFulfilment` with the same order."""
    plans = [
        _sequence(orchestrated, lanes, origin, _with_steps(titles[0], orchestrated)),
        _sequence(choreographed, lanes, origin, _with_steps(titles[1], choreographed)),
    ]
    legend = _sequence_legend()
    width = sum(plan.width for plan in plans) + 0.3
    room = Sheet.legend_height(legend, width)
    height = max(plan.height for plan in plans) + room
    sheet = Sheet.new(width, height, None)
    x = 0.0
    for number, plan in enumerate(plans):
        _paint_sequence(sheet, plan, x + MARGIN, height, None)
        x += plan.width + 0.3
        if number == 0:
            sheet.line([x - 0.15, x - 0.15], [room, height - 0.1], colour=FADED_EDGE)
    describe(sheet.figure, f"{plans[0].title} | {plans[1].title}")
    sheet.legend(legend, per_row=7)
    return sheet.figure


def _with_steps(title: str, result: DispatchResult) -> str:
    return f"{title} ({plural(len(result.calls), 'step')})"


def _paint_sequence(
    sheet: Sheet, plan: _Sequence, left: float, top: float, upto: int | None
) -> None:
    lane_x = {lane: left + GUTTER + (n + 0.5) * LANE_PITCH for n, lane in enumerate(plan.lanes)}
    centre = left + GUTTER + len(plan.lanes) * LANE_PITCH / 2
    sheet.text(
        centre,
        top - TITLE / 2,
        shorten(plan.title, int(plan.width * 12)),
        ha="center",
        va="center",
        fontsize=9.5,
    )
    header_y = top - TITLE - HEADER / 2 + 0.05
    bottom = top - TITLE - HEADER - len(plan.rows) * SEQUENCE_ROW
    for lane, x in lane_x.items():
        size = (LANE_PITCH - 0.16, 0.34)
        sheet.box((x, header_y), size, lane, ink=_HEADER, fontsize=8, weight="bold")
        sheet.line([x, x], [header_y - 0.17, bottom], colour=FADED_EDGE, dashes="--", zorder=0.2)
    for number, row in enumerate(plan.rows):
        y = top - TITLE - HEADER - (number + 0.5) * SEQUENCE_ROW
        _paint_row(sheet, plan, row, y, lane_x, left, upto)


def _paint_row(
    sheet: Sheet,
    plan: _Sequence,
    row: _Row,
    y: float,
    lane_x: Mapping[str, float],
    left: float,
    upto: int | None,
) -> None:
    record = plan.result.events[row.event_index]
    happened = upto is None or row.reached_after <= upto
    current = upto is not None and row.step == upto
    phase = plan.phases[row.event_index]
    ink = {"normal": EVENT, "failure": FAILED, "compensation": COMPENSATION}[phase]
    colour = ink.stroke if happened else FADED_EDGE
    text = TEXT if happened else FADED_TEXT
    dashes: Dashes = "--" if _is_command(plan.result, record) else "-"
    step_text = "-" if row.step is None else str(row.step)
    sheet.text(
        left + 0.12,
        y,
        step_text,
        ha="center",
        va="center",
        fontsize=8,
        colour=text,
        weight="bold" if current else "normal",
    )
    x1 = lane_x[row.source]
    label = f"#{record.index} {record.type_name}"
    if row.target is None:
        _paint_unhandled(sheet, plan, row, x1, y, label, happened)
        return
    x2 = lane_x[row.target]
    width = 2.6 if current else 1.5
    if x1 == x2:  # a participant hearing its own message: a small loop
        sheet.arrow(
            (x1 + 0.05, y + 0.1),
            (x1 + 0.05, y - 0.06),
            colour=colour,
            width=width,
            dashes=dashes,
            bend=-1.4,
            gid=f"message-{row.event_index}-{row.step}",
        )
        sheet.text(
            x1 + 0.3,
            y + 0.06,
            label,
            ha="left",
            va="bottom",
            fontsize=SMALL,
            colour=text,
            gid=f"label-{row.event_index}-{row.step}",
        )
    else:
        direction = 1 if x2 > x1 else -1
        sheet.arrow(
            (x1 + 0.09 * direction, y),
            (x2 - 0.09 * direction, y),
            colour=colour,
            width=width,
            dashes=dashes,
            gid=f"message-{row.event_index}-{row.step}",
        )
        sheet.text(
            (x1 + x2) / 2,
            y + 0.04,
            label,
            ha="center",
            va="bottom",
            fontsize=SMALL,
            colour=text if phase == "normal" or not happened else ink.words,
            gid=f"label-{row.event_index}-{row.step}",
        )
    # A failed call keeps its hatching; a box this small keeps a plain border.
    ink = (FAILED if row.failed else CALL).but(dashes="-", width=1.1)
    if not happened:
        ink = PENDING.but(width=1.1)
    if current:
        ink = ink.but(stroke=CURRENT.stroke, width=2.4)
    sheet.box((x2, y), (0.16, 0.3), ink=ink, gid=f"call-{row.step}")


def _is_manager(call: HandlerCall) -> bool:
    """Is this call the process manager at work (a method of a FulfilmentProcess)?"""
    return isinstance(getattr(call.handler, "__self__", None), FulfilmentProcess)


def _is_command(result: DispatchResult, record: EventRecord) -> bool:
    """A command is a request: a command type, or whatever a process manager sends (a
    manager that sent an event as its request would still be drawn asking)."""
    if isinstance(record.event, Command):
        return True
    return record.caused_by is not None and _is_manager(result.calls[record.caused_by - 1])


def _paint_unhandled(
    sheet: Sheet, plan: _Sequence, row: _Row, x: float, y: float, label: str, happened: bool
) -> None:
    """An event nobody handles: a dashed stub from its producer, "no handler" under it."""
    last = plan.lanes.index(row.source) == len(plan.lanes) - 1
    end = x + (-1 if last else 1) * 0.95
    colour = UNHANDLED.stroke if happened else FADED_EDGE
    sheet.arrow(
        (x, y),
        (end, y),
        colour=colour,
        width=1.3,
        dashes=UNHANDLED.dashes,
        head="-[",
        gid=f"unhandled-{row.event_index}",
    )
    middle = (x + end) / 2
    sheet.text(
        middle,
        y + 0.04,
        label,
        ha="center",
        va="bottom",
        fontsize=SMALL,
        colour=TEXT if happened else FADED_TEXT,
    )
    sheet.text(
        middle,
        y - 0.04,
        "no handler",
        ha="center",
        va="top",
        fontsize=SMALL,
        colour=UNHANDLED.words if happened else FADED_TEXT,
        style="italic",
    )


# ---------------------------------------------------------------------- reading a run


def _happened_by(result: DispatchResult, upto: int | None) -> list[object]:
    """The events of ``result`` that had happened once step ``upto`` was done: the first at
    step 0, each other one when the call that produced it ran."""
    last = len(result.calls) if upto is None else upto
    return [
        record.event
        for record in result.events
        if record.caused_by is None or record.caused_by <= last
    ]


def process_path(
    result: DispatchResult, *, upto: int | None = None, machine: StateMachine = FULFILMENT
) -> list[Transition]:
    """The transitions of ``machine`` that a run had taken after step ``upto`` (all by default).

    With a process manager in the run, the process moves when the manager handles an event,
    as its saga did. Without one (choreography) nobody holds the state, so it is read off the
    events: the process moves when an event happens. Events the machine does not expect in
    the state reached are passed over, as the process manager passes them over.
    """
    if upto is not None:
        check_step(result, upto)
    managed = [call for call in result.calls if _is_manager(call)]
    if managed:
        last = len(result.calls) if upto is None else upto
        names = [result.events[c.event_index].type_name for c in managed if c.step <= last]
    else:
        names = [type(event).__name__ for event in _happened_by(result, upto)]
    state, path = machine.initial, []
    for name in names:
        transition = machine.transition(state, name)
        if transition is not None:
            path.append(transition)
            state = transition.target
    return path


@dataclass(frozen=True)
class World:
    """What a run had changed after one of its steps, read off the run's events."""

    step: int
    process: str
    """The state of the fulfilment process."""
    order: str
    """The order's status ('new' before OrderCreated)."""
    on_shelf: dict[str, int]
    reserved: dict[str, int]
    received: float
    """Money the payment gateway took."""

    def as_dict(self) -> dict[str, object]:
        return {
            "step": self.step,
            "process": self.process,
            "order": self.order,
            "on shelf": _counts(self.on_shelf),
            "reserved": _counts(self.reserved),
            "received": f"{self.received:g}",
        }


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{sku} {n}" for sku, n in counts.items()) or "nothing"


def world_at(
    result: DispatchResult,
    stock: Mapping[str, int],
    *,
    upto: int | None = None,
    machine: StateMachine = FULFILMENT,
) -> World:
    """The order, the shelf (starting from ``stock``), the payments and the process after step
    ``upto`` of a fulfilment run (the end by default), rebuilt from the run's events."""
    if upto is not None:
        check_step(result, upto)
    happened = _happened_by(result, upto)
    order_events = (OrderCreated, OrderPaid, OrderCancelled, OrderShipped)
    order = Order.from_events(e for e in happened if isinstance(e, order_events))
    shelf, reserved = dict(stock), dict[str, int]()
    holding: dict[str, tuple[LineItem, ...]] = {}
    for event in happened:
        if isinstance(event, StockReserved):
            holding[event.order_id] = event.items
            for item in event.items:
                shelf[item.sku] = shelf.get(item.sku, 0) - item.quantity
        elif isinstance(event, StockReleased):
            for item in holding.pop(event.order_id, ()):
                shelf[item.sku] = shelf.get(item.sku, 0) + item.quantity
    for items in holding.values():
        for item in items:
            reserved[item.sku] = reserved.get(item.sku, 0) + item.quantity
    received = sum(e.amount for e in happened if isinstance(e, OrderPaid))
    path = process_path(result, upto=upto, machine=machine)
    state = path[-1].target if path else machine.initial
    step = len(result.calls) if upto is None else upto
    return World(step, state, order.status, shelf, reserved, received)


# ---------------------------------------------------------------------- the explorer


class SagaExplorer(SteppingExplorer):
    """Place an order, tick "payment fails", and watch the fulfilment saga compensate.

    Each run places the same order (``order_id``, ``items``, ``total``) in a fresh shop wired
    as ``wiring`` says: ``"orchestration"`` (a process manager with its saga) or
    ``"choreography"`` (participants reacting to each other). The explorer shows the run's
    last step; slide back, or press play from step 0, to watch it unfold: the state machine
    with the current state lit, the messages so far, and the order, shelf and payments.

    >>> explorer = SagaExplorer()  # doctest: +SKIP
    >>> explorer.run(payment_fails=True); explorer.step_to(5)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        wiring: Wiring = "orchestration",
        stock: Mapping[str, int] | None = None,
        items: Sequence[LineItem] = (LineItem("book", 1),),
        total: float = 12.0,
        order_id: str = "o-1",
        customer_id: str = "c-7",
    ) -> None:
        _check_wiring(wiring)
        self.stock = dict(stock) if stock is not None else {"book": 2}
        self.items = tuple(items)
        self.total = total
        self.order_id = order_id
        self.customer_id = customer_id
        self._result: DispatchResult | None = None
        self._shop: OrchestratedFulfilment | ChoreographedFulfilment | None = None
        self._quiet = Quiet()
        self._build(wiring)
        self.run()

    # -- the Python API -----------------------------------------------------------------------

    @property
    def payment_fails(self) -> bool:
        return bool(self._fails.value)

    @property
    def out_of_stock(self) -> bool:
        return bool(self._empty.value)

    @property
    def wiring(self) -> Wiring:
        value: Wiring = self._wiring.value
        return value

    @property
    def result(self) -> DispatchResult:
        """The result of the last run."""
        assert self._result is not None  # set by the first run, in __init__
        return self._result

    @property
    def shop(self) -> OrchestratedFulfilment | ChoreographedFulfilment:
        """The shop the last run happened in (its store, warehouse, payments)."""
        assert self._shop is not None
        return self._shop

    @property
    def world(self) -> World:
        """The order, shelf, payments and process after the step shown."""
        return world_at(self.result, self._stock_for_run(), upto=self.step)

    def run(
        self,
        *,
        payment_fails: bool | None = None,
        out_of_stock: bool | None = None,
        wiring: Wiring | None = None,
    ) -> DispatchResult:
        """Place the order in a fresh shop (changing the choices given) and show the last step."""
        if wiring is not None:
            _check_wiring(wiring)
        with self._quiet.hold():
            if payment_fails is not None:
                self._fails.value = bool(payment_fails)
            if out_of_stock is not None:
                self._empty.value = bool(out_of_stock)
            if wiring is not None:
                self._wiring.value = wiring
        shop = (
            OrchestratedFulfilment if self.wiring == "orchestration" else ChoreographedFulfilment
        )(stock=self._stock_for_run())
        if self.payment_fails:
            shop.payments.declined.add(self.order_id)
        result = shop.place_order(self.order_id, self.customer_id, self.items, self.total)
        self._shop, self._result = shop, result
        self._stepper.reset(len(result.calls), at=len(result.calls))
        return result

    def step_to(self, step: int) -> None:
        """Show the run after ``step`` (0: the order placed, no handler ran yet)."""
        check_step(self.result, step)
        self._stepper.step_to(step)

    def __repr__(self) -> str:
        choices: list[str] = [self.wiring]
        if self.payment_fails:
            choices.append("payment fails")
        if self.out_of_stock:
            choices.append("out of stock")
        return (
            f"SagaExplorer: {', '.join(choices)}; step {self.step} of {self.steps}, "
            f"process {self.world.process!r}"
        )

    # -- building and showing -----------------------------------------------------------------

    def _stock_for_run(self) -> dict[str, int]:
        return {sku: 0 for sku in self.stock} if self.out_of_stock else dict(self.stock)

    def _build(self, wiring: Wiring) -> None:
        self._wiring = widgets.ToggleButtons(
            options=["orchestration", "choreography"], value=wiring
        )
        self._fails = widgets.Checkbox(value=False, description="payment fails", indent=False)
        self._empty = widgets.Checkbox(value=False, description="out of stock", indent=False)
        self._place = widgets.Button(
            description="Place order",
            button_style="primary",
            tooltip="place the order again in a fresh shop",
        )
        for control in (self._wiring, self._fails, self._empty):
            control.observe(self._on_choice, "value")
        self._place.on_click(lambda _: self.run())
        self._stepper = Stepper(self._show)
        self._caption = widgets.Label()
        half = widgets.Layout(width="50%")
        self._machine_image = widgets.Image(format="png", layout=half)
        self._run_image = widgets.Image(format="png", layout=widgets.Layout(width="50%"))
        self._table = widgets.HTML()
        self._root = widgets.VBox(
            [
                widgets.HBox([self._wiring, self._fails, self._empty, self._place]),
                self._stepper.widget,
                self._caption,
                widgets.HBox([self._machine_image, self._run_image]),
                self._table,
            ]
        )

    def _on_choice(self, _change: Mapping[str, Any]) -> None:
        if not self._quiet:
            self.run()

    def _show(self, step: int) -> None:
        result = self.result
        path = process_path(result, upto=step)
        current = path[-1].target if path else FULFILMENT.initial
        who = (
            "the process manager's saga"
            if self.wiring == "orchestration"
            else ("read off the events: nobody stores it")
        )
        machine = self._stepper.png(
            lambda: draw_state_machine(
                current=current, taken=path, title=f"the process: {current!r} ({who})"
            ),
            "machine",
        )
        run = self._stepper.png(
            lambda: draw_saga_run(result, upto=step, title=f"the run, {self.wiring}"), "run"
        )
        self._machine_image.value, self._run_image.value = machine, run
        self._caption.value = step_caption(result, step)
        self._table.value = _world_table(self.world)


def _check_wiring(wiring: object) -> None:
    if wiring not in ("orchestration", "choreography"):
        raise ValueError(f"wiring is 'orchestration' or 'choreography', got {wiring!r}")


def _world_table(world: World) -> str:
    values = world.as_dict()
    head = "".join(
        f"<th style='padding:2px 10px;text-align:left'>{html.escape(k)}</th>" for k in values
    )
    cells = "".join(
        f"<td style='padding:2px 10px'>{html.escape(str(v))}</td>" for v in values.values()
    )
    return (
        "<table class='eda-saga-world' style='border-collapse:collapse;font-family:monospace;"
        f"font-size:12px'><tr>{head}</tr><tr>{cells}</tr></table>"
    )
