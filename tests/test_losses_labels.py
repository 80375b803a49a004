"""Loss terms on hand-made inputs; the dynamic label table and its schedule."""
from __future__ import annotations

import pytest
import torch

from vadpipe.config import Config, ConfigError, LossConfig, validate
from vadpipe.models.dynamic_labels import DynamicLabels, update_rows
from vadpipe.models.losses import (compute_losses, drop_candidates, grown_k, k_per_row, k_share_of, magnitude_loss,
                                   ranking_loss, smoothness_loss, sparsity_loss, topk_indices)


def test_magnitude_loss_by_hand():
    mag_a = torch.tensor([[10.0, 1.0, 5.0, 3.0]])
    mag_n = torch.tensor([[2.0, 1.0, 0.0, 4.0]])
    ia, inn = topk_indices(mag_a, 2), topk_indices(mag_n, 2)
    assert sorted(ia[0].tolist()) == [0, 2] and sorted(inn[0].tolist()) == [0, 3]
    # G_a = 7.5, G_n = 3: (|100 - 7.5| + 3)^2
    assert magnitude_loss(mag_a, mag_n, 100.0, ia, inn).item() == pytest.approx((92.5 + 3.0) ** 2)
    # above the margin the |.| keeps pulling back toward it (RTFM's form)
    big = torch.tensor([[150.0, 150.0]])
    zero = torch.tensor([[0.0, 0.0]])
    assert magnitude_loss(big, zero, 100.0, topk_indices(big, 1), topk_indices(zero, 1)).item() == pytest.approx(2500)


def test_ranking_sparsity_smoothness_by_hand():
    s_a = torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.4, 0.2]])
    s_n = torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.8, 0.1]])
    # pairs: (0.9 - 0.3) -> 0.4 ; (0.4 - 0.8) -> 1.4
    assert ranking_loss(s_a, s_n).item() == pytest.approx((0.4 + 1.4) / 2)
    assert sparsity_loss(s_a).item() == pytest.approx(s_a.mean().item())
    # |0.8| + |0.7| + |0.1| + |0.2| over 4 differences
    assert smoothness_loss(s_a).item() == pytest.approx((0.8 + 0.7 + 0.1 + 0.2) / 4)


def test_unequal_batch_halves_use_all_pairs():
    s_a = torch.tensor([[0.9, 0.0], [0.5, 0.0]])
    s_n = torch.tensor([[0.2, 0.0]])
    assert ranking_loss(s_a, s_n).item() == pytest.approx(((1 - 0.7) + (1 - 0.3)) / 2)


def test_masks_exclude_padding():
    s = torch.tensor([[0.2, 0.4, 0.9, 0.9]])
    mask = torch.tensor([[True, True, False, False]])
    assert sparsity_loss(s, mask).item() == pytest.approx(0.3)
    assert smoothness_loss(s, mask).item() == pytest.approx(0.2)
    assert topk_indices(s, 1, mask).item() == 1


def test_baselines_regulariser_forms_by_hand():
    """RTFM's forms: the L2 norm of all the anomalous scores, the sum of squared differences (within each
    video); Sultani's: each video's sum of scores and of squared differences, averaged over videos."""
    s = torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.4, 0.2]])
    squares = [0.8 ** 2 + 0.7 ** 2, 0.1 ** 2 + 0.2 ** 2]
    assert sparsity_loss(s, form="rtfm").item() == pytest.approx(float(torch.sqrt((s ** 2).sum())))
    assert smoothness_loss(s, form="rtfm").item() == pytest.approx(sum(squares))
    assert sparsity_loss(s, form="sultani").item() == pytest.approx((1.2 + 0.9) / 2)
    assert smoothness_loss(s, form="sultani").item() == pytest.approx(sum(squares) / 2)
    mask = torch.tensor([[True, True, False], [True, True, True]])   # padding counts in neither
    assert sparsity_loss(s, mask, "rtfm").item() == pytest.approx((0.01 + 0.81 + 0.09 + 0.16 + 0.04) ** 0.5)
    assert smoothness_loss(s, mask, "rtfm").item() == pytest.approx(0.64 + squares[1])
    assert sparsity_loss(s, mask, "sultani").item() == pytest.approx((1.0 + 0.9) / 2)


