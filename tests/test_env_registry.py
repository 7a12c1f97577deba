"""Registry, BabyAI/MiniGrid/generic envs, MineRL adapter without MineRL installed."""
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import byog_env
from byog_env.minerl import TASKS, observation_frame

GRID_NAMES = [n for n in byog_env.list_envs() if n.startswith(("babyai-", "minigrid-"))]


def test_list_envs_families():
    names = byog_env.list_envs()
    assert names[0] == "crafter" and len(names) == len(set(names))
    assert {"babyai-gotolocal", "minigrid-empty-8x8", "minerl-treechop"} <= set(names)
    assert [n for n in names if n.startswith("minerl-")] == [f"minerl-{t}" for t in TASKS]
    assert len(GRID_NAMES) > 150


def test_cli_lists_names():
    out = subprocess.run([sys.executable, "-m", "byog_env", "list"], capture_output=True,
                         text=True, check=True).stdout.split()
    # A fresh process (this one may hold plugin families other tests registered).
    code = "import byog_env; print(*byog_env.list_envs())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out == fresh.stdout.split() and out[0] == "crafter"
    bad = subprocess.run([sys.executable, "-m", "byog_env", "nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_import_is_light():
    code = "import sys, byog_env; print(sorted(m for m in ('crafter','minigrid','cv2','torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name,match", [
    ("crafterr", "Close matches: crafter"), ("babyai-gotolocl", "babyai-gotolocal"),
    ("minerl-treechp", "minerl-treechop"), ("CartPol-v1", "CartPole-v1"),
])
def test_unknown_name_lists_close_matches(name, match):
    with pytest.raises(byog_env.UnknownEnvError, match=match) as err:
        byog_env.make(name)
    assert "python -m byog_env list" in str(err.value) and isinstance(err.value, ValueError)


def test_minerl_missing_extra_error():
    # MineRL cannot be installed here; the error must say how to install it.
    try:
        import minerl  # noqa: F401
        pytest.skip("minerl is installed")
    except ImportError:
        pass
    with pytest.raises(gym.error.DependencyNotInstalled, match=r'pip install "byog\[minerl\]"'):
        byog_env.make("minerl-treechop")


def test_minerl_observation_frame():
    pov = np.zeros((360, 640, 3), np.uint8)
    pov[:, 320:] = 200
    frame = observation_frame({"pov": pov}, size=64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert frame[:, :31].max() == 0 and frame[:, 33:].min() == 200
    with pytest.raises(ValueError, match="needs a 'pov' image"):
        observation_frame({"inventory": {}})


@pytest.mark.parametrize("name", ["babyai-unlockpickup", "minigrid-doorkey-5x5"])
@pytest.mark.parametrize("view", ["full", "agent"])
def test_grid_env_contract_and_determinism(name, view):
    env = byog_env.make(name, view=view)
    check_env(env)
    # The unwrapped level carries the annotated env's spec (as gymnasium.make sets it), so its
    # render check would rebuild the annotated env with render_mode="human": skipped.
    check_env(env.unwrapped, skip_render_check=True)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=3)
        assert obs.shape == (64, 64, 3) and info["annotations"][0] == f"mission {info['mission']}"
        rng, frames, anns = np.random.default_rng(0), [obs], [info["annotations"]]
        for _ in range(60):
            obs, _r, te, tr, info = env.step(int(rng.integers(6)))
            frames.append(obs)
            anns.append(info["annotations"])
            if te or tr:
                break
        runs.append((np.stack(frames), anns))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_babyai_bot_on_unwrapped_reaches_goal(capsys):
    from minigrid.utils.baby_ai_bot import BabyAIBot

    env = byog_env.make("babyai-gotolocal", max_episode_steps=64)
    _, info = env.reset(seed=1)
    bot = BabyAIBot(env.unwrapped)
    events = []
    for _ in range(64):
        _obs, _r, te, tr, info = env.step(bot.replan())
        events += info["annotations"]
        if te or tr:
            break
    assert "reached the goal" in events and events[-1] == "episode ended"
    assert "Sampling rejected" not in capsys.readouterr().out


def test_generic_env_frames_and_events():
    env = byog_env.make("CartPole-v1", size=48)
    check_env(env)
    obs, info = env.reset(seed=0)
    assert obs.shape == (48, 48, 3) and info["annotations"] == []
    _, _, _, _, info = env.step(0)
    assert info["annotations"] == ["got reward"]
    with pytest.raises(gym.error.Error, match="render_mode='rgb_array'"):
        byog_env.make("CartPole-v1", render_mode="human")


# ------------------------------------------------- a family's study facts (issue 23, item 2)
def test_a_family_registers_the_facts_a_study_reads():
    """A new family `zz-test` answers the study's lookups (expert policy, live cap, symbolic
    oracle) through its registration alone: no table in experiments/ names it."""
    import numpy as np
    import plugins.toy_env  # noqa: F401  (registers the toy annotator)

    import byog_env
    from experiments.action_transfer import live_cap
    from experiments.oracles import SymbolicInfo, symbolic_fn
    from experiments.run_all import _collect_step_s, expert_policy

    byog_env.register_family(
        "zz-test", "plugins.toy_env:make_toy", annotator="toy",
        ids=[byog_env.EnvId("zz-test", "byog/ZzTest-v0", {"size": 5})],
        policy="random", symbolic="plugins.toy_env:toy_symbolic", live_step_cap=7,
        collect_step_s=0.5, replace=True)
    assert expert_policy("zz-test") == "random"
    assert live_cap("zz-test", None) == 7 and live_cap("zz-test", 3) == 3
    assert _collect_step_s("zz-test") == 0.5
    env = SymbolicInfo(byog_env.make("zz-test"), "zz-test")
    _, info = env.reset(seed=0)
    assert info["symbolic"].shape == (5,) and info["symbolic"].sum() == 1
    assert symbolic_fn("zz-test") is symbolic_fn("zz-test")  # loaded once, by its path
    # the built-in families answer the same way (what experiments/ hard-coded before)
    assert expert_policy("crafter") == "crafter-scripted" and live_cap("crafter", None) == 500
    assert expert_policy("babyai-unlocklocal") == "babyai-bot" and live_cap("babyai-gotolocal", None) is None
    assert symbolic_fn("crafter").__name__ == "crafter_symbolic"
    assert np.isclose(byog_env.family("crafter").collect_step_s, 0.004)


def test_an_unregistered_family_is_one_error_never_a_default():
    import plugins.toy_env  # noqa: F401  (registers the toy annotator)

    import byog_env
    from experiments.action_transfer import live_cap
    from experiments.errors import ExperimentError
    from experiments.oracles import symbolic_fn
    from experiments.run_all import expert_policy

    for lookup in (expert_policy, symbolic_fn, lambda e: live_cap(e, None)):
        with pytest.raises((ExperimentError, byog_env.UnknownEnvError)) as err:
            lookup("zz-nope")
        assert "\n" not in str(err.value) and "zz-nope" in str(err.value)
    # a registered family without the fact says how to register it
    byog_env.register_family("zz-bare", "plugins.toy_env:make_toy", annotator="toy",
                             ids=[byog_env.EnvId("zz-bare", "byog/ZzBare-v0")], replace=True)
    with pytest.raises(ExperimentError, match="registers no expert policy.*policy="):
        expert_policy("zz-bare")
    with pytest.raises(ExperimentError, match="registers no symbolic state.*symbolic="):
        symbolic_fn("zz-bare")
