"""Training batches for ``diffnotes.train.fit`` from any data source.

``Batches(data, batch_size, generator)`` accepts a tensor, an ``(x, labels)`` pair of tensors, an
object with ``sample(n, generator)`` (e.g. ``diffnotes.data.GaussianMixture``), a callable
``batch(n, generator)``, or an iterable such as a ``DataLoader`` (restarted at each epoch).
``next()`` returns one *global* batch ``(x0, labels or None)``; ``shard`` cuts a rank's slice of
it under data parallelism, so every rank draws the same global batch from the shared generator.
"""

from __future__ import annotations

import torch

__all__ = ["Batches", "shard"]


class Batches:
    """Global batches from a tensor, a ``(x, labels)`` pair, a callable, or an iterable."""

    def __init__(self, data, batch_size: int, generator: torch.Generator):
        self.batch_size, self.generator = batch_size, generator
        self.kind, self.data, self._iter = None, data, None
        if isinstance(data, torch.Tensor):
            self.kind, self.x, self.labels = "tensor", data, None
        elif (isinstance(data, (tuple, list)) and len(data) == 2
              and all(isinstance(d, torch.Tensor) for d in data)):
            self.kind, (self.x, self.labels) = "tensor", data
            if self.labels.shape[0] != self.x.shape[0]:
                raise ValueError(f"data and labels differ in length: {self.x.shape[0]} vs {self.labels.shape[0]}")
        elif hasattr(data, "sample") and callable(data.sample):
            self.kind, self.fn = "callable", data.sample
        elif callable(data):
            self.kind, self.fn = "callable", data
        elif hasattr(data, "__iter__"):
            self.kind = "iterable"
        else:
            raise ValueError(
                "data must be a tensor, an (x, labels) pair of tensors, a callable batch(n, generator), "
                f"or an iterable such as a DataLoader; got {type(data).__name__}"
            )
        if self.kind == "tensor" and self.x.shape[0] == 0:
            raise ValueError("data is empty")

    def _from_iterable(self):
        if self._iter is None:
            self._iter = iter(self.data)
        try:
            return next(self._iter)
        except StopIteration:  # a new epoch
            self._iter = iter(self.data)
            return next(self._iter)

    def next(self):
        """One global batch ``(x0, labels)``; ``labels`` is None when the data have none."""
        if self.kind == "tensor":
            idx = torch.randint(self.x.shape[0], (self.batch_size,), generator=self.generator)
            return self.x[idx], (None if self.labels is None else self.labels[idx])
        out = self.fn(self.batch_size, self.generator) if self.kind == "callable" else self._from_iterable()
        if isinstance(out, (tuple, list)):
            return out[0], (out[1] if len(out) > 1 else None)
        return out, None


def shard(x0, labels, rank: int, world: int, batch_size: int):
    """Rank ``rank``'s slice of ``batch_size // world`` rows of a global batch (all when ``world`` is 1)."""
    if world == 1:
        return x0, labels
    local = batch_size // world
    part = slice(rank * local, (rank + 1) * local)
    return x0[part], (None if labels is None else labels[part])
