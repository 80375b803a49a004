"""tools/long_videos.py: long videos strung from short clips (the ped1-long benchmark's data), and the
accuracy benchmark's caches (tools/bench_accuracy.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from feature_world import make_store
from vadpipe.data import open_features
from vadpipe.groundtruth import load_ground_truth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from long_videos import SNIPPET, compose_long_videos  # noqa: E402


def test_long_videos_hold_one_anomalous_clip_each_with_its_frames_shifted_to_its_place(tmp_path):
    gts = make_store(tmp_path / "clips", n_anomalous=3, n_normal=4, dim=8, t_range=(4, 7))
    clips = {v.id: v.load() for v in open_features(tmp_path / "clips").videos}
    listed = compose_long_videos(tmp_path / "clips", gts, tmp_path / "long", "test", k=3, seed=1)
    long = open_features(listed)
    gt = load_ground_truth(tmp_path / "long" / "test_gt.json")
    blocks_of = json.loads((tmp_path / "long" / "test_clips.json").read_text())
    anomalous_used = []
    assert [v.label for v in long.videos] == [1, 1, 1, 0, 0, 0, 0]      # labels carried by the names
    for video in long.videos:
        x = video.load()
        g = gt[video.id]
        assert g.frames == x.shape[0] * SNIPPET
        # each row block is one clip: find them in order and rebuild the labels from the clips' own gt
        row, expected, used = 0, [], []
        while row < x.shape[0]:
            vid, clip = next((i, c) for i, c in clips.items()
                             if row + len(c) <= x.shape[0] and np.array_equal(x[row:row + len(c)], c))
            span = len(clip) * SNIPPET
            frames = gts[vid].frames
            labels, _ = gts[vid].labels(frames)
            expected.append(np.concatenate([labels, np.full(span - frames, labels[-1], labels.dtype)]))
            used.append(vid)
            row += len(clip)
        assert len(used) == 3 and len(set(used)) == 3                    # k clips, none twice
        assert sum(gts[v].anomalous for v in used) == video.label         # one anomalous clip, or none
        blocks = blocks_of[video.id]                                      # the recorded clip blocks tile it
        assert [b[2] for b in blocks] == used and blocks[0][0] == 0 and blocks[-1][1] == x.shape[0]
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert np.array_equal(g.labels(g.frames)[0], np.concatenate(expected))
        anomalous_used += [v for v in used if gts[v].anomalous]
    assert sorted(anomalous_used) == sorted(i for i in clips if gts[i].anomalous)   # each exactly once


def test_long_videos_refuse_too_few_clips(tmp_path):
    gts = make_store(tmp_path / "clips", n_anomalous=1, n_normal=2, dim=8, t_range=(4, 5))
    with pytest.raises(ValueError, match="at least 2"):
        compose_long_videos(tmp_path / "clips", gts, tmp_path / "long", "train", k=1)
    with pytest.raises(ValueError, match="normal clips"):
        compose_long_videos(tmp_path / "clips", gts, tmp_path / "long", "train", k=3)


def test_benchmark_cache_is_rebuilt_when_its_recipe_changes_and_kept_when_it_does_not(tmp_path):
    from bench_accuracy import build_cached, source_hash

    built = []

    def build(tag: str):
        def run() -> None:
            (tmp_path / "c").mkdir(exist_ok=True)
            (tmp_path / "c" / f"{tag}.npy").write_text(tag)
            built.append(tag)
        return run

    recipe = {"clips": 8, "composer": source_hash("long_videos")}
    build_cached(tmp_path / "c", recipe, build("a"))
    build_cached(tmp_path / "c", recipe, build("b"))                      # same recipe: kept
    assert built == ["a"]
    build_cached(tmp_path / "c", {**recipe, "clips": 4}, build("c"))      # new recipe: emptied, rebuilt
    assert built == ["a", "c"] and sorted(p.name for p in (tmp_path / "c").iterdir()) == ["c.npy", "recipe.json"]
    (tmp_path / "c" / "recipe.json").unlink()                             # a build that stopped half-way
    build_cached(tmp_path / "c", {**recipe, "clips": 4}, build("d"))
    assert built == ["a", "c", "d"]
    assert source_hash("long_videos") != source_hash("vadpipe.intervals")


def test_long_video_errors_split_the_ranking_by_joins_event_clip_and_other_clips():
    from long_video_errors import join_distance, split_aucs

    blocks = [[0, 4, "a"], [4, 8, "event"], [8, 12, "b"]]
    assert join_distance(blocks, 12).tolist() == [3, 2, 1, 0, 0, 1, 1, 0, 0, 1, 2, 3]
    assert np.isinf(join_distance(blocks[:1], 4)).all()                  # one clip: no join
    labels = np.zeros(12)
    labels[5:7] = 1
    scores = np.zeros(12)
    scores[[3, 4, 5, 6, 7]] = [0.9, 0.1, 0.8, 0.7, 0.2]                   # a normal clip's edge scores highest
    aucs = split_aucs([(scores, labels, blocks)])
    assert aucs["event clip"] == 1.0                                       # *when* inside the event's clip: right
    assert aucs["vs other clips"] == pytest.approx(14 / 16)               # 0.9 beats both event snippets
    assert aucs["inside"] == pytest.approx(18 / 20) and aucs["near joins"] == pytest.approx(10 / 12)
    assert aucs["far"] is None                                             # no event snippet far from a join


def test_bench_head_times_one_long_video_per_config_and_refuses_a_bad_config_in_one_line(capsys):
    import bench_head

    assert bench_head.main(["--segments", "40", "--dim", "64", "--iters", "1", "--config", "default=default"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1].split()
    seconds, cpu, setup_gb, peak_gb = map(float, row[2:])
    assert row[:2] == ["default", "40"] and seconds >= 0 and cpu >= 0 and peak_gb >= setup_gb > 0
    with pytest.raises(SystemExit, match="config 'bad=default\\+model.nope=1': .*no field 'nope'"):
        bench_head.main(["--segments", "40", "--config", "bad=default+model.nope=1"])


def test_benchmark_extract_only_fills_the_ped1_cache_once_and_fails_without_the_set(tmp_path, video_factory, capsys):
    """``bench_accuracy.py --extract-only`` (tools/gpu_ped1.sh runs it on a GPU) writes both splits into
    the benchmark's own cache folder for that short side, with the weights and precision asked for in
    the recipe, and trains nothing; run again it extracts nothing; ``ped1-swap`` reads the same cache the
    other way round; without the data set it exits 1."""
    import bench_accuracy

    for split in ("train", "test"):
        for cls in ("Anomaly", "Normal"):
            video_factory(f"ped1/videos/{split}/{cls}/{split}{cls}.mp4", frames=20)
    args = ["--bench", "ped1", "--extract-only", "--ped1", str(tmp_path / "ped1"), "--ped1-short-side", "32",
            "--weights", "random", "--extract-dtype", "float32", "--extract-device", "cpu",
            "--cache", str(tmp_path / "cache"), "--threads", "1"]
    assert bench_accuracy.main(args) == 0
    for split in ("train", "test"):
        folder = tmp_path / "cache" / "ped1-inception-frame32" / split
        recipe = json.loads((folder / "recipe.json").read_text())
        assert recipe["backbone"] == "i3d-inception" and recipe["weights_sha256"] is None   # random weights
        assert recipe["compute_dtype"] == "float32" and recipe["resize_short_side"] == 32
        assert sorted(p.name for p in folder.glob("*.npy")) == [f"Anomaly__{split}Anomaly.npy",
                                                                 f"Normal__{split}Normal.npy"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")}
    assert bench_accuracy.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")} == stamps
    assert "frame AUC" not in capsys.readouterr().out                   # nothing trained, no table
    swap, ped1 = (bench_accuracy.BENCHES[name](tmp_path / "cache") for name in ("ped1-swap", "ped1"))
    assert (swap.train, swap.test) == (ped1.test, ped1.train)           # the same cache, splits swapped
    assert swap.gt == str(tmp_path / "ped1" / "train_gt.json") and ped1.gt.endswith("test_gt.json")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")} == stamps
    args[args.index("--ped1") + 1] = str(tmp_path / "absent")
    assert bench_accuracy.main(args) == 1
    assert "nothing prepared for ped1" in capsys.readouterr().err


def test_benchmark_reports_the_share_of_event_frames_its_auto_threshold_flags(tmp_path):
    """hit@auto: of the frames inside the ground truth, the share at or above the checkpoint's `auto`
    threshold (what `vadpipe score` flags); FA@auto the same share of normal videos' frames."""
    import bench_accuracy
    from feature_world import tiny_default
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint
    from vadpipe.evaluate import score_feature_set

    make_store(tmp_path / "train", 6, 6, dim=16, seed=0, t_range=(8, 20))
    make_store(tmp_path / "test", 4, 4, dim=16, seed=1, t_range=(8, 20))
    bench = bench_accuracy.Bench("t", str(tmp_path / "train"), str(tmp_path / "test"),
                                 str(tmp_path / "test" / "gt.json"))
    out = bench_accuracy.run_once(bench, tiny_default(tmp_path / "train", iterations=4), 0, tmp_path / "runs")
    assert 0.0 <= out["hit_auto"] <= 1.0 and 0.0 <= out["false_alarm_auto"] <= 1.0
    model, ckpt = load_checkpoint(checkpoint_path(tmp_path / "runs" / "t-0"), "cpu")
    ss = score_feature_set(model, open_features(bench.test, list_anomalous="none"), "cpu")
    frames = bench_accuracy.frame_level(ss.scores, ss.frames, ss.snippet_len, ss.stride,
                                        load_ground_truth(bench.gt), ss.frame_mode)
    events = np.concatenate([f[y > 0] for f, y in frames.values() if y.any()])
    for thr, share in ((0.0, 1.0), (2.0, 0.0), (float(np.median(events)), float(np.mean(events >= np.median(events))))):
        ckpt.calibration = {"normal_frame_score_quantiles": {"0.99": thr}}
        assert bench_accuracy.evaluate_model(bench, model, ckpt)["hit_auto"] == pytest.approx(share)


