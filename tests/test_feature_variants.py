"""tools/feature_variants.py: the frame-difference images and the store combiner (the variants measured
in docs/localisation.md, "Motion and time from the same network")."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from feature_variants import combine, difference_images  # noqa: E402

from feature_world import make_store  # noqa: E402
from vadpipe.features import FeatureStore  # noqa: E402


def test_difference_images_are_128_plus_gain_times_the_change_first_one_repeated():
    frames = torch.zeros(1, 3, 3, 2, 2, dtype=torch.uint8)      # (N, T, 3, H, W)
    frames[0, 1] = 10
    frames[0, 2] = 250
    img = difference_images(frames, gain=2.0)
    assert img.dtype == torch.uint8 and img.shape == frames.shape
    assert img[0, :, 0, 0, 0].tolist() == [148, 148, 255]       # +10 twice (first repeated), +240 clipped
    still = torch.full((1, 4, 3, 2, 2), 77, dtype=torch.uint8)
    assert (difference_images(still, 2.0) == 128).all()           # no motion: flat grey, whatever the scene


def test_combine_sets_views_or_features_side_by_side_under_a_recipe_of_its_own(tmp_path):
    make_store(tmp_path / "a", 2, 2, dim=8, seed=0)
    make_store(tmp_path / "b", 2, 2, dim=8, seed=0, t_range=(19, 59))   # the same videos, some a snippet short
    a, b = FeatureStore(tmp_path / "a"), FeatureStore(tmp_path / "b")
    combine("views", tmp_path / "a", tmp_path / "b", tmp_path / "views")
    combine("concat", tmp_path / "a", tmp_path / "b", tmp_path / "cat")
    views, cat = FeatureStore(tmp_path / "views"), FeatureStore(tmp_path / "cat")
    assert views.recipe().crop == "mirror" and cat.recipe().feature_dim == 16
    assert len({a.recipe().recipe_id, views.recipe().recipe_id, cat.recipe().recipe_id}) == 3
    others = b.all_records()
    shorter = 0
    for vid, record in a.all_records().items():
        x, y = a.load(record), b.load(others[vid])
        two, wide = views.load(views.all_records()[vid]), cat.load(cat.all_records()[vid])
        assert two.shape == (len(x), 2, 8) and wide.shape == (len(x), 1, 16)
        np.testing.assert_array_equal(two[:, 0], x[:, 0])
        n = min(len(x), len(y))
        np.testing.assert_array_equal(two[:n, 1], y[:n, 0])
        np.testing.assert_array_equal(wide[:n, 0, 8:], y[:n, 0])
        if len(y) < len(x):                                           # the shorter store's last row repeated
            shorter += 1
            np.testing.assert_array_equal(two[n:, 1], np.repeat(y[-1:, 0], len(x) - n, axis=0))
    assert shorter > 0


def test_noise_views_keep_the_frame_view_and_add_noise_as_large_as_the_mirror_difference(tmp_path):
    from feature_variants import noise_views

    for split, seed in (("train", 0), ("test", 1)):
        make_store(tmp_path / "m" / split, 3, 3, dim=8, crops=2, seed=seed)
    noise_views(tmp_path / "m", tmp_path / "n", seed=0)
    src, out = FeatureStore(tmp_path / "m" / "train"), FeatureStore(tmp_path / "n" / "train")
    assert out.recipe().recipe_id != src.recipe().recipe_id
    records = src.all_records()
    x = np.concatenate([src.load(r) for r in records.values()])
    y = np.concatenate([out.load(out.all_records()[vid]) for vid in records])
    np.testing.assert_array_equal(y[:, 0], x[:, 0])
    assert (y[:, 1] >= 0).all() and not np.array_equal(y[:, 1], y[:, 0])
    want = np.diff(x, axis=1)[:, 0].std(axis=0)
    got = (y[:, 1] - y[:, 0])[y[:, 1] > 0].std(axis=0)          # where the clip at 0 did not bite
    np.testing.assert_allclose(got.mean(), want.mean(), rtol=0.3)
