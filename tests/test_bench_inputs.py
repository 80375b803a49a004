"""tools/bench_accuracy.py --ped1-features / --demo-features: features extracted elsewhere are read as they
are (never extracted again), and a folder without them is one clear error."""
from __future__ import annotations

import sys
from pathlib import Path

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
