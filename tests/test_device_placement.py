"""The statistics fitted after training and the head's forward make every tensor on their inputs' device.

CI has no GPU, so a tensor made without ``device=`` (a CPU identity matrix beside CUDA features)
would only fail on one. Here the default device is ``meta`` while the fit runs on CPU inputs: any
tensor the fit makes without naming a device lands on ``meta`` and mixing it with the inputs fails,
as a CPU tensor mixed with CUDA ones does (tools/gpu_check.sh found exactly that bug).
"""
import numpy as np
import pytest
import torch

from vadpipe.models.normal_stats import NormalStats
from vadpipe.models.pseudo_stage import PseudoStage


@pytest.mark.parametrize("features, context", [("raw", 1), ("l2", 1), ("l2", 3)])
def test_normal_stats_fit_keeps_to_the_inputs_device(features, context):
    torch.manual_seed(0)
    stats = NormalStats(8, features=features, context=context, rank=4)
    videos = [torch.randn(2, 10, 8), torch.randn(1, 7, 8)]
    scores = [torch.rand(2, 10), torch.rand(1, 7)]
    with torch.device("meta"):
        stats.fit(videos, scores)
    assert stats.fitted
    assert all(t.device.type == "cpu" for t in stats.state_dict().values())
    assert torch.isfinite(stats.precision).all() and stats.scale[1] > 0


def test_normal_stats_fit_on_a_single_snippet_keeps_to_the_inputs_device():
    stats = NormalStats(4)
    video, score = torch.randn(1, 4), torch.rand(1)
    with torch.device("meta"):       # one row: no covariance, the shrinkage target alone
        stats.fit(video, score)
    assert torch.isfinite(stats.precision).all() and torch.isfinite(stats.scale).all()   # no spread: 1, not NaN


def test_pseudo_stage_fit_keeps_to_its_buffers_device():
    rng = np.random.default_rng(0)
    stage = PseudoStage(6)
    feats = [rng.normal(size=(12, 6)).astype(np.float32) for _ in range(4)]
    scores = [rng.uniform(0.05, 0.95, size=12) for _ in range(4)]
    with torch.device("meta"):
        used = stage.fit(feats, scores, [True, True, False, False], seed=0)
    assert used > 0 and stage.fitted
    assert all(t.device.type == "cpu" for t in stage.state_dict().values())


@pytest.mark.parametrize("name", ["default", "paper"])
@pytest.mark.parametrize("segments", [12, 40])      # 40: past the default's 32, its windowed heads too
def test_head_forward_keeps_to_the_inputs_device(name, segments):
    from vadpipe.checkpoint import build_model
    from vadpipe.presets import preset

    cfg = preset(name)
    cfg.model.feature_dim = 64
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    x = torch.randn(3, segments, 64)
    mask = torch.ones(3, segments, dtype=torch.bool)
    mask[0, segments // 2:] = False
    with torch.no_grad():
        ref = model(x, mask=mask).scores
        with torch.device("meta"):
            out = model(x, mask=mask).scores
    assert out.device.type == "cpu" and torch.equal(out, ref)
