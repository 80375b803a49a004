"""The scene check (vadpipe/scene_check.py): a clip's quietest tenth of snippets against how far held-out
normal training videos lie from the others, stored at training, read by `vadpipe score` and `vadpipe watch`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_video
from vadpipe.checkpoint import Checkpoint, build_model, load_checkpoint
from vadpipe.config import ModelConfig
from vadpipe.extractors.presets import make_recipe
from vadpipe.models.normal_stats import NormalStats
from vadpipe.scene_check import (QUIET_SHARE, SceneCheck, SceneReading, held_out_quiet_z, quiet_z, record_of_heads,
                                 scene_record)
from vadpipe.score import ScoreOptions, run_score
from vadpipe.threshold import StreamCheck, resolve_threshold, whole_clip_note

D = 64
CALIBRATION = {"normal_frame_score_quantiles": {"0.95": 0.2, "0.99": 0.3, "0.999": 0.4}}


def camera(seed: int, videos: int, length: int = 24, shift: float = 0.0) -> list:
    """Videos (1, T, D) of one scene: a fixed layout vector plus each snippet's own activity."""
    gen = torch.Generator().manual_seed(seed)
    layout = torch.randn(D, generator=gen) * 3
    return [(layout + shift + torch.randn(length, D, generator=gen)).unsqueeze(0) for _ in range(videos)]


@pytest.fixture(scope="module")
def fitted():
    """Normal statistics fitted on 12 normal videos of three cameras, and their scene record."""
    normals = camera(1, 4) + camera(2, 4) + camera(3, 4)
    stats = NormalStats(D, features="l2")
    stats.fit(normals, [torch.full(v.shape[:-1], 0.2) for v in normals])
    return stats, normals, scene_record(stats, normals)


def test_held_out_video_distances_are_the_standardisation_folds_video_by_video(fitted):
    """Each video's distances to the Gaussian of the other folds: the same numbers NormalStats.fit
    standardises with ("held-out"), regrouped by video (fold i holds videos i, i + 5, ...)."""
    stats, normals, _ = fitted
    per_video = stats.held_out_video_distances(normals)
    assert [d.shape for d in per_video] == [v.shape[:-1] for v in normals]
    folds = [k for fold in range(5) for k in range(fold, len(normals), 5)]
    assert torch.equal(torch.cat([per_video[k].reshape(-1) for k in folds]), stats.held_out_distances(normals, None))


def test_the_record_is_the_largest_held_out_quiet_z(fitted):
    stats, normals, record = fitted
    quiet = held_out_quiet_z(stats, normals)
    assert record == {"quiet_share": QUIET_SHARE, "bound": max(quiet), "median": float(np.median(quiet)),
                      "videos": 12}
    assert scene_record(stats, normals[:1]) is None                    # one video: nothing to hold out
    assert quiet_z(np.arange(11.0), 0.1) == 1.0


def test_a_new_camera_lies_beyond_the_bound_and_a_long_event_in_a_known_one_does_not(fitted):
    """A clip of a camera no normal video shows is beyond the bound even in its quietest tenth; a clip of a
    known camera whose event covers 80 % of its snippets is not (its quiet tenth is the known scene)."""
    stats, _, record = fitted
    check = SceneCheck([stats], [record])
    new = camera(9, 1)[0]
    known = camera(2, 1)[0]
    known_event = known.clone()
    known_event[:, 2:22] += torch.randn(D, generator=torch.Generator().manual_seed(5)) * 3      # 20 of 24 snippets
    as_clip = lambda v: v.transpose(0, 1).numpy()                                               # noqa: E731 (T, C, D)
    readings = {name: check.reading(check.snippet_z(as_clip(v))) for name, v in
                (("new", new), ("known", known), ("known with a long event", known_event))}
    assert readings["new"].beyond
    assert not readings["known"].beyond and not readings["known with a long event"].beyond
    assert readings["known with a long event"].quiet_z < record["bound"] < readings["new"].quiet_z
    assert np.allclose(check.snippet_z(as_clip(new)[3]), check.snippet_z(as_clip(new))[3])   # one snippet alone


