"""Command-line interface. Parses options and calls library functions; no logic of its own.

Heavy imports (torch, the backbones) happen inside each command so that
``vadpipe --help`` stays instant.
"""
from __future__ import annotations

import functools
import sys

import click

from . import __version__
from .errors import VadpipeError


def one_line_errors(func):
    """Print an expected failure as one line on stderr and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except VadpipeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vadpipe")
def main() -> None:
    """vadpipe: weakly supervised video anomaly detection.

    Raw videos -> I3D snippet features -> LTGS head trained on video-level
    labels -> per-frame anomaly scores, intervals and plots.
    """


# --- info -------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
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
