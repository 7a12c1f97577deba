"""RL fine-tuning: stable-baselines3 PPO whose features extractor wraps an encoder (frozen or
trainable), against SB3's own ``CnnPolicy``, with optional behavioural-cloning initialisation.

History: the encoder sees the last ``n_stack`` frames through SB3's ``VecFrameStack``
(channels stacked last) and gives the feature of the newest frame with the stack as its context
block.

A *frozen* encoder's features are computed once per env step, for all envs in one batch, by
:class:`FeatureCache` (a ``VecEnvWrapper``): the rollout buffer stores features, and PPO's epochs
and minibatches reuse them instead of re-encoding every stacked frame ``n_epochs`` times. A
*trained* encoder sits in the policy as :class:`EncoderExtractor`, which converts SB3's scaled
channel-first batch back to uint8 HWC *exactly* (``round(x * 255)``). Either way the policy
network after the features is the same (SB3's default ``pi``/``vf`` MLPs for a custom extractor).

SB3's orthogonal initialisation re-draws every ``Linear``/``Conv2d`` inside the features
extractor (``ActorCriticPolicy._build``); :func:`run` restores the pretrained encoder's weights
right after building the policy, or a "pretrained" extractor would start from random weights. (sb3-contrib's RecurrentPPO is
not used: it is not installed and frame stacking keeps both policies on the same algorithm.)

    python -m experiments.rl_finetune --env babyai-gotolocal --encoder byog \\
        --checkpoint runs/enc/byog --timesteps 20000 --out runs/rl/byog
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from experiments.pretrain import ExperimentError


@dataclass
class RLConfig:
    """One PPO run."""

    env: str
    """Environment short name (``babyai-gotolocal``, ``crafter``)."""
    out: Path
    """Directory for ``result.json`` and ``curve.csv`` (skipped when they exist, unless --force)."""
    encoder: str = "cnnpolicy"
    """``cnnpolicy`` = SB3's CnnPolicy (NatureCNN); otherwise an experiment arm that reads
    frames only (byog, captioner, random, scratch, vqvae, units; ``python -m experiments.arms``)
    as features extractor."""
    checkpoint: Path | None = None
    """Pretrained encoder dir (see experiments.action_transfer)."""
    trainable: bool = False
    """Train the wrapped encoder with PPO (False: frozen)."""
    timesteps: int = 2048
    """Environment steps of PPO."""
    num_envs: int = 4
    """Vector envs (DummyVecEnv)."""
    n_stack: int = 4
    """Frames stacked for history."""
    n_steps: int = 128
    """PPO rollout length per env."""
    max_episode_steps: int = 64
    """Episode step limit."""
    env_kwargs: dict[str, int | float | str] = field(default_factory=dict)
    """The env options of the study's dataset (e.g. view agent), so PPO acts in the same env."""
    eval_episodes: int = 16
    """Held-out evaluation episodes after training (env seeds disjoint from training's; 0 = skip)."""
    mission: bool | None = None
    """Give the policy the mission text (a hashed bag of words beside the frames; BabyAI's goal
    is not drawn in the frame); None = when the env's info has a mission."""
    bc_data: Path | None = None
    """Dataset of expert episodes for BC initialisation on the policy's own log_prob (None: off)."""
    bc_steps: int = 0
    """BC gradient steps before PPO."""
    seed: int = 0
    """Seed."""
    threads: int = 1
    """torch CPU threads."""
    device: str = "cpu"
    """Torch device of the policy (SB3's ``device``) and of the wrapped encoder (cpu, cuda)."""
    force: bool = False
    """Recompute even if the result exists."""
    cache_features: bool = True
    """Cache a frozen encoder's features in the rollout (computed once per env step); False
    re-encodes the frame stacks on every minibatch (the old path, kept for the benchmark).
    Trained encoders are never cached."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        for name in ("timesteps", "num_envs", "n_stack", "n_steps", "max_episode_steps", "threads"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.bc_steps and self.bc_data is None:
            raise ExperimentError("--bc-steps needs --bc-data DIR (expert episodes to clone).")
        if self.bc_steps and self.mission:
            raise ExperimentError("--bc-steps does not take the mission input yet; use --no-mission.")


def sb3_to_uint8(obs: torch.Tensor, n_stack: int) -> torch.Tensor:
    """SB3 image batch float [B, 3*n, H, W] in [0, 1] -> uint8 [B, n, H, W, 3] (exact inverse)."""
    B, C, H, W = obs.shape
    x = (obs * 255.0).round().clamp(0, 255).to(torch.uint8)
    return x.view(B, n_stack, C // n_stack, H, W).permute(0, 1, 3, 4, 2)


class MissionObs(gym.ObservationWrapper):
    """Observations ``{"image": frame, "mission": float [MISSION_BUCKETS]}``: the mission's
    hashed bag of words (:func:`experiments.heads.mission_ids`) beside the frame."""

    def __init__(self, env: gym.Env) -> None:
        from experiments.heads import MISSION_BUCKETS

        super().__init__(env)
        self.observation_space = gym.spaces.Dict({
            "image": env.observation_space,
            "mission": gym.spaces.Box(0.0, 64.0, (MISSION_BUCKETS,), np.float32)})
        self._mission = np.zeros(MISSION_BUCKETS, np.float32)

    def _set(self, info: dict) -> None:
        from experiments.heads import MISSION_BUCKETS, mission_ids

        if isinstance(info.get("mission"), str):
            ids = mission_ids([info["mission"]])[0]
            self._mission = np.bincount(ids[ids >= 0].numpy(), minlength=MISSION_BUCKETS).astype(np.float32)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._set(info)
        return self.observation(obs), info

    def step(self, action: Any):
        obs, r, term, trunc, info = self.env.step(action)
        self._set(info)
        return self.observation(obs), r, term, trunc, info

    def observation(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"image": obs, "mission": self._mission.copy()}


def has_mission(cfg: RLConfig) -> bool:
    """``cfg.mission``, or whether the env's reset info carries a mission string."""
    if cfg.mission is not None:
        return cfg.mission
    from experiments.live import make_env

    env = make_env(cfg.env, cfg.max_episode_steps, cfg.env_kwargs)
    try:
        return isinstance(env.reset(seed=0)[1].get("mission"), str)
    finally:
        env.close()


