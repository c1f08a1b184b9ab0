"""A check that fails only for a network compared with itself proves little: these notebooks
must also fail their checks when trained for a small fraction of their ``quick`` budget, so
the checks are shown to be sensitive to a *badly* trained model, not only to an untrained one.

The fractions (``DIFFNOTES_TRAIN_STEPS`` caps every run of the notebook):

* ``vincent2011connection``: 15 of 300 steps (5%) -- DSM's distance to its optimum must fall
  far below an untrained network's; at 5% the loss has barely begun to fall.
* ``hyvarinen2005estimation``: 20 of 400 steps (5%) -- exact score matching's relative error
  must fall below half the untrained network's.
* ``ho2020denoising``: 25 steps, 5% of the toy's 500 and 42% of the digits U-Net's 60 -- the
  digit samples must come closer to real digits than an untrained network's; the U-Net's
  budget is already tiny under ``quick``, so a larger fraction of it still fails.
"""

import pytest

from test_untrained import ROOT, run_expecting_failed_check

BADLY_TRAINED = {
    "vincent2011connection": 15,
    "hyvarinen2005estimation": 20,
    "ho2020denoising": 25,
}


@pytest.mark.parametrize("key,steps", sorted(BADLY_TRAINED.items()))
def test_notebook_fails_when_badly_trained(key, steps, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", str(steps))
    monkeypatch.delenv("DIFFNOTES_BROKEN", raising=False)
    run_expecting_failed_check(ROOT / "notebooks" / f"{key}.ipynb", monkeypatch,
                               what=f"trained for only {steps} steps")
