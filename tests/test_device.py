"""The GPU fast paths of ``diffnotes.device`` are inert on the CPU, and the ones that can run on
the CPU (channels-last, the fused EMA update) compute what the plain path computes."""

import copy

import pytest
import torch
from torch import nn

from diffnotes import device as dev
from diffnotes.nets import UNet
from diffnotes.train import compiled, fit, update_ema


def test_every_fast_path_is_off_on_the_cpu_whatever_the_profile():
    for profile in ("quick", "full", "gpu"):
        fast = dev.accel("cpu", profile, environ={dev.COMPILE_ENV: "max-autotune"})
        assert fast == dev.Accel(torch.device("cpu"))
        assert not (fast.fused_adamw or fast.pin_memory or fast.channels_last or fast.tf32)
        assert fast.compile_mode is None


def test_compile_mode_from_the_environment():
    assert dev.compile_mode({}) is None
    assert dev.compile_mode({dev.COMPILE_ENV: "0"}) is None
    assert dev.compile_mode({dev.COMPILE_ENV: "1"}) == "default"
    assert dev.compile_mode({dev.COMPILE_ENV: "Max-Autotune"}) == "max-autotune"
    with pytest.raises(ValueError, match="DIFFNOTES_COMPILE='fast' is not a torch.compile mode; valid"):
        dev.compile_mode({dev.COMPILE_ENV: "fast"})


def test_compiled_leaves_the_model_alone_unless_asked_and_rejects_unknown_modes():
    model = nn.Linear(2, 2)
    assert compiled(model, False, dev.Accel(torch.device("cpu"))) is model
    with pytest.raises(ValueError, match="compile must be True, False or one of"):
        compiled(model, "turbo", dev.Accel(torch.device("cpu")))


def test_to_device_on_the_cpu_is_a_plain_copy_to_the_dtype():
    x = torch.arange(6, dtype=torch.float64).reshape(1, 1, 2, 3)
    y = dev.to_device(x, dev.Accel(torch.device("cpu")), torch.float32)
    assert y.dtype == torch.float32 and y.is_contiguous() and torch.equal(y, x.float())
    nhwc = dev.to_device(x, dev.Accel(torch.device("cpu"), channels_last=True))
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, x)


def test_in_batches_draws_every_row_once_in_bounded_chunks():
    sizes = []

    def draw(k):
        sizes.append(k)
        return torch.full((k, 2), float(len(sizes)))

    out = dev.in_batches(draw, 10, 4)
    assert sizes == [4, 4, 2] and out.shape == (10, 2) and out[-1, 0] == 3
    with pytest.raises(ValueError, match="need n >= 0 and batch >= 1"):
        dev.in_batches(draw, 3, 0)


def test_unet_in_channels_last_computes_the_same_function():
    torch.manual_seed(0)
    net = UNet(img_resolution=8, in_channels=3, ch=16, ch_mult=(1, 2), num_res_blocks=1,
               attn_resolutions=(4,), dropout=0.0, groups=8).eval()
    for p in net.parameters():  # the zero-initialised layers would hide a difference
        nn.init.normal_(p, std=0.2)
    x, c_noise = torch.randn(3, 3, 8, 8), torch.randn(3)
    with torch.no_grad():
        plain = net(x, c_noise)
        nhwc = copy.deepcopy(net).to(memory_format=torch.channels_last)
        fast = nhwc(x.contiguous(memory_format=torch.channels_last), c_noise)
    assert plain.abs().mean() > 0.1  # a real output, not the zero of an untrained last layer
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_fused_ema_update_equals_the_per_parameter_lerp():
    torch.manual_seed(1)
    model, ema = nn.Linear(5, 3), nn.Linear(5, 3)
    expected = [p_ema.detach().clone().lerp_(p.detach(), 1 - 0.9)
                for p_ema, p in zip(ema.parameters(), model.parameters())]
    update_ema(ema, model, decay=0.9)
    for got, want in zip(ema.parameters(), expected):
        assert torch.equal(got, want)


def test_the_gpu_profile_trains_bit_for_bit_like_quick_on_the_cpu(monkeypatch):
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))

    def loss_fn(model, x0, labels=None):
        return ((model(x0) - x0) ** 2).sum(dim=1)

    runs = {}
    for profile in ("quick", "gpu"):
        monkeypatch.setenv("DIFFNOTES_PROFILE", profile)
        monkeypatch.setenv(dev.COMPILE_ENV, "max-autotune")  # ignored on the CPU
        torch.manual_seed(0)
        result = fit(nn.Linear(2, 2), loss_fn, x, 20, batch_size=8, device="cpu", progress=False,
                     profile=profile)
        runs[profile] = (result.losses, result.model.weight.detach().clone())
    assert runs["quick"][0] == runs["gpu"][0]
    assert torch.equal(runs["quick"][1], runs["gpu"][1])


def test_stochastic_samplers_draw_noise_where_the_generator_lives():
    """A CPU generator seeds a run on any device (on CUDA it used to raise); on the CPU the draws
    are those of ``torch.randn(..., generator=g)`` as before."""
    from diffnotes.solvers import _randn

    x = torch.zeros(3, 2, dtype=torch.float64)
    want = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert torch.equal(_randn(x, torch.Generator().manual_seed(4)), want)
    meta = torch.zeros(3, 2, device="meta")  # another device: the draw is moved there
    assert _randn(meta, torch.Generator().manual_seed(4)).device.type == "meta"
