"""The variational autoencoder of {cite:t}`kingma2014auto` (AEVB), small enough for 8x8 digits.

Used by ``book/papers/kingma2014auto.md`` and ``notebooks/kingma2014auto.ipynb``. The book reads
the VAE as the one-step ancestor of the diffusion models: a variational diffusion model is a
hierarchical VAE whose encoder is fixed (the forward noising process) and whose decoder is
applied T times; here the encoder is learned and T = 1.

* ``VAE``: Gaussian encoder ``q(z|x) = N(mu(x), diag exp(log_var(x)))``, prior ``N(0, I)``, and a
  Bernoulli (binary pixels) or Gaussian decoder ``p(x|z)``.
* ``VAE.elbo``: the evidence lower bound, with the KL term in closed form (the paper's
  "second" estimator, SGVB B) or fully by Monte Carlo (SGVB A).
* ``VAE.iwae_bound``: the importance-weighted bound, a tighter estimate of ``log p(x)`` used to
  measure the model, not to train it.
* ``VAELoss``: ``-elbo`` in the training-loop signature ``loss_fn(model, x0, class_labels=None)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())  # the paper's MLPs use tanh hidden units
    return nn.Sequential(*layers)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``log N(x; mean, diag exp(log_var))`` summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_var + (x - mean).pow(2) / log_var.exp()).sum(dim=-1)


def gaussian_kl_to_standard(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    r"""``KL(N(mu, diag exp(log_var)) || N(0, I))`` per sample (the paper's Appendix B):

    .. math:: \tfrac12\sum_j\big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big).
    """
    return 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0).sum(dim=-1)


class VAE(nn.Module):
    """Encoder and decoder MLPs (``hidden=()`` makes both linear) on flat vectors of size ``x_dim``.

    ``likelihood="bernoulli"`` reads the decoder output as logits of binary pixels;
    ``"gaussian"`` as the mean of ``N(mean, sigma_x^2 I)`` with one learned ``log_sigma_x``.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: tuple[int, ...] = (256,), likelihood: str = "bernoulli"):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
        if x_dim < 1 or z_dim < 1:
            raise ValueError(f"x_dim and z_dim must be >= 1, got {x_dim}, {z_dim}")
        self.x_dim, self.z_dim, self.likelihood = x_dim, z_dim, likelihood
        self.encoder = _mlp([x_dim, *hidden, 2 * z_dim])
        self.decoder = _mlp([z_dim, *reversed(hidden), x_dim])
        self.log_sigma_x = nn.Parameter(torch.zeros(())) if likelihood == "gaussian" else None

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.x_dim:
            raise ValueError(f"VAE expects {self.x_dim} values per sample, got {x.shape[1]}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)`` of ``q(z|x)``, each (N, z_dim)."""
        mu, log_var = self.encoder(self._flat(x)).chunk(2, dim=-1)
        return mu, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (Bernoulli) or means (Gaussian) of ``p(x|z)``, shape (..., x_dim)."""
        return self.decoder(z)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)``; ``z`` may carry leading sample dimensions (K, N, z_dim)."""
        out = self.decode(z)
        x = x.expand_as(out)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(dim=-1)
        log_var = (2 * self.log_sigma_x).expand_as(out)
        return gaussian_log_density(x, out, log_var)

    def elbo(self, x: torch.Tensor, n_samples: int = 1, analytic_kl: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
        r"""The evidence lower bound per sample, by the reparameterisation ``z = mu + sigma * eps``:

        .. math:: \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))
                  = \log p(x) - \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x)) \le \log p(x).

        ``analytic_kl=True`` takes the KL in closed form (SGVB B); ``False`` estimates
        :math:`\log p(x|z) + \log p(z) - \log q(z|x)` at the sampled ``z`` (SGVB A), which equals
        :math:`\log p(x)` exactly when ``q`` is the true posterior.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        x = self._flat(x)
        mu, log_var = self.encode(x)
        gen_device = generator.device if generator is not None else mu.device
        eps = torch.randn((n_samples, *mu.shape), dtype=mu.dtype, device=gen_device, generator=generator).to(mu.device)
        z = mu + (0.5 * log_var).exp() * eps  # reparameterisation trick
        log_px = self.log_px_given_z(x, z)  # (K, N)
        if analytic_kl:
            return log_px.mean(dim=0) - gaussian_kl_to_standard(mu, log_var)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = gaussian_log_density(z, mu, log_var)
        return (log_px + log_pz - log_qz).mean(dim=0)

    @torch.no_grad()
    def iwae_bound(self, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None) -> torch.Tensor:
        r""":math:`\log\frac1K\sum_k p(x, z_k)/q(z_k|x)`, :math:`z_k\sim q`: a lower bound on
        :math:`\log p(x)` that tightens as ``k`` grows (Burda et al.); equals the ELBO at ``k=1``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = self._flat(x)
        mu, log_var = self.encode(x)
        gen_device = generator.device if generator is not None else mu.device
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=gen_device, generator=generator).to(mu.device)
        z = mu + (0.5 * log_var).exp() * eps
        log_w = (self.log_px_given_z(x, z) + gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
                 - gaussian_log_density(z, mu, log_var))
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling ``z ~ N(0, I)``, returning the mean of ``p(x|z)`` (pixel probabilities)."""
        param = next(self.parameters())
        z = torch.randn(n, self.z_dim, dtype=param.dtype, generator=generator).to(param.device)
        out = self.decode(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out


class VAELoss:
    """The negative ELBO per sample, for ``diffnotes.train.fit``.

    The reparameterisation noise comes from the loss's own generator when ``seed`` is given, so it
    never shares a stream with the data sampler.
    """

    def __init__(self, n_samples: int = 1, analytic_kl: bool = True, seed: int | None = None):
        self.n_samples = int(n_samples)
        self.analytic_kl = bool(analytic_kl)
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def __call__(self, model: VAE, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        return -model.elbo(x0, self.n_samples, self.analytic_kl, generator=self.generator)


# -- data and a baseline for the digits notebook ---------------------------------------------


def binarized_digits(split: str = "train") -> torch.Tensor:
    """sklearn's 8x8 digits as (N, 64) binary pixels (a pixel is on when its ink is above half).

    Binary data make ``log p(x)`` a true discrete log-likelihood in nats, so the ELBO and the
    baseline below are comparable numbers. Uses the fixed split of ``diffnotes.data.load_digits``.
    """
    from ..data.images import load_digits

    images, _ = load_digits(split)  # in [-1, 1]
    return (images.reshape(images.shape[0], -1) > 0).to(torch.float32)


def independent_pixels_log_likelihood(train: torch.Tensor, test: torch.Tensor, pseudo_count: float = 1.0) -> torch.Tensor:
    """Exact ``log p(x)`` per test image under independent Bernoulli pixels fitted on ``train``.

    The natural baseline for a latent-variable model: it captures every pixel's marginal and no
    correlation between pixels. ``pseudo_count`` smooths the frequencies (Laplace) so that a pixel
    never seen on in training does not give ``log 0``.
    """
    if pseudo_count <= 0:
        raise ValueError(f"pseudo_count must be positive, got {pseudo_count}")
    p = (train.sum(0) + pseudo_count) / (train.shape[0] + 2 * pseudo_count)
    return (test * p.log() + (1 - test) * (1 - p).log()).sum(dim=1)


# -- the variance of the two SGVB estimators --------------------------------------------------


@torch.no_grad()
def elbo_estimator_variance(vae: VAE, x: torch.Tensor, analytic_kl: bool = True, draws: int = 100,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Variance, per data point (N,), of the single-sample ELBO estimate over ``draws`` draws of z.

    ``analytic_kl=True`` is SGVB B (only the reconstruction term is sampled), ``False`` is SGVB A
    (all of ``log p(x, z) - log q(z|x)`` is sampled). Kingma & Welling prefer B because it
    typically has the smaller variance; the kingma2014auto notebook measures that. Neither is
    smaller always: when ``q`` is the exact posterior, A's variance is zero (see ``VAE.elbo``).
    """
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to estimate a variance, got {draws}")
    estimates = torch.stack([vae.elbo(x, 1, analytic_kl, generator=generator) for _ in range(draws)])
    return estimates.var(dim=0)
