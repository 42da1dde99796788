"""The parts every explorer shares: the step-through controls, a guard against re-entry, and
the display that gives a widget a short text form.

- :class:`Stepper` is a row of Play, Back, a slider and Next over steps ``0`` to
  :attr:`~Stepper.steps`. It calls the explorer back with the step to show whenever the step
  changes (whichever control moved it, or :meth:`~Stepper.step_to` from Python), and keeps the
  PNG of every step already drawn, so moving back is instant.
- :class:`Quiet` is the guard an explorer holds while it moves its own controls, so that
  their change handlers do not run again.
- :class:`Explorer` is the base of every explorer: ``widget`` is its box, and Jupyter shows
  the box with the explorer's ``repr`` as its text (what nbval compares).

Nothing here knows what is being stepped through; the explorers say what each step shows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.figure import Figure

from eda_lesson.views.sheet import figure_to_png

__all__ = ["Explorer", "Quiet", "Stepper", "SteppingExplorer", "widget_bundle"]


def widget_bundle(root: Any, text: str, **kwargs: Any) -> dict[str, Any]:
    """A widget's display data with ``text`` as its plain-text form, in place of the long
    repr ipywidgets gives (the text is what nbval compares; the widget is what a reader sees)."""
    bundle = dict(root._repr_mimebundle_(**kwargs) or {})
    bundle["text/plain"] = text
    return bundle


class Explorer:
    """A widget box (``_root``) that Jupyter shows with this object's ``repr`` as its text."""

    _root: Any

    @property
    def widget(self) -> Any:
        """The ipywidgets box holding every control and picture; display it, or put it in a
        layout of your own."""
        return self._root

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return widget_bundle(self._root, repr(self), **kwargs)


class SteppingExplorer(Explorer):
    """An explorer with a :class:`Stepper`: :attr:`step` is the step shown."""

    _stepper: Stepper

    @property
    def step(self) -> int:
        """The step shown (0: before the first one)."""
        return self._stepper.step

    @property
    def steps(self) -> int:
        """The last step of what is shown (0 before anything ran)."""
        return self._stepper.steps


class Quiet:
    """True while an explorer moves its own controls: their handlers then do nothing.

    >>> quiet = Quiet()
    >>> with quiet.hold():
    ...     bool(quiet)
    True
    >>> bool(quiet)
    False
    """

    def __init__(self) -> None:
        self._depth = 0

    def __bool__(self) -> bool:
        return self._depth > 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


class Stepper:
    """Play, Back, a slider and Next over the steps ``0`` to :attr:`steps`.

    ``show(step)`` is called whenever the step changes. ``description`` names the slider
    ("step", "version", "delivery") and ``interval`` is the milliseconds Play waits between
    steps. :meth:`png` keeps each step's picture, until :meth:`reset` starts a new run.
    """

    def __init__(
        self, show: Callable[[int], None], *, description: str = "step", interval: int = 900
    ) -> None:
        self._show = show
        self.steps = 0
        """The last step."""
        self.quiet = Quiet()
        self._pngs: dict[tuple[int, Hashable], bytes] = {}
        self._play = widgets.Play(min=0, max=0, interval=interval, show_repeat=False)
        self._slider = widgets.IntSlider(min=0, max=0, description=description)
        widgets.link((self._play, "value"), (self._slider, "value"))
        self._slider.observe(self._on_step, "value")
        self._back = widgets.Button(
            description="Back", icon="step-backward", tooltip="previous step", disabled=True
        )
        self._forward = widgets.Button(
            description="Next", icon="step-forward", tooltip="next step", disabled=True
        )
        self._back.on_click(lambda _: self.nudge(-1))
        self._forward.on_click(lambda _: self.nudge(+1))
        self._slider.observe(self._on_end, "value")
        self.widget = widgets.HBox([self._play, self._back, self._slider, self._forward])

    @property
    def step(self) -> int:
        """The step shown."""
        return int(self._slider.value)

    def reset(self, steps: int, *, at: int = 0) -> None:
        """A new run of ``steps`` steps, showing step ``at``: every kept picture is dropped."""
        self._pngs = {}
        self.steps = steps
        with self.quiet.hold():
            self._slider.value = self._play.value = 0
            self._slider.max = self._play.max = steps
            self._slider.value = self._play.value = at
        self._show_ends()
        self._show(at)

    def step_to(self, step: int) -> None:
        """Show ``step`` (the explorer has checked that the run has it)."""
        self._slider.value = step

    def nudge(self, by: int) -> None:
        """One step back (``-1``) or on (``+1``), stopping at either end."""
        self._slider.value = min(max(self.step + by, 0), self.steps)

    def png(self, draw: Callable[[], Figure], kind: Hashable = None) -> bytes:
        """The PNG of ``draw()`` at the step shown (of the picture ``kind``, when a step
        shows several), drawn only the first time the step is shown."""
        key = (self.step, kind)
        png = self._pngs.get(key)
        if png is None:
            png = self._pngs[key] = figure_to_png(draw())
        return png

    @property
    def at_start(self) -> bool:
        """True when Back has nowhere to go (the button is greyed out then)."""
        return bool(self._back.disabled)

    @property
    def at_end(self) -> bool:
        """True when Next has nowhere to go (the button is greyed out then)."""
        return bool(self._forward.disabled)

    def _show_ends(self) -> None:
        self._back.disabled = self.step <= 0
        self._forward.disabled = self.step >= self.steps

    def _on_end(self, _change: Mapping[str, Any]) -> None:
        self._show_ends()

    def _on_step(self, _change: Mapping[str, Any]) -> None:
        if not self.quiet:
            self._show(self.step)
