"""Live narration on a gymnasium env, and loading an agent to narrate with.

:class:`NarrationWrapper` puts one stream of the :class:`agents.narrate.narrator.Narrator` (the one
live narration API; its module explains the bounded, re-encoded context) on a gymnasium env
and writes ``info["narration"]`` (text), ``info["narration_tokens"]`` and, with
``forecast=N``, ``info["forecast"]`` every step. :func:`load_narrating_agent` loads a
checkpoint and records the frame shape it was trained on.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.errors import NarrationError
from agents.narrate.narrator import (  # re-exported: the old import paths
    FORECASTS,
    NarrationStep,
    Narrator,
    needs_column_message,
    training_window,
)

# --------------------------------------------------------------------------- gymnasium wrapper


class NarrationWrapper(gym.Wrapper):
    """Narrates every frame of a single (non-vector) env with a BYOG agent.

    ``reset`` and ``step`` add to ``info``: ``narration`` (str), ``narration_tokens``
    (int64 [k]), ``narration_entropy`` (float), ``narration_cut`` (int: word tokens the carry
    bound cut, see :mod:`agents.model.slot_rule`), ``narration_ill_formed`` (bool: the slot early exit
    wrote ``<nil>`` over a word), ``narration_gated`` (int: sentence-first words the word gate
    replaced with ``<nil>``), ``narration_hushed`` (int: sentences the sentence gate left
    unsaid) and, with ``forecast=N``, ``forecast`` (N str)
    and ``forecast_tokens`` (int64 [N, k]). Reset clears the context (and seeds sampling with
    the reset seed, so the same seed gives the same narration); memory stays bounded by
    ``window`` frames (see the module docstring).

    >>> import byog_env, torch
    >>> from agents.config import make_model_config
    >>> from agents.model.agent import BYOGAgent
    >>> from agents.model.text import train_tokenizer
    >>> tok = train_tokenizer(["collected 1 wood"])
    >>> agent = BYOGAgent(make_model_config("tiny", text={"tokens_per_frame": 4}), tok)
    >>> env = NarrationWrapper(byog_env.make("crafter", length=20), agent, window=8)
    >>> obs, info = env.reset(seed=0)
    >>> info["narration_tokens"].shape, isinstance(info["narration"], str)
    ((4,), True)

    Args:
        env: An env with ``Box(0, 255, (H, W, 3), uint8)`` observations (any ``byog_env.make`` env).
        agent: A BYOG agent; when it carries ``frame_shape`` (set by :func:`load_narrating_agent`)
            it must match the env's.
        window, keep, forecast, greedy, temperature, top_k, cut, early_exit, word_share,
            sentence_share: see :class:`Narrator`.
        shares: Also put ``narration_decoded`` (int64 [k], the slot as decoded) and
            ``narration_shares`` (float32 [k], each decoded token's share of the words'
            probability) in ``info``: what ``agents.narrate --sentence-share-sweep`` reads.
    """

    def __init__(self, env: gym.Env, agent: Any, *, window: int | None = None, keep: int | None = None,
                 forecast: int = 0, greedy: bool = True, temperature: float = 1.0,
                 top_k: int | None = None, cut: bool = True, early_exit: bool = True,
                 word_share: float | None = None, sentence_share: float | None = None,
                 shares: bool = False) -> None:
        super().__init__(env)
        check_rgb_frames(env.observation_space, agent, "NarrationWrapper")
        if agent.encoder.obs.needs_column:  # an env gives frames only
            raise NarrationError(needs_column_message(agent.encoder.obs.needs_column))
        self.narrator = Narrator(agent, window=window, keep=keep, forecast=forecast, greedy=greedy,
                                 temperature=temperature, top_k=top_k, cut=cut,
                                 early_exit=early_exit, word_share=word_share,
                                 sentence_share=sentence_share, shares=shares)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.narrator.reset(seed)
        return obs, self._narrate(obs, info)

    def reset_env(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env but NOT the narration: its first frame is narrated with the context of
        the frames before (episodes narrated as one stream, ``agents.narrate --stream``)."""
        if self.narrator.state is None:
            raise NarrationError("NarrationWrapper.reset_env called before reset(); call env.reset() first.")
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._narrate(obs, info)

    def step(self, action: Any):
        if self.narrator.state is None:
            raise NarrationError("NarrationWrapper.step called before reset(); call env.reset() first.")
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._narrate(obs, info)

    def _narrate(self, obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        out = self.narrator.step(np.asarray(obs)[None])
        info = dict(info)
        info["narration"] = out.text[0]
        info["narration_tokens"] = out.ids[0].cpu().numpy()
        info["narration_entropy"] = float(out.entropy[0])
        info["narration_cut"] = int(out.cut[0])  # tokens the carry bound cut (agents.model.slot_rule)
        info["narration_ill_formed"] = bool(out.ill_formed[0])
        info["narration_gated"] = int(out.gated[0])  # words the word gate replaced with <nil>
        info["narration_hushed"] = int(out.hushed[0])  # sentences the sentence gate left unsaid
        if self.narrator.shares:  # the slot as decoded and what the sentence gate reads of it
            info["narration_decoded"] = out.decoded[0].cpu().numpy()
            info["narration_shares"] = out.shares[0].float().cpu().numpy()
        if self.narrator.forecast:
            info["forecast"] = out.forecast[0]
            info["forecast_tokens"] = out.forecast_ids[0].cpu().numpy()
        return info


# --------------------------------------------------------------------------- checkpoints


def check_rgb_frames(space: gym.Space, agent: Any, who: str) -> None:
    """Raise :class:`NarrationError` unless ``space`` holds RGB frames ``Box(0, 255, (H, W, 3),
    uint8)`` of the shape the agent was trained on (see :func:`check_frame_shape`)."""
    if not (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3 and space.shape[-1] == 3):
        raise NarrationError(
            f"{who} needs RGB frames Box(0, 255, (H, W, 3), uint8) per env, got {space}; build "
            "the env with byog_env.make, which gives every env RGB frames.")
    check_frame_shape(getattr(agent, "frame_shape", None), tuple(space.shape))


def check_frame_shape(expected: tuple[int, ...] | None, actual: tuple[int, ...]) -> None:
    """Raise :class:`NarrationError` when a checkpoint's frame shape differs from the env's.

    Args:
        expected: The frame shape the checkpoint was trained on (None = unknown: no check).
        actual: The env's observation shape.
    """
    if expected is not None and tuple(expected) != tuple(actual):
        raise NarrationError(
            f"The checkpoint was trained on {_shape(expected)} frames but this env gives "
            f"{_shape(actual)} frames; narrate an env with the checkpoint's frame size (e.g. "
            f"byog_env.make(name, size={int(expected[0])}) where the env takes a size) or "
            "use a checkpoint trained on this env.")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(s)) for s in shape)


