"""The layout of issue 24's split of ``diffnotes.metrics``: one module per subject, and
``metrics`` keeps every name it had (notebooks with stored outputs and the chapters import
them from there) while defining only the held-out denoising error itself."""

from __future__ import annotations

import pytest

import diffnotes.metrics as metrics
from diffnotes import feature_metrics, features, likelihood, restoration_metrics, toy_metrics

# The public names metrics.py had before the split.
OLD_METRICS = (
    "DEFAULT_BANDWIDTHS DIGITS_MIN_N DigitsReport MMD_KERNELS PF_ODE_UNITS bits_per_dim_from_nll "
    "denoising_error digits_classify digits_features digits_report frechet_digits_distance frechet_distance "
    "gmm_log_likelihood high_frequency_energy independent_pixels_bits_per_dim kernel_distance mmd "
    "noisy_and_denoised pf_ode_log_likelihood precision_recall psnr sliced_wasserstein sliced_wasserstein_band "
    "ssim").split()
PARTS = (toy_metrics, feature_metrics, restoration_metrics, likelihood)
OWN = {"noisy_and_denoised", "denoising_error"}  # the held-out denoising error lives in metrics.py
FROM_FEATURES = {"digits_features", "digits_classify"}


@pytest.mark.parametrize("name", OLD_METRICS)
def test_metrics_keeps_every_old_name(name):
    assert name in metrics.__all__
    obj = getattr(metrics, name)
    homes = [part for part in PARTS if name in part.__all__]
    if name in OWN:
        assert homes == [] and obj.__module__ == metrics.__name__
    elif name in FROM_FEATURES:
        assert homes == [] and obj is getattr(features, name)
    else:
        assert len(homes) == 1 and getattr(homes[0], name) is obj, f"{name}: listed by {homes}"


def test_metrics_gathers_its_parts_and_defines_only_the_denoising_error():
    parts = {name for part in PARTS for name in part.__all__}
    assert set(metrics.__all__) == parts | FROM_FEATURES | OWN
    assert len(metrics.__all__) == len(set(metrics.__all__))
    defined_here = {name for name in metrics.__all__
                    if getattr(getattr(metrics, name), "__module__", None) == metrics.__name__}
    assert defined_here == OWN


def test_each_part_lists_only_names_it_defines():
    """A name in a part's ``__all__`` is defined there, not passed on from another part."""
    for part in PARTS:
        for name in part.__all__:
            obj = getattr(part, name)
            assert getattr(obj, "__module__", part.__name__) == part.__name__, (part.__name__, name)
