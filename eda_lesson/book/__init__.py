"""The book around the notebooks: the chapter list, navigation and badges, re-execution, and the
exercise checks the chapters call (``python -m eda_lesson.book --help``).
"""
