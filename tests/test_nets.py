"""Backbones: shapes, parameter counts against the papers, conditioning, embeddings."""

import math

import pytest
import torch

from diffnotes.nets import MLP, FourierEmbedding, SinusoidalEmbedding, UNet, count_parameters




def test_ddpm_cifar10_has_35_7M_parameters():
    # DDPM (Ho et al. 2020), Sec. 4 / App. B: "Our CIFAR10 model has 35.7 million parameters".
    # Built on the meta device: the count needs no memory and no forward pass.
    with torch.device("meta"):
        net = UNet.ddpm_cifar10()
    n = count_parameters(net)
    assert abs(n - 35.7e6) / 35.7e6 < 0.02, n


def test_ddpm_cifar10_count_equals_diffusers_same_config():
    # An independent implementation of the same architecture must have the same count.
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        ours = UNet.ddpm_cifar10()
        theirs = diffusers.UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        )
    assert count_parameters(ours) == count_parameters(theirs)


def test_adagn_adds_the_scale_projection():
    with torch.device("meta"):
        plain = UNet.ddpm_cifar10()
        adagn = UNet.ddpm_cifar10(scale_shift=True)
    # AdaGN doubles every residual block's embedding projection (out_ch -> 2 out_ch).
    extra = sum(b.emb_proj.out_features // 2 * (b.emb_proj.in_features + 1)
                for b in adagn.modules() if b.__class__.__name__ == "ResBlock")
    assert count_parameters(adagn) - count_parameters(plain) == extra > 0


def test_digits_unet_shapes_and_gradients():
    torch.manual_seed(0)
    net = UNet.digits()
    x = torch.randn(3, 1, 8, 8)
    out = net(x, torch.randn(3))
    assert out.shape == x.shape
    # The output conv starts at zero (so D = c_skip x at init); after one nudge it must depend on x.
    assert torch.count_nonzero(out) == 0
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    out = net(x.requires_grad_(True), torch.randn(3))
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def _perturbed(net):
    for p in net.parameters():  # undo the zero init so the outputs react to their inputs
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    return net.eval()


def test_unet_depends_on_noise_and_class():
    torch.manual_seed(1)
    net = _perturbed(UNet.digits(num_classes=10))
    x = torch.randn(2, 1, 8, 8)
    a = net(x, torch.tensor([0.1, 0.1]), torch.tensor([3, 3]))
    b = net(x, torch.tensor([0.9, 0.9]), torch.tensor([3, 3]))
    c = net(x, torch.tensor([0.1, 0.1]), torch.tensor([4, 4]))
    onehot = net(x, torch.tensor([0.1, 0.1]), torch.nn.functional.one_hot(torch.tensor([3, 3]), 10).float())
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4
    torch.testing.assert_close(a, onehot)


def test_unet_batch_independence():
    # Each sample is processed independently (GroupNorm, not BatchNorm): a batch of two gives
    # what two batches of one give.
    torch.manual_seed(2)
    net = _perturbed(UNet.digits())
    x, c = torch.randn(2, 1, 8, 8), torch.randn(2)
    both = net(x, c)
    one = torch.cat([net(x[:1], c[:1]), net(x[1:], c[1:])])
    torch.testing.assert_close(both, one, atol=1e-5, rtol=1e-5)


def test_unet_cifar_like_small_forward():
    net = UNet(img_resolution=16, in_channels=3, ch=16, ch_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(8,), groups=8, num_heads=2, embedding="fourier")
    assert net(torch.randn(2, 3, 16, 16), torch.randn(2)).shape == (2, 3, 16, 16)


def test_mlp_shapes_and_labels():
    torch.manual_seed(0)
    net = MLP(dim=2, hidden=32, depth=2, num_classes=3)
    out = net(torch.randn(5, 2), torch.randn(5), torch.tensor([0, 1, 2, 0, 1]))
    assert out.shape == (5, 2)
    with pytest.raises(ValueError, match="class-conditional"):
        net(torch.randn(5, 2), torch.randn(5))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        net(torch.randn(5, 3), torch.randn(5), torch.zeros(5, dtype=torch.long))
    # A 0-d c_noise is broadcast over the batch.
    assert net(torch.randn(4, 2), torch.tensor(0.3), torch.zeros(4, dtype=torch.long)).shape == (4, 2)


