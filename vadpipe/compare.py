"""Several score sets against one ground truth: one table, paired differences, bootstrap intervals.

Every set goes through ``evaluate.evaluate_scores`` (same alignment rules, same
metrics); the table's rows are its figures. Paired differences are taken
against the first set over the videos both evaluated (keyed by ground-truth
id), with the same resampled videos for both when bootstrapping.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .bootstrap import BootstrapResult, Frames, bootstrap, finite_or_none, frame_auc_ap, paired_bootstrap
from .errors import ConfigError, GroundTruthError
from .evaluate import EvalResult, ScoreSet, align_video, evaluate_score_set, load_gt_for
from .groundtruth import VideoGT, load_ground_truth, match_ids
from .score_sets import LoadedScores, is_index, load_score_source


@dataclass
class SetRow:
    name: str
    n_videos: int
    auc: Optional[float]
    ap: Optional[float]
    auc_anomalous_videos: Optional[float]
    false_alarm_rate: Optional[float]
    threshold: Optional[float]
    bootstrap: Optional[BootstrapResult] = None


@dataclass
class PairedDiff:
    name: str                   # the set compared ...
    reference: str              # ... against this one (the first): value = name − reference
    n_videos: int               # videos both evaluated
    auc: Optional[float]        # None where a set lacks anomalous or normal frames
    ap: Optional[float]
    bootstrap: Optional[BootstrapResult] = None


@dataclass
class Comparison:
    rows: List[SetRow]
    diffs: List[PairedDiff]
    results: Dict[str, EvalResult]
    notes: List[str] = field(default_factory=list)
    sources: Dict[str, dict] = field(default_factory=dict)     # set → how it was read (LoadedScores.to_dict)
    aligned: Dict[str, Dict[str, Frames]] = field(default_factory=dict, repr=False)   # set → gt id → frames

    def to_dict(self) -> dict:
        """JSON-serialisable (the aligned frames stay out)."""
        return {"rows": [asdict(r) for r in self.rows], "differences": [asdict(d) for d in self.diffs],
                "results": {k: v.to_dict() for k, v in self.results.items()}, "notes": self.notes,
                "sources": self.sources}

    def table(self) -> str:
        return format_table(self)


def aligned_frames(score_set: ScoreSet, gts: Dict[str, VideoGT], result: EvalResult) -> Dict[str, Frames]:
    """gt id → (frame scores, frame labels) of every video ``result`` evaluated, aligned as it was."""
    mapping = match_ids(list(score_set.scores), list(gts))
    out = {}
    for a in result.alignments:
        if a.action == "mismatch":
            continue
        s, y, _ = align_video(score_set.scores[a.id], gts[mapping[a.id]], score_set.frames.get(a.id),
                              score_set.snippet_len, score_set.stride, score_set.frame_mode,
                              score_set.native.get(a.id))
        out[mapping[a.id]] = (s, y)
    return out


def compare_score_sets(sets: Sequence[Tuple[str, ScoreSet]], gts: Dict[str, VideoGT], *, threshold: float = 0.5,
                       on_mismatch: str = "error", n_bootstrap: int = 0, seed: int = 0,
                       confidence: float = 0.95) -> Comparison:
    """One row per set, differences against the first; intervals when ``n_bootstrap`` > 0."""
    if not sets:
        raise ConfigError("compare: no score sets")
    names = [n for n, _ in sets]
    if len(set(names)) < len(names):
        raise ConfigError(f"compare: score set names repeat ({', '.join(names)})")
    rows, results, aligned = [], {}, {}
    for name, ss in sets:
        res = evaluate_score_set(ss, gts, threshold, on_mismatch)
        results[name], aligned[name] = res, aligned_frames(ss, gts, res)
        m = res.metrics
        boot = (bootstrap(list(aligned[name].values()), n_bootstrap, seed, confidence) if n_bootstrap else None)
        rows.append(SetRow(name, m["n_videos"], m["auc"], m["ap"], m["auc_anomalous_videos"],
                           m.get("false_alarm_rate"), m.get("threshold"), boot))
    # each set's ground-truth videos without scores, as one set's eval says them (only eval.json had them)
    notes = [f"{name}: no scores for {len(res.unmatched_gt)} gt video(s), e.g. {res.unmatched_gt[0]}"
             for name, res in results.items() if res.unmatched_gt]
    diffs = []
    ref = names[0]
    for name in names[1:]:
        common = [v for v in aligned[ref] if v in aligned[name]]
        if not common:
            notes.append(f"{name} and {ref} share no evaluated video: no paired difference")
            continue
        if len(common) < max(len(aligned[ref]), len(aligned[name])):
            notes.append(f"{name} - {ref}: paired on the {len(common)} videos both evaluated "
                         f"({len(aligned[name])} and {len(aligned[ref])})")
        a, b = [aligned[name][v] for v in common], [aligned[ref][v] for v in common]
        (auc_a, ap_a), (auc_b, ap_b) = frame_auc_ap(a), frame_auc_ap(b)
        boot = paired_bootstrap(a, b, n_bootstrap, seed, confidence) if n_bootstrap else None
        diffs.append(PairedDiff(name, ref, len(common), finite_or_none(auc_a - auc_b), finite_or_none(ap_a - ap_b),
                                boot))
    return Comparison(rows, diffs, results, notes, aligned=aligned)


# --- text ---------------------------------------------------------------------------------------
def _pct(v: Optional[float], signed: bool = False) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"


def _ci(boot: Optional[BootstrapResult], metric: str, signed: bool = False) -> str:
    ci = getattr(boot, metric)
    return "n/a" if ci.low is None else f"[{_pct(ci.low, signed)}, {_pct(ci.high, signed)}]"


def _grid(header: List[str], body: List[List[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header] + body]


def format_table(comp: Comparison) -> str:
    """Plain-text table of the rows, then the paired differences (percent)."""
    with_ci = any(r.bootstrap is not None for r in comp.rows)
    level = f"{100 * comp.rows[0].bootstrap.confidence:g}% CI" if with_ci else ""
    header = ["score set", "videos", "AUC %"] + ([level] if with_ci else []) + ["AP %"] + (
        [level] if with_ci else []) + ["AUC anom. %", "false alarms %"]
    body = []
    for r in comp.rows:
        far = "n/a" if r.false_alarm_rate is None else f"{_pct(r.false_alarm_rate)} @ {r.threshold:g}"
        body.append([r.name, str(r.n_videos), _pct(r.auc)] + ([_ci(r.bootstrap, "auc")] if with_ci else [])
                    + [_pct(r.ap)] + ([_ci(r.bootstrap, "ap")] if with_ci else [])
                    + [_pct(r.auc_anomalous_videos), far])
    lines = _grid(header, body)
    if comp.diffs:
        header = ["difference", "videos", "dAUC"] + ([level] if with_ci else []) + ["dAP"] + (
            [level] if with_ci else [])
        body = [[f"{d.name} - {d.reference}", str(d.n_videos), _pct(d.auc, True)]
                + ([_ci(d.bootstrap, "auc", True)] if d.bootstrap else [])
                + [_pct(d.ap, True)] + ([_ci(d.bootstrap, "ap", True)] if d.bootstrap else []) for d in comp.diffs]
        lines += [""] + _grid(header, body)
    boots = [r.bootstrap for r in comp.rows if r.bootstrap] + [d.bootstrap for d in comp.diffs if d.bootstrap]
    if boots:
        b = boots[0]
        lines.append(f"bootstrap: {b.n} resamples of the videos (seed {b.seed}), percentile intervals")
    lines += comp.notes + [n for b in boots for n in b.notes]
    return "\n".join(lines)


# --- from paths -----------------------------------------------------------------------------------
def parse_source(arg: str) -> Tuple[Optional[str], str]:
    """``NAME=PATH`` or ``PATH`` (a path that exists as given is never split). ``NAME=`` with no PATH is a
    ConfigError: an empty path would read the current folder."""
    if not arg.strip():
        raise ConfigError("--scores '': an empty PATH")
    if "=" in arg and not Path(arg).exists():
        name, path = arg.split("=", 1)
        if name and not path.strip():
            raise ConfigError(f"--scores {arg!r}: no PATH after '{name}='")
        if name:
            return name, path
    return None, arg


def set_names(paths: Sequence[str]) -> List[str]:
    """Short distinct names: the last path part, with parents added only where names collide."""
    resolved = [Path(p).resolve().parts for p in paths]
    parts = list(dict.fromkeys(resolved))        # one path given twice is one folder: '#2' tells them apart
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clash:
            break
        for i in clash:
            depth[i] += 1
    short, seen, out = dict(zip(parts, names)), Counter(), []
    for r in resolved:
        seen[short[r]] += 1
        out.append(short[r] if seen[short[r]] == 1 else f"{short[r]}#{seen[short[r]]}")
    return out


def compare_paths(sources: Sequence[str], gt: str | Path, *, gt_format: str = "auto",
                  ucf_convention: str = "1-based-inclusive", per_frame: Optional[bool] = None,
                  threshold: float = 0.5, on_mismatch: str = "error", n_bootstrap: int = 0, seed: int = 0,
                  confidence: float = 0.95) -> Tuple[Comparison, List[LoadedScores]]:
    """``vadpipe eval --scores A --scores B ...``: read every source, load the gt once, compare.

    A concatenated gt is split in the order of the first index.json source (plain folders have none).
    """
    parsed = [parse_source(s) for s in sources]
    paths = [p for _, p in parsed]
    for p in paths:
        if not Path(p).exists():
            raise GroundTruthError(f"{p}: no such score file or folder")
    auto = set_names(paths)
    names = [n or a for (n, _), a in zip(parsed, auto)]
    loaded: Dict[int, LoadedScores] = {i: load_score_source(p) for i, p in enumerate(paths) if is_index(p)}
    if loaded:
        gts = load_gt_for(next(iter(loaded.values())).score_set, gt, gt_format, ucf_convention)
    else:
        gts = load_ground_truth(gt, gt_format, ucf_convention)
    for i, p in enumerate(paths):
        if i not in loaded:
            loaded[i] = load_score_source(p, gts, per_frame=per_frame)
    sources_in_order = [loaded[i] for i in range(len(paths))]
    comp = compare_score_sets([(n, ls.score_set) for n, ls in zip(names, sources_in_order)], gts,
                              threshold=threshold, on_mismatch=on_mismatch, n_bootstrap=n_bootstrap, seed=seed,
                              confidence=confidence)
    comp.notes = [f"{name}: {line}" for name, ls in zip(names, sources_in_order)
                  for line in ls.summary_lines()] + comp.notes
    comp.sources = {name: ls.to_dict() for name, ls in zip(names, sources_in_order)}
    return comp, sources_in_order


# --- `vadpipe eval --scores` -----------------------------------------------------------------------
@dataclass
class EvalReport:
    """What ``vadpipe eval --scores`` prints and writes: one set's full result and/or the comparison table."""
    result: Optional[EvalResult]            # one score source: its result (all a concatenated .npy has)
    comparison: Optional[Comparison]
    plots: List[Path] = field(default_factory=list)
    eval_json: Optional[Path] = None

    def written(self) -> List[Path]:
        return self.plots + ([self.eval_json] if self.eval_json is not None else [])

    def text(self) -> str:
        parts = [self.result.summary()] if self.result is not None else []
        parts += [self.comparison.table()] if self.comparison is not None else []
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        """The comparison; one set's result keys (``metrics``, ``alignments``, ...) stay at the top level,
        as ``eval`` has always written them, instead of under ``results``."""
        if self.comparison is None:
            return self.result.to_dict()
        out = self.comparison.to_dict()
        if self.result is not None:
            single = self.result.to_dict()
            out = {**single, **{k: v for k, v in out.items() if k != "results"},
                   "notes": single["notes"] + out["notes"]}
        return {**out, "plots": [str(p) for p in self.plots]}


