"""Guidance: the guided denoisers against closed forms, label dropout, the noise-aware classifier,
the proofs (and that a false statement fails them)."""

import math

import pytest
import torch

from diffnotes.methods import guidance as G
from diffnotes.data import gmm_ring
from diffnotes.methods.edm import EDMLoss
from diffnotes.nets import UNet
from diffnotes.parameterization import denoiser_to_score
from diffnotes.precond import EDMPrecond
from diffnotes.theory.proofs import guidance_proofs as GP
from diffnotes.train import fit


class MixtureClassifier(torch.nn.Module):
    """The exact p_sigma(y | x) of a 2-D Gaussian mixture (y = the component), as logits."""

    def __init__(self, gmm):
        super().__init__()
        self.gmm = gmm

    def forward(self, x, sigma):
        return self.gmm._component_terms(x, sigma)[0]  # log w_k + log N(x; mu_k, C_k + sigma^2 I)


STD = 0.3


@pytest.fixture(scope="module")
def ring():
    return gmm_ring(4, radius=2.0, std=STD)


def _exact(gmm):
    def denoiser(x, sigma, class_labels=None):
        return gmm.denoiser(x, sigma).to(x.dtype)

    return denoiser


def test_classifier_guidance_at_scale_one_is_the_class_conditional_denoiser(ring):
    """p(x) p(y|x) = p(x, y): scale 1 must give the component's own denoiser (in closed form)."""
    x = torch.randn(64, 2, dtype=torch.float64) * 2
    sigma = torch.full((64,), 0.7, dtype=torch.float64)
    labels = torch.arange(64) % 4
    guided = G.classifier_guided(_exact(ring), MixtureClassifier(ring), labels, 1.0)(x, sigma)
    mu, var = ring.means[labels], STD**2
    expected = (var * x + 0.49 * mu) / (var + 0.49)  # E[x0 | x, y] for one Gaussian component
    torch.testing.assert_close(guided, expected, atol=1e-6, rtol=1e-6)
    plain = G.classifier_guided(_exact(ring), MixtureClassifier(ring), labels, 0.0)(x, sigma)
    torch.testing.assert_close(plain, ring.denoiser(x, sigma).double())


def test_classifier_guidance_adds_s_times_the_classifier_gradient(ring):
    x = torch.randn(16, 2, dtype=torch.float64)
    sigma = torch.full((16,), 0.5, dtype=torch.float64)
    labels = torch.zeros(16, dtype=torch.long)
    clf = MixtureClassifier(ring)
    grad = G.classifier_log_prob_grad(clf, x, sigma, labels)
    for scale in (0.5, 3.0):
        d = G.classifier_guided(_exact(ring), clf, labels, scale)(x, sigma)
        score = denoiser_to_score(d, x, sigma)
        torch.testing.assert_close(score, ring.score(x, sigma).double() + scale * grad)
    # a finite-difference check of the gradient itself
    h = 1e-6
    bump = torch.zeros_like(x)
    bump[:, 0] = h
    lp = torch.log_softmax(clf(x + bump, sigma), 1)[:, 0] - torch.log_softmax(clf(x - bump, sigma), 1)[:, 0]
    torch.testing.assert_close(grad[:, 0], lp / (2 * h), atol=1e-6, rtol=1e-5)


def test_classifier_free_equals_implicit_classifier_guidance(ring):
    """(1 + w) D(x, y) - w D(x) with exact conditional/unconditional denoisers equals classifier
    guidance at scale 1 + w with the exact classifier (the proof cfg_implicit_classifier, numerically)."""

    def denoiser(x, sigma, rows):
        out = ring.denoiser(x, sigma).double()
        labels = rows.argmax(1)
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1) ** 2
        cond = (STD**2 * x + s2 * ring.means[labels]) / (STD**2 + s2)
        has_label = rows.sum(1, keepdim=True) > 0
        return torch.where(has_label, cond, out)

    x = torch.randn(32, 2, dtype=torch.float64) * 2
    sigma = torch.full((32,), 0.9, dtype=torch.float64)
    labels = torch.arange(32) % 4
    for w in (0.0, 1.0, 3.0):
        cfg = G.classifier_free(denoiser, labels, w, num_classes=4)(x, sigma)
        cg = G.classifier_guided(_exact(ring), MixtureClassifier(ring), labels, 1 + w)(x, sigma)
        torch.testing.assert_close(cfg, cg, atol=1e-6, rtol=1e-6)


