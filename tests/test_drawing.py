"""Drawings of a dispatch and of registrations (eda_lesson.views.flow), rendered headless."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib
import pytest
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from eda_lesson import Command, DispatchResult, EventBus, handler_name
from eda_lesson.book.chapters import CHAPTERS, Chapter
from eda_lesson.patterns.store import ConcurrencyError, InMemoryEventStore
from eda_lesson.patterns.unit_of_work import PublishBeforeCommitUnitOfWork, UnitOfWork
from eda_lesson.shop.events import OrderEvent, OrderPaid, ShipmentRequested
from eda_lesson.shop.order import Order
from eda_lesson.shop.services import Shop
from eda_lesson.views.flow import (
    OrderedCall,
    calls_in_order,
    draw_flow,
    draw_nested_vs_queue,
    draw_registrations,
    draw_series_map,
    draw_timeline,
    draw_unit_of_work,
    flow_layout,
)
from eda_lesson.views.graphs import flow_graph
from eda_lesson.views.palette import INKS
from eda_lesson.views.sheet import NotebookFigure, figure_to_png

SERIES_TITLE = f"the series: {len(CHAPTERS)} chapters in {len({c.part for c in CHAPTERS})} parts"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextmanager
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def paid_cascade() -> DispatchResult:
    bus = EventBus()
    Shop().register(bus)
    return bus.dispatch(OrderPaid("o-1", 42.0))


def mark_paid(event: OrderPaid) -> None:
    pass


def send_receipt(event: OrderPaid) -> None:
    raise ConnectionError("mail server down")


def request_shipment(event: OrderPaid) -> ShipmentRequested:
    return ShipmentRequested(event.order_id)


def troubled_cascade() -> DispatchResult:
    """Steps: 1 mark_paid, 2 send_receipt (fails), 3 request_shipment -> #1 (unhandled)."""
    bus = EventBus()
    for handler in (mark_paid, send_receipt, request_shipment):
        bus.register(OrderPaid, handler)
    return bus.dispatch(OrderPaid("o-1", 42.0))


def artists(figure: Figure) -> dict[str, Artist]:
    """The drawing's artists that carry an id, such as "call-2" and "call-2-label"."""
    found = {}
    for artist in figure.findobj(lambda a: a.get_gid() is not None):
        found[artist.get_gid()] = artist
    return found


def face(artist: Any) -> tuple[float, ...]:
    return tuple(artist.get_facecolor())


def edge(artist: Any) -> tuple[float, ...]:
    return tuple(artist.get_edgecolor())


# ---------------------------------------------------------------------- draw_flow


def nobody_listens() -> DispatchResult:
    return EventBus().dispatch(OrderPaid("o-1"))


@pytest.mark.parametrize("make", [paid_cascade, troubled_cascade, nobody_listens])
def test_every_step_of_a_cascade_renders_headless_without_warnings(
    make: Callable[[], DispatchResult],
) -> None:
    result = make()
    with no_warnings():
        pictures = [figure_to_png(draw_flow(result))]
        pictures += [figure_to_png(draw_flow(result, upto=k)) for k in range(len(result.calls) + 1)]
    assert all(picture.startswith(PNG_SIGNATURE) for picture in pictures)


def test_each_step_gives_a_different_picture() -> None:
    result = paid_cascade()
    pictures = [figure_to_png(draw_flow(result, upto=k)) for k in range(len(result.calls) + 1)]
    assert len(set(pictures)) == len(pictures)


def test_the_same_result_always_gives_the_same_picture() -> None:
    assert figure_to_png(draw_flow(paid_cascade(), upto=2)) == figure_to_png(
        draw_flow(paid_cascade(), upto=2)
    )


