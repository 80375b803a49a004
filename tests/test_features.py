"""The feature store: ids and file names, labels, manifest journals and merging, RTFM lists."""
from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import pytest

from vadpipe.errors import ConfigError, FeatureStoreError, RecipeMismatchError
from vadpipe.features import (FeatureStore, KeyIndex, as_snippet_crops, ManifestRecord, expected_snippets,
                              feature_filename, label_from_folders, read_labels_csv, video_ids)
from vadpipe.rtfm_lists import (export_rtfm_list, import_feature_folder, imported_recipe_factory, label_from_name,
                                read_list_file)
from vadpipe.recipe import Recipe

RECIPE = Recipe(backbone="i3d-r50", weights_sha256=None, feature_dim=8, crop="ten")


def P(text: str) -> PurePosixPath:
    return PurePosixPath(text)


# --- ids, names, labels --------------------------------------------------------------------------

def test_video_ids_keep_folders_and_disambiguate_extensions():
    rels = [P("a/clip.mp4"), P("b/clip.mp4"), P("x.mp4"), P("x.avi"), P("y.mkv")]
    assert video_ids(rels) == ["a/clip", "b/clip", "x.mp4", "x.avi", "y"]


def test_feature_filenames_are_flat_and_never_collide():
    assert feature_filename("Abuse/Abuse001_x264") == "Abuse__Abuse001_x264.npy"
    assert feature_filename("plain") == "plain.npy"
    tricky = ["a/b", "a__b", "a_/b", "a/_b", "a___b", "a:b", "a_b", "x/y/z", "x__y/z", "x/y__z",
              ".hidden", "_hidden", "名前/動画", "a b/c d", "a" * 300, "a" * 299 + "b"]
    names = [feature_filename(t) for t in tricky]
    assert len(set(names)) == len(names)
    for name in names:
        assert "/" not in name and not name.startswith(".") and len(name) < 255 and name.endswith(".npy")
    assert feature_filename("a/b") == "a__b.npy" and feature_filename("a__b") != "a__b.npy"


@pytest.mark.parametrize("rel, expected", [
    ("Abuse/Abuse001_x264.mp4", (1, "Abuse")),
    ("Anomaly-Videos-Part-1/Burglary/Burglary005_x264.mp4", (1, "Burglary")),
    ("Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4", (0, "Normal")),
    ("Training-Normal-Videos-Part-1/Normal_Videos001_x264.mp4", (0, "Normal")),
    ("Testing_Normal_Videos_Anomaly/Normal_Videos_003_x264.mp4", (0, "Normal")),
    ("normal/cam1.mp4", (0, "Normal")),
    ("Normal_Videos_event/clip.mp4", (0, "Normal")),
    ("test/normal/clip.mp4", (0, "Normal")),
    ("clip.mp4", (None, None)),
    ("abnormal/clip.mp4", (1, "abnormal")),
])
def test_labels_from_folder_names(rel, expected):
    assert label_from_folders(P(rel)) == expected


def test_labels_from_ucf_file_names():
    assert label_from_name("Abuse001_x264") == (1, "Abuse")
    assert label_from_name("RoadAccidents012_x264") == (1, "RoadAccidents")
    assert label_from_name("Normal_Videos_003_x264") == (0, "Normal")
    assert label_from_name("01_0014") == (None, None)


def test_labels_csv_header_nulls_and_errors(tmp_path):
    good = tmp_path / "labels.csv"
    good.write_text("video,label,class\nAbuse/a.mp4,1,Fight\nb,0\nc,\n./d,1\n")
    rows = read_labels_csv(good)
    assert rows["Abuse/a.mp4"].label == 1 and rows["Abuse/a.mp4"].cls == "Fight"
    assert (rows["b"].label, rows["b"].cls) == (0, "Normal")
    assert rows["c"].label is None and rows["d"].label == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("a,1\nb,maybe\n")
    with pytest.raises(ConfigError, match=r"bad.csv:2"):
        read_labels_csv(bad)


def test_key_index_resolves_ids_paths_and_unique_names():
    index = KeyIndex(["A/x", "B/x", "C/y"], ["A/x.mp4", "B/x.mp4", "C/y.mp4"])
    assert index.find("A/x") == "A/x" and index.find("B/x.mp4") == "B/x"
    assert index.find("y.mp4") == "C/y" and index.find("y") == "C/y"
    assert index.find("x") is None  # ambiguous bare name
    assert index.find("nope") is None


