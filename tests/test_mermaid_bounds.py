"""The Mermaid export of any cascade keeps to the page the drawings keep to.

However deep, wide or long-named the cascade, ``to_mermaid`` writes at most the nodes that
:func:`~eda_lesson.views.folding.page_graph` keeps (the very nodes ``draw_flow`` draws), and
a ``%%`` comment and a note node ``leftout`` say what it left out, in the drawing's words. The
bounded exports still render in the real Mermaid CLI (tests/mermaid_cli.py), the note included.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_folding import CASCADES, batch, shop_cascade

from eda_lesson import DispatchResult
from eda_lesson.views.flow import FlowPicture
from eda_lesson.views.folding import PAGE_LAYERS, PAGE_ROWS
from eda_lesson.views.graphs import flow_graph, to_mermaid

NODE = re.compile(r"^    (\w+)[\[({]", re.MULTILINE)
MOST_NODES = PAGE_LAYERS * PAGE_ROWS + 1  # a full page, and the note


def node_ids(text: str) -> list[str]:
    return NODE.findall(text)


def drawn_ids(result: DispatchResult, *, fold: bool) -> set[str]:
    """The Mermaid ids of the nodes draw_flow draws of ``result``."""
    graph = FlowPicture(result, fold=fold).graph
    return {{"event": "e", "call": "c", "group": "g"}[kind] + str(key) for kind, key in graph}


BIG = {
    "deep chain of 30 events": CASCADES["deep chain of 30 events"],
    "fan-out to 40 handlers": CASCADES["fan-out to 40 handlers"],
    "loop of 200 orders, unfolded": lambda: batch(200, audited=True, with_note=True),
}


@pytest.mark.parametrize("name", list(BIG))
def test_the_export_of_a_large_cascade_is_cut_to_a_page_and_says_what_it_left_out(
    name: str,
) -> None:
    result = BIG[name]()
    fold = "unfolded" not in name
    text = to_mermaid(result, fold=fold)
    ids = node_ids(text)
    assert len(ids) <= MOST_NODES and len(ids) - 1 < flow_graph(result).number_of_nodes()
    assert (
        len(text.splitlines()) <= 1 + 1 + 2 * MOST_NODES + 7
    )  # header, comment, nodes, edges, classes
    assert set(ids) - {"leftout"} == drawn_ids(result, fold=fold)  # the drawing's very rule
    picture = FlowPicture(result, fold=fold)
    comment = next(line for line in text.splitlines() if line.startswith("    %%"))
    assert comment == f"    %% {picture.note}"  # no character here needs escaping
    assert f'leftout["{comment.removeprefix("    %% ")}"]:::edaNote' in text
    assert "classDef edaNote " in text


@pytest.mark.parametrize("make", [shop_cascade, CASCADES["long labels"]])
def test_the_export_of_a_cascade_that_fits_is_whole_with_no_note(
    make: type[DispatchResult],
) -> None:
    result = make()
    text = to_mermaid(result)
    assert set(node_ids(text)) == {
        {"event": "e", "call": "c"}[kind] + str(key) for kind, key in flow_graph(result)
    }
    assert "%%" not in text and "leftout" not in text and "edaNote" not in text


@pytest.mark.slow
def test_the_bounded_exports_render_in_the_real_renderer_with_their_note(tmp_path: Path) -> None:
    from mermaid_cli import render_all, rendered_nodes

    texts = [to_mermaid(build(), fold="unfolded" not in name) for name, build in BIG.items()]
    for name, text, rendering in zip(BIG, texts, render_all(texts, tmp_path), strict=True):
        assert rendering.error is None, f"{name}: {rendering.error}"
        assert rendering.svg is not None
        nodes = rendered_nodes(rendering.svg)
        assert sorted(nodes) == sorted(node_ids(text)), name
        assert nodes["leftout"].text.startswith("left out: "), name
        assert "edaNote" in nodes["leftout"].classes
