"""The GPU throughput benchmark runs end to end on the CPU at a tiny size (a smoke test: it checks
the result's keys and their meaning, never the speed)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_throughput.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_configs_and_a_missing_gpu_fail_with_one_clear_line(capsys):
    bench = _bench()
    with pytest.raises(ValueError, match="bad config 'fast/nchw/bf16': expected mode/layout/dtype"):
        bench.parse_config("fast/nchw/bf16")
    assert bench.parse_config("default/nhwc/bf16") == ("default", "nhwc", "bf16")
    assert bench.main(["--device", "cpu", "--configs", "none/nhwc/fp16"]) == 2
    assert "error: bad config 'none/nhwc/fp16'" in capsys.readouterr().err
    if not __import__("torch").cuda.is_available():
        assert bench.main(["--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers not installed")
def test_cpu_smoke_run_writes_every_key(tmp_path):
    out = tmp_path / "gpu_results.json"
    assert _bench().main(["--device", "cpu", "--batch", "4", "--steps", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("gpu", "torch", "ours_img_s", "diffusers_img_s", "throughput_ratio_vs_diffusers", "mfu"):
        assert key in result, key
    assert result["ours_img_s"] > 0 and result["diffusers_img_s"] > 0 and 0 < result["mfu"]
    assert math.isclose(result["throughput_ratio_vs_diffusers"],
                        result["ours_img_s"] / result["diffusers_img_s"])
    # The same architecture on both sides: the same parameter count's FLOPs, counted independently.
    flops = result["flops_per_image"]
    assert math.isclose(flops["ours"], flops["diffusers"], rel_tol=0.01)
    assert {r["side"] for r in result["rows"]} == {"ours", "diffusers"}
    table = out.with_suffix(".md").read_text()
    assert "| none/nchw/fp32 |" in table and "MFU" in table