def test_layout_goes_left_to_right_by_depth_and_top_down_by_step() -> None:
    positions = flow_layout(flow_graph(paid_cascade()))
    assert positions == {
        ("event", 0): (0.0, 0.0),
        ("call", 1): (1.0, 1.0),
        ("call", 2): (1.0, 0.0),
        ("call", 3): (1.0, -1.0),
        ("event", 1): (2.0, 0.0),
        ("call", 4): (3.0, 0.0),
        ("event", 2): (4.0, 0.0),
        ("call", 5): (5.0, 0.0),
    }


def test_the_current_step_is_outlined_and_later_calls_are_faded() -> None:
    drawn = artists(draw_flow(paid_cascade(), upto=3))
    assert edge(drawn["call-3"]) == to_rgba(INKS["current"].stroke)
    assert face(drawn["call-1"]) == to_rgba(INKS["call"].fill)
    assert face(drawn["call-4"]) == to_rgba(INKS["pending"].fill)
    assert drawn["call-4-label"].get_color() != drawn["call-1-label"].get_color()
    # ShipmentRequested was produced at step 3 but is not handled yet: queued.
    assert face(drawn["event-1"]) == to_rgba(INKS["queued"].fill)
    assert drawn["event-1"].get_linestyle() == "--"
    # OrderShipped does not exist yet.
    assert face(drawn["event-2"]) == to_rgba(INKS["pending"].fill)


def test_step_zero_shows_the_dispatched_event_queued_and_nothing_run() -> None:
    drawn = artists(draw_flow(paid_cascade(), upto=0))
    assert drawn["event-0"].get_linestyle() == "--"
    calls = [drawn[f"call-{step}"] for step in range(1, 6)]
    assert {face(call) for call in calls} == {to_rgba(INKS["pending"].fill)}


def test_a_failure_shows_only_once_the_cascade_reaches_it() -> None:
    result = troubled_cascade()
    before = artists(draw_flow(result, upto=1))
    assert face(before["call-2"]) == to_rgba(INKS["pending"].fill)
    assert "failed" not in before["call-2-label"].get_text()
    reached = artists(draw_flow(result, upto=2))
    assert face(reached["call-2"]) == to_rgba(INKS["failed"].fill)
    assert reached["call-2-label"].get_text() == "2. send_receipt\nfailed: ConnectionError"
    assert edge(reached["call-2"]) == to_rgba(INKS["current"].stroke)


def test_an_unhandled_event_is_orange_and_dotted_once_reached() -> None:
    result = troubled_cascade()
    drawn = artists(draw_flow(result))
    assert face(drawn["event-1"]) == to_rgba(INKS["unhandled"].fill)
    assert drawn["event-1"].get_linestyle() == ":"
    assert drawn["event-1-label"].get_text() == "#1 ShipmentRequested\nno handler"
    assert face(drawn["call-2"]) == to_rgba(INKS["failed"].fill)


def test_whole_cascade_has_no_current_step_and_a_summary_title() -> None:
    figure = draw_flow(paid_cascade())
    drawn = artists(figure)
    assert all(
        edge(drawn[f"call-{step}"]) != to_rgba(INKS["current"].stroke) for step in range(1, 6)
    )
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "dispatch of OrderPaid: 3 events, 5 handler calls" in texts
    assert {"event", "handler call", "failed call", "unhandled event"} <= set(texts)


def test_step_pictures_have_a_legend_for_every_state() -> None:
    texts = {text.get_text() for text in draw_flow(paid_cascade(), upto=1).axes[0].texts}
    assert {"current step", "queued event", "not yet run"} <= texts
    assert "step 1 of 5: Shop.mark_paid handles #0 OrderPaid" in texts


def test_a_step_the_dispatch_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="it has 5 steps"):
        draw_flow(paid_cascade(), upto=6)


def test_drawing_into_a_given_axes_returns_that_axes_figure() -> None:
    figure = Figure(figsize=(8, 4))
    ax = figure.add_subplot()
    with no_warnings():
        assert draw_flow(paid_cascade(), ax=ax) is figure
        assert figure_to_png(figure).startswith(PNG_SIGNATURE)
    assert ax.get_aspect() == 1.0


