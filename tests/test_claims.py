"""Every recorded claim is declared, every declared claim recorded, and the results page's
verdicts are the ones an independent t-based recomputation gives from the stored values."""

import json
import math

import pytest
from scipy import stats

from diffnotes import claims as C
from diffnotes import results as R


def test_registry_and_records_match_both_ways():
    judged = C.judge_all()
    assert len(judged) == len(R.load_records())
    assert sum(len(js) for _, js in judged) == sum(len(d) for d in C.load().values())


def _t_verdict(diffs, better):
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)
    half = stats.t.ppf(0.975, n - 1) * se
    sign = 1 if better == "higher" else -1
    lo, hi = sorted((sign * (mean - half), sign * (mean + half)))
    return R.HOLDS if lo > 0 else R.FAILS if hi < 0 else R.INCONCLUSIVE


def test_superiority_verdicts_agree_with_an_independent_recomputation():
    checked = 0
    for rec, js in C.judge_all():
        stored = {c["claim"]: c for c in rec["claims"]}
        for j in js:
            d = j.decl
            if d.test != "better" or d.kind not in ("compare", "curve", "threshold"):
                continue
            c = stored[d.claim]
            if d.kind == "compare":
                pairs = [(c["values"][d.arms[0]], c["values"][d.arms[1]])]
            elif d.kind == "threshold":
                a = c["values"][d.arms[0]]
                pairs = [(a, [d.bound] * len(a))]
            else:
                pairs = [(p[d.arms[0]], p[d.arms[1]]) for p in c["points"]]
            expect = [_t_verdict([x - y for x, y in zip(a, b)], d.better) for a, b in pairs]
            assert [r["verdict"] for r in j.rows] == expect, (rec["key"], d.claim)
            checked += 1
    assert checked > 100


def test_page_shows_every_sweep_setting_with_its_interval():
    page = C.render_page()
    for rec, js in C.judge_all():
        for j in js:
            if j.decl.kind == "curve":
                assert len(j.rows) == len(rec["claims"][[c["claim"] for c in rec["claims"]]
                                                        .index(j.decl.claim)]["points"])
                for r in j.rows:
                    assert f"| {r['a']} | {r['b']} | {r['diff']} |" in page


def test_page_keeps_earlier_verdicts_and_flags_controls():
    page = C.render_page()
    assert "earlier (2026-12-01): within noise" in page  # Gotta Go Fast before N = 200
    assert "recorded as: does not hold" in page
    assert "⚑ the untrained control earns this verdict too" in page
    assert "untrained control" in page


def _demo_records(tmp_path, trained, untrained, control="not measured"):
    for folder, values in ((tmp_path / R.RESULTS_DIR, trained),
                           (tmp_path / R.RESULTS_DIR / R.CONTROL_SUBDIR, untrained)):
        if values is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        rec = {"key": "demo", "profile": "full", "date": "2026-12-07", "machine": "m",
               "claims": [{"claim": "a beats b", "values": {"a": values[0], "b": values[1]},
                           "verdict": "holds"}]}
        (folder / "demo.json").write_text(json.dumps(rec))
    reg = tmp_path / "claims.yaml"
    reg.write_text("demo:\n- {id: x, claim: a beats b, kind: compare, arms: [a, b], "
                   f"better: lower, control: '{control}'}}\n")
    return reg


def test_a_claim_the_untrained_control_earns_too_is_flagged(tmp_path):
    good, bad = [1.0, 1.1, 0.9], [2.0, 2.2, 1.9]
    reg = _demo_records(tmp_path, (good, bad), (good, bad))
    (_, [j]), = C.judge_all(tmp_path, reg)
    assert j.verdict == R.HOLDS and j.control.verdict == R.HOLDS and j.control_earns
    assert "untrained control earns" in j.flag
    reg = _demo_records(tmp_path, (good, bad), (bad, good))
    (_, [j]), = C.judge_all(tmp_path, reg)
    assert j.control.verdict == R.FAILS and not j.flag
    assert "untrained control does not hold" in C.control_text(j)
    reg = _demo_records(tmp_path, (good, bad), (good, bad), control="not applicable: a cost")
    (_, [j]), = C.judge_all(tmp_path, reg)
    assert not j.flag  # a cost claim is not about learning
    (tmp_path / R.RESULTS_DIR / R.CONTROL_SUBDIR / "demo.json").unlink()
    (_, [j]), = C.judge_all(tmp_path, reg)
    assert j.control is None and C.control_text(j) == "untrained control: not applicable: a cost"


