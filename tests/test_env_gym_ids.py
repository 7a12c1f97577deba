"""gymnasium ids for every env family: ``check_env``, same-seed determinism, specs that rebuild
the annotated env, the family registry (plugins by import path), and the toy-family recipe."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import byog_env
from byog_env.families import upstream_grid_ids

ROOT = Path(__file__).resolve().parents[1]
TOY = "plugins.toy_env:toy"
BYOG_IDS = sorted(i for i in gym.registry if i.startswith("byog/"))
FAST_IDS = ("byog/Crafter-v0", "byog/BabyAI-GoToLocal-v0", "byog/MiniGrid-DoorKey-5x5-v0")
"""One id per family runs unmarked; the other ~170 levels run with the slow tests."""


def _rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, list[list[str]]]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames, notes = [obs], [info["annotations"]]
    for _ in range(steps):
        obs, _r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        frames.append(obs)
        notes.append(info["annotations"])
        if term or trunc:
            break
    return np.stack(frames), notes


def test_every_family_id_is_registered():
    assert "byog/Crafter-v0" in BYOG_IDS and "byog/BabyAI-GoToLocal-v0" in BYOG_IDS
    assert "byog/MiniGrid-Empty-8x8-v0" in BYOG_IDS
    assert len(BYOG_IDS) > 150
    # MineRL ids only with the extra installed (its simulator cannot be built here).
    import importlib.util

    has_minerl = importlib.util.find_spec("minerl") is not None
    assert ("byog/MineRLTreechop-v0" in BYOG_IDS) == has_minerl


@pytest.mark.parametrize("env_id", [i if i in FAST_IDS else pytest.param(i, marks=pytest.mark.slow)
                                    for i in BYOG_IDS])
def test_check_env_and_same_seed_determinism(env_id):
    """Every registered id: gymnasium's checker, then two fresh envs, same seed, same actions,
    same frames and annotations (a few steps, to stay fast)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(byog_env.make(env_id))  # its render check rebuilds the env from env.spec
    (f1, n1), (f2, n2) = (_rollout(gym.make(env_id), seed=7, steps=6) for _ in range(2))
    assert f1.dtype == np.uint8 and f1.shape[-1] == 3
    assert np.array_equal(f1, f2) and n1 == n2


@pytest.mark.parametrize("name,gym_id", [
    ("crafter", "byog/Crafter-v0"), ("babyai-gotolocal", "byog/BabyAI-GoToLocal-v0"),
    ("BabyAI-GoToLocal-v0", "byog/BabyAI-GoToLocal-v0"), ("minigrid-doorkey-5x5", "byog/MiniGrid-DoorKey-5x5-v0"),
])
def test_spec_is_the_annotated_env_and_rebuilds_it(name, gym_id):
    env = byog_env.make(name, size=32)
    assert env.spec is not None and env.spec.id == gym_id
    for rebuilt in (gym.make(env.spec), gym.make(env.spec.id, size=32)):
        assert rebuilt.observation_space == env.observation_space
        _, info = rebuilt.reset(seed=1)
        assert "annotations" in info
    # Spec kwargs survive JSON (Minari stores the spec as JSON).
    assert gym.envs.registration.EnvSpec.from_json(env.spec.to_json()).kwargs["size"] == 32


def test_grid_ids_read_without_importing_minigrid_match_its_registry():
    code = ("import sys, gymnasium as gym; from byog_env.families import upstream_grid_ids as u;"
            "a = u.__wrapped__(); assert 'minigrid' not in sys.modules; import minigrid;"
            "print(a == u.__wrapped__(), len(a))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "True" and int(out.stdout.split()[1]) > 150
    assert upstream_grid_ids()  # minigrid is installed here


def test_family_info_columns_become_episode_fields():
    crafter, babyai, generic = (byog_env.family(n) for n in ("crafter", "babyai-gotolocal", "CartPole-v1"))
    assert crafter.name == "crafter" and babyai.name == "babyai" and generic.name == "generic"
    info = {"achievements": {"collect_wood": 2, "wake_up": 0}, "inventory": {"wood": 2}}
    assert crafter.episode_fields(info, terminated=True, reward=1.0) == {
        "achievements": ["collect_wood"], "success": None}
    assert babyai.episode_fields({"mission": "go to the red ball"}, terminated=True, reward=0.5) == {
        "mission": "go to the red ball", "success": True}
    assert generic.episode_fields({"success": False}, terminated=True, reward=1.0) == {"success": False}
    assert generic.episode_fields({}, terminated=False, reward=1.0) == {"success": False}


def test_action_names_follow_the_env_convention():
    from byog_env.crafter import ACTIONS

    assert byog_env.action_names(byog_env.make("crafter", length=5)) == list(ACTIONS)  # 17 names
    assert byog_env.action_names(byog_env.make("minigrid-empty-5x5"))[-1] == "done"
    assert byog_env.action_names(byog_env.make(TOY)) is None  # a plugin that names none


def test_registry_errors_are_one_clear_line():
    with pytest.raises(byog_env.RegistryError, match="not registered; call register_annotator"):
        byog_env.register_family("x", "m:f", ids=(), annotator="nope")
    with pytest.raises(byog_env.RegistryError, match="'module:attr'"):
        byog_env.register_annotator("x", "no_colon")
    with pytest.raises(byog_env.RegistryError, match="already registered"):
        byog_env.register_family("crafter", "m:f", ids=(), annotator="crafter")
    with pytest.raises(byog_env.PluginImportError, match="put its directory on PYTHONPATH") as err:
        byog_env.make("no_such_module_xyz:toy")
    assert isinstance(err.value, ValueError)


def test_toy_family_by_import_path():
    env = byog_env.make(TOY)
    assert env.spec.id == "byog/Toy-v0" and "toy" in byog_env.list_envs()
    assert byog_env.family("toy").annotator == "toy" and "toy" in byog_env.list_annotators()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)
    small = gym.make("byog/ToySmall-v0")
    obs, _ = small.reset(seed=0)
    notes = [small.step(0)[-1]["annotations"] for _ in range(4)]  # walk left onto the edge
    assert obs.shape == (16, 16, 3) and ["facing wall"] in notes