@dataclass(frozen=True)
class ParcelHandedToTheRegionalDistributionCentreForDelivery:
    order_id: str


class Warehouse:
    def reserve_every_item_of_the_order_in_the_nearest_regional_depot(
        self, event: ParcelHandedToTheRegionalDistributionCentreForDelivery
    ) -> None:
        pass


def test_long_names_are_shortened_so_every_label_fits_its_box() -> None:
    bus = EventBus()
    event_type = ParcelHandedToTheRegionalDistributionCentreForDelivery
    handler = Warehouse().reserve_every_item_of_the_order_in_the_nearest_regional_depot
    bus.register(event_type, handler)
    figure = draw_flow(bus.dispatch(event_type("o-1")), upto=1)
    renderer = FigureCanvasAgg(figure).get_renderer()
    drawn = artists(figure)
    for gid in ("event-0", "call-1"):
        box = drawn[gid].get_window_extent(renderer)
        label = drawn[gid + "-label"].get_window_extent(renderer)
        assert box.x0 < label.x0 and label.x1 < box.x1, gid
    assert drawn["event-0-label"].get_text() == "#0 ParcelHandedToTheRegio…"
    assert drawn["call-1-label"].get_text() == "1. reserve_every_item_of…"


def test_drawing_neither_imports_pyplot_nor_leaves_figures_open() -> None:
    code = (
        "import sys\n"
        "from eda_lesson import EventBus\n"
        "from eda_lesson.shop.events import OrderPaid\nfrom eda_lesson.shop.services import Shop\n"
        "from eda_lesson.views.flow import draw_flow\n"
        "from eda_lesson.views.sheet import figure_to_png\n"
        "bus = EventBus(); Shop().register(bus)\n"
        "figure_to_png(draw_flow(bus.dispatch(OrderPaid('o-1')), upto=2))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout.strip() == "False"


def test_png_rendering_leaves_the_global_text_settings_alone() -> None:
    before = dict(matplotlib.rcParams)
    figure_to_png(draw_flow(paid_cascade()))
    assert dict(matplotlib.rcParams) == before


def test_a_drawing_shows_itself_as_png_in_jupyter() -> None:
    from IPython.core.formatters import PNGFormatter

    figure = draw_flow(paid_cascade())
    assert isinstance(figure, NotebookFigure)
    assert PNGFormatter()(figure).startswith(PNG_SIGNATURE)
    assert repr(figure) == "<picture: dispatch of OrderPaid: 3 events, 5 handler calls>"


# ---------------------------------------------------------------------- draw_registrations


def audit(event: OrderEvent) -> None:
    pass


@dataclass(frozen=True)
class GiftWrapped:
    order_id: str


def test_registrations_are_drawn_with_a_box_per_type_and_handler() -> None:
    bus = EventBus()
    Shop().register(bus)
    bus.register(OrderEvent, audit)
    with no_warnings():
        figure = draw_registrations(bus, event_types=[GiftWrapped])
        figure_to_png(figure)
    drawn = artists(figure)
    assert face(drawn["event_type-OrderPaid"]) == to_rgba(INKS["event"].fill)
    assert face(drawn["handler-Shop.mark_paid"]) == to_rgba(INKS["call"].fill)
    assert face(drawn["event_type-GiftWrapped"]) == to_rgba(INKS["unhandled"].fill)
    assert drawn["event_type-GiftWrapped-label"].get_text() == "GiftWrapped\nno handler"
    arcs = [
        patch
        for patch in figure.axes[0].get_children()
        if isinstance(patch, FancyArrowPatch) and patch.get_linestyle() == "--"
    ]
    assert len(arcs) == 5  # every order event "is an" OrderEvent


def test_an_empty_bus_draws_an_empty_picture_with_its_title() -> None:
    with no_warnings():
        figure = draw_registrations(EventBus())
        figure_to_png(figure)
    assert "registrations: 0 handlers, 0 event types" in [
        t.get_text() for t in figure.axes[0].texts
    ]


def test_handlers_of_a_type_are_drawn_top_down_in_call_order() -> None:
    bus = EventBus()
    Shop().register(bus)
    drawn = artists(draw_registrations(bus))
    heights = [
        drawn[f"handler-Shop.{name}"].get_y()
        for name in ("mark_paid", "send_receipt", "request_shipment")
    ]
    assert heights == sorted(heights, reverse=True)


def _many_types(types: int, handlers_each: int) -> EventBus:
    """A bus with ``types`` event types Happened0, Happened1, ..., each heard by
    ``handlers_each`` handlers react_<type>_<n>, registered in that order."""
    from dataclasses import make_dataclass

    bus = EventBus()
    for number in range(types):
        event_type = make_dataclass(f"Happened{number}", [("order_id", str)], frozen=True)
        for n in range(handlers_each):

            def react(event: object) -> None:
                pass

            react.__qualname__ = react.__name__ = f"react_{number}_{n}"
            bus.register(event_type, react)
    return bus


def _left_out(figure: Figure) -> str:
    note = artists(figure).get("left-out")
    return "" if note is None else " ".join(note.get_text().split())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("types", "handlers_each", "drawn_types", "note"),
    [
        (60, 2, 7, "left out past 14 rows: 53 event types and 106 handlers"),
        (8, 2, 7, "left out past 14 rows: 1 event type and 2 handlers"),
        (1, 30, 1, "left out past 14 rows: 16 handlers"),
        (7, 2, 7, ""),
    ],
)
def test_registrations_of_a_large_bus_fit_a_page_and_say_what_they_left_out(
    types: int, handlers_each: int, drawn_types: int, note: str
) -> None:
    from eda_lesson.views.folding import PAGE

    with no_warnings():
        figure = draw_registrations(_many_types(types, handlers_each))
        figure_to_png(figure)
    width, height = figure.get_size_inches()
    assert width <= PAGE[0] and height <= PAGE[1]
    drawn = artists(figure)
    kept = [gid for gid in drawn if gid.startswith("event_type-") and not gid.endswith("label")]
    assert kept == [f"event_type-Happened{n}" for n in range(drawn_types)]  # the first, in order
    for number in range(drawn_types):  # a type drawn comes with its first handler
        assert f"handler-react_{number}_0" in drawn
    assert _left_out(figure) == (f"{note}; bus.describe() lists every registration" if note else "")
    total = types * handlers_each
    title = f"registrations: {total} handlers, {types} event type{'s' * (types != 1)}"
    assert title in [t.get_text() for t in figure.axes[0].texts]  # the title counts them all


