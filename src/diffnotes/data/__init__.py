"""Data: 2-D toys with exact scores, sklearn's bundled digits, local MNIST/CIFAR-10 folders.

Nothing here downloads at import or test time.
"""

from .gmm import GaussianMixture, gmm_ring, gmm_grid  # noqa: F401
