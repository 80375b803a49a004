"""Run another checkout of vadpipe with this environment's packages: ``VADPIPE_ROOT=DIR PYTHONPATH=<this
folder>`` imports ``vadpipe``, ``vadpipe.models`` and ``vadpipe.extractors`` from DIR's ``vadpipe/``, ``models/``
and ``extractors/``.

``PYTHONPATH=DIR`` alone is not enough: the editable install maps the two subpackages to the checkout it was
made from, so an older worktree would run its own ``vadpipe/`` with the installed ``models/`` (a revision that
never existed). Used by tools/make_golden_runs.py ``--checkout`` and for benchmarks run from a worktree
(tools/bench_accuracy.py refuses a mixed run). Python reads this file at start-up (``site``), in every
subprocess that inherits the environment too.
"""
import importlib.util
import os
import sys

_ROOT = os.environ.get("VADPIPE_ROOT")
_FOLDERS = {"vadpipe": "vadpipe", "vadpipe.extractors": "extractors", "vadpipe.models": "models"}


class _CheckoutFinder:
    """Finds the three packages in VADPIPE_ROOT before any other finder (their submodules follow their paths)."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        folder = _FOLDERS.get(fullname)
        if folder is None:
            return None
        where = os.path.join(_ROOT, folder)
        return importlib.util.spec_from_file_location(fullname, os.path.join(where, "__init__.py"),
                                                      submodule_search_locations=[where])


if _ROOT:
    sys.meta_path.insert(0, _CheckoutFinder)
