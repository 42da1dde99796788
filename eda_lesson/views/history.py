"""Pictures and an explorer of event-sourced history: an aggregate rebuilt event by event, the
store's log in global order, a read model being built, and CQRS in one picture.

- :func:`draw_fold` draws an aggregate's state as a left fold of its events: the blank state,
  then each event applied to the state before it; with ``upto=v`` the state at version ``v``
  is lit and the later ones are faded (time travel).
- :func:`draw_event_log` draws a store's events: one column per stream, one row per global
  position, so streams, versions and the one global order are seen together; with
  ``upto=p`` the events after position ``p`` are faded (what a projection has not read yet).
- :func:`draw_projection` draws a read model being built from zero: the global log on the
  left, the read model on the right, after ``upto`` events.
- :func:`draw_cqrs` draws the write side and the read side of a store, with the store's and
  the projections' real numbers.
- :class:`HistoryExplorer` is a widget: a slider over an aggregate's versions shows the state
  at that version, what changed, and the event that made it. ``step_to(version)`` is its
  Python twin.

Everything here reads events and replays them into fresh objects (``Aggregate.history``,
a new projection); nothing is appended to a store and no projection given is changed. Layouts
are computed, with no randomness, so the same history always gives the same picture.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eda_lesson.core.text import plural
from eda_lesson.patterns.aggregate import Aggregate
from eda_lesson.patterns.projections import Projection
from eda_lesson.patterns.store import EventStore, StoredEvent
from eda_lesson.shop.order import Order
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import (
    CALL,
    COMMAND,
    CURRENT,
    EDGE,
    EVENT,
    FADED_EDGE,
    FADED_TEXT,
    NO_COLOUR,
    PENDING,
    PLAIN,
    READ_SIDE,
    TEXT,
    WRITE_SIDE,
    Ink,
)
from eda_lesson.views.sheet import SMALL, Key, Sheet
from eda_lesson.views.stepper import Explorer, Stepper

__all__ = [
    "HistoryExplorer",
    "draw_cqrs",
    "draw_event_log",
    "draw_fold",
    "draw_projection",
    "event_fields",
    "state_of",
]

MARGIN = 0.3
TITLE = 0.5

# ---------------------------------------------------------------------- plain values


def state_of(aggregate: object) -> dict[str, object]:
    """An aggregate's state as plain values: its ``state()`` when it has one (the shop's
    Order does), else its public attributes, bookkeeping (``pending``) left out."""
    state = getattr(aggregate, "state", None)
    if callable(state):
        found = state()
        if isinstance(found, Mapping):
            return dict(found)
    values = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    for bookkeeping in ("pending", "saved_version"):
        values.pop(bookkeeping, None)
    return values


def event_fields(event: object) -> dict[str, object]:
    """An event's fields and values, in the order the class declares them."""
    fields = getattr(type(event), "__dataclass_fields__", None)
    if fields is None:
        return {k: v for k, v in vars(event).items() if not k.startswith("_")}
    return {name: getattr(event, name) for name in fields}


def _value_text(value: object, limit: int = 28) -> str:
    """A value as a table shows it: numbers short, line items as "2 x book", the rest repr."""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, tuple) and value and all(hasattr(v, "sku") for v in value):
        text = ", ".join(f"{getattr(v, 'quantity', '?')} x {v.sku}" for v in value)
    else:
        text = repr(value)
    return shorten(text, limit)


def _plain_text(value: object) -> str:
    """A value as a picture shows it: text without quotes, numbers short."""
    return value if isinstance(value, str) else _value_text(value, 40)


