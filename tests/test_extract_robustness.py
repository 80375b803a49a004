"""`vadpipe extract` on awkward inputs (review s61): clips that change size, a full disk, replaced sources,
a crashing decoder beside healthy ones, long and odd names, ids that collide.

Inception I3D with random weights on the ``tiny`` preset, 64x48 generated clips, on the CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_video
from vadpipe.encode import build_recipe
from vadpipe.errors import VideoDecodeError
from vadpipe.extract import ExtractOptions, run_extract
from vadpipe.video import VideoReader


@pytest.fixture(scope="module")
def backbone():
    from vadpipe.extractors import create_backbone

    return create_backbone("i3d-inception", weights="random")


@pytest.fixture(scope="module")
def recipe(backbone):
    return build_recipe(backbone, "tiny")


def run(root, out, recipe, backbone, **options):
    options.setdefault("progress", False)
    options.setdefault("workers", 0)
    options.setdefault("batch_size", 4)
    options.setdefault("clips_per_forward", options["batch_size"])
    log = options.pop("log", lambda msg: None)
    return run_extract(root, out, recipe, backbone, "cpu", ExtractOptions(**options), log=log)


def manifest(out) -> dict:
    lines = (Path(out) / "manifest.jsonl").read_text().splitlines()
    return {rec["id"]: rec for rec in map(json.loads, lines)}


def leftovers(out) -> list:
    return sorted(p.name for p in Path(out).iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


# --- #2: the frame size changes mid-stream -------------------------------------------------------

def size_switching_clip(tmp_path: Path, name: str = "switch.ts") -> Path:
    """Two MPEG-TS segments joined, 24 frames of 64x48 then 24 of 48x32: plays as one clip."""
    first = make_video(tmp_path / "first.ts", 24)
    second = make_video(tmp_path / "second.ts", 24, width=48, height=32, seed=1)
    path = tmp_path / "v" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def test_a_clip_whose_frame_size_changes_mid_stream_is_decoded_at_one_size_and_extracts(tmp_path, backbone, recipe):
    clip = size_switching_clip(tmp_path)
    reader = VideoReader(clip, backend="pyav")
    frames = list(reader.frames())
    assert len(frames) == 48 and {f.shape for f in frames} == {(48, 64, 3)}
    assert any("frame size changed 64x48 -> 48x32 at frame 24" in note for note in reader.info.notes)
    make_video(clip.parent / "plain.mp4", 20)
    summary = run(clip.parent, tmp_path / "f", recipe, backbone)
    recs = manifest(tmp_path / "f")
    assert (summary.ok, summary.failed) == (2, 0)
    assert (recs["switch"]["status"], recs["switch"]["frames"], recs["switch"]["T"]) == ("ok", 48, 3)
    assert np.load(tmp_path / "f" / recs["switch"]["file"]).shape == (3, 1, 1024)


def test_a_constant_size_clip_decodes_to_the_same_bits_as_before(tmp_path):
    """Holding one size passes the frame's own size to swscale: the very conversion of a plain
    ``to_ndarray(format="rgb24")``, so ordinary clips (and their features) are bit-identical."""
    import av

    for i, (w, h) in enumerate([(64, 48), (96, 72), (34, 18)]):
        clip = make_video(tmp_path / f"c{i}.mp4", 20, width=w, height=h, seed=i)
        with av.open(str(clip)) as src:
            plain = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        ours = list(VideoReader(clip, backend="pyav").frames())
        assert len(ours) == len(plain) and all(np.array_equal(a, b) for a, b in zip(ours, plain))


def test_a_frame_source_that_changes_size_is_one_line_naming_the_file():
    class Mixed(VideoReader):
        def __init__(self):
            self.path, self._times = "cam/mixed.mp4", None

        def frames(self):
            yield from (np.zeros((48, 64, 3), np.uint8), np.zeros((32, 48, 3), np.uint8))

    with pytest.raises(VideoDecodeError, match=r"^cam/mixed.mp4: frame size changed 64x48 -> 48x32 at frame 1$"):
        list(Mixed().snippets(16, 16))
