"""I3D ResNet-50 (pytorchvideo ``i3d_r50``, Kinetics-400, 8x8 recipe) as a 2048-d feature extractor.

The feature is the global average over time and space of the last residual
stage (res5), i.e. the input of the classification projection. pytorchvideo's
own head pools with a fixed (4, 7, 7) window: that fails below 224 px and, for
clips longer than 8 frames, averages overlapping windows instead of the map, so
the head's pool is bypassed. ``forward_logits`` applies the projection to that
global mean (equal to pytorchvideo's logits for 8x224x224 inputs).

Weights: pytorchvideo's model-zoo checkpoint through the torch hub cache
(downloaded on first use), or a local ``.pyth``/``.pt``/``.pth`` file holding a
state dict or ``{"model_state": state_dict}``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn

from vadpipe.errors import WeightsError

from .inference import endpoint_means, prepare
from .registry import Backbone, BackboneConfig, BackboneEntry, register_backbone
from .weights import load_strict, load_torch_state_dict, require_file, seeded, sha256_file

NAME = "i3d-r50"
# names of pytorchvideo's blocks before the head, in order; the residual stages are the endpoints
# ``--layers`` can store (the stem and the pool after res2 are not)
STAGES = ("stem", "res2", "pool2", "res3", "res4", "res5")
STAGE_DIMS = (("res2", 256), ("res3", 512), ("res4", 1024), ("res5", 2048))
# pytorchvideo.models.hub.resnet.checkpoint_paths["i3d_r50"] (a test keeps the two equal)
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/I3D_8x8_R50.pyth"


class I3DR50(nn.Module):
    feature_dim = 2048

    def __init__(self, num_classes: int = 400):
        super().__init__()
        with warnings.catch_warnings():  # pytorchvideo's import-time deprecation noise
            warnings.simplefilter("ignore")
            from pytorchvideo.models.hub.resnet import i3d_r50
            net = i3d_r50(pretrained=False, model_num_class=num_classes)
        # same attribute name as pytorchvideo's Net, so its checkpoints load unchanged
        self.blocks = net.blocks

    def stages(self):
        """(name, block) of the trunk in network order (``STAGES``)."""
        return zip(STAGES, self.blocks[:-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[:-1]:
            x = block(x)
        return x.mean(dim=(2, 3, 4))

    def forward_endpoints(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Every stage's map (debugging, golden tests), plus 'features'."""
        out = {}
        for name, block in self.stages():
            x = out[name] = block(x)
        out["features"] = x.mean(dim=(2, 3, 4))
        return out

    def forward_layers(self, x: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """(B, sum of their channels): the space-time mean of each named residual stage, side by side in
        the order given; the trunk runs only as deep as the deepest of them."""
        return endpoint_means(self.stages(), x, names, [name for name, _ in STAGE_DIMS])

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[-1].proj(self.forward_features(x))

    def forward_regions(self, x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """(B, rows*cols, 2048): res5 averaged over time, pooled to a rows x cols grid."""
        from .inception_i3d import region_pool

        for block in self.blocks[:-1]:
            x = block(x)
        return region_pool(x, rows, cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def hub_checkpoint_path() -> Path:
    """Where torch.hub keeps the model-zoo file ($TORCH_HOME/hub/checkpoints/I3D_8x8_R50.pyth)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[-1]


def local_default_weights() -> Optional[Path]:
    path = hub_checkpoint_path()
    return path if path.is_file() else None


def fetch_default_weights() -> Path:
    """The hub-cached checkpoint, downloaded when missing; offline this is a one-line WeightsError."""
    path = hub_checkpoint_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(WEIGHTS_URL, str(path), progress=True)  # writes a temp file, then renames
    except Exception as exc:  # URLError, HTTPError, timeouts, disk errors
        cause = str(getattr(exc, "reason", "") or exc).strip() or type(exc).__name__
        raise WeightsError(f"{NAME}: default weights are not in {path} and downloading {WEIGHTS_URL} failed "
                           f"({cause}); pass --weights FILE with a local copy of I3D_8x8_R50.pyth") from None
    return path


def _create(weights: Union[None, str, Path], device: torch.device) -> Backbone:
    if weights == "random":
        with seeded(0):
            model = I3DR50()
        return Backbone(prepare(model, device), CONFIG, None, None)
    path = fetch_default_weights() if weights is None else require_file(weights, NAME)
    model = I3DR50()
    load_strict(model, load_torch_state_dict(path), path)
    return Backbone(prepare(model, device), CONFIG, sha256_file(path), path)


CONFIG = BackboneConfig(
    name=NAME, feature_dim=2048, value_range=(0.0, 1.0), mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225),
    crop_size=224, resize_short_side=256, min_frames=8, snippet_len=16,
    weights_source=f"pytorchvideo model zoo via the torch hub cache: {WEIGHTS_URL}",
    description="pytorchvideo i3d_r50 (Kinetics-400, 8x8); global mean of res5",
    layers=STAGE_DIMS,
    # frames/s at 1/2/4/8 clips a pass, 2 threads (the 2-core reference CPU): fp32 32/24/22/21, bf16 58/43/39/36
    cpu_passes=(("float32", 1), ("bfloat16", 1)),
)

ENTRY = register_backbone(BackboneEntry(config=CONFIG, factory=_create, default_weights=local_default_weights))
