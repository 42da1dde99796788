"""How long one step of a step-through takes to redraw: the picture and its PNG.

Run it with ``python benchmarks/bench_redraw.py`` (``--quick`` for a short smoke run). For a
cascade of about 10 and about 20 nodes (events plus handler calls) it reports the median
milliseconds of:

- ``draw_flow(result, upto=k)`` alone, and with the PNG a notebook cell shows
  (``figure_to_png``): a picture drawn from nothing;
- ``DispatchExplorer.step_to(k)`` on a step not shown before (restyling the picture drawn at
  the dispatch, its PNG, the table and the caption): what a learner waits for at each click;
- a peer: the same graph drawn the usual way, networkx's ``multipartite_layout`` and
  ``draw_networkx`` with labels, to PNG at the same size.

The budget is 50 ms an explorer step for up to 20 nodes. A third part times a loop: one
``BatchImported`` becoming 200 orders, each running the shop's cascade (601 events, 1001
calls), drawn folded (``eda_lesson.views.folding``) and unfolded (cut to a page): each whole
picture plus its PNG within 150 ms, an explorer step within 100 ms (folded, and with the group
of 200 unfolded in its select box), and the dispatch itself linear in the batch's size.
Every case runs in this one process, round by round, so the ratio to the peer is the number
to compare across machines.
"""

from __future__ import annotations

import argparse
import gc
import io
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import matplotlib

matplotlib.use("Agg")  # the peer draws through pyplot's helpers; keep them headless

from matplotlib.figure import Figure

from eda_lesson import DispatchResult, EventBus
from eda_lesson.shop.events import OrderEvent, OrderPaid, OrderShipped
from eda_lesson.shop.services import Shop
from eda_lesson.views.dispatch import DispatchExplorer
from eda_lesson.views.flow import draw_flow
from eda_lesson.views.graphs import flow_graph
from eda_lesson.views.sheet import figure_to_png

BUDGET_MS = 50.0
LOOP_DRAW_BUDGET_MS = 150.0
LOOP_STEP_BUDGET_MS = 100.0
EXPLORER = "DispatchExplorer.step_to(k), new step"


@dataclass(frozen=True)
class CheckoutCompleted:
    """A basket of several orders paid at once: each order then runs its own cascade."""

    order_ids: tuple[str, ...]


def record_audit(event: OrderEvent) -> None:
    """An audit log entry; it only adds a handler call to the cascade."""


def pay_each(event: CheckoutCompleted) -> list[OrderPaid]:
    return [OrderPaid(order_id, 10.0) for order_id in event.order_ids]


def shop_bus(*, audit: tuple[type, ...]) -> EventBus:
    bus = EventBus()
    Shop().register(bus)
    for event_type in audit:
        bus.register(event_type, record_audit)
    bus.register(CheckoutCompleted, pay_each)
    return bus


@dataclass(frozen=True)
class BatchImported:
    """A batch of paid orders: a handler loops over it, one OrderPaid per order."""

    count: int


def pay_batch(event: BatchImported) -> list[OrderPaid]:
    return [OrderPaid(f"o-{number}", 10.0) for number in range(1, event.count + 1)]


def batch_bus() -> EventBus:
    bus = EventBus()
    Shop().register(bus)
    bus.register(BatchImported, pay_batch)
    return bus


def cascades() -> dict[str, tuple[EventBus, object]]:
    """Two cascades of the shop: one order paid (10 nodes), a checkout of two orders (20)."""
    return {
        "OrderPaid": (shop_bus(audit=(OrderPaid, OrderShipped)), OrderPaid("o-1", 42.0)),
        "CheckoutCompleted": (shop_bus(audit=(OrderPaid,)), CheckoutCompleted(("o-1", "o-2"))),
    }


def nodes(result: DispatchResult) -> int:
    return len(result.events) + len(result.calls)


# ---------------------------------------------------------------------- the peer


def networkx_peer(result: DispatchResult) -> Callable[[int], bytes]:
    """The usual way: networkx lays the graph out and draws it, labels included."""
    import networkx as nx  # type: ignore[import-untyped]

    graph = flow_graph(result)
    for node, data in graph.nodes(data=True):
        graph.nodes[node]["subset"] = data["layer"]
    positions = nx.multipartite_layout(graph, subset_key="subset")
    labels = {node: data["label"] for node, data in graph.nodes(data=True)}
    size = draw_flow(result).get_size_inches()

    def draw(step: int) -> bytes:
        figure = Figure(figsize=tuple(size))
        ax = figure.add_axes((0, 0, 1, 1))
        colours = ["#7c3aed" if n == ("call", step) else "#dbeafe" for n in graph.nodes]
        nx.draw_networkx(graph, positions, ax=ax, labels=labels, node_color=colours, font_size=8)
        ax.set_axis_off()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    return draw


# ---------------------------------------------------------------------- measuring


def median_ms(action: Callable[[int], object], steps: int, rounds: int) -> float:
    """Median milliseconds of ``action(k)`` over ``rounds`` passes through steps 1..steps."""
    times = []
    for _ in range(rounds):
        for step in range(1, steps + 1):
            gc.collect()
            start = time.perf_counter()
            action(step)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def draw_only(result: DispatchResult, step: int) -> object:
    return draw_flow(result, upto=step)


