"""RTFM-family feature sets: list files out (``export_rtfm_list``) and public ``.npy`` folders in.

RTFM-style code reads a list file of ``.npy`` paths, anomalous videos first,
and hard-codes how many lines are anomalous (the split index). Public feature
sets come as (T, 10, D), (10, T, D) or per-crop ``<name>__k.npy`` files;
``import_feature_folder`` indexes them into a feature folder's manifest without
copying, with a recipe the caller describes (``recipe_for_dim``).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

from . import atomic
from .errors import ConfigError, FeatureStoreError
from .features import (MANIFEST_FILE, NORMAL_CLASS, FeatureStore, KeyIndex, LabelRow, ManifestRecord, is_normal_name,
                       label_from_folders)
from .readers import read_array, read_text
from .recipe import Recipe, check_compatible, load_recipe


# --- RTFM-style list files -----------------------------------------------------------------------

@dataclass
class ListExport:
    anomalous: int
    normal: int
    unlabeled: int            # left out: no label
    missing: List[str]        # subset names not found in the store

    @property
    def split_index(self) -> int:
        return self.anomalous


def export_rtfm_list(folder: str | os.PathLike, out: str | os.PathLike,
                     subset: Optional[Sequence[str]] = None, absolute: bool = True) -> ListExport:
    """Write an RTFM-style list: one ``.npy`` path per line, anomalous videos first (sorted by id),
    then normal ones. The split index (number of anomalous lines) is what RTFM-family code
    hard-codes (810 for UCF-Crime train). ``subset``: names from a split file to keep."""
    store = FeatureStore(folder)
    records = store.records(ok_only=True)
    if not records:
        raise FeatureStoreError(f"{folder}: no extracted videos in {MANIFEST_FILE}")
    missing: List[str] = []
    if subset is not None:
        index = KeyIndex([r.id for r in records], [r.path for r in records])
        wanted = set()
        for name in subset:
            vid = index.find(name)
            (missing.append(name) if vid is None else wanted.add(vid))
        records = [r for r in records if r.id in wanted]
        if not records:       # an empty list would read as "done" to whatever takes it next
            raise FeatureStoreError(f"{folder}: none of the subset's {len(subset)} name(s) is a video here"
                                    + (f" (e.g. {missing[0]!r})" if missing else "") + "; no list written")
    bad = [r.id for r in records if r.layout != "TCD"]
    if bad:
        raise FeatureStoreError(f"{folder}: video {bad[0]!r} is not stored as one (T, C, D) file;"
                                " RTFM lists need one such file per video")
    anomalous = [r for r in records if r.label == 1]
    normal = [r for r in records if r.label == 0]

    def show(rec: ManifestRecord) -> str:
        path = store.resolve(rec.file).resolve()
        if absolute:
            return str(path)
        try:        # relative to the list's own folder, where the list reader looks (not the working folder)
            return os.path.relpath(path, Path(out).resolve().parent)
        except ValueError:      # another drive (Windows)
            return str(path)

    atomic.write_text(out, "".join(show(r) + "\n" for r in anomalous + normal))
    return ListExport(len(anomalous), len(normal), len(records) - len(anomalous) - len(normal), missing)


def read_list_file(path: str | os.PathLike) -> List[str]:
    """The entries of a list file: its non-empty lines that are not '#' comments."""
    lines = read_text(path, what="the list", error=ConfigError).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def list_rule(rule: str) -> Tuple[str, int]:
    """(kind, N) of a list-label rule (``train.list_anomalous``, ``--list-anomalous``; vadpipe.data's
    docstring): auto, name, none, first:N or last:N (N 0 for the first three); anything else a ConfigError."""
    text = str(rule).strip().lower()
    if text in ("auto", "name", "none"):
        return text, 0
    match = re.fullmatch(r"(first|last):(\d+)", text)
    if not match:
        raise ConfigError(f"train.list_anomalous = {rule!r}; use auto, name, none, first:N or last:N")
    return match.group(1), int(match.group(2))


# --- importing public feature folders ------------------------------------------------------------

_CROP_FILE = re.compile(r"^(?P<name>.+)__(?P<crop>\d+)$")
_FEATURE_SUFFIX = re.compile(r"_(i3d|rgb|features?)$", re.IGNORECASE)
_UCF_NAME = re.compile(r"^(?P<cls>[A-Za-z]+?)_?(\d+)_x264$")


def _clean_stem(stem: str) -> str:
    return _FEATURE_SUFFIX.sub("", stem)


def _list_name(line: str) -> str:
    """The video name a list entry stands for (its file's stem, crop index and feature suffix taken off)."""
    stem = PurePosixPath(line.replace("\\", "/")).stem
    match = _CROP_FILE.match(stem) or _CROP_FILE.match(_clean_stem(stem))
    return _clean_stem(match.group("name") if match else stem)


def label_from_name(name: str) -> Tuple[Optional[int], Optional[str]]:
    """UCF-Crime file names carry their class (``Abuse001_x264``, ``Normal_Videos_003_x264``)."""
    base = PurePosixPath(name).name
    if is_normal_name(base):
        return 0, NORMAL_CLASS
    match = _UCF_NAME.match(base)
    return (1, match.group("cls")) if match else (None, None)


@dataclass
class ImportSummary:
    records: List[ManifestRecord]
    recipe: Recipe
    unmatched_labels: List[str] = field(default_factory=list)   # --labels rows that match no video
    label_rows: int = 0                                          # rows in --labels
    unmatched_list: List[str] = field(default_factory=list)     # --list entries that match no video
    list_rows: int = 0
    already: List[str] = field(default_factory=list)            # files the folder's manifest already holds

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.records)

    @property
    def failed(self) -> List[ManifestRecord]:
        return [r for r in self.records if not r.ok]


