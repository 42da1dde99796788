"""Sagas as data: a state machine of states and transitions labelled by event type names.

A saga (or process manager) follows a business process that spans several participants. Its
shape is plain data: a :class:`StateMachine` names the states and the :class:`Transition`
each event type causes, what the process sends on the way, and which steps undo earlier ones
(compensation). Being data, it can be printed, checked and drawn before anything runs.

A state can have a :class:`Deadline`: how long the process waits there for an answer, how
many times it asks again, and which trigger it takes when it gives up (the failure of that
step, so that giving up runs the same compensation as a refusal). A state whose deadline names
no such trigger is a step that cannot be undone automatically (the pivot: the money is
taken); giving up there flags the saga for a person instead.

What this module does not do: keep a saga's state (an aggregate does that, see
:mod:`eda_lesson.shop.fulfilment` for the shop's), send the commands, or watch the clock (the
process manager that owns the sagas checks their deadlines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Deadline", "StateMachine", "Transition"]


# ---------------------------------------------------------------------- the state machine


@dataclass(frozen=True)
class Transition:
    """``source --trigger--> target``, sending ``sends`` (a message type name, or "")."""

    source: str
    trigger: str
    """The name of the event type that moves the process."""
    target: str
    sends: str = ""
    compensating: bool = False
    """True for the steps that undo earlier ones."""

    def __post_init__(self) -> None:
        for field_name in ("source", "trigger", "target"):
            _require_name(field_name, getattr(self, field_name), "a state's or event type's")
        if self.sends != "":
            _require_name("sends", self.sends, "the message type's")
        if not isinstance(self.compensating, bool):
            raise TypeError(f"compensating is True or False, got {self.compensating!r}")

    @property
    def label(self) -> str:
        return f"{self.trigger} / {self.sends}" if self.sends else self.trigger


def _require_name(field_name: str, value: object, whose: str) -> None:
    """A TypeError unless ``value`` is a non-empty str: the machine is data, names not classes."""
    if isinstance(value, str) and value.strip():
        return
    if isinstance(value, type):
        raise TypeError(
            f"{field_name} takes {whose} name, a str: write {field_name}="
            f"{value.__name__!r}, not the class {value.__name__}"
        )
    raise TypeError(f"{field_name} takes {whose} name, a non-empty str; got {value!r}")


@dataclass(frozen=True)
class Deadline:
    """How long a process waits in one state for an answer, and what it does then."""

    seconds: float
    """Time to wait after sending the state's command (on the process manager's clock)."""
    retries: int = 0
    """How many times the command is sent again before giving up."""
    gives_up_as: str = ""
    """The trigger taken on giving up (a failure of the step, such as "PaymentFailed"); ""
    for a step that cannot be undone automatically: the saga is flagged as stalled."""

    def __post_init__(self) -> None:
        seconds = self.seconds
        if isinstance(seconds, bool) or not (
            isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0
        ):
            raise ValueError(f"a deadline is a positive number of seconds, got {seconds!r}")
        if isinstance(self.retries, bool) or not (
            isinstance(self.retries, int) and self.retries >= 0
        ):
            raise ValueError(f"retries is a whole number from 0, got {self.retries!r}")
        if self.gives_up_as != "":
            _require_name("gives_up_as", self.gives_up_as, "a trigger's (an event type's)")


@dataclass(frozen=True)
class StateMachine:
    """States and the transitions between them, as data a drawing can turn into a graph."""

    name: str
    initial: str
    transitions: tuple[Transition, ...]
    deadlines: tuple[tuple[str, Deadline], ...] = ()
    """``(state, deadline)`` pairs: the states that wait for an answer, and how long."""

    def __post_init__(self) -> None:
        _check_shape(self.transitions, self.deadlines)
        states = self.states()
        for state, deadline in self.deadlines:
            if state not in states:
                raise ValueError(f"a deadline for {state!r}, which is not a state of {self.name}")
            if deadline.gives_up_as and self.transition(state, deadline.gives_up_as) is None:
                raise ValueError(
                    f"the deadline of {state!r} gives up as {deadline.gives_up_as!r}, but no "
                    f"transition leaves {state!r} on that trigger; add one or leave it out"
                )

    def deadline(self, state: str) -> Deadline | None:
        """The deadline of ``state``, or None if the process does not wait there."""
        return dict(self.deadlines).get(state)

    def states(self) -> list[str]:
        """Every state, in the order the transitions first name them."""
        seen = [self.initial]
        for t in self.transitions:
            seen += [s for s in (t.source, t.target) if s not in seen]
        return seen

    def final_states(self) -> list[str]:
        """States no transition leaves: where the process ends."""
        sources = {t.source for t in self.transitions}
        return [state for state in self.states() if state not in sources]

    def triggers(self) -> list[str]:
        """The event type names that move the process, each once."""
        return list(dict.fromkeys(t.trigger for t in self.transitions))

    def transition(self, state: str, trigger: str) -> Transition | None:
        """The transition out of ``state`` on ``trigger``, or None if the event is not
        expected there."""
        for t in self.transitions:
            if t.source == state and t.trigger == trigger:
                return t
        return None

    def edges(self) -> list[tuple[str, str, str]]:
        """``(source, target, label)`` for each transition, ready for a graph."""
        return [(t.source, t.target, t.label) for t in self.transitions]

    def describe(self) -> str:
        """The transitions as a text table (compensating ones marked)."""
        lines = [f"{self.name}: starts in {self.initial!r}"]
        for t in self.transitions:
            mark = "  (compensation)" if t.compensating else ""
            sends = f", sends {t.sends}" if t.sends else ""
            lines.append(f"  {t.source} --{t.trigger}--> {t.target}{sends}{mark}")
        for state, deadline in self.deadlines:
            then = deadline.gives_up_as or "flag for a person"
            lines.append(
                f"  {state}: wait {deadline.seconds:g} s, ask {deadline.retries} more "
                f"time{'s' * (deadline.retries != 1)}, then {then}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"StateMachine({self.name!r}: {len(self.states())} states, "
            f"{len(self.transitions)} transitions)"
        )


_DEADLINES_SHAPE = 'deadlines=(("a state", Deadline(seconds, ...)), ...)'


def _check_shape(transitions: object, deadlines: object) -> None:
    """A TypeError naming the expected shape unless ``transitions`` is a tuple of
    :class:`Transition` and ``deadlines`` a tuple of ``(state, Deadline)`` pairs."""
    if not isinstance(transitions, (tuple, list)) or not all(
        isinstance(t, Transition) for t in transitions
    ):
        raise TypeError(
            "transitions is a tuple of Transition(source, trigger, target, ...); got "
            f"{transitions!r}"
        )
    if isinstance(deadlines, dict):
        example = next(iter(deadlines), "a state")
        raise TypeError(
            "deadlines is a tuple of (state, Deadline) pairs, not a dict: write "
            f"deadlines=(({example!r}, Deadline(...)),)"
        )
    if (
        isinstance(deadlines, tuple)
        and len(deadlines) == 2
        and isinstance(deadlines[0], str)
        and isinstance(deadlines[1], Deadline)
    ):
        raise TypeError(
            "deadlines is a tuple of pairs, and this is one bare pair: wrap it, "
            f"deadlines=(({deadlines[0]!r}, Deadline(...)),) (mind the comma)"
        )
    if not isinstance(deadlines, (tuple, list)):
        raise TypeError(f"deadlines is a tuple of (state, Deadline) pairs: {_DEADLINES_SHAPE}")
    for entry in deadlines:
        pair = isinstance(entry, (tuple, list)) and len(entry) == 2
        if not (pair and isinstance(entry[0], str) and isinstance(entry[1], Deadline)):
            raise TypeError(
                f"each deadline is a (state, Deadline) pair, got {entry!r}: {_DEADLINES_SHAPE}"
            )
