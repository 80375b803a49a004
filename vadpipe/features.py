"""The feature store: per-video ``(T, C, D)`` arrays plus ``manifest.jsonl`` and ``recipe.json``.

A feature folder holds::

    recipe.json                         the Recipe every array in the folder was made with
    manifest.jsonl                      one JSON object per video, sorted by id
    <file>.npy                          (T, C, D): T snippets, C crops, D feature dims
    manifest.shard-<i>-of-<n>.jsonl     journal of a run in progress (or killed)

Video ids are the path relative to the extraction root, without extension,
with '/' separators (``Abuse/Abuse001_x264``); when two files differ only by
extension, both keep it in their id. The ``.npy`` name is the id with '/'
replaced by '__' (``Abuse__Abuse001_x264.npy``); an id whose flattened name
would be ambiguous or unsafe gets a short hash suffix instead (see
``feature_filename``), so no two ids ever share a file.

Concurrency (several ranks writing one folder): each writer appends one line
per finished video to its own journal (flushed and fsynced, so a killed run
loses at most a torn last line, which readers skip). Readers take the union of
``manifest.jsonl`` and every journal, keeping per id the record with the
latest ``finished`` time. At the end of a run each writer merges, under an
exclusive ``flock`` on ``.manifest.lock``, everything it can see into
``manifest.jsonl`` (atomic replace, records of other recipes dropped) and
deletes only its own journal; whichever rank finishes last therefore leaves the
complete, sorted manifest, and the result does not depend on finishing order.

Writers' folder lock and per-video claims: ``vadpipe/claims.py``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import atomic
from .errors import ConfigError, FeatureStoreError
from .intervals import NativeFrames
from .readers import os_reason, read_array, read_text
from .recipe import RECIPE_FILE, Recipe, load_recipe, save_recipe

MANIFEST_FILE = "manifest.jsonl"
SUPERSEDED = "superseded"   # the status of a record retired in a journal (its source has a new id); merge drops it
LOCK_FILE = ".manifest.lock"
_JOURNAL_GLOB = "manifest.shard-*.jsonl"

# --- finding videos ------------------------------------------------------------------------------

def walk_videos(root: Path, extensions: Sequence[str]) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """Video files under ``root`` (sorted), following symlinked folders without looping, and
    (path, reason) for what was skipped: a folder reached twice (a link loop or a second link to
    it), a broken link, a link that cannot be followed (one to itself), an unreadable folder."""
    found: List[Path] = []
    skipped: List[Tuple[str, str]] = []
    seen: Dict[str, str] = {}

    def walk(folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in seen:
            why = "symlink loop" if (str(folder) + os.sep).startswith(seen[real] + os.sep) else "already walked"
            skipped.append((str(folder), f"{why}: same folder as {seen[real]}"))
            return
        seen[real] = str(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((str(folder), f"cannot list ({os_reason(exc)})"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError as exc:                   # a link to itself (ELOOP), a name too long ...
                skipped.append((str(path), f"cannot follow ({os_reason(exc)})"))
                continue
            if is_dir:
                walk(path)
            elif is_file:
                if path.suffix.lower() in extensions:
                    found.append(path)
            elif entry.is_symlink():
                skipped.append((str(path), "broken symlink"))

    walk(Path(root))
    return sorted(found), skipped


# --- ids, file names, labels ---------------------------------------------------------------------

# Characters that are unsafe in a file name on some common filesystem (Windows included).
_UNSAFE = re.compile(r'[\\:*?"<>|\x00-\x1f]')
_NORMAL_FOLDER = re.compile(r"^(normal|training_normal_videos|testing_normal_videos)", re.IGNORECASE)
NORMAL_CLASS = "Normal"


def video_ids(relative_paths: Sequence[PurePosixPath]) -> List[str]:
    """Stable ids for paths relative to the extraction root: the path without extension.

    Files that would share an id (``a.mp4`` and ``a.avi`` in one folder) keep their
    extension instead, and so on until no two share one (``x.mp4.avi`` beside ``x.mp4``
    and ``x.mkv`` keeps its extension too), so ids are always unique: the paths are.
    """
    full = [str(p) for p in relative_paths]
    ids = [str(p.with_suffix("")) for p in relative_paths]
    while True:
        counts = Counter(ids)
        clashing = [i for i, vid in enumerate(ids) if counts[vid] > 1 and vid != full[i]]
        if not clashing:      # each round gives at least one more path its extension: it ends
            return ids
        for i in clashing:
            ids[i] = full[i]


def feature_filename(video_id: str) -> str:
    """The ``.npy`` file name of a video id: '/' becomes '__'.

    When that mapping cannot be undone (the id itself contains '__' next to a
    separator, an unsafe character, a leading dot) or the name is very long (over
    200 bytes in UTF-8: file systems count bytes, 255 at most, and the hidden claim
    and spool names add about 30), the name is cut to 180 bytes on a character
    boundary and gets a '-' and 10 hex digits of the id's sha1, so two ids never collide.
    """
    flat = video_id.replace("/", "__")
    safe = _UNSAFE.sub("_", flat)
    long = len(safe.encode("utf-8", "surrogateescape")) > 200
    if safe != flat or flat.replace("__", "/") != video_id or safe.startswith(".") or long:
        digest = hashlib.sha1(video_id.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        head = safe.lstrip(".").encode("utf-8", "surrogateescape")[:180].decode("utf-8", "ignore")
        safe = head + "-" + digest
    return safe + ".npy"


def is_normal_name(name: str) -> bool:
    return bool(_NORMAL_FOLDER.match(re.sub(r"[-\s]", "_", name)))


def label_from_folders(relative_path: PurePosixPath) -> Tuple[Optional[int], Optional[str]]:
    """(label, class) from the folders of a path relative to the root.

    A folder named like ``normal``/``Normal*``/``Training_Normal_Videos*``/
    ``Testing_Normal_Videos*`` (``-`` and ``_`` alike) anywhere in the path → (0, "Normal");
    otherwise the innermost folder is the class of an anomalous video → (1, folder);
    a file directly in the root → (None, None), unknown.
    """
    folders = relative_path.parts[:-1]
    if not folders:
        return None, None
    if any(is_normal_name(f) for f in folders):
        return 0, NORMAL_CLASS
    return 1, folders[-1]


_LABEL_WORDS = {"0": 0, "normal": 0, "1": 1, "anomalous": 1, "abnormal": 1, "anomaly": 1,
                "": None, "null": None, "none": None, "unknown": None, "?": None, "-1": None}


def parse_label(text: str) -> Optional[int]:
    key = text.strip().lower()
    if key not in _LABEL_WORDS:
        raise ValueError(f"label {text!r} is not 0, 1 or empty")
    return _LABEL_WORDS[key]


@dataclass(frozen=True)
class LabelRow:
    label: Optional[int]
    cls: Optional[str]


def read_labels_csv(path: str | os.PathLike) -> Dict[str, LabelRow]:
    """``video,label[,class]`` rows (an optional header line is recognised) → {video key: LabelRow}.

    The video key may be an id, a relative path with or without extension, or a
    file name; ``match_key`` resolves it against the videos found.
    """
    out: Dict[str, LabelRow] = {}
    text = read_text(path, what="labels", error=ConfigError, encoding="utf-8-sig", newline="")
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r and any(c.strip() for c in r)]
    for line_no, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ConfigError(f"{path}:{line_no}: expected 'video,label[,class]', got {','.join(row)!r}")
        try:
            label = parse_label(row[1])
        except ValueError as exc:
            if line_no == 1:
                continue  # header
            raise ConfigError(f"{path}:{line_no}: {exc}") from None
        cls = row[2].strip() if len(row) > 2 and row[2].strip() else None
        out[_normal_key(row[0])] = LabelRow(label, cls if cls else (NORMAL_CLASS if label == 0 else None))
    return out


def _normal_key(text: str) -> str:
    key = text.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


class KeyIndex:
    """Resolve user-written video names (id, relative path, file name, stem) to ids."""

    def __init__(self, ids: Sequence[str], relative_paths: Sequence[Optional[str]] = ()):
        self._exact: Dict[str, str] = {}
        loose: Dict[str, List[str]] = {}
        rels = list(relative_paths) or [None] * len(ids)
        for vid, rel in zip(ids, rels):
            self._exact[vid] = vid
            if rel:
                self._exact[rel] = vid
            for key in {PurePosixPath(vid).name, PurePosixPath(rel or vid).name, PurePosixPath(rel or vid).stem}:
                loose.setdefault(key, []).append(vid)
        # A bare name matches only when it is unambiguous.
        self._loose = {k: v[0] for k, v in loose.items() if len(set(v)) == 1}

    def find(self, key: str) -> Optional[str]:
        key = _normal_key(key)
        if key in self._exact:
            return self._exact[key]
        no_ext = str(PurePosixPath(key).with_suffix("")) if PurePosixPath(key).suffix else key
        return self._exact.get(no_ext) or self._loose.get(key) or self._loose.get(PurePosixPath(key).name)

    def match(self, rows: Dict[str, "LabelRow"]) -> Tuple[Dict[str, "LabelRow"], List[str]]:
        """(``rows`` of a labels CSV by the video id each names, the keys of the rows that name none)."""
        matched: Dict[str, LabelRow] = {}
        unmatched: List[str] = []
        for key, row in rows.items():
            vid = self.find(key)
            if vid is None:
                unmatched.append(key)
            else:
                matched[vid] = row
        return matched, unmatched


def unmatched_rows_warning(unmatched: Sequence[str], rows: int, path: str | os.PathLike) -> str:
    """The warning `extract --labels` and `features import --labels` give for rows that match no video."""
    return f"warning: {len(unmatched)} of {rows} rows of {path} match no video (first: {unmatched[0]!r})"


# --- manifest records ----------------------------------------------------------------------------

@dataclass
class ManifestRecord:
    """One manifest line. ``file`` is relative to the feature folder (or absolute, for imports)."""

    id: str
    path: Optional[str]                  # the source video as given on the command line
    label: Optional[int]                 # 0 normal, 1 anomalous, None unknown
    cls: Optional[str]                   # class name ("class" in JSON)
    status: str = "ok"                   # "ok" | "damaged" (kept with --accept-damaged) | "failed"
    #                                      ("superseded" only in journals: see SUPERSEDED)
    frames: Optional[int] = None         # frames decoded (at the extraction fps)
    fps: Optional[float] = None
    T: Optional[int] = None              # snippets = ceil(frames / snippet_len)
    crops: Optional[int] = None
    file: Optional[str] = None
    recipe_id: Optional[str] = None
    error: Optional[str] = None
    seconds: Optional[float] = None      # wall time spent on this video
    finished: float = field(default_factory=time.time)   # unix time; the latest record per id wins
    layout: str = "TCD"                  # "TCD", "CTD" (crops first) or "crop-files" (imports only)
    files: Optional[List[str]] = None    # per-crop files, layout "crop-files"
    damage: Optional[str] = None         # why the decoder calls the clip damaged (FFmpeg's words included)
    rotation: Optional[int] = None       # degrees clockwise the frames were turned upright before resizing
    vfr: Optional[bool] = None           # variable frame rate: fps is an average
    source_size: Optional[int] = None    # the source video's bytes and mtime (ns) when it was decoded:
    source_mtime_ns: Optional[int] = None   # a replaced source is redone on resume (see is_complete)
    source_frames: Optional[int] = None  # a resampling recipe (extract --fps): the video's own decoded frames
    source_fps: Optional[float] = None   # and rate, where frames/fps above are the resampled ones
    # "decord" or "pyav" (the one that decoded the last frames: decord hands over to PyAV where it fails).
    # Informational: on H.264 the two give the same RGB frames (tools/bench_decoders.py), so features of
    # either match; None for imports and features extracted before it was recorded.
    decoder: Optional[str] = None
    list_index: Optional[int] = None     # imports with --list: the video's place in the list, the order an
    #                                      RTFM concatenated gt is built in (the set is read in it)

    def to_json(self) -> dict:
        out = asdict(self)
        out["class"] = out.pop("cls")
        if self.layout == "TCD":
            out.pop("layout")
        for key in ("files", "damage", "rotation", "vfr", "source_size", "source_mtime_ns", "source_frames",
                    "source_fps", "decoder", "list_index"):   # absent, not null
            if out[key] is None:
                out.pop(key)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "ManifestRecord":
        data = dict(data)
        data["cls"] = data.pop("class", None)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def native(self) -> Optional[NativeFrames]:
        """The video's own frames when extraction resampled it and recorded them (None before that was kept)."""
        if not (self.source_frames and self.source_fps and self.fps):
            return None
        return NativeFrames(int(self.source_frames), float(self.source_fps), float(self.fps))

    @property
    def ok(self) -> bool:
        """Usable features: status ok, or damaged and kept on purpose (``--accept-damaged`` wrote the file).
        A damaged clip extracted without that flag is recorded ``failed`` and has no file."""
        return self.status == "ok" or (self.status == "damaged" and bool(self.file))


