"""The single-clip encoder: decoded snippets -> backbone features, exactly as a recipe says.

``ClipFeatures`` is the in-memory path for ONE clip (used by ``score``): the
same decode, resize, crop, normalisation and backbone call as the folder
driver (``vadpipe.extract``), without the store, streamed batch by batch with
decoding in a thread ahead of the backbone; ``encode_clip`` / ``extract_video``
give the whole clip's features at once. ``SnippetEncoder`` is the
batched backbone call both share; ``check_backbone`` the one backbone-vs-recipe
check. ``build_recipe`` makes a run's recipe from a preset and the
command-line overrides; ``scoring_recipe`` and ``backbone_for_recipe`` give
what a checkpoint's recipe needs to encode new clips.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import ConfigError, RecipeMismatchError, VideoDecodeError, WeightsError
from .recipe import Recipe
from .video import VideoInfo, VideoReader, check_resize


def check_backbone(backbone, recipe: Recipe) -> None:
    """The backbone must be the one the recipe names, with the same weights and feature size."""
    name = backbone.config.name
    dim = sum(d for _, d in recipe.layers) if recipe.layers else backbone.config.feature_dim
    if name != recipe.backbone or backbone.weights_sha256 != recipe.weights_sha256 or dim != recipe.feature_dim:
        raise RecipeMismatchError(
            f"the recipe asks for {recipe.backbone} (weights {recipe.weights_sha256 or 'random'}, "
            f"{recipe.feature_dim}-d) but the backbone is {name} (weights {backbone.weights_sha256 or 'random'}, "
            f"{dim}-d)")


# Extraction streams every frame once, in order: PyAV's sequential decode fits that best. Measured
# here on 10-minute 320x240 clips, it decoded ~2x faster than decord and its process stayed ~600 MB
# smaller; the RGB frames of both were identical (no decoder-side resize is used).
DECODER = "pyav"


def reader_for(path: str, recipe: Recipe) -> VideoReader:
    """A native-resolution reader at the recipe's frame rate (the resize happens in ``to_model_size``,
    so it is the recipe's documented resize whatever the decoder)."""
    fps = None if str(recipe.fps) == "native" else float(recipe.fps)
    reader = VideoReader(path, fps=fps, backend=DECODER)
    # the resize comes later, on whole snippets: a sliver of a frame is refused now, before decoding
    check_resize(reader.path, reader.info.width, reader.info.height, recipe.resize_short_side)
    return reader


def to_model_size(snippets: Sequence[np.ndarray], recipe: Recipe) -> torch.Tensor:
    """uint8 (L, H, W, 3) snippets → one uint8 (N, L, h, w, 3) tensor, short side resized per the recipe."""
    from .extractors.transforms import resize_short_side

    frames = torch.from_numpy(np.stack(snippets))                     # (N, L, H, W, 3)
    resized = resize_short_side(frames.permute(0, 1, 4, 2, 3), recipe.resize_short_side)
    return resized.permute(0, 1, 3, 4, 2).contiguous()


AUTO = "auto"          # clips_per_forward: tune the CPU pass size on the first batches' timing


def parse_clips_per_forward(value) -> Optional[int | str]:
    """``--clips-per-forward`` as :class:`ForwardSizer` takes it: None (the default), ``"auto"`` or an int >= 1."""
    if value is None or value == AUTO:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"clips per forward pass: a whole number >= 1 or {AUTO!r}, got {value!r}")
    if value < 1:
        raise ConfigError(f"clips per forward pass must be >= 1, got {value}")
    return value


