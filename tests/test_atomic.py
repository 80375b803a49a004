import os
import stat

import numpy as np
import pytest

from vadpipe import atomic


def test_atomic_write_leaves_whole_file_or_old_one(tmp_path):
    target = tmp_path / "out.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]   # no temporary left behind


def test_npy_and_mode_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.save_npy(tmp_path / "x.npy", np.arange(3, dtype=np.float32))
    finally:
        os.umask(old)
    assert np.array_equal(np.load(tmp_path / "x.npy"), np.arange(3, dtype=np.float32))
    assert stat.S_IMODE((tmp_path / "x.npy").stat().st_mode) == 0o644


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    """A write that runs out of space (numpy's ENOSPC, or torch's zip writer that reports a short write as a
    RuntimeError) is one OutputWriteError, a VadpipeError the CLI prints as one line: it names the file,
    the cause and the space left, the old file stays whole and no temporary is left; a RuntimeError of
    torch.save that is not about writing still surfaces as itself."""
    import errno

    import torch

    from vadpipe.errors import OutputWriteError, VadpipeError

    target = tmp_path / "last.pt"
    atomic.torch_save(target, {"w": torch.zeros(2)})
    before = target.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OutputWriteError, match=r"x\.npy: cannot write it \(No space left on device; \d+ MB free"):
        atomic.save_npy(tmp_path / "x.npy", np.zeros(3))

    def short_write(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 111541824 vs 111541716")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(VadpipeError, match=r"last\.pt: cannot write it \(torch.save: \[enforce fail.*MB free"):
        atomic.torch_save(target, {"w": torch.ones(2)})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]

    def not_io(*args, **kwargs):
        raise RuntimeError("a tensor on a meta device has no data")

    monkeypatch.setattr(torch, "save", not_io)
    with pytest.raises(RuntimeError, match="meta device"):
        atomic.torch_save(target, {})


def test_a_name_near_the_255_byte_limit_is_written(tmp_path):
    """The temporary name adds some 17 bytes: a target of 250 bytes (not ASCII) still goes through."""
    target = tmp_path / ("☃" * 82 + ".txt")                   # 250 bytes
    atomic.write_text(target, "ok")
    assert target.read_text() == "ok" and [p.name for p in tmp_path.iterdir()] == [target.name]
