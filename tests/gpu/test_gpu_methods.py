"""Every method of the book trains for at least 50 steps and samples on one CUDA GPU.

Each test trains under the ``gpu`` profile (so ``fit`` takes the fast paths of
``diffnotes.device``: fused AdamW, pinned batches, channels-last, TF32, bf16 autocast), checks
that every loss is finite and that the loss of the last steps is below that of the first steps,
then draws samples on the device and checks they are finite, of the right shape and on the
device. Images are the digits upsampled to 32x32 with the ``gpu`` profile's U-Net
(``diffnotes.presets``); the 2-D methods train on their notebooks' toys.
"""

import math
import os

import pytest
import torch

from diffnotes import device as dev
from diffnotes import presets, sampling
from diffnotes.chain import DiscreteSchedule
from diffnotes.data import get_toy, load_digits, swiss_roll
from diffnotes.methods import ddpm, edm, iddpm, ncsn, score_matching, score_sde, vae
from diffnotes.methods import sohl_dickstein as sd
from diffnotes.nets import MLP, UNet
from diffnotes.precond import EDMPrecond, VEPrecond, VPPrecond
from diffnotes.profiles import get_profile
from diffnotes.train import fit

ON_CPU = os.environ.get("DIFFNOTES_GPU_TESTS_ON_CPU") == "1"  # see conftest.py
pytestmark = pytest.mark.gpu  # conftest.py adds it too, with the skip where CUDA is missing
STEPS = 60
SIZE = 8 if ON_CPU else 32  # the CPU check of the suite's code runs at the digits' own size
BATCH = 16 if ON_CPU else 256
N_SAMPLES = 16 if ON_CPU else 256


@pytest.fixture(autouse=True)
def gpu_profile(monkeypatch):
    monkeypatch.setenv("DIFFNOTES_PROFILE", "gpu")
    monkeypatch.delenv(dev.COMPILE_ENV, raising=False)


def digits():
    return load_digits("train", size=SIZE)[0]


