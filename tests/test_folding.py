"""Loops of orders, folded: alike sub-cascades drawn once with a count, exceptions apart.

A handler that turns one ``BatchImported`` into N ``OrderPaid`` makes the shop run its usual
cascade N times (mark paid, send receipt, request shipment, ship, notify). Drawn, exported
and tabled, those N alike sub-cascades are one group "x N OrderPaid"; a member that failed
or an event nobody handled stays on its own; ``fold=False`` or ``unfold`` gives every event
back, all of them or the groups chosen; and however large, deep or wide the cascade, its
picture fits a notebook page, drawn tighter before anything is left out, and says what it
left out in the picture and in its text form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, make_dataclass
from itertools import combinations
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from eda_lesson import DispatchResult, EventBus
from eda_lesson.shop.events import OrderCreated, OrderPaid
from eda_lesson.shop.services import Shop
from eda_lesson.views.dispatch import DispatchExplorer
from eda_lesson.views.flow import FlowPicture, draw_flow
from eda_lesson.views.folding import (
    PAGE,
    PAGE_LAYERS,
    PAGE_ROWS,
    fold_groups,
    folded_graph,
    page_graph,
    shapes,
)
from eda_lesson.views.graphs import flow_graph, step_rows, step_table, to_mermaid


@dataclass(frozen=True)
class BatchImported:
    """A batch of paid orders arrived at once: each becomes an OrderPaid."""

    count: int
    failing: str = ""  # an order id whose audit fails
    with_note: bool = False  # also produce an event nobody handles


@dataclass(frozen=True)
class BatchNoted:
    """An event no handler listens to."""

    count: int


def pay_each(event: BatchImported) -> list[object]:
    orders: list[object] = [OrderPaid(f"o-{n}", 10.0) for n in range(1, event.count + 1)]
    return [*orders, BatchNoted(event.count)] if event.with_note else orders


def audit(event: OrderPaid) -> None:
    if event.order_id == "o-3":
        raise ValueError(f"audit refused {event.order_id}")


def batch(count: int, *, audited: bool = False, with_note: bool = False) -> DispatchResult:
    bus = EventBus()
    Shop().register(bus)
    bus.register(BatchImported, pay_each)
    if audited:
        bus.register(OrderPaid, audit)
    return bus.dispatch(BatchImported(count, with_note=with_note))


def named(name: str, produces: type | None = None, error: str = "") -> Callable[[object], object]:
    """A handler called ``name`` that produces a ``produces`` event, or raises ``error``."""

    def handle(event: object) -> object:
        if error:
            raise ValueError(error)
        return None if produces is None else produces()

    handle.__qualname__ = name
    return handle


def event_types(names: list[str]) -> list[type]:
    types = [make_dataclass(name, [], frozen=True) for name in names]
    for cls, name in zip(types, names, strict=True):
        cls.__qualname__ = name
    return types


def deep_chain(length: int = 30) -> DispatchResult:
    """``length`` events one after another, each handler producing the next event."""
    types = event_types([f"Step{n}Reached" for n in range(length)])
    bus = EventBus()
    for number, cls in enumerate(types[:-1]):
        bus.register(cls, named(f"advance_{number}", types[number + 1]))
    return bus.dispatch(types[0]())


def wide_fan_out(handlers: int = 40) -> DispatchResult:
    """One event heard by ``handlers`` handlers of distinct names."""
    (cls,) = event_types(["InvoiceIssued"])
    bus = EventBus()
    for number in range(handlers):
        bus.register(cls, named(f"notify_department_{number:02d}"))
    return bus.dispatch(cls())


def long_labels() -> DispatchResult:
    """A short chain whose type and handler names and error are far longer than a box."""
    names = [f"{word}WithAVeryLongNameThatNoBoxCanHoldInFullEvenOnAWidePage" for word in "ABC"]
    first, second, third = event_types(names)
    bus = EventBus()
    bus.register(first, named("a_handler_whose_name_goes_on_and_on_and_on_forever", second))
    bus.register(second, named("another_handler_with_an_equally_long_name_to_cut", third))
    bus.register(third, named("the_last_one_fails_with_a_long_message", error="x" * 200))
    return bus.dispatch(first())


def shop_cascade() -> DispatchResult:
    """The shop's own OrderPaid cascade: 6 layers, wider than a page at the usual spacing."""
    bus = EventBus()
    Shop().register(bus)
    bus.dispatch(OrderCreated("o-1", customer_id="c-7", total=42.0))
    return bus.dispatch(OrderPaid("o-1", 42.0))