class ForwardSizer:
    """How many clips go through the backbone per forward pass.

    On CUDA: the whole batch. On CPU: the backbone's own size for the recipe's compute dtype
    (``BackboneConfig.cpu_passes``, the fastest measured on the reference CPU), so a clip's features are the
    same bits however loaded the machine is and whichever clips share its pass (the pass size moves them in
    float32's last digits: 2e-6 for Inception I3D between 1 and 2 clips a pass). ``fixed``: that many clips
    a pass on any device. ``fixed`` ``"auto"``: on CPU the first batches try each candidate (their features
    are kept: nothing is wasted), after one warm-up pass, and the fastest per clip is used from then on;
    faster where the reference size is not the machine's best, but the features then depend on timing.
    The frames/s behind each backbone's sizes are beside them (extractors/inception_i3d.py, i3d_r50.py).
    """

    CANDIDATES = (1, 2, 4, 8)

    def __init__(self, device: torch.device, fixed: Optional[int | str] = None, cpu_size: int = 1):
        fixed = parse_clips_per_forward(fixed)
        on_cpu = device.type != "cuda"
        self.tuning = fixed == AUTO and on_cpu
        if isinstance(fixed, int):
            self.fixed: Optional[int] = fixed
        else:                             # None: the backbone's size on CPU; whole batches on CUDA and to tune
            self.fixed = cpu_size if fixed is None and on_cpu else None
        self.warm = False
        self.seconds_per_clip: Dict[int, float] = {}

    def size(self, clips: int) -> Optional[int]:
        """Clips per pass for a batch of ``clips`` (None: all at once)."""
        if not self.tuning:
            return self.fixed
        untried = [c for c in self.CANDIDATES if c not in self.seconds_per_clip and c <= clips]
        return untried[0] if untried else self.chosen  # the very first pass is a warm-up (see record)

    def record(self, size: Optional[int], seconds: float, clips: int) -> None:
        if not self.tuning or size is None or size in self.seconds_per_clip:
            return
        if not self.warm:  # the first pass also builds the CPU kernels: not a fair time
            self.warm = True
            return
        self.seconds_per_clip[size] = seconds / clips

    @property
    def chosen(self) -> Optional[int]:
        """The pass size in use (None: whole batches)."""
        if not self.tuning or not self.seconds_per_clip:
            return self.fixed
        return min(self.seconds_per_clip, key=self.seconds_per_clip.get)


