"""Fingerprint a preset's short fixed training (the article's LTGS, ``--preset paper``, and the default) and
write or check tests/fixtures/golden_runs.json.

The runs and their inputs are tests/golden_runs.py's: deterministic RTFM-layout features, ``vadpipe train
--preset P`` for four steps on one CPU thread, then per parameter and fitted buffer of the trained head its sum
and sum of squares, and the stored calibration quantiles. tests/test_golden_runs.py trains the same and
compares, so a change that moves a preset's head, losses, sampling, optimiser step or fits after training
fails there. Rewrite a preset's entry only for a change meant to alter how it trains (for the article's
head: none), and say so in the commit; a refactor must leave both as they are.

``--checkout DIR`` trains with another checkout of the project (its own vadpipe, this environment's
packages): did a preset train the same at an older revision?

    python tools/make_golden_runs.py                       # write both entries from this checkout
    python tools/make_golden_runs.py --preset default      # rewrite the default's entry only
    python tools/make_golden_runs.py --check               # compare this checkout with the fixture
    git worktree add /tmp/old REV && python tools/make_golden_runs.py --check --checkout /tmp/old --preset paper
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "golden_runs.json"
sys.path.insert(0, str(ROOT / "tests"))
from golden_runs import ITERATIONS, PRESET_ARGS, largest_difference, train_fingerprint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", choices=list(PRESET_ARGS), default=list(PRESET_ARGS))
    parser.add_argument("--check", action="store_true", help="compare with the fixture instead of writing it")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout whose vadpipe trains")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args()
    stored = json.loads(args.fixture.read_text()) if args.fixture.is_file() else {}
    for preset in args.preset:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                got = train_fingerprint(args.checkout.resolve(), Path(tmp), preset)
            except RuntimeError as err:
                raise SystemExit(str(err))
        if not args.check:
            stored[preset] = {"iterations": ITERATIONS, "train_args": PRESET_ARGS[preset], "fingerprint": got}
            print(f"{preset}: {len(got)} entries after {ITERATIONS} steps")
            continue
        if preset not in stored:
            raise SystemExit(f"{args.fixture} holds no {preset} entry: write it first")
        want = stored[preset]["fingerprint"]
        worst, where, only_one = largest_difference(got, want)
        print(f"{preset} with {args.checkout}: largest relative difference {worst:.3g} ({where or 'none'}) over "
              f"{len(set(got) & set(want))} entries; in one only: {', '.join(only_one) or 'none'}")
    if not args.check:
        args.fixture.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.fixture}")


if __name__ == "__main__":
    main()
