"""train / eval / calibrate on inputs that used to give a traceback, a wrong result or silence (review s61,
train.md): each case is one line naming the file and the cause, or a note, and nothing half-made is left."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from feature_world import make_store, tiny_default
from vadpipe import atomic
from vadpipe.checkpoint import read_checkpoint
from vadpipe.cli import main
from vadpipe.config import save_config, validate
from vadpipe.config_values import SEED_LIMIT, seed_problem
from vadpipe.errors import CheckpointError, ConfigError, FeatureStoreError, GroundTruthError
from vadpipe.train import resume, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """8 videos (4 anomalous, 4 normal), D 32, T 8-16: trains in seconds."""
    folder = tmp_path_factory.mktemp("robust") / "base"
    make_store(folder, 4, 4, dim=32, t_range=(8, 16), seed=0)
    return folder


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    """A tiny run of 4 iterations on ``store``."""
    out = tmp_path_factory.mktemp("robust_run") / "runs" / "r4"
    train(tiny_default(store, iterations=4), out=out, progress=False, log=lambda m: None)
    return out


@pytest.fixture
def config_file(store, tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    save_config(tiny_default(store), path)
    return path


def _one_error_line(res, exit_code: int = 1) -> str:
    assert res.exit_code == exit_code, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.output
    return errors[0]


def _copy_with_other_dim(store: Path, dest: Path, video: str) -> Path:
    """A copy of ``store`` whose ``video`` (its .npy name) holds (T, 1, 16) features instead of D 32."""
    shutil.copytree(store, dest)
    x = np.load(dest / video)
    atomic.save_npy(dest / video, np.abs(np.random.default_rng(0).normal(size=(x.shape[0], 1, 16))).astype(np.float32))
    return dest


# --- 1: seeds -------------------------------------------------------------------------------------
def test_one_seed_range_for_config_and_options(store, config_file, run, tmp_path):
    assert seed_problem(0) is None and seed_problem(SEED_LIMIT - 1) is None
    for bad in (-1, SEED_LIMIT, 10 ** 20, True, 1.5):
        assert "[0, 2**32)" in seed_problem(bad)
    cfg = tiny_default(store, seed=-1)
    with pytest.raises(ConfigError, match=r"train.seed must be an integer in \[0, 2\*\*32\), got -1"):
        validate(cfg)
    runner = CliRunner()
    for seed in ("-1", str(10 ** 20)):
        res = runner.invoke(main, ["train", "-c", str(config_file), "--iters", "1", "--seed", seed,
                                   "--out", str(tmp_path / "r"), "--no-progress"])
        assert res.exit_code == 2 and "Traceback" not in res.output and "[0, 2**32)" in res.output, res.output
    res = runner.invoke(main, ["train", "-c", str(config_file), "--iters", "1", "--set", "train.seed=-1",
                               "--out", str(tmp_path / "r"), "--no-progress"])
    assert _one_error_line(res) == "error: train.seed must be an integer in [0, 2**32), got -1"
    assert not (tmp_path / "r").exists()
    evaluated = tmp_path / "ev"
    res = runner.invoke(main, ["eval", "--run", str(run), "--features", str(store), "--gt", str(store / "gt.json"),
                               "--out", str(evaluated)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["eval", "--scores", str(evaluated / "scores"), "--gt", str(store / "gt.json"),
                               "--bootstrap", "3", "--seed", "-1"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "[0, 2**32)" in res.output, res.output
    res = runner.invoke(main, ["eval", "--scores", str(evaluated / "scores"), "--gt", str(store / "gt.json"),
                               "--bootstrap", "3", "--seed", str(SEED_LIMIT - 1)])
    assert res.exit_code == 0, res.output


# --- 2 and 10: a video of another (C, D) ----------------------------------------------------------------
@pytest.mark.parametrize("pick", ["random", "typical"])    # typical reads the normal videos to draw the split
def test_a_video_of_another_dim_is_one_line_naming_its_npy_before_training(store, tmp_path, pick):
    for video in ("Normal__normal_0_007.npy", "Fight__fight_0_001.npy"):     # wherever it lies: held out or trained
        mixed = _copy_with_other_dim(store, tmp_path / video[:-4], video)
        out = tmp_path / "runs" / video[:-4]
        with pytest.raises(FeatureStoreError) as err:
            train(tiny_default(mixed, iterations=4, holdout_pick=pick), out=out, progress=False, log=lambda m: None)
        assert str(err.value) == f"{mixed / video}: 1 crops x 16 dims, expected 1 x 32 like the other videos"
        assert not out.exists() and not (tmp_path / "runs" / "latest").exists()
    # an RTFM list with one 16-d file: the same line, naming the listed file
    lines = [str(p) for p in sorted(store.glob("*.npy"))]
    odd = tmp_path / "odd.npy"
    atomic.save_npy(odd, np.ones((9, 16), dtype=np.float32))
    listed = tmp_path / "mixed.list"
    listed.write_text("\n".join(lines[:-1] + [str(odd)]) + "\n")
    with pytest.raises(FeatureStoreError, match=f"^{odd}: 1 crops x 16 dims, expected 1 x 32 like the other videos$"):
        train(tiny_default(listed, iterations=4), out=tmp_path / "runs" / "list", progress=False, log=lambda m: None)


def test_validation_checks_every_held_out_and_external_video(store, tmp_path):
    from vadpipe.data import open_features
    from vadpipe.validation import open_validation

    video = "Normal__normal_0_005.npy"
    mixed = open_features(_copy_with_other_dim(store, tmp_path / "held", video))
    held = np.array([i for i, v in enumerate(mixed.videos) if v.file.endswith(video)])
    with pytest.raises(FeatureStoreError, match=f"{video}: 1 crops x 16 dims, expected 1 x 32 like the other"):
        open_validation(tiny_default(store).train, mixed, held, lambda m: None)
    external = _copy_with_other_dim(store, tmp_path / "ext", video)
    t = tiny_default(store, val_features=str(external), val_gt=str(external / "gt.json")).train
    with pytest.raises(FeatureStoreError, match=f"{video}: 1 crops x 16 dims, expected 1 x 32 like the training"):
        open_validation(t, open_features(store), np.array([], dtype=np.int64), lambda m: None)


def test_eval_run_names_the_npy_of_another_dim(store, run, tmp_path):
    video = "Normal__normal_0_006.npy"
    mixed = _copy_with_other_dim(store, tmp_path / "mixed", video)
    res = CliRunner().invoke(main, ["eval", "--run", str(run), "--features", str(mixed), "--gt",
                                    str(mixed / "gt.json"), "--out", str(tmp_path / "ev")])
    assert _one_error_line(res) == f"error: {mixed / video}: 1 crops x 16 dims, expected 1 x 32 like the other videos"


# --- 3: calibrate --quantiles with none in it ------------------------------------------------------------
@pytest.mark.parametrize("quantiles", [",", " ", ""])
def test_calibrate_refuses_an_empty_quantile_list(store, run, tmp_path, quantiles):
    before = (run / "best.pt").read_bytes()
    res = CliRunner().invoke(main, ["calibrate", str(store / "Normal__normal_0_004.npy"), "--checkpoint",
                                    str(run / "best.pt"), "-o", str(tmp_path / "c.pt"), "--quantiles", quantiles,
                                    "--no-progress"])
    assert "no quantile given" in _one_error_line(res)
    assert not (tmp_path / "c.pt").exists() and (run / "best.pt").read_bytes() == before


def test_calibrate_notes_clips_labelled_anomalous(store, run, tmp_path):
    res = CliRunner().invoke(main, ["calibrate", str(store), "--checkpoint", str(run / "best.pt"),
                                    "-o", str(tmp_path / "c.pt"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert ("note: 4 of the 8 clips are labelled anomalous in their feature folder's manifest "
            "(first: Fight/fight_0_000)") in res.output
    res = CliRunner().invoke(main, ["calibrate", str(store / "Normal__normal_0_004.npy"), "--checkpoint",
                                    str(run / "best.pt"), "-o", str(tmp_path / "c1.pt"), "--no-progress"])
    assert res.exit_code == 0 and "labelled anomalous" not in res.output, res.output


# --- 4: --out .../latest ----------------------------------------------------------------------------------
def test_out_named_latest_is_refused_and_a_latest_folder_is_named(store, config_file, tmp_path, monkeypatch):
    from vadpipe.checkpoint import update_latest

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["train", "-c", str(config_file), "--iters", "1", "--no-progress"]
    res = runner.invoke(main, args + ["--out", "runs/latest"])
    assert _one_error_line(res) == "error: --out runs/latest: 'latest' is the pointer to the newest run; choose " \
                                   "another name"
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "latest").mkdir(parents=True)          # as the old code left it
    res = runner.invoke(main, args)
    assert _one_error_line(res).startswith("error: runs/latest is a folder, not the pointer to the newest run")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["latest"]    # no half-made run beside it
    with pytest.raises(CheckpointError, match="is a folder, not the pointer"):
        update_latest(tmp_path / "runs" / "other")
    (tmp_path / "runs" / "latest").rmdir()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "latest").is_symlink() or (tmp_path / "runs" / "latest").is_file()


# --- 5, 11, 12: resume ------------------------------------------------------------------------------------
def test_resume_iters_replaces_an_epoch_schedule_and_cannot_shrink_the_run(store, tmp_path):
    cfg = tiny_default(store, epochs=2.0, min_iterations=4)
    first = train(cfg, out=tmp_path / "ep", progress=False, log=lambda m: None)
    assert first.iterations == 4
    logged = []
    assert resume(tmp_path / "ep", iterations=6, progress=False, log=logged.append).iterations == 6
    assert read_checkpoint(tmp_path / "ep", "last")["iteration"] == 6
    assert any(m.startswith("training 6 iterations (fixed schedule)") for m in logged), logged
    config = (tmp_path / "ep" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="--iters 5: the run .* already made 6 iterations"):
        resume(tmp_path / "ep", iterations=5, progress=False, log=lambda m: None)
    assert (tmp_path / "ep" / "config.yaml").read_text() == config
    assert read_checkpoint(tmp_path / "ep", "last")["iteration"] == 6


def test_resume_refuses_a_training_video_labelled_otherwise_since(store, tmp_path):
    """The batches were drawn by label: a video relabelled in the manifest since the run began is named."""
    copy = tmp_path / "relabelled"
    shutil.copytree(store, copy)
    train(tiny_default(copy, iterations=4), out=tmp_path / "r", progress=False, log=lambda m: None)
    trained = read_checkpoint(tmp_path / "r", "last")["last"]["split"]["train"]
    manifest = copy / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for rec in lines:
        if rec["id"] == trained[0]:
            was, rec["label"] = rec["label"], 1 - rec["label"]
    manifest.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    with pytest.raises(FeatureStoreError, match=rf"video '{trained[0]}' was labelled {was} when the run began and "
                                                rf"is {1 - was} now; cannot resume"):
        resume(tmp_path / "r", iterations=6, progress=False, log=lambda m: None)


def test_resume_takes_device_and_refuses_seed_zero(store, run, tmp_path):
    copy = tmp_path / "cu"
    shutil.copytree(run, copy)
    for which in ("best", "last"):                   # a run trained on a GPU, resumed where there is none
        state = torch.load(copy / f"{which}.pt", weights_only=True)
        state["train_config"]["device"] = "cuda:7"
        torch.save(state, copy / f"{which}.pt")
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--resume", "--out", str(copy), "--iters", "6", "--no-progress"])
    if not torch.cuda.is_available():
        assert "cuda" in _one_error_line(res)
    res = runner.invoke(main, ["train", "--resume", "--out", str(copy), "--iters", "6", "--device", "cpu",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "continuing on cpu (the run trained on cuda:7): the result is not bit-identical" in res.output
    last = read_checkpoint(copy, "last")
    assert last["iteration"] == 6 and last["train_config"]["device"] == "cpu"
    for given in (["--seed", "0"], ["--seed", "5"], ["--features", ""], ["--select", "last"]):
        res = runner.invoke(main, ["train", "--resume", "--out", str(copy), "--no-progress"] + given)
        assert res.exit_code == 2 and "only --out, --iters and --device apply" in res.output, (given, res.output)


# --- 6: --list-anomalous on a feature folder -----------------------------------------------------------------
def test_list_anomalous_is_checked_and_a_folder_says_it_does_not_use_it(store, tmp_path):
    with pytest.raises(ConfigError, match="train.list_anomalous = 'bogus'; use auto, name, none, first:N or last:N"):
        train(tiny_default(store, iterations=1, list_anomalous="bogus"), out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    logged = []
    train(tiny_default(store, iterations=1, list_anomalous="first:1"), out=tmp_path / "b", progress=False,
          log=logged.append)
    assert f"note: train.list_anomalous first:1 applies to RTFM list files; {store} takes its labels from its " \
           f"manifest.jsonl (the rule is not used)" in logged


# --- 7: a video annotated twice ---------------------------------------------------------------------------
def test_ground_truth_refuses_a_video_annotated_twice(tmp_path):
    from vadpipe.groundtruth import read_ucf_annotation, read_vadpipe_json

    ucf = tmp_path / "ucf.txt"
    ucf.write_text("fight_0_000.mp4 Fighting 49 112 -1 -1\nnormal_0_004.mp4 Normal -1 -1 -1 -1\n\n"
                   "fight_0_000.mp4 Fighting 200 210 -1 -1\n")
    with pytest.raises(GroundTruthError, match=f"^{ucf}:4: video fight_0_000 already annotated on line 1"):
        read_ucf_annotation(ucf)
    doubled = tmp_path / "gt.json"
    doubled.write_text('{"videos": {"a": {"frames": 30, "intervals": [[0, 5]]}, "b": {"frames": 9}, '
                       '"a": {"frames": 30, "intervals": []}}}')
    with pytest.raises(GroundTruthError, match=f"^{doubled}: 'a' appears twice in one object"):
        read_vadpipe_json(doubled)


def test_ground_truth_frames_must_be_a_count(tmp_path):
    from vadpipe.groundtruth import read_vadpipe_json

    for frames in (-7, 12.9, 0, True):
        path = tmp_path / "gt.json"
        path.write_text(json.dumps({"videos": {"a": {"frames": frames, "intervals": []}}}))
        with pytest.raises(GroundTruthError, match=f"^{path}: video 'a': frames {frames!r} is not a count"):
            read_vadpipe_json(path)
    path.write_text(json.dumps({"videos": {"a": {"frames": 30.0, "intervals": [[0, 5]]}}}))
    assert read_vadpipe_json(path)["a"].frames == 30


def test_validation_videos_whose_frames_disagree_are_logged_once(store, tmp_path):
    from vadpipe.groundtruth import read_vadpipe_json, write_vadpipe_json

    half = read_vadpipe_json(store / "gt.json")
    for i, gt in enumerate(half.values()):
        gt.frames += 100 if i % 2 else 0             # every other video: more frames than its snippets reach
    write_vadpipe_json(tmp_path / "half.json", half.values())
    lines = []
    cfg = tiny_default(store, iterations=8, val_features=str(store), val_gt=str(tmp_path / "half.json"))
    train(cfg, out=tmp_path / "r", progress=False, log=lines.append)     # two validations, one line
    told = [line for line in lines if "skipped, their frame count disagrees" in line]
    assert len(told) == 1 and told[0].startswith(f"validation: {len(half) // 2} of {len(half)} video(s)"), lines


# --- 8: features import --labels rows matching nothing ---------------------------------------------------
def test_features_import_warns_about_label_rows_that_match_no_video(store, tmp_path):
    src = tmp_path / "imp"
    src.mkdir()
    for i in range(3):
        np.save(src / f"vid{i}.npy", np.ones((5, 1, 32), dtype=np.float32))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label\nghost1,1\nvid1,0\nghost2,0\n")
    res = CliRunner().invoke(main, ["features", "import", str(src), "--labels", str(labels), "--recipe",
                                    str(store / "recipe.json")])
    assert res.exit_code == 0, res.output
    assert f"warning: 2 of 3 rows of {labels} match no video (first: 'ghost1')" in res.output
    assert "0 anomalous, 1 normal, 2 unlabeled" in res.output


# --- 9: eval errors name the ground truth and the cause ------------------------------------------------------
def test_eval_errors_name_the_ground_truth_file_and_the_cause(store, run, tmp_path):
    runner = CliRunner()

    def eval_line(gt: Path, *more: str) -> str:
        return _one_error_line(runner.invoke(main, ["eval", "--run", str(run), "--features", str(store),
                                                    "--gt", str(gt), "--out", str(tmp_path / "ev"), *more]))

    empty = tmp_path / "empty.json"
    empty.write_text('{"videos": {}}')
    assert eval_line(empty) == f"error: {empty}: holds no videos"
    assert not (tmp_path / "ev").exists()                    # read before scoring: nothing written
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert eval_line(blank).startswith(f"error: {blank}: holds no annotation lines")
    gts = json.loads((store / "gt.json").read_text())
    for rec in gts["videos"].values():
        rec["frames"] += 100
    far = tmp_path / "far.json"
    far.write_text(json.dumps(gts))
    line = eval_line(far, "--on-mismatch", "skip")
    assert line.startswith(f"error: {far}: all 8 matched video(s) mismatched and were skipped (first: Fight/fight_0_000:")
    assert eval_line(far).startswith(f"error: {far}: video Fight/fight_0_000: ")
    other = tmp_path / "other.json"
    other.write_text('{"videos": {"x": {"frames": 30, "intervals": []}}}')
    assert eval_line(other).startswith(f"error: {other}: none of the 8 scored videos")


# --- minor: --iters 0 ------------------------------------------------------------------------------------------
def test_a_kill_just_after_an_evaluations_last_pt_loses_no_metrics_record(store, tmp_path, monkeypatch):
    """last.pt of iteration 4 written, then killed: the resumed run's metrics.jsonl is the uninterrupted one's
    (the records of iteration 4 used to be written after last.pt, and a resume keeps only those in the file)."""
    from vadpipe import checkpoint

    full = train(tiny_default(store, iterations=8), out=tmp_path / "full", progress=False, log=lambda m: None)
    save = checkpoint.Checkpoint.save

    def killed_after_last_pt(self, path):
        save(self, path)
        if Path(path).name == "last.pt" and self.iteration == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpoint, "save", killed_after_last_pt)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_default(store, iterations=8), out=tmp_path / "part", progress=False, log=lambda m: None)
    monkeypatch.setattr(checkpoint.Checkpoint, "save", save)
    resume(tmp_path / "part", progress=False, log=lambda m: None)

    def records(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert records(tmp_path / "part") == records(full.run_dir)
    assert any(r["iteration"] == 4 and "val_auc" in r for r in records(tmp_path / "part"))


def test_a_run_that_diverges_is_one_line_naming_the_iteration(store, tmp_path):
    """lr 1e6: NaN scores in a step or two, which BCE used to stop on with torch's traceback."""
    res = CliRunner().invoke(main, ["train", "--features", str(store), "--device", "cpu", "--no-progress",
                                    "--out", str(tmp_path / "div"), "--iters", "20", "--set", "model.heads=4",
                                    "--set", "model.ffn_dim=32", "--set", "train.lr=1e6"])
    line = _one_error_line(res)
    assert line.startswith("error: training diverged at iteration ") and "NaN or infinite" in line, line
    assert line.endswith("(lower train.lr, now 1e+06, or a loss weight); nothing was saved"), line


def test_zero_iterations_keep_iteration_zero(config_file, tmp_path):
    res = CliRunner().invoke(main, ["train", "-c", str(config_file), "--iters", "0", "--out", str(tmp_path / "z"),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "kept iteration 0," in res.output and "validation AUC n/a at iteration 0" in res.output
    assert "None" not in res.output
    assert read_checkpoint(tmp_path / "z")["metrics"]["best_iteration"] == 0