def test_bad_declaration_is_one_line(tmp_path):
    bad = tmp_path / "claims.yaml"
    bad.write_text("demo:\n- {id: x, claim: c, kind: compare, arms: [a]}\n")
    with pytest.raises(ValueError, match="names two arms"):
        C.load(bad)
    bad.write_text("demo:\n- {id: x, claim: c, kind: compare, arms: [a, b], test: noninferior}\n")
    with pytest.raises(ValueError, match="positive margin"):
        C.load(bad)
    bad.write_text("demo:\n- {id: x, claim: c, kind: wobble}\n")
    with pytest.raises(ValueError, match="valid: compare"):
        C.load(bad)


def test_undeclared_record_is_refused(tmp_path):
    folder = tmp_path / R.RESULTS_DIR
    folder.mkdir(parents=True)
    rec = {"key": "demo", "profile": "full", "date": "2026-12-07", "machine": "m",
           "claims": [{"claim": "new claim", "values": {"a": [1, 2, 3]}, "verdict": "holds"}]}
    (folder / "demo.json").write_text(json.dumps(rec))
    reg = tmp_path / "claims.yaml"
    reg.write_text("demo: []\n")
    with pytest.raises(ValueError, match="not declared"):
        C.judge_all(tmp_path, reg)
    reg.write_text("demo:\n- {id: x, claim: new claim, kind: threshold, arms: [a], bound: 0}\n"
                   "other:\n- {id: y, claim: z, kind: threshold, arms: [a], bound: 0}\n")
    with pytest.raises(ValueError, match="without a record"):
        C.judge_all(tmp_path, reg)


