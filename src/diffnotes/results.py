"""Measured claims with error bars, their verdicts, and the rules that compute them.

A notebook measures each claim over several seeds and builds a :class:`Claim` with one of the
decision rules below; the rule, not the notebook, computes the verdict. Every interval is a
**Student-t** interval with the seeds' degrees of freedom (``n - 1``): with three seeds the 95%
two-sided critical value is 4.30, not 2 (:func:`t_crit`).

``compare(a, b)``
    Two arms measured with the same seeds. The per-seed differences ``a_i - b_i`` give a mean
    difference and its 95% t-interval. "a is better than b" **holds** when the interval lies on
    the claim's side of zero, **does not hold** when it lies on the other side, and is
    **inconclusive** otherwise (the seeds cannot tell the arms apart -- which is *not* evidence
    that they are the same).
``threshold(values, bound)``
    One arm against a fixed number: the same rule with ``b`` the constant.
``noninferior(a, b, margin)``
    "a is as good as b or better": the one-sided 95% bound of how much worse ``a`` is (the upper
    end of the 90% two-sided t-interval, as in two one-sided tests) must lie below the margin
    declared with the claim. **holds** then; **does not hold** when even the other end lies
    beyond the margin; **inconclusive** otherwise.
``equivalent(a, b, margin)``
    "a and b are the same": two one-sided tests (TOST) -- the 90% t-interval of the difference
    inside ``[-margin, margin]`` gives **equivalent**, an interval entirely outside it gives
    **different**, anything else is **inconclusive**.
``ratio(num, den, paper_ratio, tolerance)``
    A paper's "about k times": the per-seed ratios' 95% t-interval is compared with the band
    ``[k / tolerance, k * tolerance]`` declared with the claim: inside it **holds**, disjoint
    from it **does not hold**, overlapping its edge **inconclusive**. (The earlier rule, "k
    inside mean ± 2 se", rewarded noisy measurements and failed precise ones.)
``curve(xs, a, b)``
    A claim about a curve: one of the rules above at every point; the verdict names the points
    ("holds" only when it holds at all of them, "mixed" when the points disagree).

A claim needs at least :data:`MIN_SEEDS` seeds to be judged. Under the ``quick`` profile (CI) a
notebook may use fewer, and the verdict is then "not judged at quick"; under ``full`` or ``gpu``
fewer seeds is an error.

A notebook calls :func:`record` **after** its checks (asserts). Outside ``quick`` the record is
written to ``notebooks/results/<key>.json`` (``gpu`` runs: ``notebooks/results/gpu/<key>.json``, a
separate set); ``quick`` runs write under ``_build/results/`` so that a test run never rewrites
the committed numbers. ``record`` prints a digest of the claims; a test compares that digest in
the notebook's stored output with the committed JSON, so a record cannot drift from the outputs
the site shows. Records are the measurements; the verdicts on the results page are recomputed
from their per-seed values under the current rules and each claim's declaration
(:mod:`diffnotes.claims`), so a change of rule re-judges every stored claim and the verdict a
record was written with stays visible beside it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .profiles import get_profile

RESULTS_DIR = Path("notebooks") / "results"
QUICK_DIR = Path("_build") / "results"
GPU_DIR = RESULTS_DIR / "gpu"  # the gpu profile's own set: it never overwrites the full records
CONTROL_ENV = "DIFFNOTES_CONTROL"
CONTROL_SUBDIR = "untrained"  # beside each profile's records: the same lab, training disabled

MIN_SEEDS = 3
"""Fewest seeds a verdict may rest on."""

LEVEL = 0.95
"""Coverage of every two-sided interval (equivalence and non-inferiority use 1 - 2(1 - LEVEL)
two-sided, i.e. one-sided tests at 1 - LEVEL each)."""

HOLDS, FAILS, INCONCLUSIVE, MIXED, UNJUDGED = (
    "holds", "does not hold", "inconclusive", "mixed", "not judged at quick",
)
EQUIVALENT, DIFFERENT = "equivalent", "different"
NOISE = "within noise"
"""The name the earlier ±2 se rule gave to :data:`INCONCLUSIVE`; kept to read old records."""
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, MIXED, UNJUDGED, EQUIVALENT, DIFFERENT, NOISE)


def t_crit(n: int, level: float = LEVEL) -> float:
    """Two-sided Student-t critical value for ``n`` paired values (``n - 1`` degrees of
    freedom): 4.30 for three seeds, 2.78 for five at 95%."""
    if n < 2:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and the ``level`` t-interval ``(mean, low, high)`` of ``values`` (nan ends for one
    value)."""
    mean, se = mean_se(values)
    half = t_crit(len(values), level) * se if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


