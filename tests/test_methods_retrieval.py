"""Retrieval-augmented diffusion (``diffnotes.methods.retrieval``), the shared embedding-conditioned
denoiser (``diffnotes.methods.embedding``) and the proof ``retrieval_posterior``."""

import pytest
import sympy
import torch

from diffnotes.methods.embedding import conditioned_loss, embedding_denoiser, sample_conditioned
from diffnotes.methods.edm import EDMLoss
from diffnotes.methods.retrieval import (Database, PCAEmbedding, RetrievalBatches,
                                         label_distribution, sample_from_database,
                                         total_variation)
from diffnotes.theory.proofs.embedding_proofs import retrieval_posterior_check
from diffnotes.train import fit


def _points():
    return torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])


def test_neighbours_are_nearest_first_and_exclude_self():
    db = Database(_points(), torch.tensor([0, 0, 1, 1]))
    assert db.neighbours(torch.tensor([[0.9, 0.0]]), 2).tolist() == [[1, 0]]
    own = db.neighbours(db.embeddings, 1, exclude_self=True)
    assert own[:, 0].tolist() == [1, 0, 0, 2]
    cond = db.condition(torch.tensor([[0.0, 0.1]]), 2)
    assert torch.allclose(cond, torch.tensor([[0.5, 0.0]]))


def _plane_images(n, generator):
    # 3x3 "images" that vary mostly along two pixel directions, little along the others
    big = torch.randn(n, 2, generator=generator) * torch.tensor([3.0, 2.0])
    small = 0.01 * torch.randn(n, 7, generator=generator)
    return torch.cat([big, small], 1).reshape(n, 1, 3, 3) + 5.0


def test_pca_embedding_keeps_the_leading_directions_of_the_training_images():
    x = _plane_images(500, torch.Generator().manual_seed(0))
    emb = PCAEmbedding(x, variance=0.99)
    assert emb.dim == 2 and emb.explained > 0.99
    z = emb(x)
    assert z.shape == (500, 2)
    assert abs(float(z.pow(2).mean()) - 1.0) < 1e-5  # one scale: mean square 1 on training
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-5)  # centred on training mean
    # distances in the embedding are pixel distances within the plane, over one scale
    a, b = x[:1], x[1:2]
    d_emb = float((emb(a) - emb(b)).norm()) * emb.scale
    d_pix = float((a - b).reshape(-1)[:2].norm())  # the two large pixel directions
    assert abs(d_emb - d_pix) < 0.05
    # fitted on the training images alone: new images are embedded, not refitted
    new = _plane_images(10, torch.Generator().manual_seed(1))
    assert torch.equal(emb(new), PCAEmbedding(x, variance=0.99)(new))
    assert PCAEmbedding(x, dim=5).dim == 5


def test_pca_embedding_retrieves_the_same_cluster():
    x, label = _two_clusters(200, torch.Generator().manual_seed(4))
    images = torch.cat([x, torch.zeros(200, 2)], 1).reshape(200, 1, 2, 2)
    emb = PCAEmbedding(images, dim=1)
    db = Database(emb(images), label)
    nb = db.neighbours(db.embeddings, 4, exclude_self=True)
    assert bool((label[nb] == label[:, None]).all())


def test_pca_embedding_bad_inputs_say_what_is_valid():
    x = _plane_images(20, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="exactly one of dim"):
        PCAEmbedding(x)
    with pytest.raises(ValueError, match="exactly one of dim"):
        PCAEmbedding(x, dim=2, variance=0.9)
    with pytest.raises(ValueError, match="variance must be a share"):
        PCAEmbedding(x, variance=1.0)
    with pytest.raises(ValueError, match=r"dim must be an integer in \[1, 8\]"):
        PCAEmbedding(x, dim=9)
    with pytest.raises(ValueError, match="images must be a batch"):
        PCAEmbedding(x[:1], dim=1)
    with pytest.raises(ValueError, match="fitted on images of shape"):
        PCAEmbedding(x, dim=2)(torch.zeros(3, 1, 2, 2))


def test_bad_inputs_say_what_is_valid():
    db = Database(_points())
    with pytest.raises(ValueError, match="k must be an integer in"):
        db.neighbours(db.embeddings, 4, exclude_self=True)
    with pytest.raises(ValueError, match="queries must have shape"):
        db.neighbours(torch.zeros(3, 5), 1)
    with pytest.raises(ValueError, match="embeddings must have shape"):
        Database(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="p and q must be 1-D"):
        total_variation(torch.ones(3) / 3, torch.ones(2) / 2)
    with pytest.raises(ValueError, match="labels must be"):
        label_distribution(torch.tensor([10]))
    with pytest.raises(ValueError, match="the condition must have shape"):
        sample_conditioned(lambda x, s, c: x, torch.zeros(3), (4,))


