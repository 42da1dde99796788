"""Loops of orders, folded: alike sub-cascades drawn once with a count, exceptions apart.

A handler that turns one ``BatchImported`` into N ``OrderPaid`` makes the shop run its usual
cascade N times (mark paid, send receipt, request shipment, ship, notify). Drawn, exported
and tabled, those N alike sub-cascades are one group "x N OrderPaid"; a member that failed
or an event nobody handled stays on its own; ``fold=False`` or ``unfold`` gives every event
back; and however large the cascade, its picture fits a notebook page and says what it left
out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from eda_lesson import DispatchResult, EventBus
from eda_lesson.shop.events import OrderPaid
from eda_lesson.shop.services import Shop
from eda_lesson.views.dispatch import DispatchExplorer
from eda_lesson.views.flow import PAGE, draw_flow
from eda_lesson.views.folding import fold_groups, folded_graph, shapes
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
    expected = {f"{kind}-{key}" for kind, key in full.nodes}
    assert {gid for gid in gids(unfolded) if gid[0] in "ec" and "label" not in gid} == expected
    assert draw_flow(result, unfold={1}).get_size_inches().tolist() == (
        unfolded.get_size_inches().tolist()
    )


def test_a_small_cascade_draws_as_it_always_did() -> None:
    result = batch(2)
    figure = draw_flow(result)
    assert not any(gid.startswith("group") or gid == "left-out" for gid in gids(figure))
    assert repr(figure) == "<picture: dispatch of BatchImported: 7 events, 11 handler calls>"


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
    assert len(to_mermaid(batch(200), fold=False).splitlines()) > 1600


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
