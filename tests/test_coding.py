"""Channel simulation (diffnotes.coding): round trips, exactness, message lengths, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from diffnotes import chain, coding

MU_Q = torch.tensor([0.8, -0.4, 0.3])
MU_P = torch.zeros(3)


def test_decode_reads_back_the_encoded_sample_for_every_method_and_block_split():
    for method in coding.METHODS:
        for block_dims in (None, 1, 2):
            coded = coding.simulate_gaussian(MU_Q, 0.4, MU_P, 1.0, 11, method=method,
                                             block_dims=block_dims)
            index, bits = coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, 11, method=method,
                                                 block_dims=block_dims)
            assert index == coded.index and bits == coded.bits
            back = coding.decode_gaussian(index, MU_P, 1.0, 11, block_dims=block_dims)
            assert torch.equal(back, coded.sample)
            assert len(index) == (1 if block_dims is None else math.ceil(3 / block_dims))


def test_same_seed_same_message_other_seed_other_sample():
    a = coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, 3)
    assert a == coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, 3)
    x = coding.decode_gaussian(a[0], MU_P, 1.0, 3)
    y = coding.decode_gaussian(a[0], MU_P, 1.0, 4)  # a receiver with the wrong seed
    assert not torch.allclose(x, y)


def test_candidate_rows_do_not_depend_on_the_slice_that_asks():
    whole = coding.candidates(5, 0, 5000, 3)
    assert torch.equal(coding.candidates(5, 4093, 10, 3), whole[4093:4103])
    assert torch.equal(coding.candidates(5, 17, 1, 3)[0], whole[17])
    assert not torch.equal(coding.candidates(5, 0, 10, 3, block=1), whole[:10])


def test_kl_bits_is_the_chains_gaussian_kl_in_bits_and_matches_monte_carlo():
    sq, sp = torch.tensor([0.4, 0.5, 0.9]), torch.tensor(1.3)
    kl = coding.kl_bits(MU_Q, sq, MU_P, sp)
    ref = float(chain.gaussian_kl(MU_Q.double(), sq.double()**2, MU_P.double(),
                                  sp.double()**2).sum()) / math.log(2)
    assert kl == pytest.approx(ref, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    z = MU_Q.double() + sq.double() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    lw = coding.gaussian_log_ratio(z, MU_Q.double(), sq.double(), MU_P.double(),
                                   sp.double().expand(3))
    assert float(lw.mean()) / math.log(2) == pytest.approx(kl, abs=5 * float(lw.std())
                                                           / math.log(2) / 447)


def test_log_ratio_max_is_the_sup_over_a_fine_grid():
    mq, sq, mp, sp = (torch.tensor([v], dtype=torch.float64) for v in (0.7, 0.3, -0.2, 1.1))
    z = torch.linspace(-5, 5, 200_001, dtype=torch.float64)[:, None]
    grid = float(coding.gaussian_log_ratio(z, mq, sq, mp, sp).max())
    assert coding.gaussian_log_ratio_max(mq, sq, mp, sp) == pytest.approx(grid, abs=1e-8)
    assert coding.gaussian_log_ratio_max(mq, sp, mp, sp) == math.inf  # equal widths: no bound


def test_elias_delta_code_words_lengths_and_prefix_freedom():
    known = {1: "1", 2: "0100", 3: "0101", 4: "01100", 17: "001010001"}
    for n, word in known.items():
        assert coding.elias_delta_encode(n) == word
        assert coding.elias_delta_bits(n) == len(word)
    words = [coding.elias_delta_encode(n) for n in range(1, 600)]
    stream = "".join(words)
    for n in range(1, 600):
        got, stream = coding.elias_delta_decode(stream)
        assert got == n
    assert all(not b.startswith(a) for a in words[:60] for b in words[:60] if a != b)
    for n in (1, 10, 1000, 10**6):  # the bound the Harsha chapter uses
        big_l = math.log2(n)
        assert coding.elias_delta_bits(n) <= big_l + 2 * math.log2(big_l + 1) + 1


def _one_d_draws(method, n, **options):
    mq, sq, mp, sp = torch.tensor([1.2]), 0.35, torch.tensor([0.0]), 1.0
    return np.array([float(coding.simulate_gaussian(mq, sq, mp, sp, s, method=method,
                                                    **options).sample[0])
                     for s in range(n)])


def test_pfr_sample_is_exactly_q():
    draws = _one_d_draws("pfr", 1500)
    assert stats.kstest(draws, stats.norm(1.2, 0.35).cdf).pvalue > 1e-3


def test_mrc_bias_falls_with_extra_bits_and_the_prior_coder_is_rejected():
    target = stats.norm(1.2, 0.35).cdf
    few = _one_d_draws("mrc", 1500, extra_bits=-3.0)  # 2^0 = one candidate: a prior sample
    many = _one_d_draws("mrc", 1500, extra_bits=6.0)
    broken = _one_d_draws("prior", 1500, extra_bits=6.0)
    assert stats.kstest(many, target).pvalue > 1e-3
    assert stats.kstest(few, target).pvalue < 1e-6
    assert stats.kstest(broken, target).pvalue < 1e-6
    assert stats.kstest(broken, stats.norm(0, 1).cdf).pvalue > 1e-3


def test_pfr_message_length_is_near_the_kl_and_mrc_pays_ceil_kl_plus_t():
    g = torch.Generator().manual_seed(1)
    mu_q = torch.randn(6, generator=g) * 1.5
    kl = coding.kl_bits(mu_q, 0.5, torch.zeros(6), 1.0)
    bits = [coding.encode_gaussian(mu_q, 0.5, torch.zeros(6), 1.0, s)[1] for s in range(150)]
    mean = float(np.mean(bits))
    assert kl < 14  # a setting where log terms are small next to KL
    assert mean <= kl + 2 * math.log2(kl + 1) + 2  # Harsha et al.'s bound with a small O(1)
    assert mean >= kl - 2  # cannot beat the KL by much (it is the expected log ratio)
    index, mrc_bits = coding.encode_gaussian(mu_q, 0.5, torch.zeros(6), 1.0, 0,
                                             method="mrc", log2_candidates=12)
    assert mrc_bits == 12 and 0 <= index[0] < 2**12


def test_pfr_without_a_bound_searches_2_to_the_kl_plus_t_and_says_it_is_not_exact():
    coded = coding.simulate_gaussian(MU_Q, 1.0, MU_P, 1.0, 2, method="pfr", extra_bits=3.0)
    assert not coded.exact
    assert coded.searched == 2 ** math.ceil(coded.kl_bits + 3.0)
    exact = coding.simulate_gaussian(MU_Q, 0.5, MU_P, 1.0, 2, method="pfr")
    assert exact.exact


def test_greedy_rejection_sampling_is_exact_and_costs_about_the_kl():
    q = np.array([0.6, 0.25, 0.1, 0.05] + [0.0] * 12)
    p = np.full(16, 1 / 16)
    table = coding.grs_acceptance(q, p)
    out = [coding.grs_encode(q, p, s, table) for s in range(3000)]
    counts = np.bincount([x for _, x in out], minlength=16)
    assert counts[4:].sum() == 0
    assert stats.chisquare(counts[:4], 3000 * q[:4]).pvalue > 1e-3
    for s in range(20):
        index, x = out[s]
        assert coding.grs_decode(index, p, s) == x
    kl = coding.kl_bits_discrete(q, p)
    mean_log = np.mean([math.log2(i + 1) for i, _ in out])
    assert mean_log <= kl + 2 * math.log2(kl + 1) + 2


def test_plain_rejection_sampling_accepts_with_probability_one_over_m():
    q = np.array([0.85, 0.05, 0.05, 0.05])
    p = np.full(4, 0.25)
    m = 0.85 / 0.25
    steps = [coding.rejection_encode(q, p, s)[0] + 1 for s in range(3000)]
    assert np.mean(steps) == pytest.approx(m, rel=0.08)  # geometric with mean M
    xs = np.bincount([coding.rejection_encode(q, p, s)[1] for s in range(3000)], minlength=4)
    assert stats.chisquare(xs, 3000 * q).pvalue > 1e-3


@pytest.mark.parametrize("call, message", [
    (lambda: coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, 0, method="magic"), "valid: mrc"),
    (lambda: coding.encode_gaussian(MU_Q, 0.0, MU_P, 1.0, 0), "sigma_q must be"),
    (lambda: coding.encode_gaussian(MU_Q, 0.4, torch.zeros(4), 1.0, 0), "must match"),
    (lambda: coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, -1), "non-negative int"),
    (lambda: coding.encode_gaussian(MU_Q, 0.4, MU_P, 1.0, 0, block_dims=0), "block_dims"),
    (lambda: coding.encode_gaussian(MU_Q * 40, 0.01, MU_P, 1.0, 0, method="mrc"),
     "use a smaller block_dims"),
    (lambda: coding.encode_gaussian(MU_Q * 40, 0.01, MU_P, 1.0, 0, method="pfr"),
     "use a smaller block_dims"),
    (lambda: coding.decode_gaussian((1, 2), MU_P, 1.0, 0), "block indices"),
    (lambda: coding.elias_delta_bits(0), "positive integers"),
    (lambda: coding.kl_bits_discrete([1.0, 0.0], [0.0, 1.0]), "infinite"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mrc_total_variation_formula_matches_the_coder_and_its_limits():
    mq, sq = torch.tensor([1.2], dtype=torch.float64), torch.tensor([0.35], dtype=torch.float64)
    mp, sp = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    z_q = mq + sq * torch.randn(20_000, 1, generator=g, dtype=torch.float64)
    lw_q = coding.gaussian_log_ratio(z_q, mq, sq, mp, sp)

    def tv(n):
        z = torch.randn(400, n - 1, 1, generator=g, dtype=torch.float64)
        return coding.mrc_total_variation(lw_q, coding.gaussian_log_ratio(z, mq, sq, mp, sp))

    # N = 1 sends a prior sample: TV(p, q), integrated on a grid
    grid = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
    dens = [torch.exp(-0.5 * ((grid - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
            for m, s in ((1.2, 0.35), (0.0, 1.0))]
    tv_pq = float(0.5 * (dens[0] - dens[1]).abs().sum() * (grid[1] - grid[0]))
    assert tv(1) == pytest.approx(tv_pq, abs=0.01)
    assert tv(4) < tv(1) and tv(256) < 0.03
    # the law the formula predicts is the coder's: mean log w of coded samples at N = 4
    coded = [coding.simulate_gaussian(mq, sq, mp, sp, s, method="mrc", log2_candidates=2)
             for s in range(1500)]
    lw_coded = coding.gaussian_log_ratio(torch.stack([c.sample for c in coded]), mq, sq, mp, sp)
    z = torch.randn(4000, 3, 1, generator=g, dtype=torch.float64)
    log_rest = torch.logsumexp(coding.gaussian_log_ratio(z, mq, sq, mp, sp), 1)
    factor = (4 / (lw_q.exp()[:, None] + log_rest.exp()[None, :])).mean(1)
    predicted = float((factor * lw_q).mean())
    assert float(lw_coded.mean()) == pytest.approx(predicted, abs=4 * float(lw_coded.std()) / 38)
    assert coding.mrc_tv_bound(0.0, 0.5) == 1.0 and coding.mrc_tv_bound(200.0, 0.0) < 1e-10


def test_discrete_prior_encode_is_a_sample_of_p_not_q():
    q, p = np.array([0.9, 0.1, 0.0, 0.0]), np.full(4, 0.25)
    xs = np.bincount([coding.prior_encode(q, p, s)[1] for s in range(2000)], minlength=4)
    assert stats.chisquare(xs, 2000 * p).pvalue > 1e-3


def test_coding_proofs_fail_when_their_statement_is_false():
    from diffnotes.theory.proofs import coding_proofs as C

    assert C.mrc_output_law_check().ok and not C.mrc_output_law_check(factor=2).ok
    assert C.rejection_check().ok and not C.rejection_check(m_power=2).ok
    assert C.gaussian_ratio_sup_check().ok and not C.gaussian_ratio_sup_check(shift=1).ok
    assert C.pfr_length_check().ok
    assert not C.pfr_length_check(jensen_sign=-1).ok  # the length bound is concave, not convex
    assert not C.pfr_length_check(slack=2).ok  # the steps give +4, not +2
    assert not C.pfr_length_check(slack=3).ok  # nor +3: the gap is 0 at KL = 0


def test_pfr_length_proof_checks_the_elias_delta_length_bound_itself():
    """The proof now proves len(k) <= log2 k + 2 log2(log2 k + 1) + 1 for every k; a coefficient 1
    on the logarithm (Li & El Gamal's shape, which holds for an optimal code, not for Elias delta)
    or a missing +1 is a false statement about this code, and the check must reject it."""
    from diffnotes.theory.proofs import coding_proofs as C

    for wrong in (dict(log_coeff=1), dict(offset=0)):
        result = C.pfr_length_check(**wrong)
        assert not result.ok and "Elias delta length above the bound" in result.residual
    # the written-out code words in the proof agree with the engine's code
    for k in range(1, 3000):
        word = C._elias_delta_word(k)
        assert len(word) == coding.elias_delta_bits(k) and word == coding.elias_delta_encode(k)
        assert coding.elias_delta_decode(word) == (k, "")


def test_pfr_stops_at_2_to_the_kl_plus_t_when_the_certificate_is_out_of_reach():
    # a diffusion-like step: q barely narrower than p, means far apart in units of the gap
    mu_p = torch.zeros(4, dtype=torch.float64)
    mu_q = torch.full((4,), 0.15, dtype=torch.float64)
    sq, sp = 0.1 * math.sqrt(0.9), 0.1
    assert coding.gaussian_log_ratio_max(mu_q, torch.full((4,), sq, dtype=torch.float64),
                                         mu_p, torch.full((4,), sp, dtype=torch.float64)) > 22 * math.log(2)
    coded = coding.simulate_gaussian(mu_q, sq, mu_p, sp, 0, method="pfr", extra_bits=2.0)
    assert not coded.exact
    assert coded.searched <= 2 ** math.ceil(coded.kl_bits + 2.0)


def test_pfr_caps_its_search_at_the_limit_when_kl_plus_t_passes_it():
    mu_q = torch.tensor([3.0], dtype=torch.float64)  # equal widths: KL 6.5 bits, w unbounded
    coded = coding.simulate_gaussian(mu_q, 1.0, torch.zeros(1), 1.0, 0, method="pfr",
                                     extra_bits=4.0, max_log2_candidates=8)
    assert 6 < coded.kl_bits < 7 and not coded.exact and coded.searched == 2**8
