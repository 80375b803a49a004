"""`vadpipe extract` on awkward inputs (review s61): clips that change size, a full disk, replaced sources,
a crashing decoder beside healthy ones, long and odd names, ids that collide.

Inception I3D with random weights on the ``tiny`` preset, 64x48 generated clips, on the CPU.
"""
from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import make_video
from test_extract import backbone, recipe  # noqa: F401  (fixtures: the extract tests' random backbone, tiny recipe)
from vadpipe.errors import VideoDecodeError
from vadpipe.extract import ExtractOptions, run_extract
from vadpipe.video import VideoReader


def run(root, out, recipe, backbone, **options):
    options.setdefault("progress", False)
    options.setdefault("workers", 0)
    options.setdefault("batch_size", 4)
    options.setdefault("clips_per_forward", options["batch_size"])
    log = options.pop("log", lambda msg: None)
    return run_extract(root, out, recipe, backbone, "cpu", ExtractOptions(**options), log=log)


def manifest(out) -> dict:
    lines = (Path(out) / "manifest.jsonl").read_text().splitlines()
    return {rec["id"]: rec for rec in map(json.loads, lines)}


def leftovers(out) -> list:
    return sorted(p.name for p in Path(out).iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


# --- #2: the frame size changes mid-stream -------------------------------------------------------

def size_switching_clip(tmp_path: Path, name: str = "switch.ts") -> Path:
    """Two MPEG-TS segments joined, 24 frames of 64x48 then 24 of 48x32: plays as one clip."""
    first = make_video(tmp_path / "first.ts", 24)
    second = make_video(tmp_path / "second.ts", 24, width=48, height=32, seed=1)
    path = tmp_path / "v" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def test_a_clip_whose_frame_size_changes_mid_stream_is_decoded_at_one_size_and_extracts(tmp_path, backbone, recipe):
    clip = size_switching_clip(tmp_path)
    reader = VideoReader(clip, backend="pyav")
    frames = list(reader.frames())
    assert len(frames) == 48 and {f.shape for f in frames} == {(48, 64, 3)}
    assert any("frame size changed 64x48 -> 48x32 at frame 24" in note for note in reader.info.notes)
    make_video(clip.parent / "plain.mp4", 20)
    summary = run(clip.parent, tmp_path / "f", recipe, backbone)
    recs = manifest(tmp_path / "f")
    assert (summary.ok, summary.failed) == (2, 0)
    assert (recs["switch"]["status"], recs["switch"]["frames"], recs["switch"]["T"]) == ("ok", 48, 3)
    assert np.load(tmp_path / "f" / recs["switch"]["file"]).shape == (3, 1, 1024)


def test_a_constant_size_clip_decodes_to_the_same_bits_as_before(tmp_path):
    """Holding one size passes the frame's own size to swscale: the very conversion of a plain
    ``to_ndarray(format="rgb24")``, so ordinary clips (and their features) are bit-identical."""
    import av

    for i, (w, h) in enumerate([(64, 48), (96, 72), (34, 18)]):
        clip = make_video(tmp_path / f"c{i}.mp4", 20, width=w, height=h, seed=i)
        with av.open(str(clip)) as src:
            plain = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        ours = list(VideoReader(clip, backend="pyav").frames())
        assert len(ours) == len(plain) and all(np.array_equal(a, b) for a, b in zip(ours, plain))


def test_a_frame_source_that_changes_size_is_one_line_naming_the_file():
    class Mixed(VideoReader):
        def __init__(self):
            self.path, self._times = "cam/mixed.mp4", None

        def frames(self):
            yield from (np.zeros((48, 64, 3), np.uint8), np.zeros((32, 48, 3), np.uint8))

    with pytest.raises(VideoDecodeError, match=r"^cam/mixed.mp4: frame size changed 64x48 -> 48x32 at frame 1$"):
        list(Mixed().snippets(16, 16))


# --- #3: a full disk -----------------------------------------------------------------------------

class _FullDisk:
    """A file whose writes (``when="write"``) or whose closing flush (``when="close"``) fail as on a full disk."""

    def __init__(self, fh, when: str):
        self.fh, self.when = fh, when

    def write(self, data):
        if self.when == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.fh.write(data)

    def close(self):
        self.fh.close()
        if self.when == "close":
            raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self.fh, name)