def fmt_interval(values: Sequence[float], digits: int = 3, level: float = LEVEL) -> str:
    """``0.719 ± 0.009`` with the t-interval's half width (just the value for one seed)."""
    mean, low, high = t_interval(values, level)
    if math.isnan(low):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {(high - low) / 2:.2g}"


def seeds(profile=None, *, quick: int = 1, full: int = MIN_SEEDS) -> tuple[int, ...]:
    """The seeds a notebook runs each measurement with: ``full`` ≥ :data:`MIN_SEEDS`."""
    profile = profile or get_profile()
    n = profile.pick(quick=quick, full=full)
    if not profile.is_quick and n < MIN_SEEDS:
        raise ValueError(f"seeds: full={n} is below MIN_SEEDS={MIN_SEEDS}")
    return tuple(range(n))


def mean(values: Sequence[float]) -> float:
    """The plain average of per-seed values (what the notebooks plot and print)."""
    values = list(values)
    if not values:
        raise ValueError("mean of no values: give at least one")
    return sum(values) / len(values)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (``nan`` error for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_se: no values")
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return mean, math.sqrt(var / n)


def fmt_mean_se(values: Sequence[float], digits: int = 3) -> str:
    """``0.719 ± 0.003`` (or just the value for a single seed)."""
    mean, se = mean_se(values)
    if math.isnan(se):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {se:.2g}"


@dataclass
class Claim:
    """One reproduced claim: the paper's statement, what was measured over which seeds, the
    decision rule in words, and the verdict that rule computed."""

    claim: str  # the paper's claim in a few words, e.g. "Heun beats Euler at equal NFE"
    metric: str  # what was measured, e.g. "sliced W2 at 35 NFE (Heun / Euler)"
    values: dict[str, list[float]]  # per arm, one value per seed
    verdict: str
    rule: str  # the decision rule, e.g. "Heun - Euler < -2 se over 3 seeds"
    measured: str  # display: "0.719 ± 0.003 vs 0.725 ± 0.002"
    paper: str = ""  # the paper's number and its table, or "qualitative (Sec. 3)"
    points: list[dict] = field(default_factory=list)  # per-point verdicts of a curve

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")


def _as_list(name: str, values) -> list[float]:
    try:
        vals = [float(v) for v in values]
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of numbers, got {values!r}") from None
    if not vals:
        raise ValueError(f"{name}: no values")
    if any(math.isnan(v) for v in vals) and not is_control():
        # an untrained control may leave a quantity undefined (the loss of a run with no
        # steps): it is stored as NaN and judged inconclusive -- it earns nothing
        raise ValueError(f"{name}: contains NaN ({vals})")
    return vals


def _enough(n: int, what: str) -> bool:
    """False when too few seeds under quick; an error under full/gpu."""
    if n >= MIN_SEEDS:
        return True
    if get_profile().is_quick:
        return False
    raise ValueError(f"{what}: {n} seed(s) under the full profile; at least {MIN_SEEDS} needed")


def _direction(better: str) -> float:
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}; valid: 'lower', 'higher'")
    return 1.0 if better == "higher" else -1.0


def judge_better(diffs: Sequence[float], better: str) -> str:
    """Superiority: the 95% t-interval of the paired differences against zero."""
    sign = _direction(better)
    _, low, high = t_interval([sign * d for d in diffs])  # positive = the claim's direction
    if low > 0:
        return HOLDS
    if high < 0:
        return FAILS
    return INCONCLUSIVE