def read_jsonl(path: Path) -> Iterator[ManifestRecord]:
    """Records of one manifest/journal file; unparsable lines (a torn last line, bytes that are not
    UTF-8) are skipped: their videos count as not done."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    for raw in data.splitlines():
        try:
            line = raw.decode("utf-8").strip()
            if line:
                yield ManifestRecord.from_json(json.loads(line))
        except (ValueError, TypeError):       # UnicodeDecodeError and JSONDecodeError are ValueErrors
            continue


def _latest(records: Iterable[ManifestRecord]) -> Dict[str, ManifestRecord]:
    out: Dict[str, ManifestRecord] = {}
    for rec in records:
        old = out.get(rec.id)
        if old is None or rec.finished >= old.finished:
            out[rec.id] = rec
    return out


def as_snippet_crops(x: np.ndarray) -> np.ndarray:
    """A video's features as (T, C, D): (T, D) gains a crop axis, (T, C, D) is kept as is; any other
    shape, or no snippet at all, is a ValueError naming the shape (callers add the file)."""
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"expected features (T, C, D) or (T, D), got shape {x.shape}")
    return x


def expected_snippets(frames: int, snippet_len: int = 16, stride: Optional[int] = None) -> int:
    """T of a video of ``frames`` frames, by the reader's rule (``VideoReader.snippets``): a snippet
    every ``stride`` frames while one fits whole, then one padded partial snippet if frames remain
    uncovered. Non-overlapping (stride = length): T = ceil(frames / snippet_len)."""
    stride = stride or snippet_len
    if frames <= 0:
        return 0
    if frames <= snippet_len:
        return 1
    whole = (frames - snippet_len) // stride + 1
    return whole + (frames > (whole - 1) * stride + snippet_len)


# --- the store -----------------------------------------------------------------------------------

class FeatureStore:
    """A feature folder: recipe, merged manifest, per-video arrays.

    Reading::

        store = FeatureStore("features")
        recipe = store.recipe()                 # Recipe or None
        for rec in store.records(ok_only=True): # sorted by id, current recipe only
            x = store.load(rec)                 # np.ndarray (T, C, D)
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    # recipe
    @property
    def recipe_path(self) -> Path:
        return self.folder / RECIPE_FILE

    def recipe(self) -> Optional[Recipe]:
        if not self.recipe_path.exists():
            return None
        try:
            return load_recipe(self.recipe_path)
        except (ValueError, TypeError, OSError) as exc:
            raise FeatureStoreError(f"{self.recipe_path}: unreadable recipe ({exc})") from None

    def write_recipe(self, recipe: Recipe) -> None:
        save_recipe(self.folder, recipe)

    # manifest
    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_FILE

    def journal_path(self, shard_index: int = 0, shard_count: int = 1) -> Path:
        return self.folder / f"manifest.shard-{shard_index}-of-{shard_count}.jsonl"

    def journals(self) -> List[Path]:
        return sorted(self.folder.glob(_JOURNAL_GLOB))

    def all_records(self) -> Dict[str, ManifestRecord]:
        """Latest record per id over the manifest and all journals (any recipe, any status)."""
        def stream():
            yield from read_jsonl(self.manifest_path)
            for journal in self.journals():
                yield from read_jsonl(journal)
        return _latest(stream())

    def records(self, ok_only: bool = False, recipe_id: Optional[str] = "current") -> List[ManifestRecord]:
        """Records sorted by id. ``recipe_id="current"`` keeps those of recipe.json's recipe
        (all when there is no recipe.json); None keeps every recipe."""
        if recipe_id == "current":
            recipe = self.recipe()
            recipe_id = recipe.recipe_id if recipe else None
        recs = [r for r in self.all_records().values()
                if (recipe_id is None or r.recipe_id == recipe_id) and r.status != SUPERSEDED]
        if ok_only:
            recs = [r for r in recs if r.ok]
        return sorted(recs, key=lambda r: r.id)

    def append(self, record: ManifestRecord, shard_index: int = 0, shard_count: int = 1) -> None:
        """Append one record to this shard's journal, durably (one write, fsync). A failed write (a full
        disk) is one OutputWriteError naming the journal; a torn line it may leave is skipped by readers."""
        line = json.dumps(record.to_json(), sort_keys=True) + "\n"
        journal = self.journal_path(shard_index, shard_count)
        with atomic.writing(journal):
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(journal, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

    def merge(self, shard_index: Optional[int] = None, shard_count: int = 1) -> int:
        """Fold every journal into manifest.jsonl (under the folder lock); delete this shard's journal.

        Records of a recipe other than recipe.json's and retired ones (SUPERSEDED) are dropped. Returns the
        number of records.
        """
        with self._lock():
            keep = self.records()        # recipe.json's recipe, retired records dropped, sorted by id
            atomic.write_text(self.manifest_path,
                              "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in keep))
            if shard_index is not None:
                self.journal_path(shard_index, shard_count).unlink(missing_ok=True)
        return len(keep)

    @contextmanager
    def _lock(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK_FILE, "a+") as fh:
            try:
                import fcntl
            except ImportError:  # Windows: single-writer use only
                yield
                return
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # arrays
    def resolve(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.folder / path

    def load(self, record: ManifestRecord | str, mmap: bool = False, finite: Optional[bool] = None) -> np.ndarray:
        """The features of one video as (T, C, D), whatever the layout on disk. A file that cannot be read
        is a FeatureStoreError naming it and why (``readers.read_array``). ``finite`` (default: when not
        memory-mapped) refuses NaN or inf; a memory map's reader checks once when it reads it all."""
        if isinstance(record, str):
            found = self.all_records().get(record)
            if found is None:
                raise FeatureStoreError(f"{self.folder}: no video {record!r} in the manifest")
            record = found
        if not record.ok or not record.file:
            raise FeatureStoreError(f"{self.folder}: video {record.id!r} has no features ({record.error})")
        finite = not mmap if finite is None else finite
        if record.layout == "crop-files":
            crops = [read_array(self.resolve(f), mmap, finite=finite) for f in record.files or []]
            return np.stack([c.reshape(c.shape[0], -1) for c in crops], axis=1)
        array = read_array(self.resolve(record.file), mmap, finite=finite)
        if array.ndim == 2:
            return array[:, None, :]
        if record.layout == "CTD":
            return array.transpose(1, 0, 2)
        return array

    def is_complete(self, record: Optional[ManifestRecord], recipe: Recipe,
                    source: Optional[str | os.PathLike] = None) -> bool:
        """True when ``record`` is an ok result of ``recipe`` whose file exists with the right shape and,
        when the record holds the source's size and mtime and ``source`` (the video now) is given, the
        video is still that file. Records made before those were kept are judged without them."""
        if record is None or not record.ok or record.recipe_id != recipe.recipe_id or not record.file:
            return False
        if source is not None and (record.source_size is not None or record.source_mtime_ns is not None):
            try:
                st = os.stat(source)
            except OSError:
                return False
            if ((record.source_size is not None and st.st_size != record.source_size)
                    or (record.source_mtime_ns is not None and st.st_mtime_ns != record.source_mtime_ns)):
                return False
        if (record.frames is not None
                and record.T != expected_snippets(record.frames, recipe.snippet_len, recipe.stride)):
            return False
        try:
            shape = read_array(self.resolve(record.file), mmap=True).shape
        except FeatureStoreError:           # empty, truncated, gone: redo it
            return False
        return shape == (record.T, recipe.num_crops, recipe.feature_dim)


def remove_leftovers(folder: Path, file: str) -> None:
    """Remove what a killed writer of ``file`` left beside it: ``.<file>.*`` (spools, claims and the
    temp files of ``atomic``). Callers make sure no live writer owns them."""
    import glob

    for leftover in Path(folder).glob(glob.escape(f".{file}.") + "*"):
        leftover.unlink(missing_ok=True)
