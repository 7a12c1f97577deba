"""The trainer's data: episode split, labelled episodes, tokenizer, windows, resumable loaders.

Nothing here loads the dataset into memory: windows are read lazily by
``collect.dataset.WindowDataset`` and the tokenizer reads only the ``annotations`` column of the
labelled training episodes.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from agents.model.text import load_tokenizer, train_tokenizer, vocab_hash
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
    """Every training episode's windows (the unlabelled stream draws from these; with
    ``labelled_only`` the labelled episodes' only)."""
    val: LabelledWindows | None
    """The windows validation draws from (the held-out episodes, or the pilot slice)."""
    train_ids: list[int]
    val_ids: list[int]
    labelled_ids: list[int]
    tokenizer: Any
    columns: tuple[str, ...]
    labelled: LabelledWindows | None = None
    """The labelled training episodes' windows (the labelled stream); None: none labelled."""
    pilot_ids: list[int] = dataclasses.field(default_factory=list)
    """Training episodes set aside for pilot selection (trained on by no run)."""


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
    train_ids, pilot_ids = pilot_slice(train_ids, cfg.pilot_episodes, cfg.split_seed)
    labelled = labelled_episodes(train_ids, label_fraction, label_seed)
    tok = tokenizer if tokenizer is not None else build_tokenizer(ds, labelled, cfg, extra_sentences)
    kw = {"window": cfg.window, "columns": columns, "labelled": labelled}
    if labelled_only and not labelled:
        raise TrainError("No training episode is labelled (label_fraction too small for this "
                         "dataset) and w_byog is 0, so there is nothing to train on; raise "
                         "label_fraction or set model.loss.w_byog > 0.")
    fit_ids = sorted(labelled) if labelled_only else train_ids
    train_w = LabelledWindows(path, stride=cfg.stride, episodes=fit_ids, **kw)
    lab_w = (train_w if labelled_only else
             LabelledWindows(path, stride=cfg.stride, episodes=sorted(labelled), **kw)) \
        if labelled else None
    scored = pilot_ids if cfg.validate_on == "pilot" else val_ids
    val_w = LabelledWindows(path, stride=cfg.window, episodes=scored, **kw) if scored else None
    return DataBundle(ds, train_w, val_w, train_ids, val_ids, labelled, tok, tuple(columns),
                      labelled=lab_w, pilot_ids=pilot_ids)


def pilot_slice(train_ids: list[int], n: int, seed: int) -> tuple[list[int], list[int]]:
    """(training episodes left, the pilot slice): ``n`` training episodes chosen with a fixed
    seed (distinct from the split's and the labelled draw's), both sorted."""
    if n <= 0:
        return list(train_ids), []
    if n >= len(train_ids):
        raise TrainError(f"loader.pilot_episodes {n} leaves no training episode of "
                         f"{len(train_ids)}; lower it or collect more episodes.")
    order = np.random.default_rng([seed, 0x9170]).permutation(len(train_ids))
    pilot = sorted(int(train_ids[i]) for i in order[:n])
    return sorted(set(train_ids) - set(pilot)), pilot


def train_loader(windows: LabelledWindows, cfg: LoaderConfig, *, seed: int, rank: int = 0,
                 world: int = 1, batch_size: int | None = None, what: str = "training",
                 ) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader of this rank's ``batch_size / world`` windows per step (drop_last);
    ``batch_size`` None = ``cfg.batch_size``."""
    batch_size = batch_size or cfg.batch_size
    flag = "loader.batch_size" if what in ("training", "labelled") else "loader.unlabelled_batch_size"
    if batch_size % world:
        raise TrainError(f"{flag} {batch_size} must be divisible by the {world} DDP processes.")
    local = batch_size // world
    if len(windows) < batch_size:
        more = "raise label_fraction, " if what == "labelled" else ""
        raise TrainError(f"Only {len(windows)} {what} windows for a batch of {batch_size}; "
                         f"{more}collect more episodes, or lower {flag} or loader.window.")
    sampler = ResumableSampler(windows, num_replicas=world, rank=rank, seed=seed)
    loader = DataLoader(windows, batch_size=local, sampler=sampler, drop_last=True,
                        collate_fn=collate_windows, num_workers=cfg.num_workers,
                        prefetch_factor=cfg.prefetch_factor if cfg.num_workers else None,
                        persistent_workers=False)
    return loader, sampler


STREAM_SEED_OFFSETS = {"labelled": 0, "unlabelled": 1_000_003, "pseudo": 2_000_006}
"""Each stream's sampler seed is the run's seed plus its offset: the labelled stream's is the
run's seed itself, so every arm of a seed draws the same labelled windows in the same order."""


@dataclass
class Stream:
    """One sampler's batches and the losses that read them."""

    name: str
    """``labelled`` (grounding), ``unlabelled`` (the self-supervised loss) or ``pseudo``
    (grounding on a teacher's pseudo-labels)."""
    loader: DataLoader
    sampler: ResumableSampler
    ground: bool
    """Its rows enter the grounding loss."""
    byog: bool
    """Its rows enter the self-supervised (BYOG) loss."""

    @property
    def per_epoch(self) -> int:
        """Optimizer steps in one pass of this stream's sampler."""
        return self.sampler.num_samples // self.loader.batch_size

    def batches(self, start_step: int) -> Iterator[dict[str, Any]]:
        """This stream's batches from optimizer step ``start_step`` on, forever: the position
        follows from the step alone, so a resumed run continues every stream in its order."""
        step = start_step
        while True:
            self.sampler.set_position(step // self.per_epoch,
                                      (step % self.per_epoch) * self.loader.batch_size)
            for batch in self.loader:
                yield batch
                step += 1


