"""Pictures of a saga and the saga explorer (eda_lesson.views.sagas), drawn headless from real
fulfilment runs, orchestrated and choreographed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from eda_lesson import DispatchResult
from eda_lesson.patterns.saga import StateMachine, Transition
from eda_lesson.patterns.store import SQLiteEventStore
from eda_lesson.shop.events import LineItem
from eda_lesson.shop.fulfilment import (
    FULFILMENT,
    ChoreographedFulfilment,
    OrchestratedFulfilment,
    fulfilment_registry,
)
from eda_lesson.views.palette import COMPENSATION, INKS
from eda_lesson.views.sagas import (
    SagaExplorer,
    draw_saga_comparison,
    draw_saga_run,
    draw_state_machine,
    lane_of,
    message_phases,
    process_path,
    state_machine_layout,
    world_at,
)
from eda_lesson.views.sheet import figure_to_png

pytestmark = pytest.mark.filterwarnings("error")

BOOK = [LineItem("book", 1)]
Shop = OrchestratedFulfilment | ChoreographedFulfilment


def run(
    kind: type[OrchestratedFulfilment] | type[ChoreographedFulfilment],
    *,
    declined: bool = False,
    stock: int = 2,
) -> tuple[Shop, DispatchResult]:
    shop = kind(stock={"book": stock})
    if declined:
        shop.payments.declined.add("o-1")
    return shop, shop.place_order("o-1", "c-7", BOOK, 12.0)


def artist(figure: Figure, gid: str) -> Any:
    found = [a for a in figure.findobj() if a.get_gid() == gid]
    assert len(found) == 1, (gid, found)
    return found[0]


def gids(figure: Figure, prefix: str) -> list[str]:
    return [a.get_gid() for a in figure.findobj() if str(a.get_gid()).startswith(prefix)]


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


# ---------------------------------------------------------------------- the state machine


def test_the_main_line_runs_down_the_first_column_and_compensation_climbs_beside_it() -> None:
    assert state_machine_layout(FULFILMENT) == {
        "new": (0, 0),
        "awaiting stock": (0, 1),
        "awaiting payment": (0, 2),
        "awaiting shipment": (0, 3),
        "shipped": (0, 4),
        "cancelling": (1, 1),
        "releasing stock": (1, 2),
        "cancelled": (1, 0),
    }


def test_every_state_of_another_machine_gets_a_place_of_its_own() -> None:
    machine = StateMachine(
        "returns",
        "requested",
        (
            Transition("requested", "Approved", "awaiting parcel"),
            Transition("requested", "Refused", "closed"),
            Transition("awaiting parcel", "Lost", "closed"),
            Transition("awaiting parcel", "Received", "refunding"),
            Transition("refunding", "Refunded", "closed"),
            Transition("requested", "Escalated", "with a manager"),
        ),
    )
    places = state_machine_layout(machine)
    assert set(places) == set(machine.states())
    assert len(set(places.values())) == len(places)
    assert places["requested"] == (0, 0) and places["awaiting parcel"] == (0, 1)
    figure = draw_state_machine(machine, current="refunding")
    assert repr(figure) == "<picture: the returns state machine: now 'refunding'>"


def test_compensating_transitions_are_dashed_and_orange() -> None:
    figure = draw_state_machine()
    compensating = artist(figure, "transition-awaiting payment-PaymentFailed")
    plain = artist(figure, "transition-awaiting stock-StockReserved")
    assert compensating.get_linestyle() == "--"
    assert compensating.get_edgecolor() == to_rgba(COMPENSATION.stroke)
    assert plain.get_linestyle() == "-"
    assert plain.get_edgecolor() != to_rgba(COMPENSATION.stroke)


def test_the_current_state_is_lit_and_the_path_taken_is_bold() -> None:
    shop, _ = run(OrchestratedFulfilment, declined=True)
    saga = shop.saga("o-1")  # type: ignore[union-attr]
    figure = draw_state_machine(current=saga.state, taken=saga.path)
    lit = artist(figure, "state-cancelled")
    assert tuple(lit.get_facecolor()) == to_rgba(INKS["current"].fill)
    assert tuple(artist(figure, "state-awaiting payment").get_facecolor()) == to_rgba(
        INKS["call"].fill
    )
    assert tuple(artist(figure, "state-shipped").get_facecolor()) == to_rgba("#ffffff")
    taken = artist(figure, "transition-releasing stock-StockReleased")
    not_taken = artist(figure, "transition-awaiting payment-OrderPaid")
    assert taken.get_linewidth() > not_taken.get_linewidth()
    assert taken.get_edgecolor() == to_rgba(COMPENSATION.stroke)
    assert not_taken.get_edgecolor() != to_rgba(INKS["current"].stroke)
    assert repr(figure) == "<picture: the order fulfilment state machine: now 'cancelled'>"


def test_a_state_the_machine_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'paid' is not a state of order fulfilment"):
        draw_state_machine(current="paid")
    with pytest.raises(TypeError, match="takes a StateMachine"):
        draw_state_machine("FULFILMENT")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- one run in lanes


def test_handlers_are_placed_in_their_participants_lanes() -> None:
    assert lane_of("FulfilmentProcess.react") == "process manager"
    assert lane_of("ChoreographedFulfilment.release_stock") == "warehouse"
    assert lane_of("Shop.mark_paid") == "Shop"
    assert lane_of("audit", {"audit": "compliance"}) == "compliance"


def test_a_failure_and_everything_it_set_off_are_told_apart() -> None:
    _, result = run(OrchestratedFulfilment, declined=True)
    names = [record.type_name for record in result.events]
    phases = dict(zip(names, message_phases(result), strict=True))
    assert phases == {
        "OrderCreated": "normal",
        "ReserveStock": "normal",
        "StockReserved": "normal",
        "ChargePayment": "normal",
        "PaymentFailed": "failure",
        "ReleaseStock": "compensation",
        "StockReleased": "compensation",
        "CancelOrder": "compensation",
        "OrderCancelled": "compensation",
    }


def test_a_run_has_one_call_box_per_step_and_colours_by_phase() -> None:
    _, result = run(OrchestratedFulfilment, declined=True)
    figure = draw_saga_run(result)
    assert len(gids(figure, "call-")) == len(result.calls) == 9
    failure = artist(figure, "message-4-5")  # #4 PaymentFailed, handled at step 5
    release = artist(figure, "message-5-6")  # #5 ReleaseStock, a command
    assert failure.get_edgecolor() == to_rgba(INKS["failed"].stroke)
    assert release.get_edgecolor() == to_rgba(COMPENSATION.stroke)
    assert release.get_linestyle() == "--" and failure.get_linestyle() == "-"
    assert artist(figure, "label-5-6").get_text() == "#5 ReleaseStock"


def test_what_the_process_manager_sends_is_drawn_as_a_command() -> None:
    _, result = run(OrchestratedFulfilment)
    figure = draw_saga_run(result)
    assert artist(figure, "label-5-6").get_text() == "#5 RequestShipment"  # a command...
    assert artist(figure, "message-5-6").get_linestyle() == "--"  # ...drawn as a request
    assert artist(figure, "message-4-5").get_linestyle() == "-"  # OrderPaid: a fact
    _, danced = run(ChoreographedFulfilment)
    danced_figure = draw_saga_run(danced)
    assert {artist(danced_figure, g).get_linestyle() for g in gids(danced_figure, "message-")} == {
        "-"
    }


def test_stepping_a_run_lights_the_step_and_fades_what_follows() -> None:
    _, result = run(OrchestratedFulfilment, declined=True)
    figure = draw_saga_run(result, upto=5)
    assert artist(figure, "call-5").get_edgecolor() == to_rgba(INKS["current"].stroke)
    assert tuple(artist(figure, "call-6").get_facecolor()) == to_rgba(INKS["pending"].fill)
    assert tuple(artist(figure, "call-4").get_facecolor()) == to_rgba(INKS["call"].fill)
    assert repr(figure).endswith("after step 5>")
    with pytest.raises(ValueError, match="it has 9 steps"):
        draw_saga_run(result, upto=10)


def test_an_event_nobody_handles_ends_in_a_stub() -> None:
    _, result = run(ChoreographedFulfilment)
    figure = draw_saga_run(result)
    assert gids(figure, "unhandled-") == ["unhandled-3"]  # #3 OrderShipped
    assert artist(figure, "unhandled-3").get_edgecolor() == to_rgba(INKS["unhandled"].stroke)


def test_a_participant_hearing_itself_gets_a_loop() -> None:
    _, result = run(ChoreographedFulfilment)
    lanes = {"reserve_stock": "shop", "charge_payment": "shop"}
    figure = draw_saga_run(result, lanes=lanes, origin="shop")
    assert artist(figure, "label-1-2").get_text() == "#1 StockReserved"
    assert artist(figure, "message-1-2").get_connectionstyle().rad == -1.4
    assert artist(figure, "message-2-3").get_connectionstyle().rad == 0  # shop -> shipping


def test_a_run_is_drawn_from_its_dispatch_result_only() -> None:
    with pytest.raises(TypeError, match=r"place_order\(...\) returns"):
        draw_saga_run("o-1")  # type: ignore[arg-type]


def test_the_comparison_draws_both_runs_with_their_step_counts() -> None:
    _, orchestrated = run(OrchestratedFulfilment, declined=True)
    _, choreographed = run(ChoreographedFulfilment, declined=True)
    figure = draw_saga_comparison(orchestrated, choreographed)
    assert len(gids(figure, "call-")) == 9 + 4
    assert "(9 steps) | choreography" in repr(figure) and repr(figure).endswith("(4 steps)>")
    again = draw_saga_comparison(orchestrated, choreographed)
    assert figure_to_png(figure) == figure_to_png(again)


# ---------------------------------------------------------------------- reading a run


@pytest.mark.parametrize(("declined", "stock"), [(False, 2), (True, 2), (False, 0)])
def test_the_path_read_off_a_run_is_the_path_the_saga_stored(
    tmp_path: Path, declined: bool, stock: int
) -> None:
    store = SQLiteEventStore(tmp_path / "shop.db", fulfilment_registry())
    shop = OrchestratedFulfilment(stock={"book": stock}, store=store)
    if declined:
        shop.payments.declined.add("o-1")
    result = shop.place_order("o-1", "c-7", BOOK, 12.0)
    assert process_path(result) == shop.saga("o-1").path
    _, danced = run(ChoreographedFulfilment, declined=declined, stock=stock)
    assert process_path(danced) == shop.saga("o-1").path  # the same process, unmanaged
    store.close()


def test_a_managed_process_moves_when_the_manager_handles_an_event() -> None:
    _, result = run(OrchestratedFulfilment)
    assert process_path(result, upto=0) == []
    assert [t.target for t in process_path(result, upto=3)] == [
        "awaiting stock",
        "awaiting payment",
    ]
    _, danced = run(ChoreographedFulfilment)
    assert [t.target for t in process_path(danced, upto=0)] == ["awaiting stock"]


@pytest.mark.parametrize("kind", [OrchestratedFulfilment, ChoreographedFulfilment])
@pytest.mark.parametrize(("declined", "stock"), [(False, 2), (True, 2), (False, 0)])
def test_the_world_after_a_run_is_what_the_shop_ended_with(
    kind: type[OrchestratedFulfilment] | type[ChoreographedFulfilment], declined: bool, stock: int
) -> None:
    shop, result = run(kind, declined=declined, stock=stock)
    world = world_at(result, {"book": stock})
    inventory = shop.warehouse.inventory
    assert world.on_shelf == inventory.stock
    assert world.reserved == {
        item.sku: item.quantity for items in inventory.reserved.values() for item in items
    }
    assert world.order == shop.order("o-1").status
    assert world.received == sum(shop.payments.received.values())
    assert world.process in ("shipped", "cancelled")


def test_the_world_mid_run_has_the_book_reserved_but_not_yet_paid() -> None:
    _, result = run(OrchestratedFulfilment, declined=True)
    middle = world_at(result, {"book": 2}, upto=5)
    assert middle.as_dict() == {
        "step": 5,
        "process": "releasing stock",
        "order": "created",
        "on shelf": "book 1",
        "reserved": "book 1",
        "received": "0",
    }


# ---------------------------------------------------------------------- the explorer


def images(explorer: SagaExplorer) -> tuple[bytes, bytes]:
    found = [bytes(w.value) for w in walk(explorer.widget) if isinstance(w, widgets.Image)]
    assert len(found) == 2
    return found[0], found[1]


def control(explorer: SagaExplorer, kind: type, **traits: Any) -> Any:
    (found,) = [
        w
        for w in walk(explorer.widget)
        if isinstance(w, kind) and all(getattr(w, k) == v for k, v in traits.items())
    ]
    return found


def test_the_explorer_opens_on_a_shipped_order() -> None:
    explorer = SagaExplorer()
    assert repr(explorer) == "SagaExplorer: orchestration; step 7 of 7, process 'shipped'"
    assert explorer.shop.order("o-1").status == "shipped"


def test_ticking_payment_fails_runs_again_and_compensates() -> None:
    explorer = SagaExplorer()
    before = images(explorer)
    control(explorer, widgets.Checkbox, description="payment fails").value = True
    assert explorer.payment_fails and explorer.steps == 9
    assert explorer.world.process == "cancelled"
    assert explorer.shop.warehouse.inventory.stock == {"book": 2}
    assert images(explorer) != before
    table = control(explorer, widgets.HTML).value
    assert "<td style='padding:2px 10px'>cancelled</td>" in table


def test_run_and_step_to_are_the_python_twins_of_the_controls() -> None:
    explorer = SagaExplorer()
    result = explorer.run(payment_fails=True)
    assert result is explorer.result and explorer.step == 9
    explorer.step_to(5)
    assert repr(explorer) == (
        "SagaExplorer: orchestration, payment fails; step 5 of 9, process 'releasing stock'"
    )
    assert control(explorer, widgets.Label).value.startswith("step 5 of 9: FulfilmentProcess")
    with pytest.raises(ValueError, match="it has 9 steps"):
        explorer.step_to(10)


def test_the_slider_and_buttons_move_through_the_run() -> None:
    explorer = SagaExplorer()
    explorer.run(payment_fails=True)
    last = images(explorer)
    control(explorer, widgets.Button, description="Back").click()
    assert explorer.step == 8 and images(explorer) != last
    control(explorer, widgets.IntSlider).value = 2
    assert explorer.world.reserved == {"book": 1}
    control(explorer, widgets.Button, description="Next").click()
    assert explorer.step == 3
    control(explorer, widgets.Play).value = 0
    assert explorer.world.process == "new"


def test_choreography_and_out_of_stock_can_be_chosen() -> None:
    explorer = SagaExplorer(wiring="choreography")
    assert explorer.steps == 3
    control(explorer, widgets.ToggleButtons).value = "orchestration"
    assert explorer.steps == 7
    explorer.run(out_of_stock=True, wiring="choreography")
    assert repr(explorer) == (
        "SagaExplorer: choreography, out of stock; step 2 of 2, process 'cancelled'"
    )
    assert explorer.shop.order("o-1").cancel_reason == "order o-1 wants 1 x book, only 0 left"


def test_place_order_runs_a_fresh_shop_each_time() -> None:
    explorer = SagaExplorer()
    first, story = explorer.shop, explorer.result.describe()
    control(explorer, widgets.Button, description="Place order").click()
    assert explorer.shop is not first
    assert explorer.result.describe() == story
    assert explorer.shop.store.stream_ids() == ["order-o-1", "fulfilment-o-1"]
    assert explorer.shop.warehouse.inventory.stock == {"book": 1}


def test_bad_wiring_is_refused() -> None:
    with pytest.raises(ValueError, match="'orchestration' or 'choreography'"):
        SagaExplorer(wiring="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'orchestration' or 'choreography'"):
        SagaExplorer().run(wiring="both")  # type: ignore[arg-type]


def test_the_explorer_holds_values_and_a_short_text_form() -> None:
    explorer = SagaExplorer()
    kinds = {type(w) for w in walk(explorer.widget)}
    assert widgets.Output not in kinds
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)
    assert all(png.startswith(b"\x89PNG") for png in images(explorer))
