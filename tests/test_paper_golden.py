"""The article's LTGS (``--preset paper``) trains as it did when tests/fixtures/paper_golden.json was made.

Four fixed training steps on deterministic features (tests/paper_golden_input.py) and a fingerprint of every
trained parameter: a change to the published head, its losses, the sampler, the dynamic labels or the
optimiser step shows here, where the preset's other tests only check its settings. The fixture was made by
``python tools/make_paper_golden.py`` and matched, bit for bit, by the first revision with presets
(f4134a5, 2026-12-02) and by cd51924 and efd552a (2026-12-04): the head trained the same since.
"""
from __future__ import annotations

import json
from pathlib import Path

from paper_golden_input import ITERATIONS, TRAIN_ARGS, largest_difference, train_fingerprint

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "paper_golden.json"


def test_paper_preset_trains_as_its_golden_run(tmp_path):
    golden = json.loads(FIXTURE.read_text())
    assert golden["train_args"] == TRAIN_ARGS and golden["iterations"] == ITERATIONS, \
        "the golden run's arguments changed: remake the fixture (tools/make_paper_golden.py) and say why"
    got = train_fingerprint(ROOT, tmp_path)
    worst, where, only_one = largest_difference(got, golden["fingerprint"])
    assert not only_one, f"parameters in only one of the trained head and the golden run: {only_one}"
    # one thread on this machine gives the same bits; two threads move them by 2e-7 (the order of float sums)
    assert worst < 1e-5, f"the article's head trained differently: {where} differs by {worst:.3g} (relative)"
