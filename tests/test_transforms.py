"""Preprocessing: resize rule, crop geometry and order, value ranges, presets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from vadpipe.errors import ConfigError
from vadpipe.extractors import make_recipe, preprocess
from vadpipe.extractors.transforms import (LIGHT_GAIN_RANGE, crop, crop_boxes, light_gains, light_snippets,
                                           light_target, resize_short_side)
from vadpipe.video import Snippet


def coordinate_frames(n: int, t: int, h: int, w: int) -> torch.Tensor:
    """uint8 (N, T, H, W, 3): R = row, G = column, B = 10 * snippet + frame, so every crop is traceable."""
    rows = torch.arange(h).view(1, 1, h, 1).expand(n, t, h, w)
    cols = torch.arange(w).view(1, 1, 1, w).expand(n, t, h, w)
    ids = (10 * torch.arange(n).view(n, 1, 1, 1) + torch.arange(t).view(1, t, 1, 1)).expand(n, t, h, w)
    return torch.stack([rows, cols, ids], dim=-1).to(torch.uint8)


def raw(recipe, **changes):
    """The recipe with value range [0, 255] and no normalisation, so outputs are the pixels."""
    return recipe.replace(value_range=(0.0, 255.0), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), **changes)


def centred(recipe):
    """The recipe on [0, 255] centred at mid-grey: outputs are pixels - 127.5, and light's target is 127.5."""
    return recipe.replace(value_range=(0.0, 255.0), mean=(127.5,) * 3, std=(1.0, 1.0, 1.0))


def test_short_side_resize():
    frames = torch.zeros(1, 3, 272, 640, dtype=torch.uint8)
    assert resize_short_side(frames, 256).shape == (1, 3, 256, 602)   # 640 * 256 / 272 = 602.35
    portrait = torch.zeros(2, 1, 3, 640, 360, dtype=torch.uint8)
    assert resize_short_side(portrait, 128).shape == (2, 1, 3, 228, 128)  # 227.56 rounds up
    frames = torch.zeros(2, 3, 40, 60, dtype=torch.uint8)
    assert resize_short_side(frames, 20).shape == (2, 3, 20, 30)
    assert resize_short_side(frames, 40) is frames          # already at size: untouched


def test_ten_crop_order_matches_torchvision():
    image = torch.arange(3 * 9 * 12, dtype=torch.float32).view(3, 9, 12)
    ours = crop(image, 5, "ten")
    theirs = TF.ten_crop(image, [5, 5])
    assert ours.shape == (10, 3, 5, 5)
    for i in range(10):
        assert torch.equal(ours[i], theirs[i]), f"crop {i}"
    # documented geometry: 0 top-left ... 4 center, 5-9 the same on the mirrored frame
    assert crop_boxes(9, 12, 5, "ten")[:5] == [(0, 0, False), (0, 7, False), (4, 0, False), (4, 7, False),
                                               (2, 4, False)]
    assert torch.equal(ours[5], ours[1].flip(-1)) and torch.equal(ours[6], ours[0].flip(-1))
    assert torch.equal(ours[9], TF.center_crop(image.flip(-1), [5, 5]))
    assert torch.equal(crop(image, 5, "center")[0], TF.center_crop(image, [5, 5]))


def test_preprocess_center_geometry_and_snippet_major_order():
    frames = coordinate_frames(2, 4, 20, 30)          # short side 20 = recipe's: no resize
    recipe = raw(make_recipe("i3d-r50", "center"), resize_short_side=20, crop_size=10)
    out = preprocess(frames, recipe)
    assert out.shape == (2, 3, 4, 10, 10) and out.dtype == torch.float32
    assert out[0, 0, 0, 0, 0].item() == 5 and out[0, 1, 0, 0, 0].item() == 10   # top = 5, left = 10
    assert out[1, 2, 3, 0, 0].item() == 13            # snippet 1, frame 3 in the blue channel


