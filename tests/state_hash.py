"""A test helper: a short digest of a module's state dict (names and bytes), which pins initial
weights across a refactor. Tests import it with ``from state_hash import state_hash`` (``tests/``
is on ``sys.path`` for the test modules in it)."""

from __future__ import annotations


def state_hash(module) -> str:
    """A short digest of ``module``'s state dict."""
    import hashlib

    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