# ---------------------------------------------------------------------- draw_timeline


def bars(figure: Figure) -> list[Rectangle]:
    return [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]


def test_timeline_without_a_clock_gives_each_step_one_slot() -> None:
    result = troubled_cascade()
    with no_warnings():
        figure = draw_timeline(result)
        figure_to_png(figure)
    drawn = bars(figure)
    assert [round(bar.get_x(), 2) for bar in drawn] == [0.05, 1.05, 2.05]
    assert face(drawn[1]) == to_rgba(INKS["failed"].fill)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert labels == ["1. mark_paid", "2. send_receipt", "3. request_shipment"]


def test_timeline_with_a_clock_draws_bars_at_the_recorded_times() -> None:
    bus = EventBus()
    Shop().register(bus)
    result = bus.dispatch(OrderPaid("o-1", 42.0))
    # What a bus that keeps time does: record (start, end) per call before the story is read.
    keys = [
        (index, subscription)
        for index, (_, plan) in enumerate(result.queue)
        for subscription, _ in plan
    ]
    spans = [(10.0, 10.5), (10.0, 10.2), (10.1, 10.3), (10.6, 11.0), (11.1, 11.2)]
    for key, (started, ended) in zip(keys, spans, strict=True):
        result.record_times(key, started, ended)
    with no_warnings():
        figure = draw_timeline(result)
        figure_to_png(figure)
    drawn = bars(figure)
    assert [(round(b.get_x(), 3), round(b.get_width(), 3)) for b in drawn] == [
        (0.0, 0.5),
        (0.0, 0.2),
        (0.1, 0.2),
        (0.6, 0.4),
        (1.1, 0.1),
    ]
    assert "bus clock" in figure.axes[0].get_xlabel()


