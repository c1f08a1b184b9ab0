"""The helpers ``train.fit`` loops over, each on its own: checkpoints, batches, distributed
set-up on one process, the loss log with its divergence check, the EMA update, the progress bar
and the ``DIFFNOTES_TRAIN_STEPS`` parser."""

import os

import pytest
import torch
from torch import nn

from diffnotes import distributed
from diffnotes.batches import Batches, shard
from diffnotes.checkpoints import CKPT_FORMAT, CheckpointError, check_plain, load_checkpoint, save_checkpoint
from diffnotes.train import STEPS_ENV, LossLog, TrainingDiverged, _Run, progress_bar, steps_cap, update_ema

# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"format": CKPT_FORMAT, "step": 1, "w": torch.ones(3)})

    def broken_save(obj, fh):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": CKPT_FORMAT, "step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))  # the old file, whole


def test_save_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "ckpt.pt"
    for step in (1, 2):
        save_checkpoint(path, {"format": CKPT_FORMAT, "step": step})
    assert load_checkpoint(path)["step"] == 2 and os.listdir(path.parent) == ["ckpt.pt"]


def test_load_refuses_foreign_and_pickled_objects(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"format": "other"}, path)
    with pytest.raises(CheckpointError, match="not a diffnotes checkpoint"):
        load_checkpoint(path)
    torch.save({"format": CKPT_FORMAT, "obj": nn.Linear(1, 1)}, path)  # needs unpickling code
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_check_plain_names_the_offending_place():
    check_plain({"a": [1, 2.0, "x", None, {"b": True}]})
    with pytest.raises(ValueError, match=r"config\['a'\]\[1\] must hold only"):
        check_plain({"a": [1, object()]})
    with pytest.raises(ValueError, match="keys must be strings"):
        check_plain({1: 2})


# ----------------------------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------------------------


def test_tensor_batches_follow_the_generator():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    a = Batches((x, y), 4, torch.Generator().manual_seed(1))
    b = Batches((x, y), 4, torch.Generator().manual_seed(1))
    (xa, ya), (xb, yb) = a.next(), b.next()
    assert torch.equal(xa, xb) and torch.equal(xa[:, 0].long(), ya) and xa.shape == (4, 1)
    assert Batches(x, 4, torch.Generator()).next()[1] is None


def test_callable_sampler_and_iterable_sources():
    gen = torch.Generator().manual_seed(0)
    x, labels = Batches(lambda n, g: torch.randn(n, 2, generator=g), 5, gen).next()
    assert x.shape == (5, 2) and labels is None

    class Sampler:
        def sample(self, n, generator):
            return torch.zeros(n, 3), torch.ones(n)

    x, labels = Batches(Sampler(), 2, gen).next()
    assert x.shape == (2, 3) and labels.shape == (2,)
    source = Batches([torch.full((2, 1), float(i)) for i in range(3)], 2, gen)  # three batches
    firsts = [float(source.next()[0][0, 0]) for _ in range(4)]
    assert firsts == [0.0, 1.0, 2.0, 0.0]  # a new epoch after the third batch


def test_bad_sources_are_one_clear_error():
    gen = torch.Generator()
    with pytest.raises(ValueError, match="data must be a tensor"):
        Batches(3.0, 2, gen)
    with pytest.raises(ValueError, match="differ in length: 4 vs 3"):
        Batches((torch.zeros(4, 1), torch.zeros(3)), 2, gen)
    with pytest.raises(ValueError, match="data is empty"):
        Batches(torch.zeros(0, 2), 2, gen)