def _margin(margin) -> float:
    try:
        m = float(margin)
    except (TypeError, ValueError):
        m = math.nan
    if not m > 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    return m


def judge_noninferior(diffs: Sequence[float], better: str, margin: float) -> str:
    """Non-inferiority with ``margin`` (in the metric's units): how much worse ``a`` is, bounded
    by the 90% two-sided t-interval (a one-sided test at 5%)."""
    margin = _margin(margin)
    sign = _direction(better)
    _, low, high = t_interval([-sign * d for d in diffs], 2 * LEVEL - 1)  # positive = worse
    if high < margin:
        return HOLDS
    if low > margin:
        return FAILS
    return INCONCLUSIVE


def judge_equivalent(diffs: Sequence[float], margin: float) -> str:
    """Two one-sided tests: the 90% t-interval of the differences inside ``[-margin, margin]``."""
    margin = _margin(margin)
    _, low, high = t_interval(diffs, 2 * LEVEL - 1)
    if -margin < low and high < margin:
        return EQUIVALENT
    if low > margin or high < -margin:
        return DIFFERENT
    return INCONCLUSIVE


def judge_ratio(ratios: Sequence[float], paper_ratio: float, tolerance: float) -> str:
    """"About k times": the 95% t-interval of the ratios against ``[k / tol, k * tol]``."""
    if not float(tolerance) > 1:
        raise ValueError(f"tolerance must be a factor above 1, got {tolerance!r}")
    _, low, high = t_interval(ratios)
    lo_band, hi_band = paper_ratio / tolerance, paper_ratio * tolerance
    if lo_band <= low and high <= hi_band:
        return HOLDS
    if high < lo_band or low > hi_band:
        return FAILS
    return INCONCLUSIVE


TESTS = ("better", "noninferior", "equivalent")


def judge_pair(a: Sequence[float], b: Sequence[float], *, test: str = "better",
               better: str = "lower", margin: float | None = None) -> str:
    """The verdict for two paired arms under ``test`` (one of :data:`TESTS`)."""
    diffs = [x - y for x, y in zip(a, b)]
    if test == "better":
        return judge_better(diffs, better)
    if test == "noninferior":
        return judge_noninferior(diffs, better, margin)
    if test == "equivalent":
        return judge_equivalent(diffs, margin)
    raise ValueError(f"test={test!r}; valid: {', '.join(TESTS)}")


def _paired(a: list[float], b: list[float], claim: str) -> bool:
    if len(a) != len(b):
        raise ValueError(f"{claim!r}: arms have {len(a)} and {len(b)} seeds; pair them by seed")
    return _enough(len(a), claim)


def rule_words(a: str, b: str, n: int, test: str = "better", better: str = "lower",
               margin=None, where: str = "") -> str:
    """The decision rule in words, as the results page prints it."""
    op = "<" if better == "lower" else ">"
    if test == "better":
        return f"95% t-interval of {a} − {b} {op} 0{where} over {n} seeds"
    if test == "noninferior":
        return (f"{a} worse than {b} by less than {float(margin):g}: one-sided 95% t-bound"
                f"{where} over {n} seeds")
    return f"90% t-interval of {a} − {b} inside ±{float(margin):g} (TOST){where} over {n} seeds"


def compare(claim: str, metric: str, a, b, *, names=("a", "b"), better: str = "lower",
            paper: str = "", test: str = "better", margin: float | None = None) -> Claim:
    """Claim "arm ``a`` is better than arm ``b``" (``better``: "lower" or "higher" is better),
    judged on per-seed paired differences; ``test="noninferior"`` or ``"equivalent"`` with a
    declared ``margin`` for claims of "as good as" or "the same"."""
    a, b = _as_list(names[0], a), _as_list(names[1], b)
    verdict = (judge_pair(a, b, test=test, better=better, margin=margin)
               if _paired(a, b, claim) else UNJUDGED)
    rule = rule_words(names[0], names[1], len(a), test, better, margin)
    measured = f"{fmt_interval(a)} vs {fmt_interval(b)}"
    return Claim(claim, metric, {names[0]: a, names[1]: b}, verdict, rule, measured, paper)


