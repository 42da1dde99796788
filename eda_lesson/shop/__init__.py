"""The running example: a small shop's events, services, order aggregate, read models and
order fulfilment, built on the core and the patterns.

Nothing generic imports this package; it is here to be read beside the notebooks.
"""
