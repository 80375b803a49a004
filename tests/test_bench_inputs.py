"""tools/bench_accuracy.py's inputs and report: --ped1-features / --demo-features are read as they are (never
extracted again), a folder without them is one clear error; feature ids meet ground-truth names as in
``vadpipe eval``; videos left out are counted and named."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_accuracy  # noqa: E402


def _store(root: Path) -> Path:
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        (root / split / "recipe.json").write_text("{}")
    return root


def test_ped1_reads_given_features_without_extracting(tmp_path, monkeypatch):
    (tmp_path / "ped1" / "videos").mkdir(parents=True)
    given = _store(tmp_path / "variant")
    monkeypatch.setattr(bench_accuracy, "PED1", tmp_path / "ped1")
    monkeypatch.setattr(bench_accuracy, "PED1_FEATURES", given)
    monkeypatch.setattr(bench_accuracy, "extract_split", lambda *a: pytest.fail("extracted again"))
    bench = bench_accuracy.ped1_bench(tmp_path / "cache")
    assert (bench.train, bench.test) == (str(given / "train"), str(given / "test"))
    swap = bench_accuracy.ped1_swap_bench(tmp_path / "cache")
    assert (swap.train, swap.test) == (bench.test, bench.train)


def test_given_features_without_a_split_is_one_error_naming_it(tmp_path):
    root = tmp_path / "half"
    (root / "train").mkdir(parents=True)
    (root / "train" / "recipe.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"half: no extracted features in test/"):
        bench_accuracy.given_features(root)


def test_given_features_refuse_extraction_options():
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--ped1-features", "x", "--light", "mean", "--bench", "ped1"])


def test_table_shows_each_event_type_the_ground_truth_names():
    runs = [{"auc": 0.7, "type_Intrusion": 0.6, "type_Fire": 0.9}, {"auc": 0.8, "type_Intrusion": 0.8, "type_Fire": 0.9}]
    head, _, row = bench_accuracy.table("demo", {"default": runs}).splitlines()[1:4]
    cells = dict(zip([c.strip() for c in head.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["Intrusion"] == "70.0 ± 14.1" and cells["Fire"] == "90.0 ± 0.0" and cells["config"] == "default"


def test_light_choices_are_the_light_steps_own_modes():
    from vadpipe.extractors.transforms import LIGHT_MODES

    assert bench_accuracy.light_modes() == LIGHT_MODES
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--light", "dusk", "--bench", "ped1"])


def test_flagged_spans_gives_each_stretch_its_flagged_share_and_peak():
    import numpy as np
    from flagged_spans import flagged_spans

    times = np.arange(10) * 1.0
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.1, 0.9, 0.9, 0.9, 0.4, 0.5])
    got = flagged_spans(times, scores, {"a": (0, 5), "b": (5, 10), "none": (20, 30)}, 0.5)
    assert got == {"a": (0.4, 0.7), "b": (0.8, 0.9)}


def _bare_gt(store: Path) -> Path:
    """``store``'s ground truth under bare names (``fight_0_000``) while its feature ids keep their class folder
    (``Fight/fight_0_000``), as Ped1's ``Anomaly/Test019`` against ``Test019``."""
    from vadpipe.groundtruth import VideoGT, load_ground_truth, write_vadpipe_json

    bare = store / "bare_gt.json"
    write_vadpipe_json(bare, [VideoGT(g.id.split("/")[-1], g.frames, g.intervals, g.cls)
                              for g in load_ground_truth(store / "gt.json").values()])
    return bare


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny default head trained on a generated store, and a test store with class folders in its ids."""
    from feature_world import make_store, tiny_default
    from vadpipe.checkpoint import checkpoint_path, load_checkpoint

    root = tmp_path_factory.mktemp("bench")
    make_store(root / "train", 6, 6, dim=16, seed=0, t_range=(8, 20))
    make_store(root / "test", 4, 4, dim=16, seed=1, t_range=(8, 20))
    bench = bench_accuracy.Bench("t", str(root / "train"), str(root / "test"), str(_bare_gt(root / "test")))
    bench_accuracy.run_once(bench, tiny_default(root / "train", iterations=4), 0, root / "runs")
    return bench, *load_checkpoint(checkpoint_path(root / "runs" / "t-0"), "cpu")


def test_new_scene_shares_match_feature_ids_to_bare_ground_truth_names(trained, monkeypatch):
    """The scene check's readings are keyed by feature id, the frames by ground-truth name: matched as
    ``vadpipe eval`` matches them, a head reading every video as a new scene gives 100 %, not 0."""
    from vadpipe import evaluate

    bench, model, ckpt = trained
    monkeypatch.setattr(evaluate, "reads_beyond", lambda check, x: True)
    figures = bench_accuracy.evaluate_model(bench, model, ckpt)
    assert (figures["scene_normal"], figures["scene_anomalous"]) == (1.0, 1.0)


def test_videos_left_out_are_counted_and_named(trained, tmp_path):
    """A test video whose frames do not match its snippets and one without ground truth are left out of the
    figures, as ``vadpipe eval --on-mismatch skip`` does, but the run says which and how many."""
    from vadpipe.groundtruth import VideoGT, load_ground_truth, write_vadpipe_json

    bench, model, ckpt = trained
    gts = sorted(load_ground_truth(bench.gt).values(), key=lambda g: g.id)
    wrong, *kept = gts[1:]                              # gts[0] dropped: no ground truth
    broken = tmp_path / "broken_gt.json"
    write_vadpipe_json(broken, [VideoGT(wrong.id, wrong.frames * 4, wrong.intervals, wrong.cls)] + kept)
    figures = bench_accuracy.evaluate_model(bench_accuracy.Bench("t", bench.train, bench.test, str(broken)),
                                            model, ckpt)
    assert figures["n_videos"] == len(gts) - 2
    assert [v.split(" (")[0].split("/")[-1] for v in figures["left_out"]] == [wrong.id, gts[0].id]
    assert figures["left_out"][1].endswith("(no ground truth)")
    line = bench_accuracy.left_out_line("t", {"default": [figures, figures]})
    assert line.startswith(f"t: 2 test video(s) left out, figures over {len(gts) - 2}: ") and "\n" not in line
    assert bench_accuracy.left_out_line("t", {"default": [{**figures, "left_out": []}]}) is None


def test_main_prints_the_left_out_line_under_the_table(monkeypatch, capsys, tmp_path):
    def run_once(bench, cfg, seed, workdir, device, keep, jitter):
        return {"auc": 0.8, "seconds": 1.0, "n_videos": 3, "left_out": ["Test019 (no ground truth)"]}

    monkeypatch.setattr(bench_accuracy, "run_once", run_once)
    args = ["--bench", "--extra", "x=a:b:c", "--config", "d=default", "--seeds", "0", "1",
            "--cache", str(tmp_path), "--json", str(tmp_path / "r.json")]
    assert bench_accuracy.main(args) == 0
    assert "x: 1 test video(s) left out, figures over 3: Test019 (no ground truth)" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["x"]["d"][0]["n_videos"] == 3


def test_each_group_shows_its_size_and_a_tiny_group_is_noted(trained, monkeypatch):
    """A generated-features group's header gives how many videos its AUC covers and how many are anomalous; a
    group of one anomalous video (the seed-0 world's short events) is said to be one."""
    from vadpipe.groundtruth import load_ground_truth

    bench, model, ckpt = trained
    gts = sorted(load_ground_truth(bench.gt).values(), key=lambda g: g.id)
    anomalous = [g.id for g in gts if g.intervals]
    def events(g):      # the first anomalous video's event made short (under 5 % of a long T), the others long
        if not g.intervals:
            return []
        start, end = g.intervals[0]
        return [(start // 16, -(-end // 16))] if g.id == anomalous[0] else [(0, 50)]

    groups = {"test": {g.id: {"class": 0 if g.intervals else None, "seen": g.id != anomalous[0],
                              "T": 10 ** 6 if g.id == anomalous[0] else 100, "events": events(g), "bursts": []}
                       for g in gts}}
    figures = bench_accuracy.evaluate_model(bench_accuracy.Bench("t", bench.train, bench.test, bench.gt, groups),
                                            model, ckpt)
    normal = len(gts) - len(anomalous)
    assert figures["videos_in_group"] == {"all": {"videos": len(gts), "anomalous": len(anomalous)},
                                          "short": {"videos": normal + 1, "anomalous": 1},
                                          "unseen": {"videos": normal + 1, "anomalous": 1},
                                          "bursts": {"videos": len(anomalous), "anomalous": len(anomalous)}}
    head = bench_accuracy.table("features", {"d": [figures]}).splitlines()[1]
    assert f"short ({normal + 1} videos, 1 anom.)" in head and f"all ({len(gts)} videos, 4 anom.)" in head
    monkeypatch.setattr(bench_accuracy, "TINY_GROUP", 2)          # this store's 4 anomalous videos are a group
    notes = bench_accuracy.tiny_group_lines("features", {"d": [figures]})
    assert [n.split(" holds")[0] for n in notes] == ["features: group short", "features: group unseen"]
    assert "only 1 anomalous video(s)" in notes[0]


def test_spread_is_the_sample_sd_and_one_run_prints_no_spread(capsys):
    """± is the sample sd (n − 1); one run has none to print (not "± 0.0"); a missing figure is counted, in the
    cell and in the header, never dropped silently; --help says so."""
    assert bench_accuracy.mean_sd([0.8, 0.9]) == "85.0 ± 7.1"              # population sd: 5.0
    assert bench_accuracy.mean_sd([0.87]) == "87.0"
    assert bench_accuracy.mean_sd([0.8, None, 0.9]) == "85.0 ± 7.1 (2 of 3)"
    assert bench_accuracy.mean_sd([None, 0.9]) == "90.0 (1 of 2)"
    runs = [{"auc": 0.8, "hit_auto": 0.5}, {"auc": 0.9, "hit_auto": None}, {"auc": 0.7, "hit_auto": 0.6}]
    title, head, _, row = bench_accuracy.table("ped1", {"default": runs}).splitlines()
    cells = dict(zip([c.strip() for c in head.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["hit@auto"] == "55.0 ± 7.1 (2 of 3)" and cells["frame AUC"] == "80.0 ± 10.0"
    assert title == "## ped1 (percent; mean ± sample sd (n − 1) over 2/3 seeds)"
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--help"])
    assert "sample sd" in " ".join(capsys.readouterr().out.split())


def test_the_short_events_group_takes_each_short_event_with_its_own_videos_background():
    """A video with a short and a long event takes part with the short one and the frames outside both; its
    long event is left out (a group of videos whose events are all short held one video of 40)."""
    from vadpipe.feature_groups import group_masks
    from vadpipe.synthetic_features import SNIPPET

    groups = {"test": {"a": {"class": 1, "seen": True, "T": 100, "events": [(10, 12), (40, 80)], "bursts": []},
                       "n": {"class": None, "seen": True, "T": 100, "events": [], "bursts": []}}}
    labels = np.zeros(100 * SNIPPET, dtype=np.int8)
    labels[10 * SNIPPET:12 * SNIPPET] = labels[40 * SNIPPET:80 * SNIPPET] = 1
    short = group_masks(groups, {"a": labels, "n": np.zeros(100 * SNIPPET, dtype=np.int8)})["short"]
    assert short["n"].all()
    assert short["a"][10 * SNIPPET:12 * SNIPPET].all() and not short["a"][40 * SNIPPET:80 * SNIPPET].any()
    assert short["a"].sum() == (100 - 40) * SNIPPET


def test_a_run_of_two_checkouts_is_refused(monkeypatch, tmp_path):
    """PYTHONPATH=. in a worktree imports its vadpipe/ but the editable install's models/: refused, not measured."""
    import vadpipe.models

    assert bench_accuracy.mixed_checkouts() is None
    monkeypatch.setattr(vadpipe.models, "__file__", str(tmp_path / "other" / "models" / "__init__.py"))
    assert "more than one checkout" in bench_accuracy.mixed_checkouts()
    with pytest.raises(SystemExit):
        bench_accuracy.main(["--bench", "features", "--seeds", "0"])