def unet(out_channels=1):
    if ON_CPU:
        return UNet(img_resolution=SIZE, in_channels=1, out_channels=out_channels, ch=16, ch_mult=(1, 2),
                    num_res_blocks=1, attn_resolutions=(SIZE // 2,), dropout=0.0, groups=8)
    kwargs = dict(presets.net_config("digits", get_profile("gpu"))["kwargs"], out_channels=out_channels)
    return UNet(**kwargs)


def train(model, loss_fn, data, device, lr=1e-3, batch_size=BATCH, **options):
    torch.manual_seed(0)
    result = fit(model, loss_fn, data, STEPS, lr=lr, batch_size=batch_size, warmup=10, seed=0,
                 device=device, progress=False, log_every=10, **options)
    losses = torch.tensor(result.losses)
    assert len(losses) == STEPS and torch.isfinite(losses).all(), losses
    first, last = losses[:15].mean(), losses[-15:].mean()
    assert last < first, f"loss did not fall: first 15 steps {first:.4g}, last 15 {last:.4g}"
    return result.model_ema


def check_samples(x, shape, device):
    # After 60 steps a model is far from converged, so its samples are judged on being produced
    # (shape, device, finite), not on their quality; the notebooks judge quality.
    assert tuple(x.shape) == tuple(shape) and x.device.type == device.type
    assert torch.isfinite(x).all()


def test_ddpm_trains_and_samples_ancestral_and_ddim(device):
    schedule = DiscreteSchedule.linear()
    model = train(VPPrecond(unet()), ddpm.SimpleLoss(schedule), digits(), device)
    shape = (N_SAMPLES, 1, SIZE, SIZE)
    check_samples(ddpm.sample(model, shape, schedule, steps=50, device=device), shape, device)
    sigmas = sampling.ddpm_sigmas(50).to(device)
    x = torch.randn(shape, device=device) * sigmas[0]
    check_samples(sampling.sample(model, x, sigmas, solver="ddim"), shape, device)


def test_iddpm_hybrid_loss_trains_and_samples(device):
    schedule = iddpm.cosine_schedule()
    model = iddpm.LearnedVarianceModel(EDMPrecond(unet(), sigma_data=0.5), unet())
    model = train(model, iddpm.HybridLoss(schedule), digits(), device)
    shape = (N_SAMPLES, 1, SIZE, SIZE)
    check_samples(iddpm.sample(model, shape, schedule, steps=50, device=device), shape, device)


def test_ncsn_trains_and_samples_with_annealed_langevin(device):
    ladder = ncsn.ncsn_sigmas(10, 10.0, 0.01)
    model = train(VEPrecond(unet()), ncsn.NCSNLoss(ladder), digits(), device)
    shape = (N_SAMPLES, 1, SIZE, SIZE)
    x = torch.rand(shape, device=device) * 2 - 1
    out = ncsn.annealed_langevin(model, x, ladder, epsilon=2e-5, n_steps_each=5, final_denoise=True)
    check_samples(out, shape, device)


@pytest.mark.parametrize("sde", ["vp", "subvp"])
def test_score_sde_trains_and_samples_with_euler_maruyama(device, sde):
    model = train(VPPrecond(unet()), score_sde.ScoreSDELoss(sde), digits(), device)
    shape = (N_SAMPLES, 1, SIZE, SIZE)
    x = score_sde.prior_sample(sde, shape).to(device)
    check_samples(score_sde.reverse_sde_sample(model, sde, x, 50), shape, device)


@pytest.mark.parametrize("method", ["edm", "vp", "ve"])
def test_edm_table_1_losses_train_and_sample_with_heun(device, method):
    precond = {"edm": lambda net: EDMPrecond(net, sigma_data=0.5), "vp": VPPrecond, "ve": VEPrecond}[method]
    loss = edm.LOSSES[method](**({"sigma_data": 0.5} if method == "edm" else {}))
    model = train(precond(unet()), loss, digits(), device)
    sigma_max = min(model.sigma_max, 80.0)
    sigmas = sampling.sigma_schedule("karras", 18, max(model.sigma_min, 0.002), sigma_max).to(device)
    shape = (N_SAMPLES, 1, SIZE, SIZE)
    x = torch.randn(shape, device=device) * sigmas[0]
    check_samples(sampling.sample(model, x, sigmas, "heun"), shape, device)


def test_large_batch_sampling_stays_on_the_device(device):
    model = train(EDMPrecond(unet(), sigma_data=0.5), edm.EDMLoss(sigma_data=0.5), digits(), device)
    fast = dev.accel(device)
    sigmas = sampling.sigma_schedule("karras", 18, 0.002, 80.0).to(device)
    n = 64 if ON_CPU else 2 * fast.sample_batch  # two full chunks of the profile's sample batch

    def draw(k):
        x = torch.randn(k, 1, SIZE, SIZE, device=device) * sigmas[0]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return sampling.sample(model, x, sigmas, "heun")

    check_samples(dev.in_batches(draw, n, fast.sample_batch), (n, 1, SIZE, SIZE), device)


def test_sohl_dickstein_reverse_kernels_train_and_sample(device):
    schedule = sd.swiss_roll_schedule()
    model = sd.ReverseKernel(MLP(2, hidden=128, depth=3), MLP(2, hidden=64, depth=2), schedule)

    def roll(n, generator):  # the notebook's jittered roll, batch and learning rate
        return swiss_roll(n, generator, noise=0.05)

    model = train(model, sd.BoundLoss(), roll, device, lr=2e-3, batch_size=256)
    check_samples(sd.sample(model, (N_SAMPLES, 2), device=device), (N_SAMPLES, 2), device)


@pytest.mark.parametrize("kind", ["dsm", "ssm"])
def test_score_matching_trains_and_samples_with_langevin(device, kind):
    loss = score_matching.DSMLoss(0.3) if kind == "dsm" else score_matching.SlicedSMLoss()
    ring = get_toy("gmm_ring")
    net = train(score_matching.score_mlp(2, hidden=128), loss, lambda n, g: ring(n, generator=g), device)
    x, step = torch.randn(N_SAMPLES, 2, device=device), 1e-3
    with torch.no_grad():
        for _ in range(200):  # Langevin dynamics on the learned score
            x = x + 0.5 * step * net(x) + math.sqrt(step) * torch.randn_like(x)
    check_samples(x, (N_SAMPLES, 2), device)


def test_vae_trains_and_samples(device):
    model = train(vae.VAE(64, 8), vae.VAELoss(), vae.binarized_digits("train"), device)
    out = model.sample(N_SAMPLES)
    check_samples(out, (N_SAMPLES, 64), device)
    assert 0 <= float(out.min()) and float(out.max()) <= 1  # Bernoulli pixel probabilities


def test_fast_paths_are_on_under_the_gpu_profile(device):
    if device.type != "cuda":
        pytest.skip("the fast paths exist on CUDA only (on the CPU they are off: tests/test_device.py)")
    model = EDMPrecond(unet(), sigma_data=0.5)
    train(model, edm.EDMLoss(sigma_data=0.5), digits(), device)
    conv = model.backbone.conv_in.weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)
    assert torch.backends.cuda.matmul.allow_tf32
    fast = dev.accel(device)
    assert fast.fused_adamw and fast.pin_memory and fast.sample_batch == 4096


def test_torch_compile_trains(device):
    if device.type != "cuda":
        pytest.skip("torch.compile is exercised on CUDA only (inductor on the CPU compiles for minutes)")
    model = train(EDMPrecond(unet(), sigma_data=0.5), edm.EDMLoss(sigma_data=0.5), digits(), device,
                  compile=True)
    sigmas = sampling.sigma_schedule("karras", 18, 0.002, 80.0).to(device)
    x = torch.randn(N_SAMPLES, 1, SIZE, SIZE, device=device) * sigmas[0]
    check_samples(sampling.sample(model, x, sigmas, "heun"), x.shape, device)


def test_the_cli_trains_and_samples_digits_at_32x32(device, tmp_path):
    from diffnotes.cli import main

    out = tmp_path / "run"
    batch = ["--batch-size", "8"] if ON_CPU else []
    assert main(["train", "--method", "edm", "--data", "digits", "--profile", "gpu", "--steps", "50",
                 "--out", str(out), "--device", device.type, *batch]) == 0
    grid = tmp_path / "grid.png"
    assert main(["sample", "--ckpt", str(out / "ckpt.pt"), "-n", "16", "--steps", "10",
                 "--device", device.type, "--out", str(grid)]) == 0
    samples = torch.load(grid.with_suffix(".pt"))
    assert samples.shape == (16, 1, 32, 32) and torch.isfinite(samples).all()


def test_upsampled_digits_keep_their_range():
    x = load_digits("train", size=32)[0]
    assert x.shape[1:] == (1, 32, 32) and -1 <= float(x.min()) and float(x.max()) <= 1
    small = load_digits("train")[0]
    assert x.shape[0] == small.shape[0]  # the same images, one each


def test_a_training_step_does_not_wait_for_the_gpu(device):
    """No host synchronisation inside ``train._step`` (losses leave the device every log_every)."""
    if device.type != "cuda":
        pytest.skip("host synchronisation is a CUDA notion (torch.cuda.set_sync_debug_mode)")
    from diffnotes.train import _start, _step

    model = EDMPrecond(unet(), sigma_data=0.5)
    run = _start(model, digits(), device, BATCH, 0, dict(lr=1e-3), "gpu")
    opts = dict(lr=1e-3, warmup=10, amp=True, grad_clip=1.0, ema_decay=0.999, ema_warmup=True,
                param_dtype=torch.float32)
    loss_fn = edm.EDMLoss(sigma_data=0.5)
    for step in range(2):  # optimizer state and allocator caches are created here
        _step(run, model, loss_fn, step, opts)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [_step(run, model, loss_fn, step, opts) for step in range(2, 5)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(torch.stack(losses)).all()
