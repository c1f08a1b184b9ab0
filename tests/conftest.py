"""Suite-wide settings.

The tests run small tensors, for which PyTorch's intra-op threads cost more than they save
(measured here: a 2-D MLP step 10 ms on one thread, far slower with two threads on a loaded
2-core machine). One thread also makes timings of the suite stable under CI's load.
"""

import os

os.environ.setdefault("DIFFNOTES_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)

