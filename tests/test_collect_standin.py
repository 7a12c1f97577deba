"""The stand-in env of the collector tests passes gymnasium's checks and encodes seed and step."""
from __future__ import annotations

from gymnasium.utils.env_checker import check_env
from standin_env import StandInEnv, decode_frame


def test_standin_passes_check_env_and_encodes_seed_and_step():
    env = StandInEnv()
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=11)
    assert decode_frame(obs) == (11, 0) and info["annotations"] == ["start 11"]
    for t in range(1, 5):
        obs, r, term, _, info = env.step(1)
        assert decode_frame(obs) == (11, t)
    assert term and r == 1.0 and info["annotations"] == ["action 1", "goal reached"]