def test_timeline_of_a_dispatch_nobody_handled_says_so() -> None:
    figure = draw_timeline(EventBus().dispatch(OrderPaid("o-1")))
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == ["no handler ran: #0 OrderPaid had none"]


# ---------------------------------------------------------------------- draw_series_map


def centre(artist: Any) -> tuple[float, float]:
    return (artist.get_x() + artist.get_width() / 2, artist.get_y() + artist.get_height() / 2)


def test_series_map_draws_every_chapter_in_the_lane_of_its_part() -> None:
    with no_warnings():
        figure = draw_series_map()
        figure_to_png(figure)
    drawn = artists(figure)
    for chapter in CHAPTERS:
        box = drawn[f"chapter-{chapter.number:02d}"]
        lane = drawn[f"part-{chapter.part}"]
        assert lane.get_x() < centre(box)[0] < lane.get_x() + lane.get_width(), chapter.title
    parts = list(dict.fromkeys(chapter.part for chapter in CHAPTERS))
    lefts = [drawn[f"part-{part}"].get_x() for part in parts]
    assert lefts == sorted(lefts), "parts go left to right in reading order"


def test_series_map_reads_down_a_lane_then_across_to_the_next_part() -> None:
    drawn = artists(draw_series_map())
    x0, y0 = centre(drawn["chapter-00"])
    x1, y1 = centre(drawn["chapter-01"])
    x3, y3 = centre(drawn["chapter-03"])
    x4, y4 = centre(drawn["chapter-04"])
    assert x0 == x1 and y1 < y0, "the next chapter of a part is below"
    assert x4 > x3 and y4 == y3, "a new part starts level with where the last one ended"


def test_series_map_outlines_the_first_chapter_as_the_place_to_start() -> None:
    figure = draw_series_map()
    drawn = artists(figure)
    assert edge(drawn["chapter-00"]) == to_rgba(INKS["current"].stroke)
    assert edge(drawn["chapter-01"]) == to_rgba(INKS["event"].stroke)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert SERIES_TITLE in texts
    assert {"chapter", "start here", "part", "reading order"} <= set(texts)


