"""The CUDA suite: ``pytest -m gpu tests/gpu`` (``benchmarks/gpu_check.sh`` runs it first).

Every test here is marked ``gpu`` and skips, with the reason, where CUDA is not available, so
``make unit`` (which collects ``tests/``) reports skips, never failures, on a CPU machine.
``DIFFNOTES_GPU_TESTS_ON_CPU=1`` runs the same code on the CPU at a smaller size: a check of the
suite's own code paths (API calls, shapes), not of CUDA.
"""

import os

import pytest
import torch

ON_CPU = os.environ.get("DIFFNOTES_GPU_TESTS_ON_CPU") == "1"


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "run on a GPU machine or set DIFFNOTES_GPU_TESTS_ON_CPU=1")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gpu)
            if not (torch.cuda.is_available() or ON_CPU):
                item.add_marker(skip)


@pytest.fixture
def device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