def test_the_whole_clip_note_says_which_reading_it_has():
    threshold = resolve_threshold("auto", CALIBRATION)
    flagged = np.full(100, 0.9)
    beyond = whole_clip_note(flagged, threshold, "best.pt", scene=SceneReading(40.0, 12.0))
    within = whole_clip_note(flagged, threshold, "best.pt", scene=SceneReading(8.0, 12.0))
    plain = whole_clip_note(flagged, threshold, "best.pt")
    assert "lies beyond every normal training video (normal-statistics z 40.0; normal training videos held out " \
           "reach 12.0): most likely a camera, view or lighting the head never trained on" in beyond
    assert "looks like the normal training videos (normal-statistics z 8.0" in within and "a known scene" in within
    assert "as does an event lasting the whole clip" in plain
    assert all(n.endswith("vadpipe calibrate NORMAL_CLIPS --checkpoint best.pt") for n in (beyond, within, plain))
    assert SceneReading(40.0, 12.0).to_dict() == {"quiet_z": 40.0, "bound": 12.0, "quiet_share": QUIET_SHARE,
                                                  "beyond_bound": True}


def test_several_heads_read_a_clip_beyond_when_most_of_them_do(fitted):
    """A bagged ensemble's members or a pair's heads: each head's quiet z against its own bound; the reading
    is the head whose margin is the median (for an even count the lower middle: more than half must agree)."""
    stats, _, record = fitted
    three = SceneCheck([stats] * 3, [{**record, "bound": b} for b in (12.0, 12.0, 12.0)])
    z = np.tile([10.0, 20.0, 30.0], (40, 1))                            # (T, heads): each head's snippet z
    most = three.reading(z)
    assert (most.quiet_z, most.bound, most.beyond, most.heads, most.heads_beyond) == (20.0, 12.0, True, 3, 2)
    three.records[1]["bound"] = three.records[0]["bound"] = 25.0
    few = three.reading(z)
    assert (few.quiet_z, few.bound, few.beyond, few.heads_beyond) == (20.0, 25.0, False, 1)
    two = SceneCheck([stats] * 2, [{**record, "bound": 12.0}, {**record, "bound": 25.0}]).reading(z[:, 1:3] * 0 + 20)
    assert not two.beyond and two.heads_beyond == 1                     # one of two: not most
    assert most.to_dict()["heads"] == 3 and "heads" not in SceneReading(40.0, 12.0).to_dict()
    note = whole_clip_note(np.full(100, 0.9), resolve_threshold("auto", CALIBRATION), "best.pt", scene=most)
    assert "2 of 3 heads read it beyond" in note
    assert three.snippet_z(np.zeros((5, 1, D), np.float32)).shape == (5, 3)
    assert record_of_heads([], []) is None


def test_checkpoints_keep_the_record_and_older_ones_have_none(tmp_path):
    config = ModelConfig(feature_dim=D, heads=2, ffn_dim=16, hidden=(8, 4))
    record = {"quiet_share": 0.1, "bound": 12.5, "median": 9.0, "videos": 7}
    Checkpoint.of(build_model(config), config, scene=record).save(tmp_path / "new.pt")
    assert Checkpoint.load(tmp_path / "new.pt").scene == record
    older = Checkpoint.of(build_model(config), config).to_dict()
    del older["scene"]
    assert Checkpoint.from_dict(older).scene is None
    # a head without fitted normal statistics has nothing to read, record or not
    assert SceneCheck.of(build_model(config), record) is None


