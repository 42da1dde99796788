"""Explorers a learner clicks through: dispatch an event and step through its cascade, or switch
registrations on and off and see the picture change.

:class:`DispatchExplorer` and :class:`RegistrationExplorer` are ipywidgets boxes whose content
is values: an ``Image`` holding a PNG, ``HTML``, labels. So they render from a notebook's saved
widget state without a kernel, and strict nbval passes (nothing prints into an ``Output``
widget, nothing calls ``clear_output``). Every control has a Python twin (``dispatch``,
``step_to``, ``disable``, ``make_fail``, ``toggle``) so tests and notebook cells drive them
without a browser, and each explorer has a short, stable text form for nbval to compare.

The dispatch explorer never changes the bus it is given: it dispatches through a sibling bus
built from the bus's current registrations at each Dispatch, leaving out the handlers switched
off and making the ones marked to fail raise :class:`InjectedHandlerError`. The registration
explorer does change its bus: registering and unregistering is what it shows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import ipywidgets as widgets  # type: ignore[import-untyped]
from traitlets import TraitError

from eda_lesson.core.bus import EventBus, Handler, Subscription
from eda_lesson.core.messages import Command
from eda_lesson.core.result import CascadeLimitError, DispatchResult, describe_value
from eda_lesson.core.text import plural
from eda_lesson.views.flow import FlowPicture, draw_registrations
from eda_lesson.views.graphs import StepRow, check_step, step_caption, step_rows
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import CURRENT, FADED_TEXT, FAILED, UNHANDLED
from eda_lesson.views.sheet import figure_to_png, placeholder_png
from eda_lesson.views.stepper import Explorer, Quiet, Stepper, SteppingExplorer

__all__ = ["DispatchExplorer", "InjectedHandlerError", "RegistrationExplorer"]


class _ShowingBus(EventBus):
    """The explorer's bus: a refused command is drawn as its failed call, not raised, since
    a button click has nobody to raise to (``dispatch`` on the real bus raises it)."""

    def _raise_a_failed_command(self, cascade: DispatchResult) -> None:
        return None


def _refusal(result: DispatchResult) -> str:
    """The status line for a command its handler refused ("" for anything else)."""
    error = result.first_error() if isinstance(result.message, Command) else None
    if error is None:
        return ""
    return (
        f"refused: {type(result.message).__name__} raised {type(error).__name__}: {error} "
        "(dispatched on the bus itself, this error reaches the caller)"
    )


class InjectedHandlerError(RuntimeError):
    """Raised instead of a handler that an explorer was told to make fail."""


# ---------------------------------------------------------------------- dispatch explorer


class DispatchExplorer(SteppingExplorer):
    """Pick a prepared event (and edit its fields), dispatch it, step through the cascade.

    ``events`` is a dict of name -> event, or a list of events (named after their class).
    The picture and the step table show the cascade after the chosen step; checkboxes switch
    handlers off or make them fail for the next dispatch, without touching ``bus``. Failures
    are recorded and shown, never raised, even when ``bus`` is ``fail_fast``.

    :attr:`step` is the step shown (0: dispatched, no handler ran yet) of :attr:`steps`, the
    handler calls of the last dispatch. When the cascade has folded groups of alike events
    (see :mod:`eda_lesson.views.folding`), it steps group by group instead: each step shows
    the next handler call drawn on its own, or the end of the next folded group, and
    :attr:`stops` maps these steps to the dispatch's own steps. A select box lists the folded
    groups: the ones chosen in it (or with :meth:`unfold`) are drawn event by event, the
    others stay folded, and the picture still fits a page.

    A handler that calls ``bus.dispatch`` on the bus it was given (instead of returning its
    events) dispatches there, outside the explorer's picture: return events to see them here.

    >>> explorer = DispatchExplorer(bus, {"paid": OrderPaid("o-1", 42.0)})  # doctest: +SKIP
    >>> explorer.dispatch("paid"); explorer.step_to(2)  # doctest: +SKIP
    """

    def __init__(self, bus: EventBus, events: Mapping[str, object] | Sequence[object]) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(
                f"DispatchExplorer(bus, events) takes an EventBus first, got {describe_value(bus)}"
            )
        self.bus = bus
        self.events: dict[str, object] = _named_events(events)
        self._result: DispatchResult | None = None
        self._picture: FlowPicture | None = None
        self._stops: list[int] = []
        self._rows: list[StepRow] = []
        self._inputs: dict[str, Any] = {}
        self._build_controls()
        self._build_handler_switches()
        self._show_fields()
        self._image.value = placeholder_png("choose an event and press Dispatch")

    # -- the Python API -----------------------------------------------------------------------

    @property
    def result(self) -> DispatchResult | None:
        """The result of the last dispatch (None before the first)."""
        return self._result

    @property
    def stops(self) -> list[int]:
        """The dispatch's step that each step of the explorer shows (step ``k`` shows
        ``stops[k - 1]``): every step, unless groups were folded."""
        return list(self._stops)

    @property
    def status(self) -> str:
        """The status line: why a cascade stopped, a command refused, "" when all went on."""
        return str(self._status.value)

    @property
    def handler_names(self) -> list[str]:
        """The handlers the explorer has switches for, in the bus's registration order."""
        return list(self._switches)

    def chosen_event(self) -> object:
        """The event the next Dispatch sends: the chosen prepared event with the edited fields."""
        prepared = self.events[self._choice.value]
        changes = {name: box.value for name, box in self._inputs.items()}
        if not changes:  # not a dataclass, or nothing in it a learner can edit
            return prepared
        return dataclasses.replace(cast(Any, prepared), **changes)

    def dispatch(self, name: str | None = None) -> DispatchResult:
        """Dispatch the chosen event (or the prepared event ``name``) and show step 0.

        Handlers switched off are left out, handlers marked to fail raise
        :class:`InjectedHandlerError`; the bus given to the explorer is not changed.
        """
        if name is not None:
            self.choose(name)
        self._refresh_switches()
        with self._quiet.hold():  # a new cascade: its groups start folded
            self._unfold.options = []
        try:
            result = self._sibling_bus().dispatch(self.chosen_event())
        except CascadeLimitError as error:
            self._show_result(error.result, f"stopped: {error}")
            raise
        self._show_result(result, _refusal(result))
        return result

    def choose(self, name: str) -> None:
        """Choose the prepared event ``name`` (its fields are reset to the prepared values)."""
        if name not in self.events:
            known = ", ".join(repr(n) for n in self.events)
            raise ValueError(f"no prepared event is called {name!r}; the prepared ones are {known}")
        self._choice.value = name

    def edit(self, **changes: object) -> None:
        """Change fields of the chosen event for the next dispatch: ``edit(order_id="o-2")``."""
        for name, value in changes.items():
            box = self._inputs.get(name)
            if box is None:
                editable = ", ".join(self._inputs) or "none"
                raise ValueError(
                    f"{type(self.events[self._choice.value]).__name__} has no editable field "
                    f"{name!r} (editable here: {editable})"
                )
            try:
                box.value = value
            except TraitError:
                raise TypeError(
                    f"field {name!r} takes {_kind_of(box.value)}, got {describe_value(value)}"
                ) from None

    def step_to(self, step: int) -> None:
        """Show the cascade after ``step`` (0 to :attr:`steps`)."""
        if self._result is None:
            raise ValueError(
                "nothing to step through yet: press Dispatch (or call .dispatch()) first"
            )
        if len(self._stops) == len(self._result.calls):
            check_step(self._result, step)
        elif isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.steps:
            raise ValueError(
                f"step {step!r} is not a step here: this folded cascade is stepped group by "
                f"group in {plural(self.steps, 'step')}, so choose a whole number from 0 to "
                f"{self.steps}"
            )
        self._stepper.step_to(step)

    def disable(self, handler_name: str, off: bool = True) -> None:
        """Switch a handler off (or back on with ``off=False``) for the next dispatch."""
        self._switch(handler_name).runs.value = not off

    def fold(self, on: bool = True) -> None:
        """Fold alike events into groups (the default), or draw every event (``on=False``);
        the last dispatch is shown again from step 0, stepped call by call when unfolded."""
        self._fold.value = on

    @property
    def groups(self) -> dict[int, str]:
        """The groups of the last dispatch that can be unfolded or folded again, by their
        first event's index: ``{1: "x 200 OrderPaid from #1"}`` (the ones unfolded included)."""
        return {first: label for label, first in self._unfold.options}

    @property
    def unfolded(self) -> tuple[int, ...]:
        """The first event indexes of the groups drawn event by event."""
        return tuple(self._unfold.value)

    def unfold(self, *firsts: int) -> None:
        """Draw the folded groups whose first events are ``firsts`` event by event, the other
        groups still folded (``unfold()`` folds them all again); the last dispatch is shown
        again from step 0. The groups are those of :attr:`groups`."""
        unknown = [first for first in firsts if first not in self.groups]
        if unknown:
            known = ", ".join(f"{first} ({label})" for first, label in self.groups.items())
            raise ValueError(
                f"no folded group starts at event {unknown[0]!r}; choose among: {known or 'none'}"
            )
        self._unfold.value = tuple(dict.fromkeys(firsts))

    def make_fail(self, handler_name: str, fail: bool = True) -> None:
        """Make a handler raise :class:`InjectedHandlerError` in the next dispatch (or stop it)."""
        self._switch(handler_name).fails.value = fail

    # -- display ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        where = (
            "not dispatched yet" if self._result is None else f"step {self.step} of {self.steps}"
        )
        return (
            f"DispatchExplorer: {plural(len(self.events), self._kind)}, "
            f"{plural(len(self._switches), 'handler')}, {where}"
        )

    @property
    def _kind(self) -> str:
        """What the explorer dispatches: 'event', 'command', or 'message' for a mix of both."""
        commands = sum(isinstance(message, Command) for message in self.events.values())
        if commands == 0:
            return "event"
        return "command" if commands == len(self.events) else "message"

    # -- building -----------------------------------------------------------------------------

    def _build_controls(self) -> None:
        self._choice = widgets.Dropdown(options=list(self.events), description=self._kind)
        self._choice.observe(self._on_choice, "value")
        self._dispatch_button = widgets.Button(
            description="Dispatch", button_style="primary", tooltip="dispatch the chosen event"
        )
        self._dispatch_button.on_click(self._on_dispatch)
        self._fields = widgets.VBox()
        self._stepper = Stepper(self._show_step)
        self._caption = widgets.Label(value="no dispatch yet")
        self._status = widgets.Label(value="")
        self._image = widgets.Image(format="png")
        self._table = widgets.HTML(value="")
        self._handlers = widgets.VBox()
        # Shown only once a cascade has alike events to fold: small cascades look as before.
        self._fold = widgets.Checkbox(
            value=True, description="fold alike events (x n)", indent=False
        )
        self._fold.observe(self._on_fold, "value")
        self._unfold = widgets.SelectMultiple(
            options=[], description="unfold", rows=3, layout=widgets.Layout(width="360px")
        )
        self._unfold.observe(self._on_fold, "value")
        self._folding = widgets.HBox([self._fold, self._unfold])
        self._quiet = Quiet()
        self._root = widgets.VBox(
            [
                widgets.HBox([self._choice, self._dispatch_button]),
                self._fields,
                self._stepper.widget,
                self._caption,
                self._image,
                widgets.HBox([self._table, self._handlers]),
                self._status,
            ]
        )

    def _build_handler_switches(self) -> None:
        self._switches: dict[str, _Switch] = {}
        for name in _handler_names(self.bus):
            switch = _Switch(name)
            switch.runs.observe(self._on_switch, "value")
            switch.fails.observe(self._on_switch, "value")
            self._switches[name] = switch
        header = widgets.HTML("<b>handlers</b> (for the next dispatch)")
        self._handlers.children = [header, *(s.row for s in self._switches.values())]

    def _refresh_switches(self) -> None:
        """Give handlers registered since the explorer was made a switch too."""
        names = _handler_names(self.bus)
        if any(name not in self._switches for name in names):
            kept = dict(self._switches)
            self._build_handler_switches()
            for name, old in kept.items():
                if name in self._switches:
                    self._switches[name].runs.value = old.runs.value
                    self._switches[name].fails.value = old.fails.value

    def _show_fields(self) -> None:
        prepared = self.events[self._choice.value]
        self._inputs = {}
        rows = []
        if dataclasses.is_dataclass(prepared):
            for field in dataclasses.fields(prepared):
                if not field.init:
                    continue
                value = getattr(prepared, field.name)
                box = _field_input(field.name, value)
                if box is None:
                    text = f"{field.name} = {shorten(repr(value), 60)} (not editable here)"
                    rows.append(widgets.Label(value=text))
                else:
                    self._inputs[field.name] = box
                    rows.append(box)
        self._fields.children = rows

    # -- dispatching and showing ----------------------------------------------------------------

    def _sibling_bus(self) -> EventBus:
        """A bus like ours for one dispatch: same middleware, the switched-on handlers."""
        sibling = _ShowingBus(
            max_cascade=self.bus.max_cascade,
            middleware=self.bus.middleware,
            dependencies=self.bus.dependencies,
            collect_from=self.bus.collect_from,
        )
        for subscription in self.bus.subscriptions():
            switch = self._switches.get(subscription.name)
            if switch is not None and not switch.runs.value:
                continue
            layers = subscription.middleware
            if switch is not None and switch.fails.value:
                layers = (*layers, _fail_instead)  # innermost: the bus's middleware still sees it
            sibling.register(subscription.message_type, subscription.handler, middleware=layers)
        return sibling

    def _show_result(self, result: DispatchResult, status: str) -> None:
        self._result = result
        unfold = set(self._unfold.value)
        # Drawn once per dispatch; each step only restyles it (see FlowPicture).
        self._picture = picture = FlowPicture(result, fold=self._fold.value, unfold=unfold)
        self._rows = step_rows(result, fold=self._fold.value, unfold=unfold)
        self._list_groups(picture)
        if self._folding not in self._root.children and (picture.groups or not self._fold.value):
            children = self._root.children
            self._root.children = [*children[:3], self._folding, *children[3:]]
        self._stops = list(range(1, len(result.calls) + 1))
        if picture.groups:
            drawn = {
                data["step"] for _, data in picture.graph.nodes(data=True) if data["kind"] == "call"
            }
            ends = {group.steps[-1] for group in picture.groups if group.steps}
            self._stops = sorted(drawn | ends)
            if picture.left_out and self._stops[-1:] != [len(result.calls)]:
                self._stops.append(len(result.calls))
        self._status.value = status
        self._stepper.reset(len(self._stops))

    def _list_groups(self, picture: FlowPicture) -> None:
        """The unfold box's choices: the groups drawn folded, and the ones unfolded."""
        options = dict(self._unfold.options)
        chosen = set(self._unfold.value)
        listed = [(label, first) for label, first in options.items() if first in chosen]
        drawn = {node[1] for node in picture.graph if node[0] == "group"}
        listed += [
            (f"x {group.count} {group.type_name} from #{group.first}", group.first)
            for group in picture.groups
            if group.first in drawn
        ]
        with self._quiet.hold():
            self._unfold.options = sorted(listed, key=lambda option: option[1])
            self._unfold.value = tuple(sorted(chosen & {first for _, first in listed}))
        self._unfold.disabled = not self._fold.value

    def _show_step(self, step: int) -> None:
        result, picture = self._result, self._picture
        if result is None or picture is None:
            return
        real = self._stops[step - 1] if step else 0
        self._image.value = self._stepper.png(lambda: picture.show(real).figure)
        self._table.value = _step_table_html(self._rows, real)
        caption = step_caption(result, real)
        if len(self._stops) != len(result.calls):
            caption = f"{step} of {len(self._stops)} (group by group): {caption}"
        self._caption.value = caption

    # -- events from the controls ---------------------------------------------------------------

    def _on_dispatch(self, _button: object) -> None:
        # A cascade stopped at its limit is already told in the status line, and a click
        # has nobody to raise to.
        with contextlib.suppress(CascadeLimitError):
            self.dispatch()

    def _on_fold(self, _change: Mapping[str, Any]) -> None:
        if self._result is not None and not self._quiet:
            self._show_result(self._result, self._status.value)

    def _on_choice(self, _change: Mapping[str, Any]) -> None:
        self._show_fields()

    def _on_switch(self, _change: Mapping[str, Any]) -> None:
        self._status.value = "handlers changed: press Dispatch to see what that changes"

    def _switch(self, handler_name: str) -> _Switch:
        self._refresh_switches()
        switch = self._switches.get(handler_name)
        if switch is None:
            known = ", ".join(self._switches) or "none"
            raise ValueError(f"no handler is called {handler_name!r}; the bus has: {known}")
        return switch


