"""Settings shared by the whole suite."""

from hypothesis import settings

# Timing belongs in benchmarks/, not in tests: no hypothesis example fails for being slow on a
# busy machine.
settings.register_profile("eda-lesson", deadline=None)
settings.load_profile("eda-lesson")
