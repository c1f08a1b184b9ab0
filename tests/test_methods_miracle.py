"""MIRACLE on logistic regression (diffnotes.methods.miracle): blocks, KL budget, coding."""

import torch

from diffnotes.data.images import load_digits
from diffnotes.methods import miracle as M


def _digits(split):
    x, y = load_digits(split)
    return x.reshape(len(x), -1), y


def test_block_split_is_a_shared_partition():
    blocks = M.block_split(650, 40, seed=3)
    assert len(blocks) == 40
    assert torch.equal(torch.sort(torch.cat(blocks)).values, torch.arange(650))
    again = M.block_split(650, 40, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(blocks, again))


def test_trained_and_coded_weights_classify_and_cost_blocks_times_c_loc(monkeypatch):
    monkeypatch.delenv("DIFFNOTES_TRAIN_STEPS", raising=False)
    torch.set_num_threads(1)
    x, y = _digits("train")
    xt, yt = _digits("eval")
    q, blocks, beta = M.train_miracle(x, y, n_blocks=40, c_loc_bits=10, steps=800, seed=0)
    kl = M.block_kl_bits(q, blocks).detach()
    assert float(kl.mean()) < 12  # the per-block penalties hold the KL near C_loc = 10 bits
    coded = M.code_weights(q, blocks, x, y, beta, c_loc_bits=10, seed=0, intermediate_steps=5)
    assert coded.bits == 40 * 10 + 32 and all(0 <= i < 2**10 for i in coded.indices)
    assert M.accuracy(coded.weights, xt, yt) > 0.7
    broken = M.code_weights(q, blocks, x, y, beta, c_loc_bits=10, seed=0, method="prior")
    assert M.accuracy(broken.weights, xt, yt) < 0.5  # prior samples carry nothing learned


def test_untrained_q_codes_to_a_useless_classifier(monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    x, y = _digits("train")
    xt, yt = _digits("eval")
    q, blocks, beta = M.train_miracle(x, y, n_blocks=30, c_loc_bits=10, steps=400, seed=0)
    coded = M.code_weights(q, blocks, x, y, beta, c_loc_bits=10, seed=0, intermediate_steps=10)
    assert M.accuracy(coded.weights, xt, yt) < 0.5  # the updates between blocks are capped too