def test_expected_snippets_keeps_the_tail():
    assert [expected_snippets(f) for f in (0, 1, 15, 16, 17, 32, 33)] == [0, 1, 1, 1, 2, 2, 3]


# --- manifest ------------------------------------------------------------------------------------

def _record(vid: str, finished: float, recipe_id: str = RECIPE.recipe_id, **kw) -> ManifestRecord:
    return ManifestRecord(id=vid, path=f"{vid}.mp4", label=1, cls="C", recipe_id=recipe_id, finished=finished,
                          T=2, crops=10, frames=20, file=feature_filename(vid), **kw)


def test_record_json_round_trip_uses_class_key():
    rec = _record("a/b", 1.0)
    data = json.loads(json.dumps(rec.to_json()))
    assert data["class"] == "C" and "cls" not in data and "layout" not in data
    assert ManifestRecord.from_json(data) == rec


def test_journals_merge_latest_wins_torn_lines_skipped(tmp_path):
    store = FeatureStore(tmp_path)
    store.write_recipe(RECIPE)
    store.append(_record("b", 1.0), 0, 2)
    store.append(_record("a", 2.0, status="failed", error="boom"), 1, 2)
    store.append(_record("a", 3.0), 1, 2)
    store.append(_record("old", 4.0, recipe_id="another"), 0, 2)
    with open(store.journal_path(1, 2), "a") as fh:
        fh.write('{"id": "torn", "pa')  # a run killed mid-write
    assert set(store.all_records()) == {"a", "b", "old"}
    assert store.all_records()["a"].ok
    assert [r.id for r in store.records()] == ["a", "b"]  # current recipe only
    assert store.merge(1, 2) == 2
    assert not store.journal_path(1, 2).exists() and store.journal_path(0, 2).exists()
    store.merge(0, 2)
    assert store.journals() == []
    lines = store.manifest_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]


def test_merge_result_does_not_depend_on_finishing_order(tmp_path):
    texts = []
    for order in ((0, 1), (1, 0)):
        store = FeatureStore(tmp_path / str(order))
        store.write_recipe(RECIPE)
        store.append(_record("x", 1.0), 0, 2)
        store.append(_record("y", 2.0), 1, 2)
        for shard in order:
            store.merge(shard, 2)
        texts.append(store.manifest_path.read_text())
    assert texts[0] == texts[1]


def test_is_complete_checks_recipe_file_and_shape(tmp_path):
    store = FeatureStore(tmp_path)
    rec = _record("v", 1.0)
    assert not store.is_complete(rec, RECIPE)  # no file yet
    np.save(tmp_path / rec.file, np.zeros((2, 10, 8), np.float32))
    assert store.is_complete(rec, RECIPE)
    assert not store.is_complete(_record("v", 1.0, recipe_id="zzz"), RECIPE)
    np.save(tmp_path / rec.file, np.zeros((1, 10, 8), np.float32))
    assert not store.is_complete(rec, RECIPE)
    assert not store.is_complete(None, RECIPE)


# --- RTFM lists ----------------------------------------------------------------------------------

def _store_with(tmp_path, entries):
    store = FeatureStore(tmp_path / "features")
    store.write_recipe(RECIPE)
    for i, (vid, label) in enumerate(entries):
        rec = _record(vid, float(i))
        rec.label = label
        np.save(store.folder / rec.file, np.full((2, 10, 8), i, np.float32))
        store.append(rec)
    store.merge(0, 1)
    return store


def test_export_list_puts_anomalous_first_and_reports_split(tmp_path):
    store = _store_with(tmp_path, [("Normal/n1", 0), ("Abuse/a2", 1), ("Abuse/a1", 1), ("x", None),
                                   ("Normal/n0", 0)])
    out = tmp_path / "train.list"
    result = export_rtfm_list(store.folder, out)
    lines = out.read_text().splitlines()
    assert result.split_index == 2 and result.normal == 2 and result.unlabeled == 1
    assert [PurePosixPath(line).name for line in lines] == ["Abuse__a1.npy", "Abuse__a2.npy",
                                                            "Normal__n0.npy", "Normal__n1.npy"]
    assert all(PurePosixPath(line).is_absolute() for line in lines)
    subset = export_rtfm_list(store.folder, out, subset=["Abuse/a1.mp4", "n1", "missing_video"])
    assert (subset.anomalous, subset.normal, subset.missing) == (1, 1, ["missing_video"])
    before = out.read_text()
    with pytest.raises(FeatureStoreError, match="none of the subset's 2 name"):   # nothing left: no empty list
        export_rtfm_list(store.folder, out, subset=["nobody", "no_one"])
    assert out.read_text() == before