def checkpoint_frame_shape(path: str | Path) -> tuple[int, int, int] | None:
    """The frame shape recorded with a checkpoint (the dataset identity), or None.

    Looks for a ``frame_shape`` key (at any depth) in the JSON files of the checkpoint
    directory and, for a checkpoint inside a run directory, of its parent.
    """
    path = Path(path)
    dirs = [path, path.parent] if path.is_dir() else [path.parent]
    for d in dirs:
        for f in sorted(d.glob("*.json")):
            try:
                found = _find_key(json.loads(f.read_text()), "frame_shape")
            except (OSError, ValueError):
                continue
            if found is not None and len(found) == 3:
                return tuple(int(s) for s in found)  # type: ignore[return-value]
    return None


def _find_key(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def load_narrating_agent(path: str | Path, *, device: str = "cpu") -> Any:
    """Load an agent for live narration from a run directory or a checkpoint directory.

    Uses the trainer's :func:`agents.training.loading.load_agent` (a run directory, a
    checkpoint directory or a ``save_pretrained`` directory); sets ``agent.frame_shape`` from
    the checkpoint's dataset identity when one is recorded, so :class:`NarrationWrapper`
    refuses an env with another frame size.

    Raises:
        NarrationError: no such directory, or nothing loadable there.
    """
    from agents.training.loading import load_agent

    path = Path(path)
    if not path.exists():
        raise NarrationError(f"Checkpoint {str(path)!r} does not exist; pass a run directory "
                             "written by `python -m agents.training` or a checkpoint directory.")
    try:
        agent = load_agent(path)
    except (ValueError, OSError) as err:  # every AgentsError is a ValueError
        raise NarrationError(f"Cannot load a narrating agent from {str(path)!r}: {err}") from None
    agent = agent.to(device).eval()
    dataset = (getattr(agent, "metadata", None) or {}).get("dataset") or {}
    shape = dataset.get("frame_shape")
    agent.frame_shape = tuple(int(s) for s in shape) if shape else checkpoint_frame_shape(path)
    return agent


__all__ = ["FORECASTS", "NarrationError", "NarrationStep", "NarrationWrapper", "Narrator",
           "check_frame_shape", "check_rgb_frames", "checkpoint_frame_shape", "load_narrating_agent",
           "training_window"]
