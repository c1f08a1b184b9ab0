#!/usr/bin/env bash
# Every lab notebook once under the gpu profile, on a CUDA machine (issue 17, item 2).
#
#   bash benchmarks/gpu_notebooks.sh [notebooks/x.ipynb ...]     # default: all of notebooks/
#
# The executed copies go to _build/gpu_notebooks/: the outputs stored in notebooks/ stay those of
# the full profile. Each notebook's record() writes its claims to notebooks/results/gpu/<key>.json
# (diffnotes.results), and this script writes notebooks/results/gpu/times.json: the GPU model,
# torch, the date, and per notebook its wall time and whether it passed. A notebook that fails
# is reported and the next one runs. Without CUDA it stops at once with one line saying so.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
JUPYTER="$(dirname "$PY")/jupyter"
LIMIT=${NOTEBOOK_LIMIT:-3600}  # seconds per notebook
OUT=_build/gpu_notebooks
RESULTS=notebooks/results/gpu

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_notebooks: error: CUDA is not available to $PY (torch.cuda.is_available() is False); run this on a GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT" "$RESULTS"
TIMES=$(mktemp)
[ $# -gt 0 ] || set -- notebooks/*.ipynb
for nb in "$@"; do
    start=$SECONDS
    echo "== $nb (gpu)"
    if env -u MPLBACKEND DIFFNOTES_PROFILE=gpu timeout "$LIMIT" "$JUPYTER" execute --timeout=-1 \
        --kernel_name=python3 --output="../$OUT/{notebook_name}" "$nb"; then
        status=passed
    else
        status="failed (exit $?)"
    fi
    printf '%s\t%s\t%s\n' "$(basename "$nb" .ipynb)" "$((SECONDS - start))" "$status" | tee -a "$TIMES"
done
"$PY" - "$TIMES" "$RESULTS/times.json" <<'PYEOF'
import datetime, json, sys
from pathlib import Path

import torch

rows = [line.split("\t") for line in Path(sys.argv[1]).read_text().splitlines() if line]
path = Path(sys.argv[2])
old = json.loads(path.read_text()) if path.exists() else {"notebooks": {}}
old["notebooks"].update({key: {"seconds": int(sec), "status": status} for key, sec, status in rows})
old.update(gpu=torch.cuda.get_device_name(0), torch=torch.__version__,
           date=datetime.date.today().isoformat(), profile="gpu")
path.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
print(f"wrote {path}")
PYEOF
rm -f "$TIMES"
