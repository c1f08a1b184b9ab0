"""The papers' numeric constants, each written once and imported wherever it is used.

This module holds numbers only (no SymPy, no PyTorch), so that both layers can import it:
``diffnotes.theory.processes`` puts them into each process's ``defaults`` and the engine
(``precond``, ``sampling``, ``methods``) uses them as default arguments. Each line names the
paper and the place where the number is stated. ``tests/test_one_place.py`` fails when one of
the distinctive values below is typed again as a literal elsewhere in the package.
"""

from __future__ import annotations

# -- DDPM (Ho et al. 2020, Sec. 4): T = 1000 steps, beta linear from 1e-4 to 0.02 ---------------
DDPM_T = 1000
DDPM_BETA_1 = 1e-4
DDPM_BETA_T = 0.02

# -- Score SDE VP column (Song et al. 2021, App. C; EDM Table 1, column VP) ---------------------
VP_BETA_MIN = 0.1  # beta_min; beta_max = beta_min + beta_d = 20
VP_BETA_D = 19.9
VP_EPS_T = 1e-5  # training: t ~ U(epsilon_t, 1)
VP_EPS_S = 1e-3  # sampling: the time grid ends at epsilon_s
VP_M = 1000  # c_noise = (M - 1) sigma^{-1}(sigma)

# -- VE: Score SDE's own (Song et al. 2021, App. C) and EDM Table 1's column VE ------------------
SCORE_SDE_VE_SIGMA_MIN = 0.01
SCORE_SDE_VE_SIGMA_MAX = 50.0
VE_SIGMA_MIN = 0.02
VE_SIGMA_MAX = 100.0

# -- SMLD / NCSN (Song & Ermon 2019, Sec. 4): L = 10 levels from 1 down to 0.01 -----------------
NCSN_L = 10
NCSN_SIGMA_1 = 1.0
NCSN_SIGMA_L = 0.01
NCSN_EPSILON = 2e-5  # Algorithm 1's step size
NCSN_T = 100  # Langevin steps per level

# -- iDDPM (Nichol & Dhariwal 2021, eq. 17; EDM Table 1, column iDDPM + DDIM) -------------------
IDDPM_C1 = 0.001  # beta_t <= 1 - C1 = 0.999
IDDPM_C2 = 0.008  # the cosine schedule's offset s
IDDPM_M = 1000
IDDPM_J0 = 8
IDDPM_MAX_BETA = 1 - IDDPM_C1

# -- EDM (Karras et al. 2022, Table 1 and Sec. 5) -----------------------------------------------
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_RHO = 7
EDM_SIGMA_DATA = 0.5
EDM_P_MEAN = -1.2
EDM_P_STD = 1.2

# -- VDM (Kingma et al. 2021): the linear gamma(t)'s end points in the paper's code ------------
VDM_GAMMA_MIN = -13.3
VDM_GAMMA_MAX = 5.0

# -- Classifier-free guidance (Ho & Salimans 2022, Table 1: p_uncond in {0.1, 0.2, 0.5}) --------
CFG_P_UNCOND = 0.2  # the label dropout the book's digits networks train with

# -- CLIP (Radford et al. 2021, Sec. 2.5), as unCLIP's toy encoder pair uses it ------------------
CLIP_TEMPERATURE_INIT = 0.07  # the learned temperature starts here (logit scale 1 / 0.07)
CLIP_LOGIT_SCALE_MAX = 100.0  # and the logit scale is clipped at 100

# -- Gotta Go Fast (Jolicoeur-Martineau et al. 2021): the adaptive solver's step-size controller
GGF_THETA = 0.9  # safety factor theta in h <- theta h E^(-r)
GGF_EXPONENT = 0.9  # the exponent r
GGF_H_INIT = 0.01  # the first step size tried, in units of t
