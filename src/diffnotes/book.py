"""Helpers the book's pages use to show what lives in the code (one place for all chapters).

* :func:`show_proof` — a derivation of :mod:`diffnotes.theory.proofs`, verified when the page is
  built, with its title, check method and LaTeX statement (used by the DDPM, DDIM and EDM chapters);
* :func:`docstring_math` — the ``.. math::`` block of a function's docstring, so a loss is
  displayed from the docstring beside its code (the score-matching and VAE chapters);
* :func:`paper_numbers` — a paper's headline numbers from :mod:`diffnotes.catalogue`.
"""

from __future__ import annotations

import inspect


def show_proof(name: str) -> None:
    """Display proof ``name``: title, name, check method and status (run now), and statement."""
    from IPython.display import Markdown, Math, display

    from .theory.proofs import get_proof

    proof = get_proof(name)
    ok = proof.verify()
    status = "verified" if ok else "**failed**"
    display(Markdown(f"**{proof.title}** (`{proof.name}`, {proof.result.method} check: {status})"))
    display(Math(proof.statement))


def docstring_math(fn):
    """The ``.. math::`` block of ``fn``'s docstring as an IPython ``Math`` object."""
    from IPython.display import Math

    lines = inspect.getdoc(fn).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(".. math::"))
    except StopIteration:
        raise ValueError(f"{fn.__qualname__} has no '.. math::' block in its docstring") from None
    block = [lines[start].removeprefix(".. math::").strip()]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return Math(" ".join(block).strip())


def paper_numbers(key: str):
    """The paper's headline numbers from the catalogue, as a Markdown table (or a sentence)."""
    from IPython.display import Markdown

    from . import catalogue
    from .markdown import table

    paper = catalogue.get(key)
    if not paper.results and not paper.other_results:
        return Markdown(f"The paper catalogue holds no headline numbers for {paper.alias}, so this "
                        "section has no table; the lab notebook reproduces the paper's claims instead.")
    rows = []
    for metric, r in paper.results.items():
        label, unit = catalogue.METRICS[metric]
        rows.append([label, f"{r.text} {unit}", r.setting, r.source])
    for o in paper.other_results:
        rows.append([f"{o.metric} ({o.dataset})", o.value, o.setting, o.source])
    return Markdown(table(["metric", "value", "setting", "source"], rows).rstrip("\n"))


def notes_corrections(key: str, fields=None):
    """What the notes said about the paper and the catalogue's correction, as a Markdown table
    (``fields`` keeps only those catalogue fields, e.g. ``("fid_uncond",)``)."""
    from IPython.display import Markdown

    from . import catalogue

    said = [c for c in catalogue.get(key).notes_said if fields is None or c.field in fields]
    if not said:
        return Markdown("The paper catalogue records no correction to the notes for this paper.")
    rows = ["| field | the notes said | correction |", "|---|---|---|"]
    rows += [f"| {catalogue.FIELD_LABELS[c.field]} | {c.said} | {c.correction} |" for c in said]
    return Markdown("\n".join(rows))


_JUDGED: dict = {}


def _judged_lab(key: str, root=None):
    """The lab's claims re-judged (``claims.judge_all``), cached per process and invalidated when
    a stored record, a control record or the registry changes: a chapter asks for many numbers
    of one lab."""
    from pathlib import Path

    from . import results as R
    from .claims import REGISTRY, judge_all

    folder = Path(root or R._repo_root()) / R.RESULTS_DIR
    stamp = (str(root), REGISTRY.stat().st_mtime_ns,
             tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.json"))),
             tuple((p.name, p.stat().st_mtime_ns)
                   for p in sorted((folder / R.CONTROL_SUBDIR).glob("*.json"))))
    if _JUDGED.get("stamp") != stamp:
        _JUDGED.clear()
        _JUDGED.update(stamp=stamp, labs={rec["key"]: js for rec, js in judge_all(root)})
    return _JUDGED["labs"].get(key)


