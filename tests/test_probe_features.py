"""tools/probe_features.py's probes: each kind learns a separable snippet label and scores every snippet."""
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from probe_features import make_probe, probe_scores_of  # noqa: E402


@pytest.mark.parametrize("kind", ["linear", "rbf", "mlp", "boost"])
def test_each_probe_ranks_a_planted_direction(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    y = (x[:, 3] + 0.3 * rng.normal(size=400) > 0.8).astype(float)
    clf = make_probe(kind, C=1.0).fit(x[:300], y[:300])
    scores = probe_scores_of(clf, x[300:])
    assert scores.shape == (100,) and np.isfinite(scores).all()
    assert roc_auc_score(y[300:], scores) > 0.85


def test_unknown_probe_is_refused():
    with pytest.raises(ValueError, match="unknown probe 'tree'"):
        make_probe("tree", C=1.0)


def test_frame_grid_interpolates_snippet_scores_to_every_frame():
    from probe_features import FrameGrid

    grid = FrameGrid(np.zeros(40, dtype=np.int8), snippet_len=16, stride=16)
    frames = grid.frame_scores(np.array([0.0, 1.0]))
    assert frames.shape == (40,)
    assert frames[7] == 0.0 and frames[24] == 1.0 and frames[39] == 1.0       # centres 7.5 and 23.5
    assert 0.0 < frames[15] < 1.0


def test_fits_score_every_video_once_by_a_fit_that_never_saw_it():
    from probe_features import fits_of

    splits = ["train"] * 5 + ["test"] * 4
    folds = fits_of(splits, "folds", 3)
    assert len(folds) == 3
    assert sorted(i for _, scored in folds for i in scored) == list(range(9))
    assert all(not set(fit) & set(scored) and len(fit) + len(scored) == 9 for fit, scored in folds)
    # --fit train: one fit on the train split scoring the test split, as a weakly supervised head is measured
    assert fits_of(splits, "train", 3) == [([0, 1, 2, 3, 4], [5, 6, 7, 8])]


def test_per_type_auc_pools_the_normal_videos_with_each_type_alone():
    from probe_features import per_type_auc

    videos = [("n", None, None, None), ("f", "Fire", None, None), ("i", "Intrusion", None, None)]
    labels = [np.zeros(4), np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])]
    scores = [np.full(4, 0.5), np.array([0.0, 0.1, 0.9, 1.0]), np.array([0.2, 0.3, 0.8, 0.9])]
    per = per_type_auc(videos, labels, scores)
    assert per["Fire"] == 1.0                       # both events above every normal and background frame
    assert per["Intrusion"] == roc_auc_score(np.r_[np.zeros(4), 1, 1, 0, 0], np.r_[np.full(4, 0.5), 0.2, 0.3, 0.8, 0.9])


def test_pseudo_stage_probe_context_puts_unit_neighbours_side_by_side():
    """tools/probe_pseudo_labels.py --context K: each snippet, made unit length, beside its K - 1
    neighbours (a video's edges repeated); K 1 leaves the features as they are."""
    from probe_pseudo_labels import with_context

    f = np.arange(1, 13, dtype=np.float32).reshape(4, 3)
    assert with_context(f, 1) is f
    wide = with_context(f, 3)
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    assert wide.shape == (4, 9)
    assert np.allclose(wide[1], np.concatenate([unit[0], unit[1], unit[2]]))
    assert np.allclose(wide[0, :3], unit[0]) and np.allclose(wide[3, 6:], unit[3])     # edges repeated


def test_score_terms_split_the_products_fused_logit_into_the_head_and_the_stage(tmp_path):
    """tools/score_terms.py: ℓ + w·σ₁·z₂, its per-snippet terms, is the logit of the score the product
    gives (where |s| <= 8, the stage's bound being the identity there)."""
    import torch
    from feature_world import make_store
    from score_terms import video_terms

    from vadpipe.checkpoint import head_scores, load_checkpoint
    from vadpipe.data import open_features
    from vadpipe.fitted_terms import crop_rows
    from vadpipe.models.normal_stats import logit
    from vadpipe.presets import preset
    from vadpipe.train import train

    make_store(tmp_path / "train", 6, 6, dim=16, seed=0, signal=0.8, t_range=(20, 30))
    cfg = preset("default")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    t = cfg.train
    t.features, t.device, t.epochs, t.iterations, t.lr = str(tmp_path / "train"), "cpu", 0, 10, 1e-3
    model, _ = load_checkpoint(train(cfg, out=tmp_path / "run", progress=False).run_dir / "last.pt", "cpu")
    model.eval()
    stage = model.pseudo_stage
    for video in open_features(tmp_path / "train").videos[:4]:
        head, z = video_terms(model, video)
        with torch.no_grad():
            fused = logit(head_scores(model, crop_rows(video, torch.device("cpu"))).double()).mean(0).numpy()
        s = head + stage.weight * float(stage.scale[1]) * z
        inside = np.abs(s) <= 8
        assert inside.any() and np.allclose(s[inside], fused[inside], atol=1e-3)