class _Switch:
    """The two checkboxes of one handler: does it run, and is it made to fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = widgets.Checkbox(value=True, description="runs", indent=False)
        self.fails = widgets.Checkbox(value=False, description="fails", indent=False)
        for box in (self.runs, self.fails):
            box.layout.width = "70px"
        label = widgets.Label(value=shorten(name, 32), layout=widgets.Layout(width="220px"))
        self.row = widgets.HBox([label, self.runs, self.fails])


def _fail_instead(_call: Handler, subscription: Subscription) -> Handler:
    """Middleware that raises instead of calling the handler."""

    def fail(_event: object) -> None:
        raise InjectedHandlerError(
            f"{subscription.name} was made to fail in the explorer (untick 'fails' to let it run)"
        )

    return fail


def _named_events(events: Mapping[str, object] | Sequence[object]) -> dict[str, object]:
    if isinstance(events, Mapping):
        named = {str(name): event for name, event in events.items()}
    elif isinstance(events, (list, tuple)):
        named = {}
        for event in events:
            name = type(event).__name__
            number = 2
            while name in named:
                name, number = f"{type(event).__name__} ({number})", number + 1
            named[name] = event
    else:
        raise TypeError(
            "DispatchExplorer(bus, events): events is a dict of name -> event or a list of "
            f"events, got {describe_value(events)}"
        )
    if not named:
        raise ValueError("DispatchExplorer needs at least one prepared event to dispatch")
    for name, event in named.items():
        if isinstance(event, type):
            raise TypeError(
                f"prepared event {name!r} is the class {event.__qualname__}; prepare an instance: "
                f"{event.__qualname__}(...)"
            )
    return named


def _handler_names(bus: EventBus) -> list[str]:
    return list(dict.fromkeys(s.name for s in bus.subscriptions()))


def _field_input(name: str, value: object) -> Any:
    """A text or number box for a field, or None when the field's value is not a simple one."""
    common = {"description": name, "style": {"description_width": "initial"}}
    if isinstance(value, bool):
        return widgets.Checkbox(value=value, indent=False, **common)
    if isinstance(value, int):
        return widgets.IntText(value=value, **common)
    if isinstance(value, float):
        return widgets.FloatText(value=value, **common)
    if isinstance(value, str):
        return widgets.Text(value=value, **common)
    return None