def test_preprocess_whole_frame_keeps_every_pixel_and_the_aspect():
    frames = coordinate_frames(2, 4, 20, 36)
    recipe = raw(make_recipe("i3d-inception", "frame"), resize_short_side=20)
    assert (recipe.crop, recipe.crop_size, recipe.num_crops) == ("none", 0, 1)
    out = preprocess(frames, recipe)
    assert out.shape == (2, 3, 4, 20, 36)            # no crop: the whole frame, snippet-major
    assert out[0, 0, 0, -1, 0].item() == 19 and out[0, 1, 0, 0, -1].item() == 35
    assert out[1, 2, 3, 0, 0].item() == 13
    smaller = preprocess(frames, raw(make_recipe("i3d-inception", "frame"), resize_short_side=10))
    assert smaller.shape == (2, 3, 4, 10, 18)         # short side 10, long side round(36 * 10 / 20)


def test_preprocess_mirror_gives_the_whole_frame_then_its_mirror_image_per_snippet():
    frames = coordinate_frames(2, 4, 20, 36)
    whole = raw(make_recipe("i3d-inception", "frame"), resize_short_side=20)
    mirror = whole.replace(crop="mirror")
    assert (mirror.crop_size, mirror.input_crops, mirror.num_crops) == (0, 2, 2)
    assert mirror.recipe_id != whole.recipe_id
    out, plain = preprocess(frames, mirror), preprocess(frames, whole)
    assert out.shape == (2 * 2, 3, 4, 20, 36)                 # snippet-major: s0 frame, s0 mirror, s1 ...
    assert torch.equal(out[0::2], plain)                      # view 0 is the frame recipe's input
    assert torch.equal(out[1::2], plain.flip(-1))             # view 1 its mirror image
    assert out[1, 1, 0, 0, 0].item() == 35 and out[3, 2, 3, 0, 0].item() == 13
    assert make_recipe("i3d-inception", "frame", crop="mirror", crop_size=224).crop_size == 0


def test_light_mean_gives_a_darker_snippet_the_input_of_the_snippet_and_one_gain_to_all_its_crops():
    frames = coordinate_frames(2, 4, 20, 36) * 2 + 100                    # even pixel values, mid-grey
    recipe = make_recipe("i3d-inception", "rtfm", resize_short_side=20, crop_size=10)
    light = recipe.replace(light="mean")
    assert light.recipe_id != recipe.recipe_id and light_target(light) == 127.5
    assert light_target(make_recipe("i3d-r50", "rtfm")) == pytest.approx(0.45 * 255)
    half = frames // 2
    torch.testing.assert_close(preprocess(half, light), preprocess(frames, light))
    assert not torch.allclose(preprocess(half, recipe), preprocess(frames, recipe))
    gains = light_gains(frames.permute(0, 1, 4, 2, 3), light)
    level = frames.float().mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(gains, 127.5 / level)
    each_crop = preprocess(frames, raw(recipe)) * gains.repeat_interleave(10).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(preprocess(frames, centred(light)), each_crop - 127.5)


def test_light_mean_keeps_its_gain_within_three_stops():
    black = torch.zeros(1, 2, 8, 8, 3, dtype=torch.uint8)
    white = torch.full((1, 2, 8, 8, 3), 255, dtype=torch.uint8)
    nearly_black = black + 1
    light = make_recipe("i3d-inception", "frame", resize_short_side=8, light="mean")
    assert light_gains(black, light).item() == LIGHT_GAIN_RANGE[1]
    assert light_gains(nearly_black, light).item() == LIGHT_GAIN_RANGE[1]   # 127.5 / 1 is beyond 8
    assert light_gains(white, light).item() == pytest.approx(0.5)
    torch.testing.assert_close(preprocess(black, light), preprocess(black, light.replace(light="")))
    lamp = black + 20
    lamp[..., 0, 0, :] = 250                                             # a lamp in a dark scene
    pixels = preprocess(lamp, centred(light)) + 127.5
    assert pixels[..., 0, 0].max().item() == 255.0                        # clipped, as a camera's exposure
    assert pixels[..., 1, 1].max().item() == pytest.approx(20 * light_gains(lamp, light).item())
    with pytest.raises(ConfigError, match="unknown light normalisation"):
        make_recipe("i3d-inception", "frame", light="auto")


