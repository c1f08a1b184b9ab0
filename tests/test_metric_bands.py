"""The real-vs-real band of the sliced Wasserstein distance (``metrics.sliced_wasserstein_band``)."""

import pytest
import torch

from diffnotes.data import gmm_ring
from diffnotes.metrics import sliced_wasserstein, sliced_wasserstein_band


def _ring():
    return gmm_ring(8, radius=1.0, std=0.1)


def test_band_is_per_seed_and_reproducible():
    gmm = _ring()
    band = sliced_wasserstein_band(gmm.sample, 500, (0, 1, 2))
    assert len(band) == 3 and len(set(band)) == 3  # independent draws per seed
    assert band[1] == sliced_wasserstein_band(gmm.sample, 500, [1])[0]


def test_band_shrinks_with_n_and_sits_below_a_corrupted_set():
    gmm = _ring()
    small = sliced_wasserstein_band(gmm.sample, 200, range(5))
    large = sliced_wasserstein_band(gmm.sample, 4000, range(5))
    assert max(large) < min(small)  # the finite-sample floor falls like 1/sqrt(n)
    # a lightly corrupted set (ring blurred by 0.2) is farther from the data than the band
    ref = gmm.sample(4000, torch.Generator().manual_seed(10))
    blurred = gmm.sample(4000, torch.Generator().manual_seed(11))
    blurred = blurred + 0.2 * torch.randn(blurred.shape, generator=torch.Generator().manual_seed(12))
    corrupted = sliced_wasserstein(blurred, ref, generator=torch.Generator().manual_seed(0))
    assert corrupted > 2 * max(large)
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(13))
    assert sliced_wasserstein(noise, ref, generator=torch.Generator().manual_seed(0)) > corrupted


@pytest.mark.parametrize("kwargs, message", [
    (dict(sample_fn=None, n=10, seeds=[0]), "sample_fn must be callable"),
    (dict(sample_fn=_ring().sample, n=1, seeds=[0]), "n must be an integer >= 2"),
    (dict(sample_fn=_ring().sample, n=10, seeds=[]), "seeds is empty"),
])
def test_band_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sliced_wasserstein_band(**kwargs)
