"""Two `bench_accuracy.py --json` reports side by side, paired by seed: for every benchmark and config
both hold, each metric's mean in the first and the second, the mean and sd of the per-seed change, and
on how many seeds it rose, fell or stayed. A change smaller than its seeds' spread is not resolved.

    python tools/bench_accuracy.py --bench ped1 --config default=default --seeds 0 1 2 3 4 --json OLD.json
    ... (another cache, revision or machine)
    python tools/compare_bench.py OLD.json NEW.json [--metrics auc auc_anomalous_videos] [--pair default=typical]

Given one report, the spread of each row instead: the mean and sd over its runs and, where seeds ran on
several jittered extractions (``bench_accuracy.py --jitter SD --draws N``), how much of it lies between
seeds (the sd of each seed's mean over its draws), how much within a seed (the pooled sd over its
draws: what extracting again does to one seed), and how far the row itself moves from one extraction to
the next (the sd of each draw's mean over the seeds: what a README row made on another extraction would
differ by).

    python tools/compare_bench.py REPORT.json

Runs pair by their ``seed`` (recorded since 2026-12-06) and, with ``--jitter``, their ``draw``; a report
without seeds pairs by position, which is right only when both were made with the same ``--seeds`` (said
in the output).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

METRICS = ("auc", "ap", "auc_anomalous_videos", "false_alarm_auto", "hit_auto")
Runs = List[Dict[str, Optional[float]]]


@dataclass(frozen=True)
class Change:
    """One metric of one config on one benchmark, paired over ``seeds``; figures in percent."""
    seeds: int
    before: float
    after: float
    mean: float
    sd: float
    up: int
    down: int


@dataclass(frozen=True)
class Spread:
    """One metric of one config on one benchmark over its runs; figures in percent. ``between`` is the sd of
    the seeds' means, ``within`` the sd over a seed's draws pooled over seeds, ``rows`` the sd of the draws'
    means over seeds (both None with one draw a seed)."""
    runs: int
    seeds: int
    mean: float
    sd: float
    between: float
    within: Optional[float]
    rows: Optional[float] = None


def run_key(run: dict) -> Tuple[int, Optional[int]]:
    """What makes a run the same on both sides: its seed and, for a jittered extraction, its draw."""
    return run["seed"], run.get("draw")


def paired(before: Runs, after: Runs) -> Tuple[List[Tuple[dict, dict]], bool]:
    """Runs of the same seed (and draw) side by side (where both record seeds, else by position);
    the flag says whether seeds were matched."""
    if all("seed" in r for r in before + after):
        by_key = {run_key(r): r for r in after}
        return [(r, by_key[run_key(r)]) for r in before if run_key(r) in by_key], True
    return list(zip(before, after)), False


def change(pairs: Sequence[Tuple[dict, dict]], metric: str) -> Optional[Change]:
    """The per-seed change of ``metric`` (None where no pair has it on both sides)."""
    both = [(a[metric], b[metric]) for a, b in pairs if a.get(metric) is not None and b.get(metric) is not None]
    if not both:
        return None
    a, b = (100 * np.array(x, dtype=float) for x in zip(*both))
    d = b - a
    return Change(len(d), float(a.mean()), float(b.mean()), float(d.mean()),
                  float(d.std(ddof=1)) if len(d) > 1 else 0.0, int((d > 0).sum()), int((d < 0).sum()))


def spread(runs: Runs, metric: str) -> Optional[Spread]:
    """How ``metric`` varies over ``runs``, between seeds and within each seed's draws (None where no run has it)."""
    by_seed: Dict[object, List[float]] = {}
    by_draw: Dict[object, List[float]] = {}
    for i, r in enumerate(runs):
        if r.get(metric) is not None:
            by_seed.setdefault(r.get("seed", i), []).append(100 * float(r[metric]))
            by_draw.setdefault(r.get("draw"), []).append(100 * float(r[metric]))
    if not by_seed:
        return None
    groups = [np.array(v) for v in by_seed.values()]
    every = np.concatenate(groups)
    sd = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0   # noqa: E731
    freedom = sum(len(g) - 1 for g in groups)
    within = float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / freedom)) if freedom else None
    rows = sd([np.mean(v) for v in by_draw.values()]) if len(by_draw) > 1 else None
    return Spread(len(every), len(groups), float(every.mean()), sd(every), sd([g.mean() for g in groups]), within,
                  rows)


