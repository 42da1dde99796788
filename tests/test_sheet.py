"""The one drawing kit (eda_lesson.views.sheet, .raster): every picture says what it shows in
its text form, the same input gives the same PNG bytes, the PNG is what the canvas drew, and
text drawn from kept masks is as sharp as matplotlib's own."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib import rc_context
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from PIL import Image

from eda_lesson import EventBus
from eda_lesson.book.chapters import CHAPTERS
from eda_lesson.core.asyncbus import AsyncEventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import DeadLetterStore, RetryLog, dead_letters, exponential, retry
from eda_lesson.patterns.outbox import Outbox, OutboxUnitOfWork
from eda_lesson.patterns.store import InMemoryEventStore, SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import LineItem, OrderPaid
from eda_lesson.shop.fulfilment import ChoreographedFulfilment, OrchestratedFulfilment
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.read_models import OrdersByStatus
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import Delivery
from eda_lesson.views import broker, concurrency, failures, flow, history, sagas
from eda_lesson.views.flow import FlowPicture, OrderedCall, draw_flow
from eda_lesson.views.palette import COMMAND, FAILED
from eda_lesson.views.raster import PNG_SIGNATURE
from eda_lesson.views.sheet import Key, NotebookFigure, Sheet, figure_to_png

SERIES_TITLE = f"the series: {len(CHAPTERS)} chapters in {len({c.part for c in CHAPTERS})} parts"

pytestmark = pytest.mark.filterwarnings("error")


# ---------------------------------------------------------------------- one of each picture


def shop_bus() -> EventBus:
    bus = EventBus()
    Shop().register(bus)
    return bus


def paid() -> object:
    return shop_bus().dispatch(OrderPaid("o-1", 42.0))


def store() -> InMemoryEventStore:
    events = InMemoryEventStore()
    with UnitOfWork(events, EventBus()) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 42.0))
        uow.commit()
    with UnitOfWork(events, EventBus()) as uow:
        uow.repository(Order).get("o-1").pay()
        uow.commit()
    return events


def retried() -> tuple[RetryLog, DeadLetterStore]:
    clock, log = VirtualClock(), RetryLog()
    letters = DeadLetterStore(clock=clock)

    def charge(event: OrderPaid) -> None:
        clock.advance(0.2)
        raise TimeoutError("bank busy")

    bus = EventBus()
    policy = retry(2, backoff=exponential(), retry_on=TimeoutError, clock=clock, log=log)
    bus.register(OrderPaid, charge, middleware=[dead_letters(letters), policy])
    bus.dispatch(OrderPaid("o-1", 1.0))
    return log, letters


def timed() -> object:
    bus = AsyncEventBus(concurrency="concurrent")

    async def wait(event: object) -> None:
        await asyncio.sleep(0.3)

    bus.register(OrderPaid, wait)
    return VirtualClock().run(bus.dispatch(OrderPaid("o-1", 1.0)))


def queue() -> object:
    bus = AsyncEventBus()

    async def wait(event: object) -> None:
        await asyncio.sleep(1.0)

    bus.register(OrderPaid, wait)

    async def publish() -> object:
        async with bus.queue(maxsize=1) as q:
            for n in range(3):
                await q.publish(OrderPaid(f"o-{n}", 1.0))
        return q

    return VirtualClock().run(publish())


def saga_run(kind: type) -> object:
    return kind(stock={"book": 2}).place_order("o-1", "c-7", [LineItem("book", 1)], 12.0)


def outbox(tmp_path: Path) -> Outbox:
    events = SQLiteEventStore(tmp_path / "outbox.db", order_registry())
    box = Outbox(events, id_prefix="evt-")
    with OutboxUnitOfWork(events, box) as uow:
        uow.repository(Order).add(Order.create("o-1", "c-7", 12.0))
        uow.commit()
    return box


def projected() -> OrdersByStatus:
    model = OrdersByStatus()
    model.catch_up(store())
    return model


DRAWINGS: dict[str, Callable[[Path], Figure]] = {
    "flow.draw_flow": lambda _: flow.draw_flow(paid(), upto=2),
    "flow.draw_registrations": lambda _: flow.draw_registrations(shop_bus()),
    "flow.draw_timeline": lambda _: flow.draw_timeline(paid()),
    "flow.draw_nested_vs_queue": lambda _: flow.draw_nested_vs_queue(
        [OrderedCall("#0 OrderPaid", "Shop.mark_paid", 0)], paid()
    ),
    "flow.draw_unit_of_work": lambda _: flow.draw_unit_of_work(UnitOfWork(store(), EventBus())),
    "flow.draw_series_map": lambda _: flow.draw_series_map(),
    "failures.draw_attempts": lambda _: failures.draw_attempts(retried()[0]),
    "failures.draw_dead_letters": lambda _: failures.draw_dead_letters(retried()[1]),
    "concurrency.draw_timelines": lambda _: concurrency.draw_timelines({"concurrent": timed()}),
    "concurrency.draw_backpressure": lambda _: concurrency.draw_backpressure(queue()),
    "history.draw_fold": lambda _: history.draw_fold(store().read("order-o-1"), upto=1),
    "history.draw_event_log": lambda _: history.draw_event_log(store()),
    "history.draw_projection": lambda _: history.draw_projection(store(), OrdersByStatus),
    "history.draw_cqrs": lambda _: history.draw_cqrs(store(), [projected()]),
    "sagas.draw_state_machine": lambda _: sagas.draw_state_machine(),
    "sagas.draw_saga_run": lambda _: sagas.draw_saga_run(saga_run(OrchestratedFulfilment), upto=3),
    "sagas.draw_saga_comparison": lambda _: sagas.draw_saga_comparison(
        saga_run(OrchestratedFulfilment), saga_run(ChoreographedFulfilment)
    ),
    "broker.draw_deliveries": lambda _: broker.draw_deliveries(
        [Delivery("evt-1", "OrderPaid", "w1", 1, "handled")]
    ),
    "broker.draw_outbox": lambda tmp: broker.draw_outbox(outbox(tmp)),
    "broker.draw_dual_write": lambda _: broker.draw_dual_write(
        {"did nothing": UnitOfWork(InMemoryEventStore(), EventBus())}
    ),
}


#: What each drawing's text form says, for the inputs above.
DESCRIPTIONS = {
    "flow.draw_flow": "step 2 of 5: Shop.send_receipt handles #0 OrderPaid",
    "flow.draw_registrations": "registrations: 11 handlers, 5 event types",
    "flow.draw_timeline": "timeline of the OrderPaid dispatch: 5 handler calls",
    "flow.draw_nested_vs_queue": "one cascade, two orders: 5 handler calls",
    "flow.draw_unit_of_work": "UnitOfWork: nothing done yet",
    "flow.draw_series_map": SERIES_TITLE,
    "failures.draw_attempts": "attempts on the clock: 2 attempts, 1 handler call",
    "failures.draw_dead_letters": "dead-letter store: 1 letter waiting",
    "concurrency.draw_timelines": "the same work on one time axis: concurrent 0.3 s",
    "concurrency.draw_backpressure": "queue maxsize=1, 1 worker: publisher held back 1 s in all",
    "history.draw_fold": "Order state as a left fold of its events: version 1 of 2",
    "history.draw_event_log": "the event log: 2 events in 1 stream, in one global order",
    "history.draw_projection": "OrdersByStatus built from zero: 2 events of 2 read",
    "history.draw_cqrs": (
        "CQRS: one side decides and records events, the other reads them into models"
    ),
    "sagas.draw_state_machine": "the order fulfilment state machine: 8 states, 8 transitions",
    "sagas.draw_saga_run": "OrderCreated and what followed: 7 steps, after step 3",
    "sagas.draw_saga_comparison": (
        "orchestration: a process manager sends commands (7 steps) | "
        "choreography: participants react to events (3 steps)"
    ),
    "broker.draw_deliveries": "1 delivery of 1 event to 1 consumer: 1 handled",
    "broker.draw_outbox": "outbox: 0 sent, 1 waiting",
    "broker.draw_dual_write": "1 commit: 0 left the store and the world disagreeing",
}


def test_every_drawing_function_of_the_views_is_checked_here() -> None:
    found = {
        f"{module.__name__.rsplit('.', 1)[1]}.{name}"
        for module in (flow, failures, concurrency, history, sagas, broker)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("draw_") and function.__module__ == module.__name__
    }
    assert found == set(DRAWINGS) == set(DESCRIPTIONS)


@pytest.mark.parametrize("name", sorted(DRAWINGS))
def test_every_picture_says_what_it_shows_in_its_text_form(name: str, tmp_path: Path) -> None:
    figure = DRAWINGS[name](tmp_path)
    assert isinstance(figure, NotebookFigure)
    assert repr(figure) == f"<picture: {DESCRIPTIONS[name]}>"
    assert figure._repr_png_().startswith(PNG_SIGNATURE)


def test_a_figure_without_a_description_keeps_matplotlibs_text_form() -> None:
    assert repr(NotebookFigure(figsize=(2, 1))).startswith("<NotebookFigure size 200x100")


# ---------------------------------------------------------------------- the PNG


def chunks(png: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order."""
    assert png.startswith(PNG_SIGNATURE)
    found, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        data = png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        found.append(kind)
        at += 12 + length
    return found


