"""A procedural synthetic surveillance world: seeded, deterministic clips with labelled anomalies.

Modelled on the "Mini-Anomaly" set: a fixed camera over a street (plazas,
sidewalks, a two-lane road, a footpath with a zebra crossing, a restricted
zone), pedestrians with a walking gait, cars following their lanes, sensor
noise and slow lighting drift; anomalous clips hold one or two events of one
type: Fighting, Intrusion, Abandoned, WrongWay, Fire (see ``events``).

A world has a few fixed *cameras* (scenes: layout, colours, textures), as a
surveillance set does; each clip is filmed by one of them with its own
people, traffic, density, lighting and events. Normal and anomalous clips of
both splits are spread over all cameras, so the scene never gives the label
away and a model can learn what is normal for each view.

Output of :func:`generate_world` (``OUT`` = ``out_dir``)::

    OUT/train/normal/normal_000.mp4        OUT/test/normal/normal_012.mp4
    OUT/train/Fighting/fighting_000.mp4    OUT/test/Fire/fire_003.mp4   ...
    OUT/train_gt.json  OUT/test_gt.json    vadpipe JSON ground truth per split
    OUT/test_annotations.txt               UCF-Crime temporal annotation text (test split)
    OUT/world.json                         config, seed and every clip with its events

Clips are H.264 MP4 (yuv420p), 25 fps by default. Folder names are what
``vadpipe extract`` labels by (``normal`` -> 0, an event-type folder -> 1 with
that class). File stems are unique across the whole world.

Ground truth conventions:

- **Video ids are relative to the split folder**: ``OUT/test/Fire/fire_003.mp4``
  is ``"Fire/fire_003"``, the id ``vadpipe extract OUT/test`` assigns.
- **vadpipe JSON**: ``{"format": "vadpipe-gt/1", "videos": {id: {"frames": n,
  "fps": 25, "label": 0|1, "class": "Fire"|null, "intervals": [[s, e], ...],
  "events": [{"type", "start", "end"}]}}}``: 0-based frames, ``e`` exclusive;
  ``intervals`` are the events merged where they overlap.
- **UCF-Crime text**: ``fire_003.mp4  Fire  s1 e1 s2 e2`` (``-1`` for none,
  ``Normal`` for normal clips) in the convention ``vadpipe.evaluate`` reads by
  default, **1-based with the end included** (the public file's MATLAB
  convention): the 0-based ``[s, e)`` is written ``s+1 e``.

The labels are read back from what was drawn (see ``events``), so they
agree with the pixels by construction.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .. import __version__, atomic
from ..errors import ConfigError
from ..progress import progress_bar
from ..readers import read_text
from .clip import NORMAL_FOLDER, ClipPlan, ClipSpec, plan_clip, render_frames
from .events import EVENT_TYPES

WORLD_FORMAT = "vadpipe-synth/1"
GT_FORMAT = "vadpipe-gt/1"
UCF_CONVENTION = "1-based-inclusive"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SynthConfig:
    size: str = "small"                 # the preset it started from (informational)
    seed: int = 0
    clips: int = 40
    width: int = 320
    height: int = 180
    fps: int = 25
    min_seconds: float = 6.0
    max_seconds: float = 14.0
    test_fraction: float = 0.5          # share of clips in the test split
    anomalous_fraction: float = 0.5     # share of anomalous clips in each split
    two_event_prob: float = 0.3         # anomalous clips with a second event (same type)
    cameras: int = 8                    # fixed scenes; every camera films clips of both splits
    event_types: Tuple[str, ...] = EVENT_TYPES
    crf: int = 23
    x264_preset: str = "veryfast"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["event_types"] = list(self.event_types)
        return d

    def validate(self) -> "SynthConfig":
        bad = [t for t in self.event_types if t not in EVENT_TYPES]
        problems = []
        if bad or not self.event_types:
            problems.append(f"event types {bad or '(none)'} (known: {', '.join(EVENT_TYPES)})")
        if self.width < 64 or self.height < 36 or self.width % 2 or self.height % 2:
            problems.append(f"size {self.width}x{self.height} (need even numbers, at least 64x36)")
        if not 2.0 <= self.min_seconds <= self.max_seconds:
            problems.append(f"clip length {self.min_seconds}-{self.max_seconds} s (need 2 <= min <= max)")
        if self.clips < 2:
            problems.append(f"clips={self.clips} (need at least 2: one per split)")
        if not 0 < self.test_fraction < 1 or not 0 <= self.anomalous_fraction <= 1:
            problems.append("test_fraction must be in (0, 1) and anomalous_fraction in [0, 1]")
        if self.fps < 1:
            problems.append(f"fps={self.fps}")
        if self.cameras < 1:
            problems.append(f"cameras={self.cameras}")
        if problems:
            raise ConfigError("synthetic world: invalid " + "; ".join(problems))
        return self


PRESETS: Dict[str, dict] = {
    # test-only: seconds of video, every event type present once
    "tiny": dict(clips=10, width=160, height=90, min_seconds=2.0, max_seconds=4.0, anomalous_fraction=0.6,
                 cameras=3),
    # the demo default: ~40 clips, ~10k frames, small enough to extract and train on 2 CPU cores
    "small": dict(clips=40, width=320, height=180, min_seconds=6.0, max_seconds=14.0),
    # Mini-Anomaly scale: 100 clips of 10-30 s at 640x360 (~33 min of video)
    "full": dict(clips=100, width=640, height=360, min_seconds=10.0, max_seconds=30.0, test_fraction=0.4,
                 cameras=12),
}


def synth_config(size: str = "small", **overrides) -> SynthConfig:
    """A preset (tiny, small, full) with overrides; None values are ignored.

    Giving only ``width`` or only ``height`` keeps the preset's aspect ratio.
    """
    if size not in PRESETS:
        raise ConfigError(f"unknown world size {size!r} (known: {', '.join(PRESETS)})")
    base = {**PRESETS[size], "size": size}
    over = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(over) - {f.name for f in dataclasses.fields(SynthConfig)}
    if unknown:
        raise ConfigError(f"unknown synth option(s): {', '.join(sorted(unknown))}")
    aspect = base["width"] / base["height"]
    if "width" in over and "height" not in over:
        over["height"] = max(2, int(round(over["width"] / aspect / 2)) * 2)
    elif "height" in over and "width" not in over:
        over["width"] = max(2, int(round(over["height"] * aspect / 2)) * 2)
    if "event_types" in over:
        over["event_types"] = tuple(over["event_types"])
    return SynthConfig(**{**base, **over}).validate()


# --- planning the world ------------------------------------------------------
def plan_world(cfg: SynthConfig) -> List[ClipSpec]:
    """Every clip of the world (train first, then test), deterministic in ``cfg``.

    Anomalous clips take the event types round-robin over both splits, so each
    type appears as evenly as the counts allow in each split. Normal and
    anomalous clips each take the cameras round-robin (separate counters), so
    every camera films both kinds in both splits when the counts allow and the
    camera never gives the label away.
    """
    cfg.validate()
    rng = np.random.default_rng([cfg.seed, 7])
    camera_seeds = [int(v) for v in np.random.default_rng([cfg.seed, 11]).integers(2 ** 31, size=cfg.cameras)]
    shots: Counter = Counter()
    n_test = min(max(int(round(cfg.clips * cfg.test_fraction)), 1), cfg.clips - 1)
    counts = {"train": cfg.clips - n_test, "test": n_test}
    numbers: Counter = Counter()
    cursor = 0
    specs: List[ClipSpec] = []
    for split in SPLITS:
        n = counts[split]
        n_anom = int(round(n * cfg.anomalous_fraction))
        if n >= 2 and 0 < cfg.anomalous_fraction < 1:
            n_anom = min(max(n_anom, 1), n - 1)          # both labels in every split
        anomalous = [cfg.event_types[(cursor + i) % len(cfg.event_types)] for i in range(n_anom)]
        cursor += n_anom
        classes: List[Optional[str]] = [None] * (n - n_anom) + anomalous
        for cls in classes:
            frames = int(round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * cfg.fps))
            n_events = 0 if cls is None else (2 if rng.random() < cfg.two_event_prob else 1)
            stem = (cls or NORMAL_FOLDER).lower()
            name = f"{stem}_{numbers[stem]:03d}"
            numbers[stem] += 1
            camera = shots[cls is None] % cfg.cameras
            shots[cls is None] += 1
            specs.append(ClipSpec(name, split, cls, int(rng.integers(2 ** 31)), frames, cfg.width, cfg.height,
                                  cfg.fps, n_events, camera, camera_seeds[camera]))
    return specs


# --- writing one clip ------------------------------------------------------
def clip_record(plan: ClipPlan) -> dict:
    """The world.json / ground-truth description of a planned clip."""
    s = plan.spec
    return {
        "id": s.video_id, "name": s.name, "split": s.split, "path": s.relpath, "class": s.cls,
        "label": int(s.cls is not None), "frames": s.frames, "fps": s.fps, "width": s.width, "height": s.height,
        "seed": s.seed, "camera": s.camera, "attempt": plan.attempt, "events": [e.to_dict() for e in plan.events],
        "intervals": plan.intervals(), "people": len(plan.people), "cars": len(plan.cars),
        "density": round(plan.density, 3), "layout": plan.layout.to_dict(), "lighting": plan.lighting.to_dict(),
    }


# x264's macroblock-tree rate control made the same frames encode to different bytes from run
# to run (measured with PyAV 18's libx264, even single-threaded); without it the files are stable.
X264_OPTIONS = {"threads": "1", "x264-params": "mbtree=0"}


def write_clip(path: Path, plan: ClipPlan, crf: int = 23, x264_preset: str = "veryfast") -> int:
    """Render and encode one clip: one encoder thread (modest CPU) and byte-stable output."""
    from ..video import write_video

    return write_video(path, render_frames(plan), fps=plan.spec.fps, crf=crf,
                       options={"preset": x264_preset, **X264_OPTIONS})


def _make_clip(args) -> dict:
    spec, out_dir, crf, preset, overwrite = args
    t = time.perf_counter()
    plan = plan_clip(spec)
    path = Path(out_dir) / spec.relpath
    # clips are written atomically: one there and not empty is whole; an empty one was damaged from outside
    skipped = not overwrite and path.is_file() and path.stat().st_size > 0
    if not skipped:
        written = write_clip(path, plan, crf, preset)
        if written != spec.frames:
            raise ConfigError(f"{path}: wrote {written} frames, expected {spec.frames}")
    rec = clip_record(plan)
    rec["_skipped"], rec["_seconds"] = skipped, time.perf_counter() - t
    return rec


# --- ground truth ------------------------------------------------------------
def gt_document(records: Iterable[dict]) -> dict:
    """vadpipe JSON ground truth for the given clip records (ids relative to their split folder)."""
    return {"format": GT_FORMAT, "videos": {
        r["id"]: {"frames": r["frames"], "fps": r["fps"], "label": r["label"], "class": r["class"],
                  "intervals": [list(iv) for iv in r["intervals"]],
                  "events": [{"type": e["type"], "start": e["start"], "end": e["end"]} for e in r["events"]]}
        for r in records}}


def ucf_annotation_text(records: Iterable[dict]) -> str:
    """UCF-Crime temporal annotation lines, 1-based inclusive frame numbers, -1 for no interval."""
    lines = []
    for r in records:
        nums: List[int] = []
        for s, e in r["intervals"]:
            nums += [s + 1, e]
        nums += [-1] * max(0, 4 - len(nums))
        lines.append(f"{r['name']}.mp4  {r['class'] or 'Normal'}  " + "  ".join(str(v) for v in nums))
    return "\n".join(lines) + "\n"


# --- the world ---------------------------------------------------------------
@dataclass
class WorldSummary:
    out_dir: Path
    clips: int
    frames: int
    seconds_of_video: float
    generated: int
    skipped: int
    elapsed_s: float
    by_split: Dict[str, Dict[str, int]]           # split -> class ("normal" or type) -> clips
    events: Dict[str, int]                        # type -> events drawn
    paths: Dict[str, Path] = field(default_factory=dict)   # train, test, test_gt, train_gt, test_ucf, world

    def line(self) -> str:
        per = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items()))
        splits = ", ".join(f"{s} {sum(c.values())}" for s, c in self.by_split.items())
        done = f"{self.generated} generated" + (f", {self.skipped} already there" if self.skipped else "")
        return (f"synthetic world: {self.clips} clips ({splits}; {done}), {self.frames} frames "
                f"({self.seconds_of_video / 60:.1f} min of video), events: {per or 'none'}; "
                f"{self.elapsed_s:.1f} s -> {self.out_dir}")


def _check_existing(out: Path, cfg: SynthConfig, overwrite: bool) -> None:
    world = out / "world.json"
    if not world.exists() or overwrite:
        return
    try:
        data = json.loads(read_text(world, what="the world file", error=ConfigError))
    except ValueError as exc:
        raise ConfigError(f"{world}: unreadable ({exc}); pass --overwrite to make the world again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{world}: not a world file (a JSON object); pass --overwrite to make the world again")
    if data.get("config") != cfg.to_dict():
        raise ConfigError(f"{world}: the folder holds a world made with another configuration; "
                          "choose another folder or pass --overwrite")


def generate_world(out_dir: str | Path, config: Optional[SynthConfig] = None, *, workers: int = 1,
                   overwrite: bool = False, progress: bool | Callable[[dict], None] = False) -> WorldSummary:
    """Generate (or finish generating) a synthetic world in ``out_dir``.

    Deterministic in ``config``. A rerun with the same config skips clips whose
    MP4 already exists and is not empty (files are written atomically, so such
    a one is complete); ``overwrite`` redoes them and allows replacing a world of
    another config (MP4s under the split folders that the new world does not
    have are deleted, so ``vadpipe extract`` never picks up a stale clip).
    ``workers`` > 1 renders clips in parallel processes.
    ``progress``: True for a tqdm bar, or a callable receiving each clip record.
    """
    cfg = (config or synth_config()).validate()
    out = Path(out_dir)
    _check_existing(out, cfg, overwrite)
    t0 = time.perf_counter()
    specs = plan_world(cfg)
    world_doc = {"format": WORLD_FORMAT, "vadpipe_version": __version__, "status": "incomplete",
                 "config": cfg.to_dict(), "seed": cfg.seed}
    atomic.write_json(out / "world.json", world_doc)
    if overwrite:
        keep = {(out / sp.relpath).resolve() for sp in specs}
        for split in SPLITS:
            for stale in sorted((out / split).rglob("*.mp4")) if (out / split).is_dir() else ():
                if stale.resolve() not in keep:
                    stale.unlink()
    jobs = [(s, str(out), cfg.crf, cfg.x264_preset, overwrite) for s in specs]
    bar = None
    if progress is True:
        bar = progress_bar(total=len(jobs), desc="synth", unit="clip")
    records: List[dict] = []

    def done(rec: dict) -> None:
        records.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(rec["id"], refresh=False)
        elif callable(progress):
            progress(rec)

    try:
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for rec in pool.map(_make_clip, jobs):
                    done(rec)
        else:
            for job in jobs:
                done(_make_clip(job))
    finally:
        if bar is not None:
            bar.close()

    generated = sum(not r.pop("_skipped") for r in records)
    for r in records:
        r.pop("_seconds")
    by_split: Dict[str, Dict[str, int]] = {s: dict(Counter(r["class"] or NORMAL_FOLDER for r in records
                                                           if r["split"] == s)) for s in SPLITS}
    events = dict(Counter(e["type"] for r in records for e in r["events"]))
    paths = {"train": out / "train", "test": out / "test", "train_gt": out / "train_gt.json",
             "test_gt": out / "test_gt.json", "test_ucf": out / "test_annotations.txt", "world": out / "world.json"}
    for split in SPLITS:
        atomic.write_json(paths[f"{split}_gt"], gt_document(r for r in records if r["split"] == split))
    atomic.write_text(paths["test_ucf"], ucf_annotation_text(r for r in records if r["split"] == "test"))
    frames = sum(r["frames"] for r in records)
    world_doc.update(status="complete", ids="relative to OUT/<split> (the folder vadpipe extract scans)",
                     ucf_convention=UCF_CONVENTION, clips=records,
                     totals={"clips": len(records), "frames": frames, "by_split": by_split, "events": events})
    atomic.write_json(paths["world"], world_doc)
    return WorldSummary(out, len(records), frames, frames / cfg.fps, generated, len(records) - generated,
                        time.perf_counter() - t0, by_split, events, paths)
