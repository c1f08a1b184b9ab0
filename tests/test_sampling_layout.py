"""The layout of issue 24's split of ``diffnotes.sampling``: schedules, solvers and fitted
schedules each in their own module, ``sampling`` keeps every name it had (notebooks with stored
outputs and the chapters import them from there), and its docstring lists every solver of
``SOLVERS`` (``tests/test_metrics_layout.py`` checks the split of ``diffnotes.metrics``)."""

from __future__ import annotations

import importlib
import re

import pytest

import diffnotes.sampling as sampling
from diffnotes import schedule_fitting, schedules, solvers

# The public names each module had before the split; notebooks with stored outputs and the
# chapters import them from there.
OLD_SAMPLING = (
    "CountingDenoiser DDPM_SPACINGS FIT_SOLVERS FitRule RULE_FULL SCHEDULES SOLVERS ddpm_sigmas fit_schedule "
    "knot_sigmas optimize_sigmas posterior_variance refine_sigmas sample sample_ancestral "
    "sample_annealed_langevin sample_ddim sample_deis sample_dpmpp_2m sample_dpmpp_3m sample_edm_stochastic "
    "sample_euler sample_euler_maruyama sample_heun sample_predictor_corrector sample_unipc sigma_schedule "
    "to_d vp_sigma vp_sigma_inv warped_sigmas").split()
SAMPLING_PARTS = (schedules, solvers, schedule_fitting)


def _docstring_solvers(doc: str) -> list[tuple[str, str]]:
    """``(name, function)`` for each bullet ``* ``name``: ... (:func:`function`).`` of the list
    of solvers in a docstring (a bullet may wrap onto the following lines)."""
    bullets = re.split(r"\n(?=\* )", doc.split("The solvers, in the order of ``SOLVERS``", 1)[1])
    found = []
    for bullet in bullets[1:]:
        bullet = bullet.split("\n\n", 1)[0]
        name = re.match(r"\* ``(\w+)``:", bullet)
        function = re.findall(r":func:`(\w+)`", bullet)
        assert name and len(function) == 1, f"a solver bullet without its name or function: {bullet!r}"
        found.append((name.group(1), function[0]))
    return found


def test_the_docstring_lists_every_solver_in_the_registry_order():
    listed = _docstring_solvers(sampling.__doc__)
    assert [name for name, _ in listed] == list(sampling.SOLVERS)
    for name, function in listed:  # each bullet names the function that `sample` runs
        assert getattr(sampling, function) is solvers._SOLVER_FUNCTIONS[name], (name, function)


def test_the_docstring_reader_sees_a_missing_solver():
    doc = sampling.__doc__
    dropped = re.sub(r"\* ``unipc``:[^\n]*\n", "", doc)
    assert len(_docstring_solvers(dropped)) == len(sampling.SOLVERS) - 1


@pytest.mark.parametrize("name", OLD_SAMPLING)
def test_sampling_keeps_every_old_name(name):
    assert name in sampling.__all__
    obj = getattr(sampling, name)
    homes = [part for part in SAMPLING_PARTS if name in part.__all__]
    if name.startswith("vp_sigma"):  # the numeric bridge's, re-exported
        assert homes == [] and obj is getattr(importlib.import_module("diffnotes.theory.numeric"), name)
    else:
        assert len(homes) == 1 and getattr(homes[0], name) is obj, f"{name}: defined in {homes}"


def test_sampling_reexports_its_parts_and_nothing_else():
    parts = {name for part in SAMPLING_PARTS for name in part.__all__}
    assert set(sampling.__all__) == parts | {"vp_sigma", "vp_sigma_inv"}
    assert len(sampling.__all__) == len(set(sampling.__all__))
    defined_here = [name for name in sampling.__all__
                    if getattr(getattr(sampling, name), "__module__", None) == sampling.__name__]
    assert not defined_here, f"sampling.py should only gather names, but defines {defined_here}"



def test_the_running_page_lists_every_solver():
    """book/running.md names the solvers `sample` accepts: all of SOLVERS, no more."""
    import re

    from diffnotes.markdown import find_root
    from diffnotes.sampling import SOLVERS

    text = (find_root() / "book" / "running.md").read_text(encoding="utf-8")
    listed = text.split("accepts every solver of", 1)[1].split(")", 1)[0]
    assert re.findall(r"`([\w.]+)`", listed)[1:] == list(SOLVERS)  # [0]: diffnotes.sampling