_VERDICT_COLOURS = {"holds": "#15803d", "equivalent": "#15803d", "does not hold": "#b91c1c",
                    "different": "#b91c1c", "mixed": "#b45309"}


def _short(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:3])


def lab_figure(key: str, *, root=None, cols: int = 2):
    """The lab's recorded claims drawn from the stored per-seed values, one panel per claim.

    Each panel shows every seed (dots) and the mean with its 95% t-interval (bars) for both arms
    (or the bound / the paper's ratio band), over the sweep for a curve claim; its title is the
    claim in short and its verdict under the current rules, coloured as on the results page,
    then the untrained control's verdict (⚑ when the control earns the claim too). The
    figure is :func:`diffnotes.plotting.book_figure`, so it is legible in the column.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from . import results as R
    from .claims import setting_value
    from .plotting import BOOK_MAX_WIDTH_IN, book_figure

    judged = _judged_lab(key, root)
    if judged is None:
        raise ValueError(f"no stored record for lab {key!r}; run its notebook in the full profile")
    n = len(judged)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(BOOK_MAX_WIDTH_IN, 2.9 * rows), squeeze=False)
    colours = ("#1d4ed8", "#6b7280")

    def arm(ax, x, values, colour, label=None):
        m, lo, hi = R.t_interval(values) if len(values) >= 2 else (values[0],) * 3
        ax.scatter([x] * len(values), values, s=14, color=colour, alpha=0.5, zorder=2)
        ax.errorbar([x], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=colour, capsize=4,
                    zorder=3, label=label)

    for ax, j in zip(axes.flat, judged):
        d, values = j.decl, j.stored.get("values", {})
        if d.kind == "curve":
            pts = j.stored.get("points", [])
            xs = list(range(len(pts)))
            for i, (name, c) in enumerate(zip(d.arms, colours)):
                for x, p in zip(xs, pts):
                    arm(ax, x + (i - 0.5) * 0.15, p[name], c, name if x == 0 else None)
            settings = [setting_value(p[d.over]) for p in pts]
            ax.set_xticks(xs, [f"{v:g}" if isinstance(v, (int, float)) else str(v)
                               for v in settings])
            ax.set_xlabel(d.over, fontsize=10)
            every = [v for p in pts for name in d.arms[:2] for v in p[name]]
            if min(every) > 0 and max(every) > 30 * min(every):
                ax.set_yscale("log")
            ax.legend(fontsize=10, frameon=False)
        elif d.kind == "ratio":
            arm(ax, 0, values["ratio"], colours[0])
            ax.axhspan(d.paper_ratio / d.tolerance, d.paper_ratio * d.tolerance,
                       color="#d8f0dc", zorder=0)
            ax.axhline(d.paper_ratio, color="#15803d", lw=1)
            ax.set_xticks([0], ["ratio"])
        else:
            arm(ax, 0, values[d.arms[0]], colours[0])
            if d.kind == "threshold":
                ax.axhline(d.bound, color=colours[1], ls="--", lw=1, label=d.bound_name)
                ax.set_xticks([0], [_short(d.arms[0], 14)])
                ax.legend(fontsize=10, frameon=False, loc="best")
            else:
                arm(ax, 1, values[d.arms[1]], colours[1])
                ax.set_xticks([0, 1], [_short(a, 14) for a in d.arms[:2]])
            ax.set_xlim(-0.6, 1.6 if d.kind != "threshold" else 0.6)
        ax.tick_params(labelsize=10)
        title = _short(d.claim, 34) + f"\n{j.verdict}"
        if j.control is not None:
            title += f"; untrained: {j.control.verdict}" + (" ⚑" if j.flag else "")
        ax.set_title(title, fontsize=10, color=_VERDICT_COLOURS.get(j.verdict, "#374151"))
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return book_figure(fig)


def control_note(key: str, *, root=None):
    """The lab's untrained controls in a sentence or a list, as Markdown for the chapter: which
    claims an untrained network earns too (the chapter does not count them as evidence)."""
    from IPython.display import Markdown

    from .claims import NO_NETWORK

    judged = _judged_lab(key, root)
    if judged is None:
        raise ValueError(f"no stored record for lab {key!r}")
    measured = [j for j in judged if j.control is not None]
    flagged = [j for j in judged if j.flag]
    if not measured and not flagged:
        return Markdown("*The untrained control of this lab has not been measured yet.*")
    head = (f"**Untrained control.** The lab was also run with training disabled "
            f"({len(measured)} of {len(judged)} claims measured so; see the "
            "{doc}`results page <../results>`). ")
    free = [j for j in judged if j.decl.control.startswith(NO_NETWORK)]
    if free:
        head += (f"{len(free)} claim{'s' if len(free) > 1 else ''} of this lab involve"
                 f"{'' if len(free) > 1 else 's'} no trained network at all (declared so; the "
                 "control run gives the same values), so training has no part in "
                 f"{'their' if len(free) > 1 else 'its'} verdict. ")
    if not flagged:
        return Markdown(head + "Of the claims that depend on training, the untrained network "
                        "earns none of the verdicts that hold here.")
    items = "\n".join(f"* ⚑ *{j.decl.claim}* — {j.verdict}; {j.flag}" +
                      ("" if j.control_earns else f" ({j.decl.control})") for j in flagged)
    return Markdown(head + "An untrained network earns the verdict of these claims too (of a "
                    "sweep, at the settings named), so "
                    "they are **not counted as evidence of what training achieved**: each tests "
                    "a property the method has whatever the network learned, or a measurement "
                    "that cannot tell a trained network from an untrained one:\n\n" + items)


def claim_value(key: str, claim_id: str, arm: str | None = None, *, at=None,
                interval: bool = False, digits: int = 3, control: bool = False,
                root=None) -> str:
    """A lab's recorded number for a chapter's text (glue it; never type it).

    The mean over seeds of ``arm`` in claim ``claim_id`` of lab ``key`` (a ratio claim's ratio
    when ``arm`` is None; a curve claim's value at the sweep setting ``at``), to ``digits``
    significant digits, followed by its 95% t-interval when ``interval`` is true. With
    ``control=True`` the number comes from the lab's untrained control (the same claim measured
    with training disabled, ``notebooks/results/untrained/``). A sweep's stored per-setting arm
    (e.g. ``"beta at 10"``) may be named directly instead of ``arm`` with ``at``.
    """
    from . import results as R
    from .claims import setting_value

    judged = _judged_lab(key, root)
    if judged is None:
        raise ValueError(f"no stored record for lab {key!r}")
    j = next((j for j in judged if j.decl.id == claim_id), None)
    if j is None:
        raise ValueError(f"lab {key!r} has no claim {claim_id!r}; it has "
                         f"{', '.join(x.decl.id for x in judged)}")
    if control:
        if j.control is None:
            raise ValueError(f"{key}/{claim_id}: no untrained control recorded "
                             "(run scripts/measure_controls.py)")
        j = j.control
    d = j.decl
    name = arm if arm is not None else ("ratio" if d.kind == "ratio" else None)
    if name is None:
        raise ValueError(f"{key}/{claim_id}: name the arm, one of {', '.join(d.arms)}")
    if d.kind == "curve" and not (at is None and name in j.stored.get("values", {})):
        points = j.stored.get("points", [])
        point = next((p for p in points if at is not None and setting_value(p[d.over]) == at),
                     None)
        if point is None:
            raise ValueError(f"{key}/{claim_id}: give at= one of the {d.over} values "
                             f"{[setting_value(p[d.over]) for p in points]}")
        values = point.get(name)
    else:
        values = j.stored.get("values", {}).get(name)
    if not values:
        raise ValueError(f"{key}/{claim_id}: no arm {name!r}; arms: {', '.join(d.arms)}")
    mean, low, high = R.t_interval(values) if len(values) > 1 else (values[0],) * 3
    text = f"{mean:.{digits}g}"
    return text + (f" [{low:.{digits}g}, {high:.{digits}g}]" if interval else "")
