"""`vadpipe info`: describe videos as a table or JSON lines, one bad file never hiding the others."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Tuple

import click

from .errors import VadpipeError, printable
from .progress import progress_bar
from .readers import os_reason
from .video import VIDEO_EXTENSIONS, find_videos, probe

SNIPPET_LEN = 16
_COLUMNS = ("file", "frames", "fps", "size", "duration", "codec", "decoder", "flags", "status")


def collect_paths(paths: Iterable[str]) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Expand folders to their videos; missing paths and empty folders become errors."""
    files: List[Path] = []
    errors: List[Tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                found = find_videos(path)
                if not found:
                    errors.append((raw, f"no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) in this folder"))
                files.extend(found)
            elif path.exists():
                files.append(path)
            else:
                errors.append((raw, "no such file or folder"))
        except OSError as exc:              # a name too long, a link to itself: this path only
            errors.append((raw, os_reason(exc)))
    return files, errors


def describe(path: Path, quick: bool) -> dict:
    """One row: the VideoInfo fields plus status "ok"/"warning"/"damaged"/"error" and a message.

    "damaged": it opens, but decoding stops early, logs decoder errors or falls far
    short of the frames the container claims (``--quick`` sees only the last).
    """
    try:
        info = probe(path, count="packets" if quick else "decode")
    except VadpipeError as exc:
        return {"path": str(path), "status": "error", "message": str(exc)}
    row = info.to_dict()
    row["status"], row["message"] = "ok", ""
    if info.damaged:
        row["status"], row["message"] = "damaged", f"{path}: {info.damage}"
    elif info.frames < SNIPPET_LEN:
        row["status"] = "warning"
        row["message"] = f"{path}: only {info.frames} frames, shorter than one {SNIPPET_LEN}-frame snippet (will be padded)"
    elif info.metadata_disagrees:
        row["message"] = f"{path}: container claims {info.metadata_frames} frames, {info.frames} decode"
    elif info.vfr:
        row["message"] = f"{path}: " + next(n for n in info.notes if n.startswith("variable frame rate"))
    return row


def _flags(row: dict) -> str:
    """Short markers for what changes how a clip is read: its rotation and a variable frame rate."""
    flags = [f"rot{row['rotation']}"] if row.get("rotation") else []
    flags += ["vfr"] if row.get("vfr") else []
    return ",".join(flags) or "-"


def _table_row(row: dict) -> Tuple[str, ...]:
    path = printable(row["path"])     # a newline in a name would split its row
    if row["status"] == "error":
        return (path, "-", "-", "-", "-", "-", "-", "-", "error")
    return (path, str(row["frames"]), f"{row['fps']:.3g}", f"{row['width']}x{row['height']}",
            f"{row['duration']:.2f}s", row["codec"], row["decoder"], _flags(row), row["status"])


def format_table(rows: List[dict]) -> str:
    cells = [_COLUMNS] + [_table_row(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def run_info(paths: Iterable[str], as_json: bool = False, quick: bool = False) -> int:
    """Print the report; return the exit code: 1 when any file failed or is damaged (it would not
    extract cleanly), else 0. Each problem is one line on stderr naming the file."""
    files, path_errors = collect_paths(paths)
    rows = [{"path": p, "status": "error", "message": f"{p}: {why}"} for p, why in path_errors]
    for path in progress_bar(files, desc="probing", unit="video", enabled=len(files) >= 5):
        rows.append(describe(path, quick))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
    else:
        click.echo(format_table(rows))
    for row in rows:
        if row["message"]:
            level = row["status"] if row["status"] in ("error", "warning", "damaged") else "note"
            click.echo(f"{level}: {printable(row['message'])}", err=True)
    return 1 if any(r["status"] in ("error", "damaged") for r in rows) else 0