def _changed(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    return [name for name, value in after.items() if before.get(name) != value]


def _events_of(events: Iterable[object]) -> list[object]:
    """The events themselves, whether given bare or as the store's StoredEvents."""
    return [e.event if isinstance(e, StoredEvent) else e for e in events]


# ---------------------------------------------------------------------- the left fold

FOLD_COLUMN = 1.95
FOLD_BOX = (1.7, 0.78)
EVENT_BOX = (1.7, 0.46)
QUIET = ("version", "id", "items")


def draw_fold(
    events: Iterable[object],
    aggregate_type: type[Aggregate] = Order,
    *,
    upto: int | None = None,
    fields: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the state of an aggregate as a left fold of ``events``.

    The bottom row holds the states, version 0 (blank) to the last; above each state from
    version 1 on sits the event whose ``apply`` made it from the state on its left. A state
    box shows its version, its ``status`` when it has one, and the fields that event changed
    (or the ``fields`` named). With ``upto=v``, version ``v`` is lit and later ones are faded.
    """
    history = _history(events, aggregate_type)
    versions = len(history) - 1
    if upto is not None:
        _check_version(upto, versions)
    width = max(6.0, 2 * MARGIN + FOLD_BOX[0] + versions * FOLD_COLUMN)
    legend = [
        Key("event", EVENT),
        Key("state after applying it", PLAIN),
        Key("state shown", CURRENT.but(width=2.5)),
        Key("not yet applied", PENDING),
    ]
    legend = legend if upto is not None else legend[:2]
    legend_room = Sheet.legend_height(legend, width)
    height = TITLE + 1.95 + legend_room
    sheet = Sheet.new(width, height, ax)
    left = (width - versions * FOLD_COLUMN) / 2
    state_y, event_y = legend_room + 0.55, height - TITLE - 0.3
    previous_box = None
    for version, (event, state) in enumerate(history):
        x = left + version * FOLD_COLUMN
        ink = _fold_ink(version, upto)
        faded = ink == PENDING
        lines = _state_lines(version, state, history[version - 1][1] if version else {}, fields)
        box = sheet.box(
            (x, state_y),
            FOLD_BOX,
            "\n".join(lines),
            ink=ink,
            text=ink.words,
            fontsize=8,
            gid=f"state-v{version}",
            linespacing=1.35,
        )
        if previous_box is not None:
            sheet.arrow(
                (x - FOLD_COLUMN, state_y),
                (x, state_y),
                source=previous_box,
                target=box,
                colour=FADED_EDGE if faded else EDGE,
            )
        if event is not None:
            _fold_event(sheet, (x, event_y), version, event, box, faded, (x, state_y))
        previous_box = box
    name = aggregate_type.__name__
    where = f"version {upto} of {versions}" if upto is not None else plural(versions, "event")
    sheet.title(f"{name} state as a left fold of its events: {where}")
    sheet.legend(legend)
    return sheet.figure


def _history(
    events: Iterable[object], aggregate_type: type[Aggregate]
) -> list[tuple[object | None, dict[str, object]]]:
    """``(event or None, state)`` for version 0 (blank) and after each event."""
    if not (isinstance(aggregate_type, type) and issubclass(aggregate_type, Aggregate)):
        raise TypeError(
            f"aggregate_type is an Aggregate class such as Order, got {aggregate_type!r}"
        )
    frames = aggregate_type.history(_events_of(events))
    return [(None, state_of(aggregate_type())), *((e, state_of(a)) for e, a in frames)]


def _check_version(version: object, versions: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= versions:
        raise ValueError(
            f"version {version!r} is not in this history: it has {plural(versions, 'event')}, "
            f"so choose a whole number from 0 (before any event) to {versions} (now)"
        )


def _fold_ink(version: int, upto: int | None) -> Ink:
    """A state before the one shown is plain, the one shown lit, a later one faded."""
    if upto is None or version < upto:
        return PLAIN
    if version == upto:
        return CURRENT.but(words=TEXT)
    return PENDING


def _state_lines(
    version: int,
    state: Mapping[str, object],
    before: Mapping[str, object],
    fields: Sequence[str] | None,
) -> list[str]:
    head = f"v{version}"
    if "status" in state:
        head += f"  {state['status']}"
    if fields is None:
        shown = [f for f in _changed(before, state) if f not in (*QUIET, "status")][:2]
    else:
        shown = [f for f in fields if f in state]
    if version == 0 and fields is None:
        return [head, "(blank: nothing", "has happened yet)"]
    return [head, *(shorten(f"{f}: {_plain_text(state[f])}", 27) for f in shown)]


def _fold_event(
    sheet: Sheet,
    at: tuple[float, float],
    version: int,
    event: object,
    state_box: Any,
    faded: bool,
    state_at: tuple[float, float],
) -> None:
    ink = PENDING.but(shape="rounded") if faded else EVENT
    label = shorten(f"{version}. {type(event).__name__}", 22)
    words = FADED_TEXT if faded else TEXT
    box = sheet.box(at, EVENT_BOX, label, ink=ink, text=words, gid=f"event-v{version}")
    arrow = FADED_EDGE if faded else EVENT.stroke
    sheet.arrow(at, state_at, source=box, target=state_box, colour=arrow)
    mid = (at[1] + state_at[1]) / 2
    note = FADED_TEXT if faded else EDGE
    sheet.text(at[0] + 0.08, mid, "apply", fontsize=SMALL, ha="left", colour=note, style="italic")


# ---------------------------------------------------------------------- the event log

LOG_COLUMN = 1.95
LOG_BOX = (1.8, 0.3)
LOG_ROW = 0.38
GUTTER = 0.55


def draw_event_log(
    source: EventStore | Iterable[StoredEvent],
    *,
    upto: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the events of a store (or a list of :class:`StoredEvent`) as a grid: one column
    per stream, one row per global position, each event marked with its version in its stream.

    With ``upto=p`` the events after position ``p`` are faded and a line marks where a reader
    of the global order (a projection) stands.
    """
    stored = _stored_list(source)
    streams = list(dict.fromkeys(s.stream_id for s in stored))
    if upto is not None and (isinstance(upto, bool) or not isinstance(upto, int) or upto < 0):
        raise ValueError(f"upto is a global position, a whole number from 0, got {upto!r}")
    legend = [Key("event (vN: version in its stream)", EVENT)]
    if upto is not None:
        legend.append(Key("not read yet", PENDING))
    columns = max(len(streams), 1)
    width = max(5.2, 2 * MARGIN + GUTTER + columns * LOG_COLUMN)
    rows_height = max(len(stored), 1) * LOG_ROW
    bottom = Sheet.legend_height(legend, width) + 0.15
    height = TITLE + 0.45 + rows_height + bottom
    sheet = Sheet.new(width, height, ax)
    left = MARGIN + GUTTER + (width - 2 * MARGIN - GUTTER - columns * LOG_COLUMN) / 2
    top = height - TITLE - 0.45
    for number, stream in enumerate(streams):
        x = left + (number + 0.5) * LOG_COLUMN
        sheet.text(x, top + 0.22, shorten(stream, 24), weight="bold")
        sheet.line([x, x], [top, top - rows_height], colour=FADED_EDGE, dashes=":")
    sheet.text(MARGIN + 0.05, top + 0.22, "position", ha="left", fontsize=SMALL, colour=EDGE)
    for row, item in enumerate(stored):
        y = top - (row + 0.5) * LOG_ROW
        x = left + (streams.index(item.stream_id) + 0.5) * LOG_COLUMN
        unread = upto is not None and item.position > upto
        ink = PENDING.but(shape="rounded") if unread else EVENT
        text = FADED_TEXT if unread else TEXT
        sheet.text(MARGIN + 0.3, y, str(item.position), ha="right", fontsize=8, colour=text)
        label = shorten(f"v{item.version} {item.type_name}", 24)
        sheet.box(
            (x, y), LOG_BOX, label, ink=ink, text=text, fontsize=8, gid=f"log-{item.position}"
        )
    if upto is not None:
        read = sum(1 for s in stored if s.position <= upto)
        y = top - read * LOG_ROW
        sheet.line(
            [MARGIN, width - MARGIN],
            [y, y],
            colour=CURRENT.stroke,
            width=1.6,
            dashes="--",
            zorder=3,
        )
        words = f"read up to position {upto}"
        sheet.text(
            width - MARGIN,
            y + 0.05,
            words,
            ha="right",
            va="bottom",
            fontsize=SMALL,
            colour=CURRENT.words,
        )
    default = (
        f"the event log: {plural(len(stored), 'event')} in {plural(len(streams), 'stream')}, "
        "in one global order"
    )
    sheet.title(title or default)
    sheet.legend(legend)
    return sheet.figure


def _stored_list(source: EventStore | Iterable[StoredEvent]) -> list[StoredEvent]:
    if isinstance(source, EventStore):
        return list(source.read_all())
    stored = list(source)
    for item in stored:
        if not isinstance(item, StoredEvent):
            raise TypeError(
                "draw_event_log() takes an event store or StoredEvents (what store.read() and "
                f"store.read_all() give), got {item!r}"
            )
    return stored


# ---------------------------------------------------------------------- a projection

READ_MODEL_WIDTH = 2.8
PROJECTION_ROW = 0.34
MODEL_ROW = 0.27

ProjectionSource = type[Projection] | Callable[[], Projection]


def draw_projection(
    store: EventStore | Iterable[StoredEvent],
    projection: ProjectionSource,
    *,
    upto: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw a read model being built from zero: a fresh ``projection()`` reads the global log
    of ``store`` up to position ``upto`` (all of it by default).

    Left, the log: events read are blue, the ones this projection ignores are marked so, the
    last one read is lit, the rest faded. Right, the read model after reading them, with the
    entries that last event changed lit (highlighted behind, gid ``lit-N``); when it changed
    none, a note under the model says so (gid ``unchanged``). The projection given is a
    class (or a function making a fresh one): the picture never changes a projection you hold.
    """
    stored = _stored_list(store)
    fresh = _fresh(projection)
    name = type(fresh).__name__
    upto = stored[-1].position if upto is None and stored else (upto or 0)
    read = [s for s in stored if s.position <= upto]
    ignored, before = _project(fresh, read)
    snapshot = _lines(fresh.snapshot())
    lit = {k for k, v in snapshot if before.get(k) != v} if read else set()
    rows = max(len(stored), len(snapshot) + 2, 3)
    legend = [
        Key("read, changed the model", _LOG_INKS["read"][0]),
        Key("read, ignored", _LOG_INKS["ignored"][0]),
        Key("last event read", _LOG_INKS["current"][0].but(width=2.5)),
        Key("not read yet", _LOG_INKS["pending"][0]),
    ]
    width = 2 * MARGIN + GUTTER + LOG_BOX[0] + 1.0 + READ_MODEL_WIDTH
    room = Sheet.legend_height(legend, max(width, 6.8))
    height = TITLE + 0.4 + rows * PROJECTION_ROW + room + 0.1
    sheet = Sheet.new(max(width, 6.8), height, ax)
    left = (sheet.width - width) / 2 + MARGIN
    top = height - TITLE - 0.4
    sheet.text(left + GUTTER + LOG_BOX[0] / 2, top + 0.2, "the global log", weight="bold")
    current_at = None
    for row, item in enumerate(stored):
        y = top - (row + 0.5) * PROJECTION_ROW
        ink, text = _LOG_INKS[_log_state(item, upto, ignored)]
        sheet.text(left + GUTTER - 0.12, y, str(item.position), ha="right", fontsize=8, colour=text)
        label = shorten(f"{item.stream_id} v{item.version} {item.type_name}", 30)
        centre = (left + GUTTER + LOG_BOX[0] / 2, y)
        size = (LOG_BOX[0], 0.26)
        sheet.box(
            centre, size, label, ink=ink, text=text, fontsize=7, gid=f"projected-{item.position}"
        )
        if item.position == upto:
            current_at = (left + GUTTER + LOG_BOX[0], y)
    model_left = left + GUTTER + LOG_BOX[0] + 1.0
    model_height = 0.42 + max(len(snapshot), 1) * MODEL_ROW + 0.12
    model_centre = (model_left + READ_MODEL_WIDTH / 2, top - model_height / 2)
    model_ink = PLAIN.but(stroke=CALL.stroke, width=1.6)
    model_size = (READ_MODEL_WIDTH, model_height)
    model = sheet.box(model_centre, model_size, ink=model_ink, gid="read-model")
    sheet.text(model_centre[0], top - 0.22, f"{name}  (position {fresh.position})", weight="bold")
    for row, (entry, value) in enumerate(snapshot or [("", "(empty)")]):
        y = top - 0.42 - (row + 0.5) * MODEL_ROW
        colour = CURRENT.words if entry in lit else TEXT
        words = shorten(f"{entry}: {value}" if entry else value, 34)
        weight = "bold" if entry in lit else "normal"
        if entry in lit:  # a highlighter's stroke behind the entry, the last event's yellow
            sheet.box(
                (model_centre[0], y),
                (READ_MODEL_WIDTH - 0.2, MODEL_ROW * 0.9),
                ink=Ink(CURRENT.fill, NO_COLOUR),
                gid=f"lit-{row}",
                zorder=2.5,
            )
        sheet.text(
            model_left + 0.2,
            y,
            words,
            ha="left",
            fontsize=8,
            gid=f"entry-{row}",
            colour=colour,
            weight=weight,
        )
    if read and not lit:
        # The caption promises the last event's change lit: say when there is none to light.
        sheet.text(
            model_left + 0.2,
            top - model_height - 0.2,
            f"position {read[-1].position} changed nothing here",
            ha="left",
            fontsize=SMALL,
            colour=EDGE,
            style="italic",
            gid="unchanged",
        )
    if current_at is not None:
        into = (model_left, model_centre[1])
        sheet.arrow(current_at, into, target=model, colour=CURRENT.stroke, width=1.6)
    default = f"{name} built from zero: {plural(len(read), 'event')} of {len(stored)} read" + (
        f", {len(ignored)} ignored" if ignored else ""
    )
    sheet.title(title or default)
    sheet.legend(legend)
    return sheet.figure


def _fresh(projection: ProjectionSource) -> Projection:
    made = projection() if callable(projection) else None
    if not isinstance(made, Projection):
        raise TypeError(
            "draw_projection() takes a Projection class (or a function that makes a fresh "
            f"one), such as OrdersByStatus; got {projection!r}"
        )
    return made


def _project(
    projection: Projection, read: Sequence[StoredEvent]
) -> tuple[set[int], dict[str, str]]:
    """Feed ``read`` to ``projection``; return the positions that changed nothing, and the
    read model's lines before the last event."""
    ignored: set[int] = set()
    before: dict[str, str] = {}
    for item in read:
        snapshot = _lines(projection.snapshot())
        before = dict(snapshot)
        projection.project(item)
        if _lines(projection.snapshot()) == snapshot:
            ignored.add(item.position)
    return ignored, before


def _lines(snapshot: object) -> list[tuple[str, str]]:
    if isinstance(snapshot, Mapping):
        return [(str(k), _value_text(v, 24).strip("'")) for k, v in snapshot.items()]
    return [("", shorten(repr(snapshot), 34))]


def _log_state(item: StoredEvent, upto: int, ignored: set[int]) -> str:
    if item.position > upto:
        return "pending"
    if item.position == upto:
        return "current"
    return "ignored" if item.position in ignored else "read"


#: The ink of an event of the log, and the colour of its words, by how the projection took it.
_LOG_INKS: dict[str, tuple[Ink, str]] = {
    "read": (EVENT, TEXT),
    "ignored": (PLAIN.but(stroke=FADED_EDGE, shape="rounded"), EDGE),
    "current": (EVENT.but(fill=CURRENT.fill, stroke=CURRENT.stroke, width=2.4), TEXT),
    "pending": (PENDING.but(shape="rounded"), FADED_TEXT),
}


# ---------------------------------------------------------------------- CQRS


def draw_cqrs(
    store: EventStore,
    projections: Sequence[Projection],
    *,
    command: str = "pay order o-1",
    query: str = "which orders are paid?",
    ax: Axes | None = None,
) -> Figure:
    """Draw command-query responsibility segregation with real numbers: commands go through an
    aggregate and a unit of work into ``store`` (the write side); ``projections`` read the
    store's global order into read models that answer queries (the read side)."""
    if not isinstance(store, EventStore):
        raise TypeError(f"draw_cqrs() takes an event store first, got {store!r}")
    for projection in projections:
        if not isinstance(projection, Projection):
            raise TypeError(f"draw_cqrs() draws Projection objects, got {projection!r}")
    count = max(len(projections), 1)
    band = max(1.1, 0.62 * count + 0.5)
    width, height = 9.2, TITLE + 1.3 + band + 0.2
    sheet = Sheet.new(width, height, ax)
    write_y, read_top = height - TITLE - 0.65, height - TITLE - 1.3
    sides = {
        "write side: commands": (write_y, 1.2, WRITE_SIDE, COMMAND),
        "read side: queries": (read_top - band / 2, band, READ_SIDE, EVENT),
    }
    for words, (middle, tall, fill, meaning) in sides.items():
        sheet.box((4.1, middle), (7.6, tall), ink=Ink(fill, NO_COLOUR), zorder=0)
        top_of_band = middle + tall / 2
        sheet.text(
            0.45,
            top_of_band - 0.15,
            words,
            fontsize=8,
            ha="left",
            colour=meaning.words,
            weight="bold",
        )
    size = (1.55, 0.56)
    plain: dict[str, Any] = {"ink": PLAIN, "fontsize": 7.8}
    boxes = [
        sheet.box((1.2, write_y - 0.08), size, f"command\n{shorten(command, 20)}", **plain),
        sheet.box((3.1, write_y - 0.08), size, "Order aggregate\nchecks the rules", **plain),
        sheet.box((5.0, write_y - 0.08), size, "unit of work\nsave, then publish", **plain),
    ]
    streams = len(store.stream_ids())
    events = sum(1 for _ in store.read_all())
    store_box = sheet.box(
        (7.85, (write_y + read_top - band / 2) / 2),
        (1.6, 1.0),
        f"event store\n{plural(events, 'event')}\n{plural(streams, 'stream')}",
        ink=EVENT.but(width=1.6, shape="square"),
        fontsize=8,
    )
    for source, target in zip(boxes, [*boxes[1:], store_box], strict=True):
        sheet.connect(source, target)
    query_box = sheet.box(
        (1.2, read_top - band / 2 - 0.1), size, f"query\n{shorten(query, 22)}", **plain
    )
    for number, projection in enumerate(projections):
        y = read_top - band / 2 - 0.1 + ((count - 1) / 2 - number) * 0.62
        label = f"{type(projection).__name__}\nat position {projection.position}"
        model = sheet.box((4.3, y), (2.0, 0.5), label, ink=CALL, fontsize=7.8)
        sheet.connect(store_box, model, colour=EVENT.stroke)
        sheet.connect(model, query_box, colour=EDGE, dashes="--")
    sheet.title("CQRS: one side decides and records events, the other reads them into models")
    return sheet.figure


# ---------------------------------------------------------------------- the explorer


class HistoryExplorer(Explorer):
    """Time travel through one aggregate's events: a slider over its versions shows the state
    at that version (changed values lit) and the event that made it.

    ``events`` are the aggregate's events in order (bare, or the store's StoredEvents):
    ``HistoryExplorer(store.read("order-o-1"))``, or :meth:`of_stream`. Nothing is saved or
    changed; each version's state is a replay of the first events.

    >>> explorer = HistoryExplorer.of_stream(store, "order-o-1")  # doctest: +SKIP
    >>> explorer.step_to(2); explorer.state["status"]  # doctest: +SKIP
    'paid'
    """

    def __init__(
        self,
        events: Iterable[object],
        aggregate_type: type[Aggregate] = Order,
        *,
        stream_id: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        self.events = _events_of(events)
        if not self.events:
            raise ValueError(
                "HistoryExplorer needs at least one event; read a stream that has some: "
                "store.read('order-o-1')"
            )
        self.aggregate_type = aggregate_type
        self._history = _history(self.events, aggregate_type)
        self._frames = aggregate_type.history(self.events)
        self.stream_id = stream_id or aggregate_type.stream_for(self._frames[-1][1].id)
        self.fields = fields
        self._build()
        self._stepper.reset(self.versions, at=self.versions)

    @classmethod
    def of_stream(
        cls,
        store: EventStore,
        stream_id: str,
        aggregate_type: type[Aggregate] = Order,
        *,
        fields: Sequence[str] | None = None,
    ) -> HistoryExplorer:
        """The explorer of the stream ``stream_id`` of ``store``."""
        stored = store.read(stream_id)
        if not stored:
            known = ", ".join(store.stream_ids()) or "none"
            raise ValueError(f"the stream {stream_id!r} has no events (streams: {known})")
        return cls(stored, aggregate_type, stream_id=stream_id, fields=fields)

    # -- the Python API -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The version shown: 0 is the blank aggregate, before any event."""
        return self._stepper.step

    @property
    def versions(self) -> int:
        """How many events the history has (the latest version)."""
        return len(self.events)

    @property
    def state(self) -> dict[str, object]:
        """The state at the version shown, as plain values."""
        return dict(self._history[self.version][1])

    @property
    def event(self) -> object | None:
        """The event that made the version shown (None at version 0)."""
        return self._history[self.version][0]

    @property
    def aggregate(self) -> Aggregate:
        """A copy of the aggregate at the version shown (a blank one at version 0)."""
        return self._frames[self.version - 1][1] if self.version else self.aggregate_type()

    @property
    def changed(self) -> list[str]:
        """The fields the event shown changed."""
        if self.version == 0:
            return []
        return _changed(self._history[self.version - 1][1], self._history[self.version][1])

    def step_to(self, version: int) -> None:
        """Show the state at ``version`` (0 to :attr:`versions`)."""
        _check_version(version, self.versions)
        self._stepper.step_to(version)

    def caption(self) -> str:
        """One line saying what the version shown is and what made it."""
        if self.version == 0:
            return f"version 0 of {self.versions}: the blank {self.aggregate_type.__name__}"
        event = type(self.event).__name__
        status = self.state.get("status")
        made = f" made it {status}" if isinstance(status, str) else ""
        return f"version {self.version} of {self.versions}: {event}{made}"

    def __repr__(self) -> str:
        event = self.event
        made = f"({type(event).__name__})" if event is not None else "(before any event)"
        return (
            f"HistoryExplorer: {self.stream_id}, version {self.version} of {self.versions} {made}"
        )

    # -- building and showing -----------------------------------------------------------------

    def _build(self) -> None:
        self._stepper = Stepper(self._show, description="version", interval=1100)
        self._caption = widgets.Label()
        self._image = widgets.Image(format="png")
        self._event_table = widgets.HTML()
        self._state_table = widgets.HTML()
        gap = widgets.Layout(margin="0 24px 0 0")
        self._event_table.layout = gap
        self._root = widgets.VBox(
            [
                self._stepper.widget,
                self._caption,
                self._image,
                widgets.HBox([self._event_table, self._state_table]),
            ]
        )

    def _show(self, version: int) -> None:
        self._image.value = self._stepper.png(
            lambda: draw_fold(self.events, self.aggregate_type, upto=version, fields=self.fields)
        )
        self._caption.value = self.caption()
        event = self.event
        if event is None:
            self._event_table.value = _html_table(
                "no event yet", {"": "the fold starts from a blank aggregate"}, set()
            )
        else:
            self._event_table.value = _html_table(
                f"event {version}: {type(event).__name__}", event_fields(event), set()
            )
        self._state_table.value = _html_table(
            f"state at version {version}", self.state, set(self.changed)
        )


def _html_table(heading: str, values: Mapping[str, object], lit: set[str]) -> str:
    rows = [
        "<table style='border-collapse:collapse;font-family:monospace;font-size:12px'>",
        f"<tr><th colspan='2' style='text-align:left;padding:2px 8px'>{html.escape(heading)}"
        "</th></tr>",
    ]
    for name, value in values.items():
        style = f"background:{CURRENT.fill};font-weight:bold" if name in lit else ""
        text = value if isinstance(value, str) and not name else _value_text(value, 48)
        rows.append(
            f"<tr style='{style}'><td style='padding:2px 8px'>{html.escape(name)}</td>"
            f"<td style='padding:2px 8px'>{html.escape(str(text))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)