def test_label_dropout_drops_the_right_fraction_to_the_null_label():
    seen = []

    def spy(model, x0, class_labels=None):
        seen.append(class_labels)
        return x0.flatten(1).mean(1)

    torch.manual_seed(0)
    labels = torch.arange(20000) % 10
    G.LabelDropout(spy, 0.2)(None, torch.zeros(20000, 1), labels)
    rows = seen[0]
    dropped = rows.sum(1) == 0
    assert abs(dropped.float().mean().item() - 0.2) < 0.01
    assert torch.equal(rows[~dropped].argmax(1), labels[~dropped])  # kept rows are the right one-hot
    G.LabelDropout(spy, 0.0)(None, torch.zeros(100, 1), labels[:100])
    assert bool((seen[1].sum(1) == 1).all())


def test_null_label_reaches_the_unet_as_no_class():
    torch.manual_seed(0)
    net = UNet.digits(ch=16, num_classes=10)
    for p in net.parameters():  # the output layer starts at zero; make the net respond
        torch.nn.init.normal_(p, std=0.05)
    x, c = torch.randn(3, 1, 8, 8), torch.zeros(3)
    a = net(x, c, G.null_labels(3))
    b = net(x, c, torch.zeros(3, 10))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, net(x, c, G.one_hot(torch.tensor([1, 2, 3]))))


def test_noisy_classifier_learns_and_its_loss_goes_through_fit():
    from diffnotes.data import load_digits

    x, y = load_digits("train")
    torch.manual_seed(0)
    res = fit(G.NoisyDigitsClassifier(width=16), G.ClassifierLoss(), (x, y), 150, lr=3e-3,
              batch_size=64, warmup=10, progress=False, seed=0)
    xe, ye = load_digits("eval")
    acc_clean = G.classifier_accuracy_at(res.model_ema, xe, ye, 0.01)
    acc_noisy = G.classifier_accuracy_at(res.model_ema, xe, ye, 20.0)
    assert acc_clean > 0.7, acc_clean  # chance is 0.1
    assert acc_noisy < 0.3, acc_noisy  # at sigma = 20 the digit is gone: near chance is right
    untrained = G.NoisyDigitsClassifier(width=16)
    assert G.classifier_accuracy_at(untrained, xe, ye, 0.01) < 0.3


def test_guided_denoisers_run_with_a_preconditioned_unet_and_the_samplers():
    from diffnotes.sampling import sigma_schedule

    torch.manual_seed(0)
    net = EDMPrecond(UNet.digits(ch=16, num_classes=10))
    labels = G.balanced_labels(12)
    sigmas = sigma_schedule("karras", 4, 0.002, 80.0)
    out = G.sweep(lambda w: G.classifier_free(net, labels, w), [0.0, 2.0], (12, 1, 8, 8), sigmas, seed=1)
    assert set(out) == {0.0, 2.0} and all(v.shape == (12, 1, 8, 8) for v in out.values())
    clf = G.NoisyDigitsClassifier(width=8)
    out = G.sweep(lambda s: G.classifier_guided(net, clf, labels, s, G.null_labels(12)), [0.0, 4.0],
                  (12, 1, 8, 8), sigmas, seed=1)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert not torch.equal(out[0.0], out[4.0])  # guidance changed the samples