def noninferior(claim: str, metric: str, a, b, *, margin: float, **kw) -> Claim:
    """Claim "``a`` is as good as ``b`` or better", within ``margin``."""
    return compare(claim, metric, a, b, test="noninferior", margin=margin, **kw)


def equivalent(claim: str, metric: str, a, b, *, margin: float, **kw) -> Claim:
    """Claim "``a`` and ``b`` are the same", within ``margin`` (two one-sided tests)."""
    return compare(claim, metric, a, b, test="equivalent", margin=margin, **kw)


def threshold(claim: str, metric: str, values, bound: float, *, name: str = "measured",
              bound_name: str = "bound", better: str = "lower", paper: str = "") -> Claim:
    """Claim "the measured value is better than the fixed number ``bound``"."""
    vals = _as_list(name, values)
    if math.isnan(float(bound)):
        raise ValueError(f"{claim!r}: bound is NaN")
    const = [float(bound)] * len(vals)
    verdict = judge_pair(vals, const, better=better) if _paired(vals, const, claim) else UNJUDGED
    rule = rule_words(name, f"{bound_name} ({float(bound):.4g})", len(vals), "better", better)
    return Claim(claim, metric, {name: vals}, verdict, rule, fmt_interval(vals), paper)


def ratio(claim: str, metric: str, num, den, *, paper_ratio: float, tolerance: float = 1.5,
          names=("num", "den"), paper: str = "") -> Claim:
    """Claim "``num`` is about ``paper_ratio`` times ``den``": holds when the per-seed ratio's
    95% t-interval lies inside ``[paper_ratio / tolerance, paper_ratio * tolerance]``."""
    num, den = _as_list(names[0], num), _as_list(names[1], den)
    if any(d == 0 for d in den):
        raise ValueError(f"{claim!r}: a denominator is zero")
    enough = _paired(num, den, claim)
    ratios = [x / y for x, y in zip(num, den)]
    verdict = judge_ratio(ratios, paper_ratio, tolerance) if enough else UNJUDGED
    mean, low, high = t_interval(ratios)
    interval = "" if math.isnan(low) else f" [{low:.3g}, {high:.3g}]"
    rule = (f"95% t-interval of the ratio inside [{paper_ratio / tolerance:.3g}, "
            f"{paper_ratio * tolerance:.3g}] (paper's {paper_ratio:g}, tolerance ×{tolerance:g})"
            f" over {len(ratios)} seeds")
    values = {names[0]: num, names[1]: den, "ratio": ratios}
    measured = f"ratio {fmt_interval(ratios)}{interval} (paper {paper_ratio:g})"
    return Claim(claim, metric, values, verdict, rule, measured, paper)


def combine(verdicts: Sequence[str]) -> str:
    """A curve's verdict from its points' verdicts."""
    if UNJUDGED in verdicts:
        return UNJUDGED
    if len(set(verdicts)) == 1:
        return verdicts[0]
    return MIXED


def curve(claim: str, metric: str, xs, a, b, *, names=("a", "b"), better: str = "lower",
          x_name: str = "x", paper: str = "", test: str = "better",
          margin: float | None = None) -> Claim:
    """Claim "``a`` is better than ``b``" along a curve: ``a[i]``, ``b[i]`` hold the per-seed
    values at ``xs[i]``. The verdict names the points where it holds."""
    if not (len(xs) == len(a) == len(b)) or not xs:
        raise ValueError(f"{claim!r}: xs, a and b need the same, non-zero length")
    points, verdicts = [], []
    for x, ai, bi in zip(xs, a, b):
        ai, bi = _as_list(f"{names[0]} at {x}", ai), _as_list(f"{names[1]} at {x}", bi)
        v = (judge_pair(ai, bi, test=test, better=better, margin=margin)
             if _paired(ai, bi, claim) else UNJUDGED)
        verdicts.append(v)
        points.append({x_name: x, "verdict": v, names[0]: ai, names[1]: bi,
                       "measured": f"{fmt_interval(ai)} vs {fmt_interval(bi)}"})
    verdict = combine(verdicts)
    by_verdict = {}
    for x, v in zip(xs, verdicts):
        by_verdict.setdefault(v, []).append(str(x))
    measured = "; ".join(f"{v} at {x_name} {', '.join(v_xs)}" for v, v_xs in by_verdict.items())
    rule = rule_words(names[0], names[1], len(a[0]), test, better, margin, f" at each {x_name}")
    values = {f"{n} at {x}": list(map(float, vals)) for n, arm in zip(names, (a, b))
              for x, vals in zip(xs, arm)}
    return Claim(claim, metric, values, verdict, rule, measured, paper, points)