def scan_feature_files(src: str | os.PathLike) -> Dict[str, List[Path]]:
    """Group the ``.npy`` files under ``src`` by video id (per-crop ``name__k.npy`` files together)."""
    src = Path(src)
    groups: Dict[str, List[Tuple[int, Path]]] = {}
    for path in sorted(src.rglob("*.npy")):
        if path.name.startswith("."):
            continue
        rel = PurePosixPath(path.relative_to(src).as_posix())
        stem = rel.stem
        crop = -1
        match = _CROP_FILE.match(stem) or _CROP_FILE.match(_clean_stem(stem))     # name__3.npy, name__3_i3d.npy
        if match:
            stem, crop = match.group("name"), int(match.group("crop"))
        vid = str(rel.parent / _clean_stem(stem)) if str(rel.parent) != "." else _clean_stem(stem)
        groups.setdefault(vid, []).append((crop, path))
    return {vid: [p for _, p in sorted(items)] for vid, items in sorted(groups.items())}


def _layout(shape: Tuple[int, ...], crops: Optional[int] = None,
            prefer: str = "TCD") -> Tuple[str, int, int, int]:
    """(layout, T, C, D) of one array: (T, D), (T, C, D) or (C, T, D); C is ``crops`` when known,
    else 10 or 1; when both readings fit (a (10, 10, D) array) ``prefer`` wins (the folder's other files')."""
    if len(shape) == 2:
        return "TCD", shape[0], 1, shape[1]
    if len(shape) != 3:
        raise ValueError(f"expected a 2-D or 3-D array, got shape {shape}")
    a, b, d = shape
    candidates = (crops,) if crops else (10, 1)
    if prefer == "CTD" and a in candidates:
        return "CTD", b, a, d
    if b in candidates:
        return "TCD", a, b, d
    if a in candidates:
        return "CTD", b, a, d
    raise ValueError(f"cannot tell crops from snippets in shape {shape} (expected (T, 10, D) or (10, T, D))")