def test_shard_cuts_equal_slices_that_tile_the_batch():
    x, y = torch.arange(8.0)[:, None], torch.arange(8)
    parts = [shard(x, y, rank, 2, 8) for rank in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(parts[1][1], torch.arange(4, 8))
    assert shard(x, None, 0, 1, 8)[0] is x and shard(x, None, 1, 4, 8)[1] is None


# ----------------------------------------------------------------------------------------------
# distributed (one process: everything is the identity)
# ----------------------------------------------------------------------------------------------


def test_one_process_is_rank_zero_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    device = distributed.resolve_device("cpu")
    assert device == torch.device("cpu") and distributed.init(device) == (0, 1, False)
    model = nn.Linear(2, 2)
    assert distributed.wrap(model, device, 1) is model
    values = torch.tensor([1.0, 2.0])
    assert distributed.mean_over_ranks(values, 1) is values
    distributed.finish(False)  # nothing to tear down


def test_rng_state_round_trip_restores_both_streams():
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(11)
    state = distributed.rng_state(gen, 1)
    expected = (torch.rand(3), torch.rand(3, generator=gen))
    torch.manual_seed(99)
    gen.manual_seed(99)
    distributed.set_rng_state(state, gen, 0, 1)
    assert torch.equal(torch.rand(3), expected[0]) and torch.equal(torch.rand(3, generator=gen), expected[1])


def test_rng_state_from_another_world_size_warns_and_keeps_the_stream():
    gen = torch.Generator().manual_seed(0)
    state = distributed.rng_state(gen, 1)
    state["torch_per_rank"] = [state["torch"]] * 2  # as if written by two processes
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="another number of processes"):
        distributed.set_rng_state(state, gen, 0, 1)
    assert torch.equal(torch.rand(2), expected)


# ----------------------------------------------------------------------------------------------
# loss log, EMA, progress, step cap
# ----------------------------------------------------------------------------------------------


def _run(last_good=None):
    model = nn.Linear(1, 1)
    run = _Run(model, model, torch.optim.SGD(model.parameters(), lr=0.1), torch.Generator(),
               Batches(torch.zeros(2, 1), 1, torch.Generator()), torch.device("cpu"), 0, 1, False)
    run.last_good, run.ckpt_path = last_good, None if last_good is None else "runs/x/ckpt.pt"
    return run


def test_loss_log_moves_pending_losses_to_the_history():
    run = _run()
    log = LossLog(run, steps=10)
    for v in (1.0, 2.0, 3.0):
        log.add(torch.tensor(v))
    assert run.losses == []  # nothing leaves the device before a flush
    log.flush(3)
    assert run.losses == [1.0, 2.0, 3.0] and log.pending == []
    log.flush(3)  # nothing pending: no change
    assert run.losses == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_loss_log_stops_at_the_first_bad_value_and_names_the_step(bad):
    run = _run(last_good=4)
    log = LossLog(run, steps=20)
    for v in (1.0, bad, 2.0):
        log.add(torch.tensor(v))
    with pytest.raises(TrainingDiverged, match=r"at step 6 of 20.*last good checkpoint \(step 4\)"):
        log.flush(7)  # the three losses are steps 5, 6, 7
    assert run.losses == []
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written"):
        fresh = LossLog(_run(), steps=3)
        fresh.add(torch.tensor(bad))
        fresh.flush(1)


def test_update_ema_interpolates_weights_and_copies_buffers():
    model, ema = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.fill_(1.0), ema.weight.fill_(0.0)
        model.running_mean.fill_(3.0)
    update_ema(ema, model, decay=0.75)
    assert torch.allclose(ema.weight, torch.full((2,), 0.25)) and torch.equal(ema.running_mean, model.running_mean)


def test_progress_bar_only_on_rank_zero_and_when_asked():
    assert progress_bar(10, 0, False, 0).disable
    assert progress_bar(10, 0, True, 1).disable
    bar = progress_bar(10, 4, True, 0)
    assert not bar.disable and bar.n == 4
    bar.close()


@pytest.mark.parametrize("raw, cap", [(None, None), ("", None), ("  ", None), ("0", 0), (" 25 ", 25)])
def test_steps_cap_reads_the_variable(raw, cap):
    assert steps_cap({} if raw is None else {STEPS_ENV: raw}) == cap


@pytest.mark.parametrize("raw", ["-1", "3.0", "x", "1e2"])
def test_steps_cap_refuses_anything_else(raw):
    with pytest.raises(ValueError, match=rf"^{STEPS_ENV} must be an integer >= 0 \(0 disables training\), got"):
        steps_cap({STEPS_ENV: raw})
