"""Sample-quality and likelihood metrics used across the book.

* 2-D toys: :func:`sliced_wasserstein` (SW-2), :func:`mmd` (unbiased MMD^2) and, for the Gaussian
  mixture whose density is known, :func:`gmm_log_likelihood`.
* Image sets, on any features: :func:`frechet_distance` (the FID formula of Heusel et al. 2017),
  :func:`kernel_distance` (the unbiased KID of Binkowski et al. 2018, with its standard error)
  and :func:`precision_recall` (improved precision and recall, Kynkaanniemi et al. 2019).
* Digits: :func:`digits_features` and :func:`digits_classify` (the small classifier of
  :mod:`diffnotes.features`, trained on a split no metric uses as reference) and
  :func:`digits_report`, which scores samples against the evaluation split *and* scores a real
  set of the same size the same way, so every number comes with the band real data gets.
  :func:`frechet_digits_distance` ("FDD") is the Fréchet distance alone in that space.
* Restoration: :func:`psnr` and :func:`ssim` (Wang et al. 2004) for the super-resolution and
  inpainting chapters.
* Denoising on held-out data at one noise level: :func:`noisy_and_denoised` (x0 + sigma n and
  D(x0 + sigma n; sigma), n from a given generator) and :func:`denoising_error`, the squared error
  of D against x0 (the denoising loss itself, unweighted), the one held-out denoising error of
  the package.
* Likelihood: :func:`pf_ode_log_likelihood` (the probability-flow ODE as a continuous
  normalising flow of Song et al. 2021) and :func:`bits_per_dim_from_nll`.

Every function takes torch tensors with the batch first and returns a float or a tensor; none of
them trains anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .features import digits_classify, digits_features

__all__ = [
    "sliced_wasserstein",
    "mmd",
    "gmm_log_likelihood",
    "frechet_distance",
    "kernel_distance",
    "precision_recall",
    "digits_features",
    "digits_classify",
    "digits_report",
    "DigitsReport",
    "frechet_digits_distance",
    "psnr",
    "ssim",
    "high_frequency_energy",
    "noisy_and_denoised",
    "denoising_error",
    "bits_per_dim_from_nll",
    "pf_ode_log_likelihood",
]


def _as_points(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, d) with N >= 2, got {tuple(x.shape)}")
    return x.to(torch.float64)


# -- distances between sample sets --------------------------------------------------------------
def _w2_squared_1d(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Exact W2^2 between the empirical measures of sorted columns xs (n, P) and ys (m, P).

    W2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du with both quantile functions piecewise constant; the
    integral is a finite sum over the merged breakpoints {i/n} U {j/m}.
    """
    n, m = xs.shape[0], ys.shape[0]
    if n == m:
        return ((xs - ys) ** 2).mean(dim=0)
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                   torch.arange(1, m + 1, dtype=torch.float64) / m]).sort().values
    u[-1] = 1.0
    widths = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - widths / 2  # inside each interval both quantile functions are constant
    ix = (mid * n).floor().long().clamp(max=n - 1).to(xs.device)
    iy = (mid * m).floor().long().clamp(max=m - 1).to(xs.device)
    return (widths.to(xs.device).unsqueeze(1) * (xs[ix] - ys[iy]) ** 2).sum(dim=0)


