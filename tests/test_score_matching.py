"""Score-matching losses against closed forms on Gaussians (diffnotes.methods.score_matching).

Data x ~ N(mu, Sigma) and a linear score model s(x) = -P (x - m): every expectation below is a
trace, so each loss's mean can be compared with an exact number, within a few Monte Carlo
standard errors computed from the same draws.
"""

import math

import pytest
import torch

from diffnotes.train import fit
from diffnotes.methods.score_matching import (
    DSMLoss,
    SlicedSMLoss,
    dsm_loss,
    esm_loss,
    jacobian_trace,
    random_projections,
    relative_score_error,
    ssm_loss,
    score_mlp,
)

D = 3
N = 200_000


Z_TOL = 4.5  # standard errors


def _gaussian(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(D, D, generator=g, dtype=torch.float64)
    sigma_data = a @ a.T / D + 0.5 * torch.eye(D, dtype=torch.float64)
    mu = torch.randn(D, generator=g, dtype=torch.float64)
    return mu, sigma_data


def _linear_models(seed=1, count=3):
    g = torch.Generator().manual_seed(seed)
    models = []
    for _ in range(count):
        p = torch.eye(D, dtype=torch.float64) + 0.4 * torch.randn(D, D, generator=g, dtype=torch.float64)
        m = torch.randn(D, generator=g, dtype=torch.float64)
        models.append((p, m))
    return models


def _score_fn(p, m):
    return lambda x: -(x - m) @ p.T


def _fisher(p, m, mu, cov):
    """1/2 E_{N(mu, cov)} ||-P(x - m) - grad log N(x; mu, cov)||^2, in closed form."""
    b = torch.linalg.inv(cov) - p
    c = p @ (m - mu)
    return 0.5 * (torch.trace(b @ cov @ b.T) + c @ c)


def _draw(mu, cov, n, seed):
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return mu + torch.randn(n, D, generator=g, dtype=torch.float64) @ chol.T


def _assert_mean_close(samples, expected):
    mean = samples.mean()
    se = samples.std() / math.sqrt(samples.numel())
    assert abs(mean - expected) < Z_TOL * se, f"mean {mean:.5f} vs {float(expected):.5f} (se {se:.2e})"


def test_jacobian_trace_matches_full_jacobian():
    torch.manual_seed(0)
    net = score_mlp(4, hidden=16).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    _, trace = jacobian_trace(net, x, create_graph=False)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda z: net(z.unsqueeze(0))[0], x[i])
        assert torch.allclose(trace[i], torch.trace(jac), atol=1e-12)


def test_exact_sm_equals_fisher_divergence_up_to_a_constant():
    mu, cov = _gaussian()
    x = _draw(mu, cov, N, seed=2)
    constant = -0.5 * torch.trace(torch.linalg.inv(cov))  # -1/2 E||grad log p||^2, model-free
    for p, m in _linear_models():
        loss = esm_loss(_score_fn(p, m), x).detach()
        # the Hessian trace of a linear score is -tr P at every point, exactly
        assert torch.allclose(jacobian_trace(_score_fn(p, m), x[:7])[1], -torch.trace(p).expand(7))
        _assert_mean_close(loss, _fisher(p, m, mu, cov) + constant)


