"""`sb3:<path.zip>`: act with a saved stable-baselines3 model."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from collect.policies.base import Policy, PolicyError

#: Algorithms tried, in order, when the zip does not name its class.
ALGORITHMS = ("PPO", "A2C", "DQN", "SAC", "TD3", "DDPG")


def _algorithm_from_zip(path: Path) -> str | None:
    """Reads the policy class module from the zip's `data` JSON to guess the algorithm."""
    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data"))
    module = str(data.get("policy_class", {}).get(":serialized:", "")) + json.dumps(
        data.get("policy_class", {})
    )
    for algo in ALGORITHMS:
        if f"stable_baselines3.{algo.lower()}" in module:
            return algo
    return None


def load_sb3_model(path: str | Path) -> Any:
    """Loads a stable-baselines3 model of any algorithm from `path` on the CPU.

    Raises:
        PolicyError: When the file is missing, not an SB3 zip, or no algorithm can load it.
    """
    import stable_baselines3 as sb3

    path = Path(path)
    if not path.is_file():
        raise PolicyError(
            f"sb3 policy: model file {str(path)!r} does not exist; pass sb3:<path.zip> of a model"
            " saved with model.save()."
        )
    try:
        guess = _algorithm_from_zip(path)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise PolicyError(
            f"sb3 policy: {str(path)!r} is not a stable-baselines3 model zip ({exc}); re-save it"
            " with model.save(path)."
        ) from None
    order = ([guess] if guess else []) + [a for a in ALGORITHMS if a != guess]
    errors = []
    for algo in order:
        try:
            return getattr(sb3, algo).load(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - each algorithm fails differently
            errors.append(f"{algo}: {type(exc).__name__}: {exc}")
    raise PolicyError(
        f"sb3 policy: no stable-baselines3 algorithm could load {str(path)!r} ("
        + "; ".join(e[:120] for e in errors[:2])
        + "); the file may be corrupt or saved by an incompatible version."
    )


class SB3Policy(Policy):
    """Acts with `model.predict(obs, deterministic=...)` of a saved SB3 model.

    Args:
        path: The `.zip` written by `model.save`.
        env: The environment to act in; its observation space must equal the model's.
        deterministic: Whether to take the mode of the action distribution.
    """

    def __init__(self, path: str | Path, env: gym.Env, deterministic: bool = False) -> None:
        self.model = load_sb3_model(path)
        self.deterministic = deterministic
        want, have = self.model.observation_space, env.observation_space
        if not _spaces_match(want, have):
            raise PolicyError(
                f"sb3 policy: the model {str(path)!r} was trained on observations {want}, but the"
                f" env gives {have}; use the env (and wrappers) the model was trained with."
            )
        if self.model.action_space != env.action_space:
            raise PolicyError(
                f"sb3 policy: the model's action space {self.model.action_space} differs from the"
                f" env's {env.action_space}."
            )

    def act(self, obs: Any, info: dict[str, Any]) -> Any:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return action.item() if isinstance(action, np.ndarray) and action.shape == () else action


def _spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Whether a model trained on ``a`` can act on observations of ``b``.

    SB3 wraps image envs in ``VecTransposeImage``, so a CnnPolicy model is trained on
    ``(C, H, W)`` while the env gives ``(H, W, C)``; ``model.predict`` transposes such
    observations itself (``maybe_transpose``), so a channel-first model matches its
    channel-last env.
    """
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        if a.dtype != b.dtype:
            return False
        channel_first = len(b.shape) == 3 and a.shape == (b.shape[2], b.shape[0], b.shape[1])
        return a.shape == b.shape or channel_first
    return a == b


def make(arg: str | None, env: gym.Env, seed: int | None) -> SB3Policy:
    """Registry factory of `sb3:<path.zip>`."""
    return SB3Policy(str(arg), env)