def sliced_wasserstein(x, y, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance ``(E_theta W2^2(theta.x, theta.y))^(1/2)``, theta uniform on the sphere.

    Each 1-D W2 is exact (sorting for equal sizes, merged quantiles otherwise); the only error is
    the Monte Carlo average over ``n_projections`` directions, drawn from ``generator``.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = torch.randn(n_projections, x.shape[1], dtype=torch.float64, generator=generator)
    theta = (theta / theta.norm(dim=1, keepdim=True)).to(x.device)
    xs = (x @ theta.T).sort(dim=0).values
    ys = (y.to(x.device) @ theta.T).sort(dim=0).values
    return _w2_squared_1d(xs, ys).mean().sqrt().item()


MMD_KERNELS = ("rbf", "imq")
DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _kernel(sq_dist: torch.Tensor, kernel: str, bandwidths) -> torch.Tensor:
    total = torch.zeros_like(sq_dist)
    for h in bandwidths:
        if kernel == "rbf":
            total += torch.exp(-sq_dist / (2 * h**2))
        else:  # inverse multiquadric, heavy-tailed: still sees far-apart modes
            total += (1 + sq_dist / h**2).rsqrt()
    return total


def mmd(x, y, kernel: str = "rbf", bandwidths=DEFAULT_BANDWIDTHS) -> float:
    """Unbiased estimate of MMD^2 (Gretton et al. 2012) with a sum of kernels over ``bandwidths``.

    ``kernel`` is "rbf" (exp(-|a-b|^2 / (2 h^2))) or "imq" ((1 + |a-b|^2 / h^2)^(-1/2)). The default
    bandwidths suit the unit-variance 2-D toys; pass fixed ones of your data's scale otherwise
    (fixed, so that numbers of different models stay comparable). The estimate drops the i = j
    terms, so it is unbiased and can be slightly negative when the two samples match.
    """
    if kernel not in MMD_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(MMD_KERNELS)}; got {kernel!r}")
    bandwidths = tuple(float(h) for h in np.atleast_1d(bandwidths))
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive numbers, got {bandwidths}")
    x, y = _as_points(x, "x"), _as_points(y, "y").to(torch.as_tensor(x).device)
    n, m = x.shape[0], y.shape[0]
    k_xx = _kernel(torch.cdist(x, x) ** 2, kernel, bandwidths)
    k_yy = _kernel(torch.cdist(y, y) ** 2, kernel, bandwidths)
    k_xy = _kernel(torch.cdist(x, y) ** 2, kernel, bandwidths)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return (term_xx + term_yy - 2 * k_xy.mean()).item()


def gmm_log_likelihood(x, gmm, sigma: float = 0.0) -> float:
    """Mean exact log-density (nats) of samples ``x`` under a known mixture ``gmm`` (``log_prob``).

    For a sampler run on the exact GMM denoiser, this says how much mass lands where the data
    lives; it is bounded above by minus the mixture's entropy.
    """
    return gmm.log_prob(torch.as_tensor(x), sigma).mean().item()


# -- Fréchet distance ---------------------------------------------------------------------------
def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh(cov)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(feat_x, feat_y) -> float:
    """Fréchet distance between Gaussian fits: |mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x C_y)^(1/2)).

    This is the FID formula (Heusel et al. 2017) applied to any features (N, D). The trace of the
    matrix square root uses tr (C_x C_y)^(1/2) = tr (C_x^(1/2) C_y C_x^(1/2))^(1/2): the inner
    matrix is symmetric positive semi-definite, so two symmetric eigen-decompositions in float64
    replace the general ``sqrtm`` and no complex round-off appears for singular covariances.
    """
    fx = np.asarray(torch.as_tensor(feat_x).detach().cpu(), dtype=np.float64)
    fy = np.asarray(torch.as_tensor(feat_y).detach().cpu(), dtype=np.float64)
    if fx.ndim != 2 or fy.ndim != 2 or fx.shape[1] != fy.shape[1] or min(fx.shape[0], fy.shape[0]) < 2:
        raise ValueError(f"features must be (N, D) arrays with the same D and N >= 2, got {fx.shape} and {fy.shape}")
    mu_x, mu_y = fx.mean(axis=0), fy.mean(axis=0)
    cov_x, cov_y = np.cov(fx, rowvar=False, ddof=1), np.cov(fy, rowvar=False, ddof=1)
    cov_x, cov_y = np.atleast_2d(cov_x), np.atleast_2d(cov_y)
    root_x = _psd_sqrt(cov_x)
    middle = root_x @ cov_y @ root_x
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * trace_sqrt
    return float(max(value, 0.0))


def frechet_digits_distance(images_x, images_y) -> float:
    """Fréchet distance between two sets of digits images (N, 1, H, H) in [-1, 1], "FDD".

    Features are the 64 penultimate activations of :class:`diffnotes.features.DigitsClassifier`.
    Read it against a real-vs-real band at the same N: :func:`digits_report` does both.
    """
    return frechet_distance(digits_features(images_x), digits_features(images_y))