CASCADES: dict[str, Callable[[], DispatchResult]] = {
    "deep chain of 30 events": deep_chain,
    "fan-out to 40 handlers": wide_fan_out,
    "long labels": long_labels,
    "the shop's cascade": shop_cascade,
    "loop of 200 orders": lambda: batch(200, audited=True, with_note=True),
}


def gids(figure: Figure) -> set[str]:
    return {gid for artist in figure.findobj() if (gid := artist.get_gid()) is not None}


def texts(figure: Figure) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]


@pytest.mark.parametrize("count", [5, 20, 200])
def test_alike_orders_fold_into_one_group_with_their_count(count: int) -> None:
    result = batch(count)
    (group,) = fold_groups(result)
    assert group.count == count
    assert group.type_name == "OrderPaid"
    assert group.members == tuple(range(1, count + 1))
    assert group.events_each == 3  # OrderPaid, ShipmentRequested, OrderShipped
    assert group.calls_each == 5
    assert len(group.steps) == 5 * count
    graph = folded_graph(result)
    assert sorted(graph.nodes) == [("call", 1), ("event", 0), ("group", 1)]
    assert graph.nodes["group", 1]["events"] == 3 * count


def test_two_alike_siblings_are_not_folded() -> None:
    result = batch(2)
    assert fold_groups(result) == []
    assert set(folded_graph(result).nodes) == set(flow_graph(result).nodes)


def test_the_shape_of_a_sub_cascade_tells_alike_orders_from_a_failing_one() -> None:
    result = batch(5, audited=True)
    shape = shapes(result)
    assert shape[1] == shape[2] == shape[4] == shape[5] != shape[3]


def test_a_failing_member_and_an_unhandled_event_stay_apart_from_the_group() -> None:
    result = batch(20, audited=True, with_note=True)
    (group,) = fold_groups(result)
    assert group.count == 19
    assert 3 not in group.members
    graph = folded_graph(result)
    assert ("event", 3) in graph  # the order whose audit failed, drawn on its own
    assert any(data["failed"] for _, data in graph.nodes(data=True) if data["kind"] == "call")
    note = next(n for n, data in graph.nodes(data=True) if data["label"] == "BatchNoted")
    assert graph.nodes[note]["unhandled"]
    figure = draw_flow(result)
    assert {"group-1", "group-1-stack", "event-3", f"event-{note[1]}"} <= gids(figure)
    assert any(text.startswith("x 19 OrderPaid") for text in texts(figure))
    assert "#3 OrderPaid" in texts(figure)


def test_unfolding_gives_back_every_event_of_the_cascade() -> None:
    result = batch(3)
    full = flow_graph(result)
    for graph in (folded_graph(result, fold=False), folded_graph(result, unfold={1})):
        assert list(graph.nodes) == list(full.nodes)
        assert list(graph.edges) == list(full.edges)
    folded, unfolded = draw_flow(result), draw_flow(result, fold=False)
    assert "group-1" in gids(folded)
    kept, _ = page_graph(folded_graph(result, fold=False))  # 8 layers: the last is cut
    expected = {f"{kind}-{key}" for kind, key in kept.nodes}
    assert {gid for gid in gids(unfolded) if gid[0] in "ec" and "label" not in gid} == expected
    assert draw_flow(result, unfold={1}).get_size_inches().tolist() == (
        unfolded.get_size_inches().tolist()
    )


