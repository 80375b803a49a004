#!/usr/bin/env bash
# vadpipe on CUDA, one prepared run: CPU/GPU feature agreement for both backbones, then the backbone,
# extraction, head-training and scoring benchmarks on the GPU, then one accuracy run with the head
# trained on the GPU (generated features, seed 0; compare with the README's CPU row).
#   bash tools/gpu_check.sh            (from the repository root, project venv active or PYTHON=...)
# Random backbone weights: speed and numerics do not depend on the weight values, and nothing is
# downloaded. Set SKIP_ACCURACY=1 to stop after the speed figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WORKERS=$(( $(nproc) - 1 > 8 ? 8 : $(nproc) - 1 ))
CLIPS=$(mktemp -d)
trap 'rm -rf "$CLIPS"' EXIT
section() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

section "device and CPU/GPU agreement"
# From a temporary folder: the checkout's vadpipe/ folder alone is not the package (extractors/ and
# models/ map into it when installed), so it must not shadow the installed one.
(cd "$CLIPS" && $PY -) <<'PYEOF'
import tempfile, pathlib, numpy as np, torch
assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CPU threads", torch.get_num_threads())
from vadpipe.video import write_video
from vadpipe.encode import build_recipe, extract_video
from vadpipe.extractors import create_backbone
clip = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
rng = np.random.default_rng(0)
write_video(clip, (rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(40)), fps=25)
for name in ("i3d-inception", "i3d-r50"):
    torch.manual_seed(0)
    cpu_bb = create_backbone(name, weights="random", device="cpu")
    gpu_bb = create_backbone(name, weights="random", device="cuda")
    gpu_bb.module.load_state_dict(cpu_bb.module.state_dict())     # the same random weights on both devices
    for preset in ("center", "rtfm"):
        fp32 = build_recipe(cpu_bb, preset, compute_dtype="float32")
        ref, _ = extract_video(clip, fp32, cpu_bb, "cpu", batch_size=4)
        gpu, _ = extract_video(clip, fp32, gpu_bb, "cuda", batch_size=4)
        bf16, _ = extract_video(clip, build_recipe(gpu_bb, preset, device="cuda"), gpu_bb, "cuda", batch_size=4)
        rel = lambda a: float(np.linalg.norm(a - ref) / np.linalg.norm(ref))
        print(f"{name} {preset}: shape {gpu.shape}; cuda fp32 vs cpu fp32 max|diff| {np.abs(gpu - ref).max():.2e} "
              f"(rel L2 {rel(gpu):.1e}); cuda bf16 vs cpu fp32 rel L2 {rel(bf16):.1e} (max |feature| {np.abs(ref).max():.2e})")
        assert rel(gpu) <= 1e-3, f"{name} {preset}: CUDA fp32 disagrees with CPU (relative L2 {rel(gpu):.1e})"
PYEOF

section "backbone throughput"
$PY tools/bench_backbones.py --device cuda --batches 1 8 32 --warmup 2 --iters 5

for spec in "i3d-inception center 32" "i3d-r50 rtfm 32"; do
    set -- $spec
    section "vadpipe extract: $1, $2 crops, batch $3, $WORKERS decode workers"
    $PY tools/bench_extract.py --device cuda --backbone "$1" --preset "$2" --batch-size "$3" \
        --workers "$WORKERS" --clips 8 --seconds 20 --sizes 640x360 --skip memory --dir "$CLIPS"
done

section "head training step, UCF size (32+32 videos x 10 crops x 32 segments, D 2048)"
$PY tools/bench_train.py --device cuda --iters 10 --warmup 3
section "head training step, default preset, long windows (16+16 x 256 segments, D 1024, 1 crop)"
$PY tools/bench_train.py --device cuda --preset default --models ltgs --dim 1024 --crops 1 --videos 16 --segments 256 --iters 10 --warmup 3

section "vadpipe score, 60 s 640x360 clip"
$PY tools/bench_score.py --device cuda --weights random --backbones i3d-inception i3d-r50 --crops 1 10 --threads 4 --workdir "$CLIPS"

if [ -z "${SKIP_ACCURACY:-}" ]; then
    section "accuracy, head trained on the GPU: generated features, seed 0"
    $PY tools/bench_accuracy.py --bench features --device cuda --seeds 0 --cache "$CLIPS/bench" \
        --config default=default --config "rtfm=paper:rtfm+train.epochs=60+train.min_iterations=100" \
        --config "paper=paper+train.epochs=60+train.min_iterations=100"
fi
section "done"
