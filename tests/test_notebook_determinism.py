"""Each seed decides its networks' initial weights (issue 22, "seeds").

torch's global generator starts from a different seed in every fresh process, so a network
built before the notebook seeds it gets different initial weights on every run, and
``train.fit(seed=...)`` cannot help: it seeds the global generator only after it is handed the
built model. A network built after a ``fit`` without a new seed is the same on every run, but
its weights are decided by the previous training run rather than by the seed.

This test reads every lab notebook's code (no execution, so it costs milliseconds) and checks
that every call that builds a network is preceded, in its own block or an enclosing one, by
``torch.manual_seed(<seed>)`` with nothing between them that draws from the global generator
(another network, a ``fit``), or goes through a notebook function that seeds first itself.
Which calls build a network is read from the package's own source (``_package_names``), so
a new builder in the package is covered without editing this file. A network made of parts
built in one call (``Kernel(MLP(2), MLP(2))``, ``EDMPrecond(MLP(2))``) is one build; one that
is only handed to ``count_parameters`` or ``activation_elements`` decides no number (but
still draws from the generator). A build inside a lambda is judged where the lambda is
written, since the rule cannot follow the lambda's calls: write a named function instead.
Every notebook in ``notebooks/`` is checked, a new one included, except the few listed in
``NOT_YET_FIXED``.
"""
import ast
import functools
import inspect
from pathlib import Path

import pytest
import torch

from diffnotes import nets

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "diffnotes"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
# Notebooks that still build a network no seed decides, with the reason. Each entry is a
# known failure waiting for its fix, marked xfail(strict=True): once the notebook passes,
# its test fails until the entry is removed, so the rule holds for it from then on.
NOT_YET_FIXED: dict[str, str] = {}
# torch.nn layers whose initial weights are random draws (norm layers start at ones and
# zeros, activations have no weights)
TORCH_LAYERS = {"Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
                "ConvTranspose2d", "ConvTranspose3d", "Embedding", "EmbeddingBag",
                "MultiheadAttention", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
                "Transformer", "TransformerEncoderLayer", "TransformerDecoderLayer"}
# the package's weight-drawing constructors: the backbones of diffnotes.nets and the
# presets' builders of them (build_model dispatches through a table, which the source
# reading below cannot follow); _package_names adds every other builder of the package
CONSTRUCTORS = {name for name, obj in vars(nets).items() if inspect.isclass(obj)
                and issubclass(obj, torch.nn.Module) and obj.__module__ == nets.__name__}
CONSTRUCTORS |= {"digits_unet", "small_unet", "build_model"}
DRAWS = {"fit", "randn", "rand", "randint", "randperm", "randn_like", "rand_like",
         "normal", "multinomial", "bernoulli"}
# calls that read a network's shape, never its weights' values: a network built only to be
# handed to one of them decides no number (it still draws from the generator)
SHAPE_ONLY = {"count_parameters", "activation_elements"}
# single calls whose network's weights cannot change a number, keyed by the notebook and the
# start of the (stripped) line that holds the call, with the reason
EXEMPT = {
    ("song2019generative", 'assert torch.equal(digits_unet("ve", **VE_RANGE)(probe'):
        "the check asserts D(x) = x, which holds for any initial weights",
    ("ho2020denoising", "assert torch.equal(digits_unet()(probe"):
        "the check asserts D(x) = x, which holds for any initial weights",
    ("bao2022analytic", "assert torch.equal(digits_unet()(probe"):
        "the check asserts D(x) = x, which holds for any initial weights",
}


def _names(call):
    """The names ``call`` may be known by: ``f``, and ``A.f`` for ``A.f(...)``."""
    f = call.func
    if isinstance(f, ast.Attribute):
        if isinstance(f.value, ast.Name):
            return (f"{f.value.id}.{f.attr}", f.attr)
        return (f.attr,)
    return (f.id,) if isinstance(f, ast.Name) else ()


def _name(call):
    return _names(call)[-1] if _names(call) else None


def _is(call, names):
    return any(n in names for n in _names(call))


