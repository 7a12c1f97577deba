"""Policies: registry errors, random, mixed (rate + inner sees every step), babyai-bot, sb3."""
from __future__ import annotations

import zipfile

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI levels)
import numpy as np
import pytest

from collect.policies import POLICY_NAMES, Policy, PolicyError, make_policy
from collect.policies.mixed import MixedPolicy, parse_mixed


class CountingPolicy(Policy):
    """Always proposes action 0; records every act/observe call."""

    def __init__(self) -> None:
        self.acts = 0
        self.observed: list[int] = []
        self.resets = 0

    def reset(self, obs, info) -> None:
        self.resets += 1

    def act(self, obs, info) -> int:
        self.acts += 1
        return 0

    def observe(self, action_taken) -> None:
        self.observed.append(int(action_taken))


def test_unknown_policy_lists_valid_names():
    env = gym.make("CartPole-v1")
    with pytest.raises(PolicyError) as err:
        make_policy("scripted", env)
    msg = str(err.value)
    assert "Unknown policy 'scripted'" in msg
    for name in POLICY_NAMES:
        assert name in msg


def test_random_policy_is_seeded_and_independent_of_env_rng():
    env = gym.make("CartPole-v1")
    a = make_policy("random", env, seed=3)
    b = make_policy("random", env, seed=3)
    env.action_space.seed(123)
    env.action_space.sample()  # touching the env's space must not change the policy's stream
    acts_a = [int(a.act(None, {})) for _ in range(50)]
    acts_b = [int(b.act(None, {})) for _ in range(50)]
    assert acts_a == acts_b
    assert set(acts_a) == {0, 1}
    assert a.name == "random" and a.intent() == []


@pytest.mark.parametrize(
    "name, inner, eps",
    [("mixed:random:0.25", "random", 0.25), ("mixed:sb3:a/b.zip:0.1", "sb3:a/b.zip", 0.1),
     ("mixed:mixed:random:0.5:1", "mixed:random:0.5", 1.0)],
)
def test_parse_mixed(name, inner, eps):
    assert parse_mixed(name) == (inner, eps)


@pytest.mark.parametrize(
    "name, fragment",
    [("mixed:random", "malformed"), ("mixed:random:x", "not a number"), ("mixed:random:1.5", "[0, 1]")],
)
def test_mixed_bad_names(name, fragment):
    with pytest.raises(PolicyError, match=fragment):
        make_policy(name, gym.make("CartPole-v1"))


def test_mixed_rate_and_inner_sees_every_step():
    space = gym.spaces.Discrete(5)
    inner = CountingPolicy()
    mixed = MixedPolicy(inner, space, eps=0.3, seed=0)
    mixed.reset(None, {})
    n = 4000
    actions = np.array([mixed.act(None, {}) for _ in range(n)])
    assert inner.acts == n and inner.resets == 1
    # Random draws are 0 a fifth of the time, so P(action != 0) = 0.3 * 4/5 = 0.24.
    assert abs(np.mean(actions != 0) - 0.24) < 0.025
    # The inner policy was told every overriding action (exactly the random steps).
    assert 0.27 < len(inner.observed) / n < 0.33
    assert np.count_nonzero(actions != 0) == sum(a != 0 for a in inner.observed)
    assert MixedPolicy(CountingPolicy(), space, eps=0.0, seed=0).act(None, {}) == 0


def _run_babyai(policy, env, seeds, max_steps=64):
    successes, lengths = 0, []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        policy.reset(obs, info)
        for t in range(max_steps):
            obs, reward, term, trunc, info = env.step(policy.act(obs, info))
            if term or trunc:
                break
        successes += int(reward > 0)
        lengths.append(t + 1)
    return successes, lengths


def test_babyai_bot_solves_gotolocal_and_states_intent():
    env = gym.make("BabyAI-GoToLocal-v0")
    policy = make_policy("babyai-bot", env)
    obs, info = env.reset(seed=0)
    policy.reset(obs, info)
    intent = policy.intent()
    target = obs["mission"].removeprefix("go to ")
    assert intent and intent[0].startswith("go next to ") and target in intent[0]
    successes, lengths = _run_babyai(policy, env, range(6))
    assert successes == 6
    assert max(lengths) < 40  # the bot walks there directly


def test_mixed_babyai_bot_replans_after_random_detours():
    env = gym.make("BabyAI-GoToLocal-v0")
    policy = make_policy("mixed:babyai-bot:0.3", env, seed=1)
    calls = {"n": 0}
    replan = None

    def count_replans(*args, **kwargs):
        calls["n"] += 1
        return replan(*args, **kwargs)

    steps = 0
    successes = 0
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        policy.reset(obs, info)
        replan = policy.inner.bot.replan
        policy.inner.bot.replan = count_replans
        for _ in range(200):
            obs, reward, term, trunc, info = env.step(policy.act(obs, info))
            steps += 1
            if term or trunc:
                break
        successes += int(reward > 0)
    assert calls["n"] == steps  # the bot planned on every step, random or not
    assert successes >= 3


def test_babyai_bot_rejects_non_babyai_env():
    with pytest.raises(PolicyError, match="babyai-bot"):
        make_policy("babyai-bot", gym.make("CartPole-v1"))


def test_crafter_scripted_rejects_wrong_action_space():
    with pytest.raises(PolicyError, match="17 discrete actions"):
        make_policy("crafter-scripted", gym.make("CartPole-v1"))


@pytest.fixture()
def sb3_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3log"))
    return gym.make("CartPole-v1")


@pytest.mark.slow  # importing SB3 + torch and a 64-step learn: ~4 s idle, more under load
@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_sb3_policy_loads_and_matches_predict(algo, sb3_env, tmp_path):
    import stable_baselines3 as sb3
    import torch

    torch.set_num_threads(1)
    kwargs = {"n_steps": 32, "batch_size": 32} if algo == "PPO" else {"learning_starts": 16}
    model = getattr(sb3, algo)("MlpPolicy", sb3_env, seed=0, tensorboard_log=None, device="cpu", **kwargs)
    model.learn(total_timesteps=64)
    path = tmp_path / "model.zip"
    model.save(path)
    policy = make_policy(f"sb3:{path}", sb3_env)
    assert type(policy.model).__name__ == algo
    policy.deterministic = True
    obs, info = sb3_env.reset(seed=0)
    policy.reset(obs, info)
    for _ in range(20):
        action = policy.act(obs, info)
        expected, _ = model.predict(obs, deterministic=True)
        assert action == int(expected) and sb3_env.action_space.contains(action)
        obs, _, term, trunc, info = sb3_env.step(action)
        if term or trunc:
            obs, info = sb3_env.reset()
    assert not (tmp_path / "sb3log").exists() or not any((tmp_path / "sb3log").iterdir())


def test_sb3_policy_errors(sb3_env, tmp_path):
    import stable_baselines3 as sb3

    with pytest.raises(PolicyError, match="does not exist"):
        make_policy(f"sb3:{tmp_path / 'missing.zip'}", sb3_env)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(PolicyError, match="not a stable-baselines3 model zip"):
        make_policy(f"sb3:{bad}", sb3_env)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(PolicyError, match="not a stable-baselines3 model zip"):
        make_policy(f"sb3:{empty}", sb3_env)
    model = sb3.PPO("MlpPolicy", sb3_env, n_steps=32, batch_size=32, tensorboard_log=None, device="cpu")
    path = tmp_path / "cartpole.zip"
    model.save(path)
    with pytest.raises(PolicyError, match="trained on observations"):
        make_policy(f"sb3:{path}", gym.make("MountainCar-v0"))