def import_feature_folder(src: str | os.PathLike, dest: str | os.PathLike, recipe_for_dim,
                          labels: Optional[Dict[str, LabelRow]] = None,
                          list_order: Optional[Sequence[str]] = None, split_index: Optional[int] = None,
                          crops: Optional[int] = None, overwrite: bool = False) -> ImportSummary:
    """Index public RTFM/UR-DMU-style ``.npy`` features under ``src`` into a manifest in ``dest``.

    Nothing is copied: manifest ``file`` entries point at the source files
    (relative to ``dest`` when possible). Layouts: (T, 10, D) per video, (10, T, D)
    per video, and per-crop (T, D) files ``<name>__0.npy`` … ``<name>__9.npy``.
    ``recipe_for_dim(D, C) -> Recipe`` builds the recipe once the feature size is
    known. Labels: folder names, UCF-Crime file names, then ``list_order`` +
    ``split_index`` (the first ``split_index`` entries of an RTFM list are
    anomalous), then ``labels`` (a CSV) — each later source overrides.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise FeatureStoreError(f"{src}: not a folder")
    groups = scan_feature_files(src)
    if not groups:
        raise FeatureStoreError(f"{src}: no .npy files found")

    list_labels: Dict[str, int] = {}
    list_positions: Dict[str, int] = {}    # a video's first entry (its crops' lines follow it)
    list_names = [_list_name(line) for line in list_order or ()]     # the video each list entry stands for
    if list_order is None and split_index is not None:
        raise ConfigError("--split-index needs --list (it counts the anomalous entries at the list's top)")
    if list_order is not None:
        if split_index is None:
            raise ConfigError("a list file needs --split-index (the number of anomalous entries at its top)")
        if not 0 <= split_index <= len(list_order):
            raise ConfigError(f"--split-index {split_index}: the list has {len(list_order)} entries")
        for position, name in enumerate(list_names):
            label = 1 if position < split_index else 0
            if list_labels.get(name, label) != label:     # per-crop lists repeat a video, with one label
                raise ConfigError(f"the list names {name!r} both above and below --split-index {split_index} "
                                  f"(entries {list_positions[name] + 1} and {position + 1}): one label each")
            list_labels[name] = label
            list_positions.setdefault(name, position)
    csv_rows, unmatched = KeyIndex(list(groups)).match(labels) if labels else ({}, [])
    names = {PurePosixPath(vid).name for vid in groups}
    unmatched_list = [line for line, name in zip(list_order or (), list_names) if name not in names]

    raw_shapes: Dict[str, List[Tuple[int, ...]]] = {}
    errors: Dict[str, str] = {}
    for vid, paths in groups.items():
        try:
            raw_shapes[vid] = [read_array(p, mmap=True).shape for p in paths]
        except FeatureStoreError as exc:
            errors[vid] = str(exc)
    unreadable = dict(errors)         # kept through both layout passes: these videos have no shape

    def read_layouts(hint: Optional[int], prefer: str = "TCD") -> Dict[str, Tuple[str, int, int, int]]:
        out = {}
        for vid, arrays in raw_shapes.items():
            try:
                if len(arrays) > 1:
                    if any(len(s) != 2 for s in arrays) or len(set(arrays)) != 1:
                        raise ValueError(f"per-crop files must all be (T, D) of one shape, got {sorted(set(arrays))}")
                    out[vid] = ("crop-files", arrays[0][0], len(arrays), arrays[0][1])
                else:
                    out[vid] = _layout(arrays[0], hint, prefer)
            except ValueError as exc:
                errors[vid] = f"{groups[vid][0]}: {exc}"
        return out

    # First pass guesses each file alone; the folder's majority crop count and layout then settle
    # ambiguous shapes: (10, 1, D) in a ten-crop folder, (10, 10, D) in a (10, T, D) one.
    guesses = read_layouts(crops)
    dims = Counter((c, d) for _, _, c, d in guesses.values())
    if not dims:
        raise FeatureStoreError(f"{src}: no readable feature files ({next(iter(errors.values()))})")
    (num_crops, dim), _ = dims.most_common(1)[0]
    layouts = Counter(layout for layout, t, c, _ in guesses.values() if layout != "crop-files" and t != c)
    errors.clear()
    errors.update(unreadable)
    shapes = read_layouts(crops or num_crops, layouts.most_common(1)[0][0] if layouts else "TCD")
    recipe: Recipe = recipe_for_dim(dim, num_crops)

    store = FeatureStore(dest)
    old = store.recipe()
    if old is not None and not overwrite:
        check_compatible(old, recipe, f"existing features in {dest}", f"the import of {src}",
                         "pass --overwrite to replace their recipe")
    store.write_recipe(recipe)
    # files the folder's manifest already points at, under another id (vadpipe's own folder imported into
    # itself: `Fight__x.npy` is `Fight/x`): kept as they are, not indexed a second time
    indexed = {store.resolve(f).resolve(): r.id for r in store.records(ok_only=True, recipe_id=None)
               for f in ([r.file] if r.file else []) + list(r.files or [])}
    already: List[str] = []

    def relative(path: Path) -> str:
        try:
            return os.path.relpath(path.resolve(), dest.resolve())
        except ValueError:  # another drive (Windows)
            return str(path.resolve())

    records: List[ManifestRecord] = []
    for vid, paths in groups.items():
        if indexed.get(paths[0].resolve(), vid) != vid:
            already.append(vid)
            continue
        label, cls = label_from_folders(PurePosixPath(vid + ".npy"))
        if label is None:
            label, cls = label_from_name(PurePosixPath(vid).name)
        name = PurePosixPath(vid).name
        if name in list_labels:
            label = list_labels[name]
            cls = cls if label == 1 and cls != NORMAL_CLASS else (NORMAL_CLASS if label == 0 else None)
        if vid in csv_rows:
            label, cls = csv_rows[vid].label, csv_rows[vid].cls
        base = ManifestRecord(id=vid, path=str(paths[0]), label=label, cls=cls, recipe_id=recipe.recipe_id,
                              seconds=0.0, list_index=list_positions.get(name))
        if vid in errors:
            records.append(replace(base, status="failed", error=errors[vid]))
            continue
        layout, T, C, D = shapes[vid]
        if (C, D) != (num_crops, dim):
            records.append(replace(base, status="failed",
                                   error=f"{paths[0]}: {C} crops x {D} dims, the folder has {num_crops} x {dim}"))
            continue
        rec = replace(base, T=T, crops=C, file=relative(paths[0]), layout=layout)
        if layout == "crop-files":
            rec.files = [relative(p) for p in paths]
        records.append(rec)
    for rec in records:
        store.append(rec)
    store.merge(0, 1)
    return ImportSummary(records, recipe, unmatched, len(labels or {}), unmatched_list, len(list_order or ()),
                         already)


def imported_recipe_factory(recipe_file: Optional[str | os.PathLike] = None, backbone: Optional[str] = None,
                            preset: Optional[str] = None):
    """``recipe_for_dim`` for ``import_feature_folder``.

    With ``recipe_file`` the recipe is taken as is (its D and crops must fit the files).
    Otherwise one is described from the backbone (default: the registered backbone of that D,
    2048 → i3d-r50, 1024 → i3d-inception) and preset (default: by crops, 10 → rtfm, 1 → center), with unknown
    weights and ``extra.origin = "imported"``: its id differs from any recipe vadpipe
    extracts with, so such features are never mistaken for ones vadpipe can reproduce.
    """
    def make(dim: int, crops: int) -> Recipe:
        if recipe_file is not None:
            try:
                recipe = load_recipe(recipe_file)
            except (OSError, ValueError, TypeError) as exc:
                raise ConfigError(f"{recipe_file}: unreadable recipe ({exc})") from None
            if (recipe.feature_dim, recipe.num_crops) != (dim, crops):
                raise FeatureStoreError(f"{recipe_file} describes {recipe.num_crops} crops x {recipe.feature_dim} "
                                        f"dims, the files hold {crops} x {dim}")
            return recipe
        from .extractors import list_backbones, make_recipe

        by_dim = [n for n, entry in list_backbones().items() if entry.config.feature_dim == dim]
        name = backbone or (by_dim[0] if len(by_dim) == 1 else None)
        if name is None:
            raise ConfigError(f"features are {dim}-d; name their backbone with --backbone or give --recipe")
        chosen = preset or {10: "rtfm", 1: "center"}.get(crops)
        if chosen is None:
            raise ConfigError(f"features have {crops} crops; give --recipe describing them")
        recipe = make_recipe(name, chosen, weights_sha256=None, extra=(("origin", "imported"),))
        if (recipe.feature_dim, recipe.num_crops) != (dim, crops):
            raise FeatureStoreError(f"the files hold {crops} crops x {dim} dims, but {name} with preset {chosen} "
                                    f"gives {recipe.num_crops} x {recipe.feature_dim}")
        return recipe

    return make
