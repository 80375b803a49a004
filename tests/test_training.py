"""Training end to end on generated features: learning, resume equivalence, small sets, baselines, CLI."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from feature_world import make_store
from vadpipe.checkpoint import latest_run, load_checkpoint, read_checkpoint
from vadpipe.cli import main
from vadpipe.config import Config, load_config, save_config
from vadpipe.presets import preset, use_model
from vadpipe.errors import ConfigError
from vadpipe.evaluate import evaluate_run
from vadpipe.train import resume, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    make_store(root / "train", 12, 12, dim=32, seed=0, signal=0.8)
    make_store(root / "test", 8, 8, dim=32, seed=1, signal=0.8)
    return root


def small_cfg(features, iterations=150, **train) -> Config:
    cfg = preset("demo")
    cfg.model.heads, cfg.model.ffn_dim = 4, 64
    t = cfg.train
    t.features, t.iterations, t.device = str(features), iterations, "cpu"
    t.eval_every, t.beta, t.log_every = 50, 50, 10
    t.lr, t.val_fraction = 1e-3, 0.2             # the harness under test: a held-out share, fast learning
    for key, value in train.items():
        setattr(t, key, value)
    return cfg


def test_planted_signal_is_learned_within_a_cpu_minute(world, tmp_path):
    start = time.process_time()
    result = train(small_cfg(world / "train"), out=tmp_path / "run", progress=False)
    res, where = evaluate_run(result.run_dir, world / "test", world / "test" / "gt.json", device="cpu",
                              progress=False)
    # The CPU-minute budget is fixed by the config's size (iterations, batch, D), not asserted on a
    # clock: on a shared machine oversubscribed threads burn CPU time (125 s measured once under load,
    # ~15 s when quiet). The figure is printed for the record.
    print(f"planted-signal training + eval: {time.process_time() - start:.1f} CPU s")
    assert res.metrics["auc"] > 0.85, res.summary()
    assert res.metrics["n_videos"] == 16 and {a.action for a in res.alignments} <= {"exact", "tail"}
    # run folder contents
    run = result.run_dir
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl"):
        assert (run / name).is_file()
    assert latest_run(tmp_path) == run.resolve()
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"iteration", "loss", "loss_mag", "loss_cls", "loss_rank", "loss_sparse", "loss_smooth", "lr",
            "seconds"} <= set(records[0])
    assert any("val_auc" in r for r in records)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["format"] == "vadpipe-checkpoint/1" and ckpt["recipe"]["feature_dim"] == 32
    assert ckpt["last"] is None and ckpt["metrics"]["selection"].startswith("best on the held-out")
    q = ckpt["calibration"]["normal_frame_score_quantiles"]
    assert set(q) == {"0.95", "0.99", "0.999"} and q["0.95"] <= q["0.99"] <= q["0.999"]
    assert ckpt["calibration"]["source"] == "held-out normal training videos"
    shares = [v["above"]["0.99"] for v in ckpt["calibration"]["videos"].values()]   # each held-out video's part
    assert len(shares) == ckpt["calibration"]["n_videos"] and 0 < max(shares) <= 0.05
    assert load_config(run / "config.yaml").model.feature_dim == 32
    # per-video score files were written and re-score to the same numbers
    assert (where / "scores" / "index.json").is_file() and (where / "eval.json").is_file()
    from vadpipe.evaluate import evaluate_score_path
    again = evaluate_score_path(where / "scores", world / "test" / "gt.json")
    assert again.metrics["auc"] == pytest.approx(res.metrics["auc"])


def _state(run, which):
    return read_checkpoint(run, which)


@pytest.mark.parametrize("fitted", [False, True])
def test_resume_equals_uninterrupted(world, tmp_path, fitted):
    """A finished run extended (8 -> 12) as if it had run 12 at once; ``fitted``: with terms fitted after
    training (normal statistics, pseudo-label stage, score levels), which the finish at 8 put in last.pt
    and which the loop's validation must not see."""
    kw = dict(eval_every=4, beta=4, log_every=2)    # dynamic label updates at 4 and 8, saves at 4, 8, 12

    def cfg(iterations):
        out = small_cfg(world / "train", iterations, **kw)
        if fitted:
            out.model.normal_weight, out.model.pseudo_weight, out.model.score_levels = 0.5, 1.0, "calibrated"
            out.train.val_gt = str(world / "train" / "gt.json")
        return out

    full = train(cfg(12), out=tmp_path / "full", progress=False)
    part = train(cfg(8), out=tmp_path / "part", progress=False)
    resumed = resume(part.run_dir, iterations=12, progress=False)
    assert resumed.run_dir == part.run_dir.resolve()
    for which in ("last", "best"):
        a, b = _state(full.run_dir, which), _state(part.run_dir, which)
        assert a["iteration"] == b["iteration"]
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), (which, k)
    a, b = _state(full.run_dir, "last")["last"], _state(part.run_dir, "last")["last"]
    assert torch.equal(a["dynamic_labels"]["table"], b["dynamic_labels"]["table"])
    assert not torch.isin(a["dynamic_labels"]["table"], torch.tensor([0.0, 1.0])).all()   # labels did change

    def records(run):
        out = []
        for line in (run / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            rec.pop("seconds")
            out.append(rec)
        return out

    assert records(full.run_dir) == records(part.run_dir)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(small_cfg(world / "train", 4), out=part.run_dir, progress=False)


def test_twelve_videos_with_default_batch_sizes(tmp_path):
    make_store(tmp_path / "f", 6, 6, dim=16, seed=5, t_range=(3, 40))
    cfg = preset("ucf-crime")                     # 32 + 32 asked for, 10 videos in the training split
    cfg.model.heads, cfg.model.ffn_dim = 4, 32
    cfg.train.features, cfg.train.iterations, cfg.train.eval_every = str(tmp_path / "f"), 3, 3
    cfg.train.device = "cpu"
    result = train(cfg, out=tmp_path / "r", progress=False)
    model, ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.iteration == 3 and ckpt.calibration["n_videos"] >= 1
    assert model.lt.attn.heads == 4 and not model.training
    assert result.best_metrics["val_metric"] == "video_auc_of_max"


@pytest.mark.parametrize("name", ["rtfm", "mil"])
def test_baselines_train_in_the_same_harness(world, tmp_path, name):
    cfg = use_model(small_cfg(world / "train", 60), name)
    train(cfg, out=tmp_path / name, progress=False)
    res, _ = evaluate_run(tmp_path / name, world / "test", world / "test" / "gt.json", device="cpu", progress=False)
    assert res.metrics["auc"] > 0.6
    assert read_checkpoint(tmp_path / name)["model_config"]["name"] == name


def test_frame_level_validation_with_gt_and_test_selection_flag(world, tmp_path):
    cfg = small_cfg(world / "train", 20, eval_every=10, val_features=str(world / "test"),
                    val_gt=str(world / "test" / "gt.json"), val_is_test=True)
    result = train(cfg, out=tmp_path / "r", progress=False)
    assert result.best_metrics["val_metric"] == "frame_auc"
    assert "TEST" in result.best_metrics["selection"]
    assert result.calibration["source"] == "normal videos of the validation set"


def test_select_last_keeps_the_last_checkpoint_and_still_calibrates_on_held_out_normals(world, tmp_path):
    result = train(small_cfg(world / "train", 20, eval_every=10, select="last"), out=tmp_path / "r", progress=False)
    assert result.best_metrics["best_iteration"] == 20 and result.best_metrics["selection"].startswith("last")
    assert result.best_metrics["val_metric"] == "video_auc_of_max"          # still measured and reported
    assert result.calibration["source"] == "held-out normal training videos"
    best, last = read_checkpoint(tmp_path / "r", "best"), read_checkpoint(tmp_path / "r", "last")
    assert best["iteration"] == last["iteration"] == 20
    for key, value in best["model"].items():
        assert torch.equal(value, last["model"][key]), key


def test_normal_only_holdout_trains_on_every_anomalous_video_and_calibrates(world, tmp_path):
    result = train(small_cfg(world / "train", 20, eval_every=10, holdout="normal", val_fraction=0.25),
                   out=tmp_path / "r", progress=False)
    split = read_checkpoint(tmp_path / "r", "last")["last"]["split"]
    labels = {v["id"]: v["label"] for v in map(json.loads, (world / "train" / "manifest.jsonl").open())}
    assert len(split["val"]) == 3 and {labels[v] for v in split["val"]} == {0}
    assert sum(labels[v] for v in split["train"]) == 12                    # all anomalous videos train
    assert result.best_metrics["selection"] == "last (no validation metric)"   # one label: no AUC to select by
    assert result.calibration["source"] == "held-out normal training videos" and result.calibration["n_videos"] == 3


def test_config_yaml_roundtrip_and_errors(tmp_path):
    cfg = use_model(preset("shanghaitech"), "rtfm")
    save_config(cfg, tmp_path / "c.yaml")
    back = load_config(tmp_path / "c.yaml")
    assert back == cfg and back.train.beta == 1000 and back.model.hidden == (512, 128)
    (tmp_path / "p.yaml").write_text("preset: demo\ntrain: {iterations: 7, loss: {k: 4}}\nmodel: {gs: avg}\n")
    p = load_config(tmp_path / "p.yaml")
    assert p.train.iterations == 7 and p.train.loss.k == 4 and p.train.batch_anomalous == 8 and p.model.gs == "avg"
    assert p.train.loss.w_sparse == 8e-4
    for text, match in (("train: {iters: 3}", "unknown key"), ("model: {gs: maybe}", "model.gs"),
                        ("model: {heads: 3}", "does not divide"), ("train: [1, 2", "YAML")):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_config(tmp_path / "bad.yaml")


def test_cli_train_eval_and_default_features(world, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--features", str(world / "train"), "--preset", "demo", "--iters", "4",
                               "--out", str(tmp_path / "runs" / "cli"), "--ablation", "w/o Dyn",
                               "--ablation", "LT-1Head", "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(tmp_path / "runs" / "cli")
    assert ckpt["train_config"]["ablations"] == ["w/o Dyn", "LT-1Head"] and ckpt["model_config"]["heads"] == 1
    res = runner.invoke(main, ["train", "--resume", "--out", str(tmp_path / "runs" / "cli"), "--iters", "6",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert read_checkpoint(tmp_path / "runs" / "cli", "last")["iteration"] == 6
    res = runner.invoke(main, ["eval", "--run", str(tmp_path / "runs" / "cli"), "--features", str(world / "test"),
                               "--gt", str(world / "test" / "gt.json"), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert "frame AUC" in res.output and (tmp_path / "ev" / "scores" / "index.json").is_file()
    res = runner.invoke(main, ["eval", "--scores", str(tmp_path / "ev" / "scores"), "--gt",
                               str(world / "test" / "gt.json"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["metrics"]["n_videos"] == 16
    # no arguments: ./features, default preset; a missing folder is a one-line error
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(main, ["train", "--no-progress"])
    assert res.exit_code == 1 and res.output.startswith("error: ") and "features: no such feature folder" in res.output
    res = runner.invoke(main, ["eval", "--gt", str(world / "test" / "gt.json")])
    assert res.exit_code == 2
    # an output folder that cannot be made (a file stands where its parent should be) is one line naming it
    (tmp_path / "blocker").write_text("")
    res = runner.invoke(main, ["train", "--features", str(world / "train"), "--iters", "1", "--no-progress",
                               "--out", str(tmp_path / "blocker" / "run")])
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 1 and "Traceback" not in res.output and res.output.count("error: ") == 1
    assert last == f"error: {tmp_path / 'blocker' / 'run'}: Not a directory"


@pytest.mark.parametrize("bottom_by", ["score", "distance"])
def test_bottom_term_waits_for_its_share_of_the_planned_iterations(world, tmp_path, bottom_by):
    cfg = small_cfg(world / "train", iterations=10, log_every=1, eval_every=100)
    cfg.train.loss.w_bottom, cfg.train.loss.bottom_after, cfg.train.loss.bottom_by = 1.0, 0.5, bottom_by
    run = train(cfg, out=tmp_path / "run", progress=False).run_dir
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    with_term = [r["iteration"] for r in records if "loss_bottom" in r]
    assert [r["iteration"] for r in records] == list(range(1, 11)) and with_term == list(range(6, 11))
    assert all(r["loss_bottom"] > 0 for r in records if "loss_bottom" in r)


def test_calibration_names_the_normal_videos_that_set_the_threshold():
    """A crowd-like normal video scoring above the rest holds the frames above the 0.99 quantile; the
    record and the training log's line say so (Ped1's crowded normal videos set its threshold)."""
    from types import SimpleNamespace

    from vadpipe.calibration import calibrate, calibration_summary

    quiet = {f"quiet{i}": np.linspace(0.1, 0.3, 10) for i in range(9)}
    scores = {**quiet, "crowd": np.linspace(0.2, 0.9, 10)}
    videos = [SimpleNamespace(id=k, frames=160) for k in scores]
    cal = calibrate(scores, videos, "held-out normal training videos", (0.5, 0.99), 16, 16)
    table, frames = cal["normal_frame_score_quantiles"], np.repeat(scores["crowd"], 16)   # hold: 16 frames each
    t = table["0.99"]
    shares = {q: float(np.mean(frames >= v)) for q, v in table.items()}
    assert cal["videos"]["crowd"] == {"frames": 160, "above": shares}
    assert cal["videos"]["crowd"]["above"]["0.99"] == 0.1                           # its top snippet
    assert all(cal["videos"][k]["above"]["0.99"] == 0.0 for k in quiet)
    line = calibration_summary(cal)
    assert line.startswith(f"calibration from 10 held-out normal training videos: auto threshold {t:.4g}")
    assert line.endswith(f"frames at or above it: crowd {100 * np.mean(frames >= t):.1f} %")
    assert "quiet" in calibration_summary(cal, "0.5") and "and 7 more videos" in calibration_summary(cal, "0.5")
    old = {k: v for k, v in cal.items() if k != "videos"}          # checkpoints written before the record
    assert calibration_summary(old) == line.split("; frames")[0]


def test_clips_pooling_takes_the_median_clip_so_one_loud_clip_cannot_set_auto():
    """train.calibration_pooling=clips: the median over clips of each clip's quantile. Nine quiet normal
    clips and a crowd: pooling frames puts the 0.99 threshold among the crowd's scores, pooling clips at
    a quiet clip's own quantile. Both tables are recorded, ``auto`` reads the chosen one and says how it
    pooled; a record written before the choice reads as frames; an unknown pooling is refused."""
    from types import SimpleNamespace

    from vadpipe.calibration import calibrate, calibration_summary, pooled_quantiles
    from vadpipe.config import validate
    from vadpipe.errors import ConfigError
    from vadpipe.threshold import resolve_threshold

    quiet = {f"quiet{i}": np.linspace(0.1, 0.3 + 0.01 * i, 10) for i in range(9)}
    scores = {**quiet, "crowd": np.linspace(0.2, 0.9, 10)}
    videos = [SimpleNamespace(id=k, frames=160) for k in scores]
    frames, clips = (calibrate(scores, videos, "held-out normal training videos", (0.5, 0.99), 16, 16, pooling=p)
                     for p in ("frames", "clips"))
    per_clip = [np.quantile(np.repeat(s, 16), 0.99) for s in scores.values()]     # hold: 16 frames a snippet
    assert clips["normal_frame_score_quantiles"]["0.99"] == pytest.approx(np.median(per_clip))
    assert frames["normal_frame_score_quantiles"]["0.99"] > 0.5 > clips["normal_frame_score_quantiles"]["0.99"]
    assert clips["pooled"] == frames["pooled"] and (clips["pooling"], frames["pooling"]) == ("clips", "frames")
    assert clips["pooled"]["frames"] == frames["normal_frame_score_quantiles"]
    assert clips["videos"]["crowd"]["above"]["0.99"] > 0.5 > frames["videos"]["crowd"]["above"]["0.99"]
    line = calibration_summary(clips)
    assert "(the median over clips of each clip's 0.99 quantile; pooled by frames " in line
    threshold = resolve_threshold("auto", clips)
    assert threshold.pooling == "clips" and "of a typical clip" in threshold.label()
    old = {k: v for k, v in frames.items() if k not in ("pooling", "pooled")}    # written before the choice
    before = resolve_threshold("auto", old)
    assert before.pooling == "frames" and "typical" not in before.label()
    with pytest.raises(ValueError, match="frames, clips"):
        pooled_quantiles(scores, (0.99,), "videos")
    cfg = Config()
    cfg.train.calibration_pooling = "videos"
    with pytest.raises(ConfigError, match="calibration_pooling"):
        validate(cfg)
