"""The package's shape: no import circle, and no function longer than a reader can hold.

Both read the source with ``ast`` (nothing is imported), so they see function-level imports and
``importlib.import_module("diffnotes....")`` calls as well as the module-level ones.

Import graph: one node per module (a package's ``__init__`` is the package's node). Importing
``a.b.c`` also runs the ``__init__`` of ``a.b`` unless the importer already lives inside ``a.b``
(then that package is importing already), so such an import adds an edge to ``a.b`` as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "diffnotes"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(module: str, level: int, target: str | None) -> str:
    """The absolute name of a relative import ``from <level dots><target> import ...`` in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]  # a plain module's relative imports start from its package
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imported(module: str, tree: ast.AST) -> set[str]:
    """Every ``diffnotes`` module that ``module`` imports, anywhere in its source."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.add(sub if sub in MODULES else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _edges(module: str, target: str) -> set[str]:
    """``target`` and the packages above it whose ``__init__`` importing it would run first."""
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {name for name in chain - own if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for target in _imported(module, tree):
            targets |= _edges(module, target)
        graph[module] = targets - {module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:function:length`` for every function or method longer than ``limit`` lines."""
    found = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(SRC.parent)}:{node.name}:{length}")
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# The checks of the helpers themselves, on small made-up inputs
# ----------------------------------------------------------------------------------------------


def test_cycle_finder_finds_a_circle_and_only_that():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_from_the_right_package():
    assert _absolute("diffnotes.cli.main", 1, "args") == "diffnotes.cli.args"
    assert _absolute("diffnotes.cli", 1, "args") == "diffnotes.cli.args"  # a package's own __init__
    assert _absolute("diffnotes.cli.train_command", 2, "presets") == "diffnotes.presets"
    tree = ast.parse("def f():\n    from ..theory import processes\n    import importlib\n"
                     "    importlib.import_module('diffnotes.sampling')\n")
    found = _imported("diffnotes.methods.edm", tree)
    assert found == {"diffnotes.theory.processes", "diffnotes.sampling"}  # function level included
    assert "diffnotes.theory" in _edges("diffnotes.precond", "diffnotes.theory.processes")
    assert _edges("diffnotes.theory.tables", "diffnotes.theory.processes") == {"diffnotes.theory.processes"}


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert len(graph) == len(MODULES) > 30
    assert "diffnotes.presets" in graph["diffnotes.cli.train_command"]
    assert "diffnotes.markdown" in graph["diffnotes.catalogue.render"]


# ----------------------------------------------------------------------------------------------
# The package
# ----------------------------------------------------------------------------------------------


def test_no_import_circle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles (modules that import each other, directly or not): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_no_function_longer_than_80_lines():
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines (file:function:length):\n" + "\n".join(offenders)


@pytest.mark.parametrize("module", ["cli", "cli_engine", "catalogue"])
def test_old_single_file_modules_are_gone(module):
    """The CLI and the catalogue are packages now; a stray file of the same name would shadow one."""
    assert not (SRC / PACKAGE / f"{module}.py").exists()


# ----------------------------------------------------------------------------------------------
# The architecture is written down inside the repository and can be found from the README
# ----------------------------------------------------------------------------------------------

ROOT = SRC.parent


def test_readme_links_the_architecture_on_its_first_screen():
    first_screen = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:25])
    assert "](ARCHITECTURE.md)" in first_screen


def test_the_book_page_is_in_the_toc_and_linked_from_the_intro():
    assert "file: book/architecture" in (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert "](architecture.md)" in (ROOT / "book" / "intro.md").read_text(encoding="utf-8")


def test_the_book_page_includes_the_map_instead_of_copying_it():
    page = (ROOT / "book" / "architecture.md").read_text(encoding="utf-8")
    marker = "<!-- the book page includes this file from here on -->"
    assert "```{include} ../ARCHITECTURE.md" in page and f":start-after: {marker}" in page
    assert marker in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "Package map" not in page, "book/architecture.md copies part of the map again"


@pytest.mark.parametrize("page", ["ARCHITECTURE.md"])
def test_the_package_map_names_every_module(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    for heading in ("Three layers", "Package map", "denoiser contract", "loss contract", "new paper goes"):
        assert heading in text, f"{page} lacks its section on {heading!r}"
    top = sorted({name.split(".")[1] for name in MODULES if name.count(".") >= 1} - {"__main__"})
    missing = [m for m in top if f"`{m}.py`" not in text and f"`{m}/" not in text]
    assert not missing, f"{page}: the package map does not mention {missing}"


def test_nothing_points_outside_the_repository():
    """The design notes the project was built from are not part of it; no file may send a reader there."""
    needles = ("../" + "shared", "shared " + "folder", "DESIGN" + ".md", "/work/" + "shared")
    files = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "book").rglob("*.md")),
             *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "src").rglob("*.yaml")),
             *sorted((ROOT / "tests").glob("*.py")), *sorted((ROOT / "scripts").glob("*.py"))]
    hits = [f"{p.relative_to(ROOT)}: {n}" for p in files for n in needles
            if n in p.read_text(encoding="utf-8", errors="replace")]
    assert not hits, "pointers outside the repository:\n" + "\n".join(hits)


def test_one_markdown_escaper():
    """Table cells are escaped by ``diffnotes.markdown`` only; a second escaper drifts from it."""
    offenders = [f"{path.relative_to(ROOT)}:{i}" for path in MODULES.values() if path.name != "markdown.py"
                 for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if '.replace("|"' in line or ".replace('|'" in line]
    assert not offenders, "Markdown cells escaped outside diffnotes.markdown: " + ", ".join(offenders)
