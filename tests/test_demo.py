"""`vadpipe demo --size tiny`: the whole pipeline end to end on a generated world (real Inception weights)."""
import json

import pytest
from click.testing import CliRunner

from vadpipe.cli import main
from vadpipe.demo import format_comparison


@pytest.mark.slow  # the whole demo twice with real Inception weights (minutes on 2 cores)
@pytest.mark.timeout(1800)
def test_demo_tiny_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--size", "tiny", "--iters", "12",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads((out / "demo.json").read_text())
    assert set(report["metrics"]) == {"default", "ltgs", "rtfm", "mil", "feature-norm (untrained)"}
    assert report["threads"] == 2
    for metrics in report["metrics"].values():
        assert 0.0 <= metrics["auc"] <= 1.0 and 0.0 <= metrics["ap"] <= 1.0
        assert metrics["auc_per_class"]
    plot = out / "scores" / (out / "world").joinpath(report["outputs"]["scored clip"]).stem
    assert plot.with_suffix(".png").stat().st_size > 10_000
    assert (out / "runs" / "ltgs" / "best.pt").exists()
    recipe = json.loads((out / "features" / "train" / "recipe.json").read_text())
    assert (recipe["crop"], recipe["resize_short_side"]) == ("none", 90)    # whole frames at native size
    assert "AUC" in result.output and "Outputs:" in result.output
    # A second run reuses the world and the features (resume) and still succeeds.
    again = CliRunner().invoke(main, ["demo", "--out", str(out), "--size", "tiny", "--iters", "12",
                                      "--no-progress"])
    assert again.exit_code == 0, again.output[-3000:]
    assert "0 ok, 0 failed, 5 skipped" in again.output


def test_comparison_table_lists_every_model_and_class():
    table = format_comparison({"ltgs": {"auc": 0.9, "ap": 0.5, "auc_per_class": {"Fire": 0.8},
                                        "auc_anomalous_videos": 0.55},
                               "mil": {"auc": 0.7, "ap": None, "auc_per_class": {}}})
    lines = table.splitlines()
    assert lines[0].split() == ["model", "AUC", "AP", "Fire", "in-anomalous"]
    assert lines[1].split() == ["ltgs", "90.0", "50.0", "80.0", "55.0"]
    assert lines[2].split() == ["mil", "70.0", "n/a", "n/a", "n/a"]


def test_norm_baseline_averages_crops():
    import numpy as np

    from vadpipe.demo import norm_scores

    class Video:
        def __init__(self, vid, feats):
            self.id, self._feats = vid, feats

        def raw(self):
            return self._feats

    class Set:
        videos = [Video("a", np.array([[[3.0, 4.0], [0.0, 1.0]]])), Video("b", np.array([[6.0, 8.0], [0.0, 0.0]]))]

    scores = norm_scores(Set())
    assert np.allclose(scores["a"], [3.0]) and np.allclose(scores["b"], [10.0, 0.0])


def test_demo_runs_every_stage_on_its_fixed_thread_count_and_restores_the_callers(tmp_path, monkeypatch):
    # 1 or 2 threads give features that differ in the 6th digit and a table that differs in its first
    import torch

    import vadpipe.synth
    from vadpipe.demo import DEMO_THREADS, run_demo

    seen = []

    def world_stage(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop after the first stage")

    monkeypatch.setattr(vadpipe.synth, "generate_world", world_stage)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if DEMO_THREADS != 1 else 3)
    try:
        with pytest.raises(RuntimeError, match="first stage"):
            run_demo(tmp_path / "demo", size="tiny", progress=False, echo=lambda m: None)
        assert seen == [DEMO_THREADS]
        assert torch.get_num_threads() == (1 if DEMO_THREADS != 1 else 3)
    finally:
        torch.set_num_threads(before)