def test_a_cascade_without_alike_siblings_draws_no_group() -> None:
    result = batch(2)
    figure = draw_flow(result)
    assert not any(gid.startswith("group") for gid in gids(figure))
    # 8 layers deep: one more than a page holds, so the last one is left out, and said so.
    assert repr(figure) == (
        "<picture: dispatch of BatchImported: 7 events, 11 handler calls; left out: 0 events, "
        "2 handler calls (Shop.notify_shipped); 1 deeper layer; see step_table(result) for them "
        "all>"
    )


def test_a_large_cascade_fits_a_page_and_says_what_it_left_out() -> None:
    result = batch(200, audited=True)
    for figure in (draw_flow(result), draw_flow(result, fold=False), draw_flow(result, upto=9)):
        width, height = figure.get_size_inches()
        assert width <= PAGE[0] and height <= PAGE[1]
    unfolded = draw_flow(result, fold=False)
    note = next(t for t in texts(unfolded) if t.startswith("left out:"))
    assert "events" in note and "handler calls" in note
    assert "left out:" in repr(unfolded)


def test_the_text_form_of_a_folded_picture_mentions_the_fold() -> None:
    figure = draw_flow(batch(200))
    assert repr(figure) == (
        "<picture: dispatch of BatchImported: 601 events, 1001 handler calls; "
        "folded: x 200 OrderPaid from #1>"
    )


def test_the_mermaid_export_of_600_events_is_short() -> None:
    text = to_mermaid(batch(200))
    lines = text.splitlines()
    assert len(lines) < 15
    assert 'g1(["x 200 OrderPaid · each#58; mark_paid' not in text  # a spaced colon stays
    assert any(line.strip().startswith('g1(["x 200 OrderPaid · each: mark_paid') for line in lines)
    assert "    c1 --> g1" in lines
    unfolded = to_mermaid(batch(200), fold=False).splitlines()
    assert len(unfolded) < 2 * PAGE_LAYERS * PAGE_ROWS + 15  # cut to a page, not 1600 lines
    assert unfolded[1].startswith("    %% left out: 580 events (OrderPaid, ShipmentRequested")


def test_the_step_table_shows_a_folded_group_as_one_row() -> None:
    result = batch(200, audited=True)
    rows = step_rows(result)
    assert len(rows) < 15
    group = next(row for row in rows if row.count > 1)
    assert group.event == "#1 OrderPaid x 199"
    assert group.handler.startswith("each: mark_paid, send_receipt, request_shipment")
    assert group.calls == 199 * 6
    table = step_table(result)
    assert "#1 OrderPaid x 199" in table
    assert "#3 OrderPaid" in table and "audit refused o-3" in table
    assert len(step_table(result, fold=False).splitlines()) == 1 + len(result.calls)


def test_the_explorer_steps_through_a_large_cascade_group_by_group() -> None:
    bus = EventBus()
    Shop().register(bus)
    bus.register(BatchImported, pay_each)
    explorer = DispatchExplorer(bus, {"batch": BatchImported(200)})
    result = explorer.dispatch()
    assert explorer.steps == 2  # pay_each, then the group of 200
    assert explorer.stops == [1, len(result.calls)]
    explorer.step_to(2)
    assert explorer._caption.value.startswith("2 of 2 (group by group): step 1001 of 1001")
    assert "OrderPaid x 200" in explorer._table.value
    with pytest.raises(ValueError, match="group by group"):
        explorer.step_to(3)
    explorer.fold(False)
    assert explorer.steps == len(result.calls)


