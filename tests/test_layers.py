"""Stored network layers (``vadpipe extract --layers``): the recipe and the encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vadpipe.errors import ConfigError

torch.set_num_threads(1)


def test_layer_recipe_keeps_old_ids_and_stores_each_endpoint_mean_side_by_side():
    from vadpipe.encode import SnippetEncoder, build_recipe
    from vadpipe.extractors import create_backbone
    from vadpipe.recipe import Recipe

    bb = create_backbone("i3d-inception", weights="random")
    plain = build_recipe(bb, "frame", short_side=64)
    both = build_recipe(bb, "frame", short_side=64, layers="Mixed_4f,Mixed_5c")
    assert "layers" not in plain._feature_fields() and plain.layer_spans == {}
    assert both.layers == (("Mixed_4f", 832), ("Mixed_5c", 1024)) and both.feature_dim == 1856
    assert both.layer_spans == {"Mixed_4f": (0, 832), "Mixed_5c": (832, 1856)}
    assert both.recipe_id != plain.recipe_id and Recipe.from_dict(both.to_dict()) == both
    assert any(d.startswith("layers:") for d in both.differences(plain))    # a mismatch names it
    clips = torch.randint(0, 255, (2, 16, 64, 96, 3), dtype=torch.uint8)
    stored = SnippetEncoder(bb, both, "cpu", 1)([clips])
    whole = SnippetEncoder(bb, plain, "cpu", 1)([clips])
    assert stored.shape == (2, 1, 1856)
    assert np.allclose(stored[:, 0, 832:], whole[:, 0], atol=1e-5)        # the last block is the usual features
    from vadpipe.extractors.transforms import preprocess

    x = preprocess(clips, both)
    with torch.no_grad():
        mid = bb.module.forward_endpoints(x)["Mixed_4f"].mean(dim=(2, 3, 4))
    assert np.allclose(stored[:, 0, :832], mid.numpy(), atol=1e-5)


@pytest.mark.parametrize("layers, backbone, match", [
    ("Mixed_9z", "i3d-inception", "Mixed_4f"),           # unknown endpoint: the known ones listed
    ("Mixed_5c,Mixed_5c", "i3d-inception", "distinct"),
    ("res4", "i3d-r50", "stores only its own features; backbones with layers: i3d-inception"),
])
def test_bad_layers_are_one_line_config_errors(layers, backbone, match):
    from vadpipe.encode import build_recipe
    from vadpipe.extractors import create_backbone

    with pytest.raises(ConfigError, match=match):
        build_recipe(create_backbone(backbone, weights="random"), "tiny", layers=layers)
    with pytest.raises(ConfigError, match="cannot be combined"):
        build_recipe(create_backbone("i3d-inception", weights="random"), "frame", regions="2x2", layers="Mixed_5c")


def test_extract_cli_stores_the_layers_and_refuses_bad_ones_in_one_line(tmp_path):
    from click.testing import CliRunner

    from conftest import make_video
    from vadpipe.cli import main
    from vadpipe.recipe import load_recipe

    make_video(tmp_path / "videos" / "Fighting" / "a.mp4", 20)
    args = ["extract", str(tmp_path / "videos"), "--out", str(tmp_path / "f"), "--backbone", "i3d-inception",
            "--weights", "random", "--preset", "tiny", "--workers", "0", "--no-progress"]
    result = CliRunner().invoke(main, args + ["--layers", "Mixed_4f,Mixed_5c"])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "f" / "Fighting__a.npy").shape == (2, 1, 1856)
    assert load_recipe(tmp_path / "f").layer_spans == {"Mixed_4f": (0, 832), "Mixed_5c": (832, 1856)}
    bad = CliRunner().invoke(main, args + ["--out", str(tmp_path / "g"), "--layers", "Mixed_4z"])
    assert bad.exit_code != 0 and "--layers 'Mixed_4z'" in bad.output and "Traceback" not in bad.output

