"""`AnnotatedEnv`: applies an annotator and puts its sentences in ``info["annotations"]``."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from byog_env.annotators.base import Annotator


class AnnotatedEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds ``info["annotations"]: list[str]`` at reset and at every step.

    ``annotator`` is an annotator instance, a registered annotator name, or its ``"module:Class"`` path. The annotator sees the env's info plus this step's ``reward``, ``terminated`` and
    ``truncated`` (reset: 0.0, False, False); the info returned to the caller is a fresh dict
    with only ``annotations`` added.

    >>> import byog_env
    >>> env = byog_env.make("crafter", length=5)
    >>> _, info = env.reset(seed=0)
    >>> isinstance(info["annotations"], list)
    True
    """

    def __init__(self, env: gym.Env, annotator: Annotator | str) -> None:
        if isinstance(annotator, str):  # a registered name, or "module:Class" as in the env spec
            from byog_env.registry import make_annotator

            annotator = make_annotator(annotator)
        # Record the annotator by import path so env specs stay JSON-serialisable.
        cls = type(annotator)
        gym.utils.RecordConstructorArgs.__init__(
            self, annotator=f"{cls.__module__}:{cls.__qualname__}"
        )
        gym.Wrapper.__init__(self, env)
        self.annotator = annotator
        # Frames are the product: only rgb_array rendering is offered (no windows on servers).
        modes = [m for m in env.metadata.get("render_modes", []) if m == "rgb_array"]
        self.metadata = {**env.metadata, "render_modes": modes}
        self._prev: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        view = {**info, "reward": info.get("reward", 0.0), "terminated": False, "truncated": False}
        info = dict(info)
        info["annotations"] = list(self.annotator(None, None, view))
        self._prev = view
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        view = {**info, "reward": reward, "terminated": terminated, "truncated": truncated}
        info = dict(info)
        info["annotations"] = list(self.annotator(self._prev, action, view))
        self._prev = view
        return obs, reward, terminated, truncated, info