def test_a_notebook_measures_a_declared_claim_by_id(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_PROFILE", "full")
    reg = tmp_path / "claims.yaml"
    reg.write_text(
        "demo:\n"
        "- {id: heun, claim: Heun beats Euler, metric: err, kind: compare, arms: [Heun, Euler],"
        " better: lower}\n"
        "- {id: ni, claim: as good, metric: kd, kind: compare, arms: [a, b], better: lower,"
        " test: noninferior, margin: 2.0}\n"
        "- {id: about2, claim: twice, metric: bits/KL, kind: ratio, arms: [bits, KL],"
        " paper_ratio: 2.0, tolerance: 1.5}\n")
    c = C.measure("demo", "heun", [1.0, 1.1, 0.9], [2.0, 2.2, 1.9], registry=reg)
    assert c.claim == "Heun beats Euler" and c.verdict == R.HOLDS and "Heun" in c.values
    ni = C.measure("demo", "ni", [10.0, 11.0, 10.5], [10.2, 10.9, 10.4], registry=reg)
    assert ni.verdict == R.HOLDS and "less than 2" in ni.rule
    assert C.measure("demo", "heun", [1.0, 1.1, 0.9], [2.0, 2.2, 1.9], metric="err, N = 64",
                     registry=reg).metric == "err, N = 64"
    r = C.measure("demo", "about2", [2.0, 2.1, 1.9], [1.0, 1.0, 1.0], registry=reg)
    assert set(r.values) == {"bits", "KL", "ratio"} and r.verdict == R.HOLDS
    with pytest.raises(ValueError, match="declared: heun, ni"):
        C.measure("demo", "nope", [1.0], registry=reg)
    with pytest.raises(ValueError, match="takes 2 value"):
        C.measure("demo", "heun", [1.0, 2.0, 3.0], registry=reg)


def test_every_stored_claim_rebuilt_from_its_declaration_gets_the_page_verdict(monkeypatch):
    """measure() and the page apply the same rules: rebuilding each stored compare claim from
    its declaration gives the verdict the page shows."""
    monkeypatch.setenv("DIFFNOTES_PROFILE", "full")
    for rec, js in C.judge_all():
        stored = {c["claim"]: c for c in rec["claims"]}
        for j in js:
            if j.decl.kind == "compare":
                v = stored[j.decl.claim]["values"]
                c = C.measure(rec["key"], j.decl.id, v[j.decl.arms[0]], v[j.decl.arms[1]])
                assert c.verdict == j.verdict, (rec["key"], j.decl.id)


def _record_cells():
    import nbformat

    from diffnotes.markdown import find_root

    for path in sorted((find_root() / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [c.source for c in nb.cells if c.cell_type == "code" and "record(" in c.source]
        yield path.stem, "\n".join(cells)


_RECORD_CELLS = list(_record_cells())


@pytest.mark.parametrize("key,source", _RECORD_CELLS, ids=[k for k, _ in _RECORD_CELLS])
def test_a_notebook_names_its_claims_by_id_and_never_restates_them(key, source):
    """Words, arms and rules live in claims.yaml; a record cell passes measured values only."""
    import re

    assert "measure(" in source, f"{key}: the record cell does not use claims.measure"
    restated = re.findall(r"(?<![\w.])(compare|curve|threshold|ratio|noninferior|equivalent)\(",
                          source)
    assert not restated, (
        f"{key}: the record cell builds {len(restated)} claim(s) itself "
        f"({sorted(set(restated))}); name each by id with claims.measure (a run's own sizes "
        "go into metric=)")


def test_every_claim_has_its_untrained_control_or_says_why_not():
    """A claim's control is measured (notebooks/results/untrained/), or its declaration says
    why none is needed; a claim declared to involve no trained network must get the very same
    values from the control run."""
    controls = R.load_controls()
    missing = []
    for rec, js in C.judge_all():
        for j in js:
            if j.decl.control.startswith(C.NO_NETWORK):
                assert j.control is not None and j.control.stored.get("values") == \
                    j.stored.get("values"), f"{rec['key']}/{j.decl.id}: declared free of any " \
                    "trained network, yet its control values differ"
            if j.control is None and not j.decl.control.startswith(
                    (C.NOT_APPLICABLE, C.IN_THE_CLAIM)):
                missing.append(f"{rec['key']}/{j.decl.id}")
    assert not missing, f"claims without an untrained control: {missing}"
    assert set(controls) <= {rec["key"] for rec in R.load_records()}


def test_a_sweep_is_flagged_at_the_settings_the_control_earns(tmp_path):
    folder = tmp_path / R.RESULTS_DIR
    (folder / R.CONTROL_SUBDIR).mkdir(parents=True)
    good, bad = [1.0, 1.1, 0.9], [2.0, 2.2, 1.9]

    def rec(points):
        return {"key": "demo", "profile": "full", "date": "d", "machine": "m",
                "claims": [{"claim": "a beats b", "values": {}, "verdict": "mixed",
                            "points": [{"w": w, "a": a, "b": b} for w, a, b in points]}]}
    (folder / "demo.json").write_text(json.dumps(rec([(1, good, bad), (2, bad, good)])))
    (folder / R.CONTROL_SUBDIR / "demo.json").write_text(
        json.dumps(rec([(1, good, bad), (2, good, bad)])))
    reg = tmp_path / "claims.yaml"
    reg.write_text("demo:\n- {id: x, claim: a beats b, kind: curve, arms: [a, b], over: w,"
                   " better: lower}\n")
    (_, [j]), = C.judge_all(tmp_path, reg)
    assert j.verdict == R.MIXED and not j.control_earns
    assert j.earned_at == ["w 1"] and j.flag.endswith("at w 1")
