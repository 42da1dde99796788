"""``python -m eda_lesson.book``: refresh the notebooks' navigation and badges, or run them."""

from eda_lesson.book.chapters import main

main()
