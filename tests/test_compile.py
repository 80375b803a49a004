"""The compiled backbone forward (``--compile``): same features as eager, and a clean fallback."""
import shutil

import pytest
import torch
from torch import nn

from vadpipe.errors import ConfigError
from vadpipe.extractors.inference import CompiledForward, compile_wanted


class TinyBackbone(nn.Module):
    """Conv3d + batch norm + pooling: what freezing folds, at a size that compiles in seconds."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4))

    def forward_regions(self, x, rows, cols):
        return self.forward(x)[:, None].expand(-1, rows * cols, -1)


HAS_CXX = any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.mark.skipif(not HAS_CXX, reason="TorchInductor needs a C++ compiler (c++, g++ or clang++) on PATH")
def test_compiled_forward_matches_eager_and_keeps_other_methods(one_torch_thread):
    module = TinyBackbone().eval()
    clips = torch.randn(2, 3, 4, 16, 16)
    compiled = CompiledForward(module)
    with torch.inference_mode():
        eager = module(clips)
        fast = compiled(clips)
        again = compiled(clips + 1)
    assert compiled.failed is None
    assert torch.allclose(fast, eager, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        assert torch.allclose(again, module(clips + 1), atol=1e-5, rtol=1e-5)
    assert compiled.forward_regions(clips, 1, 2).shape == (2, 2, 8)     # eager attribute passes through


def test_a_failed_compilation_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(module):
        def run(*args):
            raise RuntimeError("no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    warnings = []
    module = TinyBackbone().eval()
    compiled = CompiledForward(module, warnings.append)
    clips = torch.randn(1, 3, 4, 8, 8)
    with torch.inference_mode():
        assert torch.equal(compiled(clips), module(clips))
        assert torch.equal(compiled(clips), module(clips))
    assert len(warnings) == 1 and "no C++ compiler found" in warnings[0] and "long details" not in warnings[0]


def test_compile_auto_is_for_a_fixed_shape_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_wanted("auto", cpu, fixed_shape=True)
    assert not compile_wanted("auto", cpu, fixed_shape=False)
    assert not compile_wanted("auto", cuda, fixed_shape=True)
    assert compile_wanted("on", cuda, fixed_shape=False) and not compile_wanted("off", cpu, fixed_shape=True)
    with pytest.raises(ConfigError, match="--compile"):
        compile_wanted("fast", cpu, fixed_shape=True)