# ---------------------------------------------------------------- records


def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}"
    except Exception:  # pragma: no cover - torch missing is not our problem here
        pass
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def _repo_root() -> Path:
    from .markdown import find_root

    return find_root()


def claims_digest(claims: list[dict]) -> str:
    """A short hash of the claims as stored in JSON (what the stored output must print)."""
    text = json.dumps(claims, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def is_control(environ=None) -> bool:
    """True when this run measures the **untrained control** (``DIFFNOTES_CONTROL=1``): the
    same lab with training disabled, whose record is stored beside the trained one (in an
    ``untrained/`` folder) so that every claim can be read against what an untrained network
    earns. The variable demands ``DIFFNOTES_TRAIN_STEPS=0``; anything else is one clear error."""
    env = os.environ if environ is None else environ
    raw = env.get(CONTROL_ENV, "").strip()
    if raw in ("", "0"):
        return False
    if raw != "1":
        raise ValueError(f"{CONTROL_ENV} must be 0 or 1, got {raw!r}")
    if env.get("DIFFNOTES_TRAIN_STEPS", "").strip() != "0":
        raise ValueError(f"{CONTROL_ENV}=1 records the untrained control: set "
                         "DIFFNOTES_TRAIN_STEPS=0 as well")
    return True


def record_path(key: str, *, root: Path | None = None) -> Path:
    """Where :func:`record` writes ``key``'s claims under the current profile (the untrained
    control's records go to the ``untrained/`` folder beside them, see :func:`is_control`)."""
    profile = get_profile()
    root = root or _repo_root()
    folder = QUICK_DIR if profile.is_quick else GPU_DIR if profile.name == "gpu" else RESULTS_DIR
    if is_control():
        folder = folder / CONTROL_SUBDIR
    return root / folder / f"{key}.json"


def record(key: str, claims: list[Claim], *, root: Path | None = None) -> None:
    """Write this notebook's claims (to :func:`record_path`), print them and their digest.
    Call it after the notebook's checks; it returns nothing, so a notebook's last cell shows
    no machine path."""
    if not claims:
        raise ValueError(f"record({key!r}): no claims given")
    if not all(isinstance(c, Claim) for c in claims):
        raise ValueError(f"record({key!r}): claims must be built with compare/threshold/ratio/curve")
    profile = get_profile()
    path = record_path(key, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(json.dumps([asdict(c) for c in claims]))
    payload = {
        "key": key,
        "profile": profile.name,
        "date": _dt.date.today().isoformat(),
        "machine": _machine(),
        "claims": stored,
    }
    if is_control():
        payload["control"] = "untrained: DIFFNOTES_TRAIN_STEPS=0, every network at its initial weights"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    for c in claims:
        print(f"- {c.claim}: {c.verdict} — {c.measured}")
    print(f"recorded {key}: {len(claims)} claims, digest {claims_digest(stored)}")


def load_records(root: Path | None = None) -> list[dict]:
    root = root or _repo_root()
    folder = root / RESULTS_DIR
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def load_controls(root: Path | None = None) -> dict[str, dict]:
    """The untrained controls' records (``notebooks/results/untrained/``), by paper key."""
    root = root or _repo_root()
    folder = root / RESULTS_DIR / CONTROL_SUBDIR
    out = {}
    for p in sorted(folder.glob("*.json")):
        rec = json.loads(p.read_text(encoding="utf-8"))
        out[rec["key"]] = rec
    return out
