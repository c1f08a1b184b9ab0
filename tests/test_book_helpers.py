"""The chapter helpers in diffnotes.book."""

import pytest

from diffnotes.book import docstring_math, paper_numbers, show_proof


def test_docstring_math_reads_the_math_block():
    def loss():
        """A loss.

        .. math::
           L = \\mathbb{E}\\,\\|x\\|^2

        More text.
        """

    assert docstring_math(loss).data == r"L = \mathbb{E}\,\|x\|^2"


def test_docstring_math_without_block_is_a_clear_error():
    def plain():
        """No formula here."""

    with pytest.raises(ValueError, match="no '.. math::' block"):
        docstring_math(plain)


def test_paper_numbers_table_and_sentence():
    assert "| FID (uncond.) | 3.17" in paper_numbers("ho2020denoising").data
    assert "holds no headline numbers" in paper_numbers("hyvarinen2005estimation").data


def test_show_proof_verifies_and_displays(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    show_proof("vp_unit_variance")
    heading, statement = shown
    assert "symbolic check: verified" in heading.data
    assert statement.data.strip()


def test_notes_corrections_table():
    from diffnotes.book import notes_corrections

    table = notes_corrections("nichol2021improved").data
    assert table.startswith("| field | the notes said | correction |")
    assert "2.94" in table  # the notes' FID column held iDDPM's bits/dim
    assert "no correction" in notes_corrections("hyvarinen2005estimation").data


def test_claim_value_reads_the_stored_record():
    from diffnotes import results as R
    from diffnotes.book import claim_value
    from diffnotes.claims import judge_all

    rec, judged = next((r, js) for r, js in judge_all() if r["key"] == "vincent2011connection")
    j = judged[1]
    values = j.stored["values"][j.decl.arms[0]]
    mean, low, high = R.t_interval(values)
    assert claim_value(rec["key"], j.decl.id, j.decl.arms[0]) == f"{mean:.3g}"
    assert claim_value(rec["key"], j.decl.id, j.decl.arms[0], interval=True) == \
        f"{mean:.3g} [{low:.3g}, {high:.3g}]"
    with pytest.raises(ValueError, match="has no claim"):
        claim_value(rec["key"], "no-such-claim", "x")
    with pytest.raises(ValueError, match="no arm"):
        claim_value(rec["key"], j.decl.id, "no-such-arm")


def test_control_note_names_every_claim_the_untrained_control_earns(tmp_path):
    import json

    from diffnotes import results as R
    from diffnotes.book import control_note

    records = R.load_records()
    rec = records[0]
    folder = tmp_path / R.RESULTS_DIR
    (folder / R.CONTROL_SUBDIR).mkdir(parents=True)
    for r in records:
        (folder / f"{r['key']}.json").write_text(json.dumps(r))
    (folder / R.CONTROL_SUBDIR / f"{rec['key']}.json").write_text(json.dumps(rec))
    # the "control" equals the trained record: every claim that holds is earned by it too
    text = control_note(rec["key"], root=tmp_path).data
    from diffnotes import claims as C

    decls = {d.claim: d for d in C.load()[rec["key"]]}
    holding = [c["claim"] for c in rec["claims"] if c["verdict"] == R.HOLDS
               and not decls[c["claim"]].control.startswith((C.NOT_APPLICABLE, C.IN_THE_CLAIM))]
    assert holding and all(f"*{c}*" in text for c in holding)
    assert "not counted as evidence of what training achieved" in text
    (tmp_path / R.RESULTS_DIR / R.CONTROL_SUBDIR / f"{rec['key']}.json").unlink()
    assert "not been measured" in control_note(rec["key"], root=tmp_path).data


def test_claim_value_reads_the_untrained_control():
    from diffnotes import claims as C
    from diffnotes import results as R
    from diffnotes.book import claim_value

    rec, js = next((r, js) for r, js in C.judge_all()
                   if any(j.decl.kind == "compare" and j.control for j in js))
    j = next(j for j in js if j.decl.kind == "compare" and j.control)
    values = j.control.stored["values"][j.decl.arms[0]]
    assert claim_value(rec["key"], j.decl.id, j.decl.arms[0], control=True) == \
        f"{R.mean(values):.3g}"
