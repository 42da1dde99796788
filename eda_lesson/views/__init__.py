"""The pictures: graphs, drawings and the widgets that step through them.

Three modules serve all the others: :mod:`~eda_lesson.views.palette` names every colour by its
meaning (with the cues that are not colour), :mod:`~eda_lesson.views.sheet` is the one kit that
draws boxes, arrows, text, titles and legends (and renders them, through
:mod:`~eda_lesson.views.raster`), and :mod:`~eda_lesson.views.stepper` holds the step-through
controls every explorer uses. The rest is one module per family of pictures: ``flow``,
``graphs``, ``dispatch``, ``failures``, ``concurrency``, ``history``, ``sagas``, ``broker``.

Only these modules import matplotlib, networkx or ipywidgets, and nothing outside this package
imports them, so ``import eda_lesson`` and every pattern stay light.
"""
