"""benchmarks/suite_time.py reads stage times from a .ci/run log."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("suite_time", ROOT / "benchmarks" / "suite_time.py")
suite_time = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite_time)

LOG = """pip noise
1293 passed, 20 skipped, 3068 warnings in 266.13s (0:04:26)
245 passed in 545.71s (0:09:05)
\x1b[32m31 passed\x1b[0m in 508.27s (0:08:28)
33 passed in 120.00s (0:02:00)
ci: finished in 2400 s
"""


def test_parse_reads_every_stage_and_the_total():
    parsed = suite_time.parse(LOG)
    assert parsed["total"] == 2400
    assert [(n, s) for _, n, s in parsed["stages"]] == [(1293, 266.13), (245, 545.71),
                                                         (31, 508.27), (33, 120.0)]
    text = suite_time.render(parsed, "a note", "2026-12-07", "x86_64, 2 logical CPUs")
    assert "not met" in text and "| **`.ci/run` in all** | | **40.0** |" in text


def test_parse_names_what_is_missing():
    with pytest.raises(ValueError, match="ci: finished"):
        suite_time.parse("1 passed in 1.0s\n")
    with pytest.raises(ValueError, match="pytest summaries"):
        suite_time.parse("1 passed in 1.0s\nci: finished in 5 s\n")


def test_verdict_is_undecided_when_only_the_untimed_part_could_break_the_goal():
    parsed = {"total": 800, "stages": [("a", 1, 300.0)]}
    assert suite_time.verdict(parsed).startswith("not decided")
    assert suite_time.verdict({"total": 700, "stages": [("a", 1, 300.0)]}) == "met"


def test_the_book_pages_prebuild_is_its_own_stage():
    log = LOG.replace("ci: finished", "prebuild: 33 page(s) executed on 2 process(es), 0 already "
                      "cached, 0 failed, in 218 s\nci: finished")
    parsed = suite_time.parse(log)
    assert parsed["stages"][-1] == ("book pages executed (prebuild, parallel)", 33, 218.0)
    assert "book build's rendering" in suite_time.render(parsed, "", "d", "m")


def test_with_the_installs_timed_apart_the_goal_is_decided():
    parsed = suite_time.parse(LOG.replace("ci: finished in 2400 s",
                                          "ci: installed in 120 s\nci: finished in 800 s"))
    assert parsed["installed"] == 120
    assert suite_time.verdict(parsed) == "met"  # 800 - 120 s = 11.3 minutes
    text = suite_time.render(parsed, "", "d", "m")
    assert "without the installs took 11.3 minutes: met" in text
    parsed["total"] = 900
    assert suite_time.verdict(parsed) == "not met"
