"""Pictures of handlers in time (eda_lesson.views.concurrency): sequential and concurrent runs on
one axis, backpressure, and the concurrency lab; drawn headless from real async dispatches
on virtual clocks, with warnings as errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from eda_lesson import DispatchResult, EventBus
from eda_lesson.core.asyncbus import AsyncEventBus, Concurrency, EventQueue
from eda_lesson.core.clock import VirtualClock
from eda_lesson.shop.events import OrderPaid
from eda_lesson.views.concurrency import (
    ConcurrencyLab,
    draw_backpressure,
    draw_timelines,
    finish_time,
)
from eda_lesson.views.sheet import figure_to_png

pytestmark = pytest.mark.filterwarnings("error")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Paid:
    order_id: str


def waiting(name: str, seconds: float) -> Any:
    async def handle(event: object) -> None:
        await asyncio.sleep(seconds)

    handle.__qualname__ = name
    return handle


def paid_bus(mode: Concurrency) -> AsyncEventBus:
    bus = AsyncEventBus(concurrency=mode)
    bus.register(Paid, waiting("charge_card", 0.3))
    bus.register(Paid, waiting("send_receipt", 0.2))
    return bus


def dispatch(mode: Concurrency, *order_ids: str) -> list[DispatchResult]:
    bus = paid_bus(mode)

    async def one_after_another() -> list[DispatchResult]:
        return [await bus.dispatch(Paid(order_id)) for order_id in order_ids]

    return VirtualClock().run(one_after_another())


def by_gid(figure: Figure) -> dict[str, Any]:
    return {a.get_gid(): a for a in figure.findobj(lambda a: a.get_gid() is not None)}


def texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def span(artist: Any) -> tuple[float, float]:
    return (round(artist.get_x(), 9), round(artist.get_x() + artist.get_width(), 9))


# ---------------------------------------------------------------------- draw_timelines


def test_sequential_and_concurrent_runs_share_one_time_axis() -> None:
    (sequential,) = dispatch("sequential", "o-1")
    (concurrent,) = dispatch("concurrent", "o-1")
    figure = draw_timelines({"sequential": sequential, "concurrent": concurrent})
    bars = [span(a) for gid, a in by_gid(figure).items() if gid.startswith("bar-")]
    assert sorted(bars) == [(0.0, 0.2), (0.0, 0.3), (0.0, 0.3), (0.3, 0.5)]
    words = texts(figure)
    assert "sequential: all done at 0.5 s" in words
    assert "concurrent: all done at 0.3 s" in words
    assert figure.axes[0].get_title() == (
        "the same work on one time axis: sequential 0.5 s, concurrent 0.3 s"
    )
    assert len(figure.axes) == 1
    assert figure_to_png(figure).startswith(PNG_SIGNATURE)


def test_several_events_per_group_are_labelled_by_event() -> None:
    results = dispatch("sequential", "o-1", "o-2")
    assert finish_time(results) == 1.0
    figure = draw_timelines({"two payments": results})
    assert {"Paid o-1", "Paid o-2"} <= set(texts(figure))
    assert "two payments: all done at 1 s" in texts(figure)


def test_each_group_is_timed_from_its_own_first_call() -> None:
    clock, bus = VirtualClock(start=10.0), paid_bus("concurrent")
    late = clock.run(bus.dispatch(Paid("o-1")))
    assert finish_time(late) == 0.3
    (early,) = dispatch("sequential", "o-1")
    figure = draw_timelines({"late": late, "early": early})
    assert "late: all done at 0.3 s" in texts(figure)


def test_timelines_need_timed_results() -> None:
    bus = EventBus()
    bus.register(Paid, lambda event: None)
    with pytest.raises(ValueError, match="dispatch on an AsyncEventBus"):
        draw_timelines({"core bus": bus.dispatch(Paid("o-1"))})
    with pytest.raises(TypeError, match="dict of name -> dispatch result"):
        draw_timelines([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a dispatch result or a list of them"):
        draw_timelines({"oops": "result"})  # type: ignore[dict-item]


def test_a_failed_call_is_drawn_red_and_named() -> None:
    bus = AsyncEventBus()

    async def charge_card(event: Paid) -> None:
        await asyncio.sleep(0.2)
        raise ConnectionError("bank unreachable")

    bus.register(Paid, charge_card)
    result = VirtualClock().run(bus.dispatch(Paid("o-1")))
    figure = draw_timelines({"failing": result})
    assert "Paid · failed" in texts(figure)


def test_timelines_draw_into_a_given_axes() -> None:
    (sequential,) = dispatch("sequential", "o-1")
    figure = Figure(figsize=(6, 3))
    ax = figure.add_subplot()
    assert draw_timelines({"s": sequential}, ax=ax, title="mine") is figure
    assert ax.get_title() == "mine"


# ---------------------------------------------------------------------- backpressure


def burst(maxsize: int) -> EventQueue:
    bus = AsyncEventBus()
    bus.register(Paid, waiting("charge_card", 1.0))

    async def publish_four() -> EventQueue:
        async with bus.queue(maxsize=maxsize) as queue:
            for n in range(4):
                await queue.publish(Paid(f"o-{n}"))
        return queue

    return VirtualClock().run(publish_four())


def test_backpressure_shows_the_publisher_held_back_and_events_waiting() -> None:
    queue = burst(maxsize=1)
    assert [p.waited for p in queue.published] == [0.0, 0.0, 1.0, 1.0]
    artists = by_gid(burst_figure := draw_backpressure(queue))
    assert span(artists["held-2"]) == (0.0, 1.0) and span(artists["held-3"]) == (1.0, 2.0)
    assert span(artists["queued-1"]) == (0.0, 1.0)
    assert [span(artists[f"handled-{n}"]) for n in range(4)] == [
        (0.0, 1.0),
        (1.0, 2.0),
        (2.0, 3.0),
        (3.0, 4.0),
    ]
    assert "held-0" not in artists  # nobody waited for the first one
    assert burst_figure.axes[0].get_title() == (
        "queue maxsize=1, 1 worker: publisher held back 2 s in all"
    )


def test_an_unbounded_queue_never_holds_the_publisher_back() -> None:
    figure = draw_backpressure(burst(maxsize=0))
    assert not any(gid.startswith("held-") for gid in by_gid(figure))
    assert figure.axes[0].get_title().startswith("queue unbounded, 1 worker")
    with pytest.raises(TypeError, match="takes an EventQueue"):
        draw_backpressure([])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the concurrency lab


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def test_the_lab_runs_both_modes_and_concurrent_finishes_sooner() -> None:
    lab = ConcurrencyLab()
    assert lab.finish_times == {"sequential": 0.85, "concurrent": 0.55}
    assert repr(lab) == (
        "ConcurrencyLab: 4 handlers; sequential done at 0.85 s, concurrent done at 0.55 s"
    )
    concurrent = lab.results["concurrent"]
    assert [(c.name, c.started, c.ended) for c in concurrent.calls] == [
        ("charge_card", 0.0, 0.3),
        ("send_receipt", 0.0, 0.2),
        ("request_shipment", 0.0, 0.1),
        ("ship_order", 0.3, 0.55),  # the cascade waits for every handler of OrderPaid
    ]
    assert [r.type_name for r in concurrent.events] == ["OrderPaid", "ShipmentRequested"]
    assert concurrent.event == OrderPaid("o-1", 42.0)


def test_a_longer_wait_moves_the_finish_of_both_modes() -> None:
    lab = ConcurrencyLab()
    lab.set_latency("send_receipt", 0.5)
    assert lab.finish_times == {"sequential": 1.15, "concurrent": 0.75}


def test_a_handler_that_blocks_the_loop_holds_up_the_others() -> None:
    lab = ConcurrencyLab({"send_receipt": 0.5})
    lab.set_blocking("send_receipt")
    concurrent = lab.results["concurrent"]
    spans = {c.name: (c.started, c.ended) for c in concurrent.calls}
    assert spans["request_shipment"] == (0.5, 0.6)  # it could not even start before
    assert spans["charge_card"] == (0.0, 0.5)  # its answer came at 0.3, noticed at 0.5
    assert lab.finish_times == {"sequential": 1.15, "concurrent": 0.85}
    assert repr(lab).endswith("(send_receipt blocks the loop)")
    lab.set_blocking("send_receipt", False)
    assert lab.finish_times["concurrent"] == 0.75


def test_moving_a_slider_reruns_and_redraws() -> None:
    lab = ConcurrencyLab()
    image = next(w for w in walk(lab.widget) if isinstance(w, widgets.Image))
    before = bytes(image.value)
    slider = next(
        w
        for w in walk(lab.widget)
        if isinstance(w, widgets.FloatSlider) and w.description == "ship_order"
    )
    slider.value = 1.0
    assert lab.finish_times == {"sequential": 1.6, "concurrent": 1.3}
    assert bytes(image.value) != before and bytes(image.value).startswith(PNG_SIGNATURE)
    label = next(w for w in walk(lab.widget) if isinstance(w, widgets.Label))
    assert label.value == "sequential done at 1.6 s, concurrent done at 1.3 s"
    box = next(w for w in walk(lab.widget) if isinstance(w, widgets.Checkbox))
    box.value = True  # charge_card blocks
    assert "charge_card" in lab.blocking


def test_the_python_api_moves_the_controls() -> None:
    lab = ConcurrencyLab()
    lab.set_latency("charge_card", 0.6)
    slider = next(
        w
        for w in walk(lab.widget)
        if isinstance(w, widgets.FloatSlider) and w.description == "charge_card"
    )
    assert slider.value == 0.6
    assert not any(isinstance(w, widgets.Output) for w in walk(lab.widget))
    assert lab._repr_mimebundle_()["text/plain"] == repr(lab)


def test_the_lab_refuses_unknown_handlers_and_odd_latencies() -> None:
    lab = ConcurrencyLab()
    with pytest.raises(ValueError, match="no handler 'mark_paid'; it has charge_card"):
        lab.set_latency("mark_paid", 0.1)
    with pytest.raises(ValueError, match="between 0 and 2 s"):
        lab.set_latency("charge_card", 5)
    with pytest.raises(TypeError, match="number of seconds"):
        lab.set_latency("charge_card", "slow")  # type: ignore[arg-type]