def test_k_can_be_a_share_of_the_segments_the_draw_keeps():
    """topk_keep_k=kept: k = ceil(k_share * keep * T), RTFM's few of the kept segments; video: of all T."""
    loss = LossConfig(k_share=0.1, topk_keep=0.3)
    assert k_share_of(loss) == pytest.approx(0.1)
    loss.topk_keep_k = "kept"
    assert k_share_of(loss) == pytest.approx(0.03)
    ks = k_per_row(torch.ones(2, 100, dtype=torch.bool), 2, 100, loss.k, k_share_of(loss), "cpu")
    assert ks.tolist() == [3, 3]                                   # 10 with topk_keep_k=video
    assert k_share_of(LossConfig(k_share=0.1, topk_keep_k="kept")) == pytest.approx(0.1)   # no draw: all kept
    assert k_share_of(LossConfig(topk_keep=0.3, topk_keep_k="kept")) == 0.0                # a fixed k stays


def test_topk_keep_draws_the_topk_from_the_kept_segments():
    values = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]] * 200)
    torch.manual_seed(0)
    out = drop_candidates(values, 0.3)
    kept = out == values
    assert 0.2 < kept.float().mean() < 0.4
    # every kept entry ranks above every dropped one of its row, each group in its own order
    for row, keep in zip(out, kept):
        if keep.any() and (~keep).any():
            assert row[keep].min() > row[~keep].max()
        assert torch.equal(row[keep].argsort(descending=True), values[0][keep].argsort(descending=True))
    # the top-1 is the best kept segment, so over many rows it is not always segment 0
    assert len(set(topk_indices(out, 1)[:, 0].tolist())) > 3
    # padding (-inf) stays below the dropped entries
    padded = drop_candidates(torch.tensor([[1.0, 2.0, float("-inf")]]), 0.01)
    assert topk_indices(padded, 2)[0].tolist() == [1, 0]


def _cfg(**kw):
    cfg = LossConfig(k=2, w_mag=0.0, w_cls=0.0, w_rank=0.0, w_sparse=0.0, w_smooth=0.0)
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


