"""The core: messages, the bus and its cascade, what a dispatch returns, clocks, middleware.

Everything else in the package is built on these modules; they import nothing from it but each
other, and no drawing library. Their public names are also the package's front door:
``from eda_lesson import EventBus, Command, DispatchResult``.
"""