def _calls(node):
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _draws(call, draws):
    """Whether ``call`` takes numbers from the global generator (no ``generator=``)."""
    return _is(call, draws) and not any(k.arg == "generator" for k in call.keywords)


def _is_seeding(call):
    """``torch.manual_seed(x)`` with a seed variable in ``x`` (not a Generator's)."""
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "manual_seed"
            and isinstance(f.value, ast.Name) and f.value.id == "torch"
            and any("seed" in (n.id if isinstance(n, ast.Name) else n.attr).lower()
                    for a in call.args for n in ast.walk(a)
                    if isinstance(n, (ast.Name, ast.Attribute))))


@functools.lru_cache(maxsize=None)
def _package_names():
    """``(builders, trainers)``: the names of the package's calls that draw a network's
    initial weights from the global generator without seeding it first, and of those that
    train (call ``fit``, so they leave the generator where training left it).

    A class builds when its ``__init__`` (or a base's) makes a layer of ``TORCH_LAYERS``,
    another building class or function, or draws with ``randn`` and the like; a classmethod
    of it that calls ``cls(...)`` builds as ``Class.method``; a function builds when it calls
    a builder and neither ``torch.manual_seed`` nor ``load_state_dict`` (a loader's weights
    come from its file). Names only, so a name shared by two definitions builds when either
    does (which can only add failures)."""
    classes, functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                classes.append(node)
            elif isinstance(node, ast.FunctionDef):
                functions.append(node)
    builders = set(TORCH_LAYERS) | CONSTRUCTORS
    trainers = {"fit"}

    def init_calls(cls):
        return [c for m in cls.body if isinstance(m, ast.FunctionDef)
                and m.name == "__init__" for c in _calls(m)]

    grown = True
    while grown:
        grown = False
        for cls in classes:
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
                     for b in cls.bases}
            if cls.name not in builders and (bases & builders or any(
                    _is(c, builders) or _draws(c, DRAWS - {"fit"})
                    for c in init_calls(cls))):
                builders.add(cls.name)
                grown = True
            if cls.name in builders:
                for m in cls.body:
                    if (isinstance(m, ast.FunctionDef)
                            and any(getattr(d, "id", None) == "classmethod"
                                    for d in m.decorator_list)
                            and any(_name(c) == "cls" for c in _calls(m))
                            and f"{cls.name}.{m.name}" not in builders):
                        builders.add(f"{cls.name}.{m.name}")
                        grown = True
        for fn in functions:
            calls = _calls(fn)
            if fn.name not in trainers and any(_is(c, trainers) for c in calls):
                trainers.add(fn.name)
                grown = True
            if (fn.name not in builders and any(_is(c, builders) for c in calls)
                    and not any(_is_seeding(c) or _name(c) == "load_state_dict"
                                for c in calls)):
                builders.add(fn.name)
                grown = True
    return builders, trainers


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


