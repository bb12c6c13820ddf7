#!/usr/bin/env bash
# GPU readiness of EMMA fusion, as one prepared run on a machine with a CUDA GPU:
#   1. benchmarks/benchmark_fusion.py --device cuda --settings: EMMA pairs/s at 1024x768 (M3FD's
#      size), batch 1 fp32 NCHW (the baseline) against channels_last, batching, bf16 and
#      torch.compile (target: the best at least 10x the baseline);
#   2. tools/fuse_dataset.py --device cuda on a 4,200-pair 1024x768 M3FD-layout synthetic set:
#      end-to-end pairs/s of the command, start-up included (target: 4,200 pairs in 30 s or less).
# Random-init weights (any weights time the same) unless EMMA_WEIGHTS=PATH.
#
#   bash benchmarks/gpu_check.sh [WORKDIR]          # from the repository root; PYTHON=... to choose
#
# Needs a Python with torch (CUDA), OpenCV, numpy, Pillow and tqdm: the fuse stage loads nothing
# else (no mmengine, no ultralytics), so the lent GPU machines' image runs it as it is. Where one
# is missing and nothing can be installed from the network, download its wheel here first
# (python -m pip download --dest .gpu_wheels --no-deps NAME), carry the folder, and it is
# installed into WORKDIR for this run only. Without a GPU it stops at once with one line and
# exit status 2.
set -euo pipefail

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python
WORK=${1:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE
fail() { echo "gpu_check: error: $*" >&2; exit 2; }

[ -f tools/fuse_dataset.py ] || fail "run from the repository root (tools/fuse_dataset.py not found in $PWD)"
"$PYTHON" -c "import torch" 2>/dev/null || fail "$PYTHON cannot import torch (PYTHON=... to choose another)"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || fail "$PYTHON's torch sees no CUDA GPU here; run this on a machine with one"
NEEDED="import cv2, numpy, PIL, tqdm"
if ! "$PYTHON" -c "$NEEDED" 2>/dev/null; then
    if compgen -G ".gpu_wheels/*.whl" >/dev/null; then
        "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$WORK/site" .gpu_wheels/*.whl
        export PYTHONPATH="$PYTHONPATH:$WORK/site"
    fi
    "$PYTHON" -c "$NEEDED" 2>/dev/null \
        || fail "$PYTHON lacks one of OpenCV, numpy, Pillow, tqdm; put its wheel in .gpu_wheels/ (see the header)"
fi

CORES=$(nproc)
WORKERS=$(( CORES / 2 > 8 ? 8 : (CORES / 2 < 2 ? 2 : CORES / 2) ))  # decode threads and, apart, encode threads
echo "== GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo unknown); $CORES CPU cores; $("$PYTHON" -c 'import torch; print("torch", torch.__version__)')"

WEIGHTS=${EMMA_WEIGHTS:-$WORK/emma_random.pth}
if [ -z "${EMMA_WEIGHTS:-}" ]; then
    "$PYTHON" -c "import sys, torch
from fusion_perception.emma.checkpoint import save_official_state_dict
from fusion_perception.emma.ufuser import UFuser
torch.manual_seed(0); save_official_state_dict(UFuser(), sys.argv[1])" "$WEIGHTS"
fi

echo "== 1. EMMA execution settings at 1024x768 (in process, network + padding + min-max)"
"$PYTHON" benchmarks/benchmark_fusion.py --device cuda --settings --size 1024x768 --batch-size 16 --pairs 256 \
    --weights "$WEIGHTS"

echo "== 2. tools/fuse_dataset.py --device cuda on 4,200 pairs at 1024x768 (end to end, start-up included)"
"$PYTHON" benchmarks/make_large_set.py --out "$WORK/set" --count 4200 --unique 64 --size 1024x768
rm -rf "$WORK/fused"
START=$(date +%s.%N)
"$PYTHON" tools/fuse_dataset.py --data "$WORK/set/m3fd" --method emma --weights "$WEIGHTS" --device cuda \
    --batch-size 16 --param amp=bf16 --workers "$WORKERS" --out "$WORK/fused" --quiet
END=$(date +%s.%N)
"$PYTHON" - "$START" "$END" "$WORK/fused" <<'EOF'
import json, sys
start, end, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
n = json.load(open(f"{out}/manifest.json"))["counts"]["total"]
t = end - start
print(f"end to end: {n} pairs in {t:.1f} s = {n / t:.1f} pairs/s (target: 4200 in <= 30 s, i.e. >= 140 pairs/s)")
EOF
