"""The one stepper (eda_lesson.views.stepper): Play, Back, a slider and Next, a guard against
re-entry and a PNG per step, written once and used by every explorer that steps."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from matplotlib.figure import Figure

from eda_lesson import EventBus
from eda_lesson.shop.events import LineItem, OrderCreated, OrderPaid
from eda_lesson.shop.services import Shop
from eda_lesson.transport.redis_streams import Delivery
from eda_lesson.views import stepper as stepper_module
from eda_lesson.views.broker import DeliveryExplorer
from eda_lesson.views.dispatch import DispatchExplorer
from eda_lesson.views.history import HistoryExplorer
from eda_lesson.views.sagas import SagaExplorer
from eda_lesson.views.sheet import NotebookFigure
from eda_lesson.views.stepper import Explorer, Quiet, Stepper

VIEWS = Path(stepper_module.__file__).parent


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def button(root: Any, description: str) -> Any:
    (found,) = [
        w for w in walk(root) if isinstance(w, widgets.Button) and w.description == description
    ]
    return found


class Recorder:
    """A stepper's show callback that remembers what it was asked to show."""

    def __init__(self) -> None:
        self.shown: list[int] = []

    def __call__(self, step: int) -> None:
        self.shown.append(step)


def test_every_control_shows_the_step_it_moves_to_and_stops_at_the_ends() -> None:
    show = Recorder()
    stepper = Stepper(show)
    stepper.reset(3)
    assert (stepper.step, stepper.steps, show.shown) == (0, 3, [0])
    button(stepper.widget, "Back").click()  # already at 0: nothing to show
    for _ in range(5):
        button(stepper.widget, "Next").click()
    assert stepper.step == 3 and show.shown == [0, 1, 2, 3]
    next(w for w in walk(stepper.widget) if isinstance(w, widgets.Play)).value = 1
    stepper.step_to(2)
    assert show.shown == [0, 1, 2, 3, 1, 2]


def test_a_reset_shows_the_step_asked_for_once_and_drops_the_kept_pictures() -> None:
    show, drawn = Recorder(), []
    stepper = Stepper(show)

    def draw() -> Figure:
        drawn.append(stepper.step)
        return NotebookFigure(figsize=(1, 1))

    stepper.reset(4, at=4)
    assert show.shown == [4] and stepper.step == 4
    first = stepper.png(draw)
    assert stepper.png(draw) is first and drawn == [4]  # kept: drawn once
    assert stepper.png(draw, "other picture") is not first and drawn == [4, 4]
    stepper.reset(2)
    assert show.shown == [4, 0]
    stepper.step_to(2)
    stepper.png(draw)
    assert drawn == [4, 4, 2]


def test_while_quiet_the_controls_move_without_showing_anything() -> None:
    show = Recorder()
    stepper = Stepper(show)
    stepper.reset(5)
    with stepper.quiet.hold():
        stepper.step_to(4)
        assert bool(stepper.quiet)
    assert stepper.step == 4 and show.shown == [0] and not stepper.quiet


def test_quiet_can_be_held_inside_itself() -> None:
    quiet = Quiet()
    with quiet.hold():
        with quiet.hold():
            pass
        assert quiet
    assert not quiet


# ---------------------------------------------------------------------- every explorer


def dispatch_explorer() -> DispatchExplorer:
    bus = EventBus()
    Shop().register(bus)
    explorer = DispatchExplorer(bus, [OrderPaid("o-1", 42.0)])
    explorer.dispatch()
    return explorer


EXPLORERS: dict[str, Callable[[], Any]] = {
    "DispatchExplorer": dispatch_explorer,
    "HistoryExplorer": lambda: HistoryExplorer(
        [OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),)), OrderPaid("o-1", 42.0)]
    ),
    "SagaExplorer": SagaExplorer,
    "DeliveryExplorer": lambda: DeliveryExplorer(
        [Delivery(f"evt-{n}", "OrderPaid", "w1", 1, "handled") for n in (1, 2)]
    ),
}


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_every_explorer_that_steps_uses_the_one_stepper(name: str) -> None:
    explorer = EXPLORERS[name]()
    assert isinstance(explorer, Explorer)
    steppers = [value for value in vars(explorer).values() if isinstance(value, Stepper)]
    assert len(steppers) == 1
    (stepper,) = steppers
    assert stepper.widget in list(walk(explorer.widget))
    plays = [w for w in walk(explorer.widget) if isinstance(w, widgets.Play)]
    assert plays == [w for w in walk(stepper.widget) if isinstance(w, widgets.Play)]
    stepper.step_to(0)
    button(explorer.widget, "Next").click()
    assert stepper.step == 1
    button(explorer.widget, "Back").click()
    assert stepper.step == 0
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)


def definitions(name: str) -> list[str]:
    """The modules of the views that define a function or method ``name``."""
    return sorted(
        path.name
        for path in VIEWS.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == name
    )


def calls_of(attribute: str) -> list[str]:
    """The modules of the views that call ``widgets.<attribute>``."""
    return sorted(
        {
            path.name
            for path in VIEWS.glob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
            and node.attr == attribute
            and isinstance(node.value, ast.Name)
            and node.value.id == "widgets"
        }
    )


def test_the_step_controls_the_display_bundle_and_the_guard_are_written_once() -> None:
    assert calls_of("Play") == ["stepper.py"]
    assert definitions("_repr_mimebundle_") == ["stepper.py"]
    assert definitions("widget_bundle") == ["stepper.py"]
    assert definitions("nudge") == ["stepper.py"]
    assert definitions("_placeholder") == definitions("_placeholder_png") == []
