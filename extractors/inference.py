"""Running a backbone: memory layout, inference mode, the recipe's precision, float32 features out."""
from __future__ import annotations

import torch
from torch import nn

from vadpipe.device import autocast
from vadpipe.errors import ConfigError

# NDHWC ("channels last 3d") made both backbones 1.5-1.7x faster on this CPU (fp32 and bf16);
# it only reorders memory, the features agree with NCDHW to float32 rounding.
MEMORY_FORMAT = torch.channels_last_3d


def endpoint_means(stages, x: torch.Tensor, names, known) -> torch.Tensor:
    """(B, sum of their channels): the space-time mean of each named endpoint, side by side in the order
    given. ``stages``: (name, module) pairs in network order, run only as deep as the deepest endpoint
    asked for; ``known``: the endpoint names an error lists."""
    wanted, means = set(names), {}
    for name, stage in stages:
        x = stage(x)
        if name in wanted:
            means[name] = x.mean(dim=(2, 3, 4))
            if len(means) == len(wanted):
                break
    missing = wanted - set(means)
    if missing:
        raise ValueError(f"unknown endpoint(s) {', '.join(sorted(missing))}; known: {', '.join(known)}")
    return torch.cat([means[name] for name in names], dim=1)


def prepare(module: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, on ``device``, in the fast memory layout; returns the module."""
    return module.to(device=device, memory_format=MEMORY_FORMAT).eval()


def embed(module: nn.Module, clips: torch.Tensor, device: torch.device, compute_dtype: str = "float32",
          logits: bool = False) -> torch.Tensor:
    """(B, 3, T, H, W) preprocessed clips -> (B, D) float32 features on the CPU (or (B, 400) logits).

    ``compute_dtype`` is the recipe's: 'bfloat16' autocasts convolutions (CUDA, or CPUs with
    native bf16); features change slightly with it, which is why the recipe records it.
    """
    forward = module.forward_logits if logits else module.forward
    with torch.inference_mode(), autocast(device, compute_dtype):
        out = forward(clips.to(device, memory_format=MEMORY_FORMAT, non_blocking=True))
    return out.float().cpu()


COMPILE_CHOICES = ("auto", "on", "off")


class CompiledForward:
    """A backbone whose ``forward`` runs through TorchInductor with the weights frozen in.

    Freezing folds batch norm into the convolutions and prepacks the oneDNN weights:
    i3d-inception on one 16x224x224 clip took 0.46 s instead of 0.84 s on the 2-core CPU
    (``python tools/bench_watch.py`` reports the effect on a stream), features within 1e-5 of
    eager. Compiling costs about 40 s per input shape, so it pays off for a long run on one
    fixed input shape (``vadpipe watch``), not for a few clips. A failed compilation (no C++
    compiler, an unsupported op) falls back to eager once, with one warning line. Other
    attributes (``forward_regions``, ``forward_logits``) stay the eager module's.
    """

    def __init__(self, module: nn.Module, warn=None):
        self.module = module
        self.warn = warn or (lambda line: None)
        self._compiled = torch.compile(module)
        self.failed: str | None = None

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        if self.failed is None:
            import torch._inductor.config as inductor_config

            try:
                # One input layout: the module's (NDHWC). The compiled graph is specialised on strides,
                # and NDHWC input ran 0.46 s a clip against 0.67 s for NCDHW (2-core CPU).
                with inductor_config.patch(freezing=True):   # constant weights: only under inference
                    return self._compiled(clips.contiguous(memory_format=MEMORY_FORMAT))
            except Exception as err:                          # noqa: BLE001 - any compiler failure
                self.failed = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                self.warn(f"warning: compiling the backbone failed ({self.failed[:200]}); running it uncompiled")
        return self.module(clips)

    def __getattr__(self, name):
        return getattr(self.module, name)


def compile_wanted(choice: str, device: torch.device, fixed_shape: bool) -> bool:
    """``--compile`` auto: on for a CPU with one fixed input shape (GPUs keep up uncompiled)."""
    if choice not in COMPILE_CHOICES:
        raise ConfigError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, not {choice!r}")
    if choice != "auto":
        return choice == "on"
    return device.type == "cpu" and fixed_shape
