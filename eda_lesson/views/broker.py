"""Pictures of the broker: who handled which event, what the outbox holds, what a crash loses.

* :func:`draw_deliveries` draws a delivery log (a worker's, or the journal every worker of a
  group writes): a lane per consumer, a column per event, a mark per delivery coloured by its
  outcome. A redelivery carries its number and an arrow from the delivery before it, so an
  entry reclaimed from a dead worker shows as an arrow from that worker's lane to another's.
* :func:`pending_deliveries` reads the entries a consumer holds unacknowledged, as
  deliveries with the outcome ``"pending"``, so a picture can show what a dead worker held.
* :func:`draw_outbox` draws the outbox's rows, sent and waiting, and where the relay reads.
* :func:`draw_dual_write` draws units of work that crashed (or not) between their writes,
  from their recorded steps, with what each run lost.
* :class:`DeliveryExplorer` steps through a delivery log.

The inks are those of :mod:`eda_lesson.views.palette`: handled is a call's green, a failure
vermillion and hatched, a dead letter darker still, a duplicate grey. Layouts depend only on
the records drawn, never on timings or entry ids. Nothing here talks to Redis except
:func:`pending_deliveries`; nothing here changes what it draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eda_lesson.core.extras import missing_extra

try:
    import redis
except ImportError as error:
    raise missing_extra("broker", __name__, error) from error

from eda_lesson.core.text import plural
from eda_lesson.patterns.outbox import Outbox, OutboxMessage, Relay
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.transport.redis_streams import (
    OUTCOMES,
    Delivery,
    StreamKeys,
    printable,
    talking_to,
)
from eda_lesson.views.palette import (
    CALL,
    CURRENT,
    DEAD_LETTER,
    DUPLICATE,
    EDGE,
    EVENT,
    FADED_EDGE,
    FADED_TEXT,
    FAILED,
    MUTED_TEXT,
    PANEL,
    QUEUED,
    TEXT,
    UNHANDLED,
    WHITE,
    Ink,
)
from eda_lesson.views.sheet import Key, Sheet
from eda_lesson.views.stepper import Explorer, Stepper

__all__ = [
    "DeliveryExplorer",
    "draw_deliveries",
    "draw_dual_write",
    "draw_outbox",
    "pending_deliveries",
]

PENDING = "pending"
"""The outcome :func:`pending_deliveries` gives: delivered, not (yet) acknowledged."""

REDELIVERY = UNHANDLED.stroke  # the orange of "not finished the first time"

#: The ink of a delivery's mark by its outcome. A mark is small: a failure keeps its
#: hatching and a plain border; a dead letter is darker still (it will not come back).
_MARKS: dict[str, Ink] = {
    "handled": CALL,
    "duplicate": DUPLICATE,
    "failed": FAILED.but(dashes="-", width=1.2),
    "dead-lettered": DEAD_LETTER,
    "parked": UNHANDLED,  # dotted: set aside until a worker knows the event's type
    PENDING: Ink(WHITE, MUTED_TEXT, dashes="--"),
}
_NOT_YET = Ink(WHITE, FADED_EDGE)
_WORDS = {
    "handled": "handled",
    "duplicate": "duplicate, skipped",
    "failed": "failed, will retry",
    "dead-lettered": "dead-lettered",
    "parked": "parked, kept for later",
    PENDING: "held, not acknowledged",
}

MARGIN = 0.3
TITLE = 0.5
LANE = 0.62  # from one consumer's lane to the next
LANE_LABEL = 1.5  # room for the consumer's name and counts on the left
MARK = 0.2  # side of a delivery's square
EVENT_LABELS = 0.62  # room under the lanes for the event ids


# ---------------------------------------------------------------------- deliveries


def pending_deliveries(
    client: redis.Redis, stream: str, group: str, consumer: str | None = None
) -> list[Delivery]:
    """The entries of ``group`` delivered and not acknowledged (held by ``consumer`` only,
    if given), oldest first, as :class:`Delivery` records with the outcome ``"pending"``."""
    keys = StreamKeys(stream, group)
    with talking_to(client):
        held = client.xpending_range(
            keys.stream, keys.group, "-", "+", 10_000, consumername=consumer
        )
        found = []
        for item in held:
            entry_id = _decoded(item["message_id"])
            # Raw bytes: an entry anyone wrote may hold bytes that are not UTF-8.
            xrange: Callable[..., list[Any]] = client.execute_command
            entries = xrange("XRANGE", keys.stream, entry_id, entry_id, NEVER_DECODE=True)
            fields: Mapping[bytes, bytes] = dict(_pairs(entries[0][1])) if entries else {}
            found.append(
                Delivery(
                    _text(fields.get(b"event_id", b"")),
                    _text(fields.get(b"type", b"")),
                    _decoded(item["consumer"]),
                    int(item["times_delivered"]),
                    PENDING,
                    "",
                    entry_id,
                )
            )
    return found


def _pairs(fields: object) -> list[tuple[bytes, bytes]]:
    """An entry's fields as pairs, from the flat list or the mapping redis-py gives."""
    if isinstance(fields, dict):
        return list(fields.items())
    flat = list(fields or ())  # type: ignore[call-overload]
    return list(zip(flat[::2], flat[1::2], strict=True))