def _kind_of(value: object) -> str:
    return {bool: "True or False", int: "a whole number", float: "a number", str: "text"}.get(
        type(value), type(value).__name__
    )


def _step_table_html(rows: list[StepRow], step: int) -> str:
    """The step table as HTML: done rows plain, the current one highlighted, the rest grey."""
    cells = ["<th style='text-align:left;padding:2px 8px'>" + h + "</th>" for h in _HEADINGS]
    lines = [_TABLE_OPEN, "<tr>" + "".join(cells) + "</tr>"]
    calls_so_far = 0
    for row in rows:
        if row.step is None:
            reached = step >= calls_so_far
        else:
            calls_so_far += row.calls
            reached = row.step <= step
        style, marker = _row_style(row, step, reached)
        outcome = row.outcome if reached else "…"
        values = [
            marker + ("-" if row.step is None else str(row.step)),
            row.event,
            row.handler or "(none)",
            outcome,
        ]
        tds = "".join(f"<td style='padding:2px 8px'>{html.escape(v)}</td>" for v in values)
        lines.append(f"<tr style='{style}'>{tds}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


_HEADINGS = ("step", "event", "handler", "outcome")
_TABLE_OPEN = (
    "<table class='eda-step-table' style='border-collapse:collapse;"
    "font-family:monospace;font-size:12px'>"
)


def _row_style(row: StepRow, step: int, reached: bool) -> tuple[str, str]:
    if row.step is not None and row.step == step:
        return f"background:{CURRENT.fill};font-weight:bold", "▶ "
    if not reached:
        return f"color:{FADED_TEXT}", ""
    if row.failed:
        return f"color:{FAILED.words}", ""
    if row.unhandled:
        return f"color:{UNHANDLED.words}", ""
    return "", ""


# ---------------------------------------------------------------------- registration explorer


class RegistrationExplorer(Explorer):
    """The registration graph of ``bus``, with a checkbox per registration to switch it.

    Unticking unregisters the handler from that event type on ``bus`` itself; ticking
    registers it again in its old place among that type's handlers, so switching one off and
    on never changes the order the others are called in. Handlers registered on ``bus`` after
    the explorer was made get a checkbox at the next :meth:`refresh` (or toggle).
    ``event_types`` adds types to keep in the picture even with no handler left.
    """

    def __init__(self, bus: EventBus, *, event_types: Iterable[type] = ()) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(
                f"RegistrationExplorer(bus) takes an EventBus, got {describe_value(bus)}"
            )
        self.bus = bus
        self._registrations: list[Subscription] = bus.subscriptions()
        self._event_types = tuple(
            dict.fromkeys([*(s.message_type for s in self._registrations), *event_types])
        )
        self._boxes: list[Any] = [self._box_for(s) for s in self._registrations]
        self._image = widgets.Image(format="png")
        self._caption = widgets.Label()
        self._header = widgets.HTML("<b>registrations</b> (untick to unregister)")
        self._list = widgets.VBox([self._header, *self._boxes])
        self._root = widgets.HBox([widgets.VBox([self._caption, self._image]), self._list])
        self.refresh()

    def _box_for(self, subscription: Subscription) -> Any:
        text = f"{subscription.message_type.__qualname__} → {subscription.name}"
        box = widgets.Checkbox(value=True, description=text, indent=False)
        box.observe(self._on_box(subscription), "value")
        return box

    def _adopt_new_registrations(self) -> None:
        """A checkbox for each registration the bus gained since the explorer last looked."""
        known = {(s.message_type, s.key) for s in self._registrations}
        new = [s for s in self.bus.subscriptions() if (s.message_type, s.key) not in known]
        for subscription in new:
            self._registrations.append(subscription)
            self._boxes.append(self._box_for(subscription))
            if subscription.message_type not in self._event_types:
                self._event_types = (*self._event_types, subscription.message_type)
        if new:
            self._list.children = (self._header, *self._boxes)

    def toggle(self, event_type_name: str, handler_name: str, on: bool) -> None:
        """Register (``on=True``) or unregister a handler for an event type, by their names."""
        self._adopt_new_registrations()
        for subscription, box in zip(self._registrations, self._boxes, strict=True):
            if (subscription.message_type.__qualname__, subscription.name) == (
                event_type_name,
                handler_name,
            ):
                box.value = on
                self._apply(subscription, on)  # also when the box already showed it
                return
        known = ", ".join(
            f"({s.message_type.__qualname__!r}, {s.name!r})" for s in self._registrations
        )
        raise ValueError(
            f"the explorer knows no registration of {handler_name!r} for {event_type_name!r}; "
            f"it knows {known}"
        )

    def refresh(self) -> None:
        """Redraw, and tick exactly the registrations the bus has now."""
        self._adopt_new_registrations()
        for subscription, box in zip(self._registrations, self._boxes, strict=True):
            box.value = self._registered(subscription)
        figure = draw_registrations(self.bus, event_types=self._event_types)
        self._image.value = figure_to_png(figure)
        self._caption.value = self._summary()

    def __repr__(self) -> str:
        return f"RegistrationExplorer: {self._summary()}"

    def _summary(self) -> str:
        on = sum(1 for s in self._registrations if self._registered(s))
        return (
            f"{on} of {plural(len(self._registrations), 'registration')} on, "
            f"{plural(len(self._event_types), 'event type')}"
        )

    def _registered(self, subscription: Subscription) -> bool:
        return any(
            s.message_type is subscription.message_type and s.key == subscription.key
            for s in self.bus.subscriptions()
        )

    def _on_box(self, subscription: Subscription) -> Callable[[Mapping[str, Any]], None]:
        def changed(change: Mapping[str, Any]) -> None:
            self._apply(subscription, bool(change["new"]))

        return changed

    def _apply(self, subscription: Subscription, on: bool) -> None:
        if on == self._registered(subscription):
            return
        if on:
            self._register_in_place(subscription)
        else:
            self.bus.unregister(subscription.message_type, subscription.handler)
        self.refresh()

    def _register_in_place(self, subscription: Subscription) -> None:
        """Register ``subscription`` again where it was: the handlers of its type that come
        after it are taken off and put back behind it (``register`` only appends)."""
        same_type = [s for s in self._registrations if s.message_type is subscription.message_type]
        after = same_type[same_type.index(subscription) + 1 :]
        back_on = [s for s in after if self._registered(s)]
        for later in back_on:
            self.bus.unregister(later.message_type, later.handler)
        for again in (subscription, *back_on):
            self.bus.register(again.message_type, again.handler, middleware=again.middleware)
