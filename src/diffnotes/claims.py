"""Declared claims, re-judged: the registry ``data/claims.yaml`` and the results page.

Every claim a lab measures is declared once in ``src/diffnotes/data/claims.yaml``, under its
paper's key: its words, the metric, the arms and the direction, the test (``better``,
``noninferior`` or ``equivalent``) with its margin, or the paper's factor and the tolerance of an
"about k times" claim, the paper's source, the untrained control, when it was declared and the
verdicts it had before. A notebook's record (:mod:`diffnotes.results`) holds what was measured,
per seed. This module joins the two: each stored claim is re-judged from its per-seed values by
the rules of :mod:`diffnotes.results` under its declaration, so the page never shows a verdict
that the current rules would not compute, and the verdict a record was written with stays
visible where the two differ. ``tests/test_claims.py`` fails on a declared claim without a
record, a record without a declaration, or a declaration the rules cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import results as R
from .markdown import cell

REGISTRY = Path(__file__).resolve().parent / "data" / "claims.yaml"
KINDS = ("compare", "curve", "threshold", "ratio")
FIELDS = {"id", "claim", "metric", "paper", "kind", "arms", "better", "test", "margin", "why",
          "margin_declared", "over", "bound", "bound_name", "paper_ratio", "tolerance",
          "control", "control_flag", "declared", "history"}


@dataclass(frozen=True)
class Declaration:
    key: str
    id: str
    claim: str
    kind: str
    metric: str = ""
    paper: str = ""
    arms: tuple = ()
    better: str = "lower"
    test: str = "better"
    margin: float | None = None
    over: str = ""
    bound: float | None = None
    bound_name: str = ""
    paper_ratio: float | None = None
    tolerance: float | None = None
    why: str = ""
    control: str = "not measured"
    control_flag: str = ""  # non-empty: the untrained control earns this claim's verdict too
    declared: str = ""
    margin_declared: str = ""
    history: tuple = ()


def _check(key: str, d: dict) -> Declaration:
    where = f"claims.yaml: {key}/{d.get('id', '?')}"
    unknown = set(d) - FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; valid: {sorted(FIELDS)}")
    for name in ("id", "claim", "kind"):
        if not d.get(name):
            raise ValueError(f"{where}: '{name}' is missing")
    kind = d["kind"]
    if kind not in KINDS:
        raise ValueError(f"{where}: kind {kind!r}; valid: {', '.join(KINDS)}")
    arms = tuple(d.get("arms") or ())
    if kind in ("compare", "curve") and len(arms) != 2:
        raise ValueError(f"{where}: a {kind} claim names two arms, got {list(arms)}")
    if kind == "threshold" and (len(arms) != 1 or d.get("bound") is None):
        raise ValueError(f"{where}: a threshold claim names one arm and a bound")
    if kind == "curve" and not d.get("over"):
        raise ValueError(f"{where}: a curve claim names what it runs 'over'")
    if kind == "ratio" and (d.get("paper_ratio") is None or not d.get("tolerance", 0) > 1):
        raise ValueError(f"{where}: a ratio claim needs paper_ratio and a tolerance above 1")
    if kind == "ratio" and arms and len(arms) != 2:
        raise ValueError(f"{where}: a ratio claim names its numerator and denominator arms, "
                         f"got {list(arms)}")
    test = d.get("test", "better")
    if test not in R.TESTS:
        raise ValueError(f"{where}: test {test!r}; valid: {', '.join(R.TESTS)}")
    if test != "better" and not (isinstance(d.get("margin"), (int, float)) and d["margin"] > 0):
        raise ValueError(f"{where}: a {test} claim declares a positive margin")
    if d.get("better", "lower") not in ("lower", "higher"):
        raise ValueError(f"{where}: better must be 'lower' or 'higher'")
    d = dict(d, arms=arms, history=tuple(d.get("history") or ()))
    return Declaration(key=key, **d)


def load(path: Path | None = None) -> dict[str, list[Declaration]]:
    """Every declaration, by paper key, validated (one-line errors)."""
    import yaml

    raw = yaml.safe_load(Path(path or REGISTRY).read_text(encoding="utf-8")) or {}
    out = {}
    for key, decls in raw.items():
        ids = [d.get("id") for d in decls]
        if len(set(ids)) != len(ids):
            raise ValueError(f"claims.yaml: {key} repeats an id")
        out[key] = [_check(key, d) for d in decls]
    return out


def declared(key: str, claim_id: str, registry: Path | None = None) -> Declaration:
    """The declaration of ``key``/``claim_id`` (one clear line when there is none)."""
    decls = load(registry).get(key, [])
    for d in decls:
        if d.id == claim_id:
            return d
    ids = ", ".join(d.id for d in decls) or "none"
    raise ValueError(f"no claim {claim_id!r} declared for {key!r} in claims.yaml; declared: {ids}")


def measure(key: str, claim_id: str, *values, xs=None, metric: str | None = None,
            registry: Path | None = None) -> R.Claim:
    """Build the :class:`~diffnotes.results.Claim` of a declared claim from its measured values,
    so that a notebook names the claim by id and never restates its words, arms or rule:
    ``measure(key, id, a, b)`` (compare), ``measure(key, id, a)`` (threshold),
    ``measure(key, id, num, den)`` (ratio), ``measure(key, id, a, b, xs=[...])`` (curve).
    ``metric`` replaces the declared metric's words where the run states its own reference
    numbers in it (the real-vs-real band it measured, the sizes of its profile)."""
    d = declared(key, claim_id, registry)
    if metric is not None:
        from dataclasses import replace

        d = replace(d, metric=metric)
    need = {"threshold": 1}.get(d.kind, 2)
    if len(values) != need:
        raise ValueError(f"{key}/{claim_id}: a {d.kind} claim takes {need} value list(s), "
                         f"got {len(values)}")
    common = dict(paper=d.paper)
    if d.kind == "threshold":
        return R.threshold(d.claim, d.metric, values[0], d.bound, name=d.arms[0],
                           bound_name=d.bound_name, better=d.better, **common)
    if d.kind == "ratio":
        return R.ratio(d.claim, d.metric, *values, paper_ratio=d.paper_ratio,
                       tolerance=d.tolerance, names=tuple(d.arms) or ("num", "den"), **common)
    kw = dict(names=tuple(d.arms), better=d.better, test=d.test, margin=d.margin, **common)
    if d.kind == "curve":
        if xs is None:
            raise ValueError(f"{key}/{claim_id}: a curve claim needs xs= (the {d.over} values)")
        return R.curve(d.claim, d.metric, xs, *values, x_name=d.over, **kw)
    return R.compare(d.claim, d.metric, *values, **kw)


EARNED = (R.HOLDS, R.EQUIVALENT)  # the verdicts a claim can be said to earn
NOT_APPLICABLE = "not applicable"  # a declaration's control that no untrained network can earn
IN_THE_CLAIM = "in the claim"  # the claim already measures the untrained network as an arm
NO_NETWORK = NOT_APPLICABLE + ": no trained network"  # the control must give the same values


@dataclass
class Judged:
    """A stored claim re-judged: its verdict and one row per setting (one for a single pair)."""

    decl: Declaration
    verdict: str
    recorded: str  # the verdict the record was written with ("within noise" read as inconclusive)
    rows: list[dict] = field(default_factory=list)  # setting, a, b, diff, verdict
    seeds: int = 0
    metric: str = ""  # as the record states it (may carry the run's own reference numbers)
    stored: dict = field(default_factory=dict, repr=False)  # the record's per-seed values
    control: "Judged | None" = None  # the same claim measured with training disabled

    @property
    def control_earns(self) -> bool:
        """True when the untrained control earns this claim's positive verdict too. Never for a
        claim whose declaration calls the control not applicable (a cost claim) or whose arms
        already include the untrained network ("in the claim": the control run then compares
        two untrained networks, and a tiny systematic difference between them is no
        evidence against the trained one -- its values are still shown)."""
        return (self.control is not None and self.verdict in EARNED
                and self.control.verdict == self.verdict
                and not self.decl.control.startswith((NOT_APPLICABLE, IN_THE_CLAIM)))

    @property
    def earned_at(self) -> list[str]:
        """A sweep's settings where the trained claim holds and the untrained control's verdict
        at that same setting is the same positive one (empty when the whole verdict is earned,
        or none is, or the control does not apply)."""
        if (self.control is None or self.control_earns or self.decl.kind != "curve"
                or self.decl.control.startswith((NOT_APPLICABLE, IN_THE_CLAIM))):
            return []
        ctrl = {r["setting"]: r["verdict"] for r in self.control.rows}
        return [r["setting"] for r in self.rows
                if r["verdict"] in EARNED and ctrl.get(r["setting"]) == r["verdict"]]

    @property
    def flag(self) -> str:
        """Why this claim is flagged ⚑ (empty when it is not)."""
        if self.control_earns:
            return "the untrained control earns this verdict too"
        if self.earned_at:
            return ("the untrained control earns the same verdict at "
                    + ", ".join(self.earned_at))
        return self.decl.control_flag


def setting_value(v):
    """A sweep point's setting. A record whose arm shares the sweep's name (Harsha's "I") stores
    the per-seed list there; the setting is its common value."""
    if isinstance(v, list):
        if v and all(x == v[0] for x in v):
            return v[0]
        raise ValueError(f"a sweep setting varies across seeds: {v}")
    return v


def _iv(values, level=R.LEVEL) -> str:
    return R.fmt_interval(values, level=level)


def _pair_row(d: Declaration, a, b, setting="") -> dict:
    diffs = [x - y for x, y in zip(a, b)]
    level = R.LEVEL if d.test == "better" else 2 * R.LEVEL - 1
    n = min(len(a), len(b))
    v = (R.judge_pair(a, b, test=d.test, better=d.better, margin=d.margin)
         if n >= R.MIN_SEEDS else R.UNJUDGED)
    return {"setting": setting, "a": _iv(a), "b": _iv(b), "diff": _iv(diffs, level),
            "level": level, "verdict": v}


def judge(d: Declaration, stored: dict) -> Judged:
    """Re-judge one stored claim (a record's dict) under its declaration."""
    values = stored.get("values", {})
    rows: list[dict] = []
    try:
        if d.kind == "compare":
            rows.append(_pair_row(d, values[d.arms[0]], values[d.arms[1]]))
        elif d.kind == "threshold":
            a = values[d.arms[0]]
            rows.append(_pair_row(d, a, [d.bound] * len(a)))
            rows[0]["b"] = f"{d.bound_name} {d.bound:.4g}"
        elif d.kind == "ratio":
            ratios = values["ratio"]
            v = (R.judge_ratio(ratios, d.paper_ratio, d.tolerance)
                 if len(ratios) >= R.MIN_SEEDS else R.UNJUDGED)
            _, low, high = R.t_interval(ratios)
            rows.append({"setting": "", "a": "", "b": "", "level": R.LEVEL, "verdict": v,
                         "diff": f"ratio {_iv(ratios)} [{low:.3g}, {high:.3g}]"})
        else:  # curve
            for p in stored.get("points", []):
                rows.append(_pair_row(d, p[d.arms[0]], p[d.arms[1]],
                                      f"{d.over} {setting_value(p[d.over])}"))
    except KeyError as e:
        raise ValueError(f"{d.key}/{d.id}: the record has no arm {e}; "
                         f"it has {sorted(values)}") from None
    if not rows:
        raise ValueError(f"{d.key}/{d.id}: the record has no values to judge")
    verdict = R.combine([r["verdict"] for r in rows])
    lengths = [len(v) for v in values.values()] or [0]
    recorded = stored.get("verdict", "")
    return Judged(d, verdict, R.INCONCLUSIVE if recorded == R.NOISE else recorded, rows,
                  min(lengths), stored.get("metric") or d.metric, stored)


def judge_all(root: Path | None = None, registry: Path | None = None):
    """``[(record, [Judged, ...]), ...]`` for every stored record, in the registry's order;
    raises on a record without a declaration or a declaration without a record."""
    decls = load(registry)
    out = []
    records = {r["key"]: r for r in R.load_records(root)}
    controls = R.load_controls(root)
    missing = sorted(set(decls) - set(records))
    if missing:
        raise ValueError(f"declared claims without a record: {', '.join(missing)}")
    for key, rec in records.items():
        by_text = {d.claim: d for d in decls.get(key, [])}
        judged = []
        for c in rec["claims"]:
            if c["claim"] not in by_text:
                raise ValueError(f"{key}: recorded claim {c['claim']!r} is not declared in "
                                 "claims.yaml")
            d = by_text.pop(c["claim"])
            j = judge(d, c)
            ctrl = next((x for x in controls.get(key, {}).get("claims", [])
                         if x["claim"] == c["claim"]), None)
            if ctrl is not None:
                j.control = judge(d, ctrl)
            judged.append(j)
        if by_text:
            raise ValueError(f"{key}: declared claim(s) without a record: "
                             f"{', '.join(d.id for d in by_text.values())}")
        out.append((rec, judged))
    return out


# ------------------------------------------------------------------ the page

_SHORT = {R.HOLDS: "holds", R.FAILS: "does not hold", R.INCONCLUSIVE: "inconclusive",
          R.MIXED: "mixed", R.EQUIVALENT: "equivalent", R.DIFFERENT: "different",
          R.NOISE: "within noise", R.UNJUDGED: "not judged"}
ORDER = (R.HOLDS, R.FAILS, R.INCONCLUSIVE, R.MIXED, R.EQUIVALENT, R.DIFFERENT)


def badge(verdict: str) -> str:
    """A verdict as a coloured label (CSS classes in book/_static/css/diffnotes.css)."""
    cls = "verdict-" + _SHORT.get(verdict, "other").replace(" ", "-")
    return f'<span class="verdict {cls}">{_SHORT.get(verdict, verdict)}</span>'


def _paper_names() -> dict[str, str]:
    try:
        from .catalogue.records import papers

        return {p.key: (p.alias or p.key) for p in papers()}
    except Exception:  # the page still renders with keys
        return {}


def _rule_text(d: Declaration, n: int) -> str:
    if d.kind == "ratio":
        return (f"95% t-interval of the ratio inside [{d.paper_ratio / d.tolerance:.3g}, "
                f"{d.paper_ratio * d.tolerance:.3g}] (paper's {d.paper_ratio:g}, "
                f"tolerance ×{d.tolerance:g})")
    b = f"{d.bound_name} ({d.bound:.4g})" if d.kind == "threshold" else d.arms[1]
    where = f" at each {d.over}" if d.kind == "curve" else ""
    return R.rule_words(d.arms[0], b, n, d.test, d.better, d.margin, where)


def _pair_text(j: Judged) -> str:
    d = j.decl
    if d.kind == "curve":
        return f"{len(j.rows)} settings of {d.over}: see the table below"
    r = j.rows[0]
    if d.kind == "ratio":
        return r["diff"]
    diff_name = "difference" + (" (90%)" if r["level"] < R.LEVEL else "")
    return f"{d.arms[0]} {r['a']}; {d.arms[1] if d.kind != 'threshold' else 'vs'} {r['b']}; " \
           f"{diff_name} {r['diff']}"


def control_text(j: Judged) -> str:
    """The untrained control of a claim, in words, for the results page and the chapters."""
    if j.control is None:
        return f"untrained control: {j.decl.control}"
    c = j.control
    where = "" if j.decl.kind == "curve" else f": {_pair_text(c)}"
    return f"untrained control {_SHORT.get(c.verdict, c.verdict)}{where}"


def _measured_cell(j: Judged) -> str:
    return _pair_text(j) + "<br><small>" + cell(control_text(j)) + "</small>"


def _verdict_cell(j: Judged) -> str:
    out = badge(j.verdict)
    if j.recorded and j.recorded != j.verdict:
        out += f" (recorded as: {j.recorded}, ±2 se rule)"
    for h in j.decl.history:
        out += f"; earlier ({h['date']}): {h['verdict']}"
        if h.get("measured"):
            out += f", {h['measured']}"
        if h.get("note"):
            out += f" — {h['note']}"
    if j.flag:
        out += f" ⚑ {j.flag}"
        if not j.control_earns:
            out += f": {j.decl.control}"
    return cell(out)


def summary(judged_records) -> str:
    counts: dict[str, int] = {}
    changed = 0
    for _, js in judged_records:
        for j in js:
            counts[j.verdict] = counts.get(j.verdict, 0) + 1
            changed += bool(j.recorded and j.recorded != j.verdict)
    total = sum(counts.values())
    parts = [f"{badge(v)} {counts[v]}" for v in ORDER if counts.get(v)]
    flagged = sum(bool(j.flag) for _, js in judged_records for j in js)
    measured = sum(j.control is not None for _, js in judged_records for j in js)
    return (f"**{total} claims** from {len(judged_records)} labs: " + " · ".join(parts) +
            f". Under the current rules {changed} verdicts differ from the ones their records "
            f"were written with (the ±2 se rule, or a declaration changed since); {flagged} "
            f"claim{'s are' if flagged != 1 else ' is'} flagged ⚑ because an untrained "
            f"control earns the same verdict ({measured} of {total} claims have their untrained "
            "control measured: the same lab run with training disabled).\n")


def render_summary(root: Path | None = None) -> str:
    """The top of the results page: counts by verdict, overall and per lab."""
    judged_records = judge_all(root)
    if not judged_records:
        return "*No notebook has recorded results yet.*\n"
    names = _paper_names()
    present = [v for v in ORDER if any(j.verdict == v for _, js in judged_records for j in js)]
    lines = [summary(judged_records), "",
             "| lab | claims | " + " | ".join(badge(v) for v in present) + " | ⚑ |",
             "|---|---|" + "---|" * (len(present) + 1)]
    for rec, js in judged_records:
        key = rec["key"]
        c = {v: sum(j.verdict == v for j in js) for v in present}
        flags = sum(bool(j.flag) for j in js)
        lines.append(f"| {{ref}}`{cell(names.get(key, key))} <lab-{key}>` | {len(js)} | " +
                     " | ".join(str(c[v]) if c[v] else "" for v in present) +
                     f" | {flags or ''} |")
    return "\n".join(lines) + "\n"


def render_page(root: Path | None = None) -> str:
    """Every lab's claims, one table per lab, with each sweep's settings below it."""
    judged_records = judge_all(root)
    if not judged_records:
        return "*No notebook has recorded results yet.*\n"
    names = _paper_names()
    lines = []
    for rec, js in judged_records:
        key = rec["key"]
        seeds = sorted({j.seeds for j in js})
        lines += [
            f"(lab-{key})=", f"### {names.get(key, key)}", "",
            f"Chapter {{doc}}`papers/{key}`, lab {{doc}}`../notebooks/{key}`; recorded "
            f"{rec['date']} ({rec['profile']} profile, {rec['machine']}), "
            f"{'/'.join(map(str, seeds))} seeds; intervals are Student-t, 95% unless marked.",
            "", "| claim | measured | verdict |", "|---|---|---|"]
        sweeps = []
        for j in js:
            d = j.decl
            claim = f"**{cell(d.claim)}**<br>*{cell(j.metric)}*"
            if d.paper:
                claim += f"<br>paper: {cell(d.paper)}"
            lines.append(f"| {claim} | {cell(_measured_cell(j))} | {_verdict_cell(j)} |")
            # cell() keeps the badge's HTML: it escapes only bars and newlines
            if d.kind == "curve":
                sweeps.append(j)
        for j in sweeps:
            d = j.decl
            level = "90%" if j.rows[0]["level"] < R.LEVEL else "95%"
            ctrl = {r["setting"]: r["verdict"] for r in (j.control.rows if j.control else [])}
            lines += ["", f"*{cell(d.claim)}* — {cell(_rule_text(d, j.seeds))}:", "",
                      f"| {cell(d.over)} | {cell(d.arms[0])} | {cell(d.arms[1])} | "
                      f"difference ({level}) | verdict | untrained control |",
                      "|---|---|---|---|---|---|"]
            for r in j.rows:
                c = badge(ctrl[r["setting"]]) if r["setting"] in ctrl else "not measured"
                lines.append(f"| {cell(r['setting'].split(' ', 1)[-1])} | {r['a']} | {r['b']} | "
                             f"{r['diff']} | {badge(r['verdict'])} | {c} |")
        rules = sorted({_rule_text(j.decl, j.seeds) for j in js if j.decl.kind != "curve"})
        if rules:
            lines += ["", "Rules: " + "; ".join(cell(r) for r in rules) + ".", ""]
        notes = [j for j in js if j.decl.margin is not None or j.decl.kind == "ratio"]
        for j in notes:
            why = j.decl.why or "the default band of an 'about k times' claim"
            lines += [f"Margin of *{cell(j.decl.claim)}*: {cell(why)} "
                      f"(declared {cell(j.decl.margin_declared or j.decl.declared)}).", ""]
        lines.append("")
    return "\n".join(lines) + "\n"


def changed_verdicts(root: Path | None = None) -> list[tuple[str, str, str, str]]:
    """``(key, claim, recorded, now)`` for every claim the current rules judge differently."""
    return [(rec["key"], j.decl.claim, j.recorded, j.verdict)
            for rec, js in judge_all(root) for j in js if j.recorded and j.recorded != j.verdict]


def _generated_tables():
    from .markdown import GeneratedTable

    source = "notebooks/results/*.json and src/diffnotes/data/claims.yaml"
    return [GeneratedTable("results_summary", render_summary, source),
            GeneratedTable("results", render_page, source)]


GENERATED_TABLES = _generated_tables()