@pytest.mark.slow
def test_the_folded_mermaid_export_renders_in_the_real_renderer(tmp_path: Path) -> None:
    from mermaid_cli import render_all, rendered_nodes

    (rendering,) = render_all([to_mermaid(batch(200, audited=True, with_note=True))], tmp_path)
    assert rendering.error is None, rendering.error
    assert rendering.svg is not None
    nodes = rendered_nodes(rendering.svg)
    assert nodes["g1"].text.startswith("x 199 OrderPaid · each: mark_paid")
    assert "edaFolded" in nodes["g1"].classes
    assert "e3" in nodes


# ---------------------------------------------------------------------- any cascade fits a page


def boxes(figure: Figure) -> dict[str, tuple[float, float, float, float]]:
    """Each box of a flow picture (events, calls, groups and their stacks) as x0, y0, x1, y1."""
    found = {}
    for patch in figure.findobj(FancyBboxPatch):
        gid = patch.get_gid()
        if gid and gid.split("-")[0] in {"event", "call", "group"}:
            x, y = patch.get_x(), patch.get_y()
            found[gid] = (x, y, x + patch.get_width(), y + patch.get_height())
    return found


def overlapping(figure: Figure) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap, but a folded group's box and the stack behind it."""
    pairs = []
    for (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) in combinations(
        boxes(figure).items(), 2
    ):
        if a.removesuffix("-stack") == b.removesuffix("-stack"):
            continue
        if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
            pairs.append((a, b))
    return pairs


def note_of(figure: Figure) -> str | None:
    """The words of the picture's note on what was left out, on one line; None without."""
    notes = [t.get_text() for ax in figure.axes for t in ax.texts if t.get_gid() == "left-out"]
    return " ".join(notes[0].split("\n")) if notes else None


@pytest.mark.parametrize(
    ("fold", "upto"), [(True, None), (False, None), (True, 1)], ids=["whole", "unfolded", "step 1"]
)
@pytest.mark.parametrize("name", list(CASCADES))
def test_any_cascade_fits_a_page_and_its_picture_and_text_say_what_was_left_out(
    name: str, fold: bool, upto: int | None
) -> None:
    result = CASCADES[name]()
    picture = FlowPicture(result, stepping=upto is not None, fold=fold)
    figure = picture.show(upto).figure
    width, height = figure.get_size_inches()
    assert width <= PAGE[0] and height <= PAGE[1]
    assert overlapping(figure) == []
    assert all(
        x0 >= 0 and x1 <= width and y0 >= 0 and y1 <= height
        for x0, y0, x1, y1 in boxes(figure).values()
    )
    if picture.left_out:
        note = picture.left_out.note()
        assert note_of(figure) == note
        assert repr(figure).endswith(f"; {note}>")
        assert note.startswith("left out: ") and "handler call" in note
        assert any(kind in note for kind in picture.left_out.names)
    else:
        assert note_of(figure) is None and "left out" not in repr(figure)


@pytest.mark.parametrize(
    ("name", "layers", "rows"),
    [("deep chain of 30 events", PAGE_LAYERS, 1), ("fan-out to 40 handlers", 2, PAGE_ROWS)],
)
def test_a_cascade_too_large_for_a_page_is_cut_to_the_page_rule(
    name: str, layers: int, rows: int
) -> None:
    picture = FlowPicture(CASCADES[name]())
    kept = picture.graph
    assert 1 + max(layer for _, layer in kept.nodes(data="layer")) == layers
    assert (
        max(sum(1 for _, at in kept.nodes(data="layer") if at == layer) for layer in range(layers))
        == rows
    )
    assert picture.left_out
    assert picture.left_out.names[:2] == (
        ("Step4Reached", "Step5Reached")
        if layers == PAGE_LAYERS
        else ("notify_department_12", "notify_department_13")
    )