def train_streams(data: DataBundle, cfg: LoaderConfig, *, seed: int, ground: bool,
                  unlabelled: bool, pseudo: bool, rank: int = 0, world: int = 1) -> list[Stream]:
    """The samplers one training step draws from (semi-supervised batches, as FixMatch does):

    * ``labelled``: ``cfg.batch_size`` windows of labelled episodes (when ``ground`` and any
      episode is labelled), for the grounding loss;
    * ``unlabelled``: ``cfg.unlabelled_batch`` windows of every training episode (when
      ``unlabelled``: BYOG, or an obs encoder's pseudo-language), for the self-supervised loss;
    * ``pseudo``: ``cfg.unlabelled_batch`` windows of the unlabelled episodes, whose annotations
      are a teacher's (``pseudo``: the self-training captioner), for the grounding loss.
    """
    out = []
    if ground and data.labelled is not None:
        out.append(("labelled", data.labelled, cfg.batch_size, True, False))
    if unlabelled:
        out.append(("unlabelled", data.train, cfg.unlabelled_batch, False, True))
    if pseudo:
        rest = sorted(set(data.train_ids) - set(data.labelled_ids))
        if not rest:
            raise TrainError("pseudo_labels is set but every training episode is labelled; "
                             "lower label_fraction or drop pseudo_labels.")
        windows = LabelledWindows(data.dataset.path, window=data.train.window,
                                  stride=data.train.stride, episodes=rest,
                                  columns=data.columns, labelled=data.labelled_ids)
        out.append(("pseudo", windows, cfg.unlabelled_batch, True, False))
    if not out:
        raise TrainError("Nothing to train on: no training episode is labelled and the model has "
                         "no self-supervised loss; raise label_fraction or set model.loss.w_byog > 0.")
    streams = []
    for name, windows, batch, g, b in out:
        loader, sampler = train_loader(windows, cfg, seed=seed + STREAM_SEED_OFFSETS[name],
                                       rank=rank, world=world, batch_size=batch, what=name)
        streams.append(Stream(name, loader, sampler, g, b))
    return streams


def combine_batches(streams: Sequence[Stream], parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One step's batch: the streams' batches concatenated, with ``labelled`` (rows the
    grounding loss reads) and ``byog`` (rows the self-supervised loss reads) set by each
    stream's role, and ``true_labelled`` (rows of the labelled stream) for the logs."""
    rows = []
    for st, part in zip(streams, parts):
        n = part["valid"].shape[0]
        rows.append((part, torch.full((n,), st.ground), torch.full((n,), st.byog),
                     n if st.name == "labelled" else 0))
    out: dict[str, Any] = {}
    for key in parts[0]:
        vals = [p[key] for p, *_ in rows]
        if isinstance(vals[0], torch.Tensor):
            out[key] = torch.cat(vals)
        elif isinstance(vals[0], list):
            out[key] = [x for v in vals for x in v]
        else:
            out[key] = vals[0]
    out["labelled"] = torch.cat([g for _, g, _, _ in rows])
    out["byog"] = torch.cat([b for _, _, b, _ in rows])
    out["true_labelled"] = sum(n for *_, n in rows)
    return out


def val_batches(windows: LabelledWindows | None, batch_size: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` batches of ``batch_size`` windows in episode order (the old validation
    set, which moved with the batch size; kept for callers that want exactly that).
    The trainer and the studies use :func:`validation_batches`."""
    if windows is None or n == 0:
        return []
    items = [windows[i] for i in range(min(len(windows), n * batch_size))]
    return [collate_windows(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def validation_indices(n_windows: int, count: int | None) -> list[int]:
    """``count`` window indices spaced evenly over ``n_windows`` (in episode order, so over
    every held-out episode), first and last included; all of them when ``count`` is None or
    not smaller. The same whatever the batch size."""
    if count is None or count >= n_windows:
        return list(range(n_windows))
    if count == 1:
        return [0]
    return sorted({round(i * (n_windows - 1) / (count - 1)) for i in range(count)})


def validation_batches(windows: LabelledWindows | None, val_windows: int | None,
                       batches: int) -> list[dict[str, Any]]:
    """The validation set: :func:`validation_indices` of ``windows`` split into ``batches``
    batches of near-equal size (``batches`` = 0: no validation). Metrics pool over the batches,
    so the split changes memory per pass, not what is measured."""
    if windows is None or batches == 0 or len(windows) == 0:
        return []
    idx = validation_indices(len(windows), val_windows)
    per = math.ceil(len(idx) / batches)
    return [collate_windows([windows[i] for i in idx[j:j + per]]) for j in range(0, len(idx), per)]


def dataset_identity(ds: Dataset, tokenizer: Any) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on."""
    info = ds.info
    return {"env_id": info.get("env_id") or info.get("env"), "frame_shape": list(ds.frame_shape),
            "action_space": info.get("action_space"), "format_version": info.get("format_version"),
            "annotator_version": info.get("annotator_version"),
            "vocab_hash": vocab_hash(tokenizer), "vocab_size": len(tokenizer)}
