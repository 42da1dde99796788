"""The explorers (eda_lesson.views.dispatch), driven through their Python API and button clicks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import nbformat
import pytest
from nbclient import NotebookClient

from eda_lesson import CascadeLimitError, EventBus, Subscription
from eda_lesson.shop.events import (
    LineItem,
    OrderCancelled,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
)
from eda_lesson.shop.services import Shop
from eda_lesson.views.dispatch import DispatchExplorer, InjectedHandlerError, RegistrationExplorer

PREPARED = {
    "paid": OrderPaid("o-1", 42.0),
    "created": OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)),
    "cancelled": OrderCancelled("o-1", "changed my mind"),
}


@pytest.fixture
def shop_bus() -> tuple[EventBus, Shop]:
    bus, shop = EventBus(), Shop(stock={"book": 5})
    shop.register(bus)
    return bus, shop


@pytest.fixture
def explorer(shop_bus: tuple[EventBus, Shop]) -> DispatchExplorer:
    return DispatchExplorer(shop_bus[0], PREPARED)


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def find(root: Any, kind: type, **traits: Any) -> Any:
    matches = [
        w
        for w in walk(root)
        if isinstance(w, kind) and all(getattr(w, k) == v for k, v in traits.items())
    ]
    assert len(matches) == 1, (kind, traits, matches)
    return matches[0]


def image(explorer: DispatchExplorer) -> bytes:
    return bytes(find(explorer.widget, widgets.Image).value)


def table(explorer: DispatchExplorer) -> str:
    """The HTML of the step table."""
    tables = [w.value for w in walk(explorer.widget) if isinstance(w, widgets.HTML)]
    return next(str(value) for value in tables if "eda-step-table" in value)


def labels(explorer: DispatchExplorer) -> list[str]:
    return [str(w.value) for w in walk(explorer.widget) if isinstance(w, widgets.Label)]


def caption(explorer: DispatchExplorer) -> str:
    return next(value for value in labels(explorer) if value.startswith("step "))


def subscriptions_of(bus: EventBus) -> list[tuple[type, Any, tuple[Any, ...]]]:
    return [(s.message_type, s.handler, s.middleware) for s in bus.subscriptions()]


# ---------------------------------------------------------------------- dispatching


def test_clicking_dispatch_dispatches_the_chosen_event_and_shows_step_zero(
    explorer: DispatchExplorer,
) -> None:
    placeholder = image(explorer)
    find(explorer.widget, widgets.Dropdown).value = "paid"
    find(explorer.widget, widgets.Button, description="Dispatch").click()
    assert explorer.result is not None
    assert explorer.result.event == OrderPaid("o-1", 42.0)
    assert [call.name for call in explorer.result.calls] == [
        "Shop.mark_paid",
        "Shop.send_receipt",
        "Shop.request_shipment",
        "Shop.ship_order",
        "Shop.notify_shipped",
    ]
    assert explorer.step == 0
    assert image(explorer) != placeholder
    assert caption(explorer) == "step 0 of 5: OrderPaid dispatched, no handler ran yet"


def test_the_dispatch_really_runs_the_handlers(
    explorer: DispatchExplorer, shop_bus: tuple[EventBus, Shop]
) -> None:
    explorer.dispatch("created")
    explorer.dispatch("paid")
    assert shop_bus[1].orders.status == {"o-1": "shipped"}
    assert shop_bus[1].inventory.stock == {"book": 4}


def test_stepping_changes_the_picture_and_highlights_the_current_row(
    explorer: DispatchExplorer,
) -> None:
    explorer.dispatch("paid")
    pictures, tables = {image(explorer)}, {table(explorer)}
    for step in range(1, 6):
        explorer.step_to(step)
        assert explorer.step == step
        pictures.add(image(explorer))
        tables.add(table(explorer))
        current = [row for row in table(explorer).splitlines() if "▶" in row]
        assert len(current) == 1 and f"▶ {step}<" in current[0]
    assert len(pictures) == 6 and len(tables) == 6
    assert caption(explorer) == "step 5 of 5: Shop.notify_shipped handles #2 OrderShipped"


def test_rows_not_reached_yet_hide_their_outcome(explorer: DispatchExplorer) -> None:
    explorer.make_fail("Shop.send_receipt")
    explorer.dispatch("paid")
    explorer.step_to(1)
    assert "failed" not in table(explorer)
    explorer.step_to(2)
    assert "failed: InjectedHandlerError" in table(explorer)


def test_next_and_back_move_one_step_and_stop_at_the_ends(explorer: DispatchExplorer) -> None:
    explorer.dispatch("paid")
    back = find(explorer.widget, widgets.Button, description="Back")
    forward = find(explorer.widget, widgets.Button, description="Next")
    back.click()
    assert explorer.step == 0
    for _ in range(7):
        forward.click()
    assert explorer.step == 5
    back.click()
    assert explorer.step == 4


def test_play_drives_the_step(explorer: DispatchExplorer) -> None:
    explorer.dispatch("paid")
    before = image(explorer)
    find(explorer.widget, widgets.Play).value = 3
    assert explorer.step == 3
    assert image(explorer) != before


def test_a_new_dispatch_starts_again_at_step_zero(explorer: DispatchExplorer) -> None:
    explorer.dispatch("paid")
    explorer.step_to(4)
    explorer.dispatch("cancelled")
    assert explorer.step == 0
    assert find(explorer.widget, widgets.IntSlider).max == 3
    explorer.step_to(3)
    with pytest.raises(ValueError, match="it has 3 steps"):
        explorer.step_to(4)


def test_stepping_before_any_dispatch_says_to_dispatch_first(explorer: DispatchExplorer) -> None:
    with pytest.raises(ValueError, match=r"press Dispatch \(or call .dispatch\(\)\) first"):
        explorer.step_to(1)


# ---------------------------------------------------------------------- handler switches


def test_switching_a_handler_off_leaves_it_out_and_the_bus_untouched(
    explorer: DispatchExplorer, shop_bus: tuple[EventBus, Shop]
) -> None:
    bus, _ = shop_bus
    before = subscriptions_of(bus)
    explorer.disable("Shop.request_shipment")
    result = explorer.dispatch("paid")
    assert [call.name for call in result.calls] == ["Shop.mark_paid", "Shop.send_receipt"]
    assert subscriptions_of(bus) == before
    explorer.disable("Shop.request_shipment", off=False)
    assert len(explorer.dispatch("paid").calls) == 5


def test_unticking_the_runs_box_is_the_same_as_disable(explorer: DispatchExplorer) -> None:
    row = next(
        w
        for w in walk(explorer.widget)
        if isinstance(w, widgets.HBox)
        and any(isinstance(c, widgets.Label) and c.value == "Shop.mark_paid" for c in w.children)
    )
    runs = [c for c in row.children if isinstance(c, widgets.Checkbox) and c.description == "runs"]
    runs[0].value = False
    assert "handlers changed: press Dispatch to see what that changes" in labels(explorer)
    assert "Shop.mark_paid" not in [call.name for call in explorer.dispatch("paid").calls]


def test_a_handler_made_to_fail_raises_injected_failure_only_in_the_explorer(
    explorer: DispatchExplorer, shop_bus: tuple[EventBus, Shop]
) -> None:
    bus, shop = shop_bus
    explorer.make_fail("Shop.send_receipt")
    result = explorer.dispatch("paid")
    assert [call.name for call in result.failures] == ["Shop.send_receipt"]
    assert isinstance(result.failures[0].error, InjectedHandlerError)
    assert len(result.calls) == 5  # the other handlers still ran
    assert "Receipt for order o-1" not in [mail.subject for mail in shop.mailer.sent]
    assert bus.dispatch(OrderPaid("o-2", 1.0)).ok


def test_bus_middleware_still_wraps_handlers_in_the_explorer(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    bus, _ = shop_bus
    seen: list[str] = []

    def record(call: Any, subscription: Subscription) -> Any:
        def wrapped(event: object) -> object:
            seen.append(subscription.name)
            return call(event)

        return wrapped

    bus.use(record)
    explorer = DispatchExplorer(bus, PREPARED)
    explorer.make_fail("Shop.mark_paid")
    explorer.dispatch("cancelled")
    assert seen == ["Shop.refund_payment", "Shop.restock", "Shop.mark_cancelled"]
    explorer.dispatch("paid")
    assert seen[3] == "Shop.mark_paid"  # the middleware saw the call that was made to fail


def test_an_unknown_handler_name_is_refused_with_the_known_names(
    explorer: DispatchExplorer,
) -> None:
    with pytest.raises(ValueError, match=r"no handler is called 'mark_paid'; the bus has: "):
        explorer.disable("mark_paid")


def audit(event: OrderEvent) -> None:
    pass


def test_handlers_registered_after_the_explorer_was_made_get_switches_too(
    explorer: DispatchExplorer, shop_bus: tuple[EventBus, Shop]
) -> None:
    explorer.disable("Shop.mark_paid")
    shop_bus[0].register(OrderEvent, audit)
    explorer.disable("audit")
    result = explorer.dispatch("paid")
    assert "audit" not in [call.name for call in result.calls]
    assert "Shop.mark_paid" not in [call.name for call in result.calls]
    assert "audit" in explorer.handler_names


# ---------------------------------------------------------------------- editing fields


def test_edited_fields_change_the_dispatched_event(explorer: DispatchExplorer) -> None:
    explorer.choose("paid")
    explorer.edit(order_id="o-9", amount=5.5)
    result = explorer.dispatch()
    assert result.event == OrderPaid("o-9", 5.5)
    text_box = find(explorer.widget, widgets.Text, description="order_id")
    text_box.value = "o-10"
    find(explorer.widget, widgets.Button, description="Dispatch").click()
    assert explorer.result is not None and explorer.result.event == OrderPaid("o-10", 5.5)


def test_choosing_another_event_shows_its_fields_with_prepared_values(
    explorer: DispatchExplorer,
) -> None:
    explorer.choose("paid")
    explorer.edit(order_id="o-9")
    explorer.choose("created")
    assert find(explorer.widget, widgets.Text, description="customer_id").value == "c-7"
    assert find(explorer.widget, widgets.FloatText, description="total").value == 42.0
    fixed = [
        w.value
        for w in walk(explorer.widget)
        if isinstance(w, widgets.Label) and "items" in w.value
    ]
    assert fixed == ["items = (LineItem(sku='book', quantity=1),) (not editable here)"]
    explorer.choose("paid")
    assert explorer.chosen_event() == PREPARED["paid"]


def test_editing_a_field_wrongly_says_what_it_takes(explorer: DispatchExplorer) -> None:
    explorer.choose("paid")
    with pytest.raises(TypeError, match=r"field 'amount' takes a number, got 'lots' \(a str\)"):
        explorer.edit(amount="lots")
    with pytest.raises(ValueError, match=r"OrderPaid has no editable field 'total'"):
        explorer.edit(total=1.0)
    with pytest.raises(ValueError, match=r"no prepared event is called 'shipped'"):
        explorer.choose("shipped")


# ---------------------------------------------------------------------- construction and display


def test_events_given_as_a_list_are_named_after_their_class(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    explorer = DispatchExplorer(
        shop_bus[0], [OrderPaid("o-1"), OrderPaid("o-2"), PREPARED["cancelled"]]
    )
    assert list(explorer.events) == ["OrderPaid", "OrderPaid (2)", "OrderCancelled"]
    assert explorer.dispatch("OrderPaid (2)").event == OrderPaid("o-2")


@pytest.mark.parametrize(
    ("events", "error", "message"),
    [
        ({}, ValueError, "at least one prepared event"),
        ([OrderPaid], TypeError, r"the class OrderPaid; prepare an instance: OrderPaid\(...\)"),
        ("OrderPaid", TypeError, "a dict of name -> event or a list of events"),
    ],
)
def test_bad_prepared_events_are_refused_with_advice(
    shop_bus: tuple[EventBus, Shop], events: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        DispatchExplorer(shop_bus[0], events)


@pytest.mark.parametrize(
    ("prepared", "kind"),
    [
        ("commands", "2 commands"),
        ("both", "2 messages"),
        ("events", "1 event"),
    ],
)
def test_the_explorer_names_what_it_dispatches_commands_events_or_both(
    prepared: str, kind: str
) -> None:
    from eda_lesson import Command

    @dataclass(frozen=True)
    class Pay(Command):
        order_id: str

    @dataclass(frozen=True)
    class Cancel(Command):
        order_id: str

    bus = EventBus()
    bus.register(Pay, lambda command: None)
    bus.register(Cancel, lambda command: None)
    choices: dict[str, list[object]] = {
        "commands": [Pay("o-1"), Cancel("o-1")],
        "both": [Pay("o-1"), OrderPaid("o-1", 42.0)],
        "events": [OrderPaid("o-1", 42.0)],
    }
    explorer = DispatchExplorer(bus, choices[prepared])
    assert repr(explorer).startswith(f"DispatchExplorer: {kind}, ")
    assert explorer._choice.description == kind.split()[1].rstrip("s")


def test_text_form_is_short_and_stable(explorer: DispatchExplorer) -> None:
    assert repr(explorer) == "DispatchExplorer: 3 events, 11 handlers, not dispatched yet"
    explorer.dispatch("paid")
    explorer.step_to(2)
    assert repr(explorer) == "DispatchExplorer: 3 events, 11 handlers, step 2 of 5"
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.widget.model_id


def test_explorers_hold_values_never_output_widgets(
    explorer: DispatchExplorer, shop_bus: tuple[EventBus, Shop]
) -> None:
    for root in (explorer.widget, RegistrationExplorer(shop_bus[0]).widget):
        kinds = {type(w) for w in walk(root)}
        assert widgets.Output not in kinds
        assert widgets.Image in kinds


@dataclass(frozen=True)
class Ping:
    n: int


def ping_pong(event: Ping) -> Ping:
    return Ping(event.n + 1)


def test_a_runaway_cascade_shows_its_story_so_far_and_raises() -> None:
    bus = EventBus(max_cascade=5)
    bus.register(Ping, ping_pong)
    explorer = DispatchExplorer(bus, [Ping(0)])
    with pytest.raises(CascadeLimitError):
        explorer.dispatch()
    assert explorer.result is not None and explorer.steps == 5
    assert any(
        value.startswith("stopped: the cascade started by Ping") for value in labels(explorer)
    )
    find(explorer.widget, widgets.Button, description="Dispatch").click()  # does not raise


# ---------------------------------------------------------------------- registration explorer


def test_toggling_a_registration_off_and_on_changes_the_bus_and_the_picture(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    bus, shop = shop_bus
    explorer = RegistrationExplorer(bus)
    picture = bytes(find(explorer.widget, widgets.Image).value)
    assert repr(explorer) == "RegistrationExplorer: 11 of 11 registrations on, 5 event types"
    explorer.toggle("OrderPaid", "Shop.send_receipt", False)
    assert bus.handlers_for(OrderPaid) == [shop.mark_paid, shop.request_shipment]
    assert bytes(find(explorer.widget, widgets.Image).value) != picture
    assert repr(explorer) == "RegistrationExplorer: 10 of 11 registrations on, 5 event types"
    explorer.toggle("OrderPaid", "Shop.send_receipt", True)
    assert bus.handlers_for(OrderPaid) == [shop.mark_paid, shop.send_receipt, shop.request_shipment]


def test_unticking_a_box_unregisters_and_a_type_left_alone_stays_drawn(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    bus, _ = shop_bus
    explorer = RegistrationExplorer(bus)
    box = find(explorer.widget, widgets.Checkbox, description="OrderShipped → Shop.notify_shipped")
    box.value = False
    assert bus.handlers_for(OrderShipped) == []
    assert repr(explorer) == "RegistrationExplorer: 10 of 11 registrations on, 5 event types"
    drawn = find(explorer.widget, widgets.Image).value
    box.value = True
    assert find(explorer.widget, widgets.Image).value != drawn


def test_refresh_ticks_what_the_bus_has_after_changes_made_in_code(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    bus, shop = shop_bus
    explorer = RegistrationExplorer(bus)
    bus.unregister(OrderPaid, shop.mark_paid)
    explorer.refresh()
    box = find(explorer.widget, widgets.Checkbox, description="OrderPaid → Shop.mark_paid")
    assert box.value is False
    assert explorer._repr_mimebundle_()["text/plain"] == (
        "RegistrationExplorer: 10 of 11 registrations on, 5 event types"
    )


def test_toggling_an_unknown_registration_names_the_known_ones(
    shop_bus: tuple[EventBus, Shop],
) -> None:
    explorer = RegistrationExplorer(shop_bus[0])
    with pytest.raises(ValueError, match=r"no registration of 'audit' for 'OrderPaid'; it knows"):
        explorer.toggle("OrderPaid", "audit", True)


# ---------------------------------------------------------------------- in a real kernel

NOTEBOOK_CELLS = [
    "from eda_lesson import EventBus\n"
    "from eda_lesson.shop.events import OrderCancelled, OrderPaid\n"
    "from eda_lesson.shop.services import Shop\n"
    "from eda_lesson.views.dispatch import DispatchExplorer, RegistrationExplorer\n"
    "bus, shop = EventBus(), Shop()\n"
    "shop.register(bus)",
    "explorer = DispatchExplorer(bus, {'paid': OrderPaid('o-1', 42.0), "
    "'cancelled': OrderCancelled('o-1')})\n"
    "explorer",
    "explorer.dispatch('paid')",
    "explorer.step_to(3)\nexplorer",
    "RegistrationExplorer(bus)",
    "from eda_lesson.views.flow import draw_flow\n"
    "result = bus.dispatch(OrderPaid('o-2', 5.0))\n"
    "draw_flow(result)",
]


@pytest.mark.slow
def test_explorers_and_drawings_in_an_executed_notebook_pass_strict_nbval(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute(cwd=str(tmp_path))
    texts = [
        output["data"]["text/plain"]
        for cell in notebook.cells
        for output in cell.outputs
        if output["output_type"] == "execute_result"
    ]
    assert texts == [
        "DispatchExplorer: 2 events, 11 handlers, not dispatched yet",
        "DispatchResult(OrderPaid: 3 events, 5 handler calls)",
        "DispatchExplorer: 2 events, 11 handlers, step 3 of 5",
        "RegistrationExplorer: 11 of 11 registrations on, 5 event types",
        "<picture: dispatch of OrderPaid: 3 events, 5 handler calls>",
    ]
    drawing = notebook.cells[-1].outputs[0]["data"]
    assert drawing["image/png"]  # the learner sees the picture, without pyplot
    streams = [o for cell in notebook.cells for o in cell.outputs if o["output_type"] == "stream"]
    assert streams == []
    path = tmp_path / "explorers.ipynb"
    nbformat.write(notebook, path)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-q",
            "-c",
            "/dev/null",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 passed" in run.stdout


def test_a_handler_dispatching_on_the_given_bus_is_outside_the_picture() -> None:
    """Documented limit of dispatching through a sibling bus: return events instead."""
    bus = EventBus()
    seen: list[int] = []

    def answer_by_dispatching(event: Ping) -> None:
        if event.n == 0:
            bus.dispatch(Ping(1))

    def count(event: Ping) -> None:
        seen.append(event.n)

    bus.register(Ping, answer_by_dispatching)
    bus.register(Ping, count)
    result = DispatchExplorer(bus, [Ping(0)]).dispatch()
    assert [record.event for record in result.events] == [Ping(0)]
    assert seen == [1, 0]  # Ping(1) ran at once on the given bus, before Ping(0) was counted


def test_back_and_next_are_greyed_out_at_the_ends_only(explorer: DispatchExplorer) -> None:
    back = find(explorer.widget, widgets.Button, description="Back")
    forward = find(explorer.widget, widgets.Button, description="Next")
    assert back.disabled and forward.disabled, "nothing to step through before a dispatch"
    explorer.dispatch("paid")
    assert back.disabled and not forward.disabled
    forward.click()
    assert not back.disabled and not forward.disabled
    for _ in range(explorer.steps):
        forward.click()
    assert forward.disabled and not back.disabled and explorer.step == explorer.steps
    explorer.dispatch("paid")
    assert back.disabled and not forward.disabled, "a new dispatch starts at step 0 again"


def test_a_refused_command_is_drawn_as_its_failed_call_and_told_not_raised() -> None:
    from eda_lesson import Command

    @dataclass(frozen=True)
    class PlaceOrder(Command):
        total: float

    def place_order(command: PlaceOrder) -> str:
        if command.total <= 0:
            raise ValueError("the total must be positive")
        return "placed"

    bus = EventBus()
    bus.register(PlaceOrder, place_order)
    with pytest.raises(ValueError, match="the total must be positive"):
        bus.dispatch(PlaceOrder(0.0))  # the bus itself raises it to the caller
    explorer = DispatchExplorer(bus, {"refused": PlaceOrder(0.0), "fine": PlaceOrder(5.0)})
    find(explorer.widget, widgets.Dropdown).value = "refused"
    find(explorer.widget, widgets.Button, description="Dispatch").click()
    assert explorer.result is not None
    assert [type(call.error).__name__ for call in explorer.result.calls] == ["ValueError"]
    status = explorer.status
    assert status in [w.value for w in walk(explorer.widget) if isinstance(w, widgets.Label)]
    assert status.startswith("refused: PlaceOrder raised ValueError: the total must be positive")
    assert explorer.dispatch("fine").returned == "placed"
    assert explorer.status == ""


def test_switching_a_handler_off_and_on_keeps_the_call_order_of_its_type() -> None:
    calls: list[str] = []

    def first(event: OrderPaid) -> None:
        calls.append("first")

    def second(event: OrderPaid) -> None:
        calls.append("second")

    def third(event: OrderPaid) -> None:
        calls.append("third")

    bus = EventBus()
    for handler in (first, second, third):
        bus.register(OrderPaid, handler)
    explorer = RegistrationExplorer(bus)
    from eda_lesson import handler_name

    explorer.toggle("OrderPaid", handler_name(first), on=False)
    explorer.toggle("OrderPaid", handler_name(second), on=False)
    explorer.toggle("OrderPaid", handler_name(first), on=True)
    explorer.toggle("OrderPaid", handler_name(second), on=True)
    bus.dispatch(OrderPaid("o-1", 1.0))
    assert calls == ["first", "second", "third"], "back in their old places"


def test_a_handler_registered_after_the_registration_explorer_gets_a_checkbox() -> None:
    bus = EventBus()
    bus.register(OrderPaid, lambda event: None)
    explorer = RegistrationExplorer(bus)

    def late(event: OrderCancelled) -> None:
        return None

    bus.register(OrderCancelled, late)
    explorer.refresh()
    boxes = [w.description for w in walk(explorer.widget) if isinstance(w, widgets.Checkbox)]
    assert boxes[-1].startswith("OrderCancelled → ") and boxes[-1].endswith(".late")
    assert repr(explorer).startswith("RegistrationExplorer: 2 of 2 registrations on, 2 event")
    from eda_lesson import handler_name

    explorer.toggle("OrderCancelled", handler_name(late), on=False)
    assert bus.handlers_for(OrderCancelled) == []
