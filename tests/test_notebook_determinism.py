"""Each seed decides its networks' initial weights (issue 22, "seeds").

torch's global generator starts from a different seed in every fresh process, so a network
built before the notebook seeds it gets different initial weights on every run, and
``train.fit(seed=...)`` cannot help: it seeds the global generator only after it is handed the
built model. The four labs below gave different numbers for the same seed because of that.

This test reads their code (no execution, so it costs milliseconds) and checks that every
call that builds a network is preceded, in its own block or an enclosing one, by
``torch.manual_seed(<seed>)`` with nothing between them that draws from the global generator
(another network, a ``fit``), or goes through a notebook function that seeds first itself.
"""
import ast
import inspect
from pathlib import Path

import pytest
import torch

from diffnotes import nets

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("jing2022subspace", "karras2022elucidating", "song2019generative",
             "song2021score")
# the package's weight-drawing constructors: the backbones of diffnotes.nets and the
# presets' builders of them
CONSTRUCTORS = {name for name, obj in vars(nets).items() if inspect.isclass(obj)
                and issubclass(obj, torch.nn.Module) and obj.__module__ == nets.__name__}
CONSTRUCTORS |= {"digits_unet", "small_unet", "build_model"}
DRAWS = {"fit", "randn", "rand", "randint", "randperm", "randn_like", "rand_like"}
# calls whose network's weights cannot change a number, with the reason
EXEMPT = {
    ("song2019generative", 'digits_unet("ve", **VE_RANGE)'):
        "the check asserts D(x) = x, which holds for any initial weights",
}


def _name(call):
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)


def _calls(node):
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _draws(call, draws):
    """Whether ``call`` takes numbers from the global generator (no ``generator=``)."""
    return _name(call) in draws and not any(k.arg == "generator" for k in call.keywords)


def _is_seeding(call):
    """``torch.manual_seed(x)`` with a seed variable in ``x`` (not a Generator's)."""
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "manual_seed"
            and isinstance(f.value, ast.Name) and f.value.id == "torch"
            and any("seed" in n.id for a in call.args for n in ast.walk(a)
                    if isinstance(n, ast.Name)))


def _code(key):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{key}.ipynb", as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def _header(stmt):
    """The expressions a statement evaluates itself, without its nested blocks."""
    if isinstance(stmt, (ast.For, ast.While, ast.If)):
        return [stmt.iter if isinstance(stmt, ast.For) else stmt.test]
    if isinstance(stmt, ast.With):
        return [i.context_expr for i in stmt.items]
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.Try)):
        return []
    return [stmt]


def _blocks(stmt):
    return [b for b in (getattr(stmt, f, None) for f in
                        ("body", "orelse", "finalbody")) if isinstance(b, list)]


def _unseeded(body, builders, draws):
    """The build calls in ``body`` (a module's or a function's) that no seed decides: no
    ``torch.manual_seed(seed)`` before them in their block or an enclosing one, or a draw
    from the global generator (a build, a ``fit``) after it. Nested functions are skipped."""
    found = []

    def last_word(stmts):
        """True (seeded), False (drawn from) or None: what the last of ``stmts`` that
        touches the global generator does to it; function definitions run nothing."""
        for stmt in reversed(stmts):
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                continue
            touching = [c for c in _calls(stmt)
                        if _is_seeding(c) or _draws(c, draws)]
            if touching:  # an inner call ends before the call around it
                last = max(touching, key=lambda c: (c.end_lineno, c.end_col_offset))
                return _is_seeding(last)
        return None

    def seeded_before(chain):
        for block, i, loop in reversed(chain):
            word = last_word(block[:i])
            if word is not None:
                return word
            # a loop's later passes reach statement i from the end of the previous pass
            if loop and not last_word(block[i:]):
                return False
        return False  # the top of the scope: the generator was never seeded here

    def visit(block, chain, loop=False):
        for i, stmt in enumerate(block):
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                continue
            here = chain + [(block, i, loop)]
            builds = sorted((c for e in _header(stmt) for c in _calls(e)
                             if _name(c) in builders),
                            key=lambda c: (c.lineno, c.col_offset))
            for k, call in enumerate(builds):
                if k > 0 or not seeded_before(here):
                    found.append(call)
            if isinstance(stmt, (ast.For, ast.While)):
                visit(stmt.body, here, loop=True)
                visit(stmt.orelse, here)
            else:
                for inner in _blocks(stmt):
                    visit(inner, here)

    visit(body, [])
    return found


def unseeded_builds(code):
    """``(source, line)`` of each network build in ``code`` that no seed decides.

    A notebook function is a builder when a build in its body is not seeded there (its
    callers must seed), and a draw when it builds or trains at all."""
    tree = ast.parse(code)
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    builders, draws = set(CONSTRUCTORS), set(CONSTRUCTORS) | DRAWS
    grown = True
    while grown:
        grown = False
        for d in defs:
            if d.name not in draws and any(_draws(c, draws) for c in _calls(d)):
                draws.add(d.name)
                grown = True
            if d.name not in builders and _unseeded(d.body, builders, draws):
                builders.add(d.name)
                grown = True
    found = [c for d in defs if d.name not in builders
             for c in _unseeded(d.body, builders, draws)]
    found += _unseeded(tree.body, builders, draws)
    return sorted((ast.get_source_segment(code, c), c.lineno) for c in found)


@pytest.mark.parametrize("key", NOTEBOOKS)
def test_every_network_is_built_after_seeding(key):
    bad = [(src, line) for src, line in unseeded_builds(_code(key))
           if not any(k == key and src.startswith(s) for k, s in EXEMPT)]
    assert not bad, (
        f"{key}: network(s) built with no torch.manual_seed(seed) just before, so their "
        f"initial weights differ from run to run: "
        + "; ".join(f"line {line}: {src[:60]}" for src, line in bad))


def test_the_rule_finds_an_unseeded_network():
    built_first = "for seed in SEEDS:\n    run = fit(MLP(2), loss, x, 10, seed=seed)\n"
    seeded = ("for seed in SEEDS:\n    torch.manual_seed(seed)\n"
              "    run = fit(MLP(2), loss, x, 10, seed=seed)\n")
    in_a_helper = ("def net(seed):\n    torch.manual_seed(seed)\n    return MLP(2)\n\n"
                   "for seed in SEEDS:\n    a = fit(net(seed), loss, x, 10, seed=seed)\n")
    after_a_fit = ("for seed in SEEDS:\n    torch.manual_seed(seed)\n"
                   "    a = fit(MLP(2), loss, x, 10, seed=seed)\n"
                   "    b = fit(MLP(2), loss, x, 10, seed=seed)\n")
    second_pass = ("torch.manual_seed(seed0)\nfor seed in SEEDS:\n"
                   "    a = fit(MLP(2), loss, x, 10, seed=seed)\n")
    assert [s for s, _ in unseeded_builds(built_first)] == ["MLP(2)"]
    assert unseeded_builds(seeded) == []
    assert unseeded_builds(in_a_helper) == []
    assert [line for _, line in unseeded_builds(after_a_fit)] == [4]
    assert [line for _, line in unseeded_builds(second_pass)] == [3]