@pytest.mark.parametrize("name", ["the shop's cascade", "long labels"])
def test_a_cascade_that_fits_when_drawn_tighter_is_not_cut(name: str) -> None:
    result = CASCADES[name]()
    picture = FlowPicture(result, stepping=False)
    figure = picture.show().figure
    assert not picture.left_out and picture.note == ""
    assert set(picture.graph.nodes) == set(flow_graph(result).nodes)
    assert note_of(figure) is None and "left out" not in repr(figure)
    assert figure.get_size_inches()[0] <= PAGE[0]  # 6 layers: 13.9 in at the usual spacing


def test_long_labels_are_cut_to_their_boxes_when_drawn_tighter() -> None:
    figure = draw_flow(long_labels())
    labels = [
        t.get_text()
        for ax in figure.axes
        for t in ax.texts
        if (t.get_gid() or "").endswith("-label")
    ]
    assert labels and all(len(line) <= 26 for label in labels for line in label.split("\n"))


# ---------------------------------------------------------------------- unfolding chosen groups


@dataclass(frozen=True)
class MixedBatch:
    """A batch of new orders and of paid ones: two groups of alike siblings."""

    count: int


def split_batch(event: MixedBatch) -> list[object]:
    created: list[object] = [OrderCreated(f"n-{n}", "c-1", 1.0) for n in range(event.count)]
    return created + [OrderPaid(f"o-{n}", 1.0) for n in range(event.count)]


def mixed_bus() -> EventBus:
    bus = EventBus()
    Shop().register(bus)
    bus.register(MixedBatch, split_batch)
    return bus


def test_draw_flow_unfolds_the_chosen_group_and_keeps_the_others_folded() -> None:
    result = mixed_bus().dispatch(MixedBatch(4))
    assert [group.first for group in fold_groups(result)] == [1, 5]
    figure = draw_flow(result, unfold={5})
    assert "group-1" in gids(figure) and "group-5" not in gids(figure)
    assert {"event-5", "event-6", "event-7", "event-8"} <= gids(figure)
    assert "folded: x 4 OrderCreated from #1" in repr(figure)
    assert "OrderPaid from #5" not in repr(figure)


def test_the_explorer_unfolds_the_groups_chosen_in_its_select_box() -> None:
    explorer = DispatchExplorer(mixed_bus(), {"mixed": MixedBatch(4)})
    explorer.dispatch()
    assert explorer.groups == {1: "x 4 OrderCreated from #1", 5: "x 4 OrderPaid from #5"}
    assert explorer.steps == 3  # split_batch, then each group
    explorer._unfold.value = (5,)  # what a click in the select box does
    assert explorer.unfolded == (5,)
    assert explorer.step == 0 and explorer.steps > 3
    figure = explorer._picture.figure  # type: ignore[union-attr]
    assert "group-1" in gids(figure) and "group-5" not in gids(figure)
    assert "event-5" in gids(figure)
    assert "folded: x 4 OrderCreated from #1" in repr(figure)
    assert "OrderPaid x 4" not in explorer._table.value
    assert "OrderCreated x 4" in explorer._table.value
    assert list(explorer.groups) == [1, 5]  # the unfolded group can be folded again
    width, height = figure.get_size_inches()
    assert width <= PAGE[0] and height <= PAGE[1]
    explorer.unfold()
    assert explorer.steps == 3 and "group-5" in gids(explorer._picture.figure)  # type: ignore[union-attr]


def test_the_explorer_refuses_to_unfold_a_group_it_does_not_have() -> None:
    explorer = DispatchExplorer(mixed_bus(), {"mixed": MixedBatch(4)})
    explorer.dispatch()
    with pytest.raises(
        ValueError, match=r"no folded group starts at event 2; choose among: 1 \(x 4"
    ):
        explorer.unfold(2)


def test_a_new_dispatch_starts_with_every_group_folded() -> None:
    explorer = DispatchExplorer(mixed_bus(), {"mixed": MixedBatch(4)})
    explorer.dispatch()
    explorer.unfold(1, 5)
    assert explorer.unfolded == (1, 5)
    explorer.dispatch()
    assert explorer.unfolded == () and explorer.steps == 3
