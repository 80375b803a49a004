#!/usr/bin/env bash
# `vadpipe extract` on CUDA: CPU/GPU feature agreement, then the extraction benchmark on the GPU.
#   bash tools/gpu_check_extract.sh            (from the repository root, project venv active or PYTHON=...)
# Random weights: speed and numerics do not depend on the weight values, and nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
WORKERS=$(( $(nproc) - 1 > 8 ? 8 : $(nproc) - 1 ))

$PY - <<'PYEOF'
import tempfile, pathlib, numpy as np, torch
assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0))
from vadpipe.video import write_video
from vadpipe.encode import build_recipe, extract_video
from vadpipe.extractors import create_backbone
clip = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
rng = np.random.default_rng(0)
write_video(clip, (rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(40)), fps=25)
cpu_bb = create_backbone("i3d-r50", weights="random", device="cpu")
gpu_bb = create_backbone("i3d-r50", weights="random", device="cuda")
for preset in ("center", "rtfm"):
    fp32 = build_recipe(cpu_bb, preset, compute_dtype="float32")
    ref, _ = extract_video(clip, fp32, cpu_bb, "cpu", batch_size=4)
    gpu, _ = extract_video(clip, fp32, gpu_bb, "cuda", batch_size=4)
    bf16, _ = extract_video(clip, build_recipe(gpu_bb, preset, device="cuda"), gpu_bb, "cuda", batch_size=4)
    scale = np.abs(ref).mean()
    print(f"{preset}: shape {gpu.shape}; cuda fp32 vs cpu fp32 max|diff| {np.abs(gpu - ref).max():.2e}; "
          f"cuda bf16 vs cpu fp32 max|diff| {np.abs(bf16 - ref).max():.2e} (mean |feature| {scale:.2e})")
    assert np.abs(gpu - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max()), "CUDA fp32 disagrees with CPU"
PYEOF

$PY tools/bench_extract.py --device cuda --backbone i3d-r50 --preset rtfm --batch-size 32 \
    --workers "$WORKERS" --clips 8 --seconds 20 --skip memory