def test_preprocess_ten_crop_layout():
    frames = coordinate_frames(2, 3, 20, 30)
    recipe = raw(make_recipe("i3d-r50", "rtfm"), resize_short_side=20, crop_size=10)
    out = preprocess(frames, recipe)
    assert out.shape == (2 * 10, 3, 3, 10, 10)
    for snippet in range(2):
        block = out[10 * snippet:10 * (snippet + 1)]
        assert (block[:, 2, 1] == 10 * snippet + 1).all()                 # all 10 crops of this snippet
        corners = [(block[c, 0, 0, 0, 0].item(), block[c, 1, 0, 0, 0].item()) for c in range(10)]
        assert corners[:5] == [(0, 0), (0, 20), (10, 0), (10, 20), (5, 10)]
        assert corners[5:] == [(0, 29), (0, 9), (10, 29), (10, 9), (5, 19)]  # mirrored: columns run backwards
        assert (block[5, 1, 0, 0] == torch.arange(29, 19, -1)).all()


def test_preprocess_resizes_to_the_recipe_short_side():
    frames = torch.full((1, 2, 48, 80, 3), 200, dtype=torch.uint8)
    recipe = raw(make_recipe("i3d-inception", "tiny"), resize_short_side=32, crop_size=24)
    out = preprocess(frames, recipe)
    assert out.shape == (1, 3, 2, 24, 24)
    assert torch.allclose(out, torch.full_like(out, 200.0))  # a flat frame stays flat through the resize


@pytest.mark.parametrize("backbone,lo,hi", [
    ("i3d-r50", (0.0 - 0.45) / 0.225, (1.0 - 0.45) / 0.225),
    ("i3d-inception", -1.0, 1.0),
])
def test_value_ranges(backbone, lo, hi):
    recipe = make_recipe(backbone, "tiny")
    frames = torch.zeros(1, 1, 112, 112, 3, dtype=torch.uint8)
    frames[..., 56:, :] = 255
    out = preprocess(frames, recipe.replace(resize_short_side=112))
    assert out.min().item() == pytest.approx(lo, abs=1e-5) and out.max().item() == pytest.approx(hi, abs=1e-5)
    mid = preprocess(torch.full((1, 1, 112, 112, 3), 128, dtype=torch.uint8), recipe.replace(resize_short_side=112))
    expected = recipe.value_range[0] + (recipe.value_range[1] - recipe.value_range[0]) * 128 / 255
    assert mid[0, 0, 0, 0, 0].item() == pytest.approx((expected - recipe.mean[0]) / recipe.std[0], abs=1e-5)


def test_channel_order_is_kept():
    frames = torch.zeros(1, 1, 8, 8, 3, dtype=torch.uint8)
    frames[..., 0] = 255                                     # pure red
    recipe = raw(make_recipe("i3d-r50", "tiny"), resize_short_side=8, crop_size=8)
    out = preprocess(frames, recipe)
    assert out[0, 0].min() == 255 and out[0, 1:].max() == 0


def test_preprocess_rejects_bad_input():
    recipe = make_recipe("i3d-r50", "tiny")
    with pytest.raises(ConfigError, match="uint8"):
        preprocess(torch.zeros(1, 2, 128, 128, 3), recipe)
    with pytest.raises(ConfigError, match="N, T, H, W, 3"):
        preprocess(torch.zeros(2, 128, 128, 3, dtype=torch.uint8), recipe)
    with pytest.raises(ConfigError, match="larger"):
        preprocess(torch.zeros(1, 2, 100, 100, 3, dtype=torch.uint8), recipe.replace(resize_short_side=100,
                                                                                       crop_size=112))


