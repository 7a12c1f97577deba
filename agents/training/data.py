"""The trainer's data: episode split, labelled episodes, tokenizer, windows, resumable loaders.

Nothing here loads the dataset into memory: windows are read lazily by
``collect.dataset.WindowDataset`` and the tokenizer reads only the ``annotations`` column of the
labelled training episodes.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from agents.text import load_tokenizer, train_tokenizer, vocab_hash
from agents.training.config import LoaderConfig, TrainError
from collect.dataset import Dataset, DatasetError, WindowDataset, collate_windows, split_episodes


def labelled_episodes(train_ids: list[int], fraction: float, seed: int) -> list[int]:
    """The training episodes whose annotations count (``round(fraction * n)``, at least one
    when ``fraction > 0``), chosen with a fixed seed; sorted."""
    n = len(train_ids)
    k = round(fraction * n)
    if fraction > 0 and n:
        k = max(k, 1)
    order = np.random.default_rng(seed).permutation(n)
    return sorted(int(train_ids[i]) for i in order[:k])


def episode_annotations(ds: Dataset, position: int) -> list[list[str]]:
    """One episode's per-frame annotations, reading only that column (no frames)."""
    return ds.read_column(position, "annotations")  # raises DatasetError naming the file


def build_tokenizer(ds: Dataset, labelled: list[int], cfg: LoaderConfig,
                    extra_sentences: Sequence[str] = ()) -> Any:
    """A pretrained tokenizer from ``cfg.tokenizer_path``, or a word-level one trained on the
    annotations of the labelled training episodes only (no validation/unlabelled leak), plus
    ``extra_sentences`` (an obs encoder's pseudo-language, each counted min_frequency times)."""
    if cfg.tokenizer_path:
        return load_tokenizer(cfg.tokenizer_path)
    sentences = chain((s for pos in labelled for frame in episode_annotations(ds, pos) for s in frame),
                      list(extra_sentences) * cfg.min_frequency)
    return train_tokenizer(sentences, min_frequency=cfg.min_frequency, max_vocab=cfg.max_vocab)


class LabelledWindows(WindowDataset):
    """``WindowDataset`` whose items also carry ``labelled: torch.bool []`` (their episode is in
    ``labelled``); ``collate_windows`` stacks it to ``[B]``."""

    def __init__(self, *args: Any, labelled: list[int] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labelled = frozenset(int(p) for p in labelled)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["labelled"] = torch.tensor(self.index[i][0] in self.labelled)
        return item


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start part-way through an epoch.

    Rank r of W takes indices ``perm[r::W]``, so the r-th shard of local batch j is a slice of
    global batch j of the single-process order: W ranks with batch B/W see exactly the windows
    one process with batch B sees.
    """

    def __init__(self, dataset: Any, *, num_replicas: int, rank: int, seed: int) -> None:
        # drop_last: the tail that does not split evenly is dropped (never padded with repeats),
        # so every rank has floor(n / B) local batches per epoch, as one process with batch B
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.skip = 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Start epoch ``epoch`` at its ``skip``-th local index."""
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


@dataclass
class DataBundle:
    """Everything the loop needs from the dataset."""

    dataset: Dataset
    train: LabelledWindows
    val: LabelledWindows | None
    train_ids: list[int]
    val_ids: list[int]
    labelled_ids: list[int]
    tokenizer: Any
    columns: tuple[str, ...]


def build_data(path: str, cfg: LoaderConfig, *, label_fraction: float, label_seed: int,
               columns: tuple[str, ...] = (), tokenizer: Any = None,
               labelled_only: bool = False, extra_sentences: Sequence[str] = ()) -> DataBundle:
    """Split by episode, choose the labelled ones, build the windows and the tokenizer.

    Args:
        path: Dataset directory.
        cfg: Loader config.
        label_fraction: Share of training episodes treated as labelled.
        label_seed: Seed of that choice.
        columns: Extra dataset columns the observation encoder reads.
        tokenizer: Reuse this tokenizer (resume) instead of building one.
        labelled_only: Train on the labelled episodes only (the supervised captioner,
            ``w_byog = 0``, has no loss on unlabelled windows, so they would only waste steps).
        extra_sentences: Added to the tokenizer's corpus (the obs encoder's pseudo-language).
    """
    try:
        train = WindowDataset(path, window=cfg.window, episodes=[], columns=columns)
    except DatasetError as e:
        raise TrainError(str(e)) from None
    ds = train.dataset
    if ds.num_episodes < 2 and cfg.val_fraction > 0:
        raise TrainError(f"{path} has {ds.num_episodes} episode(s); a train/validation split by "
                         "episode needs at least 2 (collect more, or set loader.val_fraction 0).")
    train_ids, val_ids = split_episodes(ds.num_episodes, cfg.val_fraction, cfg.split_seed)
    labelled = labelled_episodes(train_ids, label_fraction, label_seed)
    tok = tokenizer if tokenizer is not None else build_tokenizer(ds, labelled, cfg, extra_sentences)
    kw = {"window": cfg.window, "columns": columns, "labelled": labelled}
    if labelled_only and not labelled:
        raise TrainError("No training episode is labelled (label_fraction too small for this "
                         "dataset) and w_byog is 0, so there is nothing to train on; raise "
                         "label_fraction or set model.loss.w_byog > 0.")
    fit_ids = sorted(labelled) if labelled_only else train_ids
    train_w = LabelledWindows(path, stride=cfg.stride, episodes=fit_ids, **kw)
    val_w = LabelledWindows(path, stride=cfg.window, episodes=val_ids, **kw) if val_ids else None
    return DataBundle(ds, train_w, val_w, train_ids, val_ids, labelled, tok, tuple(columns))


def train_loader(windows: LabelledWindows, cfg: LoaderConfig, *, seed: int, rank: int = 0,
                 world: int = 1) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader of this rank's ``batch_size / world`` windows per step (drop_last)."""
    if cfg.batch_size % world:
        raise TrainError(f"loader.batch_size {cfg.batch_size} must be divisible by the "
                         f"{world} DDP processes.")
    local = cfg.batch_size // world
    if len(windows) < cfg.batch_size:
        raise TrainError(f"Only {len(windows)} training windows for a batch of {cfg.batch_size}; "
                         "collect more episodes, or lower loader.batch_size or loader.window.")
    sampler = ResumableSampler(windows, num_replicas=world, rank=rank, seed=seed)
    loader = DataLoader(windows, batch_size=local, sampler=sampler, drop_last=True,
                        collate_fn=collate_windows, num_workers=cfg.num_workers,
                        prefetch_factor=cfg.prefetch_factor if cfg.num_workers else None,
                        persistent_workers=False)
    return loader, sampler


def val_batches(windows: LabelledWindows | None, batch_size: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` validation batches in a fixed order (the same windows every evaluation)."""
    if windows is None or n == 0:
        return []
    items = [windows[i] for i in range(min(len(windows), n * batch_size))]
    return [collate_windows(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def dataset_identity(ds: Dataset, tokenizer: Any) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on."""
    info = ds.info
    return {"env_id": info.get("env_id") or info.get("env"), "frame_shape": list(ds.frame_shape),
            "action_space": info.get("action_space"), "format_version": info.get("format_version"),
            "annotator_version": info.get("annotator_version"),
            "vocab_hash": vocab_hash(tokenizer), "vocab_size": len(tokenizer)}