def test_bad_input_gets_one_clear_line():
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        G.classifier_guided(lambda x, s: x, G.NoisyDigitsClassifier(), torch.zeros(2), -1.0)
    with pytest.raises(ValueError, match="guidance weight w must be a finite number >= 0"):
        G.classifier_free(lambda x, s, c: x, torch.zeros(2, dtype=torch.long), math.nan)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        G.one_hot(torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="p_uncond must be a probability"):
        G.LabelDropout(EDMLoss(), 1.5)
    with pytest.raises(ValueError, match="x must be 8x8 digits"):
        G.NoisyDigitsClassifier()(torch.zeros(2, 1, 16, 16), 1.0)
    with pytest.raises(ValueError, match="needs class labels"):
        G.ClassifierLoss()(G.NoisyDigitsClassifier(), torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="n must be a positive number"):
        G.balanced_labels(0)


def test_proofs_verify_and_a_false_statement_fails():
    assert GP.guided_score_check().ok
    assert not GP.guided_score_check(scale_factor=2).ok
    assert GP.cfg_implicit_check().ok
    assert not GP.cfg_implicit_check(weight_offset=0).ok


def test_guided_ode_draws_the_tilt_only_at_scale_one():
    """The exact 1-D computation behind the chapters: at s = 1 the guided probability-flow ODE ends
    in p(x | y) (the gap is integration error), at s = 2 and 4 it misses p(x) p(y|x)^s / Z."""
    one = G.guided_ode_tilt_gap(1.0)
    assert one.w1 < 1e-3
    assert abs(one.mean_ode - 1.0) < 1e-3 and abs(one.std_ode - 0.5) < 1e-3  # p(x | y = 1)
    assert abs(one.mean_target - 1.0) < 1e-3
    zero = G.guided_ode_tilt_gap(0.0)  # the unguided ODE draws the mixture
    assert zero.w1 < 1e-3
    for s in (2.0, 4.0):
        gap = G.guided_ode_tilt_gap(s)
        assert gap.w1 > 0.2, gap  # far above the integration error
        assert gap.mean_ode > gap.mean_target + 0.2 and gap.std_ode < gap.std_target, gap
    finer = G.guided_ode_tilt_gap(4.0, steps=800)  # not a discretisation artefact
    assert abs(finer.w1 - G.guided_ode_tilt_gap(4.0).w1) < 1e-3
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        G.guided_ode_tilt_gap(-1.0)


def test_ancestral_guidance_ratio_of_adm_algorithms():
    """Alg. 1's mean shift Sigma g over Alg. 2's (beta / sqrt(alpha)) g on DDPM's 1,000-step chain."""
    from diffnotes.chain import DiscreteSchedule

    small = G.ancestral_guidance_ratio()
    assert small.shape == (1000,)
    assert small[0] == 0  # beta~_1 = 0: the last ancestral step takes no guidance at all
    assert 0.4 < float(small[1]) < 0.5
    assert float(small[1:].min()) > 0.4 and float(small.max()) < 1
    assert float(small[-1]) > 0.98
    large = G.ancestral_guidance_ratio(variance="large")
    torch.testing.assert_close(large, DiscreteSchedule.linear().alphas.sqrt())
    assert bool((small <= large + 1e-12).all())
    with pytest.raises(ValueError, match="variance must be 'small' or 'large'"):
        G.ancestral_guidance_ratio(variance="learned")


def test_the_guidance_denoiser_and_its_recipes_are_unchanged(monkeypatch):
    # issue 24: the builder renamed (it was guidance.digits_denoiser) and the two recipes moved to
    # diffnotes.recipes; state-dict hashes on seed 0 recorded before the move
    import inspect

    from diffnotes import constants as K
    from diffnotes import recipes

    from state_hash import state_hash

    for scale_shift, digest in ((True, "572252f5cddc8dc0"), (False, "810b98c6ffc93d6d")):
        torch.manual_seed(0)
        assert state_hash(G.class_conditional_digits_denoiser(scale_shift, 16)) == digest
    default = inspect.signature(recipes.fit_digits_denoiser).parameters["p_uncond"].default
    assert default == K.CFG_P_UNCOND == 0.2
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    for result in (recipes.fit_digits_denoiser(0, 10, ch=8), recipes.fit_noisy_classifier(0, 10, width=8)):
        assert result.steps_run == 0 and result.capped
