"""eda-lesson: event-driven architecture, taught with a small bus you can read and see.

``import eda_lesson`` is light on purpose: drawing and widget modules load matplotlib,
networkx and ipywidgets only when you use them.
"""

from eda_lesson.bus import EventBus, Handler, Middleware, Subscription, handler_name
from eda_lesson.result import CascadeLimitError, DispatchResult, EventRecord, HandlerCall

__version__ = "0.1.0"

__all__ = [
    "CascadeLimitError",
    "DispatchResult",
    "EventBus",
    "EventRecord",
    "Handler",
    "HandlerCall",
    "Middleware",
    "Subscription",
    "__version__",
    "handler_name",
]