def make_extractor_class():
    """The ``BaseFeaturesExtractor`` subclass (built lazily: SB3 imports take seconds)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class EncoderExtractor(BaseFeaturesExtractor):
        """Wraps a :class:`~experiments.features.Featurizer`; feature of the newest frame (and,
        with a dict observation, a learned embedding of the mission's bag of words)."""

        def __init__(self, observation_space: gym.spaces.Space, featurizer: Any, n_stack: int,
                     trainable: bool, mission_dim: int = 32) -> None:
            self.with_mission = isinstance(observation_space, gym.spaces.Dict)
            super().__init__(observation_space,
                             features_dim=int(featurizer.out_dim) + (mission_dim if self.with_mission else 0))
            from experiments.features import set_trainable
            from experiments.heads import MISSION_BUCKETS

            self.featurizer = set_trainable(featurizer, trainable)
            self.n_stack, self.trainable = n_stack, trainable
            # the encoder's own weights, restored after SB3's orthogonal init (keep_pretrained_weights)
            self.pristine = {k: v.detach().clone() for k, v in featurizer.state_dict().items()}
            self.mission = torch.nn.Linear(MISSION_BUCKETS, mission_dim) if self.with_mission else None

        def forward(self, observations: Any) -> torch.Tensor:
            image = observations["image"] if self.with_mission else observations
            frames = sb3_to_uint8(image, self.n_stack)  # [B, n, H, W, 3]
            with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
                x = self.featurizer.sequence(frames)[:, -1]
            if self.mission is None:
                return x
            m = observations["mission"][:, -self.mission.in_features:]  # the newest of the stack
            return torch.cat([x, self.mission(m)], -1)

    return EncoderExtractor


def stacks_to_frames(image: np.ndarray | torch.Tensor, n_stack: int) -> torch.Tensor:
    """``VecFrameStack`` output uint8 [B, H, W, 3*n] (oldest first) -> uint8 [B, n, H, W, 3]."""
    x = torch.as_tensor(image)
    B, H, W, C = x.shape
    return x.view(B, H, W, n_stack, C // n_stack).permute(0, 3, 1, 2, 4)


def make_feature_cache_class():
    """The :class:`FeatureCache` ``VecEnvWrapper`` (built lazily: SB3 imports take seconds)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class FeatureCache(VecEnvWrapper):
        """Replaces each stacked-frame observation by a frozen featurizer's feature of its
        newest frame, for all envs in one batched forward per step. With a mission the
        observation is ``{"features", "mission"}`` (the mission stack passes through)."""

        def __init__(self, venv: Any, featurizer: Any, n_stack: int) -> None:
            from experiments.features import set_trainable

            self.featurizer, self.n_stack = set_trainable(featurizer, False), n_stack
            self.with_mission = isinstance(venv.observation_space, gym.spaces.Dict)
            feats = gym.spaces.Box(-np.inf, np.inf, (int(featurizer.out_dim),), np.float32)
            space = (gym.spaces.Dict({"features": feats, "mission": venv.observation_space["mission"]})
                     if self.with_mission else feats)
            super().__init__(venv, observation_space=space)

        @torch.no_grad()
        def encode(self, frames: torch.Tensor) -> np.ndarray:
            """uint8 [B, n, H, W, 3] -> float32 [B, D]: the newest frame's feature (computed on
            the featurizer's device; back in CPU memory, where SB3's rollout buffer keeps numpy)."""
            return self.featurizer.sequence(frames.to(self.featurizer.device))[:, -1].float().cpu().numpy()

        def _convert(self, obs: Any) -> Any:
            image = obs["image"] if self.with_mission else obs
            x = self.encode(stacks_to_frames(image, self.n_stack))
            return {"features": x, "mission": obs["mission"]} if self.with_mission else x

        def reset(self) -> Any:
            return self._convert(self.venv.reset())

        def step_wait(self) -> Any:
            obs, rewards, dones, infos = self.venv.step_wait()
            for info in infos:  # the true last observation of an auto-reset episode, encoded too
                if "terminal_observation" in info:
                    term = info["terminal_observation"]
                    term = {k: v[None] for k, v in term.items()} if self.with_mission else term[None]
                    one = self._convert(term)
                    info["terminal_observation"] = ({k: v[0] for k, v in one.items()}
                                                    if self.with_mission else one[0])
            return self._convert(obs), rewards, dones, infos

    return FeatureCache


def make_cached_extractor_class():
    """The extractor over :class:`FeatureCache` observations (built lazily)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class CachedExtractor(BaseFeaturesExtractor):
        """Cached features as they are (and, with a mission, the same learned mission
        embedding :class:`EncoderExtractor` has): the policy network is unchanged."""

        def __init__(self, observation_space: gym.spaces.Space, mission_dim: int = 32) -> None:
            from experiments.heads import MISSION_BUCKETS

            self.with_mission = isinstance(observation_space, gym.spaces.Dict)
            feats = observation_space["features"] if self.with_mission else observation_space
            super().__init__(observation_space,
                             features_dim=int(feats.shape[0]) + (mission_dim if self.with_mission else 0))
            self.mission = torch.nn.Linear(MISSION_BUCKETS, mission_dim) if self.with_mission else None

        def forward(self, observations: Any) -> torch.Tensor:
            if self.mission is None:
                return observations
            m = observations["mission"][:, -self.mission.in_features:]  # the newest of the stack
            return torch.cat([observations["features"], self.mission(m)], -1)

    return CachedExtractor


class CurveCallback:
    """Collects (timesteps, episode return, success) of every finished episode."""

    @staticmethod
    def make():
        from stable_baselines3.common.callbacks import BaseCallback

        class _CB(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.rows: list[dict[str, float]] = []

            def _on_step(self) -> bool:
                for info in self.locals.get("infos", []):
                    ep = info.get("episode")
                    if ep is not None:
                        self.rows.append({"timesteps": float(self.num_timesteps), "return": float(ep["r"]),
                                          "length": float(ep["l"]), "success": float(ep["r"] > 0)})
                return True

        return _CB()


def make_vec_env(cfg: RLConfig, mission: bool = False):
    """DummyVecEnv of annotated envs with VecMonitor and VecFrameStack (channels last)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecMonitor

    from experiments.live import make_env

    def thunk(i: int):
        def _f():
            env = make_env(cfg.env, cfg.max_episode_steps, cfg.env_kwargs)
            env = MissionObs(env) if mission else env
            env.reset(seed=cfg.seed * 100 + i)
            return env
        return _f

    venv = VecMonitor(DummyVecEnv([thunk(i) for i in range(cfg.num_envs)]))
    venv.seed(cfg.seed)
    return VecFrameStack(venv, n_stack=cfg.n_stack, channels_order="last")


def bc_initialise(model: Any, cfg: RLConfig, cached: Any = None) -> float:
    """Minimise ``-policy.get_distribution(obs).log_prob(expert actions)`` on ``cfg.bc_data``
    (with ``cached``, a frozen featurizer, on its features of the stacks, as in the rollout)."""
    from collect.dataset import open_dataset

    ds = open_dataset(cfg.bc_data)
    stacks, acts = [], []
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        fr = ep.frames  # [L, H, W, 3]
        pad = np.zeros((cfg.n_stack - 1, *fr.shape[1:]), fr.dtype)  # VecFrameStack pads with zeros
        full = np.concatenate([pad, fr])
        for t in range(min(len(fr), len(ep.actions))):
            if int(ep.actions[t]) >= 0:
                stacks.append(full[t:t + cfg.n_stack])  # [n, H, W, 3], oldest first
                acts.append(int(ep.actions[t]))
    frames = torch.as_tensor(np.stack(stacks))  # uint8 [N, n, H, W, 3]
    # x stays in CPU memory (the frame stacks of a whole dataset need not fit on the device);
    # each minibatch moves to the policy's device
    if cached is not None:  # the same features FeatureCache gives the rollout
        with torch.no_grad():
            x = torch.cat([cached.sequence(frames[i:i + 256].to(cached.device))[:, -1].cpu()
                           for i in range(0, len(frames), 256)])
    else:  # SB3's channel-first stack [N, 3n, H, W] of uint8 values (its preprocess scales by 1/255)
        x = frames.permute(0, 1, 4, 2, 3).flatten(1, 2).float()
    y = torch.as_tensor(acts)
    opt = model.policy.optimizer
    rng = np.random.default_rng(cfg.seed)
    loss = torch.zeros(())
    for _ in range(cfg.bc_steps):
        idx = torch.as_tensor(rng.choice(len(x), size=min(64, len(x)), replace=False))
        xb, yb = x[idx].to(model.device), y[idx].to(model.device)
        loss = -model.policy.get_distribution(xb).log_prob(yb).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def build_policy(cfg: RLConfig, venv: Any, mission: bool) -> tuple[Any, str, dict[str, Any], Any]:
    """``(venv, policy name, policy_kwargs)``, plus the featurizer when its features are cached
    (``venv`` then wrapped by :class:`FeatureCache`); the featurizer is None otherwise."""
    if cfg.encoder == "cnnpolicy":
        return venv, ("MultiInputPolicy" if mission else "CnnPolicy"), {}, None
    from experiments.arms import ArmContext, resolve_arm

    _, spec = resolve_arm(cfg.encoder)
    feat = spec.build(ArmContext(checkpoint=cfg.checkpoint, data=cfg.out, env=cfg.env,
                                 env_kwargs=dict(cfg.env_kwargs), context=cfg.n_stack, seed=cfg.seed,
                                 device=cfg.device))
    if feat.needs_annotations or feat.needs_infos or feat.episode_level:
        raise ExperimentError(f"Arm {cfg.encoder!r} reads more than frame stacks; PPO takes frame-only "
                              "arms (byog, captioner, random, scratch, vqvae, units).")
    trainable = cfg.trainable or spec.trains_encoder
    policy = "MultiInputPolicy" if mission else "MlpPolicy"
    if cfg.cache_features and not trainable:
        kwargs = {"features_extractor_class": make_cached_extractor_class(), "share_features_extractor": True}
        return make_feature_cache_class()(venv, feat, cfg.n_stack), policy, kwargs, feat
    kwargs = {"features_extractor_class": make_extractor_class(),
              "features_extractor_kwargs": {"featurizer": feat, "n_stack": cfg.n_stack, "trainable": trainable},
              "share_features_extractor": True}
    return venv, ("MultiInputPolicy" if mission else "CnnPolicy"), kwargs, None


def keep_pretrained_weights(model: Any) -> None:
    """Undo SB3's orthogonal re-initialisation of an :class:`EncoderExtractor`'s featurizer
    (``ActorCriticPolicy._build`` applies it to every ``Linear``/``Conv2d`` in the extractor)."""
    ext = model.policy.features_extractor
    pristine = getattr(ext, "pristine", None)
    if pristine is not None:
        ext.featurizer.load_state_dict(pristine)


def run(cfg: RLConfig) -> dict[str, Any]:
    """Train PPO and write ``result.json`` + ``curve.csv``; returns the result dict."""
    import os

    from stable_baselines3 import PPO

    from experiments.devices import require_device

    require_device(cfg.device, "This PPO cell")
    torch.set_num_threads(cfg.threads)
    os.environ.setdefault("SB3_LOGDIR", str(cfg.out / "sb3"))
    cfg.out.mkdir(parents=True, exist_ok=True)
    mission = has_mission(cfg)
    venv, policy, policy_kwargs, cached = build_policy(cfg, make_vec_env(cfg, mission), mission)
    model = PPO(policy, venv, n_steps=cfg.n_steps, batch_size=64, n_epochs=4, learning_rate=3e-4,
                seed=cfg.seed, verbose=0, policy_kwargs=policy_kwargs, device=cfg.device,
                tensorboard_log=None)
    keep_pretrained_weights(model)
    bc_loss = bc_initialise(model, cfg, cached) if cfg.bc_steps else float("nan")
    cb = CurveCallback.make()
    t0 = time.perf_counter()
    model.learn(total_timesteps=cfg.timesteps, callback=cb)
    seconds = time.perf_counter() - t0
    venv.close()
    heldout = evaluate_heldout(model, cfg, mission, cached) if cfg.eval_episodes else {}
    rows = cb.rows
    tail = rows[-max(1, len(rows) // 4):] if rows else []
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "encoder": cfg.encoder, "env": cfg.env, "seed": cfg.seed, "rl/seconds": seconds,
              "rl/timesteps": int(model.num_timesteps), "rl/episodes": len(rows), "rl/bc_loss": bc_loss,
              "rl/final_return": float(np.mean([r["return"] for r in tail])) if tail else float("nan"),
              "rl/final_success": float(np.mean([r["success"] for r in tail])) if tail else float("nan"),
              "rl/mission": mission, "rl/features_cached": cached is not None, **heldout}
    with open(cfg.out / "curve.csv", "w") as f:
        f.write("timesteps,return,length,success\n")
        f.writelines(f"{r['timesteps']:.0f},{r['return']:.6f},{r['length']:.0f},{r['success']:.0f}\n" for r in rows)
    (cfg.out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def evaluate_heldout(model: Any, cfg: RLConfig, mission: bool = False, cached: Any = None) -> dict[str, float]:
    """The trained policy (deterministic actions) on ``eval_episodes`` held-out episodes: env
    seeds from :func:`experiments.action_transfer.live_seed`, never used in training (training
    envs are seeded ``seed * 100 + i`` and then auto-reset from their own generator)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    from experiments.action_transfer import live_seed
    from experiments.live import make_env

    rets, wins = [], []
    for k in range(cfg.eval_episodes):
        env = make_env(cfg.env, cfg.max_episode_steps, cfg.env_kwargs)
        env = MissionObs(env) if mission else env
        venv = VecFrameStack(DummyVecEnv([lambda env=env: env]), n_stack=cfg.n_stack, channels_order="last")
        venv = make_feature_cache_class()(venv, cached, cfg.n_stack) if cached is not None else venv
        venv.seed(live_seed(cfg.seed) + k)
        obs, done, ret, r = venv.reset(), False, 0.0, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, rew, dones, _ = venv.step(action)
            r = float(rew[0])
            ret += r
            done = bool(dones[0])
        venv.close()
        rets.append(ret)
        wins.append(float(r > 0))
    return {"rl/heldout_return": float(np.mean(rets)), "rl/heldout_success": float(np.mean(wins)),
            "rl/heldout_episodes": float(cfg.eval_episodes)}


def main(cfg: RLConfig) -> dict[str, Any]:
    """Run unless ``out/result.json`` exists (resumable)."""
    done = cfg.out / "result.json"
    if done.is_file() and not cfg.force:
        return json.loads(done.read_text())
    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.rl_finetune``."""
    import tyro

    from byog_core.cli import run_cli

    def body() -> int:
        res = main(tyro.cli(RLConfig, args=argv))
        print(json.dumps({k: v for k, v in res.items() if k != "config"}, indent=2))
        return 0

    return run_cli(body)  # exit codes: the one policy of byog_core.cli


if __name__ == "__main__":
    sys.exit(cli())
