"""Fingerprint the article's LTGS (``--preset paper``) after a short fixed training, and write or check
tests/fixtures/paper_golden.json.

The run and its inputs are tests/paper_golden_input.py's: deterministic RTFM-layout features, ``vadpipe
train --preset paper`` for a few iterations on one CPU thread, then per parameter of the trained head its sum
and sum of squares. tests/test_paper_golden.py trains the same and compares, so a change that moves the
article's head, losses, sampling or optimiser step fails there. Rewrite the fixture only for a change meant
to alter the published head, and say so in the commit.

``--checkout DIR`` trains with another checkout of the project (its own vadpipe, this environment's
packages): did the article's head train the same at an older revision?

    python tools/make_paper_golden.py                      # write the fixture from this checkout
    python tools/make_paper_golden.py --check              # compare this checkout with the fixture
    git worktree add /tmp/old REV && python tools/make_paper_golden.py --check --checkout /tmp/old
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "paper_golden.json"
sys.path.insert(0, str(ROOT / "tests"))
from paper_golden_input import ITERATIONS, TRAIN_ARGS, largest_difference, train_fingerprint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the fixture instead of writing it")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout whose vadpipe trains")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            got = train_fingerprint(args.checkout.resolve(), Path(tmp))
        except RuntimeError as err:
            raise SystemExit(str(err))
    if not args.check:
        args.fixture.write_text(json.dumps({"iterations": ITERATIONS, "train_args": TRAIN_ARGS,
                                            "fingerprint": got}, indent=1) + "\n")
        print(f"wrote {args.fixture}: {len(got)} parameters after {ITERATIONS} iterations")
        return
    want = json.loads(args.fixture.read_text())["fingerprint"]
    worst, where, only_one = largest_difference(got, want)
    print(f"{args.checkout}: largest relative difference {worst:.3g} ({where or 'none'}) over "
          f"{len(set(got) & set(want))} parameters; in one only: {', '.join(only_one) or 'none'}")


if __name__ == "__main__":
    main()