def test_classifier_bce_at_topk_by_magnitude_vs_dynamic_labels():
    scores = torch.tensor([[0.9, 0.2, 0.6, 0.1], [0.3, 0.7, 0.2, 0.4]])
    feats = torch.zeros(2, 4, 3)
    feats[0, [1, 3], 0] = 5.0        # anomalous row: top-2 by norm = segments 1, 3
    feats[1, [0, 2], 0] = 5.0        # normal row: segments 0, 2
    targets = torch.tensor([[1.0, 0.8, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    terms = compute_losses(scores, feats, 1, targets, _cfg(w_cls=1.0))
    p = torch.tensor([0.2, 0.1, 0.3, 0.2])
    y = torch.tensor([0.8, 0.5, 0.0, 0.0])
    expected = torch.nn.functional.binary_cross_entropy(p, y)
    assert terms["cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(terms) == {"cls", "total"}
    # by score instead: anomalous top-2 = 0, 2 ; normal top-2 = 1, 3
    terms = compute_losses(scores, feats, 1, targets, _cfg(w_cls=1.0, topk_by="score"))
    p = torch.tensor([0.9, 0.6, 0.7, 0.4])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert terms["cls"].item() == pytest.approx(torch.nn.functional.binary_cross_entropy(p, y).item(), rel=1e-5)


def test_classifier_video_mean_target_rtfm():
    scores = torch.tensor([[0.9, 0.2, 0.6, 0.1], [0.3, 0.7, 0.2, 0.4]])
    terms = compute_losses(scores, None, 1, torch.zeros(2, 4), _cfg(w_cls=1.0, topk_by="score",
                                                                    cls_target="video-mean"))
    p, y = torch.tensor([0.75, 0.55]), torch.tensor([1.0, 0.0])
    assert terms["cls"].item() == pytest.approx(torch.nn.functional.binary_cross_entropy(p, y).item(), rel=1e-5)


@pytest.mark.parametrize("target", ["video-mean", "dynamic"])
def test_a_fixed_k_counts_only_the_real_segments_of_a_video_shorter_than_k(target):
    """k = 3 over padded rows: the one-segment video's top-k is that segment, not two padded zeros beside it
    (the classifier term as if each row stood alone; the magnitude term likewise)."""
    scores = torch.tensor([[0.7, 0.0, 0.0, 0.0], [0.2, 0.3, 0.1, 0.4]])
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    feats = torch.zeros(2, 4, 2)
    feats[0, 0, 0], feats[1, :, 0] = 5.0, torch.tensor([1.0, 2.0, 3.0, 4.0])
    targets = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    terms = compute_losses(scores, feats, 1, targets, _cfg(w_cls=1.0, w_mag=1.0, topk_by="score", k=3,
                                                           cls_target=target, margin=10.0), mask)
    bce = torch.nn.functional.binary_cross_entropy
    if target == "video-mean":
        cls = bce(torch.tensor([0.7, 0.3]), torch.tensor([1.0, 0.0]))
    else:   # the mean over the kept entries: 1 of row 0, 3 of row 1
        cls = (bce(torch.tensor(0.7), torch.tensor(1.0), reduction="sum")
               + bce(torch.tensor([0.4, 0.3, 0.2]), torch.zeros(3), reduction="sum")) / 4
    assert terms["cls"].item() == pytest.approx(cls.item(), rel=1e-5)
    g_n = (4.0 + 2.0 + 1.0) / 3                # the normal row's top 3 by score: segments 3, 1, 0
    assert terms["mag"].item() == pytest.approx(((10.0 - 5.0) + g_n) ** 2, rel=1e-5)


def test_total_is_the_weighted_sum():
    torch.manual_seed(0)
    scores, feats = torch.rand(4, 6), torch.rand(4, 6, 5) * 10
    cfg = LossConfig(k=3, w_mag=1e-4, w_cls=1.0, w_rank=1.0, w_sparse=8e-4, w_smooth=2e-5)
    terms = compute_losses(scores, feats, 2, torch.cat([torch.ones(2, 6), torch.zeros(2, 6)]), cfg)
    expected = (1e-4 * terms["mag"] + terms["cls"] + terms["rank"] + 8e-4 * terms["sparse"] + 2e-5 * terms["smooth"])
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    only_anom = smoothness_loss(scores[:2])
    assert terms["smooth"].item() == pytest.approx(only_anom.item())
    cfg.smooth_on = "all"
    assert compute_losses(scores, feats, 2, torch.zeros(4, 6), cfg)["smooth"].item() == pytest.approx(
        smoothness_loss(scores).item())


def test_magnitude_loss_needs_features():
    with pytest.raises(ValueError):
        compute_losses(torch.rand(2, 4), None, 1, torch.zeros(2, 4), _cfg(w_mag=1.0))


# --- dynamic labels --------------------------------------------------------------------------
def test_soft_update_pins_top1_and_smooths_the_rest():
    rows = torch.ones(1, 6)
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.0, 0.6, 0.2]])
    new = update_rows(rows, scores, rank_by=scores, k=3, mode="soft", alpha=0.9)
    # top-3 by score: 1 (pinned), 4, 2 smoothed toward their scores; others untouched
    assert new.tolist()[0] == pytest.approx([1.0, 1.0, 0.9 + 0.1 * 0.3, 1.0, 0.9 + 0.1 * 0.6, 1.0])
    again = update_rows(new, scores, rank_by=scores, k=3, mode="soft", alpha=0.9)
    assert again[0, 2].item() == pytest.approx(0.9 * (0.9 + 0.03) + 0.1 * 0.3)
    assert rows.eq(1).all()          # the input is not modified


def test_hard_update_and_ranking_by_another_criterion():
    rows = torch.ones(1, 5)
    scores = torch.tensor([[0.2, 0.7, 0.4, 0.9, 0.1]])
    magnitude = torch.tensor([[5.0, 1.0, 4.0, 0.0, 3.0]])     # top-3 by norm: 0 (pinned), 2, 4
    new = update_rows(rows, scores, magnitude, k=3, mode="hard")
    assert new.tolist()[0] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert torch.equal(update_rows(rows, scores, magnitude, k=3, mode="off"), rows)


def test_table_schedule_and_normal_rows():
    dyn = DynamicLabels([1, 0, 1], segments=4, mode="soft", alpha=0.5, beta=5, k=2)
    assert dyn.table.tolist() == [[1] * 4, [0] * 4, [1] * 4]
    assert [i for i in range(21) if dyn.due(i)] == [5, 10, 15, 20]
    assert not DynamicLabels([1], 4, mode="off", beta=5).due(5)
    dyn.update([2], torch.tensor([[0.0, 0.2, 0.9, 0.4]]), torch.tensor([[0.0, 0.2, 0.9, 0.4]]))
    assert dyn.table[2].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.7])
    assert dyn.table[0].tolist() == [1.0] * 4 and dyn.table[1].tolist() == [0.0] * 4
    with pytest.raises(ValueError):
        dyn.update([1], torch.zeros(1, 4), torch.zeros(1, 4))
    state = dyn.state_dict()
    other = DynamicLabels([1, 0, 1], 4)
    other.load_state_dict(state)
    assert torch.equal(other.table, dyn.table)
    assert dyn.rows([2, 0]).shape == (2, 4)