def test_dsm_is_unbiased_for_the_fisher_divergence_to_the_blurred_data():
    mu, cov = _gaussian()
    sigma = 0.7
    cov_sigma = cov + sigma**2 * torch.eye(D, dtype=torch.float64)
    constant = D / (2 * sigma**2) - 0.5 * torch.trace(torch.linalg.inv(cov_sigma))
    x0 = _draw(mu, cov, N, seed=3)
    noise = torch.randn(N, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for p, m in _linear_models():
        loss = dsm_loss(_score_fn(p, m), x0, sigma, noise=noise)
        _assert_mean_close(loss, _fisher(p, m, mu, cov_sigma) + constant)


def test_dsm_optimum_is_the_blurred_score():
    """Least squares on the DSM target recovers grad log q_sigma, not grad log p."""
    mu, cov = _gaussian()
    sigma = 0.7
    x0 = _draw(mu, cov, N, seed=5)
    noise = torch.randn(N, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x_tilde = x0 + sigma * noise
    # fit s(x) = A x + b to the target -noise/sigma (the minimiser of dsm_loss over affine maps)
    design = torch.cat([x_tilde, torch.ones(N, 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(design, -noise / sigma).solution
    prec_sigma = torch.linalg.inv(cov + sigma**2 * torch.eye(D, dtype=torch.float64))
    assert torch.allclose(coef[:D].T, -prec_sigma, atol=0.02)
    assert torch.allclose(coef[D], prec_sigma @ mu, atol=0.02)


@pytest.mark.parametrize(
    "projection, variance_reduction",
    [("gaussian", False), ("rademacher", False), ("sphere", False), ("gaussian", True)],
)
def test_sliced_sm_is_unbiased_for_exact_sm(projection, variance_reduction):
    mu, cov = _gaussian()
    x = _draw(mu, cov, N // 4, seed=7)
    g = torch.Generator().manual_seed(8)
    for p, m in _linear_models(count=2):
        loss = ssm_loss(_score_fn(p, m), x, variance_reduction=variance_reduction, projection=projection,
                        generator=g).detach()
        esm = esm_loss(_score_fn(p, m), x).detach()
        _assert_mean_close(loss - esm, 0.0)


def test_sliced_sm_matches_exact_sm_pointwise_with_many_projections():
    torch.manual_seed(0)
    net = score_mlp(D, hidden=16).double()
    x = torch.randn(4, D, dtype=torch.float64)
    exact = esm_loss(net, x).detach()
    v = random_projections(4, D, 20_000, "rademacher", dtype=torch.float64,
                           generator=torch.Generator().manual_seed(9))
    sliced = ssm_loss(net, x, v=v, variance_reduction=True).detach()
    assert torch.allclose(sliced, exact, atol=0.05 * exact.abs().max())


def test_sphere_projections_have_norm_sqrt_d():
    v = random_projections(1000, 5, 3, "sphere", dtype=torch.float64)
    assert torch.allclose(v.norm(dim=-1), torch.full((3, 1000), math.sqrt(5), dtype=torch.float64))


def test_training_with_dsm_recovers_a_gaussian_score():
    """A few hundred steps of diffnotes.train.fit on DSM on a 2-D Gaussian give the blurred score to a few percent."""
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.5], [0.5, 0.8]])
    chol = torch.linalg.cholesky(cov)
    sigma = 0.5
    result = fit(score_mlp(2, hidden=32), DSMLoss(sigma, seed=1), lambda n, g: torch.randn(n, 2, generator=g) @ chol.T,
                 250, lr=3e-3, batch_size=512, ema_halflife=30, device="cpu", progress=False)
    net = result.model_ema
    prec = torch.linalg.inv(cov + sigma**2 * torch.eye(2))
    x = torch.randn(2000, 2) @ chol.T
    err = relative_score_error(net, lambda z: -(z.float() @ prec.T).double(), x)
    assert err < 0.1, err


def test_dsm_loss_with_its_own_seed_does_not_reuse_the_data_stream():
    """fit seeds its data generator and torch's global generator alike; DSMLoss(seed=...) stays apart."""
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    loss = DSMLoss(0.5, seed=1)
    target_noise = []
    loss(lambda x: (target_noise.append(x) or torch.zeros_like(x)), x0)
    noise = (target_noise[0] - x0) / 0.5
    assert not torch.allclose(noise, x0)
    assert abs(float((noise * x0).mean())) < 0.3


def test_bad_input_raises_one_clear_line():
    net = score_mlp(2, hidden=4)
    with pytest.raises(ValueError, match="shape"):
        esm_loss(net, torch.randn(3))
    with pytest.raises(ValueError, match="sigma must be positive"):
        dsm_loss(net, torch.randn(3, 2), 0.0)
    with pytest.raises(ValueError, match="valid kinds"):
        SlicedSMLoss(projection="uniform")
    with pytest.raises(ValueError, match="score"):
        esm_loss(lambda x: x[:, :1], torch.randn(3, 2))


def test_time_per_step_counts_wall_or_cpu_time():
    from diffnotes.methods.score_matching import DSMLoss, score_mlp, time_per_step

    net, x = score_mlp(4, hidden=16), torch.randn(32, 4)
    for clock in ("wall", "cpu"):
        assert time_per_step(net, DSMLoss(0.1, seed=0), x, repeats=3, clock=clock) > 0
    with pytest.raises(ValueError, match="valid: wall, cpu"):
        time_per_step(net, DSMLoss(0.1, seed=0), x, clock="gpu")
