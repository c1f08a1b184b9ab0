"""Image metrics a sceptic accepts: the digits split, the feature classifier, and known corruptions.

The corruption ladder is the proof that the metrics rank correctly: scored against the evaluation
half A at N = 300, real digits (half B) must beat lightly corrupted ones, which must beat heavily
corrupted ones, which must beat pure noise; dropping classes must cost recall and not precision;
a collapsed sampler must lose recall.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffnotes.data import digits_split_indices, load_digits
from diffnotes.metrics import (
    DigitsReport,
    digits_classify,
    digits_features,
    digits_report,
    frechet_distance,
    kernel_distance,
    precision_recall,
)

N = 300  # a realistic sample count for the notebooks


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    taps = torch.arange(-2, 3, dtype=images.dtype)
    kernel_1d = torch.exp(-taps**2 / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel = (kernel_1d[:, None] * kernel_1d[None, :])[None, None]
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), kernel)


# -- the split -----------------------------------------------------------------------------------
def test_digits_three_way_split_sizes_disjoint_stratified_and_fixed():
    sizes = {s: len(digits_split_indices(s)) for s in ("train", "classifier", "eval", "eval_a", "eval_b")}
    assert sizes == {"train": 790, "classifier": 359, "eval": 648, "eval_a": 324, "eval_b": 324}
    parts = [set(digits_split_indices(s)) for s in ("train", "classifier", "eval_a", "eval_b")]
    assert len(set().union(*parts)) == 1797 and sum(map(len, parts)) == 1797
    assert set(digits_split_indices("eval")) == parts[2] | parts[3]
    _, all_labels = load_digits("all")
    class_sizes = torch.bincount(all_labels, minlength=10).double()
    for split, fraction in (("eval_a", 0.18), ("eval_b", 0.18), ("classifier", 0.20)):
        _, labels = load_digits(split)
        counts = torch.bincount(labels, minlength=10).double()
        assert (counts - fraction * class_sizes).abs().max() <= 1.5, split  # stratified by class
    # fixed: the same indices on every call and machine (a frozen RandomState stream)
    assert digits_split_indices("eval_a")[:5].tolist() == digits_split_indices("eval_a")[:5].tolist()
    x_b, y_b = load_digits("eval_b")
    assert torch.equal(load_digits("all")[0][digits_split_indices("eval_b")], x_b)


def test_feature_classifier_trains_on_the_classifier_split_only(monkeypatch):
    import diffnotes.data as data
    from diffnotes import features

    asked = []
    real_load = data.load_digits

    def recording_load(split="train", *args, **kwargs):
        asked.append(split)
        return real_load(split, *args, **kwargs)

    monkeypatch.setattr(data, "load_digits", recording_load)
    model = features.train_digits_classifier(epochs=1)
    assert asked == ["classifier"]
    # the stored scale makes the features of that split mean-square 1
    x, _ = real_load("classifier")
    with torch.no_grad():
        assert model.features(x).pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)


def test_classifier_accuracy_on_real_labelled_digits():
    x_b, y_b = load_digits("eval_b")
    report = digits_report(x_b, y_b, resplit=False)
    assert report.class_accuracy >= 0.95  # measured 0.975 on the 324 digits of half B
    assert report.band.class_accuracy >= 0.95
    wrong = digits_report(x_b, (y_b + 1) % 10, resplit=False)
    assert wrong.class_accuracy < 0.05
    assert torch.equal(digits_classify(x_b[:3]), digits_classify(x_b[:3, 0]))  # (N, H, W) accepted


def test_summary_lines_name_each_metric_once_with_its_value():
    one = DigitsReport(fd=0.3123, kd=0.00421, kd_se=0.0003, precision=0.84, recall=0.79,
                       class_accuracy=0.9, n=300)
    two = DigitsReport(fd=0.3323, kd=0.00521, kd_se=0.0004, precision=0.82, recall=0.77,
                       class_accuracy=None, n=300)
    assert one.summary() == "KD x 1000 4.21, Fréchet 0.312, precision 0.84, recall 0.79"
    assert one.summary(("accuracy", "kd"), digits=2) == "accuracy 0.9, KD x 1000 4.2"
    seen = []
    line = DigitsReport.summarize([one, two], lambda v: seen.append(v) or f"<{len(v)}>")
    assert line == "KD x 1000 <2>, Fréchet <2>, precision <2>, recall <2>"
    assert seen == [pytest.approx([4.21, 5.21]), [0.3123, 0.3323], [0.84, 0.82], [0.79, 0.77]]
    with pytest.raises(ValueError, match="unknown summary metrics \\['fid'\\]; valid: kd, fd"):
        one.summary(["fid"])
    with pytest.raises(ValueError, match="no class_accuracy"):
        DigitsReport.summarize([one, two], str, ["accuracy"])
    with pytest.raises(ValueError, match="non-empty sequence of DigitsReport"):
        DigitsReport.summarize([], str)
    with pytest.raises(ValueError, match="digits must be a positive integer"):
        one.summary(digits=0)


# -- the kernel distance and precision/recall on known answers -----------------------------------
def test_kernel_distance_is_the_unbiased_cubic_kernel_mmd():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.5
    k = lambda x, y: (x @ y / 3 + 1) ** 3  # noqa: E731
    aa = np.mean([k(a[i], a[j]) for i in range(7) for j in range(7) if i != j])
    bb = np.mean([k(b[i], b[j]) for i in range(9) for j in range(9) if i != j])
    ab = np.mean([k(x, y) for x in a for y in b])
    value, se = kernel_distance(torch.from_numpy(a), b)
    assert value == pytest.approx(aa + bb - 2 * ab, rel=1e-12)
    assert se > 0
    with pytest.raises(ValueError, match="same feature dimension"):
        kernel_distance(a, b[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        kernel_distance(a, np.full((5, 3), np.nan))


def test_kernel_distance_standard_error_matches_the_spread_of_repeated_draws():
    # 300 repeated experiments: the estimate is centred on the true MMD^2 (0 for equal laws)
    # and the reported standard error matches the spread of the estimates.
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.4):
        draws = np.array([kernel_distance(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)) + shift)
                          for _ in range(300)])
        spread, reported = draws[:, 0].std(), np.sqrt((draws[:, 1] ** 2).mean())
        assert 0.9 * spread < reported < 1.3 * spread, (shift, spread, reported)
        if shift == 0.0:
            assert abs(draws[:, 0].mean()) < 3 * spread / math.sqrt(300)


def test_precision_recall_on_points_with_known_answers():
    # real: the integers 0..19 on a line (3rd neighbour at distance 3 from an interior point)
    real = torch.arange(20, dtype=torch.float64)[:, None]
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 100
    assert precision_recall(real, far) == (0.0, 0.0)
    # fakes covering only the left half (spacing 9/19, so 3rd-neighbour radius 27/19 = 1.42):
    # every fake is realistic; of the data, 0..9 and 10 (1 from the fake at 9) are covered
    left = torch.linspace(0, 9, 20, dtype=torch.float64)[:, None]
    assert precision_recall(real, left) == (1.0, 11 / 20)
    with pytest.raises(ValueError, match="k must be an integer"):
        precision_recall(real, left, k=20)


# -- the corruption ladder -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def half_b():
    return load_digits("eval_b")


@pytest.fixture(scope="module")
def ladder(half_b):
    x_b, _ = half_b

    def noised(sigma, seed):
        return (x_b + sigma * torch.randn(x_b.shape, generator=gen(seed))).clamp(-1, 1)

    sets = {
        "real (half B)": x_b,
        "noise 0.2": noised(0.2, 1),
        "blur 0.4": gaussian_blur(x_b, 0.4),
        "noise 1.0": noised(1.0, 2),
        "pure noise": torch.rand(x_b.shape, generator=gen(3)) * 2 - 1,
    }
    # the fixed halves: half B and its corruptions are scored against half A alone
    reports = {name: digits_report(images, n=N, resplit=False) for name, images in sets.items()}
    for name, r in reports.items():  # shown with pytest -s: the table of the final report
        print(f"{name:14s} FD {r.fd:7.3f}  KD {1e3 * r.kd:8.2f} ± {1e3 * r.kd_se:6.2f} (x1e-3)"
              f"  precision {r.precision:.3f}  recall {r.recall:.3f}")
    return reports


def test_real_band_is_the_real_half_against_the_reference(ladder, half_b):
    real = ladder["real (half B)"]
    assert real.n == real.band.n == N
    # at the full half size both sides use every image, so scoring half B itself reproduces the
    # band (only the standard error depends on the order in which the images are paired)
    whole = digits_report(half_b[0], resplit=False)
    assert whole.n == 324
    for metric in ("fd", "kd", "precision", "recall"):
        # (float32 features of a batch in another order agree to about 1e-7)
        assert getattr(whole, metric) == pytest.approx(getattr(whole.band, metric), rel=1e-5, abs=1e-8)
    assert whole.kd_se == pytest.approx(whole.band.kd_se, rel=0.2)


@pytest.mark.parametrize("metric", ["fd", "kd"])
def test_distances_order_real_light_heavy_noise(ladder, metric):
    value = {name: getattr(r, metric) for name, r in ladder.items()}
    for light in ("noise 0.2", "blur 0.4"):
        assert value["real (half B)"] < value[light] < value["noise 1.0"] < value["pure noise"], value
    if metric == "kd":  # light -> heavy -> noise: gaps of more than two standard errors
        # Real -> light is a gap of 22e-3 for noise 0.2 (35e-3 for blur 0.4) against
        # standard errors of 11e-3 each. As a paired comparison (the same digits with and
        # without noise) it is robust: 25 +- 3 (x1e-3) over 10 seeds, always positive. A model
        # judged against the band, a different set of images, needs a gap of two errors.
        se = {name: r.kd_se for name, r in ladder.items()}
        steps = [("noise 0.2", "noise 1.0"), ("blur 0.4", "noise 1.0"), ("noise 1.0", "pure noise")]
        for lower, higher in steps:
            assert value[higher] - value[lower] > 2 * max(se[lower], se[higher]), (lower, higher)


def test_dropping_half_the_classes_lowers_recall_not_precision():
    # 300 real digits of classes 0-4 only, from the models' split (real, unseen by the reference)
    x, y = load_digits("train")
    keep = torch.nonzero(y < 5).flatten()
    keep = keep[torch.randperm(keep.shape[0], generator=gen(0))[:N]]
    report = digits_report(x[keep], n=N)
    band = report.band
    assert report.recall < band.recall - 0.2  # measured 0.58 against 0.92
    # precision within three binomial standard errors of the band or above it (measured 0.95 vs 0.92)
    noise = 3 * math.sqrt(band.precision * (1 - band.precision) / N)
    assert report.precision > band.precision - noise


def test_a_collapsed_sampler_loses_recall(half_b):
    x_b, _ = half_b
    one = digits_report(x_b[:1].expand(N, -1, -1, -1).clone(), n=N, resplit=False)
    assert one.recall < 0.05 and one.band.recall > 0.8
    ten = digits_report(x_b[:10].repeat(N // 10, 1, 1, 1), n=N, resplit=False)  # ten images, 30 copies each
    assert ten.recall < 0.3 and ten.fd > 5 * ten.band.fd


# -- the report ----------------------------------------------------------------------------------
def test_digits_report_subsamples_both_sides_and_is_deterministic(half_b):
    x_b, _ = half_b
    small = digits_report(x_b[:50])
    assert small.n == small.band.n == 50
    assert digits_report(x_b[:50]).as_dict() == small.as_dict()
    assert digits_report(x_b[:50], seed=1).as_dict() != small.as_dict()
    assert digits_report(x_b, n=50).n == 50
    assert isinstance(small, DigitsReport) and small.class_accuracy is None
    table = small.table()
    assert "| metric (N = 50) | samples | real band |" in table and "recall" in table
    assert str(small) == table and set(small.as_dict()["band"]) == set(small.as_dict())
    # the report's Fréchet distance is the plain one on the same subsets' features
    assert 0 < small.fd and math.isfinite(small.fd)


def test_the_seed_resplits_the_evaluation_halves(monkeypatch):
    """resplit=True: the seed draws which half of the 648 evaluation digits is the reference;
    reference and band are disjoint halves of that set and differ between seeds."""
    import diffnotes.feature_metrics as fm

    a, ya = load_digits("eval_a")
    b, yb = load_digits("eval_b")
    seen = []
    real_metrics = fm._set_metrics

    def spy(ref, feats, accuracy):
        seen.append(ref)
        return real_metrics(ref, feats, accuracy)

    monkeypatch.setattr(fm, "_set_metrics", spy)
    x, _ = load_digits("train")
    pool = {tuple(img.flatten().tolist()) for img in torch.cat([a, b])}
    references = []
    for seed in (0, 1):
        report = digits_report(x[:N], seed=seed)
        assert report.n == report.band.n == N
        references.append(seen[-1])
    assert not torch.equal(references[0], references[1])
    fixed = [digits_report(x[:N], seed=s, resplit=False) for s in (0, 1)]
    # the fixed halves draw their N of 324 by the seed too, but always from half A
    assert fixed[0].band.fd != fixed[1].band.fd
    # which digits: under the re-split the reference and the band come from the whole pool
    gen_ = torch.Generator().manual_seed(3)
    order = torch.randperm(648, generator=gen_)
    both = torch.cat([a, b])
    ref_half, band_half = both[order[:324]], both[order[324:]]
    assert {tuple(i.flatten().tolist()) for i in torch.cat([ref_half, band_half])} == pool
    labels = torch.cat([ya, yb])[order[324:]]
    r = digits_report(band_half, labels, seed=3)  # the band's own half, scored as samples
    assert r.class_accuracy == pytest.approx(r.band.class_accuracy, abs=1e-12)
    assert r.fd == pytest.approx(r.band.fd, rel=1e-5)  # the same images on both sides
    with pytest.raises(ValueError, match="resplit must be True"):
        digits_report(x[:N], resplit="yes")


def test_digits_report_rejects_bad_input(half_b):
    x_b, y_b = half_b
    cases = [
        (x_b[:, 0], {}, r"shape \(N, 1, H, H\)"),
        (x_b[:9], {}, "need N >= 10"),
        (torch.where(torch.arange(64).reshape(1, 1, 8, 8) == 3, float("nan"), x_b[:20]), {}, "NaN"),
        (x_b[:20], {"n": 21}, r"n must be an integer in \[10, 20\]"),
        (x_b[:20], {"labels": y_b[:19]}, r"labels must be integer classes of shape \(20,\)"),
        ((x_b[:20] * 100).long(), {}, "floating-point"),
    ]
    for images, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            digits_report(images, **kwargs)


def test_features_are_the_metric_space(half_b):
    x_b, _ = half_b
    feats = digits_features(x_b)
    assert feats.shape == (324, 64)
    # the 16x16 and 32x32 digits map back to their 8x8 originals: the same features
    for size in (16, 32):
        upsampled, _ = load_digits("eval_b", size=size)
        assert torch.allclose(digits_features(upsampled), feats, atol=1e-4)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-9)