def test_import_layouts_labels_and_no_copy(tmp_path):
    src = tmp_path / "public"
    src.mkdir()
    tcd = np.random.default_rng(0).normal(size=(5, 10, 2048)).astype(np.float32)
    np.save(src / "Abuse001_x264_i3d.npy", tcd)
    np.save(src / "Normal_Videos_003_x264_i3d.npy", tcd.transpose(1, 0, 2))          # (10, T, D)
    for k in range(10):
        np.save(src / f"Arson002_x264__{k}.npy", tcd[:, k])                             # per-crop (T, D)
    np.save(src / "01_0014_i3d.npy", tcd[:3])
    np.save(src / "broken_i3d.npy", np.zeros((4, 3, 7), np.float32))
    dest = tmp_path / "indexed"
    result = import_feature_folder(src, dest, imported_recipe_factory(backbone="i3d-r50", preset="rtfm"),
                                   list_order=["/x/01_0014_i3d.npy", "/x/Abuse001_x264_i3d.npy"], split_index=1)
    assert result.recipe.num_crops == 10 and dict(result.recipe.extra)["origin"] == "imported"
    store = FeatureStore(dest)
    recs = {r.id: r for r in store.records()}
    assert set(recs) == {"Abuse001_x264", "Normal_Videos_003_x264", "Arson002_x264", "01_0014", "broken"}
    assert not recs["broken"].ok and "shape" in recs["broken"].error
    for vid in ("Abuse001_x264", "Normal_Videos_003_x264", "Arson002_x264"):
        np.testing.assert_array_equal(store.load(recs[vid]), tcd)
    assert recs["Normal_Videos_003_x264"].layout == "CTD" and recs["Arson002_x264"].layout == "crop-files"
    assert (recs["Abuse001_x264"].label, recs["Abuse001_x264"].cls) == (0, "Normal")  # the list overrides names
    assert recs["01_0014"].label == 1 and recs["01_0014"].T == 3
    assert (recs["Arson002_x264"].label, recs["Arson002_x264"].cls) == (1, "Arson")
    assert list(dest.glob("*.npy")) == []  # nothing copied
    # importing different features into the same folder is a recipe mismatch
    with pytest.raises(RecipeMismatchError):
        import_feature_folder(src, dest, lambda d, c: result.recipe.replace(resize_short_side=320))


def test_a_set_imported_with_its_list_is_read_in_the_lists_order(tmp_path):
    """An RTFM concatenated gt is built in the test list's order: the imported set keeps that order (its
    manifest is sorted by id), so `eval` splits the gt where the list put each video; without a list, by id."""
    from vadpipe.data import open_features

    src = tmp_path / "public"
    src.mkdir()
    names = ["Vandalism007_x264", "Abuse028_x264", "Normal_Videos_003_x264"]     # anomalous first, not sorted
    for t, name in enumerate(names):
        np.save(src / f"{name}_i3d.npy", np.ones((3 + t, 10, 2048), np.float32))
    factory = imported_recipe_factory(backbone="i3d-r50", preset="rtfm")
    import_feature_folder(src, tmp_path / "listed", factory, list_order=[f"/x/{n}_i3d.npy" for n in names],
                          split_index=2)
    assert [v.id for v in open_features(tmp_path / "listed").videos] == names
    with pytest.raises(ConfigError, match=r"both above and below --split-index 2 \(entries 1 and 4\)"):
        import_feature_folder(src, tmp_path / "twice", factory, split_index=2,
                              list_order=[f"/x/{n}_i3d.npy" for n in names + names[:1]])
    import_feature_folder(src, tmp_path / "crops", factory, split_index=4,     # a per-crop list: one label each
                          list_order=[f"/x/{n}_i3d.npy" for n in names[:2] * 2 + names[2:]])
    import_feature_folder(src, tmp_path / "plain", factory)
    assert [v.id for v in open_features(tmp_path / "plain").videos] == sorted(names)


def test_import_needs_split_index_with_a_list(tmp_path):
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.zeros((2, 10, 8), np.float32))
    with pytest.raises(ConfigError, match="split-index"):
        import_feature_folder(tmp_path / "src", tmp_path / "d", lambda d, c: RECIPE, list_order=["a.npy"])
    with pytest.raises(FeatureStoreError):
        import_feature_folder(tmp_path / "nothing", tmp_path / "d", lambda d, c: RECIPE)