def _decoded(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(value: bytes) -> str:
    return printable(value.decode("utf-8", "backslashreplace"), 200)


def draw_deliveries(
    deliveries: Iterable[Delivery],
    *,
    consumers: Sequence[str] = (),
    upto: int | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Who handled which event: a lane per consumer, a column per event (in the order
    they were first delivered), a square per delivery coloured by its outcome.

    A redelivery shows its number (``2`` for the second delivery) and an arrow from the
    event's delivery before it. ``consumers`` lists lanes to draw even when empty (a worker
    killed before it stored anything), first; the others follow by name. ``upto`` draws
    only the first ``upto`` deliveries, the rest as faint outlines (for stepping through).
    """
    records = list(deliveries)
    shown = len(records) if upto is None else max(0, min(upto, len(records)))
    lanes = list(dict.fromkeys([*consumers, *sorted({d.consumer for d in records})]))
    events = list(dict.fromkeys(d.event_id or "?" for d in records))
    if not lanes:
        lanes = ["(no consumer)"]
    column = max(0.26, min(0.5, 9.0 / max(1, len(events))))
    width = max(6.8, 2 * MARGIN + LANE_LABEL + column * max(1, len(events)) + 0.2)
    legend = _delivery_legend(records)
    legend_room = Sheet.legend_height(legend, width, per_row=5)
    height = TITLE + LANE * len(lanes) + EVENT_LABELS + legend_room + 0.1
    sheet = Sheet.new(width, height, ax)
    top = height - TITLE
    lane_y = {name: top - LANE * (number + 0.5) for number, name in enumerate(lanes)}
    left = MARGIN + LANE_LABEL
    column_x = {event: left + column * (number + 0.5) for number, event in enumerate(events)}
    _draw_lanes(sheet, records[:shown], lane_y, left, width)
    _label_events(sheet, events, column_x, top - LANE * len(lanes))
    _draw_marks(sheet, records, shown, lane_y, column_x)
    sheet.title(title or _deliveries_title(records[:shown], len(lanes)))
    sheet.legend(legend, per_row=5)
    return sheet.figure


def _draw_lanes(
    sheet: Sheet,
    records: Sequence[Delivery],
    lane_y: Mapping[str, float],
    left: float,
    width: float,
) -> None:
    for number, (name, y) in enumerate(lane_y.items()):
        if number % 2 == 0:
            sheet.box(
                ((left + width - MARGIN) / 2, y),
                (width - MARGIN - left, LANE * 0.92),
                ink=Ink(PANEL, PANEL),
                zorder=0,
            )
        handled = sum(1 for d in records if d.consumer == name and d.outcome == "handled")
        sheet.text(MARGIN, y + 0.08, name, ha="left", va="center", fontsize=9, weight="bold")
        sheet.text(
            MARGIN, y - 0.12, f"{handled} handled", ha="left", va="center", fontsize=7.5,
            colour=FADED_TEXT if not handled else TEXT,
        )  # fmt: skip


def _label_events(
    sheet: Sheet, events: Sequence[str], column_x: Mapping[str, float], bottom: float
) -> None:
    small = 6.5 if len(events) > 24 else 7.5
    for event in events:
        sheet.text(
            column_x[event], bottom - 0.05, event, ha="center", va="top", rotation=90,
            fontsize=small, colour=FADED_TEXT,
        )  # fmt: skip


def _draw_marks(
    sheet: Sheet,
    records: Sequence[Delivery],
    shown: int,
    lane_y: Mapping[str, float],
    column_x: Mapping[str, float],
) -> None:
    placed: dict[tuple[str, str], int] = {}
    last_mark: dict[str, Any] = {}
    for number, delivery in enumerate(records):
        event = delivery.event_id or "?"
        slot = placed.get((event, delivery.consumer), 0)
        placed[(event, delivery.consumer)] = slot + 1
        # Deliveries of one event in one lane fan out like cards, the latest on top.
        x = column_x[event] + min(slot, 3) * MARK * 0.6
        y = lane_y[delivery.consumer] - min(slot, 3) * MARK * 0.3
        visible = number < shown
        ink = _MARKS.get(delivery.outcome, _MARKS["failed"]) if visible else _NOT_YET
        text = WHITE if ink == DEAD_LETTER else TEXT
        label = str(delivery.delivery) if delivery.delivery > 1 and visible else ""
        mark = sheet.box((x, y), (MARK, MARK), label, ink=ink, fontsize=6.5, text=text, zorder=3)
        before = last_mark.get(event)
        if before is not None and visible:
            sheet.connect(before, mark, colour=REDELIVERY, width=0.9, bend=-0.25)
        last_mark[event] = mark


def _delivery_legend(records: Sequence[Delivery]) -> list[Key]:
    outcomes = {d.outcome for d in records}
    keys = [
        _outcome_key(outcome)
        for outcome in (*OUTCOMES, PENDING)
        if outcome in outcomes or outcome == "handled"
    ]
    if any(d.delivery > 1 for d in records):
        again = _NOT_YET.but(stroke=REDELIVERY)
        keys.append(Key("delivered again (number: which delivery)", again, line=True))
    return keys


def _outcome_key(outcome: str) -> Key:
    return Key(_WORDS[outcome], _MARKS[outcome])


def _deliveries_title(records: Sequence[Delivery], lanes: int) -> str:
    events = len({d.event_id for d in records})
    counts = {outcome: sum(1 for d in records if d.outcome == outcome) for outcome in _WORDS}
    parts = [f"{count} {outcome}" for outcome, count in counts.items() if count]
    head = f"{_deliveries(len(records))} of "
    head += f"{plural(events, 'event')} to {plural(lanes, 'consumer')}"
    return head + (f": {', '.join(parts)}" if parts else "")


# ---------------------------------------------------------------------- the outbox

ROW = 0.34
ROW_BOX = (3.6, 0.26)


def draw_outbox(
    outbox: Outbox,
    *,
    relay: Relay | None = None,
    limit: int = 12,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The outbox's rows, oldest at the top: sent ones in green, waiting ones outlined, and
    an arrow where the relay reads next (the oldest waiting row). With ``relay``, a box on
    the right says how many messages it handed to its publisher (re-sends included)."""
    messages = outbox.messages()
    shown = messages[:limit]
    sent, waiting = outbox.counts()
    more = len(messages) - len(shown)
    rows = max(1, len(shown)) + (1 if more else 0)
    width = 7.6
    keys = [Key("sent", _SENT), Key("waiting for the relay", _WAITING)]
    height = TITLE + 0.35 + ROW * rows + Sheet.legend_height(keys, width) + 0.1
    sheet = Sheet.new(width, height, ax)
    top = height - TITLE - 0.35
    x = MARGIN + 1.15 + ROW_BOX[0] / 2
    sheet.text(x, top + 0.17, "outbox (in the store's file)", ha="center", va="center",
               fontsize=8.5, colour=FADED_TEXT)  # fmt: skip
    boxes = [
        _outbox_row(sheet, message, (x, top - ROW * (n + 0.5))) for n, message in enumerate(shown)
    ]
    if not shown:
        sheet.text(x, top - ROW / 2, "empty: nothing written yet", ha="center", va="center",
                   fontsize=8, colour=FADED_TEXT)  # fmt: skip
    if more:
        sheet.text(x, top - ROW * (len(shown) + 0.5), f"... {more} more", ha="center",
                   va="center", fontsize=8, colour=FADED_TEXT)  # fmt: skip
    # The relay reads the oldest waiting row next (the "more" line, when that one is hidden).
    next_up = next((n for n, m in enumerate(messages) if not m.sent), None)
    if next_up is not None:
        next_up = min(next_up, len(shown))
        y = top - ROW * (next_up + 0.5)
        sheet.arrow((MARGIN + 0.75, y), (x - ROW_BOX[0] / 2, y), colour=CURRENT.stroke)
        sheet.text(MARGIN, y, "relay", ha="left", colour=CURRENT.words, weight="bold")
    if relay is not None:
        last_sent = [box for box, message in zip(boxes, shown, strict=True) if message.sent][-1:]
        _relay_box(sheet, relay, last_sent, (width - MARGIN - 0.95, top - ROW * rows / 2))
    sheet.title(title or f"outbox: {sent} sent, {waiting} waiting")
    sheet.legend(keys)
    return sheet.figure


_SENT = CALL
_WAITING = QUEUED.but(shape="square")


def _outbox_row(sheet: Sheet, message: OutboxMessage, centre: tuple[float, float]) -> Any:
    ink = _SENT if message.sent else _WAITING
    words = f"{message.position:>3}  {message.event_id:<8} {message.event_type:<15} "
    words += f"{message.stream_id}"
    return sheet.box(centre, ROW_BOX, words, ink=ink, fontsize=7.5, family="monospace")


def _relay_box(
    sheet: Sheet, relay: Relay, rows: Sequence[Any], centre: tuple[float, float]
) -> None:
    name = type(relay.publisher).__name__
    label = f"{name}\n{plural(relay.published, 'message')} published"
    target = sheet.box(centre, (1.75, 0.6), label, ink=EVENT, fontsize=7.5)
    for row in rows:  # from the newest row sent: what the publisher has
        sheet.connect(row, target, colour=FADED_EDGE, dashes="--")


# ---------------------------------------------------------------------- dual write

STEP_BOX = (1.45, 0.5)
STEP_GAP = 0.35
RUN_ROW = 0.95


def draw_dual_write(runs: Mapping[str, UnitOfWork], *, ax: Axes | None = None) -> Figure:
    """Units of work side by side, one row each, drawn from their recorded steps: the
    writes that happened, the crash (hatched), the write that never happened (dashed), and
    what the run left behind."""
    if not runs:
        raise ValueError("draw_dual_write needs at least one run: {'label': unit_of_work}")
    plans = {label: _write_steps(uow) for label, uow in runs.items()}
    longest = max(len(steps) for steps in plans.values())
    label_room = 2.0
    verdict_room = 2.5
    width = 2 * MARGIN + label_room + longest * (STEP_BOX[0] + STEP_GAP) + verdict_room
    keys = [
        Key("written", _STEP_INKS["done"]),
        Key("the process died here", _STEP_INKS["crash"]),
        Key("never written", _STEP_INKS["never"]),
    ]
    height = TITLE + RUN_ROW * len(runs) + Sheet.legend_height(keys, width) + 0.1
    sheet = Sheet.new(width, height, ax)
    top = height - TITLE
    lost = 0
    for number, (label, steps) in enumerate(plans.items()):
        y = top - RUN_ROW * (number + 0.5)
        sheet.text(MARGIN, y, label, ha="left", va="center", fontsize=8.5, wrap=True)
        previous = None
        for place, (words, state) in enumerate(steps):
            x = MARGIN + label_room + place * (STEP_BOX[0] + STEP_GAP) + STEP_BOX[0] / 2
            ink = _STEP_INKS[state]
            text = FADED_TEXT if state == "never" else TEXT
            box = sheet.box((x, y), STEP_BOX, words, ink=ink, text=text, fontsize=7.5)
            if previous is not None:
                sheet.connect(previous, box, colour=FADED_EDGE if state in _NOT_DONE else EDGE)
            previous = box
        verdict, good = _verdict(runs[label])
        lost += not good
        colour = CALL.words if good else FAILED.words
        sheet.text(width - MARGIN - verdict_room + 0.1, y, verdict, ha="left", va="center",
                   fontsize=8, colour=colour, weight="bold")  # fmt: skip
    sheet.title(f"{plural(len(runs), 'commit')}: {lost} left the store and the world disagreeing")
    sheet.legend(keys)
    return sheet.figure


_STEP_INKS: dict[str, Ink] = {
    "done": CALL,
    "crash": FAILED,
    "never": Ink(WHITE, FADED_EDGE, dashes="--"),
    "later": Ink(WHITE, CALL.stroke, dashes="--"),
}
_NOT_DONE = frozenset({"never", "later"})  # the arrow into such a step is faded
_STEP_WORDS = {
    "save": "save\nto the store",
    "publish": "publish\nto the bus",
    "outbox": "outbox row\n(same transaction)",
    "crash": "crash",
}


def _write_steps(uow: UnitOfWork) -> list[tuple[str, str]]:
    """(words, state) for each write of a unit of work, then the ones a crash prevented."""
    actions = [step.action for step in uow.steps if step.action in _STEP_WORDS]
    steps = [(_STEP_WORDS[action], "crash" if action == "crash" else "done") for action in actions]
    if "outbox" in actions:
        steps.append(("relay publishes\nlater", "later"))
    elif "crash" in actions:
        missing = "publish" if "save" in actions else "save"
        steps.append((_STEP_WORDS[missing] + "\n(never)", "never"))
    return steps


def _verdict(uow: UnitOfWork) -> tuple[str, bool]:
    actions = {step.action for step in uow.steps}
    if "outbox" in actions:
        return "saved with its message:\nnothing lost", True
    saved, published = "save" in actions, "publish" in actions
    if saved and published:
        return "saved and published", True
    if saved:
        return "state saved,\nevent lost", False
    if published:
        return "event published,\nstate lost", False
    return "nothing written", True


# ---------------------------------------------------------------------- the explorer


class DeliveryExplorer(Explorer):
    """Steps through a delivery log: the picture of the first n deliveries and a line
    saying what the n-th one was. It opens on the whole log.

    >>> explorer = DeliveryExplorer(worker.deliveries)  # doctest: +SKIP
    >>> explorer.step_to(3); print(explorer.caption())  # doctest: +SKIP
    """

    def __init__(self, deliveries: Iterable[Delivery], *, consumers: Sequence[str] = ()) -> None:
        self.deliveries = list(deliveries)
        if not self.deliveries:
            raise ValueError("DeliveryExplorer needs at least one delivery; run a worker first")
        self.consumers = tuple(consumers)
        self._stepper = Stepper(self._show, description="delivery")
        self._caption = widgets.Label()
        self._image = widgets.Image(format="png")
        self._root = widgets.VBox([self._stepper.widget, self._caption, self._image])
        self._stepper.reset(len(self.deliveries), at=len(self.deliveries))

    @property
    def shown(self) -> int:
        """How many deliveries the picture shows."""
        return self._stepper.step

    def step_to(self, number: int) -> None:
        """Show the first ``number`` deliveries (0 to all)."""
        if not isinstance(number, int) or not 0 <= number <= len(self.deliveries):
            raise ValueError(f"step_to takes 0 to {len(self.deliveries)}, got {number!r}")
        self._stepper.step_to(number)

    def caption(self) -> str:
        """What the last delivery shown was."""
        if self.shown == 0:
            return f"0 of {len(self.deliveries)} deliveries: nothing delivered yet"
        d = self.deliveries[self.shown - 1]
        again = f" (delivery {d.delivery})" if d.delivery > 1 else ""
        why = f": {d.reason}" if d.reason else ""
        return (
            f"{self.shown} of {len(self.deliveries)}: {d.event_id} {d.type_name} to "
            f"{d.consumer}{again}, {_WORDS.get(d.outcome, d.outcome)}{why}"
        )

    def _show(self, number: int) -> None:
        self._image.value = self._stepper.png(
            lambda: draw_deliveries(self.deliveries, consumers=self.consumers, upto=number)
        )
        self._caption.value = self.caption()

    def __repr__(self) -> str:
        return f"DeliveryExplorer: {_deliveries(len(self.deliveries))}, showing {self.shown}"


def _deliveries(count: int) -> str:
    return plural(count, "delivery", "deliveries")
