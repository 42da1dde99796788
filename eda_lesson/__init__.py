"""eda-lesson: event-driven architecture, taught with a small bus you can read and see.

``import eda_lesson`` is light on purpose: drawing and widget modules load matplotlib,
networkx and ipywidgets only when you use them.
"""

from eda_lesson.core.bus import BaseBus, EventBus, Handler, Middleware, Subscription
from eda_lesson.core.checks import handler_name
from eda_lesson.core.messages import Command, Event
from eda_lesson.core.result import (
    CascadeLimitError,
    DispatchResult,
    EventRecord,
    HandlerCall,
    UnhandledCommandError,
)

__version__ = "0.1.0"

__all__ = [
    "BaseBus",
    "CascadeLimitError",
    "Command",
    "DispatchResult",
    "Event",
    "EventBus",
    "EventRecord",
    "Handler",
    "HandlerCall",
    "Middleware",
    "Subscription",
    "UnhandledCommandError",
    "__version__",
    "handler_name",
]