@pytest.fixture(scope="module")
def scene_head(tmp_path_factory):
    """A small head on the `tiny` Inception recipe whose normal statistics are fitted on random features,
    saved with a scene record, and a generated clip."""
    torch.manual_seed(0)
    recipe = make_recipe("i3d-inception", "tiny", weights_sha256=None)
    config = ModelConfig(feature_dim=1024, heads=4, ffn_dim=64, hidden=(32, 16), normal_weight=0.5,
                         normal_features="l2")
    model = build_model(config)
    normals = [torch.randn(1, 12, 1024) for _ in range(6)]
    model.normal_stats.fit(normals, [torch.full((1, 12), 0.2) for _ in normals])
    root = tmp_path_factory.mktemp("scene")
    path = root / "best.pt"
    Checkpoint.of(model, config, recipe=recipe, calibration=CALIBRATION,
                  scene=scene_record(model.normal_stats, normals)).save(path)
    return path, make_video(root / "clip.mp4", 80, width=96, height=72, fps=20.0)


def test_score_writes_the_reading_and_puts_it_in_the_note(scene_head, tmp_path):
    """Every clip's JSON carries its reading; with --window (features streamed) it is the same."""
    path, clip = scene_head
    model, ckpt = load_checkpoint(path)
    reports = {}
    for name, window in (("whole", None), ("window", 2)):
        out = tmp_path / name
        assert run_score([str(clip)], checkpoint=str(path), echo=lambda s: None,
                         options=ScoreOptions(out_dir=out, threshold="0", window=window, progress=False)) == 0
        reports[name] = json.loads((out / "clip.json").read_text())
    scene = reports["whole"]["scene"]
    assert set(scene) == {"quiet_z", "bound", "quiet_share", "beyond_bound"}
    assert scene["bound"] == round(ckpt.scene["bound"], 3)
    assert reports["window"]["scene"] == pytest.approx(scene, rel=1e-5)     # float32 sums, another order
    note = next(n for n in reports["whole"]["notes"] if n.startswith("100% of its frames"))
    assert f"normal-statistics z {scene['quiet_z']:.1f}" in note


def test_a_checkpoint_without_a_record_scores_as_before(tmp_path):
    from test_score import save_head

    recipe = make_recipe("i3d-inception", "tiny", weights_sha256=None)
    path = save_head(tmp_path / "best.pt", recipe)
    clip = make_video(tmp_path / "clip.mp4", 40, width=96, height=72, fps=20.0)
    assert run_score([str(clip)], checkpoint=str(path), echo=lambda s: None,
                     options=ScoreOptions(out_dir=tmp_path / "out", threshold="0", progress=False)) == 0
    report = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert report["scene"] is None
    assert any("as does an event lasting the whole clip" in n for n in report["notes"])


def test_a_stream_is_judged_block_by_block_with_the_blocks_own_snippets(fitted):
    """vadpipe watch: every block of 4 snippets judged as a whole clip, its reading from its own
    features (which arrive ahead of their scores). A known camera, then a new one from the third block:
    one note, when the new scene starts, naming the block's time; its run of flagged blocks is noted once,
    and a block the threshold leaves alone re-arms it."""
    stats, _, record = fitted
    check = SceneCheck([stats], [record])
    stream = StreamCheck(resolve_threshold("auto", CALIBRATION), "best.pt", block=4, scene=check)
    known = camera(2, 1, length=8)[0][0].numpy()
    new = camera(9, 1, length=12)[0][0].numpy()
    feats = np.concatenate([known, new, known[:4]])                     # blocks: known, known, new x3, known
    scores = [0.1] * 8 + [0.9] * 12 + [0.1] * 4
    lag = 2                                                              # scores come out a window behind
    notes = {}
    for t in range(len(feats) + lag):
        if t < len(feats):
            stream.observe(feats[t][None])
        if t >= lag:
            k = t - lag
            notes[k] = stream.add(scores[k], 2.0 * (k + 1))
    said = {k: n for k, n in notes.items() if n is not None}
    assert list(said) == [11]
    assert said[11].startswith("100% of the stream's 4 snippets from 00:16 to 00:24 at or above the threshold")
    expected = check.reading(check.snippet_z(new[:4, None]))
    assert expected.beyond and f"normal-statistics z {expected.quiet_z:.1f}" in said[11]


