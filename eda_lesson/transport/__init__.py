"""Between processes: Redis Streams as a broker, and the worker command that consumes them.

These modules need the ``broker`` extra (``pip install 'eda-lesson[broker]'``); without it,
importing one raises :class:`~eda_lesson.core.extras.MissingExtraError` saying so.
"""