def test_a_square_array_takes_its_folders_layout(tmp_path):
    """(10, T, D) files with one video of exactly 10 snippets: that one was read (T, C, D), crops and snippets
    swapped, silently."""
    src = tmp_path / "ctd"
    src.mkdir()
    rng = np.random.default_rng(0)
    videos = {f"Abuse00{i}_x264": rng.normal(size=(t, 10, 8)).astype(np.float32) for i, t in enumerate((7, 10, 12))}
    for name, tcd in videos.items():
        np.save(src / f"{name}.npy", tcd.transpose(1, 0, 2))
    import_feature_folder(src, tmp_path / "d", lambda d, c: RECIPE)
    store = FeatureStore(tmp_path / "d")
    for rec in store.records():
        assert rec.layout == "CTD"
        np.testing.assert_array_equal(store.load(rec), videos[rec.id])


def test_per_crop_files_with_the_feature_suffix_after_the_crop_group(tmp_path):
    src = tmp_path / "crops"
    src.mkdir()
    tcd = np.random.default_rng(1).normal(size=(4, 10, 8)).astype(np.float32)
    for k in range(10):
        np.save(src / f"Abuse001_x264__{k}_i3d.npy", tcd[:, k])
    result = import_feature_folder(src, tmp_path / "d", lambda d, c: RECIPE)
    (rec,) = result.records
    assert rec.id == "Abuse001_x264" and rec.layout == "crop-files"
    np.testing.assert_array_equal(FeatureStore(tmp_path / "d").load(rec), tcd)


def test_a_folder_imported_into_itself_keeps_its_videos_once(tmp_path):
    """vadpipe's own folder holds `Abuse__a1.npy` for the video `Abuse/a1`: imported in place it doubled."""
    store = _store_with(tmp_path, [("Abuse/a1", 1), ("Normal/n1", 0)])
    result = import_feature_folder(store.folder, store.folder, lambda d, c: RECIPE)
    assert sorted(result.already) == ["Abuse__a1", "Normal__n1"]
    assert {(r.id, r.label) for r in FeatureStore(store.folder).records()} == {("Abuse/a1", 1), ("Normal/n1", 0)}


def test_split_index_is_checked_and_list_entries_that_match_nothing_are_reported(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "src" / f"{name}_i3d.npy", np.zeros((2, 10, 8), np.float32))
    for index in (-1, 3):
        with pytest.raises(ConfigError, match=f"--split-index {index}: the list has 2 entries"):
            import_feature_folder(tmp_path / "src", tmp_path / "d", lambda d, c: RECIPE, list_order=["a", "b"],
                                  split_index=index)
    with pytest.raises(ConfigError, match="--split-index needs --list"):
        import_feature_folder(tmp_path / "src", tmp_path / "d", lambda d, c: RECIPE, split_index=1)
    result = import_feature_folder(tmp_path / "src", tmp_path / "d", lambda d, c: RECIPE,
                                   list_order=["/x/a_i3d.npy", "/x/typo_i3d.npy"], split_index=1)
    assert result.unmatched_list == ["/x/typo_i3d.npy"] and result.list_rows == 2


def test_a_relative_list_reads_from_any_working_folder(tmp_path, monkeypatch):
    from vadpipe.data import open_features

    store = _store_with(tmp_path, [("Abuse/a1", 1), ("Normal/n1", 0)])
    monkeypatch.chdir(tmp_path)
    export_rtfm_list("features", tmp_path / "lists" / "rel.list", absolute=False)
    assert (tmp_path / "lists" / "rel.list").read_text().splitlines()[0] == "../features/Abuse__a1.npy"
    monkeypatch.chdir(tmp_path / "lists")
    assert len(open_features(str(tmp_path / "lists" / "rel.list"), list_anomalous="first:1").videos) == 2
    assert store


def test_read_list_file_skips_blank_and_comment_lines(tmp_path):
    path = tmp_path / "x.list"
    path.write_text("# header\n/a.npy\n\n/b.npy\n")
    assert read_list_file(path) == ["/a.npy", "/b.npy"]


def test_as_snippet_crops_adds_the_crop_axis_and_names_bad_shapes():
    assert as_snippet_crops(np.zeros((5, 8))).shape == (5, 1, 8)
    assert as_snippet_crops(np.zeros((5, 10, 8))).shape == (5, 10, 8)
    for bad in (np.zeros(8), np.zeros((0, 8)), np.zeros((2, 3, 4, 5))):
        with pytest.raises(ValueError, match=r"expected features \(T, C, D\) or \(T, D\), got shape"):
            as_snippet_crops(bad)
