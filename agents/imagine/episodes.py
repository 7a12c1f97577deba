"""Episodes for imagination: the agent's training / validation episodes of a dataset and the
annotation sentences used as prompts.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from agents.imagine.config import WorldModelError


def _discrete_actions(space: dict[str, Any] | Any) -> int:
    n = space.get("n") if isinstance(space, dict) else getattr(space, "n", None)
    kind = space.get("type") if isinstance(space, dict) else type(space).__name__
    if kind != "Discrete" or n is None:
        raise WorldModelError(f"Imagination needs a Discrete action space, this one is {kind}; "
                              "use a dataset or env with discrete actions.")
    return int(n)


def dataset_episodes(agent: Any, data: str, *, max_train: int | None,
                     ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]], int]:
    """(train episodes, validation episodes, n_actions) of a dataset, split as the agent's
    trainer split it (``loader.val_fraction`` / ``loader.split_seed`` of its checkpoint)."""
    from collect.dataset import open_dataset

    ds = open_dataset(data)
    n_actions = _discrete_actions(ds.info.get("action_space") or {})
    train, val = _split(agent, ds, max_train)

    def read(ids: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        eps = [ds.episode(i) for i in ids]
        return [(e.frames, np.asarray(e.actions, np.int64)) for e in eps]

    return read(train), read(val), n_actions


def _split(agent: Any, ds: Any, max_train: int | None) -> tuple[list[int], list[int]]:
    """Training and validation episode ids of ``ds`` as the agent's trainer split them."""
    from collect.dataset import split_episodes

    loader = ((getattr(agent, "metadata", None) or {}).get("config") or {}).get("loader") or {}
    train, val = split_episodes(ds.num_episodes, float(loader.get("val_fraction", 0.2)),
                                int(loader.get("split_seed", 0)))
    return train[:max_train] if max_train is not None else train, val or train[-1:]


def training_prompts(agent: Any, data: str, n: int, max_train: int | None = None) -> list[str]:
    """The ``n`` most frequent annotation sentences of the agent's training episodes (prompts
    for :mod:`agents.imagine.steering`; never read from the validation episodes it is scored on)."""
    from agents.imagine.steering import frequent_sentences
    from collect.dataset import open_dataset

    ds = open_dataset(data)
    train, _ = _split(agent, ds, max_train)
    return frequent_sentences([ds.episode(i).annotations for i in train], n)


def _dataset_env(data: str | None) -> str | None:
    """The env name a dataset was collected from (its ``meta/info.json``), if any."""
    from collect.dataset import open_dataset

    return None if data is None else open_dataset(data).info.get("env")
