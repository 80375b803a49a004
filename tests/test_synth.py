"""The synthetic world: determinism, ground truth that agrees with the pixels, formats, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from vadpipe.cli import main
from vadpipe.errors import ConfigError
from vadpipe.synth import (EVENT_TYPES, ClipSpec, generate_world, gt_document, plan_clip, plan_world, render_frames,
                           synth_config, ucf_annotation_text)


def _spec(cls, seed=1, frames=60, width=128, height=72, n_events=None) -> ClipSpec:
    n = (0 if cls is None else 1) if n_events is None else n_events
    return ClipSpec(f"t_{(cls or 'normal').lower()}", "test", cls, seed, frames, width, height, 25, n)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    cfg = synth_config("tiny", seed=5)
    summary = generate_world(out, cfg)
    return out, cfg, summary


# --- config and planning -----------------------------------------------------------------------
def test_presets_and_validation():
    tiny = synth_config("tiny")
    assert (tiny.width, tiny.height, tiny.fps) == (160, 90, 25)
    assert synth_config("small", width=640).height == 360          # aspect kept
    assert synth_config("full").clips == 100
    for bad in (dict(width=161), dict(min_seconds=5, max_seconds=3), dict(clips=1), dict(event_types=("Flood",))):
        with pytest.raises(ConfigError):
            synth_config("tiny", **bad)
    with pytest.raises(ConfigError):
        synth_config("huge")


def test_plan_world_splits_types_and_names():
    specs = plan_world(synth_config("small", seed=3))
    assert len(specs) == 40 and specs == plan_world(synth_config("small", seed=3))
    assert len({s.name for s in specs}) == len(specs)                 # stems unique across splits
    for split in ("train", "test"):
        mine = [s for s in specs if s.split == split]
        assert sum(s.cls is None for s in mine) == 10
        assert sorted(s.cls for s in mine if s.cls) == sorted(EVENT_TYPES * 2)
    s = next(s for s in specs if s.cls == "Fire" and s.split == "test")
    assert s.video_id == f"Fire/{s.name}" and s.relpath == f"test/Fire/{s.name}.mp4"
    assert all(6 * 25 <= s.frames <= 14 * 25 for s in specs)
    assert plan_world(synth_config("small", seed=4)) != specs
    for cam in range(8):                  # fixed cameras film both kinds in both splits: no label leak
        for split in ("train", "test"):
            kinds = {s.cls is None for s in specs if s.camera == cam and s.split == split}
            assert kinds == {True, False}


def test_clips_of_one_camera_share_the_scene_not_the_action():
    a = plan_clip(ClipSpec("a", "train", None, 1, 30, 128, 72, camera=2, camera_seed=77))
    b = plan_clip(ClipSpec("b", "test", "Fire", 2, 30, 128, 72, n_events=1, camera=2, camera_seed=77))
    assert a.layout == b.layout and np.array_equal(a.background, b.background)
    assert [p.track.x[0] for p in a.people] != [p.track.x[0] for p in b.people]
    c = plan_clip(ClipSpec("c", "train", None, 1, 30, 128, 72, camera=3, camera_seed=78))
    assert c.layout != a.layout


# --- determinism -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["Fighting", "Fire"])
def test_same_seed_same_frames_and_labels(cls):
    a, b = plan_clip(_spec(cls)), plan_clip(_spec(cls))
    assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events] and a.events
    fa, fb = list(render_frames(a)), list(render_frames(b))
    assert len(fa) == 60 and fa[0].shape == (72, 128, 3) and fa[0].dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    other = list(render_frames(plan_clip(_spec(cls, seed=2)), stop=5))
    assert not np.array_equal(other[0], fa[0])


def test_generated_world_is_deterministic(world, tmp_path):
    out, cfg, _ = world
    again = generate_world(tmp_path / "again", cfg)
    a = json.loads((out / "world.json").read_text())["clips"]
    b = json.loads((again.out_dir / "world.json").read_text())["clips"]
    assert a == b
    from vadpipe.video import VideoReader

    rec = next(r for r in a if r["label"] == 1)
    fa = list(VideoReader(out / rec["path"]).frames())
    fb = list(VideoReader(again.out_dir / rec["path"]).frames())
    assert len(fa) == rec["frames"] and all(np.array_equal(x, y) for x, y in zip(fa, fb))


# --- events are drawn where the labels say -----------------------------------------------------
def _diff_to_twin(plan):
    """Per frame: pixels of each event's region that differ clearly (> 20 levels) from the same frame
    drawn without the event actors (same noise, same normal traffic); and the largest difference anywhere."""
    with_ev = np.stack(list(render_frames(plan))).astype(np.int16)
    without = np.stack(list(render_frames(plan, hide_events=True))).astype(np.int16)
    d = np.abs(with_ev - without).max(axis=3)
    regions = []
    for ev in plan.events:
        x0, y0, x1, y1 = ev.region.as_list()
        regions.append((d[:, y0:y1, x0:x1] > 20).sum(axis=(1, 2)))
    return regions, d.reshape(len(d), -1).max(axis=1)


@pytest.mark.parametrize("cls", EVENT_TYPES)
@pytest.mark.parametrize("seed", [11, 12])
def test_each_event_type_is_visible_inside_its_window(cls, seed):
    n = 200
    plan = plan_clip(_spec(cls, seed=seed, frames=n, width=192, height=108))
    assert len(plan.events) == 1 and plan.events[0].type == cls
    ev = plan.events[0]
    assert 0 <= ev.start < ev.end <= n and ev.end - ev.start >= 12
    (region,), anywhere = _diff_to_twin(plan)
    inside = np.zeros(n, bool)
    inside[ev.start:ev.end] = True
    # at 192x108 a person is ~12 px tall: an intruder's legs in the zone are a handful of pixels
    assert region[inside].mean() >= 8, f"{cls}: event barely visible ({region[inside].mean():.1f} px)"
    # away from the window (people walk up to and away from their event: allow 2.5 s each side)
    far = np.ones(n, bool)
    far[max(ev.start - 63, 0):ev.end + 63] = False
    if far.sum() >= 10:
        assert region[inside].mean() > 3 * region[far].mean()
    if cls in ("Fire", "WrongWay"):   # nothing of these is drawn outside the window (1-frame antialias slack)
        drawn = np.flatnonzero(anywhere > 0)
        assert drawn.min() >= ev.start - 1 and drawn.max() <= ev.end
        assert (anywhere[inside] > 0).mean() > 0.95
    else:                             # the actors themselves are on screen for the whole window
        assert (anywhere[inside] > 20).all()


def test_normal_clip_has_no_events_and_hiding_changes_nothing():
    plan = plan_clip(_spec(None))
    assert plan.events == [] and all(p.event is None for p in plan.people)
    a = list(render_frames(plan, stop=10))
    b = list(render_frames(plan, hide_events=True, stop=10))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("cls", ["Fighting", "Abandoned", "Fire"])
def test_only_intruders_enter_the_zone(cls):
    for seed in range(6):   # people walking around an event spot must not detour through the zone
        plan = plan_clip(_spec(cls, seed=seed, frames=250, width=320, height=180))
        for p in plan.people:
            frames = np.arange(p.track.t0, p.track.t1)
            seen = (frames >= 0) & (frames < 250)
            assert not plan.layout.zone.contains(p.track.x, p.track.y)[seen].any()


def test_normal_people_stay_out_of_zone_and_off_the_road():
    for seed in range(4):
        plan = plan_clip(_spec(None, seed=seed, frames=250, width=320, height=180))
        L = plan.layout
        zebra = L.zebra.inflate(L.mx(1.0), 0)
        for p in plan.people:
            tr = p.track
            seen = (np.arange(tr.t0, tr.t1) >= 0) & (np.arange(tr.t0, tr.t1) < 250)
            assert not L.zone.contains(tr.x, tr.y)[seen].any()
            on_road = L.road.inflate(0, -L.my(0.3)).contains(tr.x, tr.y) & ~zebra.contains(tr.x, tr.y)
            assert not on_road[seen].any()


@pytest.mark.parametrize("cls", EVENT_TYPES)
def test_two_events_and_durations(cls):
    plan = plan_clip(_spec(cls, seed=3, frames=300, width=160, height=90, n_events=2))
    assert len(plan.events) == 2
    a, b = sorted(plan.events, key=lambda e: e.start)
    if cls == "WrongWay" and a.end > b.start:   # a slow first car may still be in the picture: one interval
        assert plan.intervals() == [[a.start, max(a.end, b.end)]]
    else:
        assert a.end <= b.start                                 # separate windows
        assert plan.intervals() == [[a.start, a.end], [b.start, b.end]]


def test_durations_range_from_a_second_to_most_of_the_clip():
    fracs = []
    for seed in range(30):
        cls = EVENT_TYPES[seed % len(EVENT_TYPES)]
        plan = plan_clip(_spec(cls, seed=seed, frames=250, width=128, height=72))
        fracs += [(e.end - e.start) / 250 for e in plan.events]
    assert min(fracs) * 250 >= 12 and min(fracs) < 0.15 and max(fracs) > 0.6


# --- files written -------------------------------------------------------------------------------
def test_world_layout_and_ground_truth_files(world):
    out, cfg, summary = world
    assert summary.clips == 10 and summary.generated == 10
    assert set(summary.events) == set(EVENT_TYPES)            # every type at least once
    doc = json.loads((out / "world.json").read_text())
    assert doc["status"] == "complete" and doc["config"] == cfg.to_dict()
    clips = doc["clips"]
    for split in ("train", "test"):
        gt = json.loads((out / f"{split}_gt.json").read_text())
        mine = [c for c in clips if c["split"] == split]
        assert gt == json.loads(json.dumps(gt_document(mine)))
        for c in mine:
            g = gt["videos"][c["id"]]
            assert (out / split / (c["id"] + ".mp4")).is_file()
            assert g["label"] == int(bool(g["intervals"])) == int(c["class"] is not None)
            assert g["fps"] == 25 and g["frames"] == c["frames"]
            assert all(0 <= s < e <= g["frames"] for s, e in g["intervals"])
            assert [(e["start"], e["end"]) for e in g["events"]] == [(e["start"], e["end"]) for e in c["events"]]
    # the ids are what `vadpipe extract OUT/test` assigns, with the labels it reads from folders
    from vadpipe.extract import discover

    jobs = discover(out / "test")
    test_gt = json.loads((out / "test_gt.json").read_text())["videos"]
    assert {j.id for j in jobs} == set(test_gt)
    for j in jobs:
        assert j.label == test_gt[j.id]["label"]
        assert j.cls == (test_gt[j.id]["class"] or "Normal")


def test_ucf_text_agrees_with_json(world):
    out, _, _ = world
    from vadpipe.evaluate import load_ground_truth

    js = load_ground_truth(out / "test_gt.json")
    ucf = load_ground_truth(out / "test_annotations.txt")       # default: 1-based inclusive
    assert len(js) == len(ucf)
    by_stem = {vid.split("/")[-1]: g for vid, g in js.items()}
    for name, g in ucf.items():
        assert [tuple(iv) for iv in g.intervals] == [tuple(iv) for iv in by_stem[name].intervals]
    from vadpipe.evaluate import match_ids

    assert len(match_ids(list(js), list(ucf))) == len(js)         # split-relative ids meet the UCF names
    line = ucf_annotation_text([{"name": "x", "class": "Fire", "intervals": [[0, 10], [20, 25]]}])
    assert line.split() == ["x.mp4", "Fire", "1", "10", "21", "25"]
    assert ucf_annotation_text([{"name": "n", "class": None, "intervals": []}]).split()[1:] == ["Normal"] + ["-1"] * 4


def test_decoded_clips_have_the_right_frames_fps_and_size(world):
    out, cfg, _ = world
    from vadpipe.video import VideoReader

    for c in json.loads((out / "world.json").read_text())["clips"]:
        reader = VideoReader(out / c["path"])
        n = sum(1 for _ in reader.frames())
        assert n == c["frames"]
        assert abs(reader.info.fps - 25) < 1e-6
        assert (reader.info.width, reader.info.height) == (cfg.width, cfg.height)


def test_resume_and_config_guard(world, tmp_path):
    out, cfg, _ = world
    again = generate_world(out, cfg)                             # same config: nothing to redo
    assert again.generated == 0 and again.skipped == 10
    with pytest.raises(ConfigError):
        generate_world(out, synth_config("tiny", seed=6))
    small = synth_config("tiny", seed=6, clips=3, width=96, min_seconds=2, max_seconds=2)
    first = generate_world(tmp_path / "w", synth_config("tiny", seed=6, clips=4, width=96, min_seconds=2,
                                                          max_seconds=2))
    replaced = generate_world(first.out_dir, small, overwrite=True)   # no stale clip of the old world stays
    assert replaced.generated == 3 and len(list(first.out_dir.rglob("*.mp4"))) == 3


def test_cli_synth(tmp_path):
    runner = CliRunner()
    args = ["synth", str(tmp_path / "w"), "--size", "tiny", "--clips", "3", "--width", "96", "--height", "54",
            "--min-seconds", "2", "--max-seconds", "2.5", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "synthetic world: 3 clips" in res.output
    assert len(list((tmp_path / "w").rglob("*.mp4"))) == 3
    res = runner.invoke(main, args[:-1] + ["--seed", "9", "--no-progress"])
    assert res.exit_code == 1 and res.output.startswith("error:") and len(res.output.strip().splitlines()) == 1
