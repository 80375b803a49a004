"""Command-line interface. Parses options and calls library functions; no logic of its own.

Heavy imports (torch, the backbones) happen inside each command so that
``vadpipe --help`` stays instant.
"""
from __future__ import annotations

import errno
import functools
import math
import sys
from typing import Optional

import click

from . import __version__
from .errors import DECODE_TIMEOUT_S, VadpipeError, printable


def os_error_line(exc: OSError) -> str:
    """One line for an OSError that reached the edge: the file(s) it names and the OS's words, or, naming
    none, the OS's words and the errno's name (``Input/output error (EIO)``)."""
    if exc.filename is not None:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{where}: {exc.strerror or exc}"
    name = errno.errorcode.get(exc.errno) if isinstance(exc.errno, int) else None
    return f"{exc.strerror or exc}" + (f" ({name})" if name else "")


def one_line_errors(func):
    """Print an expected failure as one line on stderr and exit 1, never a traceback. An OSError is the
    machine or an input, never the code (a full disk, a file it cannot open, a name too long, a link to
    itself): one line too."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except VadpipeError as exc:
            click.echo(f"error: {printable(str(exc))}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(f"error: {printable(os_error_line(exc))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


# extract, score and calibrate: a decoder that hangs costs its video, not the run
decode_timeout_option = click.option(
    "--decode-timeout", default=DECODE_TIMEOUT_S, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
    help="A video whose decoder gives no frames for this long (a decoder that hangs) fails with one line and the "
    "others go on; 0: wait for ever. extract --workers 0 decodes in the main process and always waits.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vadpipe")
def main() -> None:
    """vadpipe: weakly supervised video anomaly detection.

    Raw videos -> I3D snippet features -> LTGS head trained on video-level
    labels -> per-frame anomaly scores, intervals and plots.
    """


# --- info -------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))   # checked per file
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file instead of a table.")
@click.option("--quick", is_flag=True,
              help="Count frames from the container's packets instead of decoding every frame.")
@one_line_errors
def info(paths, as_json, quick):
    """Show frames, fps, size, codec and decoder for videos (files or folders, recursive).

    Exit code 1 when any file cannot be read.
    """
    from .info import run_info

    sys.exit(run_info(paths, as_json=as_json, quick=quick))


# --- backbones --------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per backbone instead of text.")
@one_line_errors
def backbones(as_json):
    """List the feature backbones: dimension, input range, default weights and whether they are here."""
    import json

    from .extractors.catalog import backbone_rows, format_rows

    rows = backbone_rows()
    click.echo("\n".join(json.dumps(row) for row in rows) if as_json else format_rows(rows))


# --- extract ----------------------------------------------------------------
@main.command()
@click.argument("root", type=click.Path(readable=False))   # checked below, as one line
@click.option("-o", "--out", default="features", show_default=True, type=click.Path(),
              help="Feature folder: <video_id>.npy (T, C, D), manifest.jsonl, recipe.json.")
@click.option("--backbone", default="i3d-r50", show_default=True, help="i3d-r50 (2048-d) or i3d-inception (1024-d).")
@click.option("--preset", default="rtfm", show_default=True,
              help="rtfm (ten-crop 224), center (one 224 crop), frame (whole frame, short side 224, no crop), "
              "tiny (112 crop, tests).")
@click.option("--short-side", default=None, type=click.IntRange(min=16),
              help="Resize frames to this short side instead of the preset's (recorded in the recipe).")
@click.option("--stride", default=None, type=click.IntRange(min=1),
              help="Start a snippet every N frames instead of every snippet length (16): N < 16 overlaps them, "
              "for finer steps in time at 16/N times the compute (recorded in the recipe).")
@click.option("--mirror", is_flag=True,
              help="Also run each whole frame's mirror image (crop mode 'mirror': 2 views a snippet, twice the "
              "compute), as ten-crop presets do for their crops; whole-frame presets (frame) only.")
@click.option("--light", default="none", show_default=True, type=click.Choice(["none", "mean", "running"]),
              help="'mean': bring each snippet's mean pixel level to the one the backbone's normalisation "
              "centres (one gain a snippet, within 1/8..8), so a darker or brighter scene moves the features less; "
              "'running': the same gain from the video's level so far (its last 64 snippets), which keeps the "
              "light changes inside a clip (recorded in the recipe; score and watch then do the same).")
@click.option("--regions", default="", metavar="RxC",
              help="Store an R x C grid of region vectors per snippet (the backbone's last map pooled per "
              "region) instead of one global vector: for fixed cameras whose events fill part of the view.")
@click.option("--layers", default="", metavar="A,B",
              help="Store the space-time means of these network endpoints side by side instead of the "
              "backbone's own features, e.g. Mixed_4f,Mixed_5c (i3d-inception) or res4,res5 (i3d-r50; "
              "`vadpipe backbones` lists them): the head trains on the last, the normal statistics use "
              "model.normal_layer.")
@click.option("--weights", default=None, help="Backbone weight file (default: the backbone's own; 'random' for tests).")
@click.option("--fps", default="native", show_default=True,
              help="'native' or a frame rate to resample to (a constant grid: use it for variable-frame-rate "
              "clips, so every snippet spans the same time).")
@click.option("--batch-size", default=16, show_default=True, type=int,
              help="Snippets per batch, possibly from several videos (each gives C crops).")
@click.option("--clips-per-forward", default=None,
              help="Clips per backbone pass, or 'auto' (tuned on the first batches' timing on CPU: faster on some "
              "machines, but the features then move in float32's last digits with the load) [default: the whole "
              "batch on CUDA; on CPU the backbone's own size, so features are the same bits run after run].")
@click.option("--workers", default=None, type=int, help="Decode processes [default: CPU cores - 1, at most 8].")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="CPU threads of the main process [default: all cores on CPU, cores - workers with CUDA].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16"]),
              help="Storage dtype of the .npy files.")
@click.option("--compute-dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Backbone precision, recorded in the recipe; auto = bfloat16 on CUDA, float32 on CPU.")
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CSV 'video,label[,class]' overriding the labels taken from folder names.")
@click.option("--shard", default=None, help="Do share i of n (0-based, e.g. 0/4); torchrun's RANK/WORLD_SIZE "
              "are used when set.")
@click.option("--overwrite", is_flag=True, help="Redo every video, replacing features of another recipe.")
@click.option("--accept-damaged", is_flag=True,
              help="Keep the features of damaged clips (decoded short of their claim or with decoder errors) as "
              "status 'damaged'; without it they are 'failed' and get no features.")
@decode_timeout_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@one_line_errors
def extract(root, out, backbone, preset, short_side, stride, mirror, light, regions, layers, weights, fps, batch_size, clips_per_forward, workers, threads,
            device, dtype, compute_dtype, labels, shard, overwrite, accept_damaged, decode_timeout, no_progress):
    """Extract snippet features for every video under ROOT (resumable; exit 1 if any video failed)."""
    from .video import check_readable

    check_readable(root)      # a missing ROOT is one line before the backbone loads
    import torch

    from .encode import parse_clips_per_forward
    from .extract import extract_folder
    from .ranks import default_threads, default_workers

    n_workers = default_workers() if workers is None else workers
    torch.set_num_threads(threads or default_threads(device, n_workers))
    summary, all_ranks = extract_folder(
        root, out, backbone=backbone, preset=preset, weights=weights, fps=fps, batch_size=batch_size,
        workers=n_workers, device=device, dtype=dtype, compute_dtype=compute_dtype, labels=labels, shard=shard,
        overwrite=overwrite, progress=not no_progress, clips_per_forward=parse_clips_per_forward(clips_per_forward),
        short_side=short_side, accept_damaged=accept_damaged, regions=regions, layers=layers, stride=stride,
        mirror=mirror, light="" if light == "none" else light, decode_timeout=decode_timeout,
        log=lambda msg: click.echo(msg, err=True))
    click.echo(summary.format())
    if all_ranks is not None and summary.shard.index == 0:
        click.echo("all ranks: " + all_ranks.format())
    sys.exit((all_ranks or summary).exit_code)


# --- features ---------------------------------------------------------------
@main.group()
def features():
    """Feature folders: RTFM-style list export and import of public feature sets."""


@features.command("export-list")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="List file to write.")
@click.option("--subset", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Keep only the videos named in this file (e.g. UCF-Crime's Anomaly_Train.txt).")
@click.option("--relative", is_flag=True, help="Write paths relative to the list file's folder, not absolute.")
@one_line_errors
def features_export_list(folder, out, subset, relative):
    """Write an RTFM-style list of .npy paths: anomalous videos first, then normal; print the split index."""
    from .rtfm_lists import export_rtfm_list, read_list_file

    names = read_list_file(subset) if subset else None
    result = export_rtfm_list(folder, out, subset=names, absolute=not relative)
    click.echo(f"wrote {out}: {result.anomalous} anomalous then {result.normal} normal; "
               f"split index = {result.split_index}")
    if result.unlabeled:
        click.echo(f"left out {result.unlabeled} videos without a label", err=True)
    if result.missing:
        click.echo(f"{len(result.missing)} names of {subset} not found (first: {result.missing[0]!r})", err=True)
    from .features import FeatureStore

    recipe = FeatureStore(folder).recipe()
    layers = recipe.layers if recipe is not None else ()
    if layers:      # a list carries no recipe: what it loses here decides what a head trains on
        click.echo(f"note: these features store layers {', '.join(n for n, _ in layers)}; a list carries no "
                   "recipe, so a head trained on it reads all of them side by side (train on the folder to "
                   "keep them apart)", err=True)


@features.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", default=None, type=click.Path(file_okay=False),
              help="Feature folder for manifest.jsonl/recipe.json [default: SRC itself]; no .npy is copied.")
@click.option("--list", "list_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An RTFM list file giving the order; with --split-index, its first N entries are anomalous.")
@click.option("--split-index", default=None, type=int, help="Number of anomalous entries at the top of --list.")
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CSV 'video,label[,class]' (overrides names, folders and --list).")
@click.option("--recipe", "recipe_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="recipe.json describing how the files were made.")
@click.option("--backbone", default=None, help="Backbone the files came from [default: by feature size].")
@click.option("--preset", default=None, help="Preset they match [default: by crop count].")
@click.option("--crops", default=None, type=int, help="Crop count, when (T, C, D) vs (C, T, D) is ambiguous.")
@click.option("--overwrite", is_flag=True, help="Replace an existing recipe.json of another recipe.")
@one_line_errors
def features_import(src, out, list_file, split_index, labels, recipe_file, backbone, preset, crops, overwrite):
    """Index a folder of public RTFM/UR-DMU-style .npy features ((T,10,D), (10,T,D), name__k.npy crops)."""
    from .features import read_labels_csv
    from .rtfm_lists import import_feature_folder, imported_recipe_factory, read_list_file

    result = import_feature_folder(
        src, out or src, imported_recipe_factory(recipe_file, backbone, preset),
        labels=read_labels_csv(labels) if labels else None,
        list_order=read_list_file(list_file) if list_file else None, split_index=split_index,
        crops=crops, overwrite=overwrite)
    counts = {key: sum(1 for r in result.records if r.ok and r.label == key) for key in (1, 0, None)}
    click.echo(f"indexed {result.ok} videos into {out or src} (recipe {result.recipe.recipe_id}): "
               f"{counts[1]} anomalous, {counts[0]} normal, {counts[None]} unlabeled"
               + (f"; {len(result.already)} file(s) the folder already holds under other ids kept as they were "
                  f"(first: {result.already[0]!r})" if result.already else ""))
    from .features import unmatched_rows_warning

    if result.unmatched_labels:
        click.echo(unmatched_rows_warning(result.unmatched_labels, result.label_rows, labels), err=True)
    if result.unmatched_list:
        click.echo(unmatched_rows_warning(result.unmatched_list, result.list_rows, list_file), err=True)
    for rec in result.failed:
        click.echo(f"failed: {rec.id}: {rec.error}", err=True)
    sys.exit(1 if result.failed else 0)


# --- option types -------------------------------------------------------------
class FiniteFloat(click.ParamType):
    """A finite number (``positive``: above 0; ``minimum``: at least that). click's float takes nan and inf,
    which reach a division by zero or a JSON file that strict parsers refuse."""

    name = "float"

    def __init__(self, positive: bool = False, minimum: Optional[float] = None):
        self.positive, self.minimum = positive, minimum

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or (self.positive and number <= 0):
            self.fail(f"{value!r}: expected a {'positive ' if self.positive else ''}finite number", param, ctx)
        if self.minimum is not None and number < self.minimum:
            self.fail(f"{value!r}: expected a number >= {self.minimum:g}", param, ctx)
        return number


# --- train --------------------------------------------------------------------
class HeadName(click.ParamType):
    """A head name from the registry (``vadpipe.models``), looked up only when used: ``vadpipe --help``
    stays instant (the heads import torch)."""

    name = "head"

    def get_metavar(self, param, *args, **kwargs) -> str:
        from .config import head_names

        return "[" + "|".join(head_names()) + "]"

    def convert(self, value, param, ctx):
        from .config import head_names

        if value not in head_names():
            self.fail(f"{value!r} is not one of {', '.join(head_names())}", param, ctx)
        return value


class Seed(click.ParamType):
    """A seed: an integer in the range that config validation checks too (config_values.seed_problem)."""

    name = "integer"

    def convert(self, value, param, ctx):
        from .config_values import seed_problem

        try:
            seed = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an integer", param, ctx)
        why = seed_problem(seed)
        if why is not None:
            self.fail(why, param, ctx)
        return seed


# = presets.PRESETS, spelled out so that `vadpipe --help` imports no numpy (tests/test_ensemble.py checks them equal)
TRAIN_PRESETS = ("default", "ensemble", "paper", "ucf-crime", "shanghaitech", "demo")


@main.command("train")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (sections model/train, optional 'preset' key).")
@click.option("--features", help="Feature folder or RTFM list file.  [default: features]")
@click.option("--preset", type=click.Choice(list(TRAIN_PRESETS)),
              help="Start from a preset: default (LTGS with the localisation switches and normal statistics, "
                   "a schedule of epochs that follows the data), ensemble (the default as five heads on folds "
                   "of the normal videos: a steadier ranking, 5x the training, a cautious auto threshold), paper "
                   "(the article's LTGS and schedule, = ucf-crime), shanghaitech, demo.  [default: default]")
@click.option("--model", "model_name", type=HeadName(),
              help="Head: ltgs (LTGS), rtfm (RTFM-style baseline) or mil (Sultani MIL baseline); the registered "
                   "heads of vadpipe.models.")
@click.option("--ablation", multiple=True, metavar="NAME",
              help="Repeatable: 'w/o LT', 'w/o GS', 'GS->avg', 'w/o Dyn', No-Decay, LT-1Head, "
                   "'w/o Sparse', 'w/o Smooth', Hard-Update, H-literal.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Repeatable: set any config field, typed like it (train.lr=1e-4, train.loss.k=8, "
                   "model.use_lt=false, model.hidden=512,32); applied after --config/--preset/--model/--ablation.")
@click.option("--iters", type=int, help="Training iterations (exactly; replaces an epoch schedule; with --resume "
                                        "the total, at least the iterations already made).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Run folder (not named latest: runs/latest points at the newest run).  [default: runs/<timestamp>]")
@click.option("--resume", is_flag=True, help="Continue the run in --out (default runs/latest) from last.pt.")
@click.option("--device", help="auto, cpu, cuda, cuda:1 ... With --resume: continue on another device than the "
                               "run's (the result is then not bit-identical to an uninterrupted run).")
@click.option("--seed", type=Seed(), help="Seed of sampling, splits and weights, in [0, 2**32).")
@click.option("--list-anomalous", help="RTFM lists: auto, name, first:N or last:N.")
@click.option("--val-features", type=click.Path(exists=True), help="External validation features (needs --val-gt).")
@click.option("--val-gt", type=click.Path(exists=True), help="Frame-level gt for validation (frame AUC).")
@click.option("--val-is-test", is_flag=True, help="The validation set is the test set (recorded in the run).")
@click.option("--select", type=click.Choice(["best", "last"]),
              help="Checkpoint to keep as best.pt: best on validation, or the last (tiny validation sets).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@one_line_errors
def train_cmd(config_path, features, preset, model_name, ablation, overrides, iters, out, resume, device, seed,
              list_anomalous, val_features, val_gt, val_is_test, select, no_progress):
    """Train an anomaly head on extracted features; writes runs/<name>/ and runs/latest.

    With no options: ./features, preset default, model ltgs; the planned length and an ETA are printed.
    """
    from .config import exact_iterations, load_config
    from .presets import DEFAULT_PRESET, apply_ablations, apply_overrides, preset as get_preset, use_model
    from .train import resume as resume_run, train as train_run

    if resume:
        if any(value is not None and value is not False and value != ()   # given, whatever its value (--seed 0)
               for value in (config_path, features, preset, model_name, ablation, overrides, seed, list_anomalous,
                             val_features, val_gt, val_is_test, select)):
            raise click.UsageError("--resume continues a run with its own config; only --out, --iters and --device "
                                   "apply")
        result = resume_run(out or "runs/latest", iterations=iters, progress=not no_progress, device=device)
    else:
        if config_path and preset:
            raise click.UsageError("give either --config or --preset (a config file may name its preset)")
        cfg = load_config(config_path) if config_path else get_preset(preset or DEFAULT_PRESET)
        if model_name:
            cfg = use_model(cfg, model_name)
        if ablation:
            cfg = apply_ablations(cfg, ablation)
        if overrides:
            cfg = apply_overrides(cfg, overrides)
        t = cfg.train
        for key, value in (("features", features), ("device", device), ("seed", seed),
                           ("list_anomalous", list_anomalous), ("val_features", val_features), ("val_gt", val_gt),
                           ("select", select)):
            if value is not None:
                setattr(t, key, value)
        if iters is not None:
            exact_iterations(t, iters)          # --iters is exact, not a cap on the epoch schedule
        t.val_is_test = t.val_is_test or val_is_test
        result = train_run(cfg, out=out, progress=not no_progress)
    m = result.best_metrics
    click.echo(f"run: {result.run_dir}")
    auc = "n/a" if m.get("val_auc") is None else m["val_auc"]
    click.echo(f"model selection: {m.get('selection')}; validation AUC {auc} at iteration {m.get('best_iteration')}")


# --- eval ---------------------------------------------------------------------
@main.command("eval")
@click.option("--scores", multiple=True, metavar="[NAME=]PATH",
              help="Saved scores: a score folder (index.json), a score .json, a folder of per-video .npy/.txt/.csv "
                   "score files (any method's), or a concatenated frame-score .npy (alone). Repeat to compare "
                   "sets in one table; NAME= names a set's row.")
@click.option("--run", type=click.Path(), help="A run folder, runs/latest or a .pt: score --features with it.")
@click.option("--features", help="Feature folder or RTFM list file (with --run).  [default: features]")
@click.option("--gt", required=True, type=click.Path(exists=True),
              help="Ground truth: vadpipe .json, UCF-Crime annotation .txt, folder of frame masks, concatenated .npy.")
@click.option("--gt-format", type=click.Choice(["auto", "json", "ucf", "masks", "concat"]), default="auto",
              show_default=True)
@click.option("--ucf-convention", type=click.Choice(["1-based-inclusive", "0-based-exclusive"]),
              default="1-based-inclusive", show_default=True, help="How to read UCF-Crime frame numbers.")
@click.option("--threshold", type=FiniteFloat(), default=0.5, show_default=True, help="For the false-alarm rate.")
@click.option("--on-mismatch", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="A video whose scores and frames cannot be aligned: stop, or leave it out (reported).")
@click.option("--per-frame", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Plain score folders: one score per frame or per snippet (auto: per frame when every "
                   "video's score count is its frame count).")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Resample the videos N times for 95% intervals of frame AUC and AP and of the paired "
                   "differences (--scores only; 0: none).")
@click.option("--seed", type=Seed(), default=0, show_default=True,
              help="Seed of the bootstrap resamples, in [0, 2**32).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Write roc.png, pr.png and worst_<set>.png (the --worst videos of each set) here (--scores only).")
@click.option("--worst", type=click.IntRange(min=0), default=6, show_default=True,
              help="Videos per worst-video figure, those with the highest ranking error (0: no such figure).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Where to write eval.json (and scores/ with --run).  [default: <run>/eval/<features>/ with "
                   "--run; none with --scores]")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--crops", type=click.Choice(["1"]), default=None,
              help="With --run: score a ten-crop model's centre crop or a mirror model's frame alone, as "
              "`score --crops 1` does; the features may hold that view alone or among theirs.")
@one_line_errors
def eval_cmd(scores, run, features, gt, gt_format, ucf_convention, threshold, on_mismatch, per_frame, n_bootstrap,
             seed, plot_dir, worst, out, device, as_json, crops):
    """Frame-level AUC / AP (and more) of saved scores or of a trained run on features.

    Several --scores give one table, one row per set (same alignment rules for all), and each set's
    difference from the first, paired over the videos both evaluated. Also counted: the videos the threshold
    flags over 90 % or more of their frames (the clips `vadpipe score` notes) and, with --run, those whose
    scene reads as new to the head (their quietest tenth of snippets beyond the bound set at training).
    """
    import json as _json

    if bool(scores) == bool(run):
        raise click.UsageError("give --scores (one or more) or --run, not both")
    if crops and not run:
        raise click.UsageError("--crops takes --run (saved scores are scored already)")
    if run:
        if n_bootstrap or plot_dir:
            raise click.UsageError("--bootstrap and --plot take --scores (e.g. <run>/eval/<features>/scores)")
        from .evaluate import evaluate_run
        result, where = evaluate_run(run, features or "features", gt, out, device, gt_format, ucf_convention,
                                     threshold, on_mismatch, crops=int(crops) if crops else None)
        click.echo(_json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
        if not as_json:
            click.echo(f"written: {where}")
        return
    from .compare import evaluate_sources
    report = evaluate_sources(scores, gt, gt_format=gt_format, ucf_convention=ucf_convention,
                              per_frame={"auto": None, "yes": True, "no": False}[per_frame], threshold=threshold,
                              on_mismatch=on_mismatch, n_bootstrap=n_bootstrap, seed=seed, plot_dir=plot_dir,
                              worst=worst, out=out)
    click.echo(_json.dumps(report.to_dict(), indent=2) if as_json else report.text())
    if not as_json:
        for path in report.written():
            click.echo(f"written: {path}")


def run_options(func):
    """--run / --checkpoint: which trained head a command uses."""
    func = click.option("--checkpoint", type=click.Path(dir_okay=False),
                        help="A checkpoint .pt (instead of --run).")(func)
    return click.option("--run", type=click.Path(),
                        help="Run folder (or runs/latest) whose best.pt is used.  [default: runs/latest]")(func)


# --- score --------------------------------------------------------------------
@main.command("score")
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))   # checked per file
@run_options
@click.option("-o", "--out", default="scores", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: <clip>.scores.csv, <clip>.json (+ .png, .overlay.mp4).")
@click.option("--threshold", default="auto", show_default=True,
              help="A number, or auto (the checkpoint's calibration: 0.99 quantile of normal scores), auto:0.999.")
@click.option("--merge-gap", default=1.0, show_default=True, type=FiniteFloat(minimum=0),
              help="Join intervals separated by less than this many seconds.")
@click.option("--min-duration", default=0.5, show_default=True, type=FiniteFloat(minimum=0),
              help="Drop intervals shorter than this many seconds (a shorter clip flagged throughout keeps its one).")
@click.option("--plot", is_flag=True, help="Write <clip>.png: scores, threshold, intervals, thumbnails.")
@click.option("--plot-scale", type=click.Choice(["auto", "linear", "logit"]), default="auto", show_default=True,
              help="The plot's score axis; auto: logit when the scores bunch at 0 or 1 (0.94..0.9999 stay apart).")
@click.option("--overlay", is_flag=True, help="Write <clip>.overlay.mp4: the video with its score drawn on.")
@click.option("--crops", type=click.Choice(["1", "10"]), default=None,
              help="Crops to extract [default: the recipe's]; 1 with a ten-crop model uses its centre crop, with a "
              "mirror model the frame alone.")
@click.option("--gt", type=click.Path(exists=True), help="Ground truth to shade on the plot (formats as `eval`).")
@click.option("--weights", default=None, help="Backbone weight file, when not in the default place.")
@click.option("--recipe", "recipe_file", type=click.Path(exists=True),
              help="recipe.json for .npy features that have none beside them.")
@click.option("--fps", type=FiniteFloat(positive=True), default=None,
              help="Frame rate of features whose manifest does not say.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--batch-size", default=None, type=int,
              help="Snippets per backbone forward pass [default: 8 // crops, i.e. 8 with one crop, 1 with ten].")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for torch [default: torch's].")
@click.option("--window", default=None, type=click.IntRange(min=1),
              help="Run the head on sliding windows of N snippets (memory flat in clip length; a clip of at most "
                   "N snippets scores exactly as whole) [default: the whole clip at once].")
@decode_timeout_option
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@one_line_errors
def score_cmd(paths, run, checkpoint, out, threshold, merge_gap, min_duration, plot, plot_scale, overlay, crops, gt,
              weights, recipe_file, fps, device, batch_size, threads, window, decode_timeout, no_progress):
    """Score videos (files or folders) or pre-extracted features: per-frame scores, intervals, plots.

    A clip flagged over 90 % or more of its frames by a threshold not set on its camera gets a note: a scene
    new to the head scores so, as does an event lasting the whole clip. The note says which is likelier from
    the head's normal statistics (the clip's quietest tenth of snippets against its normal training videos;
    every clip's JSON has it as "scene"); `vadpipe calibrate` on the camera's normal clips settles it. Exit
    code 1 when any input failed (each failure is one line; the others are still scored).
    """
    from pathlib import Path

    from .score import ScoreOptions, run_score

    if threads:
        import torch

        torch.set_num_threads(threads)
    options = ScoreOptions(out_dir=Path(out), threshold=threshold, merge_gap_s=merge_gap,
                           min_duration_s=min_duration, plot=plot, plot_scale=plot_scale, overlay=overlay,
                           crops=int(crops) if crops else None, device=device, batch_size=batch_size,
                           weights=weights, recipe_file=Path(recipe_file) if recipe_file else None, fps=fps,
                           gt=Path(gt) if gt else None, window=window, progress=not no_progress,
                           decode_timeout=decode_timeout)
    sys.exit(run_score(paths, checkpoint=checkpoint, run=run, options=options, echo=click.echo))


# --- calibrate ----------------------------------------------------------------
@main.command("calibrate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))   # checked per file
@run_options
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="Write the calibrated checkpoint here [default: over the one read, atomically].")
@click.option("--quantiles", default=None,
              help="Comma-separated quantiles to store, e.g. 0.95,0.99,0.999 [default: the checkpoint's].")
@click.option("--pooling", type=click.Choice(["frames", "clips"]), default=None,
              help="frames: quantiles of all the clips' frames together; clips: the median over clips of each "
                   "clip's quantile (one unusual clip cannot set it, but clips past the median let more through: "
                   "README) [default: the checkpoint's].")
@click.option("--weights", default=None, help="Backbone weight file, when not in the default place.")
@click.option("--recipe", "recipe_file", type=click.Path(exists=True),
              help="recipe.json for .npy features that have none beside them.")
@click.option("--fps", type=FiniteFloat(positive=True), default=None,
              help="Frame rate of features whose manifest does not say.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for torch [default: torch's].")
@decode_timeout_option
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@one_line_errors
def calibrate_cmd(paths, run, checkpoint, out, quantiles, pooling, weights, recipe_file, fps, device, threads,
                  decode_timeout, no_progress):
    """Set the `auto` threshold from NORMAL footage of the camera the run will watch (videos or features).

    Scores every clip as `vadpipe score` does and stores the quantiles of their frame scores as the
    checkpoint's calibration (the one replaced is kept inside it). Training calibrates on held-out
    training videos; a camera whose normal scenes differ (crowds, empty nights) needs its own.
    Exit code 1 when any input failed (each failure is one line; the others still count).
    """
    from pathlib import Path

    from .errors import ConfigError
    from .score import ScoreOptions, find_checkpoint
    from .site_calibration import site_calibrate

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        qs = [float(q) for q in quantiles.split(",") if q.strip()] if quantiles is not None else None
    except ValueError:
        raise ConfigError(f"--quantiles {quantiles!r}: expected numbers such as 0.95,0.99,0.999") from None
    options = ScoreOptions(threshold=None, device=device, weights=weights, fps=fps, progress=not no_progress,
                           recipe_file=Path(recipe_file) if recipe_file else None, decode_timeout=decode_timeout)
    result = site_calibrate(paths, find_checkpoint(checkpoint, run), Path(out) if out else None, options, qs,
                            pooling=pooling)
    for line in result.summary_lines():
        click.echo(line)
    sys.exit(1 if result.errors else 0)


# --- watch --------------------------------------------------------------------
@main.command("watch")
@click.argument("source")
@run_options
@click.option("--window", default=32, show_default=True, type=int,
              help="Snippets the head sees at once (rule in vadpipe/window.py; the first scores come once "
                   "this many snippets have arrived).")
@click.option("--threshold", default="auto", show_default=True,
              help="A number, or auto (the checkpoint's calibration: 0.99 quantile of normal scores), auto:0.999.")
@click.option("--merge-gap", default=1.0, show_default=True, type=FiniteFloat(minimum=0),
              help="An event ends once the score stayed below the threshold this many seconds.")
@click.option("--min-duration", default=0.5, show_default=True, type=FiniteFloat(minimum=0),
              help="An event starts once the score stayed above the threshold this many seconds.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Append a line per snippet here (instead of stdout).")
@click.option("--events", type=click.Path(dir_okay=False), help="Append start/end events here as JSON lines.")
@click.option("--on-event", help="Shell command run for each event (VADPIPE_EVENT holds its JSON).")
@click.option("--snapshots", type=click.Path(file_okay=False), help="Folder for a JPEG of each event's peak.")
@click.option("--max-reconnects", default=5, show_default=True, type=click.IntRange(min=0),
              help="Reconnect attempts (back-off 1, 2, 4... s) before a lost network source fails.")
@click.option("--follow-timeout", default=5.0, show_default=True, type=FiniteFloat(minimum=0),
              help="A file source ends once it has not grown for this many seconds (MPEG-TS and MKV are "
                   "followed while they grow; an MP4 is read only once finished).")
@click.option("--drop", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Drop whole snippets (oldest first, counted) when scoring falls behind, so the lag stays "
                   "bounded. auto: on for network sources and devices; a file is scored whole unless 'on' "
                   "(a camera's growing recording watched for live alerts).")
@click.option("--decode", type=click.Choice(["process", "thread"]), default="process", show_default=True,
              help="Decode the source in a child process (a decoder that crashes ends the source, and the watch "
                   "closes its events and prints its summary) or in a thread of this one (no second process).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--weights", default=None, help="Backbone weight file, when not in the default place.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads for torch [default: torch's].")
@click.option("--compile", "compile_", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Run the backbone through torch.compile (weights frozen in): ~1.8x faster on CPU after a "
                   "one-off compile (35-45 s on a 2-core CPU). auto: on for CPU with a cropped (fixed-size) recipe.")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Snippets through the backbone at once, the threads split between them [default: 1; "
                   "on the quiet 2-core CPU one 2-thread pass was faster than two 1-thread passes].")
@one_line_errors
def watch_cmd(source, run, checkpoint, window, threshold, merge_gap, min_duration, csv_path, events, on_event,
              snapshots, max_reconnects, follow_timeout, drop, decode, device, weights, threads, compile_, workers):
    """Score a live SOURCE as it arrives: a file (followed while it grows), rtsp:// http:// udp:// tcp://, /dev/videoN.

    Every two windows of snippets are judged as `vadpipe score` judges a clip: a block flagged over 90 % or
    more of its snippets by a threshold not set on the camera gets a note (once for a run of such blocks)
    saying whether a new scene or a long event is likelier. Exit code 0 when the stream ended or Ctrl-C
    stopped it (with a summary), 1 when the source failed.
    """
    from pathlib import Path

    from .stream import StreamOptions
    from .watch import WatchOptions, run_watch

    if threads:
        import torch

        torch.set_num_threads(threads)
    options = WatchOptions(window=window, threshold=threshold, merge_gap_s=merge_gap, min_duration_s=min_duration,
                           csv=Path(csv_path) if csv_path else None, events=Path(events) if events else None,
                           on_event=on_event, snapshots=Path(snapshots) if snapshots else None, device=device,
                           weights=weights, compile=compile_, workers=workers,
                           stream=StreamOptions(max_reconnects=max_reconnects, follow_timeout_s=follow_timeout,
                                                drop={"auto": None, "on": True, "off": False}[drop],
                                                decode_process=decode == "process"))
    sys.exit(run_watch(source, checkpoint=checkpoint, run=run, options=options, echo=click.echo).exit_code)


# --- synth ------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True,
              help="tiny: 10 clips of 2-4 s at 160x90, 3 cameras (tests); small: 40 clips of 6-14 s at "
                   "320x180, 8 cameras (demo); full: 100 clips of 10-30 s at 640x360, 12 cameras "
                   "(Mini-Anomaly scale).")
@click.option("--seed", type=Seed(), default=0, show_default=True,
              help="World seed: same seed, same clips and labels; in [0, 2**32).")
@click.option("--clips", type=int, default=None, help="Number of clips [default: the size's].")
@click.option("--width", type=int, default=None, help="Frame width (even) [default: the size's].")
@click.option("--height", type=int, default=None, help="Frame height (even) [default: the size's].")
@click.option("--min-seconds", type=float, default=None, help="Shortest clip [default: the size's].")
@click.option("--max-seconds", type=float, default=None, help="Longest clip [default: the size's].")
@click.option("--cameras", type=int, default=None, help="Fixed camera scenes the clips are filmed by "
              "[default: the size's].")
@click.option("--workers", type=int, default=1, show_default=True, help="Clips rendered in parallel.")
@click.option("--overwrite", is_flag=True, help="Redo existing clips / replace a world of another config.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@one_line_errors
def synth(out, size, seed, clips, width, height, min_seconds, max_seconds, cameras, workers, overwrite,
          no_progress):
    """Generate a synthetic surveillance world with labelled anomalies in OUT.

    Writes OUT/{train,test}/{normal,Fighting,Intrusion,Abandoned,WrongWay,Fire}/*.mp4,
    OUT/{train,test}_gt.json (ids relative to the split folder), OUT/test_annotations.txt
    (UCF-Crime format) and OUT/world.json. A rerun with the same options resumes.
    """
    from .synth import generate_world, synth_config

    cfg = synth_config(size, seed=seed, clips=clips, width=width, height=height, min_seconds=min_seconds,
                       max_seconds=max_seconds, cameras=cameras)
    summary = generate_world(out, cfg, workers=workers, overwrite=overwrite, progress=not no_progress)
    click.echo(summary.line())


# --- demo ---------------------------------------------------------------------
@main.command()
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the world, features, runs, scores and demo.json.")
@click.option("--size", type=click.Choice(["tiny", "small", "full"]), default="small", show_default=True,
              help="small: 40 short clips, minutes on 2 CPU cores; full: Mini-Anomaly scale (GPU advised); "
                   "tiny: a smoke test.")
@click.option("--seed", type=Seed(), default=0, show_default=True, help="Seed for the world and training, in [0, 2**32).")
@click.option("--iters", "iterations", type=int, default=None, help="Training iterations per model (size default).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--workers", type=int, default=None, help="Decode worker processes (default: from the cores).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@one_line_errors
def demo(out, size, seed, iterations, device, workers, no_progress):
    """Run the whole pipeline offline on a generated surveillance world.

    synth -> extract (i3d-inception, real Kinetics-400 weights, whole frames) ->
    train LTGS, RTFM-style and MIL heads -> frame AUC/AP per model, per event
    type and inside anomalous clips on held-out clips (beside the untrained
    feature-norm baseline) -> score one test clip with a plot. Exit code 1 if
    any stage reported a failure.
    """
    from .demo import run_demo

    result = run_demo(out, size=size, seed=seed, device=device, iterations=iterations, workers=workers,
                      progress=not no_progress, echo=click.echo)
    for line in result.failed:
        click.echo(f"error: {line}", err=True)
    sys.exit(1 if result.failed else 0)
