"""How much of each stretch of time a `vadpipe score` run flagged: for every score CSV (frame, time_s, score)
and every ``--span NAME=START:END`` (seconds, end excluded), the share of its frames at or above
``--threshold`` and their highest score (docs/localisation.md, "The light of the video so far"):

    vadpipe score STREAM.mp4 --run RUN -o OUT
    python tools/flagged_spans.py OUT/STREAM.scores.csv --span daylight=0:80 --span fade=80:180 --span dark=180:240
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np


def flagged_spans(times: np.ndarray, scores: np.ndarray, spans: Dict[str, Tuple[float, float]],
                  threshold: float) -> Dict[str, Tuple[float, float]]:
    """{span: (share of its frames >= threshold, highest score)}; a span without frames is left out."""
    out = {}
    for name, (start, end) in spans.items():
        inside = (times >= start) & (times < end)
        if inside.any():
            out[name] = (float(np.mean(scores[inside] >= threshold)), float(scores[inside].max()))
    return out


def read_scores(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows: List[dict] = list(csv.DictReader(f))
    return (np.array([float(r["time_s"]) for r in rows]), np.array([float(r["score"]) for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, nargs="+", help="score CSVs written by vadpipe score")
    ap.add_argument("--span", action="append", required=True, metavar="NAME=START:END", help="seconds, end excluded")
    ap.add_argument("--threshold", type=float, default=0.5, help="flagged at or above (0.5: auto for level scores)")
    args = ap.parse_args()
    spans = {}
    for spec in args.span:
        name, _, bounds = spec.partition("=")
        try:
            start, end = (float(v) for v in bounds.split(":"))
        except ValueError:
            ap.error(f"--span {spec!r}: expected NAME=START:END in seconds")
        spans[name] = (start, end)
    for path in args.csv:
        figures = flagged_spans(*read_scores(path), spans, args.threshold)
        print(f"{path}: " + "; ".join(f"{k} flagged {100 * share:.0f} % (max {top:.2f})"
                                       for k, (share, top) in figures.items()))


if __name__ == "__main__":
    main()