def test_presets_fix_the_recipe():
    rtfm = make_recipe("i3d-r50", "rtfm", weights_sha256="ab" * 32)
    assert (rtfm.resize_short_side, rtfm.crop, rtfm.crop_size, rtfm.num_crops) == (256, "ten", 224, 10)
    assert (rtfm.snippet_len, rtfm.stride, rtfm.feature_dim) == (16, 16, 2048)
    assert rtfm.mean == (0.45,) * 3 and rtfm.std == (0.225,) * 3 and rtfm.value_range == (0.0, 1.0)
    assert rtfm.compute_dtype == "float32" and rtfm.weights_sha256 == "ab" * 32
    center = make_recipe("i3d-inception", "center")
    assert (center.crop, center.num_crops, center.crop_size, center.feature_dim) == ("center", 1, 224, 1024)
    assert center.value_range == (-1.0, 1.0) and center.mean == (0.0,) * 3 and center.std == (1.0,) * 3
    tiny = make_recipe("i3d-inception", "tiny", compute_dtype="bfloat16")
    assert (tiny.resize_short_side, tiny.crop_size, tiny.compute_dtype) == (128, 112, "bfloat16")
    assert tiny.recipe_id != tiny.replace(compute_dtype="float32").recipe_id  # precision is part of the recipe
    assert make_recipe("i3d-r50", "rtfm").recipe_id != make_recipe("i3d-inception", "rtfm").recipe_id
    frame = make_recipe("i3d-inception", "frame")
    assert (frame.resize_short_side, frame.crop, frame.crop_size, frame.num_crops) == (224, "none", 0, 1)
    # asking for no crop on a cropping preset drops its crop size: one recipe for one computation
    assert make_recipe("i3d-inception", "center", crop="none").recipe_id == frame.replace(resize_short_side=256).recipe_id


@pytest.mark.parametrize("kwargs,match", [
    (dict(preset="huge"), "unknown preset"),
    (dict(compute_dtype="int8"), "compute dtype"),
    (dict(snippet_len=4), "at least 8"),
    (dict(crop="five"), "crop mode"),
    (dict(colour="yes"), "unknown recipe field"),
])
def test_bad_recipes(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_recipe("i3d-r50", **kwargs)


def _snippet(index: int, levels, valid: int = 0) -> Snippet:
    """A 2x2 snippet whose frames are flat at ``levels`` (one value a frame)."""
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in levels])
    return Snippet(index, 2 * index, frames, valid or len(levels))


def test_light_running_brings_each_snippet_to_the_level_of_the_video_so_far():
    running = make_recipe("i3d-inception", "frame", resize_short_side=8, light="running")
    video = [_snippet(0, [40, 60]), _snippet(1, [100, 100]), _snippet(2, [140, 140], valid=1)]
    out = list(light_snippets(video, running))
    assert [s.index for s in out] == [0, 1, 2] and all(s.frames.dtype == np.uint8 for s in out)
    assert out[0].frames[:, 0, 0, 0].tolist() == [102, 153]    # its own level 50: gain 2.55
    assert out[1].frames[:, 0, 0, 0].tolist() == [170, 170]    # the level so far 75: gain 1.7, not 1.275
    assert out[2].frames[:, 0, 0, 0].tolist() == [203, 203]    # 88 over the 5 real frames (the pad not counted)
    alone = list(light_snippets(video, running, window=1))     # a window of one: each snippet's own level
    assert all(abs(int(v) - 127.5) <= 0.5 for s in alone[1:] for v in s.frames.ravel())
    as_cut = list(light_snippets(video, running.replace(light="mean")))          # mean: applied in preprocess
    assert len(as_cut) == 3 and all(a is b for a, b in zip(as_cut, video))
    assert light_gains(torch.zeros(1, 2, 3, 2, 2, dtype=torch.uint8), running) is None
    dim = list(light_snippets([_snippet(0, [4, 4]), _snippet(1, [0, 0])], running))
    assert dim[0].frames.max() == 32 and dim[1].frames.max() == 0   # within three stops; black stays black
