"""Data: 2-D toys with exact scores, sklearn's bundled digits, local MNIST/CIFAR-10 folders.

Nothing here downloads at import or test time.
"""

from .gmm import GaussianMixture, gmm_ring, gmm_grid  # noqa: F401
from .toys import TOYS, checkerboard, get_toy, moons, swiss_roll  # noqa: F401
from .images import (  # noqa: F401
    CIFAR10_CLASSES,
    digits_split_indices,
    image_folder_classes,
    load_cifar10,
    load_digits,
    load_image_folder,
    load_mnist,
    read_idx,
)
