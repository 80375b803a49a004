"""Shared fixtures: tiny generated videos (PyAV H.264) with known content."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vadpipe.video import write_video

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def synthetic_frames(n: int, width: int = 64, height: int = 48, seed: int = 0):
    """Frames whose mean brightness encodes their index (to check order) over a fixed texture."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    for i in range(n):
        level = np.uint8(40 + (i * 7) % 180)
        frame = texture + level
        frame[: height // 4, : width // 4] = (255, 0, 0)  # a red corner to check channel order
        yield frame


def make_video(path: Path, n: int, width: int = 64, height: int = 48, fps: float = 25.0, seed: int = 0) -> Path:
    write_video(path, synthetic_frames(n, width, height, seed), fps=fps, crf=12)
    return path


@pytest.fixture
def video_factory(tmp_path):
    """make(name, frames, width=64, height=48, fps=25) -> path of a fresh H.264 MP4."""

    def make(name: str = "clip.mp4", frames: int = 40, width: int = 64, height: int = 48, fps: float = 25.0,
             seed: int = 0) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return make_video(path, frames, width, height, fps, seed)

    return make


@pytest.fixture
def media_dir() -> Path:
    """The repository's sibling ../shared/media (bikes.mp4, vtest.avi); tests using it skip, saying so, without it."""
    if not MEDIA.is_dir():
        pytest.skip(f"needs the sample media in ../shared/media (not found at {MEDIA})")
    return MEDIA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Backbone tests run single-threaded: on a shared 2-core machine oversubscribed
    OpenMP threads spin (3.6x slower measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def score_clip_with_a_head(folder: Path, config, recipe, frames: int):
    """`vadpipe score` of a fresh 96x72 clip of ``frames`` frames by an untrained seeded head of ``config``
    trained (as its checkpoint says) on ``recipe``'s features: (frame indices, frame scores, the clip's
    JSON report). The clip is re-extracted with the recipe, random Inception weights, on the CPU."""
    import json

    import torch

    from vadpipe.checkpoint import Checkpoint, build_model
    from vadpipe.score import ScoreOptions, run_score
    from vadpipe.score_io import read_scores_csv

    torch.manual_seed(0)
    Checkpoint.of(build_model(config), config, recipe=recipe,
                  calibration={"normal_frame_score_quantiles": {"0.99": 0.5}}).save(folder / "best.pt")
    clip = make_video(folder / "clip.mp4", frames, width=96, height=72, fps=20.0)
    assert run_score([str(clip)], checkpoint=str(folder / "best.pt"), echo=lambda s: None,
                     options=ScoreOptions(out_dir=folder / "out", progress=False)) == 0
    indices, _, scores = read_scores_csv(folder / "out" / "clip.scores.csv")
    return indices, scores, json.loads((folder / "out" / "clip.json").read_text())
