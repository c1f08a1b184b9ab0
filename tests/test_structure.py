"""The package's shape: imports point down the layers, no import circle, and no function longer
than a reader can hold.

All read the source with ``ast`` (nothing is imported), so they see function-level imports and
``importlib.import_module("diffnotes....")`` calls as well as the module-level ones.

Import graph: one node per module (a package's ``__init__`` is the package's node). Importing
``a.b.c`` also runs the ``__init__`` of ``a.b`` unless the importer already lives inside ``a.b``
(then that package is importing already), so such an import adds an edge to ``a.b`` as well. The
scripts under ``benchmarks/`` are nodes too (``benchmarks.<name>``): they import the package and
each other by their bare names.

Layers: ``ARCHITECTURE.md`` numbers the layers in its section "Three layers, one direction" and
gives each module its layer in the second column of the package map (a row may name files,
folders ending in ``/`` or a pattern such as ``methods/<paper>.py``). A module imports only its
own layer or a lower one; an import of a higher layer points up and fails the test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "diffnotes"
BENCHMARKS = SRC.parent / "benchmarks"
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


def _bare_imports(tree: ast.AST) -> set[str]:
    """The top-level names of every absolute import in ``tree`` (``import a.b`` gives ``a``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def benchmark_graph(folder: Path = BENCHMARKS) -> dict[str, set[str]]:
    """The scripts under ``benchmarks/`` as nodes ``benchmarks.<name>``: their imports of the
    package (as in :func:`import_graph`) and of each other (by bare name, as they run)."""
    scripts = {path.stem: path for path in sorted(folder.glob("*.py"))}
    graph = {}
    for stem, path in scripts.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {f"benchmarks.{name}" for name in _bare_imports(tree) if name in scripts}
        for target in _imported(f"benchmarks.{stem}", tree):
            targets |= _edges(f"benchmarks.{stem}", target)
        graph[f"benchmarks.{stem}"] = targets - {f"benchmarks.{stem}"}
    return graph


def full_graph() -> dict[str, set[str]]:
    return {**import_graph(), **benchmark_graph()}


# ----------------------------------------------------------------------------------------------
# The layers, read from ARCHITECTURE.md
# ----------------------------------------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    """The body of the ``## `` section whose heading starts with ``heading``."""
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"ARCHITECTURE.md has no section '## {heading}'"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    """The cells of every body row of the Markdown tables in ``section``."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s:|-]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:] if rows else rows  # the first row is the header


def read_layers(text: str) -> tuple[list[str], dict[str, str]]:
    """``(layers from the bottom up, {path in the package map: its layer})`` from the map's text.

    Layers: the second column of the table in "Three layers, one direction", in row order (row 1
    is the bottom). Paths: every backticked name in the first column of the package map, its
    layer in backticks in the second column.
    """
    layers = []
    for cells in _table_rows(_section(text, "Three layers")):
        names = re.findall(r"`([^`]+)`", cells[1]) if len(cells) > 1 else []
        assert len(names) == 1, f"a row of the layer table names no single `layer`: {cells}"
        layers.append(names[0])
    paths = {}
    for cells in _table_rows(_section(text, "Package map")):
        layer = re.findall(r"`([^`]+)`", cells[1]) if len(cells) > 1 else []
        assert len(layer) == 1, f"a package-map row gives no single `layer` in its second column: {cells}"
        for name in re.findall(r"`([^`]+)`", cells[0]):
            paths[name] = layer[0]
    return layers, paths


def _path_of(module: str) -> str:
    """``diffnotes.methods.edm`` -> ``methods/edm.py``; a package -> its ``__init__.py``; a
    benchmark ``benchmarks.x`` -> ``benchmarks/x.py`` (relative to the repository root)."""
    if module.startswith("benchmarks."):
        return f"benchmarks/{module.split('.', 1)[1]}.py"
    return MODULES[module].relative_to(SRC / PACKAGE).as_posix()


def _matches(entry: str, path: str) -> int:
    """How specifically a package-map entry names ``path``: 3 the file itself, 2 a pattern
    (``<paper>`` stands for any name) in the same folder, 1 + depth a folder above it, 0 not."""
    if entry == path:
        return 1000
    if "<" in entry:
        pattern = "^" + re.sub(r"<[^>]+>", "[^/]+", re.escape(entry).replace(r"\<", "<").replace(r"\>", ">")) + "$"
        return 999 if re.match(pattern, path) else 0
    if entry.endswith("/") and path.startswith(entry):
        return entry.count("/")
    return 0


def layer_of(path: str, paths: dict[str, str]) -> str | None:
    """The layer of the module at ``path`` (relative to ``src/diffnotes``, or ``benchmarks/...``):
    the most specific package-map entry that names it; an unnamed ``__init__.py`` takes the one
    layer its folder's modules share."""
    score, layer = max(((_matches(entry, path), layer) for entry, layer in paths.items()), default=(0, None))
    if score:
        return layer
    if path.endswith("__init__.py") and "/" in path:
        folder = path.rsplit("/", 1)[0] + "/"
        inside = {layer for entry, layer in paths.items() if entry.startswith(folder)}
        if len(inside) == 1:
            return inside.pop()
    return None


def missing_entries(paths: dict[str, str]) -> list[str]:
    """The package-map entries that name nothing in the repository (moved, renamed or not yet
    where the map says)."""
    out = []
    for entry in paths:
        base = SRC.parent if entry.startswith("benchmarks/") else SRC / PACKAGE
        where = entry.split("<")[0].rsplit("/", 1)[0] if "<" in entry else entry
        if not (base / where).exists():
            out.append(entry)
    return out


def upward_imports(graph: dict[str, set[str]], layers: list[str], layer: dict[str, str]) -> list[str]:
    """``importer (its layer) -> imported (its layer)`` for every import of a higher layer."""
    rank = {name: i for i, name in enumerate(layers)}
    return sorted(f"{a} ({layer[a]}) imports {b} ({layer[b]})" for a, targets in graph.items()
                  for b in targets if a in layer and b in layer and rank[layer[b]] > rank[layer[a]])


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


def test_layer_reading_and_the_up_detector_on_a_made_up_map():
    text = ("## Three layers, one direction\n\n| # | layer |\n|---|---|\n| 1 | `low` |\n| 2 | `high` |\n\n"
            "## Package map (`src/diffnotes`)\n\n| module | layer | holds |\n|---|---|---|\n"
            "| `a.py`, `pkg/` | `low` | x |\n| `methods/<paper>.py` | `high` | y |\n"
            "| `pkg/top.py` | `high` | z |\n\n## Next\n")
    layers, paths = read_layers(text)
    assert layers == ["low", "high"]
    assert paths == {"a.py": "low", "pkg/": "low", "methods/<paper>.py": "high", "pkg/top.py": "high"}
    assert layer_of("pkg/deep/x.py", paths) == "low" and layer_of("pkg/top.py", paths) == "high"
    assert layer_of("methods/edm.py", paths) == "high" and layer_of("methods/sub/x.py", paths) is None
    assert layer_of("b.py", paths) is None
    graph = {"a": {"b"}, "b": set(), "c": {"a"}}
    assert upward_imports(graph, layers, {"a": "low", "b": "high", "c": "high"}) == ["a (low) imports b (high)"]
    tree = ast.parse("import json\ndef f():\n    import bench_x as B\n    from run_y import main\n")
    assert _bare_imports(tree) == {"json", "bench_x", "run_y"}


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert len(graph) == len(MODULES) > 30
    assert "diffnotes.presets" in graph["diffnotes.cli.train_command"]
    assert "diffnotes.markdown" in graph["diffnotes.catalogue.render"]


# ----------------------------------------------------------------------------------------------
# The package
# ----------------------------------------------------------------------------------------------


def test_no_import_circle():
    """Nowhere: not in the package, not among the benchmark scripts, not between the two."""
    cycles = find_cycles(full_graph())
    assert not cycles, "import circles (modules that import each other, directly or not): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def _the_layers():
    return read_layers((SRC.parent / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_module_the_map_names_is_where_it_says():
    _, paths = _the_layers()
    missing = missing_entries(paths)
    assert not missing, ("ARCHITECTURE.md's package map names paths that do not exist (a module moved, "
                         "was renamed, or has not landed at the path the map gives yet): " + ", ".join(missing)
                         + ". Move the module or correct its row.")


def test_every_module_has_a_layer():
    layers, paths = _the_layers()
    unknown = sorted({layer for layer in paths.values()} - set(layers))
    assert not unknown, f"package-map layers not in the layer table of 'Three layers': {unknown}"
    graph = full_graph()
    without = [f"{m} ({_path_of(m)})" for m in sorted(graph) if layer_of(_path_of(m), paths) is None]
    assert not without, ("modules with no layer in ARCHITECTURE.md's package map (add a row, or move the module "
                         "to where its row says): " + ", ".join(without))


def test_imports_only_point_down_the_layers():
    """A module imports its own layer or a lower one, at module level or inside a function."""
    layers, paths = _the_layers()
    graph = full_graph()
    layer = {m: layer_of(_path_of(m), paths) for m in graph}
    layer = {m: name for m, name in layer.items() if name is not None}  # the test above names the rest
    up = upward_imports(graph, layers, layer)
    assert not up, "imports that point up the layers of ARCHITECTURE.md:\n" + "\n".join(up)


def test_the_benchmarks_are_in_the_graph():
    graph = benchmark_graph()
    assert "benchmarks.bench_samplers" in graph["benchmarks.run_all"]
    assert "diffnotes.sampling" in graph["benchmarks.bench_samplers"]
    assert "benchmarks.run_all" not in graph["benchmarks.bench_samplers"]


def test_every_method_module_has_tests():
    """``methods/<paper>.py`` comes with tests: each is imported by some ``tests/test_*.py``."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted((SRC.parent / "tests").glob("test_*.py"))}
    untested = []
    for module in sorted(m for m in MODULES if m.startswith(f"{PACKAGE}.methods.")):
        short = module.rsplit(".", 1)[1]
        pattern = re.compile(rf"{re.escape(module)}\b|from {PACKAGE}\.methods import[^\n]*\b{short}\b")
        if not any(pattern.search(text) for text in sources.values()):
            untested.append(module)
    assert not untested, f"method modules no test imports (add tests/test_methods_<paper>.py): {untested}"


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
