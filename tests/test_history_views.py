"""Pictures of event-sourced history and the time-travel explorer (eda_lesson.views.history),
drawn headless from real stores, real aggregates and real projections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from eda_lesson import EventBus
from eda_lesson.patterns.store import EventStore, InMemoryEventStore, SQLiteEventStore
from eda_lesson.patterns.unit_of_work import UnitOfWork
from eda_lesson.shop.events import LineItem, OrderCancelled, OrderCreated, OrderPaid, OrderShipped
from eda_lesson.shop.fulfilment import FulfilmentSaga, OrchestratedFulfilment
from eda_lesson.shop.order import Order, order_registry
from eda_lesson.shop.read_models import OrdersByStatus, RevenuePerCustomer
from eda_lesson.views.history import (
    HistoryExplorer,
    draw_cqrs,
    draw_event_log,
    draw_fold,
    draw_projection,
    event_fields,
    state_of,
)
from eda_lesson.views.palette import INKS
from eda_lesson.views.sheet import figure_to_png

pytestmark = pytest.mark.filterwarnings("error")

PNG = b"\x89PNG\r\n\x1a\n"
LIFE = [
    OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 2),)),
    OrderPaid("o-1", 42.0),
    OrderShipped("o-1", "TRACK-1"),
]


def fill(store: EventStore) -> EventStore:
    """Two orders through real units of work: o-1 paid and shipped, o-2 cancelled."""
    bus = EventBus()

    def run(order_id: str, command: Any = None, new: Order | None = None) -> None:
        with UnitOfWork(store, bus) as uow:
            if new is not None:
                uow.repository(Order).add(new)
            else:
                command(uow.repository(Order).get(order_id))
            uow.commit()

    run("o-1", new=Order.create("o-1", "c-7", 42.0))
    run("o-2", new=Order.create("o-2", "c-9", 15.0))
    run("o-1", lambda order: order.pay())
    run("o-2", lambda order: order.cancel("changed my mind"))
    run("o-1", lambda order: order.ship("TRACK-1"))
    return store


@pytest.fixture
def store() -> EventStore:
    return fill(InMemoryEventStore())


def artist(figure: Figure, gid: str) -> Any:
    found = [a for a in figure.findobj() if a.get_gid() == gid]
    assert len(found) == 1, (gid, found)
    return found[0]


def texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text)]


def face(patch: FancyBboxPatch) -> tuple[float, ...]:
    return tuple(patch.get_facecolor())


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


# ---------------------------------------------------------------------- the fold


def test_the_fold_lights_the_version_asked_for_and_fades_the_later_ones() -> None:
    figure = draw_fold(LIFE, upto=2)
    assert face(artist(figure, "state-v2")) == to_rgba(INKS["current"].fill)
    assert face(artist(figure, "state-v3")) == to_rgba(INKS["pending"].fill)
    assert face(artist(figure, "state-v1")) == to_rgba("#ffffff")
    assert face(artist(figure, "event-v2")) == to_rgba(INKS["event"].fill)
    assert face(artist(figure, "event-v3")) == to_rgba(INKS["pending"].fill)
    assert repr(figure) == "<picture: Order state as a left fold of its events: version 2 of 3>"
    assert figure._repr_png_().startswith(PNG)  # what a notebook shows and saves


def test_each_state_box_says_its_version_status_and_what_the_event_changed() -> None:
    figure = draw_fold(LIFE)
    assert artist(figure, "state-v0-label").get_text().startswith("v0  new")
    assert artist(figure, "state-v2-label").get_text() == "v2  paid\namount_paid: 42"
    assert artist(figure, "state-v3-label").get_text() == "v3  shipped\ntracking_code: TRACK-1"
    named = draw_fold(LIFE, fields=["total"])
    assert artist(named, "state-v3-label").get_text() == "v3  shipped\ntotal: 42"


def test_the_fold_reads_stored_events_as_well_as_bare_ones(store: EventStore) -> None:
    from_store = figure_to_png(draw_fold(store.read("order-o-1")))
    bare = figure_to_png(draw_fold([stored.event for stored in store.read("order-o-1")]))
    assert from_store == bare
    assert from_store.startswith(PNG)


def test_a_version_outside_the_history_is_refused_with_the_range() -> None:
    with pytest.raises(ValueError, match=r"it has 3 events, so choose a whole number from 0"):
        draw_fold(LIFE, upto=4)
    with pytest.raises(ValueError, match="version True"):
        draw_fold(LIFE, upto=True)


def test_the_fold_needs_an_aggregate_class() -> None:
    with pytest.raises(TypeError, match="an Aggregate class such as Order"):
        draw_fold(LIFE, dict)  # type: ignore[arg-type]


def test_the_same_history_always_gives_the_same_picture() -> None:
    assert figure_to_png(draw_fold(LIFE, upto=1)) == figure_to_png(draw_fold(LIFE, upto=1))


# ---------------------------------------------------------------------- the event log


def test_the_log_has_a_column_per_stream_and_a_row_per_global_position(
    store: EventStore,
) -> None:
    figure = draw_event_log(store)
    centre = {
        p: artist(figure, f"log-{p}").get_x() + artist(figure, f"log-{p}").get_width() / 2
        for p in range(1, 6)
    }
    assert centre[1] == centre[3] == centre[5] != centre[2] == centre[4]  # o-1 | o-2
    heights = [artist(figure, f"log-{p}").get_y() for p in range(1, 6)]
    assert heights == sorted(heights, reverse=True)  # position 1 at the top
    assert artist(figure, "log-3-label").get_text() == "v2 OrderPaid"
    assert {"order-o-1", "order-o-2"} <= set(texts(figure))


def test_the_log_fades_what_a_reader_has_not_read_yet(store: EventStore) -> None:
    figure = draw_event_log(store, upto=3)
    assert face(artist(figure, "log-3")) == to_rgba(INKS["event"].fill)
    assert face(artist(figure, "log-4")) == to_rgba(INKS["pending"].fill)
    assert "read up to position 3" in texts(figure)


def test_sqlite_and_memory_stores_draw_the_same_log(tmp_path: Path) -> None:
    with SQLiteEventStore(tmp_path / "shop.db", order_registry()) as sqlite:
        from_file = figure_to_png(draw_event_log(fill(sqlite)))
    assert from_file == figure_to_png(draw_event_log(fill(InMemoryEventStore())))


def test_the_log_refuses_what_is_not_a_stored_event() -> None:
    with pytest.raises(TypeError, match=r"StoredEvents \(what store.read\(\) and"):
        draw_event_log(LIFE)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- projections


def test_a_projection_drawn_to_the_end_shows_the_caught_up_read_model(store: EventStore) -> None:
    live = OrdersByStatus()
    live.catch_up(store)
    figure = draw_projection(store, OrdersByStatus)
    entries = [artist(figure, f"entry-{n}").get_text() for n in range(len(live.status))]
    assert entries == [f"{order}: {status}" for order, status in live.status.items()]
    assert repr(figure) == "<picture: OrdersByStatus built from zero: 5 events of 5 read>"


def test_a_projection_stopped_half_way_lights_what_the_last_event_changed(
    store: EventStore,
) -> None:
    figure = draw_projection(store, OrdersByStatus, upto=4)
    assert artist(figure, "entry-1").get_text() == "o-2: cancelled"
    assert artist(figure, "entry-1").get_color() == INKS["current"].stroke
    assert artist(figure, "entry-0").get_color() != INKS["current"].stroke
    assert face(artist(figure, "projected-4")) == to_rgba(INKS["current"].fill)
    assert face(artist(figure, "projected-5")) == to_rgba(INKS["pending"].fill)


def test_events_a_projection_ignores_are_marked_as_read_but_ignored(store: EventStore) -> None:
    figure = draw_projection(store, RevenuePerCustomer)
    ignored = artist(figure, "projected-4")  # o-2 cancelled before any payment: no refund
    assert face(ignored) == to_rgba("#ffffff")
    assert face(artist(figure, "projected-3")) == to_rgba(INKS["event"].fill)
    assert "2 ignored" in repr(figure)


def test_drawing_a_projection_needs_its_class_and_leaves_yours_alone(store: EventStore) -> None:
    mine = OrdersByStatus()
    with pytest.raises(TypeError, match="takes a Projection class"):
        draw_projection(store, mine)  # type: ignore[arg-type]
    draw_projection(store, OrdersByStatus)
    assert mine.position == 0 and mine.status == {}


def test_cqrs_is_drawn_with_the_real_numbers(store: EventStore) -> None:
    by_status = OrdersByStatus()
    by_status.catch_up(store)
    figure = draw_cqrs(store, [by_status, RevenuePerCustomer()], command="pay o-1")
    words = texts(figure)
    assert "event store\n5 events\n2 streams" in words
    assert "OrdersByStatus\nat position 5" in words
    assert "RevenuePerCustomer\nat position 0" in words
    assert "command\npay o-1" in words
    with pytest.raises(TypeError, match="draws Projection objects"):
        draw_cqrs(store, [OrdersByStatus])  # type: ignore[list-item]


# ---------------------------------------------------------------------- plain values


def test_state_of_reads_state_or_public_attributes() -> None:
    assert state_of(Order.from_events(LIFE))["status"] == "shipped"
    saga_state = state_of(FulfilmentSaga())
    assert saga_state["state"] == "new" and "pending" not in saga_state
    assert event_fields(LIFE[1]) == {"order_id": "o-1", "amount": 42.0}


# ---------------------------------------------------------------------- the explorer


@pytest.fixture
def explorer() -> HistoryExplorer:
    history = [*LIFE[:2], OrderCancelled("o-1", "out of stock")]
    return HistoryExplorer(history)


def image(explorer: HistoryExplorer) -> bytes:
    return bytes(next(w for w in walk(explorer.widget) if isinstance(w, widgets.Image)).value)


def html_tables(explorer: HistoryExplorer) -> list[str]:
    return [str(w.value) for w in walk(explorer.widget) if isinstance(w, widgets.HTML)]


def test_the_explorer_opens_at_the_latest_version(explorer: HistoryExplorer) -> None:
    assert explorer.version == explorer.versions == 3
    assert repr(explorer) == "HistoryExplorer: order-o-1, version 3 of 3 (OrderCancelled)"
    assert explorer.state["status"] == "cancelled"


def test_stepping_back_shows_the_state_then_and_the_event_that_made_it(
    explorer: HistoryExplorer,
) -> None:
    latest = image(explorer)
    explorer.step_to(2)
    assert explorer.state == Order.from_events(LIFE[:2]).state()
    assert explorer.event == LIFE[1]
    assert explorer.changed == ["version", "status", "amount_paid"]
    assert explorer.caption() == "version 2 of 3: OrderPaid made it paid"
    assert image(explorer) != latest
    event_table, state_table = html_tables(explorer)
    assert "event 2: OrderPaid" in event_table and "amount" in event_table
    lit = [row for row in state_table.splitlines() if "font-weight:bold" in row]
    assert len(lit) == 3 and any("amount_paid" in row for row in lit)


def test_version_zero_is_the_blank_aggregate(explorer: HistoryExplorer) -> None:
    explorer.step_to(0)
    assert explorer.event is None and explorer.changed == []
    assert explorer.state == Order().state()
    assert explorer.aggregate.version == 0
    assert repr(explorer).endswith("version 0 of 3 (before any event)")
    assert "no event yet" in html_tables(explorer)[0]


def test_the_slider_buttons_and_play_drive_the_same_version(explorer: HistoryExplorer) -> None:
    slider = next(w for w in walk(explorer.widget) if isinstance(w, widgets.IntSlider))
    back, forward = (
        next(
            w for w in walk(explorer.widget) if isinstance(w, widgets.Button) and w.description == d
        )
        for d in ("Back", "Next")
    )
    back.click()
    assert explorer.version == 2
    forward.click()
    forward.click()
    assert explorer.version == 3
    slider.value = 1
    assert explorer.caption() == "version 1 of 3: OrderCreated made it created"
    next(w for w in walk(explorer.widget) if isinstance(w, widgets.Play)).value = 0
    assert explorer.version == 0


def test_the_explorer_changes_nothing_in_the_store(store: EventStore) -> None:
    before = [s.event for s in store.read_all()]
    explorer = HistoryExplorer.of_stream(store, "order-o-1")
    explorer.step_to(1)
    assert explorer.aggregate.status == "created"
    assert [s.event for s in store.read_all()] == before


def test_bad_versions_and_streams_are_refused_with_advice(
    explorer: HistoryExplorer, store: EventStore
) -> None:
    with pytest.raises(ValueError, match=r"from 0 \(before any event\) to 3 \(now\)"):
        explorer.step_to(4)
    with pytest.raises(ValueError, match=r"'order-o-9' has no events \(streams: order-o-1"):
        HistoryExplorer.of_stream(store, "order-o-9")
    with pytest.raises(ValueError, match="at least one event"):
        HistoryExplorer([])


def test_a_saga_can_be_explored_too() -> None:
    shop = OrchestratedFulfilment(stock={"book": 1})
    shop.payments.decline_all = True
    shop.place_order("o-1", "c-7", [LineItem("book", 1)], 12.0)
    explorer = HistoryExplorer.of_stream(
        shop.store, "fulfilment-o-1", FulfilmentSaga, fields=["state"]
    )
    explorer.step_to(3)
    assert explorer.state["state"] == "releasing stock"
    assert repr(explorer) == "HistoryExplorer: fulfilment-o-1, version 3 of 5 (FulfilmentAdvanced)"


def test_the_explorer_holds_values_and_a_short_text_form(explorer: HistoryExplorer) -> None:
    kinds = {type(w) for w in walk(explorer.widget)}
    assert widgets.Output not in kinds
    assert image(explorer).startswith(PNG)
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == (
        explorer.widget.model_id
    )


def lit_entries(figure: Figure) -> list[str]:
    return [
        t.get_text()
        for t in figure.findobj(Text)
        if (t.get_gid() or "").startswith("entry-") and t.get_color() == INKS["current"].stroke
    ]


@pytest.mark.parametrize("projection", [OrdersByStatus, RevenuePerCustomer])
def test_every_stop_of_a_projection_lights_the_last_change_or_says_there_was_none(
    store: EventStore, projection: type[OrdersByStatus] | type[RevenuePerCustomer]
) -> None:
    for upto in range(1, store.last_position() + 1):
        figure = draw_projection(store, projection, upto=upto)
        notes = [a for a in figure.findobj() if a.get_gid() == "unchanged"]
        assert bool(lit_entries(figure)) != bool(notes), (projection, upto)
        if notes:
            assert notes[0].get_text() == f"position {upto} changed nothing here"


def test_a_projection_stopped_where_the_last_event_changed_something_has_it_lit(
    store: EventStore,
) -> None:
    figure = draw_projection(store, RevenuePerCustomer, upto=3)  # o-1 paid: c-7 gets 42
    assert lit_entries(figure) == ["c-7: 42"]
    highlight = artist(figure, "lit-0")  # the yellow behind c-7, the first entry
    assert face(highlight) == to_rgba(INKS["current"].fill)
    assert not [a for a in figure.findobj() if a.get_gid() == "lit-1"]
    assert not [a for a in figure.findobj() if a.get_gid() == "unchanged"]


def test_a_projection_stopped_on_an_event_it_ignores_says_nothing_changed(
    store: EventStore,
) -> None:
    figure = draw_projection(store, RevenuePerCustomer, upto=4)  # o-2 cancelled unpaid
    assert lit_entries(figure) == []
    assert artist(figure, "unchanged").get_text() == "position 4 changed nothing here"