def test_label_distribution_and_total_variation():
    p = label_distribution(torch.tensor([0, 0, 1, 3]), num_classes=4)
    assert p.tolist() == [0.5, 0.25, 0.0, 0.25]
    assert total_variation(p, p) == 0.0
    assert total_variation(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == 1.0


def test_batches_hold_the_mean_of_other_images_neighbours():
    images = torch.arange(4.0).reshape(4, 1)
    db = Database(_points())
    batches = RetrievalBatches(images, db, ks=(2,))
    x, c = batches(16, torch.Generator().manual_seed(0))
    for xi, ci in zip(x, c):
        i = int(xi)
        want = db.embeddings[db.neighbours(db.embeddings[i:i + 1], 2, exclude_self=True)[0]]
        assert torch.allclose(ci, want.mean(0))
    x, c = RetrievalBatches(images, db, ks=(2,), retrieval=False)(5, torch.Generator())
    assert c.shape == (5, 2) and bool((c == 0).all())


def _two_clusters(n, generator):
    label = torch.randint(2, (n,), generator=generator)
    centre = torch.stack([label * 2.0 - 1.0, torch.zeros(n)], 1)
    return centre + 0.05 * torch.randn(n, 2, generator=generator), label


def test_retrieval_conditioned_model_follows_a_swapped_database():
    # two clusters at (-1, 0) and (1, 0); the embedding is the point itself
    torch.manual_seed(0)
    x, _ = _two_clusters(400, torch.Generator().manual_seed(1))
    db = Database(x)
    model = embedding_denoiser(2, 2, hidden=64, depth=2)
    res = fit(model, EDMLoss(), RetrievalBatches(x, db, ks=(1, 4)), 600, lr=2e-3,
              batch_size=128, device="cpu", progress=False, seed=0)
    right_only = Database(x[x[:, 0] > 0])
    g = torch.Generator().manual_seed(2)
    samples, _ = sample_from_database(res.model_ema, right_only, 200, 4, (2,), generator=g)
    assert (samples[:, 0] > 0).float().mean() > 0.9  # the swapped database decides the cluster
    # and the loss of fresh data is lower with its neighbours than with a zero condition
    x_new, _ = _two_clusters(300, torch.Generator().manual_seed(3))
    with_nb = conditioned_loss(res.model_ema, x_new, db.condition(x_new, 4), [0.3, 1.0, 3.0])
    without = conditioned_loss(res.model_ema, x_new, None, [0.3, 1.0, 3.0])
    assert with_nb.mean() < 0.5 * without.mean()


def test_untrained_denoiser_ignores_the_database():
    # the zero-initialised output layer makes an untrained D = c_skip x: no condition reaches it
    model = embedding_denoiser(2, 2, hidden=16, depth=1)
    x = torch.randn(5, 2)
    out_a = model(x, torch.full((5,), 1.0), torch.randn(5, 2))
    out_b = model(x, torch.full((5,), 1.0), torch.zeros(5, 2))
    assert torch.equal(out_a, out_b)


def test_retrieval_posterior_proof_and_its_false_variant():
    assert retrieval_posterior_check().ok
    assert not retrieval_posterior_check(slope_factor=2).ok


def test_retrieval_posterior_is_checked_for_symbolic_k_and_fails_without_a_shared_variance():
    # the strengthened proof sums over k neighbours with k a SymPy symbol; two false variants:
    # a wrong slope, and a second component with another variance (the neighbours' squares stay)
    assert retrieval_posterior_check(variance_ratio=1).ok
    assert not retrieval_posterior_check(variance_ratio=2).ok
    assert not retrieval_posterior_check(variance_ratio=sympy.Rational(1, 3)).ok
    assert not retrieval_posterior_check(slope_factor=sympy.Rational(1, 2)).ok


def _old_conditioned_loss(denoiser, x0, cond, sigmas, *, seed=0, sigma_data=0.5):
    # frozen reference: conditioned_loss as it was written before it called
    # metrics.denoising_error (issue 24)
    from diffnotes.methods.edm import edm_weight
    from diffnotes.parameterization import append_dims

    n = x0.shape[0]
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(n)
    with torch.no_grad():
        for sigma in sigmas:
            s = torch.full((n,), float(sigma))
            noise = torch.randn(x0.shape, generator=generator)
            denoised = denoiser(x0 + append_dims(s, x0) * noise, s, cond)
            total += edm_weight(s, sigma_data) * (denoised - x0).pow(2).reshape(n, -1).mean(dim=1)
    return total / len(sigmas)


def test_conditioned_loss_goes_through_the_one_metric_unchanged():
    torch.manual_seed(0)
    model = embedding_denoiser(64, 5, hidden=32, depth=2)
    with torch.no_grad():  # an output layer away from zero, so the condition matters
        for p in model.backbone.out.parameters():
            p.normal_(0, 0.1)
    x0 = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    cond = torch.randn(8, 5, generator=torch.Generator().manual_seed(2))
    for c in (cond, None):
        new = conditioned_loss(model, x0, c, [0.1, 1.0, 7.0], seed=3)
        assert torch.equal(new, _old_conditioned_loss(model, x0, c, [0.1, 1.0, 7.0], seed=3))