def spread_report(report_: dict, metrics: Sequence[str]) -> List[str]:
    """Lines of one report's spread: one per benchmark, config and metric."""
    lines = []
    for bench, configs in report_.items():
        for config, runs in configs.items():
            for metric, s in ((m, spread(runs, m)) for m in metrics):
                if s is None:
                    continue
                parts = f"seeds' means ± {s.between:4.1f}" + (
                    f", within a seed ± {s.within:4.1f}" if s.within is not None else "") + (
                    f", draws' means ± {s.rows:4.1f}" if s.rows is not None else "")
                lines.append(f"{bench:<10} {config:<12} {metric:<22} {s.mean:6.1f} ± {s.sd:4.1f} over {s.runs} runs "
                             f"({s.seeds} seeds): {parts}")
    return lines


def report(before: dict, after: dict, metrics: Sequence[str],
           configs: Optional[Sequence[Tuple[str, str]]] = None) -> List[str]:
    """Lines of the comparison: one per benchmark, config and metric both reports hold (or, with
    ``configs``, per (config in ``before``, config in ``after``) pair, named "before→after"), then a
    line naming the pairs made by position, if any."""
    lines, by_position = [], []
    for bench in (b for b in before if b in after):
        names = [(c, c) for c in before[bench] if c in after[bench]] if configs is None else \
            [(b, a) for b, a in configs if b in before[bench] and a in after[bench]]
        for old, new in names:
            config = old if old == new else f"{old}→{new}"
            pairs, by_seed = paired(before[bench][old], after[bench][new])
            changes = [(m, change(pairs, m)) for m in metrics]
            for metric, c in ((m, c) for m, c in changes if c is not None):
                lines.append(f"{bench:<10} {config:<12} {metric:<22} {c.before:6.1f} → {c.after:6.1f}   "
                             f"Δ {c.mean:+5.1f} ± {c.sd:4.1f}   up {c.up} down {c.down} same "
                             f"{c.seeds - c.up - c.down} of {c.seeds}")
            if not by_seed and any(c is not None for _, c in changes):
                by_position.append(f"{bench}/{config}")
    if by_position:
        lines.append(f"paired by position (a report without seeds): {', '.join(by_position)}")
    return lines


def read_report(path: Path) -> dict:
    """A bench_accuracy --json report ({bench: {config: [run figures]}}); a missing or unreadable file, or JSON of
    another shape, is one line."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {path}: not a readable bench_accuracy --json report ({exc})")
    if not (isinstance(data, dict) and all(isinstance(configs, dict) and all(
            isinstance(runs, list) and all(isinstance(r, dict) for r in runs) for runs in configs.values())
            for configs in data.values())):
        raise SystemExit(f"error: {path}: not a bench_accuracy --json report ({{bench: {{config: [runs]}}}} expected)")
    return data


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path, nargs="?", help="without it: BEFORE's spread, between and within seeds")
    ap.add_argument("--metrics", nargs="+", default=list(METRICS))
    ap.add_argument("--pair", nargs="+", default=None, metavar="BEFORE=AFTER",
                    help="compare config BEFORE of the first report with config AFTER of the second (a new "
                         "config against the default it would replace) instead of configs of the same name")
    args = ap.parse_args(argv)
    configs = None
    if args.pair:
        if any(p.count("=") != 1 for p in args.pair):
            ap.error("--pair takes BEFORE=AFTER, e.g. --pair default=typical")
        configs = [tuple(p.split("=")) for p in args.pair]
    if args.after is None:
        lines = spread_report(read_report(args.before), args.metrics)
        if not lines:
            print(f"{args.before} holds no run with {', '.join(args.metrics)}")
            return 1
    else:
        lines = report(read_report(args.before), read_report(args.after), args.metrics, configs)
        if not lines:
            print(f"{args.before} and {args.after} share no benchmark, config and metric")
            return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
