"""``vadpipe score``: clip → per-frame scores → intervals → CSV, JSON, PNG, overlay video.

The checkpoint carries the feature recipe it was trained on; a video is
extracted with exactly that recipe (same backbone, weights, resize, crops,
fps policy) through ``encode.ClipFeatures``, so scores mean what they meant
at training time. Pre-extracted features are scored without the video when
their recipe matches.

Per clip (``<name>`` is the file stem, lengthened with its folders only when
two clips would share it):

- ``<name>.scores.csv``  ``frame,time_s,score`` for every frame of the video
  (frame f takes the score of the snippet covering it, or with a head's ``model.frame_scores:
  linear`` a score interpolated between snippet centres: ``intervals.snippets_to_frames``
  with the recipe's snippet length and stride; the padded tail covers the
  last frames; time = the frame's presentation timestamp, from the stream's start, so
  variable-frame-rate clips get true times; features without a video: frame / fps). A recipe
  that resamples (``--fps N``) is scored on the video's own frames, each taking the nearest
  resampled frame's score: for features too, where the manifest records the source's frames
  (``source_frames``, ``source_fps``; older features stay on the resampled frames, noted);
- ``<name>.json``        video info (damaged and why, rotation, variable frame rate),
  recipe and checkpoint ids, threshold and where it came from, intervals (frames
  and timestamp times), max score, real-time factor, timings;
- ``<name>.png``         with ``--plot``; ``<name>.overlay.mp4`` with ``--overlay``.

Every file is written atomically. A clip that fails prints one line and the
others go on; the exit code is 1 when any failed.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__, atomic
from .errors import DECODE_TIMEOUT_S, CheckpointError, RecipeMismatchError, VadpipeError
from .intervals import (Interval, NativeFrames, find_intervals, frame_times, runs_above, snippet_reach,
                        snippets_to_frames)
from .video_checks import frame_index_to_time
from .progress import progress_bar, write_line
from .readers import read_array
from .recipe import Recipe, check_compatible, load_recipe
from .encode import backbone_for_recipe, scoring_recipe, stored_view
from .features import ManifestRecord, remove_leftovers
from .score_io import ClipInput, TableRow, collect_inputs, format_table, output_paths, write_scores_csv
from .scene_check import SceneCheck, SceneReading
from .threshold import resolve_threshold, whole_clip_note

THUMB_SHORT_SIDE = 144       # thumbnails are decoded this small (the figure shows them ~190 px wide)
CLIPS_PER_PASS = 8           # backbone inputs (snippets x crops) per forward pass by default
LONG_CLIP_SNIPPETS = 64      # a per-snippet progress bar from this length on (~40 s at 25 fps)


@dataclass
class ScoreOptions:
    out_dir: Path = Path("scores")
    threshold: Optional[str] = "auto"   # "auto", "auto:<quantile>" or a number; None: scores only (calibrate)
    merge_gap_s: float = 1.0
    min_duration_s: float = 0.5
    plot: bool = False
    plot_scale: str = "auto"          # the plot's score axis: auto | linear | logit (plot.score_axis_scale)
    overlay: bool = False
    crops: Optional[int] = None       # None: the recipe's; 1 with a ten-crop recipe: its centre crop only
    device: str = "auto"
    batch_size: Optional[int] = None  # snippets per backbone pass; None: 8 // crops (~8 clips per pass)
    clips_per_forward: Optional[int | str] = None   # backbone pass size (encode.ForwardSizer; None: the default)
    window: Optional[int] = None      # head on sliding windows of this many snippets (vadpipe/window.py); None: whole clip
    weights: Optional[str] = None     # backbone weight file, when not the default location
    recipe_file: Optional[Path] = None   # recipe of .npy features that have no recipe.json beside them
    fps: Optional[float] = None       # frame rate of features whose manifest does not say
    gt: Optional[Path] = None
    progress: bool = True
    decode_timeout: float = DECODE_TIMEOUT_S   # a clip whose decoder gives nothing this long is an error (0: for ever)
    decode_process: bool = True       # decode in a child process (a decoder that crashes costs its clip); False:
                                      # in a thread of this one (tools/bench_score.py --decode thread)


# --- checkpoint, recipe, backbone -------------------------------------------------------------------

def file_id(path: Path, length: int = 12) -> str:
    """Short sha256 of a file: the checkpoint's identity in the outputs."""
    from .extractors.weights import sha256_file

    return sha256_file(path)[:length]


