"""Pictures of handlers in time: who waited, who overlapped, who was held back.

- :func:`draw_timelines` draws several timed dispatches (say, the same events handled
  sequentially and concurrently) Gantt-style on one time axis, one group of rows each, with
  the moment each group was done marked, so the faster one is seen to be faster.
- :func:`draw_backpressure` draws what an :class:`~eda_lesson.core.asyncbus.EventQueue` did to
  each event: how long its publisher was held back by a full queue, how long it waited in the
  queue, and when it was handled.
- :class:`ConcurrencyLab` is a widget: sliders set how long each of the shop's payment
  handlers waits on its service, checkboxes make one block the event loop; every change runs
  the same dispatch sequentially and concurrently on virtual clocks and redraws both.

Times are read from the records the async bus keeps (``HandlerCall.started``/``ended``,
``Publication.asked``/``accepted``); nothing here measures wall-clock time, so on virtual
clocks the pictures are the same on every run. The drawings never dispatch; the lab does,
on its own buses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eda_lesson.core.asyncbus import AsyncEventBus, Concurrency, EventQueue
from eda_lesson.core.clock import VirtualClock, current_clock
from eda_lesson.core.result import DispatchResult, HandlerCall
from eda_lesson.shop.events import OrderPaid, ShipmentRequested
from eda_lesson.views.failures import event_label
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import CALL, CURRENT, FAILED, QUEUED, TEXT, UNHANDLED
from eda_lesson.views.sheet import Chart, Key, figure_to_png
from eda_lesson.views.stepper import Explorer, Quiet

__all__ = ["ConcurrencyLab", "draw_backpressure", "draw_timelines", "finish_time"]

ROW_INCHES = 0.42

Results = DispatchResult | Sequence[DispatchResult]


# ---------------------------------------------------------------------- timelines side by side


@dataclass(frozen=True)
class _Bar:
    call: HandlerCall
    event: object
    start: float  # from the group's first start
    end: float


def finish_time(results: Results) -> float:
    """How long the dispatches took: from the first handler start to the last handler end."""
    bars = _bars(_as_list(results), "finish_time()")
    return max((bar.end for bar in bars), default=0.0)


def draw_timelines(
    results: Mapping[str, Results], *, title: str | None = None, ax: Axes | None = None
) -> Figure:
    """Draw timed dispatches on one time axis: a group of rows per name, a bar per call.

    ``results`` maps a name ("sequential", "concurrent") to a dispatch result or a list of
    them (several events handled in one scenario). Times come from the bus's clock and each
    group's clock starts at its first handler call, so groups compare as if started together.
    A dashed line marks when each group was done. Draws into ``ax`` when given.
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError(
            "draw_timelines() takes a dict of name -> dispatch result(s), such as "
            '{"sequential": result_a, "concurrent": result_b}'
        )
    groups = [(str(name), _bars(_as_list(r), f"group {name!r}")) for name, r in results.items()]
    rows = sum(1 + len(bars) for _, bars in groups)
    chart = Chart.new(8.0, 1.45 + ROW_INCHES * rows, margins=(2.2, 0.95, 0.15, 0.45), ax=ax)
    finish = max((bar.end for _, bars in groups for bar in bars), default=1.0) or 1.0
    labels: list[tuple[float, str]] = []
    y = 0.0
    for number, (name, bars) in enumerate(groups):
        done = max((bar.end for bar in bars), default=0.0)
        header = f"{name}: all done at {_seconds(done)}"
        chart.note(
            0, y, header, ha="left", fontsize=9, weight="bold", colour=TEXT, gid=f"group-{number}"
        )
        several = len({id(bar.event) for bar in bars}) > 1
        for row, bar in enumerate(bars, start=1):
            _call_bar(chart, y + row, bar, finish, several, gid=f"bar-{number}-{row}")
            labels.append((y + row, shorten(bar.call.name, 26)))
        if bars:
            chart.line([done, done], [y + 0.5, y + len(bars) + 0.45], _DONE)
        y += len(bars) + 1.4
    chart.frame(
        labels,
        xlabel="time (s) since the group's first handler started",
        xlim=(0, finish * 1.3),
        ylim=(y - 0.9, -0.8),
    )
    chart.title(title or _timelines_title(groups))
    chart.legend(
        [Key("handler call", CALL), Key("failed call", FAILED), Key("all done", _DONE, line=True)]
    )
    return chart.figure


