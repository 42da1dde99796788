"""The patterns, written once and for any domain: aggregates, units of work, the event store and
its serialization, projections, sagas as state machines, and the outbox.

They depend on the core only. None of them knows the shop: the running example lives in
:mod:`eda_lesson.shop` and uses these, never the other way round.
"""
