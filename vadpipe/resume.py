"""Resuming an extraction: which of a rank's videos are done, which to (re)do.

A video is done when its manifest record is a complete result of the recipe
(``FeatureStore.is_complete``: status, recipe, the .npy's shape, the source's
size and mtime when recorded) under its own file name; its label, class and
path are refreshed when they changed. Ids can change between runs while the
source does not: ``x.mp4`` extracted as ``x`` becomes ``x.mp4`` once a
same-stem ``x.avi`` appears beside it. A record left under an id that no video
has any more, for the source of one of this rank's videos, is reused under
the new id when complete (its .npy renamed) and retired either way (a
``superseded`` record, which the merge drops), so one source never appears
twice in the manifest.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .claims import Owner, live_claim
from .decode_workers import VideoJob
from .features import SUPERSEDED, FeatureStore, ManifestRecord, remove_leftovers
from .ranks import Shard
from .recipe import Recipe


def source_key(path: str) -> str:
    """One spelling per source file (relative or absolute, through links)."""
    return os.path.realpath(path)


def plan(store: FeatureStore, jobs: Sequence[VideoJob], mine: Sequence[VideoJob], recipe: Recipe, overwrite: bool,
         owner: Owner, shard: Shard) -> Tuple[List[VideoJob], int]:
    """(this rank's videos to extract, how many are done already) for ``mine`` of all ``jobs``; writes the
    records of refreshed, reused and retired videos to this shard's journal."""
    known = store.all_records()
    current = {job.id for job in jobs}
    former: Dict[str, List[ManifestRecord]] = {}      # source -> records under ids no video has now
    for rec in known.values():
        if rec.id not in current and rec.path and rec.status != SUPERSEDED:
            former.setdefault(source_key(rec.path), []).append(rec)

    todo: List[VideoJob] = []
    skipped = 0
    for job in mine:
        olds = former.get(source_key(job.path), [])
        record = known.get(job.id)
        if olds and not overwrite and not store.is_complete(record, recipe, job.path):
            record = _reuse(store, job, olds, recipe, owner, shard) or record
        for old in olds:
            store.append(ManifestRecord(id=old.id, path=old.path, label=old.label, cls=old.cls, status=SUPERSEDED,
                                        recipe_id=old.recipe_id, crops=old.crops,
                                        error=f"the same source as {job.id!r} now"), shard.index, shard.count)
        if not overwrite and store.is_complete(record, recipe, job.path) and record.file == job.file:
            skipped += 1
            if (record.label, record.cls, record.path) != (job.label, job.cls, job.path):
                store.append(replace(record, label=job.label, cls=job.cls, path=job.path, finished=time.time()),
                             shard.index, shard.count)
        elif live_claim(store.folder, job.file, owner) is None:
            todo.append(job)
            remove_leftovers(store.folder, job.file)     # a killed writer's spool, temp files, stale claim
        else:   # another process (other shard settings) is writing it right now; the workers re-check
            todo.append(job)
    return todo, skipped


def _reuse(store: FeatureStore, job: VideoJob, olds: Sequence[ManifestRecord], recipe: Recipe, owner: Owner,
           shard: Shard) -> Optional[ManifestRecord]:
    """The newest complete record of ``job``'s source under a former id, moved to ``job``'s id and file name
    (and written to the journal); None when there is none or its file cannot be moved."""
    usable = [old for old in olds if old.layout == "TCD" and old.file and not Path(old.file).is_absolute()
              and store.is_complete(old, recipe, job.path)]
    if not usable:
        return None
    old = max(usable, key=lambda rec: rec.finished)
    if old.file != job.file:
        if live_claim(store.folder, job.file, owner) is not None:
            return None
        try:
            os.replace(store.resolve(old.file), store.folder / job.file)
        except OSError:
            return None
    record = replace(old, id=job.id, file=job.file, path=job.path, label=job.label, cls=job.cls,
                     finished=time.time())
    store.append(record, shard.index, shard.count)
    return record