class SnippetEncoder:
    """uint8 snippets (N, L, h, w, 3) → features (N, C, D) in the recipe's storage dtype.

    Crop and normalisation run on ``device``; the forward pass runs under
    ``torch.inference_mode`` with autocast for the recipe's compute dtype, in
    passes of ``ForwardSizer`` clips (all of them on CUDA, the backbone's own size on CPU; groups of different
    frame sizes from several videos are concatenated into one pass).
    ``compiled``: the backbone's forward through ``extractors.inference.CompiledForward``
    (failures reported through ``warn``, then eager).
    """

    def __init__(self, backbone, recipe: Recipe, device: torch.device | str,
                 clips_per_forward: Optional[int | str] = None, compiled: bool = False,
                 warn: Optional[Callable[[str], None]] = None):
        check_backbone(backbone, recipe)
        if compiled:
            from .extractors.inference import CompiledForward

            self.module = CompiledForward(backbone.module, warn)
        else:
            self.module = backbone.module
        self.recipe = recipe
        self.device = torch.device(device)
        self.storage = np.dtype(recipe.storage_dtype)
        self.sizer = ForwardSizer(self.device, clips_per_forward,
                                  backbone.config.cpu_clips_per_forward(recipe.compute_dtype))

    def __call__(self, groups: Sequence[torch.Tensor]) -> np.ndarray:
        from .device import autocast
        from .extractors.transforms import preprocess

        crops = self.recipe.input_crops
        grid = self.recipe.region_grid
        snippets = sum(g.shape[0] for g in groups)
        size = self.sizer.size(snippets * crops)
        outputs: List[torch.Tensor] = []
        started = time.perf_counter()

        def forward(clips: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.recipe.compute_dtype):
                if grid:                                    # (B, R*C, D): one vector per region
                    return self.module.forward_regions(clips, *grid).float()
                if self.recipe.layers:                      # (B, D): the endpoints' means side by side
                    return self.module.forward_layers(clips, [name for name, _ in self.recipe.layers]).float()
                return self.module(clips).float()

        with torch.inference_mode():
            if size is None:
                inputs = [preprocess(g.to(self.device, non_blocking=True), self.recipe) for g in groups]
                for same in _runs_of_equal_shape(inputs):   # whole-frame recipes: one pass per frame size
                    outputs.append(forward(same[0] if len(same) == 1 else torch.cat(same)))
            else:
                # Every pass gets exactly ``size`` clips (across video boundaries; the last one padded
                # with copies of its last clip, whose outputs are dropped): one input shape, so the CPU
                # kernels are built once, and no odd-sized pass hits a slow convolution path.
                step = max(1, size // crops)  # snippets preprocessed at a time: memory stays small
                pending: List[torch.Tensor] = []

                def flush_padded() -> None:
                    clips = torch.cat(pending) if len(pending) > 1 else pending[0]
                    real = len(clips)
                    padded = torch.cat([clips, clips[-1:].expand(size - real, *clips.shape[1:])])
                    outputs.append(forward(padded)[:real])
                    pending.clear()

                for group in groups:
                    for first in range(0, group.shape[0], step):
                        clips = preprocess(group[first:first + step].to(self.device), self.recipe)
                        if pending and pending[0].shape[1:] != clips.shape[1:]:
                            flush_padded()          # another frame size (crop "none"): never mixed in a pass
                        pending.append(clips)
                        while sum(len(p) for p in pending) >= size:
                            clips = torch.cat(pending) if len(pending) > 1 else pending[0]
                            outputs.append(forward(clips[:size]))
                            pending[:] = [clips[size:]] if len(clips) > size else []
                if pending:
                    flush_padded()
            out = torch.cat(outputs).reshape(snippets, self.recipe.num_crops, -1).cpu().numpy()
        self.sizer.record(size, time.perf_counter() - started, snippets * crops)
        return out.astype(self.storage, copy=False)


def _runs_of_equal_shape(inputs: Sequence[torch.Tensor]) -> List[List[torch.Tensor]]:
    """Consecutive inputs grouped while their clip shape stays the same (order kept)."""
    runs: List[List[torch.Tensor]] = []
    for x in inputs:
        if runs and runs[-1][0].shape[1:] == x.shape[1:]:
            runs[-1].append(x)
        else:
            runs.append([x])
    return runs


def _load_malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim, or a no-op. Batches allocate and free many ~20 MB blocks; glibc keeps
    freed heap memory (in one arena per thread), so without trimming the main process grew by ~0.5 GB
    over a 10-minute clip (measured in extract; 0.2 GB over 2 minutes with score's decode thread);
    trimming after each batch keeps it flat."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


release_freed_memory = _load_malloc_trim()


PREFETCH_BATCHES = 2   # decoded batches waiting for the backbone: enough to hide decoding, memory flat


def snippet_batches(reader: VideoReader, recipe: Recipe, batch_size: int) -> Iterator[torch.Tensor]:
    """The clip's snippets as uint8 model-size batches (N, L, h, w, 3) of ``batch_size`` (the last one shorter)."""
    from .extractors.transforms import light_snippets

    pending: List[np.ndarray] = []
    for snippet in light_snippets(reader.snippets(recipe.snippet_len, recipe.stride), recipe):
        pending.append(snippet.frames)
        if len(pending) == batch_size:
            yield to_model_size(pending, recipe)
            pending = []
    if pending:
        yield to_model_size(pending, recipe)


class ClipFeatures:
    """Features of ONE video, batch by batch, exactly as ``vadpipe extract`` makes them with ``recipe``.

    Iterating gives (n, C, D) arrays in snippet order (``snippet_features``: one
    (C, D) array per snippet), so a caller that needs only a window of them
    keeps memory flat in clip length. Decoding runs in a thread ``prefetch``
    batches ahead of the backbone (0: one after the other); each batch reaches
    the encoder whole either way, so the passes, and the features, are the same.
    Iterate once. The reader is opened here (an unreadable file raises now); once iterated,
    ``reader.info`` and ``reader.frame_times`` describe the clip, and
    ``seconds`` is the time spent decoding (waiting for it) and encoding.
    With a decode thread, ``stall_s`` (> 0) bounds the wait for the next batch: a decoder
    that hangs is a VideoDecodeError, not a stop of the whole run. ``isolate`` decodes in a
    child process instead (``decode_process``): a decoder that crashes is a VideoDecodeError
    too, and one that hangs is terminated; the file is opened there, on the first batch.
    """

    def __init__(self, path: str | os.PathLike, recipe: Recipe, backbone, device: torch.device | str = "cpu",
                 batch_size: int = 16, progress: Optional[Callable[[int], None]] = None,
                 clips_per_forward: Optional[int | str] = None, prefetch: int = PREFETCH_BATCHES,
                 stall_s: float = 0.0, isolate: bool = False):
        self.encoder = SnippetEncoder(backbone, recipe, device, clips_per_forward)
        self.recipe = recipe
        self.path = str(path)
        self.isolate = isolate
        # isolated, the child opens the file (an open decoder does not survive a fork) and the reader's
        # info and frame times come back with the last batch
        self.reader = None if isolate else reader_for(self.path, recipe)
        self.batch_size = batch_size
        self.progress = progress
        self.prefetch = prefetch
        self.stall_s = stall_s
        self.seconds = 0.0

    def _batches(self) -> Iterable[torch.Tensor]:
        if self.isolate:
            from .decode_process import DecodeProcess

            return DecodeProcess(self.path, self.recipe, self.batch_size, self.prefetch, self.stall_s)
        batches = snippet_batches(self.reader, self.recipe, self.batch_size)
        if not self.prefetch:
            return batches
        from .prefetch import prefetched

        return prefetched(batches, self.prefetch, name="decode", stall_s=self.stall_s or None)

    def __iter__(self) -> Iterator[np.ndarray]:
        from .decode_workers import stall_reason
        from .prefetch import Stalled

        source = self._batches()
        batches = iter(source)
        try:
            while True:
                started = time.perf_counter()
                try:
                    batch = next(batches, None)
                except Stalled:
                    raise VideoDecodeError(f"{self.path}: {stall_reason(self.stall_s)}") from None
                if batch is None:
                    if self.isolate:
                        self.reader = source.clip
                    return
                features = self.encoder([batch])
                if self.progress is not None:
                    self.progress(len(batch))
                batch = None                   # not held while the caller works on the features
                release_freed_memory()
                self.seconds += time.perf_counter() - started
                yield features
        finally:
            getattr(batches, "close", lambda: None)()   # an early stop ends the decoder too

    def snippet_features(self) -> Iterator[np.ndarray]:
        for features in self:
            yield from features

    def all(self) -> np.ndarray:
        """(T, C, D): every snippet's features at once."""
        return np.concatenate(list(self))


def extract_video(path: str | os.PathLike, recipe: Recipe, backbone, device: torch.device | str = "cpu",
                  batch_size: int = 16, progress: Optional[Callable[[int], None]] = None,
                  clips_per_forward: Optional[int | str] = None) -> Tuple[np.ndarray, VideoInfo]:
    """``encode_clip`` returning the decoder's VideoInfo instead of the reader."""
    features, reader = encode_clip(path, recipe, backbone, device, batch_size, progress, clips_per_forward)
    return features, reader.info


def encode_clip(path: str | os.PathLike, recipe: Recipe, backbone, device: torch.device | str = "cpu",
                batch_size: int = 16, progress: Optional[Callable[[int], None]] = None,
                clips_per_forward: Optional[int | str] = None,
                prefetch: int = PREFETCH_BATCHES) -> Tuple[np.ndarray, VideoReader]:
    """Features of ONE video, in memory, exactly as ``vadpipe extract`` makes them with ``recipe``.

    Returns ``(features, reader)``: features (T, C, D) in ``recipe.storage_dtype``
    with T = ceil(frames / snippet_len) (the tail padded by repeating the last
    frame), and the exhausted reader: ``reader.info`` (``frames`` is the decoded
    count at the recipe's fps; damage, rotation, vfr) and ``reader.frame_times``
    (each frame's presentation time). ``progress(n)`` is called with the number of snippets
    of each finished batch; ``clips_per_forward`` as in ``SnippetEncoder``; ``prefetch``
    as in ``ClipFeatures``. Raises VideoDecodeError for unreadable videos and
    RecipeMismatchError when ``backbone`` is not the recipe's.
    """
    clip = ClipFeatures(path, recipe, backbone, device, batch_size, progress, clips_per_forward, prefetch)
    return clip.all(), clip.reader


def build_recipe(backbone, preset: str, fps: str = "native", storage_dtype: str = "float32",
                 compute_dtype: str = "auto", device: torch.device | str = "cpu",
                 short_side: Optional[int] = None, regions: str = "", layers: str = "",
                 stride: Optional[int] = None, mirror: bool = False, light: str = "") -> Recipe:
    """The recipe of a run: the preset's choices for ``backbone`` plus the command-line overrides
    (``short_side`` replaces the preset's resize; it must stay >= its crop; ``stride`` starts a snippet
    every that many frames instead of every snippet length, overlapping when shorter; ``regions`` "RxC" stores a
    grid of region vectors per snippet instead of one; ``layers`` "A,B" the means of those endpoints
    side by side instead of the backbone's own features; ``mirror`` adds each whole frame's mirror image
    as a second view, crop mode ``mirror``, for whole-frame presets only; ``light`` "mean" brings each
    snippet to one mean level before the backbone, extractors/transforms.py).

    ``compute_dtype="auto"`` is bfloat16 autocast on CUDA and float32 elsewhere; the choice is
    recorded in the recipe (it changes the features slightly), so features made on a GPU with
    bf16 are refused by a CPU float32 run and vice versa: pass the same dtype on both.
    """
    from .extractors.presets import make_recipe

    if storage_dtype not in ("float32", "float16"):
        raise ConfigError(f"--dtype {storage_dtype!r}: expected float32 or float16")
    if compute_dtype == "auto":
        compute_dtype = "bfloat16" if torch.device(device).type == "cuda" else "float32"
    if str(fps) != "native":
        try:
            if float(fps) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--fps {fps!r}: expected 'native' or a positive number") from None
        fps = f"{float(fps):g}"
    sizes = {} if short_side is None else {"resize_short_side": int(short_side)}
    if stride is not None:
        sizes["stride"] = int(stride)
    if regions:
        from .recipe import parse_regions

        try:
            rows, cols = parse_regions(regions)
        except ValueError as exc:
            raise ConfigError(f"--regions: {exc}") from None
        sizes["regions"] = f"{rows}x{cols}"
    if layers:
        sizes.update(layer_fields(backbone.config, layers, regions))
    if mirror:
        sizes["crop"] = mirror_crop(preset)
    if light:
        sizes["light"] = light
    return make_recipe(backbone.config.name, preset, weights_sha256=backbone.weights_sha256, fps=str(fps),
                       storage_dtype=storage_dtype, compute_dtype=compute_dtype, **sizes)


def mirror_crop(preset: str) -> str:
    """The crop mode of ``--mirror`` on ``preset``: whole frames only (ten crops hold mirrored views already;
    one centre crop and its mirror would be a recipe of its own)."""
    from .extractors.presets import PRESETS

    crop = PRESETS.get(preset, {}).get("crop")
    if crop != "none":
        raise ConfigError(f"--mirror: preset {preset!r} crops ({crop}); it mirrors whole frames only "
                          f"(preset frame){'; ten crops include mirrored views already' if crop == 'ten' else ''}")
    return "mirror"


def layer_fields(config, layers: str, regions: str = "") -> dict:
    """Recipe fields for ``--layers A,B``: each endpoint with its dim, and D their sum."""
    names = [n.strip() for n in layers.split(",") if n.strip()]
    offered = dict(config.layers)
    if not offered:
        raise ConfigError(f"--layers: {config.name} stores only its own features; backbones with layers: "
                          f"{', '.join(_backbones_with_layers()) or 'none'}")
    unknown = [n for n in names if n not in offered]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"--layers {layers!r}: distinct endpoints of {config.name} expected, "
                          f"from {', '.join(offered)}")
    if regions:
        raise ConfigError("--layers and --regions cannot be combined (regions pool the last map only)")
    return {"layers": tuple((n, offered[n]) for n in names), "feature_dim": sum(offered[n] for n in names)}


def _backbones_with_layers():
    from .extractors import list_backbones

    return [name for name, entry in list_backbones().items() if entry.config.layers]


# The one view of a multi-view crop mode that a one-view recipe extracts alike: {mode: (one-view mode, index)}.
# The centre crop of ten is the very same pixels as a ``center`` recipe (same short side, same box), and the
# first view of ``mirror`` the whole frame of ``none``.
SINGLE_VIEW = {"ten": ("center", 4), "mirror": ("none", 0)}


def scoring_recipe(trained: Recipe, crops: Optional[int]) -> Recipe:
    """The recipe clips are extracted with: the checkpoint's, or with ``crops=1`` its single view
    (``SINGLE_VIEW``): a ten-crop model scores one crop ten times faster, a mirror model the frame alone
    twice as fast. The other way round (ten crops for a one-crop model) would feed it views it was never
    trained on: refused.
    """
    if crops is None or crops == trained.num_crops:
        return trained
    if crops == 1 and trained.crop in SINGLE_VIEW:
        return trained.replace(crop=SINGLE_VIEW[trained.crop][0])
    if crops not in (1, 10):
        raise ConfigError(f"--crops {crops}: expected 1 or 10")
    raise ConfigError(f"--crops {crops}: the checkpoint was trained on {trained.num_crops}-crop features "
                      f"({trained.crop}); only its own crops or the single view of ten or mirror can be scored")


def stored_view(found: Recipe, wanted: Recipe) -> Optional[slice]:
    """Which stored vectors of features made with ``found`` (ten crops or a mirror) are ``wanted``, a
    single-view scoring recipe (``scoring_recipe(trained, 1)``): that view's (its regions, view after view,
    as the encoder stores them), or None when it is none of them (the recipes are then compared as they
    are). It says nothing of the other fields: compare ``found.replace(crop=wanted.crop)`` with ``wanted``
    as usual."""
    mode, view = SINGLE_VIEW.get(found.crop, (None, None))
    if mode is None or wanted.crop != mode:
        return None
    per_view = found.num_crops // found.input_crops
    return slice(view * per_view, (view + 1) * per_view)


def backbone_for_recipe(recipe: Recipe, weights: Optional[str], device):
    """The recipe's backbone with the recipe's weights, or a WeightsError saying which file is expected."""
    from .extractors import create_backbone

    expected = recipe.weights_sha256
    if dict(recipe.extra).get("origin") == "imported" and expected is None:
        raise RecipeMismatchError(f"the checkpoint was trained on features imported without a recipe (recipe "
                                  f"{recipe.recipe_id}: their backbone weights are unknown), so it cannot extract "
                                  f"video; score such features, or train on features `vadpipe extract` made")
    if expected is None:                       # random-init recipe (tests only): seeded, deterministic
        return create_backbone(recipe.backbone, weights="random", device=device)
    hint = f"the checkpoint expects weights {expected[:12]}\u2026 for {recipe.backbone}"
    try:
        backbone = create_backbone(recipe.backbone, weights=weights, device=device)
    except WeightsError as exc:
        raise WeightsError(f"{hint}; {exc}") from None
    try:
        check_backbone(backbone, recipe)
    except RecipeMismatchError:
        found = backbone.weights_path or "the default weights"
        raise WeightsError(f"{hint}, but {found} has sha256 {str(backbone.weights_sha256)[:12]}\u2026; "
                           f"pass --weights FILE with the weights the features were made with") from None
    return backbone