def _inside(inner, outer):
    return ((outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset)
            and (inner.end_lineno, inner.end_col_offset)
            <= (outer.end_lineno, outer.end_col_offset))


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
            calls = [c for e in _header(stmt) for c in _calls(e)]
            shape_only = {id(a) for c in calls if _is(c, SHAPE_ONLY) for a in c.args}
            builds = [c for c in calls if _is(c, builders)]
            # a build inside another's arguments is part of the same network, and so are
            # builds that are arguments of one call (a network made of several parts)
            builds = [c for c in builds if not any(
                o is not c and _inside(c, o) for o in builds)]
            networks = {}
            for c in sorted(builds, key=lambda c: (c.lineno, c.col_offset)):
                around = [o for o in calls if o is not c and _inside(c, o)]
                part_of = max(around, key=lambda o: (o.lineno, o.col_offset), default=c)
                networks.setdefault(id(part_of), c)
            builds = list(networks.values())
            for k, call in enumerate(builds):
                if id(call) not in shape_only and (k > 0 or not seeded_before(here)):
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
    callers must seed), and a draw when it builds or trains at all; the package's builders
    and trainers are read from its source (``_package_names``)."""
    tree = ast.parse(code)
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    package_builders, trainers = _package_names()
    builders = set(package_builders)
    draws = builders | trainers | DRAWS
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


def _exempt(key, code, line):
    text = code.splitlines()[line - 1].strip()
    return any(k == key and text.startswith(s) for k, s in EXEMPT)


# a notebook of NOT_YET_FIXED is expected to fail (strictly: once it passes, the test fails
# until its entry is removed); every other notebook, a new one included, must pass
@pytest.mark.parametrize("key", [
    pytest.param(key, marks=pytest.mark.xfail(reason=NOT_YET_FIXED[key], strict=True))
    if key in NOT_YET_FIXED else key for key in NOTEBOOKS])
def test_every_network_is_built_after_seeding(key):
    code = _code(key)
    bad = [(src, line) for src, line in unseeded_builds(code)
           if not _exempt(key, code, line)]
    assert not bad, (
        f"{key}: network(s) built with no torch.manual_seed(seed) just before, so their "
        f"initial weights differ from run to run: "
        + "; ".join(f"line {line}: {src[:60]}" for src, line in bad))


def test_the_exemptions_name_what_is_there():
    """Every exempt line is still an unseeded build of an existing notebook, and every
    notebook not yet fixed exists: no entry outlives what it exempts."""
    assert set(NOT_YET_FIXED) <= set(NOTEBOOKS)
    for key, start in EXEMPT:
        code = _code(key).splitlines()
        lines = [code[line - 1].strip() for _, line in unseeded_builds("\n".join(code))]
        assert any(text.startswith(start) for text in lines), (
            f"{key}: no unseeded build on a line starting {start!r}: remove the entry")


def test_the_package_builders_are_found():
    """The source reading finds the package's builders that the labs call, and leaves
    out the wrappers (which draw nothing) and the functions that seed first."""
    builders, trainers = _package_names()
    assert {"score_mlp", "sr3_denoiser", "patched_unet", "prior_denoiser",
            "embedding_denoiser", "class_conditional_digits_denoiser", "ToyCLIP",
            "UNet.digits"} <= builders
    assert not {"EDMPrecond", "VPPrecond", "MeanShift", "Regressor",
                "fit_digits_denoiser", "train_unconditional", "load_digits_classifier",
                "digits_report"} & builders
    assert {"fit_digits_denoiser", "fit_noisy_classifier", "fit_in_stages"} <= trainers


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
    # package builders are known by name, a classmethod by its class; a wrapper around a
    # build is one network; a network only counted decides nothing but still draws
    package = ("torch.manual_seed(seed)\nn = count_parameters(score_mlp(2))\n"
               "a = VPPrecond(UNet.digits(ch=8))\n")
    assert [line for _, line in unseeded_builds(package)] == [3]
    wrapped = ("torch.manual_seed(seed)\na = EDMPrecond(MLP(2), sigma_data=1.0)\n"
               "torch.manual_seed(seed)\nb = Kernel(MLP(2), MLP(2, hidden=8), sched)\n")
    assert unseeded_builds(wrapped) == []
    two = "torch.manual_seed(seed)\na, b = MLP(2), MLP(2, hidden=8)\n"
    assert [s for s, _ in unseeded_builds(two)] == ["MLP(2, hidden=8)"]
    assert unseeded_builds("n = count_parameters(MLP(2))\n") == []
    # a package trainer draws like fit; SEEDS[0] names a seed; a build in a lambda counts
    # where the lambda is written
    after_training = ("torch.manual_seed(SEEDS[0])\nm = R.fit_digits_denoiser(0, 10)\n"
                      "u = G.class_conditional_digits_denoiser()\n")
    assert [line for _, line in unseeded_builds(after_training)] == [3]
    in_a_lambda = ("new = lambda: MLP(2)\ntorch.manual_seed(seed)\n"
                   "a = fit(new(), loss, x, 10, seed=seed)\n")
    assert [line for _, line in unseeded_builds(in_a_lambda)] == [1]
