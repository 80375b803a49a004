"""Which videos of a feature set a run trains on and which it holds out (validation and calibration).

A new run draws its split from its seed (``draw_split``: a stratified share of the labelled videos, or with
``model.bagging`` one share per member, disjoint folds with ``model.bag_folds``); a resumed run, and a pair of
heads, read it back from the ids its ``last.pt`` records (``RunSplit.from_record``), so a video removed from the
features is named, not guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .config import ModelConfig, TrainConfig
from .data import FeatureSet, stratified_folds, stratified_split
from .errors import ConfigError, FeatureStoreError
from .novelty import video_novelty
from .train_plan import member_seed


@dataclass
class RunSplit:
    """Positions in the feature set: the training videos, the held-out ones and, with bagging, the
    videos each member holds out (every one of them trains the other members)."""
    train_idx: np.ndarray
    held_idx: np.ndarray
    member_held: List[np.ndarray] = field(default_factory=list)

    def trains(self, member: int, positions: np.ndarray) -> np.ndarray:
        """Mask of ``positions`` (into the training videos) that member ``member`` trains on."""
        if not self.member_held:
            return np.ones(positions.size, dtype=bool)
        return ~np.isin(self.train_idx[positions], self.member_held[member])

    def record(self, data: FeatureSet) -> Dict[str, list]:
        """The split as video ids (and the training videos' labels), as ``last.pt`` stores it."""
        ids = lambda positions: [data.videos[i].id for i in positions]  # noqa: E731
        return {"train": ids(self.train_idx), "val": ids(self.held_idx),
                "train_labels": [int(data.videos[i].label) for i in self.train_idx],
                **({"members_val": [ids(held) for held in self.member_held]} if self.member_held else {})}

    @classmethod
    def from_record(cls, data: FeatureSet, split: Dict[str, list], why: str) -> "RunSplit":
        """The split a checkpoint recorded, as positions in ``data`` (``why`` opens the error naming a
        video the features no longer hold, or one labelled otherwise now: the batches were drawn by label)."""
        out = cls(data.positions(split["train"], why), data.positions(split["val"], why),
                  [data.positions(ids, why) for ids in split.get("members_val", [])])
        for i, was in zip(out.train_idx, split.get("train_labels", ())):    # absent in runs before stop 66
            if data.videos[i].label != was:
                raise FeatureStoreError(f"{data.origin}: video {data.videos[i].id!r} was labelled {was} when the "
                                        f"run began and is {data.videos[i].label} now; {why}")
        return out


def labelled_positions(data: FeatureSet, t: TrainConfig, log: Callable[[str], None]) -> np.ndarray:
    """Positions of the videos with a label (0/1); a set with none, or without both classes, is refused."""
    labels = data.labels()
    labelled = np.flatnonzero(labels >= 0)
    if labelled.size < len(labels):
        log(f"{len(labels) - labelled.size} video(s) without a label left out of training")
    if labelled.size == 0:
        raise FeatureStoreError(f"{t.features}: no video has a label (0/1); for an RTFM list pass "
                                "--list-anomalous first:N (RTFM UCF-Crime: first:810, ShanghaiTech: first:63)")
    counts = {name: int((labels == value).sum()) for name, value in (("anomalous", 1), ("normal", 0))}
    if not all(counts.values()):
        raise FeatureStoreError(f"{t.features}: training needs anomalous and normal videos; it holds "
                                f"{counts['anomalous']} anomalous and {counts['normal']} normal (labels come from "
                                "the folders at extraction: normal, Normal*, Training_Normal_Videos* are normal, any "
                                "other class folder anomalous; or `vadpipe extract --labels FILE.csv`; an RTFM "
                                "list's from --list-anomalous)")
    return labelled


def share_split(t: TrainConfig, labels: np.ndarray, seed: int, novelty: Optional[np.ndarray] = None):
    """(train, held-out) positions in ``labels`` of the run's held-out share drawn with ``seed``; with
    ``train.holdout_pick: typical`` its normal videos are instead as many of the least novel ones
    (``novelty``: a figure per position, read at the normal ones; ties by position), whatever the seed."""
    train, held = stratified_split(labels, t.val_fraction, seed, only=(0,) if t.holdout == "normal" else None,
                                   cap=t.val_max)
    if t.holdout_pick != "typical":
        return train, held
    if novelty is None:
        raise ValueError("train.holdout_pick = typical needs each normal video's novelty")
    normal = np.flatnonzero(labels == 0)
    count = int(np.sum(labels[held] == 0))
    typical = normal[np.argsort(novelty[normal], kind="stable")[:count]]
    held = np.sort(np.concatenate([held[labels[held] != 0], typical])).astype(np.int64)
    return np.setdiff1d(np.arange(len(labels)), held), held


def fold_split(t: TrainConfig, labels: np.ndarray, members: int) -> List[np.ndarray]:
    """Positions in ``labels`` that each of ``members`` holds out: disjoint folds of the classes
    ``train.holdout`` holds out (``model.bag_folds``), so each of those videos is held out exactly once.
    A class of one video is refused: the member holding it out would train without that class."""
    only = (0,) if t.holdout == "normal" else (0, 1)
    for c in only:
        if np.sum(labels == c) == 1:
            raise ConfigError(f"model.bag_folds: only one {('normal', 'anomalous')[c]} labelled video; the member "
                              "holding it out would train without that class (add videos or drop bag_folds)")
    return stratified_folds(labels, members, t.seed, only=only)


def draw_split(t: TrainConfig, m: ModelConfig, data: FeatureSet, log: Callable[[str], None]) -> RunSplit:
    """A new run's split: every labelled video trains when an external validation set is given; with
    ``m.bagging`` each of ``m.members`` holds out its own share (drawn with its own seed, or with
    ``m.bag_folds`` one of disjoint folds); else one share."""
    labels = data.labels()
    labelled = labelled_positions(data, t, log)
    if t.val_features:
        return RunSplit(labelled, np.array([], dtype=np.int64))
    if m.bagging:
        if t.holdout_pick != "random":
            log(f"train.holdout_pick {t.holdout_pick} picks one held-out share: each bagged member draws its own "
                "with its seed (random)")
            t = replace(t, holdout_pick="random")
        member_held = ([labelled[held] for held in fold_split(t, labels[labelled], m.members)] if m.bag_folds else
                       [labelled[share_split(t, labels[labelled], member_seed(t.seed, k))[1]]
                        for k in range(m.members)])
        return RunSplit(labelled, np.unique(np.concatenate(member_held)), member_held)
    novelty = labelled_novelty(data, labelled, m.head_span) if t.holdout_pick == "typical" else None
    tr, va = share_split(t, labels[labelled], t.seed, novelty)
    held = labelled[va]
    if held.size:
        counts = [f"{np.sum(labels[held] == c)} of {np.sum(labels[labelled] == c)} {name}"
                  for c, name in ((0, "normal"), (1, "anomalous")) if np.any(labels[held] == c)]
        cap = f", at most {t.val_max} a class" if t.val_max else ""
        log(f"held out of training: {' and '.join(counts)} videos (train.val_fraction {t.val_fraction:g}{cap})")
    if novelty is not None and np.any(labels[held] == 0):
        kept = novelty[(labels[labelled] == 0) & ~np.isin(labelled, held)]
        log(f"held out the least novel normal videos (train.holdout_pick typical): novelty at most "
            f"{novelty[np.isin(labelled, held) & (labels[labelled] == 0)].max():.4f}, those kept in training "
            f"{kept.min():.4f} to {kept.max():.4f}")
    return RunSplit(labelled[tr], held)


def labelled_novelty(data: FeatureSet, labelled: np.ndarray, span: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """Per labelled position, each normal video's novelty against the other normal ones on the features'
    ``span`` that the head reads (vadpipe.novelty); NaN for the anomalous ones."""
    labels = data.labels()[labelled]
    out = np.full(len(labelled), np.nan)
    normal = np.flatnonzero(labels == 0)
    videos = [data.videos[i] for i in labelled[normal]]
    shape = data.shape()
    for video in videos:    # another crop count or D: the one line naming its .npy, not numpy's on the stack
        video.shaped(shape)
    out[normal] = video_novelty(videos, span)
    return out
