"""Live narration: one API for a single stream and for N streams at once.

* :class:`Narrator` (``narrator``): frames in, one slot of narration out per frame, with a
  KV cache and a bounded, re-encoded context; :class:`VectorNarrator` (``vector_narration``)
  is the same for N envs that reset at different steps, in one batched decode per step.
* :class:`NarrationWrapper` / :class:`VectorNarrationWrapper` put them on a gymnasium env /
  vector env (``info["narration"]``); :func:`narrate_env` picks the right one;
  :func:`load_narrating_agent` loads a checkpoint to narrate with (``narration``).
* :func:`narrate_clips` narrates clips offline with the live narrator (``clip_narration``).
* ``python -m agents.narrate`` (``cli``, the console script ``byog-narrate``): narrate a live
  env to the terminal, an mp4, a JSONL log and ``summary.json``.

Names are imported on first use (``import agents.narrate.narrator`` stays light). The command
line's names (``main``, ``cli``, ``NarrateConfig``...), which lived in the old module
``agents.narrate``, still resolve here with a ``DeprecationWarning`` naming
``agents.narrate.command``.
"""
from __future__ import annotations

from typing import Any

from agents._moved import package_attribute

_API = {
    "Narrator": "agents.narrate.narrator",
    "NarrationStep": "agents.narrate.narrator",
    "FORECASTS": "agents.narrate.narrator",
    "training_window": "agents.narrate.narrator",
    "VectorNarrator": "agents.narrate.vector_narration",
    "VECTOR_FORECASTS": "agents.narrate.vector_narration",
    "VectorNarrationWrapper": "agents.narrate.vector_narration",
    "NarrationWrapper": "agents.narrate.narration",
    "load_narrating_agent": "agents.narrate.narration",
    "narrate_clips": "agents.narrate.clip_narration",
}
_OLD_MODULE = "agents.narrate.command"  # what ``agents.narrate`` was before it became this package
_OLD_NAMES = frozenset({  # the old module's other names: they warn
    "EMPTY", "EpisodeLog", "JSONL", "LAG_WINDOW", "MP4", "NarrateConfig", "NarrationError",
    "PLOT", "SUMMARY", "_arm", "_ci", "_finite", "_fmt", "_record", "check_frame_shape", "cli",
    "drift_summary", "main", "make_printer", "offline_narration", "plot_over_time",
    "print_summary", "run_episodes", "run_episodes_vector", "span_prf", "summarize",
    "video_subtitles",
})


def narrate_env(env: Any, agent: Any, **options: Any) -> Any:
    """Live narration on ``env``: a gymnasium vector env gets a :class:`VectorNarrationWrapper`
    (one batched decode per step, each env reset on its own), a single env a
    :class:`NarrationWrapper`; ``options`` (``window``, ``forecast``, ``greedy``...) go to it."""
    import gymnasium as gym

    if isinstance(env, gym.vector.VectorEnv):
        from agents.narrate.vector_narration import VectorNarrationWrapper

        return VectorNarrationWrapper(env, agent, **options)
    from agents.narrate.narration import NarrationWrapper

    return NarrationWrapper(env, agent, **options)


def __getattr__(name: str) -> Any:
    return package_attribute(__name__, name, _API, _OLD_MODULE, _OLD_NAMES)


__all__ = sorted([*_API, "narrate_env"])