# --- per-clip results ----------------------------------------------------------------------------

@dataclass
class ClipScores:
    """Per-frame scores of one clip and what they were computed from."""

    frame_scores: np.ndarray          # (frames,) at the video's native frame rate
    snippet_scores: np.ndarray        # (T,)
    fps: float
    video: dict                       # VideoInfo.to_dict(), or what is known for features
    recipe: Optional[Recipe]
    crops_scored: int
    timings: Dict[str, float] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    times: Optional[np.ndarray] = None   # (frames,) each frame's time in s (pts); None: frame / fps
    scene_z: Optional[np.ndarray] = None  # (T, heads) each snippet's normal-statistics z (vadpipe/scene_check.py)

    def __post_init__(self):
        if self.times is None:
            self.times = frame_times(self.frames, self.fps)

    def time_at(self, frame):
        """Time in s of frame index ``frame`` (int or array; the end of the clip continues at 1 / fps)."""
        return frame_index_to_time(self.times, frame, self.fps)

    @property
    def frames(self) -> int:
        return int(self.frame_scores.size)

    @property
    def duration_s(self) -> float:
        """The last frame's time plus one frame: a variable-frame-rate clip's true length, not frames / fps."""
        return float(self.time_at(self.frames))


@dataclass
class ClipResult:
    clip: ClipInput
    row: Optional[TableRow] = None
    outputs: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def native_frame_scores(snippet_scores: np.ndarray, out_frames: int, recipe: Recipe, native_frames: int,
                        native_fps: float, out_fps: float, frame_mode: str = "hold") -> np.ndarray:
    """Per-frame scores on the video's own frames when the recipe resampled it to ``out_fps``:
    native frame j takes the score of the resampled frame nearest in time."""
    resampled = snippets_to_frames(snippet_scores, out_frames, recipe.snippet_len, recipe.stride, frame_mode)
    return NativeFrames(native_frames, native_fps, out_fps).scores(resampled)


