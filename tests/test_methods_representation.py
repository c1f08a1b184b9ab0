"""diffnotes.methods.representation: shapes, the code reaching the denoiser, the probe, bad
input, and the proof that conditioning lowers the loss by the information the code adds."""

import pytest
import torch

from diffnotes.methods.representation import (Autoencoder,
                                               DenoisingRepresentationLoss, Encoder,
                                               ReconstructionLoss, RepresentationDenoiser,
                                               encode, linear_probe)
from diffnotes.metrics import denoising_error
from diffnotes.nets import VectorConditionedMLP
from diffnotes.theory.proofs import compression_proofs as C, get_proof
from diffnotes.train import fit


def test_shapes_and_untrained_denoiser_is_c_skip_x():
    torch.manual_seed(0)
    model = RepresentationDenoiser(code_dim=4, hidden=32)
    x0 = torch.randn(5, 1, 8, 8)
    x = x0 + 0.5 * torch.randn_like(x0)
    out = model(x, torch.tensor(0.5), x0=x0)
    assert out.shape == x0.shape
    c_skip = 0.5**2 / (0.5**2 + 0.5**2)  # EDM, sigma = sigma_data = 0.5
    assert torch.allclose(out, c_skip * x, atol=1e-6)  # zero-initialised output layer
    assert encode(model.encoder, x0).shape == (5, 4)


def test_the_code_changes_the_output_once_trained_a_little():
    torch.manual_seed(0)
    model = RepresentationDenoiser(code_dim=4, hidden=32)
    torch.nn.init.normal_(model.denoiser.backbone.out.weight, std=0.1)
    x0 = torch.randn(3, 64)
    x = x0 + torch.randn_like(x0)
    with_code = model(x, torch.tensor(1.0), x0=x0)
    without = model(x, torch.tensor(1.0))
    assert not torch.allclose(with_code, without)
    with pytest.raises(ValueError, match="not both"):
        model(x, torch.tensor(1.0), x0=x0, code=torch.zeros(3, 4))


def test_bad_input_gives_one_clear_line():
    with pytest.raises(ValueError, match="exactly one of sigma"):
        DenoisingRepresentationLoss()
    with pytest.raises(ValueError, match="sigma must be a positive"):
        DenoisingRepresentationLoss(-1.0)
    with pytest.raises(ValueError, match="sigma_range"):
        DenoisingRepresentationLoss(sigma_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="drop_code"):
        DenoisingRepresentationLoss(1.0, drop_code=1.0)
    with pytest.raises(ValueError, match="code_dim must be a positive integer"):
        Encoder(code_dim=0)
    with pytest.raises(ValueError, match="expects 64 values"):
        Encoder()(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="the condition must have shape"):
        VectorConditionedMLP(cond_dim=4)(torch.zeros(2, 64), torch.zeros(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="3 train features but 2 labels"):
        linear_probe(torch.zeros(3, 2), torch.zeros(2), torch.zeros(2, 2), torch.zeros(2))


def test_linear_probe_reads_a_separable_code_and_not_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    centres = 3 * torch.randn(3, 5, generator=g)
    feats = centres[labels] + 0.3 * torch.randn(300, 5, generator=g)
    noise = torch.randn(300, 5, generator=g)
    assert linear_probe(feats[:200], labels[:200], feats[200:], labels[200:]) > 0.95
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.6


def _two_cluster_data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (n, 1), generator=g).float() * 2 - 1
    return sign * torch.ones(n, 8) * 0.8 + 0.05 * torch.randn(n, 8, generator=g)


def test_conditioning_lowers_the_loss_where_the_noise_hides_x0():
    """Two clusters: at sigma = 2 the noisy point hides which cluster x0 came from; the code
    tells, so the trained conditional denoiser beats its own unconditional half clearly."""
    x = _two_cluster_data()
    torch.manual_seed(0)
    model = RepresentationDenoiser(dim=8, code_dim=2, hidden=64)
    model = fit(model, DenoisingRepresentationLoss(2.0, drop_code=0.3), x, 400, lr=2e-3,
                batch_size=128, ema_halflife=20, progress=False, seed=0).model_ema
    g = torch.Generator()
    with_code = denoising_error(model, x, 2.0, cond=x, generator=g.manual_seed(1))
    without = denoising_error(model, x, 2.0, generator=g.manual_seed(1))
    assert with_code < 0.5 * without
    # an encoder trained this way separates the clusters linearly
    labels = (x[:, 0] > 0).long()
    assert linear_probe(encode(model.encoder, x[:256]), labels[:256],
                        encode(model.encoder, x[256:]), labels[256:]) > 0.95


def test_autoencoder_and_reconstruction_loss():
    x = _two_cluster_data(256)
    torch.manual_seed(0)
    ae = Autoencoder(dim=8, code_dim=2, hidden=32)
    before = ReconstructionLoss()(ae, x).mean()
    ae = fit(ae, ReconstructionLoss(), x, 200, lr=3e-3, batch_size=64, progress=False,
             seed=0).model
    assert ReconstructionLoss()(ae, x).mean() < 0.2 * before


def test_conditioning_gain_proof_verifies_and_fails_when_false():
    assert get_proof("conditioning_gain").verify()
    assert not C.conditioning_gain_check(gain_factor=2).ok


def test_the_encoder_and_autoencoder_keep_their_recorded_weights():
    # issue 24: the two-hidden-layer MLP is nets.silu_mlp (also unCLIP's image encoder); state-dict
    # hashes on seed 0 recorded with the module's own copy before the move

    from state_hash import state_hash

    torch.manual_seed(0)
    assert state_hash(Autoencoder(dim=8, code_dim=2, hidden=32)) == "77b846340a2832c6"
    torch.manual_seed(0)
    assert state_hash(RepresentationDenoiser(64, 4, 32, 2)) == "d2dba3c3ed42ae93"


def _old_denoising_mse(model, x0, sigma, *, conditional=True, generator=None):
    # frozen reference: representation.denoising_mse as written before issue 24 replaced it by
    # metrics.denoising_error (the notebook's call changes, its numbers must not)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    with torch.no_grad():
        denoised = model(x0 + sigma * noise, torch.tensor(float(sigma)),
                         x0=x0 if conditional else None)
    return float((denoised - x0).pow(2).mean())


def test_the_one_denoising_error_gives_denoising_mse_unchanged():
    torch.manual_seed(0)
    model = RepresentationDenoiser(dim=64, code_dim=4, hidden=32)
    with torch.no_grad():  # an output layer away from zero, so the code matters
        for p in model.denoiser.backbone.out.parameters():
            p.normal_(0, 0.1)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for conditional in (True, False):
        for sigma in (0.1, 2.0):
            new = denoising_error(model, x, sigma, cond=x if conditional else None,
                                  generator=torch.Generator().manual_seed(5))
            old = _old_denoising_mse(model, x, sigma, conditional=conditional,
                                     generator=torch.Generator().manual_seed(5))
            assert new == old
