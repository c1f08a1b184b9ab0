"""Retrieval-augmented diffusion (Blattmann et al. 2022, "RDM") at the scale of 8x8 digits.

A retrieval database holds examples and their embeddings in a fixed feature space. For an image
(or a query) the model looks up its ``k`` nearest neighbours in the database and conditions the
denoiser on them: ``D(x; sigma, c)`` with ``c`` the mean of the neighbours' embeddings (the
paper feeds the set of CLIP embeddings through cross-attention; the mean is the set's summary a
small MLP can read, and for Gaussian clusters it is the sufficient statistic, see the proof
``retrieval_posterior``). The database is an input, not a parameter: swapping it at test time
changes the neighbours, hence the condition, hence what is generated, with no retraining.

The paper retrieves in the space of a frozen CLIP image encoder, trained apart from anything
that scores the samples. The lab's stand-in is :class:`PCAEmbedding`: principal components of
the pixels, fitted on the training split only. (An earlier version of the lab retrieved in the
features of the evaluation classifier, ``diffnotes.features.digits_features``, the very network
that also judges the samples: retrieval in the judge's space can please the judge for reasons
that say nothing about the method.)

* :class:`PCAEmbedding` — a retrieval embedding fitted on training images alone: the leading
  principal components of their centred pixels (``diffnotes.methods.subspace.PCASubspace``),
  as many as hold a declared share of the pixel variance, scaled by one number so that the
  training embeddings have mean square 1 (one scale for all coordinates: the neighbours are the
  nearest in the principal subspace, unchanged by it).
* :class:`Database` — embeddings (and labels) with ``neighbours`` and ``condition`` (the mean
  neighbour embedding of each query).
* :class:`RetrievalBatches` — training batches ``(x0, c)`` for ``diffnotes.train.fit``: each
  image's condition is the mean of its ``k`` nearest *other* training images, with ``k`` drawn
  per image from a list, so one network serves every ``k``; ``retrieval=False`` gives the zero
  condition (the same network without retrieval, the control arm).
* :func:`sample_from_database` — draw queries from a database, condition on their neighbours,
  sample (``diffnotes.methods.embedding.sample_conditioned``).
* :func:`label_distribution`, :func:`total_variation` — what the lab compares: the classifier's
  label distribution of samples against the database's.
"""

from __future__ import annotations

import torch

from .embedding import sample_conditioned
from .subspace import PCASubspace

__all__ = ["PCAEmbedding", "Database", "RetrievalBatches", "sample_from_database",
           "label_distribution", "total_variation"]


def _check_k(k, size: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= size:
        raise ValueError(f"k must be an integer in [1, {size}] (the database size), got {k!r}")
    return int(k)


class PCAEmbedding:
    """Principal components of pixels as a retrieval embedding, fitted on ``images`` (N, ...)
    only, the training split: nothing about a judge or a label enters it.

    Give ``dim`` (the number of leading directions) or ``variance`` (the fewest directions
    whose share of the centred training pixels' variance reaches it, in (0, 1)), not both.
    Calling it on images of the same shape returns their embeddings (M, dim): the coordinates
    of the centred pixels on those directions, divided by one scale that gives the training
    embeddings mean square 1. ``explained`` is the share of the training variance kept."""

    def __init__(self, images: torch.Tensor, *, dim: int | None = None,
                 variance: float | None = None):
        images = torch.as_tensor(images, dtype=torch.float32)
        if images.ndim < 2 or images.shape[0] < 2:
            raise ValueError(f"images must be a batch (N, ...) with N >= 2, "
                             f"got shape {tuple(images.shape)}")
        if (dim is None) == (variance is None):
            raise ValueError("give exactly one of dim (an integer number of directions) and "
                             "variance (a share in (0, 1))")
        self.shape = tuple(images.shape[1:])
        flat = images.reshape(images.shape[0], -1)
        self.mean = flat.mean(0)
        centred = flat - self.mean
        power = torch.linalg.svdvals(centred.double()) ** 2
        share = power.cumsum(0) / power.sum()
        if variance is not None:
            if isinstance(variance, bool) or not 0 < variance < 1:
                raise ValueError(f"variance must be a share in (0, 1), got {variance!r}")
            dim = min(int((share < variance).sum()) + 1, flat.shape[1] - 1)
        elif isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim < flat.shape[1]:
            raise ValueError(f"dim must be an integer in [1, {flat.shape[1] - 1}] (the images "
                             f"have {flat.shape[1]} values), got {dim!r}")
        self.subspace = PCASubspace(centred, dim)
        self.dim = dim
        self.explained = float(share[dim - 1])
        self.scale = float(self.subspace.coords(centred).pow(2).mean().sqrt())

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images, dtype=torch.float32)
        if tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"PCAEmbedding was fitted on images of shape {self.shape}, "
                             f"got {tuple(images.shape[1:])}")
        centred = images.reshape(images.shape[0], -1) - self.mean
        return self.subspace.coords(centred) / self.scale