def draw_to_png(result: DispatchResult, step: int) -> bytes:
    return figure_to_png(draw_flow(result, upto=step))


def explorer_step_ms(bus: EventBus, event: object, steps: int, rounds: int) -> float:
    """Median ms of ``step_to(k)`` on steps not shown before (each round dispatches anew)."""
    explorer = DispatchExplorer(bus, [event])
    times = []
    for _ in range(rounds):
        explorer.dispatch()
        for step in range(1, steps + 1):
            gc.collect()
            start = time.perf_counter()
            explorer.step_to(step)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    rounds = 1 if parser.parse_args().quick else 5
    print(
        f"Python {sys.version.split()[0]} on {platform.machine()}, matplotlib "
        f"{matplotlib.__version__}; median ms per step, {rounds} round(s) through every step"
    )
    print()
    header = f"{'cascade':<20} {'nodes':>5}  {'case':<44} {'ms':>7} {'x peer':>7}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    peers = []
    for name, (bus, event) in cascades().items():
        result = bus.dispatch(event)
        steps = len(result.calls)
        peer = median_ms(networkx_peer(result), steps, rounds)
        peers.append(peer)
        cases = {
            "draw_flow(upto=k)": median_ms(partial(draw_only, result), steps, rounds),
            "draw_flow(upto=k) + PNG": median_ms(partial(draw_to_png, result), steps, rounds),
            EXPLORER: explorer_step_ms(bus, event, steps, rounds),
            "peer: networkx draw_networkx + PNG": peer,
        }
        for case, ms in cases.items():
            print(f"{name:<20} {nodes(result):>5}  {case:<44} {ms:>7.1f} {ms / peer:>7.2f}")
            if case == EXPLORER:
                worst = max(worst, ms)
    print()
    verdict = "within" if worst <= BUDGET_MS else "OVER"
    print(f"slowest step redraw: {worst:.1f} ms, {verdict} the {BUDGET_MS:.0f} ms budget")
    print("(the explorer's step; its ratio to the peer is what to compare across machines)")
    loop_main(rounds, peers[0])


def median_of(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def loop_rows(rounds: int, peer: float | None = None) -> tuple[float, float]:
    """The rows of the loop of 200 orders; returns (draw + PNG, explorer step) in ms, the
    slowest of each. With ``peer`` (the ms of the first cascade's peer in this run), each row
    also shows its ratio to it: the number to compare across runs on a noisy machine."""
    bus = batch_bus()
    result = bus.dispatch(BatchImported(200))
    cases = {
        "dispatch, 20 orders": median_of(lambda: bus.dispatch(BatchImported(20)), rounds),
        "dispatch, 200 orders": median_of(lambda: bus.dispatch(BatchImported(200)), rounds),
        "draw_flow (folded) + PNG": median_of(lambda: figure_to_png(draw_flow(result)), rounds),
        "draw_flow(upto=k) (folded) + PNG": median_of(
            lambda: figure_to_png(draw_flow(result, upto=500)), rounds
        ),
        "draw_flow(fold=False) (cut to a page) + PNG": median_of(
            lambda: figure_to_png(draw_flow(result, fold=False)), rounds
        ),
    }
    cases[EXPLORER + ", folded"] = loop_steps_ms(bus, rounds)
    cases[EXPLORER + ", unfold={1}"] = loop_steps_ms(bus, rounds, unfold=(1,))
    for case, ms in cases.items():
        ratio = f" {ms / peer:>7.2f}" if peer else ""
        print(f"{'BatchImported x200':<20} {nodes(result):>5}  {case:<44} {ms:>7.1f}{ratio}")
    draws = [ms for case, ms in cases.items() if case.startswith("draw_flow")]
    return max(draws), max(cases[EXPLORER + ", folded"], cases[EXPLORER + ", unfold={1}"])


def loop_steps_ms(bus: EventBus, rounds: int, *, unfold: tuple[int, ...] = ()) -> float:
    """Median ms of an explorer's new step through the loop, with the groups ``unfold``
    unfolded (the picture then cut to a page); at most 30 steps a round."""
    explorer = DispatchExplorer(bus, [BatchImported(200)])
    steps = []
    for _ in range(rounds):
        explorer.dispatch()
        explorer.unfold(*unfold)
        for step in range(1, min(explorer.steps, 30) + 1):
            gc.collect()
            start = time.perf_counter()
            explorer.step_to(step)
            steps.append(time.perf_counter() - start)
    return statistics.median(steps) * 1000


def loop_main(rounds: int, peer: float | None = None) -> None:
    print()
    if peer:
        print("(x peer: the ratio to the OrderPaid peer above, measured in this same run)")
    draw, step = loop_rows(rounds, peer)
    for words, ms, budget in (
        ("slowest loop picture + PNG", draw, LOOP_DRAW_BUDGET_MS),
        ("slowest loop explorer step", step, LOOP_STEP_BUDGET_MS),
    ):
        verdict = "within" if ms <= budget else "OVER"
        print(f"{words}: {ms:.1f} ms, {verdict} the {budget:.0f} ms budget")


if __name__ == "__main__":
    main()
