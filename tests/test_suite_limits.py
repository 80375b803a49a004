"""The suite's own guard: a hung test ends the run with every thread's stack instead of holding CI."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HANGS = """
import threading

def test_waits_for_ever():
    threading.Event().wait()
"""


def test_a_hung_test_ends_the_run_with_the_stacks_of_its_threads(tmp_path):
    """pyproject.toml's limit, with its method (thread: a signal cannot stop a main thread blocked in C), run
    on a test that never returns; the limit is lowered to 3 s for this run only."""
    (tmp_path / "test_hangs.py").write_text(HANGS)
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                          str(tmp_path), "-p", "no:cacheprovider", "-o", "timeout=3", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    out = run.stdout + run.stderr
    assert run.returncode != 0 and took < 60, (run.returncode, took, out[-2000:])
    assert "Timeout" in out and "test_waits_for_ever" in out, out[-2000:]
    assert "Stack of MainThread" in out, out[-2000:]
