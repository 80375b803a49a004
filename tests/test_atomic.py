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