_DONE = CURRENT.but(dashes="--", width=1.3)


def _as_list(results: Results) -> list[DispatchResult]:
    if isinstance(results, DispatchResult):
        return [results]
    if isinstance(results, Sequence) and all(isinstance(r, DispatchResult) for r in results):
        return list(results)
    raise TypeError(
        f"expected a dispatch result or a list of them, got {type(results).__name__}; "
        "await bus.dispatch(event) on an AsyncEventBus to get one"
    )


def _bars(results: list[DispatchResult], where: str) -> list[_Bar]:
    spans: list[tuple[HandlerCall, object, float, float]] = []
    for result in results:
        for call in result.calls:
            if call.started is None or call.ended is None:
                raise ValueError(
                    f"{where}: the call of {call.name} has no times; dispatch on an "
                    "AsyncEventBus (it records when each handler started and ended)"
                )
            event = result.events[call.event_index].event
            spans.append((call, event, call.started, call.ended))
    origin = min((start for _, _, start, _ in spans), default=0.0)
    # Rounded to the nanosecond, the virtual clock's unit: 10.3 - 10.0 reads 0.3.
    return [
        _Bar(call, event, round(start - origin, 9), round(end - origin, 9))
        for call, event, start, end in spans
    ]


def _call_bar(chart: Chart, y: float, bar: _Bar, finish: float, several: bool, *, gid: str) -> None:
    failed = bar.call.error is not None
    length = max(bar.end - bar.start, finish * 0.004)
    chart.bar(y, bar.start, length, FAILED if failed else CALL, gid=gid)
    note = event_label(bar.event) if several else type(bar.event).__name__
    if failed:
        note += " · failed"
    chart.note(bar.start + length + finish * 0.01, y, note, fontsize=7)


def _timelines_title(groups: list[tuple[str, list[_Bar]]]) -> str:
    parts = [f"{name} {_seconds(max((b.end for b in bars), default=0.0))}" for name, bars in groups]
    title = "the same work on one time axis: " + ", ".join(parts)
    if len(title) > 80:  # the group headers tell the times anyway
        title = f"the same work on one time axis, {len(groups)} ways"
    return title


# ---------------------------------------------------------------------- backpressure


def draw_backpressure(
    queue: EventQueue, *, title: str | None = None, ax: Axes | None = None
) -> Figure:
    """Draw each event that went through ``queue``, in the order published.

    Orange: the publisher was held back (the queue was full); white, dashed: the event waited
    in the queue; green: a worker was handling it. Draws into ``ax`` when given.
    """
    if not isinstance(queue, EventQueue):
        raise TypeError(f"draw_backpressure() takes an EventQueue, got {type(queue).__name__}")
    handled = {id(result.event): result for result in queue.results}
    rows = max(len(queue.published), 1)
    chart = Chart.new(8.0, 1.45 + 0.36 * rows, margins=(1.8, 0.95, 0.15, 0.45), ax=ax)
    origin = min((p.asked for p in queue.published), default=0.0)
    finish = 0.0
    for row, publication in enumerate(queue.published):
        result = handled.get(id(publication.event))
        start = end = publication.accepted
        if result is not None and result.calls:
            start = min(c.started for c in result.calls if c.started is not None)
            end = max(c.ended for c in result.calls if c.ended is not None)
        segments = [
            ("held", publication.asked, publication.accepted),
            ("queued", publication.accepted, start),
            ("handled", start, end),
        ]
        for kind, begin, stop in segments:
            if stop - begin > 0:
                chart.bar(
                    row,
                    begin - origin,
                    stop - begin,
                    _SEGMENTS[kind],
                    height=0.55,
                    gid=f"{kind}-{row}",
                )
        finish = max(finish, end - origin)
    chart.frame(
        [(float(row), event_label(p.event)) for row, p in enumerate(queue.published)],
        xlabel="time (s) on the bus's clock",
        xlim=(0, (finish or 1.0) * 1.05),
        ylim=(rows - 0.4, -0.6),
    )
    waited = sum(p.waited for p in queue.published)
    bound = f"maxsize={queue.maxsize}" if queue.maxsize else "unbounded"
    workers = f"{queue.workers} worker{'s' * (queue.workers != 1)}"
    chart.title(title or f"queue {bound}, {workers}: publisher held back {_seconds(waited)} in all")
    chart.legend(
        [
            Key("publisher held back", _SEGMENTS["held"]),
            Key("waiting in the queue", _SEGMENTS["queued"]),
            Key("being handled", _SEGMENTS["handled"]),
        ]
    )
    return chart.figure


