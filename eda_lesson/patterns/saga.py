"""Sagas as data: a state machine of states and transitions labelled by event type names.

A saga (or process manager) follows a business process that spans several participants. Its
shape is plain data: a :class:`StateMachine` names the states and the :class:`Transition`
each event type causes, what the process sends on the way, and which steps undo earlier ones
(compensation). Being data, it can be printed, checked and drawn before anything runs.

What this module does not do: keep a saga's state (an aggregate does that, see
:mod:`eda_lesson.shop.fulfilment` for the shop's), send the commands, or time out a saga that
waits forever.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StateMachine", "Transition"]


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
class StateMachine:
    """States and the transitions between them, as data a drawing can turn into a graph."""

    name: str
    initial: str
    transitions: tuple[Transition, ...]

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
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"StateMachine({self.name!r}: {len(self.states())} states, "
            f"{len(self.transitions)} transitions)"
        )