@pytest.mark.parametrize("where", ["spool write", "spool close", "final file"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_spool_or_claim(tmp_path, backbone, recipe,
                                                                               monkeypatch, where):
    from vadpipe import spool
    from vadpipe.errors import OutputWriteError

    root = tmp_path / "v"
    make_video(root / "a.mp4", 40)
    make_video(root / "b.mp4", 20)
    out = tmp_path / "f"
    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        if "w" not in mode or (where == "final file") != (".tmp" in Path(path).name):
            return fh
        return _FullDisk(fh, "close" if where == "spool close" else "write")

    monkeypatch.setattr(spool, "open", full_open, raising=False)
    with pytest.raises(OutputWriteError) as caught:
        run(root, out, recipe, backbone)
    message = str(caught.value)
    assert re.fullmatch(re.escape(str(out / "a.npy"))
                        + r": cannot write it \(No space left on device; \d+ MB free there\)", message), message
    assert leftovers(out) == [] and not (out / "a.npy").exists()
    monkeypatch.undo()
    summary = run(root, out, recipe, backbone)      # the space is back: nothing stale in the way
    assert (summary.ok, summary.failed) == (2, 0) and leftovers(out) == []


def test_a_full_disk_on_the_command_line_is_one_error_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from vadpipe import spool
    from vadpipe.cli import main

    make_video(tmp_path / "v" / "a.mp4", 20)
    out = tmp_path / "f"
    real_open = open
    monkeypatch.setattr(spool, "open", lambda path, mode="r", *a, **k: _FullDisk(real_open(path, mode, *a, **k),
                                                                                   "close" if "w" in mode else ""),
                        raising=False)
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "-o", str(out), "--backbone", "i3d-inception",
                                       "--weights", "random", "--preset", "tiny", "--workers", "0", "--threads", "1",
                                       "--batch-size", "4", "--clips-per-forward", "4", "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if f"{out / 'a.npy'}: cannot write it (No space left on device" in line]
    assert len(errors) == 1 and leftovers(out) == []


def test_journal_and_claim_write_failures_name_their_file(tmp_path, monkeypatch):
    from vadpipe import claims
    from vadpipe.errors import OutputWriteError
    from vadpipe.features import FeatureStore, ManifestRecord

    store = FeatureStore(tmp_path / "f")
    store.journal_path().mkdir(parents=True)          # cannot be opened for appending
    with pytest.raises(OutputWriteError, match=re.escape(f"{store.journal_path()}: cannot write it")):
        store.append(ManifestRecord(id="a", path="a.mp4", label=None, cls=None))

    def no_space(self, *args, **kwargs):
        self.write_bytes(b"1")                          # a torn start, as a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(claims.Path, "write_text", no_space)
    with pytest.raises(OutputWriteError, match=re.escape(f"{tmp_path / 'f' / '.a.npy.claim'}: cannot write it "
                                                         "(No space left on device")):
        claims.try_claim(tmp_path / "f", "a.npy", claims.Owner.me())
    assert not list((tmp_path / "f").glob(".a.npy.claim*"))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_finished_spool_is_the_file_np_save_writes(tmp_path, dtype):
    from vadpipe.spool import FeatureSpool

    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((k, 2, 8)).astype(dtype) for k in (3, 1, 4)]
    spool = FeatureSpool(tmp_path / "a.npy", np.dtype(dtype), 2, 8)
    for block in blocks:
        spool.append(block)
    spool.finish()
    np.save(tmp_path / "ref.npy", np.concatenate(blocks))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "ref.npy"]


# --- #5: a source replaced between runs ----------------------------------------------------------

def test_a_replaced_source_is_redone_on_resume_and_old_records_resume_as_before(tmp_path, backbone, recipe):
    root, out = tmp_path / "v", tmp_path / "f"
    make_video(root / "v0.mp4", 48)
    make_video(root / "v1.mp4", 20)
    (root / "bad.mp4").write_bytes(b"not a video")
    run(root, out, recipe, backbone)
    recs = manifest(out)
    st = os.stat(root / "v0.mp4")
    assert (recs["v0"]["source_size"], recs["v0"]["source_mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert "source_size" not in recs["bad"] and "source_mtime_ns" not in recs["bad"]    # absent, never null
    assert run(root, out, recipe, backbone).skipped == 3 - 1        # bad.mp4 is retried, the others resume

    make_video(root / "v0.mp4", 100, seed=5)                        # replaced: another size and mtime
    summary = run(root, out, recipe, backbone)
    recs = manifest(out)
    assert (summary.ok, summary.skipped) == (1, 1)
    assert (recs["v0"]["frames"], recs["v0"]["T"]) == (100, 7) and np.load(out / "v0.npy").shape == (7, 1, 1024)
    assert recs["v0"]["source_size"] == os.stat(root / "v0.mp4").st_size

    os.utime(root / "v1.mp4", ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))   # same bytes, another mtime: redone
    assert run(root, out, recipe, backbone).ok == 1

    # a manifest written before sizes and mtimes were kept resumes as it did, whatever the sources' times
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for rec in lines:
        rec.pop("source_size", None), rec.pop("source_mtime_ns", None)
    (out / "manifest.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    os.utime(root / "v0.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run(root, out, recipe, backbone).skipped == 2


# --- #1: a crashing decoder beside healthy ones --------------------------------------------------

def test_a_crash_counts_only_against_the_video_of_the_worker_that_died(tmp_path, backbone, recipe, monkeypatch):
    """Two workers: "a" is in flight (its decoder slowed down) when the other worker's decoder kills its process,
    twice; only "crash" is recorded failed, "a" and "d" come out ok."""
    import signal
    import time

    from vadpipe import decode_workers

    root = tmp_path / "v"
    make_video(root / "a.mp4", 64)
    make_video(root / "crash.mp4", 16)
    make_video(root / "d.mp4", 16)
    real_reader = decode_workers.reader_for

    def reader(path, rec):
        if Path(path).name == "crash.mp4":
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)      # runs in the forked decode worker
        if Path(path).name == "a.mp4":
            time.sleep(1.5)                           # still decoding when its neighbour dies
        return real_reader(path, rec)

    monkeypatch.setattr(decode_workers, "reader_for", reader)
    said = []
    summary = run(root, tmp_path / "f", recipe, backbone, workers=2, log=said.append)
    recs = manifest(tmp_path / "f")
    assert (recs["a"]["status"], recs["d"]["status"], recs["crash"]["status"]) == ("ok", "ok", "failed"), recs
    assert "crashed its worker process" in recs["crash"]["error"]
    assert [vid for vid, _ in summary.failures] == ["crash"] and summary.ok == 2
    assert said and all("died decoding crash;" in line for line in said)
    assert leftovers(tmp_path / "f") == []


def test_crashed_pids_reads_both_of_torchs_messages():
    from vadpipe.decode_workers import crashed_pids

    assert crashed_pids(RuntimeError("DataLoader worker (pid(s) 30617, 30618) exited unexpectedly")) == {30617, 30618}
    killed = RuntimeError("DataLoader worker (pid 4242) is killed by signal: Segmentation fault. ")
    assert crashed_pids(killed) == {4242}
    assert crashed_pids(RuntimeError("Caught ValueError in DataLoader worker process 0.")) == set()


# --- #4: long names that are not ASCII -----------------------------------------------------------

def test_file_names_are_limited_in_bytes_and_cut_on_a_character_boundary():
    from vadpipe.features import feature_filename

    snowmen = feature_filename("☃" * 79)                       # 237 bytes: too long once the claim's suffix is on
    head, digest = snowmen[:-len(".npy")].rsplit("-", 1)
    assert head == "☃" * 60 and len(digest) == 10 and len(snowmen.encode()) <= 200
    assert feature_filename("é" * 100) == "é" * 100 + ".npy"    # 200 bytes: kept
    assert feature_filename("a" * 200) == "a" * 200 + ".npy"    # ASCII names are judged as before
    cut = feature_filename("x" + "é" * 100)[:-len(".npy")]     # 201 bytes: cut between two characters
    assert cut.startswith("x" + "é" * 89 + "-") and len(cut.encode()) == 179 + 11
    assert feature_filename("☃" * 79) != feature_filename("☃" * 80)


def test_a_long_non_ascii_name_extracts(tmp_path, backbone, recipe):
    root = tmp_path / "v"
    make_video(root / ("☃" * 79 + ".mp4"), 16)                # 241 bytes: a valid name
    make_video(root / "ok.mp4", 16)
    summary = run(root, tmp_path / "f", recipe, backbone)
    recs = manifest(tmp_path / "f")
    assert (summary.ok, summary.failed) == (2, 0) and recs["☃" * 79]["status"] == "ok"
    assert np.load(tmp_path / "f" / recs["☃" * 79]["file"]).shape == (1, 1, 1024)
    assert run(root, tmp_path / "f", recipe, backbone).skipped == 2


# --- #7: names that would share an id ------------------------------------------------------------

def test_names_that_would_share_an_id_keep_their_extensions_and_all_extract(tmp_path, backbone, recipe):
    from pathlib import PurePosixPath as P

    from vadpipe.features import video_ids

    assert video_ids([P(p) for p in ("a.mp4", "a.mkv", "a.mp4.avi", "a.mp4.avi.mov", "b/a.mp4")]) == [
        "a.mp4", "a.mkv", "a.mp4.avi", "a.mp4.avi.mov", "b/a"]
    root = tmp_path / "dup"
    for name in ("x.mp4", "x.mkv", "x.mp4.avi", "good.mp4"):
        make_video(root / name, 16)
    summary = run(root, tmp_path / "f", recipe, backbone)
    recs = manifest(tmp_path / "f")
    assert (summary.ok, summary.failed) == (4, 0)
    assert {vid: Path(rec["path"]).name for vid, rec in recs.items()} == {
        "x.mp4": "x.mp4", "x.mkv": "x.mkv", "x.mp4.avi": "x.mp4.avi", "good": "good.mp4"}
    assert len({rec["file"] for rec in recs.values()}) == 4


# --- #8: a newline in a file name ----------------------------------------------------------------

def test_a_newline_in_a_name_keeps_the_cause_on_one_line(tmp_path, backbone, recipe):
    from vadpipe.decode_workers import one_line
    from vadpipe.errors import printable

    root = tmp_path / "nl"
    root.mkdir()
    (root / "bad\nname.mp4").write_text("not a video")
    make_video(root / "good.mp4", 16)
    summary = run(root, tmp_path / "f", recipe, backbone)
    error = manifest(tmp_path / "f")["bad\nname"]["error"]
    assert "\n" not in error and error.startswith(f"{root}/bad\\nname.mp4: cannot open as video")
    text = summary.format()
    assert "failed: bad\\nname: " + error in text.splitlines()
    assert printable("a\tb\x1b\x7f") == "a\\tb\\x1b\\x7f" and printable("é☃ ok") == "é☃ ok"
    assert one_line(ValueError("first\nsecond")) == "ValueError: first\\nsecond"


# --- #6: a same-stem sibling added later ---------------------------------------------------------

def test_a_same_stem_sibling_added_later_leaves_one_record_per_source(tmp_path, backbone, recipe):
    """x.mp4 extracted as "x"; x.avi appears, so x.mp4's id becomes "x.mp4": its features move to the new id
    (no new work) and "x" is retired; once x.avi is gone again, they move back."""
    root, out = tmp_path / "idc", tmp_path / "f"
    make_video(root / "x.mp4", 40)
    run(root, out, recipe, backbone)
    before = np.load(out / "x.npy")
    make_video(root / "x.avi", 20, seed=2)
    summary = run(root, out, recipe, backbone)
    recs = manifest(out)
    assert (summary.ok, summary.skipped) == (1, 1) and sorted(recs) == ["x.avi", "x.mp4"]
    assert {vid: Path(rec["path"]).name for vid, rec in recs.items()} == {"x.avi": "x.avi", "x.mp4": "x.mp4"}
    assert recs["x.mp4"]["file"] == "x.mp4.npy" and not (out / "x.npy").exists()
    assert np.array_equal(np.load(out / "x.mp4.npy"), before)
    assert (run(root, out, recipe, backbone).skipped, manifest(out)) == (2, recs)
    (root / "x.avi").unlink()
    summary = run(root, out, recipe, backbone)
    recs = manifest(out)
    assert (summary.ok, summary.skipped) == (0, 1) and sorted(recs) == ["x", "x.avi"]   # x.avi: a removed video
    assert recs["x"]["file"] == "x.npy" and np.array_equal(np.load(out / "x.npy"), before)


def test_a_former_record_that_is_stale_is_retired_and_its_source_redone(tmp_path, backbone, recipe):
    root, out = tmp_path / "idc", tmp_path / "f"
    make_video(root / "x.mp4", 40)
    run(root, out, recipe, backbone)
    make_video(root / "x.mp4", 70, seed=4)                  # replaced, and a sibling appears
    make_video(root / "x.avi", 20, seed=2)
    summary = run(root, out, recipe, backbone)
    recs = manifest(out)
    assert (summary.ok, summary.skipped) == (2, 0) and sorted(recs) == ["x.avi", "x.mp4"]
    assert (recs["x.mp4"]["frames"], np.load(out / "x.mp4.npy").shape) == (70, (5, 1, 1024))


def test_a_sliver_of_a_frame_is_one_line_not_a_huge_resize(tmp_path):
    """A 128x2 clip at a 256-px short side would be 16384x256 frames: refused, naming the file, before decoding."""
    clip = make_video(tmp_path / "sliver.mp4", 4, width=128, height=2)
    with pytest.raises(VideoDecodeError, match=r"sliver\.mp4: 128x2 frames resized to a short side of 256 would "
                                               r"be 16384x256 \(over 8192 px\)"):
        VideoReader(clip, short_side=256)
    assert VideoReader(clip, short_side=16).size == (1024, 16)


def test_extract_refuses_a_sliver_before_decoding_and_goes_on(tmp_path, backbone, recipe):
    """Extraction reads at native size and resizes whole snippets later (``reader_for``): the guard must
    fire there too. 256x2 at the tiny recipe's 128-px short side would be 16384x128 frames."""
    root, out = tmp_path / "v", tmp_path / "f"
    make_video(root / "sliver.mp4", 4, width=256, height=2)
    make_video(root / "plain.mp4", 20)
    summary = run(root, out, recipe, backbone)
    recs = manifest(out)
    assert (summary.ok, summary.failed) == (1, 1) and recs["plain"]["status"] == "ok"
    assert recs["sliver"]["status"] == "failed"
    assert "sliver.mp4: 256x2 frames resized to a short side of 128 would be 16384x128 (over 8192 px)" \
        in recs["sliver"]["error"]


def test_a_decoder_that_hangs_is_given_up_after_the_timeout_and_the_others_extract(tmp_path, backbone, recipe,
                                                                                   monkeypatch):
    """Two workers: the decoder of "hang" never returns (a pathological file); after --decode-timeout with
    nothing from any worker that video is recorded failed, once (no second wait), its worker is gone, and
    "a" and "d" come out ok with no spool or claim left behind."""
    import time

    from vadpipe import decode_workers

    root = tmp_path / "v"
    for name, frames in (("a", 48), ("hang", 16), ("d", 16)):
        make_video(root / f"{name}.mp4", frames)
    real_reader = decode_workers.reader_for
    pids = tmp_path / "pids"

    def reader(path, rec):
        if Path(path).name == "hang.mp4":
            with open(pids, "a") as fh:               # runs in the forked decode worker
                fh.write(f"{os.getpid()}\n")
            time.sleep(3600)
        return real_reader(path, rec)

    monkeypatch.setattr(decode_workers, "reader_for", reader)
    said = []
    start = time.monotonic()
    summary = run(root, tmp_path / "f", recipe, backbone, workers=2, decode_timeout=2.0, log=said.append)
    assert time.monotonic() - start < 60
    recs = manifest(tmp_path / "f")
    assert (recs["a"]["status"], recs["d"]["status"], recs["hang"]["status"]) == ("ok", "ok", "failed"), recs
    assert recs["hang"]["error"] == "decoding stalled: no frames from its decoder in 2 s (--decode-timeout)"
    assert [vid for vid, _ in summary.failures] == ["hang"] and summary.ok == 2
    assert len(said) == 1 and said[0].startswith("warning: decoding hang stalled for 2 s;"), said
    assert leftovers(tmp_path / "f") == []
    (hung,) = map(int, pids.read_text().split())      # decoded once, and its worker no longer runs
    with pytest.raises(ProcessLookupError):
        os.kill(hung, 0)


def test_stalled_names_only_the_videos_whose_workers_are_at_one_item_that_long():
    from vadpipe.decode_workers import DecodeStream, VideoJob

    jobs = [VideoJob(i, f"v{i}", f"v{i}.mp4", f"v{i}.npy", 0, None) for i in range(3)]
    stream = DecodeStream(jobs, recipe=None, chunk=1, workers=3)
    stream.positions[:] = [0, 1, -1]
    stream.busy_since[:] = [100.0, 0.0, 90.0]        # worker 1 idle, worker 2 past the last video
    assert [job.id for job in stream.stalled(5, now=110.0)] == ["v0"]
    assert stream.stalled(20, now=110.0) == []


def test_a_negative_decode_timeout_is_refused(tmp_path, backbone, recipe):
    from vadpipe.errors import ConfigError

    make_video(tmp_path / "v" / "a.mp4", 16)
    with pytest.raises(ConfigError, match="--decode-timeout"):
        run(tmp_path / "v", tmp_path / "f", recipe, backbone, decode_timeout=-1)


def test_extracts_decode_timeout_option_reaches_the_run(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from vadpipe.cli import main
    from vadpipe.extract import ExtractSummary

    seen = {}
    monkeypatch.setattr("vadpipe.extract.extract_folder",
                        lambda *a, **kw: seen.update(kw) or (ExtractSummary(), None))
    (tmp_path / "v").mkdir()
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "--decode-timeout", "7.5"])
    assert result.exit_code == 0, result.output
    assert seen["decode_timeout"] == 7.5
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "v"), "--decode-timeout", "-1"])
    assert result.exit_code == 2 and "--decode-timeout" in result.output