def test_a_stream_flagged_from_its_start_is_noted_once_then_again_after_a_quiet_block():
    stream = StreamCheck(resolve_threshold("auto", CALIBRATION), "best.pt", block=2)
    scores = [0.9] * 6 + [0.1] * 2 + [0.9] * 2
    notes = [stream.add(s, float(t + 1)) for t, s in enumerate(scores)]
    assert [t for t, n in enumerate(notes) if n] == [1, 9]
    assert notes[1].startswith("100% of the stream's first 2 snippets (2 s)")
    assert notes[9].startswith("100% of the stream's 2 snippets from 00:08 to 00:10")


def test_eval_counts_the_videos_that_read_as_a_new_scene(tmp_path):
    """`vadpipe eval --run`: each test video's reading beside the metrics (all of them, and those its
    threshold flags nearly throughout), kept with the written scores so `eval --scores` reports it again."""
    from feature_world import make_store
    from vadpipe.data import open_features
    from vadpipe.evaluate import evaluate_run, evaluate_score_path, score_feature_set
    from vadpipe.features import FeatureStore
    from vadpipe.fitted_terms import crop_rows

    make_store(tmp_path / "train", 3, 6, dim=16, seed=1)
    make_store(tmp_path / "test", 3, 3, dim=16, seed=2)
    torch.manual_seed(0)
    config = ModelConfig(feature_dim=16, heads=2, ffn_dim=16, hidden=(8, 4), normal_weight=0.5, normal_features="l2")
    model = build_model(config)
    normals = [crop_rows(v, torch.device("cpu")) for v in open_features(tmp_path / "train").videos if v.label == 0]
    model.normal_stats.fit(normals, [torch.full(x.shape[:-1], 0.2) for x in normals])
    record = scene_record(model.normal_stats, normals)
    videos = open_features(tmp_path / "test").videos
    z = {v.id: quiet_z(SceneCheck([model.normal_stats], [record]).snippet_z(v.raw())) for v in videos}
    # a bound between the test videos' quiet z: those above it read as new, the others not
    record["bound"] = float(np.median(list(z.values())))
    expected = {kind: sum(z[v.id] > record["bound"] for v in videos if v.label == label) for kind, label in
                (("normal", 0), ("anomalous", 1))}
    assert 0 < sum(expected.values()) < len(videos)
    Checkpoint.of(model, config, recipe=FeatureStore(tmp_path / "test").recipe(), scene=record).save(tmp_path / "h.pt")
    gt = tmp_path / "test" / "gt.json"
    res, out = evaluate_run(tmp_path / "h.pt", tmp_path / "test", gt, out=tmp_path / "eval", device="cpu",
                            progress=False, threshold=0.0)                  # every video flagged throughout
    assert res.metrics["scene_beyond"] == {k: {"videos": n, "whole_flagged": n} for k, n in expected.items()}
    assert "read as a scene new to the head" in res.summary()
    scored = score_feature_set(model, open_features(tmp_path / "test"), scene=SceneCheck([model.normal_stats],
                                                                                         [record]))
    assert scored.meta["scene_beyond"] == {k: bool(q > record["bound"]) for k, q in z.items()}
    assert "scene_beyond" not in score_feature_set(model, open_features(tmp_path / "test")).meta
    again = evaluate_score_path(out / "scores", gt, threshold=0.0)
    assert again.metrics["scene_beyond"] == res.metrics["scene_beyond"]
    plain, _ = evaluate_run(tmp_path / "h.pt", tmp_path / "test", gt, out=tmp_path / "eval2", device="cpu",
                            progress=False, threshold=2.0)                  # nothing flagged
    assert all(v["whole_flagged"] == 0 for v in plain.metrics["scene_beyond"].values())
