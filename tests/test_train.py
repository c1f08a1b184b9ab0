"""The EDM-family losses and the training loop: exact resume, checkpoints, divergence, DDP."""

import math
import os
import socket

import pytest
import torch
from torch import nn

from diffnotes.data import gmm_ring
from diffnotes.methods.edm import EDMLoss, VELoss
from diffnotes.methods.score_sde import ScoreSDELoss
from diffnotes.nets import MLP, UNet
from diffnotes.precond import EDMPrecond, VEPrecond, VPPrecond
from diffnotes.train import CKPT_NAME, CheckpointError, TrainingDiverged, fit, load_checkpoint




class Zero(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_in, c_noise, class_labels=None):
        return torch.zeros_like(x_in) + 0 * self.dummy


class Recorder(nn.Module):
    """Wraps a denoiser and keeps every sigma it was called with."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.sigmas = inner, []

    def forward(self, x, sigma, class_labels=None):
        self.sigmas.append(sigma.detach().flatten())
        return self.inner(x, sigma, class_labels)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss_fn, precond",
    [(EDMLoss(), EDMPrecond), (ScoreSDELoss("vp"), VPPrecond), (VELoss(), VEPrecond)],
    ids=["edm", "vp", "ve"],
)
def test_untrained_network_has_unit_expected_loss(loss_fn, precond):
    # With F = 0 each formulation's weighted loss has expectation exactly 1 on data of std
    # sigma_data = 0.5: for VP/VE D(x) = x so the error is the noise n and lambda = 1/sigma^2;
    # for EDM lambda(sigma) c_out(sigma)^2 = 1 (EDM Sec. 5, "loss weighting").
    torch.manual_seed(0)
    x0 = 0.5 * torch.randn(20000, 4)
    with torch.no_grad():
        loss = loss_fn(precond(Zero()), x0)
    assert loss.shape == (20000,)
    assert abs(float(loss.mean()) - 1.0) < 0.04, float(loss.mean())


@pytest.mark.parametrize("name, parameterization, loss_fn", [("edm", None, EDMLoss()), ("vp", None, ScoreSDELoss("vp")),
                                                            ("ve", "edm", VELoss())], ids=["edm", "vp", "ve"])
def test_loss_weight_equals_the_theory(name, parameterization, loss_fn):
    # A denoiser that is off by exactly 1 everywhere makes the per-sample loss equal lambda(sigma).
    import sympy as sp

    from diffnotes.theory import get_process
    from diffnotes.theory.processes import SIGMA

    class OffByOne(nn.Module):
        def forward(self, x, sigma, class_labels=None):
            return torch.ones_like(x)

    rec = Recorder(OffByOne())
    torch.manual_seed(0)
    with torch.no_grad():
        loss = loss_fn(rec, torch.zeros(500, 3))
    proc = get_process(name, parameterization)
    weight = sp.lambdify(SIGMA, proc.subs(proc.table1["loss_weight"]), modules="torch")
    torch.testing.assert_close(loss, weight(rec.sigmas[-1]).float())


def test_noise_level_distributions():
    torch.manual_seed(0)
    x0 = torch.randn(20000, 2)
    rec = Recorder(EDMPrecond(Zero()))
    EDMLoss()(rec, x0)
    log_sigma = rec.sigmas[-1].log()
    assert abs(float(log_sigma.mean()) + 1.2) < 0.05 and abs(float(log_sigma.std()) - 1.2) < 0.05  # P_mean, P_std

    rec = Recorder(VEPrecond(Zero()))
    VELoss()(rec, x0)
    log_sigma = rec.sigmas[-1].log()
    lo, hi = math.log(0.02), math.log(100.0)
    assert float(log_sigma.min()) >= lo and float(log_sigma.max()) <= hi
    assert abs(float(log_sigma.mean()) - (lo + hi) / 2) < 0.1  # log-uniform

    pre = VPPrecond(Zero())
    rec = Recorder(pre)
    ScoreSDELoss("vp")(rec, x0)
    t = pre.sigma_inv(rec.sigmas[-1].double())
    assert float(t.min()) >= 1e-5 - 1e-7 and float(t.max()) <= 1 + 1e-6
    assert abs(float(t.mean()) - 0.5) < 0.02  # t ~ U(epsilon_t, 1)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def test_fit_learns_the_gmm_denoiser():
    gmm = gmm_ring(k=4)
    torch.manual_seed(0)
    model = EDMPrecond(MLP(hidden=64, depth=2), sigma_data=1.0)
    result = fit(model, EDMLoss(sigma_data=1.0), gmm, 400, lr=3e-3, batch_size=256, ema_decay=0.98, progress=False)
    assert len(result.losses) == 400 and result.step == 400
    model_ema = result.model_ema.cpu()  # fit trains on CUDA when present
    x = gmm.sample(2000, torch.Generator().manual_seed(1)).float()
    sigma = torch.tensor(0.5)
    xn = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    truth = gmm.denoiser(xn.double(), sigma).float()
    with torch.no_grad():
        err_trained = (model_ema(xn, sigma) - truth).square().mean()
        err_init = (EDMPrecond(Zero(), sigma_data=1.0)(xn, sigma) - truth).square().mean()
    assert err_trained < 0.25 * err_init, (float(err_trained), float(err_init))
    first, last = sum(result.losses[:40]) / 40, sum(result.losses[-40:]) / 40
    assert last < 0.8 * first


def _tiny_unet():
    torch.manual_seed(123)  # the same initial weights every time
    return EDMPrecond(UNet(img_resolution=4, in_channels=1, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                           attn_resolutions=(2,), dropout=0.1, groups=4, num_classes=3))


def _images():
    gen = torch.Generator().manual_seed(5)
    return torch.randn(40, 1, 4, 4, generator=gen) * 0.5, torch.randint(3, (40,), generator=gen)


def test_resume_equals_uninterrupted_run(tmp_path):
    kw = dict(lr=1e-3, batch_size=8, ema_decay=0.9, warmup=3, seed=7, progress=False, log_every=2, device="cpu")
    straight = fit(_tiny_unet(), EDMLoss(), _images(), 12, **kw)
    first = fit(_tiny_unet(), EDMLoss(), _images(), 6, ckpt_dir=tmp_path, **kw)
    assert first.step == 6 and (tmp_path / CKPT_NAME).exists()
    fresh = _tiny_unet()
    with torch.no_grad():  # resume must not depend on the weights it is handed
        for p in fresh.parameters():
            p.add_(1.0)
    torch.manual_seed(999)  # nor on the global generator's state
    resumed = fit(fresh, EDMLoss(), _images(), 12, ckpt_dir=tmp_path, **kw)
    assert resumed.steps_run == 6 and resumed.losses == straight.losses
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.model_ema.state_dict().values(), resumed.model_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_is_plain_and_atomic(tmp_path):
    fit(EDMPrecond(MLP(hidden=16, depth=1)), EDMLoss(), torch.randn(64, 2), 4, batch_size=8, ckpt_dir=tmp_path,
        ckpt_every=2, progress=False, config={"net": {"kind": "mlp", "hidden": 16}, "note": None})
    assert sorted(os.listdir(tmp_path)) == [CKPT_NAME]  # no temporary file left behind
    state = load_checkpoint(tmp_path / CKPT_NAME)  # weights_only=True inside
    assert state["step"] == 4 and state["config"]["net"] == {"kind": "mlp", "hidden": 16}
    assert state["config"]["train"]["batch_size"] == 8 and len(state["losses"]) == 4
    assert {"torch", "data"} <= set(state["rng"])
    with pytest.raises(ValueError, match="config"):
        fit(EDMPrecond(MLP(hidden=16, depth=1)), EDMLoss(), torch.randn(64, 2), 1, config={"f": object()})


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / CKPT_NAME
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"a": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a diffnotes checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    edm = EDMLoss()
    calls = {"n": 0}

    def loss_fn(model, x0, class_labels=None):
        calls["n"] += 1
        loss = edm(model, x0)
        return loss * float("nan") if calls["n"] == 7 else loss

    with pytest.raises(TrainingDiverged, match=r"step 7 of 20.*step 5"):
        fit(EDMPrecond(MLP(hidden=16, depth=1)), loss_fn, torch.randn(64, 2), 20, batch_size=8,
            ckpt_dir=tmp_path, ckpt_every=5, log_every=1, progress=False)
    state = load_checkpoint(tmp_path / CKPT_NAME)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_data_sources_and_labels_reach_the_loss():
    seen = []

    def loss_fn(model, x0, class_labels=None):
        seen.append((x0.shape, x0.dtype, None if class_labels is None else class_labels.clone()))
        return model(x0, torch.ones(x0.shape[0])).square().mean(1)

    model = EDMPrecond(MLP(hidden=8, depth=1))
    x, y = torch.randn(30, 2, dtype=torch.float64), torch.arange(30)
    fit(model, loss_fn, (x, y), 2, batch_size=5, progress=False)
    assert seen[-1][0] == (5, 2) and seen[-1][1] == torch.float32 and seen[-1][2].shape == (5,)
    fit(model, loss_fn, lambda n, g: torch.randn(n, 2, generator=g), 2, batch_size=3, progress=False)
    assert seen[-1][0] == (3, 2) and seen[-1][2] is None
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    fit(model, loss_fn, loader, 10, progress=False)  # 10 steps > 8 batches: a second epoch
    assert seen[-1][0] == (4, 2) and len(seen) == 14


def test_progress_is_quiet_without_a_terminal(capsys):
    fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 3, batch_size=4)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_bad_arguments_name_the_problem():
    model, data = EDMPrecond(MLP(hidden=8, depth=1)), torch.randn(16, 2)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, EDMLoss(), data, 1, batch_size=0)
    with pytest.raises(ValueError, match="ema_decay"):
        fit(model, EDMLoss(), data, 1, ema_decay=1.5)
    with pytest.raises(ValueError, match="steps"):
        fit(model, EDMLoss(), data, -1)
    with pytest.raises(ValueError, match="data must be"):
        fit(model, EDMLoss(), 3.0, 1)


def test_ema_halflife_sets_the_decay():
    result = fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 1, batch_size=4,
                 ema_halflife=10, progress=False)
    assert result.config["train"]["ema_decay"] == pytest.approx(0.5 ** 0.1)


# ----------------------------------------------------------------------------------------------
# Data parallel: two gloo processes on localhost equal one process at the same global batch
# ----------------------------------------------------------------------------------------------


def _regression_loss(model, x0, class_labels=None):
    # Deterministic (no noise draw): the comparison isolates sharding, gradient averaging and EMA.
    return (model(x0, torch.full((x0.shape[0],), 0.7)) - x0).square().mean(1)


def _ddp_run(world, out_path, ckpt_dir=None):
    torch.manual_seed(0)
    model = EDMPrecond(MLP(hidden=16, depth=2))
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    result = fit(model, _regression_loss, data, 5, lr=1e-2, batch_size=16, ema_decay=0.5, seed=1,
                 progress=False, log_every=1, device="cpu", ckpt_dir=ckpt_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"model": result.model.state_dict(), "ema": result.model_ema.state_dict(),
                    "losses": torch.tensor(result.losses)}, out_path)


def _ddp_worker(rank, world, port, out_path, ckpt_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    _ddp_run(world, out_path, ckpt_dir)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_ddp_two_processes_match_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _ddp_run(1, tmp_path / "single.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), tmp_path / "ddp.pt", tmp_path / "ckpt"), nprocs=2, join=True)
    single, ddp = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "ddp.pt")
    torch.testing.assert_close(ddp["losses"], single["losses"], atol=1e-6, rtol=1e-5)
    for key in ("model", "ema"):
        for name in single[key]:
            torch.testing.assert_close(ddp[key][name], single[key][name], atol=1e-5, rtol=1e-4)
    state = load_checkpoint(tmp_path / "ckpt" / CKPT_NAME)
    assert state["step"] == 5 and len(state["rng"]["torch_per_rank"]) == 2


def test_loss_noise_is_independent_of_the_data_stream():
    """Regression: the global stream once had the data generator's seed, so a loss drawing
    randn_like(x0) got back the very draws that made x0 when the data were randn too."""
    from diffnotes.train import fit

    seen = []

    def loss(model, x0, class_labels=None):
        noise = torch.randn_like(x0)
        seen.append((x0.detach().clone(), noise))
        return ((model(x0) - noise) ** 2).mean(dim=1)

    fit(torch.nn.Linear(2, 2), loss, lambda n, g: torch.randn(n, 2, generator=g), steps=2,
        batch_size=64, seed=0, progress=False)
    for x0, noise in seen:
        assert not torch.allclose(x0, noise)  # failed before the fix: identical draws
        assert abs(torch.corrcoef(torch.stack([x0.flatten(), noise.flatten()]))[0, 1]) < 0.3


# ----------------------------------------------------------------------------------------------
# DIFFNOTES_TRAIN_STEPS: a cap on every run (0 = an untrained model for the checks)
# ----------------------------------------------------------------------------------------------


def test_train_steps_zero_keeps_the_initial_weights(monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    torch.manual_seed(0)
    model = EDMPrecond(MLP(hidden=8, depth=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, EDMLoss(), torch.randn(16, 2), 50, batch_size=4, progress=False, device="cpu")
    assert result.losses == [] and result.step == 0 and result.steps_run == 0
    assert result.steps_requested == 50 and result.capped
    for name, value in before.items():
        assert torch.equal(result.model.state_dict()[name], value)
        assert torch.equal(result.model_ema.state_dict()[name], value)


def test_train_steps_caps_a_longer_run_and_leaves_a_shorter_one(monkeypatch):
    kw = dict(batch_size=4, progress=False, device="cpu", log_every=1)
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "3")
    capped = fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 50, **kw)
    assert len(capped.losses) == 3 and capped.step == 3 and capped.capped
    assert capped.config["train"]["steps"] == 3
    short = fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 2, **kw)
    assert len(short.losses) == 2 and not short.capped
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "")  # empty counts as unset
    free = fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 5, **kw)
    assert len(free.losses) == 5 and not free.capped


def test_train_steps_cap_equals_the_same_run_asked_for_fewer_steps(monkeypatch):
    kw = dict(lr=1e-3, batch_size=8, seed=3, progress=False, device="cpu")
    direct = fit(_tiny_unet(), EDMLoss(), _images(), 4, **kw)
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "4")
    capped = fit(_tiny_unet(), EDMLoss(), _images(), 40, **kw)
    assert capped.losses == direct.losses
    for a, b in zip(direct.model_ema.state_dict().values(), capped.model_ema.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("value", ["-1", "2.5", "ten", "1e3"])
def test_bad_train_steps_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", value)
    with pytest.raises(ValueError) as err:
        fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 5, progress=False)
    message = str(err.value)
    assert "\n" not in message and "DIFFNOTES_TRAIN_STEPS" in message
    assert ">= 0" in message and repr(value) in message


def test_train_steps_refuses_a_checkpoint_beyond_the_cap(tmp_path, monkeypatch):
    kw = dict(batch_size=4, progress=False, device="cpu", ckpt_dir=tmp_path)
    fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 4, **kw)
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    with pytest.raises(ValueError, match="holds 4 steps, more than DIFFNOTES_TRAIN_STEPS=0"):
        fit(EDMPrecond(MLP(hidden=8, depth=1)), EDMLoss(), torch.randn(16, 2), 10, **kw)
    assert load_checkpoint(tmp_path / CKPT_NAME)["step"] == 4  # untouched
