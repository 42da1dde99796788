"""The pictures: graphs, drawings and the widgets that step through them.

Only these modules import matplotlib, networkx or ipywidgets, and nothing outside this package
imports them, so ``import eda_lesson`` and every pattern stay light.
"""