def test_benchmark_without_runs_removes_each_run_once_evaluated(tmp_path):
    """Without ``--runs`` a run is evaluated and removed at once (runs are 0.2–1.2 GB each); the same run
    kept gives the same figures."""
    import bench_accuracy
    from feature_world import tiny_default

    make_store(tmp_path / "train", 6, 6, dim=16, seed=0, t_range=(8, 20))
    make_store(tmp_path / "test", 4, 4, dim=16, seed=1, t_range=(8, 20))
    bench = bench_accuracy.Bench("t", str(tmp_path / "train"), str(tmp_path / "test"),
                                 str(tmp_path / "test" / "gt.json"))
    cfg = tiny_default(tmp_path / "train", iterations=4)
    gone = bench_accuracy.run_once(bench, cfg, 0, tmp_path / "gone", keep=False)
    kept = bench_accuracy.run_once(bench, cfg, 0, tmp_path / "kept")
    assert list((tmp_path / "gone").iterdir()) == []
    assert (tmp_path / "kept" / "t-0" / "best.pt").is_file()
    assert {k: v for k, v in gone.items() if k != "seconds"} == {k: v for k, v in kept.items() if k != "seconds"}


def test_jitter_reads_every_video_with_its_own_fixed_noise_and_leaves_the_product_untouched(tmp_path):
    """``bench_accuracy.py --jitter``: inside the block each video reads as its stored features times
    (1 + sd · noise), the same noise on every read (training and test see one extraction), another for
    another draw or seed; outside it the stored features, unchanged."""
    from bench_accuracy import Jitter, jittered

    make_store(tmp_path / "store", 2, 2, dim=64, seed=0, t_range=(30, 40))
    videos = open_features(tmp_path / "store").videos
    stored = [v.load() for v in videos]

    def read(jitter, seed):
        with jittered(jitter, seed):
            return [v.load() for v in open_features(tmp_path / "store").videos]

    first, again = read(Jitter(1e-3, 0), 0), read(Jitter(1e-3, 0), 0)
    for x, y, z in zip(stored, first, again):
        assert np.array_equal(y, z) and not np.array_equal(x, y)
        rel = (y - x)[x != 0] / x[x != 0]
        assert 0.8e-3 < rel.std() < 1.2e-3 and abs(rel.mean()) < 2e-4
    assert not np.array_equal(first[0] - stored[0], first[1] - stored[1])       # each video its own noise
    for other in (read(Jitter(1e-3, 1), 0), read(Jitter(1e-3, 0), 1)):          # another draw, another seed
        assert not any(np.array_equal(a, b) for a, b in zip(first, other))
    for off in (read(None, 0), read(Jitter(0.0, 3), 0), [v.load() for v in videos]):
        assert all(np.array_equal(a, b) for a, b in zip(stored, off))
    with pytest.raises(RuntimeError), jittered(Jitter(1e-3, 0), 0):              # restored after an error too
        raise RuntimeError
    assert all(np.array_equal(a, v.load()) for a, v in zip(stored, videos))


def test_jittered_run_is_named_by_its_draw_and_repeats_to_the_bit(tmp_path):
    """A jittered run trains and scores on one extraction (the same figures again for the same seed and
    draw) in BENCH-SEED-dDRAW; more than one draw without a jitter is refused."""
    import bench_accuracy
    from bench_accuracy import Jitter
    from feature_world import tiny_default

    make_store(tmp_path / "train", 6, 6, dim=16, seed=0, t_range=(8, 20))
    make_store(tmp_path / "test", 4, 4, dim=16, seed=1, t_range=(8, 20))
    bench = bench_accuracy.Bench("t", str(tmp_path / "train"), str(tmp_path / "test"),
                                 str(tmp_path / "test" / "gt.json"))
    cfg = tiny_default(tmp_path / "train", iterations=4)
    runs = [bench_accuracy.run_once(bench, cfg, 0, tmp_path / f"r{i}", jitter=Jitter(1e-2, 1)) for i in (0, 1)]
    assert (tmp_path / "r0" / "t-0-d1" / "best.pt").is_file()
    assert {k: v for k, v in runs[0].items() if k != "seconds"} == {k: v for k, v in runs[1].items() if k != "seconds"}
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--draws", "2", "--bench"])                          # draws without a jitter
