"""The layout shows the architecture: every import points inward, towards the core.

The package has six roles, each a folder. A module may import its own role and the roles before
it in this list, never one after it: the core, the patterns, the transport, the shop (the
running example), the book, the views (pictures). Only the views import a drawing library.
These tests read every import statement in the package, the ones inside functions and under
``TYPE_CHECKING`` included, so a new module cannot quietly break the rule.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import eda_lesson

PACKAGE = Path(eda_lesson.__file__).parent
ROLES = ("core", "patterns", "transport", "shop", "book", "views")
DRAWING_LIBRARIES = ("matplotlib", "networkx", "ipywidgets")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, absolute, wherever the import statement is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports (from eda_lesson... import)"
            found.append(node.module or "")
            if node.module == "eda_lesson":
                found += [f"eda_lesson.{alias.name}" for alias in node.names]
    return found


def role_of(module: str) -> str | None:
    """The role of an eda_lesson module (None for the package's front door, or not ours)."""
    parts = module.split(".")
    if parts[0] != "eda_lesson" or len(parts) < 2:
        return None
    assert parts[1] in ROLES, f"{module} is in no role folder; put it in one of {ROLES}"
    return parts[1]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_role_folder() -> None:
    loose = [p.name for p in MODULES if p.parent == PACKAGE and p.name != "__init__.py"]
    assert loose == [], f"move {loose} into one of {ROLES}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        ROLES
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_a_module_imports_only_its_own_role_and_the_roles_before_it(path: Path) -> None:
    own = role_of(module_name(path))
    # The front door (role None) re-exports the core's public names.
    allowed = {"core"} if own is None else set(ROLES[: ROLES.index(own) + 1])
    wrong = sorted(
        {
            module
            for module in imported_modules(path)
            if (role := role_of(module)) is not None and role not in allowed
        }
    )
    assert wrong == [], f"{module_name(path)} ({own}) must not import {wrong}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_only_the_views_import_a_drawing_library(path: Path) -> None:
    if role_of(module_name(path)) == "views":
        return
    heavy = sorted({m for m in imported_modules(path) if m.split(".")[0] in DRAWING_LIBRARIES})
    assert heavy == [], f"{module_name(path)} imports {heavy}; draw in eda_lesson.views instead"


def test_the_rule_catches_a_pattern_that_imports_the_shop(tmp_path: Path) -> None:
    """The check above can fail: a pattern importing the shop is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from eda_lesson.shop.order import Order\n    import matplotlib\n")
    imports = imported_modules(bad)
    assert imports == ["eda_lesson.shop.order", "matplotlib"]
    assert role_of(imports[0]) not in set(ROLES[: ROLES.index("patterns") + 1])


def test_nothing_generic_mentions_a_shop_name_in_its_code() -> None:
    """The patterns and the core name no shop class outside their docstrings' examples."""
    shop_names = {
        node.name
        for path in (PACKAGE / "shop").glob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.ClassDef)
    }
    found = []
    for path in MODULES:
        if role_of(module_name(path)) not in ("core", "patterns", "transport"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id in shop_names:
                found.append(f"{module_name(path)}:{node.lineno} {node.id}")
    assert found == []


def test_one_import_path_per_name_no_module_re_exports_another_modules_names() -> None:
    """A name is imported from the module that defines it (the front door aside)."""
    re_exports = []
    for path in MODULES:
        if path == PACKAGE / "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        exported = next(
            (
                ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            ),
            [],
        )
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        re_exports += [f"{module_name(path)}.{name}" for name in exported if name in imported]
    assert re_exports == []


def test_the_front_door_imports_only_from_the_core() -> None:
    sources = imported_modules(PACKAGE / "__init__.py")
    assert sources and all(module.startswith("eda_lesson.core.") for module in sources), sources


def _front_door_names() -> set[str]:
    return set(eda_lesson.__all__) - {"__version__"}


def _deep_imports_of_front_names(tree: ast.AST) -> list[str]:
    front = _front_door_names()
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eda_lesson.core")
        for alias in node.names
        if alias.name in front
    ]


def test_readers_import_the_core_names_from_the_front_door() -> None:
    """Tests, benchmarks, notebooks and the README write ``from eda_lesson import EventBus``,
    never the module path: one name, one way to import it, for a reader."""
    root = PACKAGE.parent
    sources = {
        str(path.relative_to(root)): path.read_text()
        for folder in ("tests", "benchmarks", "notebooks")
        for path in (root / folder).glob("*.py")
    }
    for path in (root / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        code = [
            "".join(c["source"]).replace("%", "#")
            for c in cells
            if c["cell_type"] == "code" and not "".join(c["source"]).lstrip().startswith("%%")
        ]
        sources[path.name] = "\n".join(code)
    readme = (root / "README.md").read_text()
    sources["README.md"] = "\n".join(re.findall(r"```python\n(.*?)```", readme, re.S))
    deep = {
        name: found
        for name, text in sources.items()
        if (found := _deep_imports_of_front_names(ast.parse(text)))
    }
    assert deep == {}


def test_the_front_door_rule_catches_a_deep_import() -> None:
    assert _deep_imports_of_front_names(ast.parse("from eda_lesson.core.bus import EventBus")) == [
        "eda_lesson.core.bus.EventBus"
    ]