_SEGMENTS = {
    "held": UNHANDLED.but(dashes="-", width=1.1, shape="square"),
    "queued": QUEUED.but(width=1.1, shape="square"),
    "handled": CALL.but(width=1.1),
}


# ---------------------------------------------------------------------- the concurrency lab

#: The lab's handlers: (event type, name, seconds it waits on its service by default).
LAB_HANDLERS: tuple[tuple[type, str, float], ...] = (
    (OrderPaid, "charge_card", 0.3),
    (OrderPaid, "send_receipt", 0.2),
    (OrderPaid, "request_shipment", 0.1),
    (ShipmentRequested, "ship_order", 0.25),
)
MODES: tuple[Concurrency, ...] = ("sequential", "concurrent")


class ConcurrencyLab(Explorer):
    """The shop's payment handlers, each waiting on a service, run both ways and drawn.

    ``OrderPaid`` is handled by ``charge_card``, ``send_receipt`` and ``request_shipment``
    (which returns ``ShipmentRequested``, handled by ``ship_order``). Each is an ``async def``
    that awaits ``asyncio.sleep(latency)``, as a call to a slow service would; a handler set
    to *block* is a plain function that holds the event loop for its latency instead. Every
    change runs the dispatch on a sequential and on a concurrent :class:`AsyncEventBus`,
    each on a fresh :class:`~eda_lesson.core.clock.VirtualClock`, and redraws.
    """

    def __init__(
        self, latencies: Mapping[str, float] | None = None, *, blocking: Iterable[str] = ()
    ) -> None:
        self.latencies: dict[str, float] = {name: seconds for _, name, seconds in LAB_HANDLERS}
        self.blocking: set[str] = set()
        self.results: dict[str, DispatchResult] = {}
        self._quiet = Quiet()
        self._build_controls()
        for name, seconds in (latencies or {}).items():
            self.set_latency(name, seconds, run=False)
        for name in blocking:
            self.set_blocking(name, run=False)
        self.run()

    # -- the Python API -----------------------------------------------------------------------

    @property
    def handler_names(self) -> list[str]:
        return [name for _, name, _ in LAB_HANDLERS]

    @property
    def finish_times(self) -> dict[str, float]:
        """When each mode was done, in seconds of virtual time."""
        return {mode: finish_time(result) for mode, result in self.results.items()}

    def set_latency(self, handler: str, seconds: float, *, run: bool = True) -> None:
        """How long ``handler`` waits on its service (0 to 2 s); runs again unless ``run=False``."""
        self._check_name(handler)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"latency is a number of seconds, got {seconds!r}")
        if not 0 <= seconds <= 2:
            raise ValueError(f"latency is between 0 and 2 s here, got {seconds!r}")
        self.latencies[handler] = round(float(seconds), 3)
        self._sync_controls()
        if run:
            self.run()

    def set_blocking(self, handler: str, blocks: bool = True, *, run: bool = True) -> None:
        """Make ``handler`` a plain function that blocks the loop while it waits (or not)."""
        self._check_name(handler)
        if blocks:
            self.blocking.add(handler)
        else:
            self.blocking.discard(handler)
        self._sync_controls()
        if run:
            self.run()

    def run(self) -> dict[str, DispatchResult]:
        """Dispatch ``OrderPaid("o-1")`` on a sequential and on a concurrent bus; redraw."""
        self.results = {mode: self._dispatch(mode) for mode in MODES}
        self._show()
        return self.results

    def draw(self) -> Figure:
        """Both runs on one time axis (see :func:`draw_timelines`)."""
        return draw_timelines(self.results)

    def summary(self) -> str:
        times = self.finish_times
        words = ", ".join(f"{mode} done at {_seconds(times[mode])}" for mode in MODES)
        blocking = sorted(self.blocking)
        if blocking:
            words += f" ({', '.join(blocking)} blocks the loop)"
        return words

    def __repr__(self) -> str:
        return f"ConcurrencyLab: {len(LAB_HANDLERS)} handlers; {self.summary()}"

    # -- running ------------------------------------------------------------------------------

    def _dispatch(self, mode: Concurrency) -> DispatchResult:
        bus = AsyncEventBus(concurrency=mode)
        for event_type, name, _ in LAB_HANDLERS:
            bus.register(event_type, self._handler(name))
        return VirtualClock().run(bus.dispatch(OrderPaid("o-1", 42.0)))

    def _handler(self, name: str) -> Callable[[Any], Any]:
        seconds = self.latencies[name]
        answer: Callable[[Any], object] = _no_event
        if name == "request_shipment":
            answer = _shipment_for

        if name in self.blocking:

            def blocking_handler(event: Any) -> object:
                current_clock().sleep(seconds)  # holds the loop: nothing else runs meanwhile
                return answer(event)

            blocking_handler.__qualname__ = name
            return blocking_handler

        async def waiting_handler(event: Any) -> object:
            await asyncio.sleep(seconds)  # the loop runs other handlers meanwhile
            return answer(event)

        waiting_handler.__qualname__ = name
        return waiting_handler

    def _check_name(self, handler: str) -> None:
        if handler not in self.latencies:
            known = ", ".join(self.latencies)
            raise ValueError(f"the lab has no handler {handler!r}; it has {known}")

    # -- the widget ---------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self._sliders: dict[str, Any] = {}
        self._blocks: dict[str, Any] = {}
        rows = []
        for _, name, seconds in LAB_HANDLERS:
            slider = widgets.FloatSlider(
                value=seconds,
                min=0.0,
                max=2.0,
                step=0.05,
                description=name,
                continuous_update=False,
                readout_format=".2f",
                style={"description_width": "130px"},
            )
            block = widgets.Checkbox(value=False, description="blocks the loop", indent=False)
            slider.observe(self._on_control, "value")
            block.observe(self._on_control, "value")
            self._sliders[name], self._blocks[name] = slider, block
            rows.append(widgets.HBox([slider, block]))
        self._summary = widgets.Label(value="")
        self._image = widgets.Image(format="png")
        header = widgets.HTML("<b>seconds each handler waits on its service</b>")
        self._root = widgets.VBox([header, *rows, self._summary, self._image])

    def _sync_controls(self) -> None:
        with self._quiet.hold():
            for name, slider in self._sliders.items():
                slider.value = self.latencies[name]
                self._blocks[name].value = name in self.blocking

    def _on_control(self, _change: Mapping[str, Any]) -> None:
        if self._quiet:
            return
        for name, slider in self._sliders.items():
            self.latencies[name] = round(float(slider.value), 3)
            if self._blocks[name].value:
                self.blocking.add(name)
            else:
                self.blocking.discard(name)
        self.run()

    def _show(self) -> None:
        self._summary.value = self.summary()
        self._image.value = figure_to_png(self.draw())


def _no_event(event: Any) -> object:
    return None


def _shipment_for(event: Any) -> object:
    return ShipmentRequested(event.order_id)


# ---------------------------------------------------------------------- shared


def _seconds(value: float) -> str:
    return f"{round(value, 6):g} s"
