"""tools/relight_clips.py: the same clips under other light (docs/localisation.md, "Light that changes")."""
from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from relight_clips import frame_light, relight_video, relit  # noqa: E402

from conftest import make_video  # noqa: E402


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as src:
        return np.stack([f.to_ndarray(format="rgb24") for f in src.decode(video=0)]).astype(np.float64)


def test_relit_scales_the_values_and_adds_one_noise_draw_to_the_three_channels():
    image = np.full((4, 5, 3), 200, np.uint8)
    image[0, 0] = (10, 20, 255)
    rng = np.random.default_rng(0)
    assert relit(image, 0.5, 0.0, rng)[0, 0].tolist() == [5, 10, 128] and (relit(image, 0.5, 0.0, rng)[1:] == 100).all()
    noisy = relit(image, 0.25, 6.0, np.random.default_rng(1)).astype(int)
    assert (noisy[..., 0] == noisy[..., 1])[1:].all() and np.std(noisy[1:, :, 0] - 50) > 1   # luminance noise
    assert relit(image, 2.0, 0.0, rng).max() == 255                                          # clipped
    flat = np.full((40, 40, 3), 100, np.uint8)
    blurred = relit(flat, 1.0, 6.0, np.random.default_rng(2), blur=1.0).astype(float)
    assert np.std(blurred[5:-5, 5:-5, 0]) < 0.5 * np.std(relit(flat, 1.0, 6.0, np.random.default_rng(2))[..., 0])


def test_a_relit_clip_keeps_its_frames_rate_and_size_and_is_darker_by_the_gain(tmp_path):
    src = make_video(tmp_path / "clip.mp4", 12, width=64, height=48, fps=10.0)
    dst = tmp_path / "out" / "clip.mp4"
    dst.parent.mkdir()
    assert relight_video(src, dst, 0.5, 0.0, ramp_from=None, seed=0) == 12
    assert not list(dst.parent.glob("*.part*"))                     # written through a temporary file
    before, after = _frames(src), _frames(dst)
    assert after.shape == before.shape
    with av.open(str(dst)) as out:
        assert out.streams.video[0].average_rate == 10
    assert abs(after.mean() / before.mean() - 0.5) < 0.03           # H.264 both ways: close, not exact
    ramp = tmp_path / "out" / "ramp.mp4"
    relight_video(src, ramp, 0.25, 0.0, ramp_from=1.0, seed=0)
    ratio = _frames(ramp).mean(axis=(1, 2, 3)) / before.mean(axis=(1, 2, 3))
    assert abs(ratio[0] - 1) < 0.05 and abs(ratio[-1] - 0.25) < 0.05 and np.all(np.diff(ratio) < 0.05)


def test_a_fade_joins_up_clip_to_clip_and_its_noise_grows_as_the_light_falls():
    assert frame_light(0.25, 6.0, None, 0.3) == (0.25, 6.0)                     # no fade: the same throughout
    assert frame_light(0.25, 6.0, 1.0, 0.0) == (1.0, 0.0)                       # full light: no noise yet
    assert frame_light(0.25, 6.0, 1.0, 1.0) == (0.25, 6.0)
    # the end of one clip's fade (1 -> 0.7, noise 2.4 at 0.7) is the start of the next (0.7 -> 0.25, noise 6)
    assert frame_light(0.7, 2.4, 1.0, 1.0) == pytest.approx(frame_light(0.25, 6.0, 0.7, 0.0))
