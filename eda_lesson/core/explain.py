""" "Why was my handler not called?": one question the bus answers in words.

:meth:`~eda_lesson.core.bus.BaseBus.explain` takes a message (or its class) and a handler
(the function, or its name) and says whether a dispatch calls it, and if not, why, naming the
fix: it was never registered on this bus; it is registered for another type; a different
function with the same name replaced it (re-running a notebook cell does this on purpose);
it was unregistered; the message is a command, whose one handler is another; or it is
registered, but wrapped in middleware that can skip a call (``idempotent``, ``inbox.once``).

>>> from dataclasses import dataclass
>>> from eda_lesson import EventBus
>>> @dataclass(frozen=True)
... class OrderPaid:
...     order_id: str
>>> @dataclass(frozen=True)
... class OrderCancelled:
...     order_id: str
>>> def send_receipt(event: OrderPaid) -> None: ...
>>> bus = EventBus()
>>> _ = bus.register(OrderCancelled, send_receipt)
>>> why = bus.explain(OrderPaid("o-1"), send_receipt)
>>> why
Explanation(send_receipt for OrderPaid: other type)
>>> print(why.text.splitlines()[-1])  # the fix
bus.register(OrderPaid, send_receipt)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eda_lesson.core.checks import handler_name, identity_key, type_name

if TYPE_CHECKING:
    from eda_lesson.core.bus import BaseBus, Handler, Subscription

__all__ = ["REASONS", "Explanation", "explain"]

REASONS = (
    "called",
    "called, may be skipped",
    "replaced",
    "other type",
    "unregistered",
    "command has another handler",
    "not registered",
)
"""Every ``Explanation.reason``, the one case where the handler runs first."""

_SKIPPING = ("Idempotent", "Once")  # middleware classes that may skip a call on purpose


@dataclass(frozen=True)
class Explanation:
    """The bus's answer: whether the handler runs for the message, why, and what to do."""

    handler: str
    message_type: str
    reason: str
    """One of :data:`REASONS`."""
    text: str

    @property
    def called(self) -> bool:
        return self.reason.startswith("called")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Explanation({self.handler} for {self.message_type}: {self.reason})"


def explain(bus: BaseBus, message: object, handler: Handler | str) -> Explanation:
    """Why ``handler`` is or is not called when ``message`` is dispatched on ``bus``."""
    cls = message if isinstance(message, type) else type(message)
    wanted = handler if isinstance(handler, str) else handler_name(handler)
    matches = _matcher(handler)
    plan = [subscription for subscription, _ in bus.plan_for(cls)]
    for subscription in plan:
        if matches(subscription):
            return _called(subscription, handler, cls, wanted)
    registered = [s for s in bus.subscriptions() if matches(s)]
    if registered:
        return _registered_elsewhere(registered, cls, wanted)
    for action, removed in reversed(bus.removed):
        if matches(removed) and issubclass(cls, removed.message_type):
            return _removed(action, removed, cls, wanted)
    if plan and plan[0].is_command:
        return Explanation(
            wanted,
            type_name(cls),
            "command has another handler",
            f"{wanted} is not called for {type_name(cls)}: it is a command, and a command has "
            f"exactly one handler, {plan[0].name}. Unregister that one first, or let "
            f"{wanted} listen to an event the command produces.",
        )
    return _not_registered(bus, cls, wanted, handler)


def _matcher(handler: object) -> Callable[[Subscription], bool]:
    if isinstance(handler, str):
        short = handler.rsplit(".", 1)[-1]
        return lambda s: s.name in (handler, short) or s.name.rsplit(".", 1)[-1] == handler
    key = identity_key(handler)
    return lambda s: s.key == key


def _called(subscription: Subscription, handler: object, cls: type, wanted: str) -> Explanation:
    via = (
        ""
        if subscription.message_type is cls
        else f" (registered for {type_name(subscription.message_type)}, a base class)"
    )
    if not isinstance(handler, str) and subscription.handler is not handler:
        return Explanation(
            wanted,
            type_name(cls),
            "replaced",
            f"{wanted} is not called for {type_name(cls)}: another function with the same "
            f"name ({subscription.name}) replaced it{via}, as re-running the cell that "
            "defines a handler does; the bus calls the newest definition. Give the two "
            "functions different names to keep both.",
        )
    skipping = [
        type(layer).__name__
        for layer in subscription.middleware
        if type(layer).__name__ in _SKIPPING
    ]
    if skipping:
        return Explanation(
            wanted,
            type_name(cls),
            "called, may be skipped",
            f"{wanted} is called for {type_name(cls)}{via}, through {', '.join(skipping)} "
            "middleware, which skips a message it has seen already (by its id): look at the "
            "middleware's .skipped to see whether this one was.",
        )
    return Explanation(
        wanted, type_name(cls), "called", f"{wanted} is called for {type_name(cls)}{via}."
    )


def _registered_elsewhere(registered: list[Subscription], cls: type, wanted: str) -> Explanation:
    types = sorted({type_name(s.message_type) for s in registered})
    only = "only" if len(types) == 1 else "only (none of them a base class of it)"
    return Explanation(
        wanted,
        type_name(cls),
        "other type",
        f"{wanted} is not called for {type_name(cls)}: it is registered for "
        f"{', '.join(types)} {only}, and {type_name(cls)} is not a subclass of "
        f"{'it' if len(types) == 1 else 'them'}. Register it for {type_name(cls)} too:\n"
        f"bus.register({type_name(cls)}, {registered[0].name.rsplit('.', 1)[-1]})",
    )


def _removed(action: str, removed: Subscription, cls: type, wanted: str) -> Explanation:
    if action == "unregistered":
        return Explanation(
            wanted,
            type_name(cls),
            "unregistered",
            f"{wanted} is not called for {type_name(cls)}: it was registered for "
            f"{type_name(removed.message_type)}, then unregistered. Register it again if it "
            "should run.",
        )
    return Explanation(
        wanted,
        type_name(cls),
        "replaced",
        f"{wanted} is not called for {type_name(cls)}: a later registration with the same "
        f"name replaced it, and that one is gone too.",
    )


def _not_registered(bus: BaseBus, cls: type, wanted: str, handler: object) -> Explanation:
    others = [s.name for s, _ in bus.plan_for(cls)]
    heard = f" ({type_name(cls)} is heard by {', '.join(others)})" if others else ""
    short = wanted.rsplit(".", 1)[-1]
    return Explanation(
        wanted,
        type_name(cls),
        "not registered",
        f"{wanted} is not called for {type_name(cls)}: it is not registered on this bus"
        f"{heard}. Register it: bus.register({type_name(cls)}, {short})",
    )