def test_series_map_joins_the_chapters_with_one_arrow_each_in_reading_order() -> None:
    figure = draw_series_map()
    arrows = [p for p in figure.axes[0].get_children() if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(CHAPTERS) - 1


def test_series_map_wraps_long_titles_inside_their_boxes() -> None:
    long = Chapter(1, "x", "A title far too long to sit on one line of a box", "s", "Part one")
    figure = draw_series_map([long, Chapter(2, "y", "Short", "s", "Part two")])
    renderer = FigureCanvasAgg(figure).get_renderer()
    drawn = artists(figure)
    label = drawn["chapter-01-label"]
    assert label.get_text().count("\n") == 1
    box = drawn["chapter-01"].get_window_extent(renderer)
    extent = label.get_window_extent(renderer)
    assert box.x0 < extent.x0 and extent.x1 < box.x1
    assert "the series: 2 chapters in 2 parts" in [t.get_text() for t in figure.axes[0].texts]


def test_series_map_is_the_same_picture_every_time() -> None:
    assert figure_to_png(draw_series_map()) == figure_to_png(draw_series_map())


def test_series_map_of_no_chapters_is_an_empty_map_with_its_title() -> None:
    with no_warnings():
        figure = draw_series_map(())
        figure_to_png(figure)
    assert "the series: 0 chapters in 0 parts" in [t.get_text() for t in figure.axes[0].texts]


def test_series_map_draws_into_a_given_axes() -> None:
    figure = Figure(figsize=(12, 6))
    ax = figure.add_subplot()
    with no_warnings():
        assert draw_series_map(ax=ax) is figure
        assert figure_to_png(figure).startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------------- draw_nested_vs_queue


class Audit:
    def record(self, event: OrderEvent) -> None:
        pass


def audited_bus() -> EventBus:
    """The shop, plus a handler on the base class that hears every order event last."""
    bus = EventBus()
    Shop().register(bus)
    bus.register(OrderEvent, Audit().record)
    return bus


def nested_calls(bus: EventBus, event: object) -> list[OrderedCall]:
    """What a bus that recurses into produced events would run, in order."""
    calls: list[OrderedCall] = []
    count = [0]

    def dispatch(event: object, depth: int) -> None:
        label = f"#{count[0]} {type(event).__name__}"
        count[0] += 1
        for handler in bus.handlers_for(event):
            calls.append(OrderedCall(label, handler_name(handler), depth))
            produced = handler(event)
            if produced is not None:
                dispatch(produced, depth + 1)

    dispatch(event, 0)
    return calls


def test_calls_in_order_lists_the_calls_breadth_first_with_their_event_and_depth() -> None:
    assert calls_in_order(paid_cascade()) == [
        OrderedCall("#0 OrderPaid", "Shop.mark_paid", 0),
        OrderedCall("#0 OrderPaid", "Shop.send_receipt", 0),
        OrderedCall("#0 OrderPaid", "Shop.request_shipment", 0),
        OrderedCall("#1 ShipmentRequested", "Shop.ship_order", 1),
        OrderedCall("#2 OrderShipped", "Shop.notify_shipped", 2),
    ]


def test_nested_and_queued_runs_are_drawn_side_by_side_numbered_by_when_they_ran() -> None:
    nested = nested_calls(audited_bus(), OrderPaid("o-1", 42.0))
    queued = audited_bus().dispatch(OrderPaid("o-1", 42.0))
    with no_warnings():
        figure = draw_nested_vs_queue(nested, queued)
        figure_to_png(figure)
    drawn = artists(figure)
    assert drawn["nested-call-4-label"].get_text() == "4. Shop.ship_order"
    assert drawn["queue-call-4-label"].get_text() == "4. Audit.record"
    assert drawn["nested-event-8-label"].get_text() == "#0 OrderPaid"
    # Deeper calls are indented; later calls are lower.
    assert drawn["nested-call-4"].get_x() > drawn["nested-call-3"].get_x()
    assert drawn["nested-call-8"].get_x() == drawn["nested-call-1"].get_x()
    assert drawn["queue-call-5"].get_y() < drawn["queue-call-4"].get_y()
    assert face(drawn["queue-call-1"]) == to_rgba(INKS["call"].fill)
    assert face(drawn["queue-event-1"]) == to_rgba(INKS["event"].fill)


def test_the_dispatched_events_bracket_stays_open_with_nested_calls_only() -> None:
    nested = nested_calls(audited_bus(), OrderPaid("o-1", 42.0))
    figure = draw_nested_vs_queue(nested, audited_bus().dispatch(OrderPaid("o-1", 42.0)))
    drawn = artists(figure)

    def rows_spanned(side: str) -> float:
        top, bottom = drawn[f"{side}-bracket-#0 OrderPaid"].get_ydata()
        pitch = drawn[f"{side}-call-1"].get_y() - drawn[f"{side}-call-2"].get_y()
        return round((top - bottom) / pitch)

    assert rows_spanned("nested") == 7  # from step 1 to step 8
    assert rows_spanned("queue") == 3  # from step 1 to step 4
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert "#0 OrderPaid handled at steps 1, 2, 3 and 8" in texts
    assert "#0 OrderPaid handled at steps 1, 2, 3 and 4" in texts


def test_the_same_runs_always_give_the_same_picture() -> None:
    def picture() -> bytes:
        nested = nested_calls(audited_bus(), OrderPaid("o-1", 42.0))
        return figure_to_png(
            draw_nested_vs_queue(nested, audited_bus().dispatch(OrderPaid("o-1", 42.0)))
        )

    assert picture() == picture()


def test_nested_calls_that_are_not_triples_are_refused_with_an_example() -> None:
    with pytest.raises(TypeError, match=r"\(event, handler, depth\).*got 'Shop.mark_paid'"):
        draw_nested_vs_queue(["Shop.mark_paid"], paid_cascade())  # type: ignore[list-item]


# ---------------------------------------------------------------------- draw_unit_of_work


def shop_store() -> tuple[InMemoryEventStore, EventBus]:
    store, bus = InMemoryEventStore(), EventBus()
    Shop().register(bus)
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        uow.commit()
    return store, bus


def label(drawn: dict[str, Artist], gid: str) -> str:
    return drawn[gid + "-label"].get_text()  # type: ignore[attr-defined,no-any-return]


def middle_x(artist: Any) -> float:
    return float(artist.get_x() + artist.get_width() / 2)


def test_a_command_is_drawn_in_the_lanes_of_aggregate_store_and_bus_in_order() -> None:
    store, bus = shop_store()
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get("o-1").pay()
        results = uow.commit()
    with no_warnings():
        figure = draw_unit_of_work(uow, results, command="order.pay()")
        figure_to_png(figure)
    drawn = artists(figure)
    assert [label(drawn, f"work-{row}").split("\n")[0] for row in range(1, 6)] == [
        "1. load",
        "command:",
        "2. save",
        "3. publish",
        "5 handler calls",
    ]
    assert label(drawn, "work-3") == "2. save\nOrderPaid to order-o-1,\nversion 1 -> 2"
    aggregate, store_lane, bus_lane = (middle_x(drawn[f"work-{row}"]) for row in (2, 3, 4))
    assert aggregate < store_lane < bus_lane
    assert middle_x(drawn["work-1"]) == store_lane and middle_x(drawn["work-5"]) == bus_lane
    heights = [drawn[f"work-{row}"].get_y() for row in range(1, 6)]
    assert heights == sorted(heights, reverse=True)
    assert face(drawn["work-3"]) == to_rgba(INKS["call"].fill)
    assert face(drawn["work-4"]) == to_rgba(INKS["event"].fill)
    # commit() spans the save, the publish and the handler calls.
    bar = drawn["commit"]
    assert bar.get_y() == pytest.approx(drawn["work-5"].get_y())
    top = drawn["work-3"].get_y() + drawn["work-3"].get_height()
    assert bar.get_y() + bar.get_height() == pytest.approx(top)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert "UnitOfWork: load → save → publish" in texts


def test_publishing_before_commit_is_drawn_with_the_handlers_above_the_conflict() -> None:
    store, bus = shop_store()
    clerk, customer = UnitOfWork(store, bus), PublishBeforeCommitUnitOfWork(store, bus)
    clerk.repository(Order).get("o-1").cancel("out of stock")
    customer.repository(Order).get("o-1").pay()
    clerk.commit()
    with pytest.raises(ConcurrencyError):
        customer.commit()
    drawn = artists(draw_unit_of_work(customer))
    assert label(drawn, "work-2") == "2. publish\nOrderPaid"
    assert label(drawn, "work-3") == (
        "heard by 3 handlers\nmark_paid, send_receipt,\nrequest_shipment"
    )
    assert label(drawn, "work-4") == "3. conflict\norder-o-1: ConcurrencyError"
    assert drawn["work-3"].get_y() > drawn["work-4"].get_y()
    assert face(drawn["work-4"]) == to_rgba(INKS["failed"].fill)


def test_a_refused_commit_publishes_nothing_and_shows_the_discard() -> None:
    store, bus = shop_store()
    clerk = UnitOfWork(store, bus)
    clerk.repository(Order).get("o-1").cancel("out of stock")
    with pytest.raises(ConcurrencyError), UnitOfWork(store, bus) as customer:
        customer.repository(Order).get("o-1").pay()
        clerk.commit()
        customer.commit()
    drawn = artists(draw_unit_of_work(customer))
    assert [label(drawn, f"work-{row}").split("\n")[0] for row in (1, 2, 3)] == [
        "1. load",
        "2. conflict",
        "3. discard",
    ]
    assert "work-4" not in drawn
    assert face(drawn["work-3"]) == to_rgba(INKS["pending"].fill)
    assert drawn["work-3"].get_linestyle() == "--"


def test_a_handler_failure_after_the_commit_colours_the_handler_calls_red() -> None:
    store, bus = shop_store()
    bus.register(OrderPaid, send_receipt)  # raises ConnectionError
    with UnitOfWork(store, bus) as uow:
        uow.repository(Order).get("o-1").pay()
        results = uow.commit()
    drawn = artists(draw_unit_of_work(uow, results))
    assert label(drawn, "work-4").startswith("6 handler calls, 1 failed\n")
    assert face(drawn["work-4"]) == to_rgba(INKS["failed"].fill)


def test_a_unit_of_work_that_did_nothing_says_so() -> None:
    with no_warnings():
        figure = draw_unit_of_work(UnitOfWork(InMemoryEventStore(), EventBus()))
        figure_to_png(figure)
    assert "UnitOfWork: nothing done yet" in [t.get_text() for t in figure.axes[0].texts]


# ---------------------------------------------------------------------- commands


@dataclass(frozen=True)
class PlaceOrder(Command):
    order_id: str


def place_order_handler(command: PlaceOrder) -> str:
    return "accepted"


def command_bus() -> EventBus:
    bus = EventBus()
    bus.register(PlaceOrder, place_order_handler)
    bus.register(OrderPaid, lambda event: None)
    bus.register(PlaceOrder, place_order_handler)  # a re-run cell: still one handler
    return bus


def test_a_command_has_its_own_shape_and_colour_in_the_flow_and_the_legend() -> None:
    result = command_bus().dispatch(PlaceOrder("o-1"))
    drawn = artists(draw_flow(result))
    command, call = drawn["event-0"], drawn["call-1"]
    assert to_rgba(command.get_edgecolor()) == to_rgba(INKS["command"].stroke)  # type: ignore[attr-defined]
    assert to_rgba(command.get_facecolor()) == to_rgba(INKS["command"].fill)  # type: ignore[attr-defined]
    corners = len(command.get_path().vertices)  # type: ignore[attr-defined]
    assert corners == 6 and len(call.get_path().vertices) > corners  # type: ignore[attr-defined]
    assert flow_graph(result).nodes[("event", 0)]["command"] is True


def test_event_drawings_without_commands_keep_their_legend() -> None:
    bus = EventBus()
    Shop().register(bus)
    figure = draw_flow(bus.dispatch(OrderPaid("o-1", 42.0)))
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "command" not in texts and "event" in texts
    with_commands = draw_flow(command_bus().dispatch(PlaceOrder("o-1")))
    assert "command" in [t.get_text() for t in with_commands.axes[0].texts]


def test_command_types_are_drawn_apart_from_event_types_in_the_registrations() -> None:
    drawn = artists(draw_registrations(command_bus()))
    place = drawn["event_type-PlaceOrder"]
    paid = drawn["event_type-OrderPaid"]
    assert to_rgba(place.get_edgecolor()) == to_rgba(INKS["command"].stroke)  # type: ignore[attr-defined]
    assert to_rgba(paid.get_edgecolor()) == to_rgba(INKS["event"].stroke)  # type: ignore[attr-defined]
    title = draw_registrations(command_bus()).axes[0].texts
    assert any("2 message types" in t.get_text() for t in title)