# -- kernel distance (KID) ----------------------------------------------------------------------
def _as_features(feats, name: str) -> np.ndarray:
    array = np.asarray(torch.as_tensor(feats).detach().cpu(), dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 4:
        raise ValueError(f"{name} must be a feature array (N, D) with N >= 4, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values; features must be finite")
    return array


def _u_statistic_variance(h: np.ndarray) -> float:
    """Unbiased variance of U = mean_{i != j} h_ij for a symmetric kernel matrix h (m x m).

    Hoeffding: Var U = 2 / (m (m-1)) * (2 (m-2) zeta_1 + zeta_2), with zeta_1 = Cov(h_12, h_13)
    and zeta_2 = Var h_12. Each moment is estimated without bias from the sums over distinct
    index pairs (Q), triples (T) and quadruples (F) of h's off-diagonal entries. When the two
    sets come from one distribution zeta_1 is exactly 0 and its estimate is noise that can be
    negative enough to make the variance negative; both zetas are clipped at 0, which errs on
    the large side (checked by simulation: within 20% of the spread of repeated draws).
    """
    m = h.shape[0]
    h = h - np.diag(np.diag(h))
    rows = h.sum(axis=1)
    pairs = h.sum()  # ordered pairs i != j
    q = (h**2).sum()
    t = (rows**2).sum() - q  # ordered triples (i, j, k) distinct: h_ij h_ik
    f = pairs**2 - 2 * q - 4 * t  # ordered disjoint pairs of pairs: h_ij h_kl
    mean_pair_sq = q / (m * (m - 1))
    mean_triple = t / (m * (m - 1) * (m - 2))
    mean_quad = f / (m * (m - 1) * (m - 2) * (m - 3))  # unbiased for (E h)^2
    zeta_1, zeta_2 = mean_triple - mean_quad, mean_pair_sq - mean_quad
    return 2.0 / (m * (m - 1)) * (2 * (m - 2) * max(zeta_1, 0.0) + max(zeta_2, 0.0))


def kernel_distance(feats_a, feats_b, *, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic kernel k(x, y) = (x.y / D + 1)^3: KID, and its standard error.

    The kernel and the unbiased estimator are those of KID (Binkowski et al. 2018, "Demystifying
    MMD GANs"): no Gaussian assumption, an unbiased value (so it can dip below 0 when the sets
    match) whose expectation does not depend on N, unlike the Fréchet distance.

    With equal sizes m the estimate is a one-sample U-statistic over the pairs z_i = (a_i, b_i),
    MMD^2_u = mean_{i != j} h(z_i, z_j), h = k(a_i, a_j) + k(b_i, b_j) - k(a_i, b_j) - k(a_j, b_i),
    and the standard error is the square root of its variance estimate (Hoeffding's formula),
    not a spread over subsets. The value returned is KID's usual estimator, which also uses the
    cross terms k(a_i, b_i); it is the average of the paired U-statistic over all pairings, so
    its variance is at most the paired one and the standard error errs on the safe side. With
    unequal sizes the standard error is computed on a random pairing of min(N_a, N_b) points
    from each side (``seed``).
    """
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")
    dim = a.shape[1]

    def kernel(x, y):
        return (x @ y.T / dim + 1.0) ** 3

    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    n_a, n_b = a.shape[0], b.shape[0]
    value = ((k_aa.sum() - np.trace(k_aa)) / (n_a * (n_a - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n_b * (n_b - 1))
             - 2 * k_ab.mean())
    if n_a != n_b:
        m = min(n_a, n_b)
        rng = np.random.RandomState(seed)
        ia, ib = rng.permutation(n_a)[:m], rng.permutation(n_b)[:m]
        k_aa, k_bb, k_ab = k_aa[np.ix_(ia, ia)], k_bb[np.ix_(ib, ib)], k_ab[np.ix_(ia, ib)]
    h = k_aa + k_bb - k_ab - k_ab.T
    variance = _u_statistic_variance(h)
    return float(value), float(math.sqrt(max(variance, 0.0)))


# -- improved precision and recall --------------------------------------------------------------
def _knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    dist = torch.cdist(feats, feats)
    return dist.kthvalue(k + 1, dim=1).values  # the smallest distance is the point itself (0)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of ``points`` inside at least one ball (centre, radius)."""
    inside = torch.cdist(points, centres) <= radii[None, :]
    return inside.any(dim=1).double().mean().item()


def precision_recall(feats_real, feats_fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds.

    Each set's manifold is the union of balls around its points, each ball reaching the point's
    k-th nearest neighbour in the same set. Precision: the fraction of fake points inside the
    real manifold (are samples realistic?). Recall: the fraction of real points inside the fake
    manifold (is the data's variety covered?). The paper uses k = 3.
    """
    real = torch.from_numpy(_as_features(feats_real, "feats_real"))
    fake = torch.from_numpy(_as_features(feats_fake, "feats_fake"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feats_real and feats_fake must have the same feature dimension, "
                         f"got {real.shape[1]} and {fake.shape[1]}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be an integer in [1, N - 1] = [1, {min(real.shape[0], fake.shape[0]) - 1}], got {k}")
    precision = _coverage(fake, real, _knn_radii(real, k))
    recall = _coverage(real, fake, _knn_radii(fake, k))
    return precision, recall


# -- the digits report: samples next to the real-vs-real band ------------------------------------
DIGITS_MIN_N = 10


@dataclass
class DigitsReport:
    """Image metrics of a set of digits against the evaluation split, with the real-vs-real band.

    ``fd`` Fréchet distance, ``kd`` and ``kd_se`` kernel distance (KID) and its standard error,
    ``precision``/``recall`` (k = 3), ``class_accuracy`` the classifier's accuracy on the given
    labels (None without labels), ``n`` the number of images per side. ``band`` holds the same
    metrics for real digits (evaluation half B against the same reference images of half A, at
    the same ``n``): a model's number means something only next to it.
    """

    fd: float
    kd: float
    kd_se: float
    precision: float
    recall: float
    class_accuracy: float | None
    n: int
    band: "DigitsReport | None" = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["band"] = None if self.band is None else self.band.as_dict()
        return out

    def table(self) -> str:
        """A Markdown table: each metric for the samples and for real digits at the same N."""
        rows = [("Fréchet distance (lower is better)", f"{self.fd:.3f}", self.band and f"{self.band.fd:.3f}"),
                ("kernel distance x 1000 (lower is better)", f"{1e3 * self.kd:.2f} ± {1e3 * self.kd_se:.2f}",
                 self.band and f"{1e3 * self.band.kd:.2f} ± {1e3 * self.band.kd_se:.2f}"),
                ("precision (higher is better)", f"{self.precision:.3f}", self.band and f"{self.band.precision:.3f}"),
                ("recall (higher is better)", f"{self.recall:.3f}", self.band and f"{self.band.recall:.3f}")]
        if self.class_accuracy is not None:
            rows.append(("classifier accuracy on the labels", f"{self.class_accuracy:.3f}",
                         self.band and self.band.class_accuracy is not None and f"{self.band.class_accuracy:.3f}"))
        lines = [f"| metric (N = {self.n}) | samples | real band |", "|---|---|---|"]
        lines += [f"| {name} | {ours} | {band or '-'} |" for name, ours, band in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _check_digits_images(images, name: str) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3] or images.shape[2] % 8:
        raise ValueError(f"{name} must be digits images of shape (N, 1, H, H) with H in 8, 16, 32; "
                         f"got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating-point images in [-1, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} holds NaN or infinite values; pass finite images in [-1, 1]")
    if images.shape[0] < DIGITS_MIN_N:
        raise ValueError(f"{name} holds {images.shape[0]} images; the metrics need N >= {DIGITS_MIN_N}")
    return images.detach().cpu().to(torch.float32)


def _set_metrics(feats_ref: torch.Tensor, feats: torch.Tensor, accuracy: float | None) -> DigitsReport:
    kd, kd_se = kernel_distance(feats_ref, feats)
    precision, recall = precision_recall(feats_ref, feats)
    return DigitsReport(fd=frechet_distance(feats_ref, feats), kd=kd, kd_se=kd_se, precision=precision,
                        recall=recall, class_accuracy=accuracy, n=feats.shape[0])


def digits_report(samples, labels=None, *, n: int | None = None, seed: int = 0) -> DigitsReport:
    """Score digits ``samples`` (N, 1, 8, 8) in [-1, 1] against real digits, with the real band.

    The reference is half A of the evaluation split (:func:`diffnotes.data.load_digits`
    ``"eval_a"``), which neither the models nor the feature classifier were trained on. The
    band scores half B (``"eval_b"``) against the same reference images. Both sides are drawn
    to the same ``n`` (default: the smaller of N and the half size, 324) without replacement
    from a generator seeded with ``seed``, so the report is deterministic and the band is
    computed at the samples' N. ``labels`` (the classes a class-conditional model was asked
    for) add the classifier's accuracy on all the samples; the band then shows its accuracy on
    the real half B.

    How to read it: at N = 324 the band is FD 0.23, KD (-15 +- 11) x 1e-3 (zero within its
    error, as it should be for two real sets), precision 0.92, recall 0.92, accuracy 0.975.
    Real digits of the models' ``train`` split, scored the same way, land at FD 0.14-0.21 and
    precision/recall 0.90-0.94 over three draws: differences of that size are noise, not
    quality. KD's standard error says how far its own value can move; the Fréchet distance
    has none here, so compare it with the band generously: over 15 seeds the band's FD is
    0.26 +- 0.03 (sd) at N = 300 but 1.11 +- 0.37 at N = 100, and its recall moves by 0.03 at
    N = 100 (the Fréchet distance is biased upwards at small N). Measured corruptions at N = 300
    (tests/test_image_metrics.py): pixel noise of std 0.2 gives FD 0.47, a Gaussian blur of
    0.4 pixel 0.49, noise of std 1.0 4.0, uniform noise 15.4.
    """
    from .data import load_digits

    samples = _check_digits_images(samples, "samples")
    if labels is not None:
        labels = torch.as_tensor(labels).detach().cpu()
        if labels.shape != (samples.shape[0],) or labels.is_floating_point():
            raise ValueError(f"labels must be integer classes of shape ({samples.shape[0]},), "
                             f"got {labels.dtype} of shape {tuple(labels.shape)}")
    reference, _ = load_digits("eval_a")
    real, real_labels = load_digits("eval_b")
    largest = min(samples.shape[0], reference.shape[0], real.shape[0])
    if n is None:
        n = largest
    if not (isinstance(n, (int, np.integer)) and DIGITS_MIN_N <= n <= largest):
        raise ValueError(f"n must be an integer in [{DIGITS_MIN_N}, {largest}] (the samples and the "
                         f"evaluation halves hold {samples.shape[0]} and {reference.shape[0]} images), got {n!r}")
    n = int(n)
    generator = torch.Generator().manual_seed(seed)
    pick_samples = torch.randperm(samples.shape[0], generator=generator)[:n]
    pick_reference = torch.randperm(reference.shape[0], generator=generator)[:n]
    pick_real = torch.randperm(real.shape[0], generator=generator)[:n]
    feats_ref = digits_features(reference[pick_reference]).double()
    accuracy = real_accuracy = None
    if labels is not None:
        accuracy = (digits_classify(samples) == labels).double().mean().item()
        real_accuracy = (digits_classify(real[pick_real]) == real_labels[pick_real]).double().mean().item()
    report = _set_metrics(feats_ref, digits_features(samples[pick_samples]).double(), accuracy)
    report.band = _set_metrics(feats_ref, digits_features(real[pick_real]).double(), real_accuracy)
    return report


# -- restoration metrics ------------------------------------------------------------------------
def _check_images(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"x and y must be image batches (N, C, H, W) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dtype), y.to(dtype)


def _reduce(values: torch.Tensor, reduction: str):
    if reduction == "mean":
        return values.mean().item()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(x, y, data_range: float = 2.0, reduction: str = "mean"):
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) per image, in dB.

    ``data_range`` is max - min of the pixel scale: 2 for the book's [-1, 1] images, 1 for [0, 1],
    255 for bytes. Identical images give ``inf``.
    """
    x, y = _check_images(x, y)
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    return _reduce(10 * torch.log10(data_range**2 / mse), reduction)


def _gaussian_window(win_size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x, y, data_range: float = 2.0, win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03, reduction: str = "mean"):
    """Structural similarity (Wang et al. 2004) with their standard settings.

    An 11 x 11 Gaussian window (sigma 1.5) gives local means, variances and the covariance;
    C1 = (k1 L)^2, C2 = (k2 L)^2 with L = ``data_range``. The SSIM map is computed over the
    positions where the window fits ("valid"), averaged over channels and positions per image.
    For 8x8 digits pass a smaller odd ``win_size`` (e.g. 7). Equal to scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
    (checked to 3e-15 where scikit-image is installed).
    """
    x, y = _check_images(x, y)
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"win_size must be an odd number >= 3, got {win_size}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than win_size={win_size}; pass a smaller odd win_size")
    channels = x.shape[1]
    window = _gaussian_window(win_size, sigma, x.dtype, x.device).expand(channels, 1, win_size, win_size)

    def local_mean(t):
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _reduce(ssim_map.flatten(1).mean(dim=1), reduction)


@torch.no_grad()
def noisy_and_denoised(denoiser, x0: torch.Tensor, sigma: float, *, cond=None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0 + sigma n, D(x0 + sigma n; sigma))`` for held-out ``x0`` at one noise level.

    ``n ~ N(0, I)`` is one draw of ``x0``'s shape and dtype from ``generator`` (so two models or two
    conditions can be compared on the same noise); the denoiser gets ``sigma`` per sample and,
    when ``cond`` is given, ``cond`` as its third argument (a label, a code, a low-resolution image).
    """
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    noisy = x0 + sigma * noise
    sigmas = x0.new_full((x0.shape[0],), float(sigma))
    denoised = denoiser(noisy, sigmas) if cond is None else denoiser(noisy, sigmas, cond)
    return noisy, denoised


@torch.no_grad()
def denoising_error(denoiser, x0: torch.Tensor, sigma: float, *, cond=None,
                    generator: torch.Generator | None = None, reduction: str = "mean"):
    """Squared error ``|D(x0 + sigma n; sigma) - x0|^2`` on held-out ``x0`` at one noise level.

    The noise and the call are those of :func:`noisy_and_denoised`. ``reduction="mean"``: the mean
    over every value, a float; ``"none"``: each sample's mean over its values, shape (N,) (weight
    it, e.g. by ``diffnotes.methods.edm.edm_weight``, for a weighted loss).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    _, denoised = noisy_and_denoised(denoiser, x0, sigma, cond=cond, generator=generator)
    error = (denoised - x0) ** 2
    return error.mean().item() if reduction == "mean" else error.flatten(1).mean(dim=1)


def high_frequency_energy(x, factor: int, reduction: str = "none"):
    """Per-image mean of ``(x - lowpass(x, factor))**2``: the energy above the band that a
    ``factor``-times down-sampled image keeps (``diffnotes.degradations.lowpass``, bicubic).

    The super-resolution chapters compare it between outputs and ground truth: a blurry estimate
    has a ratio well below 1, plausible texture a ratio near 1, added noise a ratio above 1.
    """
    from .degradations import lowpass

    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"x must be an image batch (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return _reduce(((x - lowpass(x, factor)) ** 2).flatten(1).mean(dim=1), reduction)


# -- likelihood ---------------------------------------------------------------------------------
def bits_per_dim_from_nll(nll, num_dims: int, bin_width: float | None = None):
    """Convert a negative log-likelihood in nats to bits per dimension.

    bpd = nll / (num_dims ln 2). With ``bin_width`` (the spacing of the discrete pixel values in
    the model's coordinates) a density becomes the probability of a bin, P ~ p * width^D, so
    ``-log2(bin_width)`` is added: for 8-bit images scaled to [-1, 1], bin_width = 2/256 adds 7
    bits (8 for [0, 1]), the same offset as the Score SDE code release (``likelihood.py``).
    """
    from .chain import to_bits_per_dim  # the one nats -> bits/dim conversion

    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    bpd = to_bits_per_dim(torch.as_tensor(nll, dtype=torch.float64), num_dims)
    if bin_width is not None:
        if bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {bin_width}")
        bpd = bpd - math.log2(bin_width)
    return bpd.item() if bpd.ndim == 0 else bpd


def _gaussian_prior_log_prob(sigma_max: float) -> Callable:
    def log_prob(z: torch.Tensor) -> torch.Tensor:
        d = z[0].numel()
        return -0.5 * (z.flatten(1) ** 2).sum(1) / sigma_max**2 - 0.5 * d * math.log(2 * math.pi * sigma_max**2)

    return log_prob


def _drift_and_divergence(denoiser, x: torch.Tensor, sigma: float, eps: torch.Tensor | None):
    """f = dx/du with u = log sigma, and its divergence (exact, or Hutchinson with probe ``eps``)."""
    from .sampling import to_d

    n, num_dims = x.shape[0], x[0].numel()
    # Exact trace: stack D copies of the batch, copy i differentiates output coordinate i; one
    # backward pass through a D-times larger batch gives every diagonal Jacobian entry.
    copies = 1 if eps is not None else num_dims
    with torch.enable_grad():
        x_in = x.detach().repeat(copies, *([1] * (x.ndim - 1))).requires_grad_(True)
        sigma_vec = torch.full((x_in.shape[0],), sigma, dtype=x.dtype, device=x.device)
        # dx/du = sigma dx/dsigma: log-sigma time keeps the step sizes even from sigma_min to sigma_max
        f = sigma * to_d(x_in, sigma, denoiser(x_in, sigma_vec).to(x.dtype))
        if eps is not None:
            # Hutchinson: E[eps^T (df/dx) eps] = tr(df/dx) for Rademacher eps
            (grad,) = torch.autograd.grad((f * eps).sum(), x_in)
            div = (grad * eps).flatten(1).sum(dim=1)
        else:
            diag = torch.arange(num_dims, device=x.device)
            picked = f.reshape(num_dims, n, num_dims)[diag, :, diag]  # (D, N): f_i of copy i
            (grad,) = torch.autograd.grad(picked.sum(), x_in)
            div = grad.reshape(num_dims, n, num_dims)[diag, :, diag].sum(dim=0)
    return f[:n].detach(), div.detach()


PF_ODE_UNITS = ("nats", "bits_per_dim")


def pf_ode_log_likelihood(denoiser, x: torch.Tensor, sigma_max: float, sigma_min: float, *,
                          steps: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                          exact_trace: bool | None = None, generator: torch.Generator | None = None,
                          prior_log_prob: Callable | None = None, unit: str = "nats",
                          bin_width: float | None = None) -> torch.Tensor:
    """Log-likelihood of ``x`` under the model through the probability-flow ODE, per sample.

    The PF-ODE in the s = 1 sigma-parameterisation, dx/dsigma = (x - D(x; sigma)) / sigma, is a
    continuous normalising flow: along a trajectory, d log p(x; sigma) / dsigma = -div_x(dx/dsigma)
    (the instantaneous change of variables of Chen et al. 2018, as used by Song et al. 2021). Integrating from the data at ``sigma_min`` up to
    ``sigma_max`` (in u = log sigma) gives

        log p(x; sigma_min) = log p_prior(x(sigma_max)) + int div_x f du,    f = x - D(x; sigma),

    with the prior N(0, sigma_max^2 I) unless ``prior_log_prob`` (a callable on (N, ...) batches)
    is given. The result is the density of the data blurred by ``sigma_min``; keep it small.

    Solver: adaptive RK45 (``scipy.integrate.solve_ivp``) with ``rtol``/``atol``, or fixed-step
    RK4 with ``steps`` steps evenly spaced in log sigma. Divergence: exact (one backward pass
    through a batch of D stacked copies, so memory grows D-fold) or Hutchinson's estimator with one Rademacher probe per sample, fixed over the
    whole solve and drawn from ``generator`` (unbiased for the likelihood, as in FFJORD);
    ``exact_trace=None`` picks exact for up to 64 dimensions.

    ``unit`` "nats" returns log p (N,), "bits_per_dim" returns the NLL in bits per dimension via
    :func:`bits_per_dim_from_nll` (with ``bin_width`` for discrete data). Used by the likelihood
    sections of the Score SDE, VDM and EDM chapters; tested against the exact Gaussian mixture.
    """
    if not (0 < sigma_min < sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if unit not in PF_ODE_UNITS:
        raise ValueError(f"unit must be one of {', '.join(PF_ODE_UNITS)}; got {unit!r}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive number of RK4 steps (or None for adaptive), got {steps}")
    x = torch.as_tensor(x)
    if not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point batch (N, ...), got {x.dtype} of shape {tuple(x.shape)}")
    n, shape, num_dims = x.shape[0], x.shape, x[0].numel()
    if exact_trace is None:
        exact_trace = num_dims <= 64
    eps = None
    if not exact_trace:
        eps = (torch.randint(0, 2, shape, generator=generator) * 2 - 1).to(x.dtype).to(x.device)
    prior = prior_log_prob or _gaussian_prior_log_prob(float(sigma_max))
    u_min, u_max = math.log(sigma_min), math.log(sigma_max)

    def rhs(u: float, x_now: torch.Tensor):
        return _drift_and_divergence(denoiser, x_now, math.exp(u), eps)

    if steps is not None:
        x_now, delta = x.detach().clone(), torch.zeros(n, dtype=x.dtype, device=x.device)
        h = (u_max - u_min) / steps
        for k in range(steps):  # classical RK4 on the joint state (x, int div f du)
            u = u_min + k * h
            f1, d1 = rhs(u, x_now)
            f2, d2 = rhs(u + h / 2, x_now + h / 2 * f1)
            f3, d3 = rhs(u + h / 2, x_now + h / 2 * f2)
            f4, d4 = rhs(u + h, x_now + h * f3)
            x_now = x_now + h / 6 * (f1 + 2 * f2 + 2 * f3 + f4)
            delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    else:
        from scipy.integrate import solve_ivp

        def rhs_numpy(u, state):
            x_now = torch.from_numpy(state[: n * num_dims]).reshape(shape).to(x.dtype).to(x.device)
            f, div = rhs(u, x_now)
            return np.concatenate([f.cpu().double().flatten().numpy(), div.cpu().double().numpy()])

        start = np.concatenate([x.detach().cpu().double().flatten().numpy(), np.zeros(n)])
        solution = solve_ivp(rhs_numpy, (u_min, u_max), start, method="RK45", rtol=rtol, atol=atol)
        if not solution.success:
            raise RuntimeError(f"PF-ODE solve failed: {solution.message}")
        end = torch.from_numpy(solution.y[:, -1])
        x_now = end[: n * num_dims].reshape(shape).to(x.dtype).to(x.device)
        delta = end[n * num_dims:].to(x.dtype).to(x.device)
    log_p = prior(x_now) + delta
    if unit == "nats":
        return log_p
    return bits_per_dim_from_nll(-log_p, num_dims, bin_width)


# -- real-vs-real bands -------------------------------------------------------------------------
def sliced_wasserstein_band(sample_fn: Callable, n: int, seeds, *, n_projections: int = 256) -> list[float]:
    """The sliced Wasserstein distance between two independent real sets of ``n`` points, per seed.

    ``sample_fn(n, generator)`` draws ``n`` real points (e.g. ``gmm.sample``). A model's
    :func:`sliced_wasserstein` to real data at the same ``n`` is read against these values: no
    sampler can be expected to do better than a second draw from the data itself. Seed ``s``
    draws both sets from ``Generator().manual_seed(s)`` and the projections from seed ``s``
    too, so one seed's value is reproducible on its own.
    """
    if not callable(sample_fn):
        raise ValueError(f"sample_fn must be callable as sample_fn(n, generator), got {sample_fn!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (points per set), got {n!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    band = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        first, second = sample_fn(n, gen), sample_fn(n, gen)
        band.append(sliced_wasserstein(first, second, n_projections,
                                       generator=torch.Generator().manual_seed(seed)))
    return band


# -- a baseline codelength for images on a grid of grey levels ------------------------------------
def independent_pixels_bits_per_dim(train, test, levels: int, *, pseudo_count: float = 0.5) -> float:
    """Bits/dim of ``test`` coded pixel by pixel with each pixel's histogram over ``train``.

    Images live in [-1, 1] on ``levels`` equally spaced grey values (17 for sklearn's digits);
    each of the D pixels gets its own categorical distribution, the training counts plus
    ``pseudo_count`` per level (add-half smoothing by default, so an unseen value costs a finite
    codelength). The result is the mean over test images of ``-log2 p(x) / D``: the codelength
    of a model that knows each pixel's marginal and nothing of how pixels go together. Coding
    every pixel uniformly costs ``log2(levels)``; a model that beats neither has learnt nothing.
    """
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    if not (isinstance(levels, int) and levels >= 2):
        raise ValueError(f"levels must be an integer >= 2 (grey values per pixel), got {levels!r}")
    if train.ndim < 2 or test.shape[1:] != train.shape[1:] or not len(train) or not len(test):
        raise ValueError(f"train and test must be non-empty batches of one image shape, got "
                         f"{tuple(train.shape)} and {tuple(test.shape)}")
    if not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be positive, got {pseudo_count!r}")

    def grid_values(images, name):
        values = (images.double().flatten(1) + 1) / 2 * (levels - 1)
        index = torch.round(values)
        if (index - values).abs().max() > 1e-4 or index.min() < 0 or index.max() > levels - 1:
            raise ValueError(f"{name} must take {levels} equally spaced values in [-1, 1]")
        return index.long()

    train_values, test_values = grid_values(train, "train"), grid_values(test, "test")
    dims = train_values.shape[1]
    counts = torch.zeros(dims, levels, dtype=torch.float64)
    counts.scatter_add_(1, train_values.T, torch.ones_like(train_values.T, dtype=torch.float64))
    probs = (counts + pseudo_count) / (counts.sum(1, keepdim=True) + levels * pseudo_count)
    code = -torch.log2(probs[torch.arange(dims), test_values])  # (N, D)
    return code.mean().item()