def evaluate_sources(sources: Sequence[str], gt: str | Path, *, gt_format: str = "auto",
                     ucf_convention: str = "1-based-inclusive", per_frame: Optional[bool] = None,
                     threshold: float = 0.5, on_mismatch: str = "error", n_bootstrap: int = 0, seed: int = 0,
                     plot_dir: Optional[str | Path] = None, worst: int = 6,
                     out: Optional[str | Path] = None) -> EvalReport:
    """``vadpipe eval --scores ...``: a lone concatenated frame-score ``.npy`` is evaluated as before
    (``evaluate_score_path``); anything else goes through :func:`compare_paths`. Figures go to
    ``plot_dir``, ``eval.json`` to ``out``."""
    from . import atomic
    from .evaluate import evaluate_score_path

    if not sources:
        raise ConfigError("eval: no --scores given")
    if n_bootstrap < 0 or worst < 0:
        raise ConfigError("eval: --bootstrap and --worst take a count >= 0")
    lone = Path(parse_source(sources[0])[1]) if len(sources) == 1 else None
    if lone is not None and lone.suffix.lower() == ".npy" and lone.is_file():
        if n_bootstrap or plot_dir:
            raise ConfigError(f"{lone}: concatenated frame scores have no videos to resample or plot; "
                              "give a folder of per-video scores for --bootstrap or --plot")
        report = EvalReport(evaluate_score_path(lone, gt, gt_format, ucf_convention, threshold, on_mismatch), None)
    else:
        comp, _ = compare_paths(sources, gt, gt_format=gt_format, ucf_convention=ucf_convention,
                                per_frame=per_frame, threshold=threshold, on_mismatch=on_mismatch,
                                n_bootstrap=n_bootstrap, seed=seed)
        single = next(iter(comp.results.values())) if len(comp.results) == 1 else None
        report = EvalReport(single, comp)
        if plot_dir is not None:
            from .eval_plots import write_eval_plots
            report.plots = write_eval_plots(plot_dir, comp.aligned, worst)
    if out is not None:
        scores = sources[0] if len(sources) == 1 else list(sources)
        report.eval_json = Path(out) / "eval.json"
        atomic.write_json(report.eval_json, {"scores": scores, "gt": str(gt), **report.to_dict()})
    return report
