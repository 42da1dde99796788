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

    @property
    def label(self) -> str:
        return f"{self.trigger} / {self.sends}" if self.sends else self.trigger


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
        if not (isinstance(self.seconds, (int, float)) and self.seconds > 0):
            raise ValueError(f"a deadline is a positive number of seconds, got {self.seconds!r}")
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise ValueError(f"retries is a whole number from 0, got {self.retries!r}")


@dataclass(frozen=True)
class StateMachine:
    """States and the transitions between them, as data a drawing can turn into a graph."""

    name: str
    initial: str
    transitions: tuple[Transition, ...]
    deadlines: tuple[tuple[str, Deadline], ...] = ()
    """``(state, deadline)`` pairs: the states that wait for an answer, and how long."""

    def __post_init__(self) -> None:
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
