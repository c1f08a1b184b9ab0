#!/usr/bin/env bash
# The one GPU check (issue 17): the CUDA test suite, then the throughput benchmark.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on a CUDA machine
#
# Budget: at most 8 minutes on one H100/H200 (each part has its own time limit below, so an
# overrun fails here instead of running on). Writes benchmarks/gpu_results.json (keys gpu, torch,
# ours_img_s, diffusers_img_s, throughput_ratio_vs_diffusers, mfu, plus every config's row) and
# benchmarks/gpu_check.log. Without CUDA it stops at once with one line saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
LOG=benchmarks/gpu_check.log
SUITE_LIMIT=${SUITE_LIMIT:-210}  # seconds for tests/gpu
BENCH_LIMIT=${BENCH_LIMIT:-270}  # seconds for the benchmark (compilation included)

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: error: CUDA is not available to $PY (torch.cuda.is_available() is False); run this on a GPU machine" >&2
    exit 2
fi
"$PY" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "| torch", torch.__version__)' | tee "$LOG"
start=$SECONDS

echo "gpu_check: 1/2 pytest -m gpu tests/gpu (limit ${SUITE_LIMIT}s)" | tee -a "$LOG"
DIFFNOTES_PROFILE=gpu timeout "$SUITE_LIMIT" "$PY" -m pytest -q -m gpu -rs -p no:cacheprovider tests/gpu 2>&1 | tee -a "$LOG"
echo "gpu_check: suite done after $((SECONDS - start))s" | tee -a "$LOG"

echo "gpu_check: 2/2 benchmarks/bench_throughput.py (limit ${BENCH_LIMIT}s)" | tee -a "$LOG"
# BENCH_CONFIGS overrides the configs (mode/layout/dtype, comma-separated), e.g. to add max-autotune.
timeout "$BENCH_LIMIT" "$PY" benchmarks/bench_throughput.py --device cuda --batch 128 --steps 30 \
    ${BENCH_CONFIGS:+--configs "$BENCH_CONFIGS"} --out benchmarks/gpu_results.json 2>&1 | tee -a "$LOG"
echo "gpu_check: done in $((SECONDS - start))s; results in benchmarks/gpu_results.json" | tee -a "$LOG"