class Scorer:
    """Holds what every clip of a run shares: the head, its checkpoint, the recipe, the backbone."""

    def __init__(self, checkpoint: Path, options: ScoreOptions):
        from .checkpoint import checkpoint_path, load_checkpoint, scoring_rule
        from .device import resolve_device
        from .groundtruth import load_ground_truth

        self.options = options
        self.device = resolve_device(options.device)
        self.checkpoint_file = checkpoint_path(checkpoint)
        self.model, self.ckpt = load_checkpoint(self.checkpoint_file, device=self.device)
        self.checkpoint_id = file_id(self.checkpoint_file)
        self.trained_recipe = self.ckpt.recipe
        self.recipe = scoring_recipe(self.trained_recipe, options.crops) if self.trained_recipe else None
        self.snippet_len = self.ckpt.snippet_len
        self.frame_mode = scoring_rule(self.model).frame_scores
        levels = getattr(self.model, "levels", None)
        self.levels_fitted = levels is not None and levels.is_fitted
        self.threshold = None if options.threshold is None else \
            resolve_threshold(options.threshold, self.ckpt.calibration, f"checkpoint {self.checkpoint_file}")
        self._backbone = None
        self.gt = load_ground_truth(options.gt) if options.gt else None
        self.scene = SceneCheck.of(self.model, self.ckpt.scene)
        # features without a recipe.json beside them: read once, so a bad file is named once, not per clip
        self.given_recipe = load_recipe(options.recipe_file) if options.recipe_file is not None else None

    @property
    def backbone(self):
        if self._backbone is None:       # built on the first video only: features need none
            if self.recipe is None:
                raise RecipeMismatchError(f"checkpoint {self.checkpoint_file} was trained on features without a "
                                          f"recipe (list files): it cannot extract video; score its features instead")
            self._backbone = backbone_for_recipe(self.recipe, self.options.weights, self.device)
        return self._backbone

    # -- scores ---------------------------------------------------------------------------------
    def _head_scores(self, feats: Union[np.ndarray, Iterable[np.ndarray]]) -> np.ndarray:
        """Snippet scores of a clip's features (T, C, D): the whole clip at once, or sliding windows
        (``--window``; then ``feats`` may be any iterable of per-snippet (C, D) arrays, consumed as it comes)."""
        if self.options.window:
            from .window import score_windowed

            return score_windowed(self.model, feats, window=self.options.window, device=self.device)
        from .checkpoint import score_features

        return score_features(self.model, feats, self.device)

    def scores_from_video(self, path: Path, progress: Optional[Callable[[int], None]] = None) -> ClipScores:
        from .encode import ClipFeatures
        from .video import frame_times as video_frame_times, probe

        backbone = self.backbone
        t0 = time.perf_counter()
        # Ten crops multiply the clips per pass by ten: keep the pass (and memory) the same size.
        batch = self.options.batch_size or max(1, CLIPS_PER_PASS // self.recipe.num_crops)
        clip = ClipFeatures(path, self.recipe, backbone, self.device, batch, progress=progress,
                            clips_per_forward=self.options.clips_per_forward, stall_s=self.options.decode_timeout,
                            isolate=self.options.decode_process)
        opened = time.perf_counter() - t0
        # With --window the head takes the features as the backbone makes them: only a window of
        # them (and a few decoded batches) is ever held, whatever the clip's length.
        if self.options.window:
            feats, scene_z = self._streamed_scene_z(clip.snippet_features())
            snippets = self._head_scores(feats)
        else:
            feats = clip.all()
            snippets, scene_z = self._head_scores(feats), self._scene_z(feats)
        extract_s = opened + clip.seconds
        head_s = time.perf_counter() - t0 - extract_s
        reader = clip.reader
        info = reader.info
        video = info.to_dict()
        if str(self.recipe.fps) == "native":
            frame_scores = snippets_to_frames(snippets, info.frames, self.recipe.snippet_len, self.recipe.stride,
                                              self.frame_mode)
            fps, pts = info.fps, reader.frame_times
        else:   # the recipe resampled the clip: put the scores back on the video's own frames
            native = probe(path, count="packets")
            frame_scores = native_frame_scores(snippets, info.frames, self.recipe, native.frames, native.fps,
                                               info.fps, self.frame_mode)
            fps, pts = native.fps, video_frame_times(path)
            video = {**native.to_dict(), "resampled_frames": info.frames, "resampled_fps": info.fps,
                     **{k: video[k] for k in ("damaged", "damage", "rotation")}}
        notes = [f"damaged: {info.damage}"] if info.damaged else []
        if info.vfr:
            notes.append("variable frame rate: times are the frames' timestamps; snippets of 16 frames span "
                         "unequal times (extract and train with --fps N for a constant rate)")
        times = frame_index_to_time(pts, np.arange(frame_scores.size), fps)
        return ClipScores(frame_scores, snippets, fps, video, self.recipe, self.recipe.num_crops,
                          {"extract_s": extract_s, "head_s": head_s}, notes, np.atleast_1d(times),
                          None if scene_z is None else np.asarray(scene_z))

    def scores_from_features(self, clip: ClipInput) -> ClipScores:

        t0 = time.perf_counter()
        feats, recipe, frames, fps, notes, record = self._load_features(clip)
        t1 = time.perf_counter()
        snippets = self._head_scores(feats)
        scene_z = self._scene_z(feats)
        t2 = time.perf_counter()
        stride = recipe.stride if recipe else self.ckpt.stride
        frame_scores = snippets_to_frames(snippets, frames, self.snippet_len, stride, self.frame_mode)
        video = {"path": None, "features": str(clip.path), "frames": frames, "fps": fps,
                 "duration": round(frames / fps, 3)}
        native = record.native if record is not None else None
        if native is not None:   # a resampling recipe: back on the video's own frames, as scores_from_video puts them
            frame_scores, fps = native.scores(frame_scores), native.fps
            video.update(frames=native.frames, fps=native.fps, duration=round(native.frames / native.fps, 3),
                         resampled_frames=frames, resampled_fps=native.resampled_fps)
        elif recipe is not None and str(recipe.fps) != "native":
            notes.append(f"frames are the recipe's resampled ones ({frames} at {fps:g} fps), not the video's own: "
                         "no manifest records the source's frames (features extracted before vadpipe kept them); "
                         "re-extract them to score the video's frames")
        if record is not None:   # what extraction saw of the clip
            video.update(damaged=record.status == "damaged", damage=record.damage or "",
                         rotation=record.rotation or 0, vfr=bool(record.vfr))
            if record.status == "damaged":
                notes.append(f"damaged clip (kept with --accept-damaged): {record.damage}")
        return ClipScores(frame_scores, snippets, fps, video, recipe, feats.shape[1],
                          {"load_s": t1 - t0, "head_s": t2 - t1}, notes, scene_z=scene_z)

    def _scene_z(self, feats: np.ndarray) -> Optional[np.ndarray]:
        """Each snippet's normal-statistics z (vadpipe/scene_check.py); None without a scene check."""
        return None if self.scene is None else self.scene.snippet_z(feats)

    def _streamed_scene_z(self, feats: Iterable[np.ndarray]) -> Tuple[Iterable[np.ndarray], Optional[List[np.ndarray]]]:
        """(the per-snippet features, passed on as they come, and the list their z fills as they pass); None
        for the list where z needs a snippet's neighbours (``model.normal_context`` > 1) or there is no check."""
        if self.scene is None or not self.scene.per_snippet:
            return feats, None
        z: List[np.ndarray] = []

        def passing() -> Iterator[np.ndarray]:
            for snippet in feats:
                z.append(self.scene.snippet_z(snippet)[0])     # (heads,)
                yield snippet
        return passing(), z

    def _load_features(self, clip: ClipInput
                       ) -> Tuple[np.ndarray, Optional[Recipe], int, float, List[str], Optional[ManifestRecord]]:
        """(features (T, C, D), their recipe, frames, fps, notes, manifest record or None), checked against
        the checkpoint."""
        from .features import FeatureStore, as_snippet_crops

        notes: List[str] = []
        record = clip.record               # the folder manifest's (collect_inputs read it), or None
        recipe = self.given_recipe
        if clip.feature_folder is not None:       # the folder's own recipe is what its features were made with
            store = FeatureStore(clip.feature_folder)
            recipe = store.recipe()
            differs = self.given_recipe.differences(recipe) if self.given_recipe is not None else []
            if differs:
                raise RecipeMismatchError(f"{clip.path}: --recipe {self.options.recipe_file} differs from "
                                          f"{store.recipe_path}, the recipe these features were made with "
                                          f"({'; '.join(differs)}); leave --recipe out for a feature folder")
        if recipe is None and self.trained_recipe is not None:
            raise RecipeMismatchError(f"{clip.path}: no recipe.json beside these features; pass --recipe FILE "
                                      f"(the checkpoint needs recipe {self.trained_recipe.recipe_id})")
        feats = read_array(clip.path, finite=True) if record is None else store.load(record)
        try:
            feats = as_snippet_crops(feats)
        except ValueError as exc:
            raise RecipeMismatchError(f"{clip.path}: {exc}") from None
        if recipe is not None and self.recipe is not None:
            view = stored_view(recipe, self.recipe)
            if view is not None and feats.shape[1] == recipe.num_crops:
                feats, recipe = feats[:, view], recipe.replace(crop=self.recipe.crop)
        notes += check_compatible(self.recipe, recipe, "the checkpoint", f"features {clip.path}")
        self.ckpt.require_feature_dim(feats.shape[2], f"features {clip.path}")
        t = feats.shape[0]
        stride = recipe.stride if recipe else self.ckpt.stride
        frames = int(record.frames) if record is not None and record.frames else \
            snippet_reach(t, self.snippet_len, stride)
        if record is None or not record.frames:
            notes.append(f"frame count unknown: assumed {t} snippets reach {frames} frames")
        fps = (record.fps if record is not None and record.fps else None) or self.options.fps
        if fps is None and recipe is not None and str(recipe.fps) != "native":
            fps = float(recipe.fps)
        if fps is None:
            fps = 25.0
            notes.append("frame rate unknown: assumed 25 fps (pass --fps)")
        return feats, recipe, frames, float(fps), notes, record

    # -- one clip, end to end --------------------------------------------------------------------
    def clip_scores(self, clip: ClipInput, progress_factory=None) -> ClipScores:
        """A clip's scores: a video extracted with the checkpoint's recipe, or its features read."""
        if clip.kind != "video":
            return self.scores_from_features(clip)
        progress = progress_factory(clip) if progress_factory else None
        try:
            return self.scores_from_video(clip.path, progress=progress)
        finally:
            if progress is not None:
                progress.close()

    def snippet_bars(self, n_clips: int) -> Callable[[ClipInput], "_ProgressCallback"]:
        """A progress factory for :meth:`clip_scores`: a per-snippet bar for a video of at least
        ``LONG_CLIP_SNIPPETS`` snippets, below the per-clip bar when ``n_clips`` > 1."""
        def bar(clip: ClipInput) -> "_ProgressCallback":
            total = _expected_snippets(clip.path, self.snippet_len, self.ckpt.stride)
            return _ProgressCallback(progress_bar(total=total, unit="snippet", desc=clip.name[:30], leave=False,
                                                  position=1 if n_clips > 1 else 0,
                                                  enabled=self.options.progress and total >= LONG_CLIP_SNIPPETS))
        return bar

    def score_clip(self, clip: ClipInput, progress_factory=None) -> ClipResult:
        t_start = time.perf_counter()
        scores = self.clip_scores(clip, progress_factory)
        opts = self.options
        intervals = [replace(iv, start_s=float(scores.time_at(iv.start_frame)),
                             end_s=float(scores.time_at(iv.end_frame)))     # timestamps, not frame / fps
                     for iv in find_intervals(scores.frame_scores, self.threshold.value, scores.fps,
                                              opts.merge_gap_s, opts.min_duration_s)]
        scene = None if self.scene is None or scores.scene_z is None else self.scene.reading(scores.scene_z)
        whole = whole_clip_note(scores.frame_scores, self.threshold, str(self.checkpoint_file), scene=scene)
        if whole is not None:
            scores.notes.append(whole)
        paths = output_paths(opts.out_dir, clip.name)
        for path in paths.values():      # temp files of a run killed while writing this clip
            remove_leftovers(path.parent, path.name)
        outputs = {"csv": paths["csv"]}
        write_scores_csv(paths["csv"], scores.times, scores.frame_scores)
        gt_id, gt_frames = self.gt_for(clip, scores)
        if opts.plot:
            t0 = time.perf_counter()
            self.write_plot(paths["png"], clip, scores, intervals, gt_frames)
            scores.timings["plot_s"] = time.perf_counter() - t0
            outputs["png"] = paths["png"]
        if opts.overlay:
            if clip.kind != "video":
                scores.notes.append("no overlay: scored from features, there is no video to draw on")
            else:
                from .overlay import write_overlay

                t0 = time.perf_counter()
                write_overlay(clip.path, paths["overlay"], scores.frame_scores, self.threshold.value, intervals,
                              gt_frames)
                scores.timings["overlay_s"] = time.perf_counter() - t0
                outputs["overlay"] = paths["overlay"]
        scores.timings["total_s"] = time.perf_counter() - t_start
        outputs["json"] = paths["json"]
        report = self.report(clip, scores, intervals, gt_id, gt_frames, outputs, scene)
        atomic.write_json(paths["json"], report)
        row = TableRow(clip.name, scores.duration_s, float(scores.frame_scores.max()), self.threshold.value,
                       intervals, report["real_time_factor"])
        return ClipResult(clip, row, {k: str(v) for k, v in outputs.items()}, scores.notes)

    def gt_for(self, clip: ClipInput, scores: ClipScores) -> Tuple[Optional[str], List[Tuple[int, int]]]:
        """(gt id, gt intervals in frames) of this clip, when --gt was given and names it."""
        if not self.gt:
            return None, []
        from .groundtruth import match_ids

        for key in (clip.name, clip.path.stem, str(clip.path.with_suffix(""))):
            found = match_ids([key], list(self.gt)).get(key)
            if found:
                break
        else:
            scores.notes.append(f"no ground truth for {clip.name} in {self.options.gt}")
            return None, []
        gt = self.gt[found]
        if gt.mask is not None:
            intervals = runs_above(gt.mask, 0.5)
        else:
            intervals = list(gt.intervals)
        n_gt = gt.frame_count
        if n_gt is not None and n_gt != scores.frames:
            scores.notes.append(f"ground truth {found!r} has {n_gt} frames, the clip {scores.frames}")
        return found, intervals

    def write_plot(self, path: Path, clip: ClipInput, scores: ClipScores, intervals: Sequence[Interval],
                   gt_frames: Sequence[Tuple[int, int]]) -> None:
        from .plot import choose_thumbnails, plot_clip

        thumbs = []
        if clip.kind == "video":
            thumbs = choose_thumbnails(scores.frame_scores, scores.fps, intervals, times=scores.times)
            images = grab_frames(clip.path, [t.frame for t in thumbs], THUMB_SHORT_SIDE)
            for thumb in thumbs:
                thumb.image = images.get(thumb.frame)
        plot_clip(path, scores.times, scores.frame_scores, scores.fps,
                  title=clip.path.name, threshold=self.threshold.value, intervals=intervals, thumbnails=thumbs,
                  gt_intervals_s=[(float(scores.time_at(s)), float(scores.time_at(e))) for s, e in gt_frames],
                  threshold_label=self.threshold.label(), duration_s=scores.duration_s,
                  scale=self.options.plot_scale)

    def report(self, clip: ClipInput, scores: ClipScores, intervals: Sequence[Interval], gt_id: Optional[str],
               gt_frames: Sequence[Tuple[int, int]], outputs: Dict[str, Path],
               scene: Optional[SceneReading] = None) -> dict:
        fs = scores.frame_scores
        peak = int(np.argmax(fs))
        # Real-time factor: video seconds per wall second of scoring (decode + backbone + head),
        # or of loading + head for pre-extracted features; plot and overlay are timed apart.
        work = sum(scores.timings.get(k, 0.0) for k in ("extract_s", "load_s", "head_s"))
        rtf = scores.duration_s / work if work > 0 else None
        recipe = scores.recipe
        return {
            "format": "vadpipe-score/1",
            "vadpipe_version": __version__,
            "clip": clip.name,
            "input": {"kind": clip.kind, "path": str(clip.path)},
            "video": scores.video,
            "damaged": bool(scores.video.get("damaged", False)),
            "damage": scores.video.get("damage", ""),
            "rotation": int(scores.video.get("rotation", 0) or 0),
            "vfr": bool(scores.video.get("vfr", False)),
            "frames": scores.frames,
            "fps": scores.fps,
            "duration_s": scores.duration_s,
            "snippets": int(scores.snippet_scores.size),
            "recipe": None if recipe is None else {"id": recipe.recipe_id, "backbone": recipe.backbone,
                                                   "crop": recipe.crop, "fps": recipe.fps,
                                                   "snippet_len": recipe.snippet_len, "stride": recipe.stride,
                                                   "compute_dtype": recipe.compute_dtype},
            "trained_recipe_id": None if self.trained_recipe is None else self.trained_recipe.recipe_id,
            "crops_scored": scores.crops_scored,
            "checkpoint": {"id": self.checkpoint_id, "path": str(self.checkpoint_file),
                           "model": self.ckpt.model_config.name,
                           "partner": self.ckpt.model_config.partner or None},
            "threshold": self.threshold.to_dict(),
            # what a score means: levels (0.5 = the training auto threshold, model.score_levels) or the raw score
            "scores": "levels" if self.levels_fitted else "raw",
            "merge_gap_s": self.options.merge_gap_s,
            "min_duration_s": self.options.min_duration_s,
            "interval_convention": "[start_frame, end_frame) 0-based, end exclusive; times are the frames' "
                                   "timestamps from the stream's start (frame / fps for features without video)",
            "intervals": [iv.to_dict() for iv in intervals],
            "max_score": float(fs[peak]),
            "max_score_frame": peak,
            "max_score_time_s": float(scores.time_at(peak)),
            "mean_score": float(fs.mean()),
            "ground_truth": None if gt_id is None else {"id": gt_id, "file": str(self.options.gt),
                                                        "intervals": [list(iv) for iv in gt_frames]},
            "real_time_factor": rtf,
            "timings_s": {k: round(v, 4) for k, v in scores.timings.items()},
            "device": str(self.device),
            "outputs": {k: Path(v).name for k, v in outputs.items()},
            "notes": scores.notes,
            "scene": None if scene is None else scene.to_dict(),     # vadpipe/scene_check.py
        }


def grab_frames(path: Path, frames: Sequence[int], short_side: int) -> Dict[int, np.ndarray]:
    """The requested frames, small, in one streaming pass that stops after the last one.

    Decoding again costs far less than the backbone did, and memory holds only
    the few frames asked for, whatever the clip's length.
    """
    from .video import VideoReader

    wanted = set(frames)
    out: Dict[int, np.ndarray] = {}
    if not wanted:
        return out
    last = max(wanted)
    for index, frame in enumerate(VideoReader(path, short_side=short_side).frames()):
        if index in wanted:
            out[index] = frame.copy()
        if index >= last:
            break
    return out


# --- the command ---------------------------------------------------------------------------------

def find_checkpoint(checkpoint: Optional[str], run: Optional[str]) -> Path:
    """--checkpoint FILE, else --run DIR, else runs/latest; a missing one is a one-line error."""
    if checkpoint:
        return Path(checkpoint)
    target = Path(run or "runs/latest")
    if not (target.exists() or target.is_symlink()):
        hint = "train one with `vadpipe train`, or pass --checkpoint FILE / --run DIR"
        raise CheckpointError(f"no trained run at {target}; {hint}")
    return target


def run_score(paths: Sequence[str], checkpoint: Optional[str] = None, run: Optional[str] = None,
              options: ScoreOptions = ScoreOptions(), echo: Callable[[str], None] = print) -> int:
    """Score every clip; print the table; return the exit code (1 when any input failed)."""
    clips, path_errors = collect_inputs(paths)
    errors = [f"{p}: {why}" for p, why in path_errors]
    for line in errors:
        echo_err(line)
    scorer = Scorer(find_checkpoint(checkpoint, run), options) if clips else None
    if scorer is not None and scorer.threshold.optimistic:
        print(f"warning: the auto threshold ({scorer.threshold.value:.3g}) was calibrated on the training "
              "videos themselves (none held out), so expect false alarms; pass --threshold X", file=sys.stderr)
    results: List[ClipResult] = []
    bar = progress_bar(clips, unit="clip", desc="score", enabled=options.progress and len(clips) >= 2)
    snippet_bars = scorer.snippet_bars(len(clips)) if scorer is not None else None
    for clip in bar:
        try:
            results.append(scorer.score_clip(clip, snippet_bars))
            for note in results[-1].notes:
                write_line(f"note: {clip.name}: {note}")
        except CLIP_ERRORS as exc:          # one broken clip never stops the others
            errors.append(clip_error(exc, clip.path))
            echo_err(errors[-1])
    bar.close()
    if results:
        echo(format_table([r.row for r in results]))
        made = {k for r in results for k in r.outputs}
        suffixes = [output_paths(Path(), "<clip>")[k].name for k in ("csv", "json", "png", "overlay") if k in made]
        echo(f"outputs in {options.out_dir}/: {', '.join(suffixes)}")
    if errors:
        echo(f"{len(errors)} of {len(clips) + len(path_errors)} input(s) failed")
    return 1 if errors else 0


CLIP_ERRORS = (VadpipeError, OSError, RuntimeError, ValueError)   # what one bad clip can raise


def clip_error(exc: BaseException, path: Path) -> str:
    """One line naming the clip and the cause: a VadpipeError's own message, else the first line of
    the exception's with its type."""
    if isinstance(exc, VadpipeError):
        return _with_path(str(exc), path)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return _with_path(f"{type(exc).__name__}: {first}", path)


def echo_err(message: str) -> None:
    write_line(f"error: {message}")


class _ProgressCallback:
    """Adapts a tqdm bar to the ``progress(n_snippets)`` callback of ``encode.ClipFeatures``."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _expected_snippets(path: Path, snippet_len: int, stride: int) -> int:
    """Snippets a clip will give, from its container metadata (only sizes the progress bar)."""
    from .features import expected_snippets

    try:
        from .video import VideoReader

        frames = VideoReader(path).info.frames
    except VadpipeError:
        return 0
    return expected_snippets(frames or 0, snippet_len, stride)


def _with_path(message: str, path: Path) -> str:
    return message if str(path) in message else f"{path}: {message}"