class Database:
    """A retrieval database: ``embeddings`` (N, d) in the retrieval space, optional ``labels``
    (N,) (only to report what the database holds; retrieval never reads them)."""

    def __init__(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None):
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must have shape (N, d) with N >= 1, "
                             f"got {tuple(embeddings.shape)}")
        if labels is not None and len(labels) != len(embeddings):
            raise ValueError(f"{len(labels)} labels for {len(embeddings)} embeddings")
        self.embeddings, self.labels = embeddings, labels

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def neighbours(self, queries: torch.Tensor, k: int, *, exclude_self: bool = False) -> torch.Tensor:
        """Indices (Q, k) of each query's ``k`` nearest embeddings (Euclidean), nearest first.
        ``exclude_self`` skips an entry at distance 0 from the query: for queries drawn from the
        database itself, so that a training image is never its own neighbour."""
        limit = len(self) - 1 if exclude_self else len(self)
        k = _check_k(k, limit)
        queries = torch.as_tensor(queries, dtype=torch.float32)
        if queries.ndim != 2 or queries.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"queries must have shape (Q, {self.embeddings.shape[1]}), "
                             f"got {tuple(queries.shape)}")
        dist = torch.cdist(queries, self.embeddings)
        if exclude_self:
            dist = dist.masked_fill(dist <= 1e-6, float("inf"))
        return dist.topk(k, dim=1, largest=False).indices

    def condition(self, queries: torch.Tensor, k: int, *, exclude_self: bool = False) -> torch.Tensor:
        """The mean embedding (Q, d) of each query's ``k`` nearest neighbours."""
        return self.embeddings[self.neighbours(queries, k, exclude_self=exclude_self)].mean(dim=1)


class RetrievalBatches:
    """``batch(n, generator) -> (x0, c)`` for ``fit``: images from ``images`` (N, ...) and, for
    each, the mean embedding of its ``k`` nearest other entries of ``database`` (which must
    hold the same N images, in order), ``k`` drawn uniformly from ``ks`` per image.
    ``retrieval=False`` returns zero conditions of the same shape."""

    def __init__(self, images: torch.Tensor, database: Database, ks=(1, 2, 4, 8, 16), *,
                 retrieval: bool = True):
        if len(images) != len(database):
            raise ValueError(f"{len(images)} images but the database holds {len(database)}")
        self.ks = [_check_k(k, len(database) - 1) for k in ks]
        if not self.ks:
            raise ValueError("ks must name at least one k")
        self.images, self.database, self.retrieval = images, database, retrieval
        # conditions for every (image, k), computed once: retrieval is the costly part
        self.table = torch.stack([database.condition(database.embeddings, k, exclude_self=True)
                                  for k in self.ks]) if retrieval else None

    def __call__(self, n: int, generator: torch.Generator):
        idx = torch.randint(len(self.images), (n,), generator=generator)
        if not self.retrieval:
            return self.images[idx], torch.zeros(n, self.database.embeddings.shape[1])
        which = torch.randint(len(self.ks), (n,), generator=generator)
        return self.images[idx], self.table[which, idx]


@torch.no_grad()
def sample_from_database(denoiser, database: Database, n: int, k: int, shape: tuple[int, ...], *,
                         generator: torch.Generator, steps: int = 18) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples conditioned on the ``k`` neighbours of ``n`` queries drawn uniformly (with
    replacement) from ``database``. Returns ``(samples, query indices)``."""
    queries = torch.randint(len(database), (n,), generator=generator)
    cond = database.condition(database.embeddings[queries], k)
    return sample_conditioned(denoiser, cond, shape, steps=steps, generator=generator), queries


def label_distribution(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The empirical distribution (num_classes,) of integer ``labels``."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.numel() == 0 or bool((labels < 0).any()) or bool((labels >= num_classes).any()):
        raise ValueError(f"labels must be a non-empty set of integers in [0, {num_classes})")
    return torch.bincount(labels, minlength=num_classes).double() / labels.numel()


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """Total-variation distance ``(1/2) sum |p - q|`` of two distributions on the same classes."""
    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p and q must be 1-D of the same length, got {tuple(p.shape)} and {tuple(q.shape)}")
    return float((p - q).abs().sum() / 2)