@pytest.mark.parametrize("name", ["flow.draw_flow", "history.draw_fold", "failures.draw_attempts"])
def test_the_same_input_always_gives_the_same_png_bytes_with_no_metadata(
    name: str, tmp_path: Path
) -> None:
    first = DRAWINGS[name](tmp_path)
    again = DRAWINGS[name](tmp_path)
    assert figure_to_png(first) == figure_to_png(again) == figure_to_png(first)
    assert first._repr_png_() == again._repr_png_()
    # No date (tIME), no software version (tEXt): only what PNG requires.
    assert chunks(figure_to_png(first)) == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks(first._repr_png_()) == [b"IHDR", b"IDAT", b"IEND"]


def test_a_picture_gives_the_same_bytes_whatever_was_drawn_before_it(tmp_path: Path) -> None:
    """Text masks are kept between pictures; the bytes must not depend on which picture
    filled them, so a fresh process draws the very same PNG."""
    # A comparison of two runs whose payment failed puts the run's labels at nearly the same
    # sub-pixel places: a mask kept for one of them must not stand in for the other.
    declined = []
    for kind in (OrchestratedFulfilment, ChoreographedFulfilment):
        shop = kind(stock={"book": 2})
        shop.payments.declined.add("o-1")
        declined.append(shop.place_order("o-1", "c-7", [LineItem("book", 1)], 12.0))
    figure_to_png(sagas.draw_saga_comparison(*declined))
    here = hashlib.sha256(figure_to_png(DRAWINGS["sagas.draw_saga_run"](tmp_path))).hexdigest()
    code = (
        "import hashlib\n"
        "from eda_lesson.shop.fulfilment import OrchestratedFulfilment\n"
        "from eda_lesson.shop.events import LineItem\n"
        "from eda_lesson.views.sagas import draw_saga_run\n"
        "from eda_lesson.views.sheet import figure_to_png\n"
        "run = OrchestratedFulfilment(stock={'book': 2}).place_order("
        "'o-1', 'c-7', [LineItem('book', 1)], 12.0)\n"
        "print(hashlib.sha256(figure_to_png(draw_saga_run(run, upto=3))).hexdigest())\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert fresh.stdout.strip() == here


def stock_pixels(figure: Figure) -> np.ndarray:
    """The figure as matplotlib's own Agg canvas draws it, with the same text setting."""
    canvas = FigureCanvasAgg(figure)
    with rc_context({"text.hinting": "no_hinting"}):
        canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def decoded(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_the_png_holds_exactly_the_pixels_the_canvas_drew() -> None:
    figure = draw_flow(paid(), upto=3)
    png = figure_to_png(figure)
    assert np.array_equal(decoded(png), np.asarray(figure.canvas.buffer_rgba()))


@pytest.mark.parametrize("name", ["flow.draw_flow", "sagas.draw_saga_run", "history.draw_cqrs"])
def test_text_from_kept_masks_is_as_sharp_as_matplotlibs_own(name: str, tmp_path: Path) -> None:
    """Every pixel is within two levels (of 255) of what matplotlib draws glyph by glyph, and
    hardly any differs at all: blending a whole line at once rounds a little differently."""
    ours = decoded(figure_to_png(DRAWINGS[name](tmp_path))).astype(int)
    theirs = stock_pixels(DRAWINGS[name](tmp_path)).astype(int)
    assert ours.shape == theirs.shape
    difference = np.abs(ours - theirs).max(axis=2)
    assert difference.max() <= 2
    assert np.count_nonzero(difference) < 0.002 * difference.size


def test_rendering_a_figure_of_yours_gives_its_canvas_back() -> None:
    figure = Figure(figsize=(3, 2))
    canvas = figure.canvas
    assert isinstance(canvas, FigureCanvasBase)
    sheet = Sheet.new(3, 2, figure.add_subplot())
    sheet.text(1.5, 1, "mine")
    assert figure_to_png(figure).startswith(PNG_SIGNATURE)
    assert figure.canvas is canvas


def test_a_larger_dpi_gives_a_larger_picture_and_leaves_the_figure_alone() -> None:
    figure = draw_flow(paid())
    dpi = figure.dpi
    small, large = decoded(figure_to_png(figure)), decoded(figure_to_png(figure, dpi=200))
    assert large.shape[0] == 2 * small.shape[0] and figure.dpi == dpi


# ---------------------------------------------------------------------- a picture kept for steps


def test_a_flow_picture_shown_at_any_step_is_the_picture_draw_flow_draws() -> None:
    result = paid()
    picture = FlowPicture(result)
    for step in (3, 0, 5, 1, 4, 2, 3):
        shown = figure_to_png(picture.show(step).figure)
        assert shown == figure_to_png(draw_flow(result, upto=step)), step
        assert repr(picture.figure) == repr(draw_flow(result, upto=step))
    whole = FlowPicture(result, stepping=False).show()
    assert figure_to_png(whole.figure) == figure_to_png(draw_flow(result))


# ---------------------------------------------------------------------- legends


def test_a_legend_swatch_has_the_shape_and_hatching_of_its_ink() -> None:
    sheet = Sheet.new(6, 1)
    sheet.legend([Key("command", COMMAND), Key("failed call", FAILED)])
    assert sheet.ax is not None
    command, failed = (a for a in sheet.ax.get_children() if isinstance(a, FancyBboxPatch))
    assert len(command.get_path().vertices) == 6  # the arrow outline
    assert failed.get_hatch() == FAILED.hatch and failed.get_linestyle() == "--"
    assert {t.get_text() for t in sheet.ax.texts} == {"command", "failed call"}


def test_the_legend_needs_rows_for_keys_that_do_not_fit_one() -> None:
    keys = [Key(f"key number {n}", COMMAND) for n in range(6)]
    assert Sheet.legend_height(keys, 12.0, per_row=6) < Sheet.legend_height(keys, 4.0, per_row=6)