def test_bad_configurations_name_the_problem():
    with pytest.raises(ValueError, match="attn_resolutions"):
        UNet(img_resolution=8, ch=32, ch_mult=(1, 2), attn_resolutions=(16,), groups=8)
    with pytest.raises(ValueError, match="groups"):
        UNet(img_resolution=8, ch=20, ch_mult=(1, 2), attn_resolutions=(), groups=8)
    with pytest.raises(ValueError, match="divisible"):
        UNet(img_resolution=10, ch=32, ch_mult=(1, 2, 2), attn_resolutions=(), groups=8)
    with pytest.raises(ValueError, match="sinusoidal"):
        MLP(embedding="learned")


def test_sinusoidal_embedding_values():
    emb = SinusoidalEmbedding(8)
    c = torch.tensor([0.0, 2.0])
    out = emb(c)
    freqs = [10000 ** (-i / 3) for i in range(4)]  # 1 ... 1/10000, geometric
    expected = [[math.cos(2 * f) for f in freqs] + [math.sin(2 * f) for f in freqs]]
    torch.testing.assert_close(out[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    torch.testing.assert_close(out[1:], torch.tensor(expected))


def test_fourier_embedding_is_saved_and_seeded():
    a, b = FourierEmbedding(16, seed=3), FourierEmbedding(16, seed=3)
    torch.testing.assert_close(a(torch.tensor([0.5])), b(torch.tensor([0.5])))
    assert "freqs" in a.state_dict()  # random features travel with the checkpoint
    out = a(torch.tensor([0.0, 0.25]))
    torch.testing.assert_close(out.square()[:, :8] + out.square()[:, 8:], torch.ones(2, 8))


# -- the backbones gathered here from method modules (issue 24): same layers, same initial weights
# Hashes of the state dicts (names and float32 bytes) recorded with the pre-move builders
# (compression.FlatMLP, score_matching.ScoreNet, representation.CodeConditionedMLP) on seed 0.


from state_hash import state_hash as _state_hash


def test_moved_backbones_build_the_recorded_weights():
    from diffnotes.methods.compression import mlp_digits_denoiser
    from diffnotes.methods.embedding import embedding_denoiser
    from diffnotes.methods.representation import RepresentationDenoiser
    from diffnotes.methods.score_matching import score_mlp

    recorded = {
        "compression": (lambda: mlp_digits_denoiser(hidden=32), "7c24688d98a4c7fe"),
        "embedding": (lambda: embedding_denoiser(64, 5, hidden=32, depth=2), "656c3d5f3e52acef"),
        "representation": (lambda: RepresentationDenoiser(64, 4, 32, 2), "d2dba3c3ed42ae93"),
        "score_mlp": (lambda: score_mlp(2, hidden=16), "9d8a89a5f866b399"),
    }
    for name, (build, digest) in recorded.items():
        torch.manual_seed(0)
        assert _state_hash(build()) == digest, name


def test_flat_and_vector_conditioned_mlps_keep_shapes_and_refuse_bad_conditions():
    from diffnotes.nets import FlatMLP, ScoreNet, VectorConditionedMLP

    x = torch.randn(3, 1, 8, 8)
    assert FlatMLP(64, 16, 1)(x, torch.zeros(3)).shape == x.shape
    net = VectorConditionedMLP(64, 4, 16, 1)
    out = net(x, torch.zeros(3))  # no condition: the zero vector
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))  # zero-initialised output
    assert torch.equal(net(x, torch.zeros(3), torch.zeros(3, 4)), out)
    with pytest.raises(ValueError, match="the condition must have shape"):
        net(x, torch.zeros(3), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="cond_dim must be a positive integer"):
        VectorConditionedMLP(cond_dim=0)
    score = ScoreNet(MLP(dim=2, hidden=8, depth=1), c_noise=0.5)
    pts = torch.randn(4, 2)
    assert torch.equal(score(pts), score.backbone(pts, torch.full((4,), 0.5)))