def test_k_upto_grows_k_to_the_candidates_the_head_scores_high():
    """k_upto: k starts at its share, grows to the drawn top candidates scoring >= k_level, at most k_upto · T."""
    top = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.4, 0.3],     # 4 above 0.5, capped at hi = 3
                        [0.9, 0.8, 0.3, 0.2, 0.1, 0.0],     # 2 above
                        [0.4, 0.3, 0.2, 0.1, 0.0, 0.0]])    # none above: k stays at lo
    lo, hi = torch.tensor([1, 1, 2]), torch.tensor([3, 5, 5])
    assert grown_k(top, None, lo, hi, 0.5).tolist() == [3, 2, 2]
    drawn = torch.ones_like(top, dtype=torch.bool)
    drawn[1, 1] = False                                     # a candidate the draw left out does not count
    assert grown_k(top, drawn, lo, hi, 0.5).tolist() == [3, 1, 2]


def test_k_upto_takes_a_long_event_whole_and_keeps_a_short_one_small():
    """The cls term's top-k mean covers every high-scoring segment of a long event, one of a short one."""
    t = 40
    scores = torch.full((2, t), 0.1)
    scores[0, 5:25] = 0.9                                    # an event over half the video
    scores[1, 5] = 0.9                                       # a one-segment event
    scores.requires_grad_(True)
    cfg = _cfg(w_cls=1.0, cls_target="video-mean", topk_by="score", k_share=0.025, k_upto=0.5)
    compute_losses(scores, None, 2, torch.ones(2, t), cfg)["total"].backward()
    touched = (scores.grad != 0).sum(1).tolist()
    assert touched == [20, 1]
    for field, value in (("k_upto", 1.5), ("k_level", 1.0)):
        config = Config()
        setattr(config.train.loss, field, value)
        with pytest.raises(ConfigError, match="k_upto must lie in"):
            validate(config)
