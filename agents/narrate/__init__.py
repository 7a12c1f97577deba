"""Live narration: one API for a single stream and for N streams at once.

* :class:`Narrator` (``narrator``): frames in, one slot of narration out per frame, with a
  KV cache and a bounded, re-encoded context; :class:`VectorNarrator` (``vector_narration``)
  is the same for N envs that reset at different steps, in one batched decode per step.
* :class:`NarrationWrapper` / :class:`VectorNarrationWrapper` put them on a gymnasium env /
  vector env (``info["narration"]``); :func:`narrate_env` picks the right one;
  :func:`load_narrating_agent` loads a checkpoint to narrate with (``narration``).
* :func:`narrate_clips` narrates clips offline with the live narrator (``clip_narration``).
* ``python -m agents.narrate`` (``command``, the console script ``byog-narrate``): narrate a live
  env to the terminal, an mp4, a JSONL log and ``summary.json``.

Names are imported on first use (``import agents.narrate.narrator`` stays light). The command
line's names (``main``, ``cli``, ``NarrateConfig``...), which lived in the old module
``agents.narrate``, still resolve here with a ``DeprecationWarning`` naming their new home
(``agents.narrate.command``, ``.config``, ``.episodes``, ``.scoring``, ``.summary``).
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
# the old module's other names -> where they live now (they warn)
_OLD = {
    "EMPTY": "agents.narrate.summary",
    "EpisodeLog": "agents.narrate.episodes",
    "JSONL": "agents.narrate.config",
    "LAG_WINDOW": "agents.narrate.scoring",
    "MP4": "agents.narrate.config",
    "NarrateConfig": "agents.narrate.config",
    "NarrationError": "agents.errors",
    "PLOT": "agents.narrate.config",
    "SUMMARY": "agents.narrate.config",
    "_arm": "agents.narrate.scoring",
    "_ci": "agents.narrate.summary",
    "_finite": "agents.narrate.summary",
    "_fmt": "agents.narrate.summary",
    "_record": "agents.narrate.episodes",
    "check_frame_shape": "agents.narrate.narration",
    "cli": "agents.narrate.command",
    "drift_summary": "agents.narrate.scoring",
    "main": "agents.narrate.command",
    "make_printer": "agents.narrate.episodes",
    "offline_narration": "agents.narrate.scoring",
    "plot_over_time": "agents.narrate.summary",
    "print_summary": "agents.narrate.summary",
    "run_episodes": "agents.narrate.episodes",
    "run_episodes_vector": "agents.narrate.episodes",
    "span_prf": "agents.narrate.scoring",
    "summarize": "agents.narrate.scoring",
    "video_subtitles": "agents.narrate.episodes",
}


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
    return package_attribute(__name__, name, _API, _OLD)


__all__ = sorted([*_API, "narrate_env"])