def test_cli_lists_families_and_plugin_ids(plugin_env):
    run = [sys.executable, "-m", "byog_env"]
    env = plugin_env
    fams = subprocess.run([*run, "families"], capture_output=True, text=True, check=True, env=env).stdout
    assert [line.split("\t")[0] for line in fams.splitlines()] == [
        "crafter", "babyai", "minigrid", "minerl", "generic"]
    out = subprocess.run([*run, "list", "--ids", "--plugin", "plugins.toy_env", "--family", "toy"],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert out.splitlines() == ["toy\tbyog/Toy-v0\ttoy", "toy-small\tbyog/ToySmall-v0\ttoy"]
    bad = subprocess.run([*run, "list", "--plugin", "no_such_module_xyz"], capture_output=True,
                         text=True, env=env, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: Cannot import module 'no_such_module_xyz'")
    assert subprocess.run([*run, "list", "--family", "nope"], capture_output=True, env=env,
                          check=False).returncode == 2


def test_toy_family_collects_with_two_worker_processes(tmp_path, plugin_env):
    """The recipe end to end: spawned collector workers find the plugin from the env name."""
    out = tmp_path / "toy"
    env = plugin_env
    subprocess.run([sys.executable, str(ROOT / "collect" / "rollout.py"), "--env", TOY, "--num-envs", "2",
                    "--vector-mode", "process", "--episodes", "4", "--out", str(out), "--no-progress"],
                   check=True, env=env, cwd=tmp_path, capture_output=True, timeout=240)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["env"] == TOY
    import pyarrow.parquet as pq

    records = [json.loads(r) for r in pq.read_table(out / "meta" / "episodes.parquet").column("record").to_pylist()]
    assert sorted(r["episode_index"] for r in records) == [0, 1, 2, 3]
    for r in records:  # the family's info_columns, recorded per episode
        assert set(r["visits"]) <= {"left_edge", "right_edge"}
        assert r["success"] == ("right_edge" in r["visits"])
    notes = pq.read_table(out / records[0]["file"]).column("annotations").to_pylist()
    assert notes[-1] and notes[-1][-1] in ("episode ended", "time ran out")


@pytest.mark.parametrize("env_name", ["babyai-gotolocal", TOY])
def test_minari_export_recovers_the_annotated_env(env_name, tmp_path):
    minari = pytest.importorskip("minari")
    from collect.export import cli as export_cli
    from collect.rollout import CollectConfig, main

    main(CollectConfig(env=env_name, out=tmp_path / "d", episodes=2, max_episode_steps=6,
                       vector_mode="sync", progress=False))
    assert export_cli(["minari", str(tmp_path / "d"), "--out", str(tmp_path / "mn")]) == 0
    md = minari.MinariDataset(tmp_path / "mn" / "data")
    env = md.recover_environment()
    assert env.spec.id == byog_env.make(env_name).spec.id
    assert env.observation_space == md.observation_space
    _, info = env.reset(seed=0)
    assert "annotations" in info
    _, _, _, _, info = env.step(env.action_space.sample())
    assert isinstance(info["annotations"], list)


def test_minari_export_of_an_old_dataset_rebuilds_the_spec_from_the_env_name(tmp_path):
    """Datasets collected before ``env_spec`` was recorded: the spec comes from the env name."""
    from collect.export import _env_spec

    spec = _env_spec({"env": "babyai-gotolocal", "max_episode_steps": 6, "frame_shape": [64, 64, 3]})
    assert spec.id == "byog/BabyAI-GoToLocal-v0" and gym.make(spec).observation_space.shape == (64, 64, 3)
    assert _env_spec({"env": "babyai-gotolocal", "frame_shape": [8, 8, 3]}) is None  # other frames
    assert _env_spec({"env": "minerl-vpt", "frame_shape": [64, 64, 3]}) is None  # imported data


def test_collector_names_a_missing_plugin_in_one_line(tmp_path, capsys):
    from collect.rollout import cli

    code = cli(["--env", "no_such_module_xyz:toy", "--episodes", "1", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: Cannot import module 'no_such_module_xyz'")
    assert "Traceback" not in err and not (tmp_path / "d").exists()
