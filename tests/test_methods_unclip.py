"""unCLIP at toy scale (``diffnotes.methods.unclip``) and the proof ``unclip_two_stage``."""

import math

import pytest
import torch

from diffnotes.data import load_digits
from diffnotes.methods.edm import EDMLoss
from diffnotes.methods.unclip import (InfoNCELoss, ToyCLIP, caption_accuracy, caption_text,
                                      caption_tokens, embed_captions, embed_images, ink,
                                      ink_thresholds, prior_denoiser, stroke_labels)
from diffnotes.methods.embedding import sample_conditioned
from diffnotes.theory.proofs.embedding_proofs import unclip_two_stage_check
from diffnotes.train import fit


def test_ink_thresholds_and_stroke_labels():
    images = torch.full((4, 1, 8, 8), -1.0)
    images[1] = 1.0
    images[3, 0, :4] = 1.0  # half the pixels inked
    assert ink(images).tolist() == [0.0, 1.0, 0.0, 0.5]
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="missing"):
        ink_thresholds(images, labels)
    thresholds = torch.full((10,), 0.25)
    assert stroke_labels(images, labels, thresholds).tolist() == [0, 1, 0, 1]


def test_captions_round_trip_and_reject_bad_tokens():
    tokens = caption_tokens(torch.tensor([3, 7]), torch.tensor([1, 0]))
    assert tokens.tolist() == [[3, 11], [7, 10]]
    assert caption_text(tokens) == ["a thick 3", "a thin 7"]
    with pytest.raises(ValueError, match="digits must lie in 0..9"):
        caption_tokens(torch.tensor([10]), torch.tensor([0]))
    with pytest.raises(ValueError, match="token ids must lie in"):
        ToyCLIP(4).caption(torch.tensor([[0, 12]]))


def test_info_nce_treats_repeated_captions_as_positives():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self._logits = logits

        def logits(self, images, tokens):
            return self._logits

    tokens = torch.tensor([[1, 10], [1, 10], [2, 11]])
    # images 0 and 1 share a caption: a perfect model may not tell them apart
    perfect = torch.tensor([[9.0, 9.0, -9.0], [9.0, 9.0, -9.0], [-9.0, -9.0, 9.0]])
    loss = InfoNCELoss()(Fixed(perfect), torch.zeros(3, 1), tokens)
    assert loss.shape == (3,)
    assert torch.allclose(loss[:2], torch.full((2,), math.log(2)), atol=1e-3)  # the floor
    assert loss[2] < 1e-6
    wrong = InfoNCELoss()(Fixed(-perfect), torch.zeros(3, 1), tokens)
    assert bool((wrong > 5).all())
    with pytest.raises(ValueError, match="needs the captions"):
        InfoNCELoss()(Fixed(perfect), torch.zeros(3, 1))


def test_embeddings_lie_on_the_sphere_of_radius_sqrt_dim():
    clip = ToyCLIP(9)
    z = embed_images(clip, torch.randn(5, 1, 8, 8))
    assert torch.allclose(z.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)
    z = embed_captions(clip, caption_tokens(torch.arange(5), torch.zeros(5)))
    assert torch.allclose(z.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)


def test_toy_clip_learns_to_match_digits_to_captions():
    x, y = load_digits("train")
    thresholds = ink_thresholds(x, y)
    tokens = caption_tokens(y, stroke_labels(x, y, thresholds))
    clip = fit(ToyCLIP(16), InfoNCELoss(), (x, tokens), 200, lr=2e-3, batch_size=256,
               device="cpu", progress=False, seed=0).model_ema
    x_eval, y_eval = load_digits("eval")
    digits = caption_tokens(torch.arange(10), torch.zeros(10, dtype=torch.long))
    thin_thick = torch.cat([digits, digits + torch.tensor([0, 1])])
    with torch.no_grad():
        best = thin_thick[clip.logits(x_eval, thin_thick).argmax(dim=1)]
    assert (best[:, 0] == y_eval).float().mean() > 0.7  # chance is 0.1


def test_prior_learns_a_conditional_embedding_distribution():
    # z_t in {e_0, e_1} (scaled), z_i = -z_t: the prior must sample the opposite vector
    torch.manual_seed(0)
    dim = 4
    which = torch.randint(2, (512,))
    z_t = torch.nn.functional.one_hot(which, dim).float() * 2.0
    z_i = -z_t + 0.05 * torch.randn(512, dim)
    prior = fit(prior_denoiser(dim, hidden=64, depth=2), EDMLoss(sigma_data=1.0), (z_i, z_t),
                800, lr=2e-3, batch_size=128, device="cpu", progress=False, seed=0).model_ema
    cond = z_t[:100]
    samples = sample_conditioned(prior, cond, (dim,), generator=torch.Generator().manual_seed(1))
    assert (samples + cond).norm(dim=1).mean() < 0.5


def test_caption_accuracy_reads_real_digits_back():
    x, y = load_digits("eval")
    thresholds = ink_thresholds(*load_digits("train"))
    tokens = caption_tokens(y, stroke_labels(x, y, thresholds))
    acc = caption_accuracy(x, tokens, thresholds)
    assert acc["stroke"] == 1.0 and acc["digit"] > 0.9
    flipped = tokens.clone()
    flipped[:, 1] = 21 - flipped[:, 1]  # thin <-> thick
    assert caption_accuracy(x, flipped, thresholds)["stroke"] == 0.0
    with pytest.raises(ValueError, match="samples for"):
        caption_accuracy(x[:3], tokens, thresholds)


def test_unclip_two_stage_proof_and_its_noisy_encoder_variant():
    assert unclip_two_stage_check().ok
    assert not unclip_two_stage_check(encoder_noise=0.1).ok


def test_clip_constants_come_from_constants_and_keep_the_recorded_values():
    # recorded before the constants moved to diffnotes.constants (issue 24): unchanged init
    from diffnotes import constants as K

    torch.manual_seed(0)
    model = ToyCLIP(dim=4, hidden=8)
    assert model.log_scale.item() == 2.6592600345611572
    assert (K.CLIP_TEMPERATURE_INIT, K.CLIP_LOGIT_SCALE_MAX) == (0.07, 100.0)
    with torch.no_grad():
        model.log_scale.fill_(10.0)  # above the cap: the logits are scaled by 100
    images, tokens = torch.zeros(2, 1, 8, 8), caption_tokens(torch.tensor([1, 2]), torch.tensor([0, 1]))
    z_i = torch.nn.functional.normalize(model.image(images), dim=1)
    z_t = torch.nn.functional.normalize(model.caption(tokens), dim=1)
    assert torch.allclose(model.logits(images, tokens), 100.0 * z_i @ z_t.T, rtol=1e-6, atol=0)


def test_toy_clip_keeps_its_recorded_weights():
    # issue 24: the image encoder is nets.silu_mlp; state-dict hash on seed 0 recorded before
    import hashlib

    torch.manual_seed(0)
    h = hashlib.sha256()
    for name, value in ToyCLIP(16, 32).state_dict().items():
        h.update(name.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    assert h.hexdigest()[:16] == "0ab402fcf6bf4a70"
