"""Transfer experiments: CI helper, synthetic BC learnability, live-eval references, schemas."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experiments.stats import format_ci, mean_ci


def test_mean_ci_matches_hand_values():
    # values 1, 2, 3: mean 2, sd 1, sem 1/sqrt(3), t_{0.975, 2} = 4.302653
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0)
    assert h == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    m, h = mean_ci([5.0, float("nan")])
    assert m == 5.0 and np.isnan(h)
    assert format_ci([1.0, 2.0, 3.0], digits=2) == "2.00 ± 2.48 (n=3)"
    assert format_ci([]) == "–"
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)


@pytest.mark.slow
def test_bc_pipeline_learns_a_synthetic_task():
    """Action = which quadrant holds a bright square; a scratch CNN + head must learn it."""
    from agents.obs import CNNEncoder
    from experiments.action_transfer import Blocks, evaluate_offline, train_head
    from experiments.features import ObsFeaturizer
    from experiments.heads import ActionHead

    torch.manual_seed(0)
    torch.set_num_threads(1)

    def make(n: int, seed: int) -> Blocks:
        g = torch.Generator().manual_seed(seed)
        acts = torch.randint(0, 4, (n, 4), generator=g)
        frames = torch.zeros(n, 4, 32, 32, 3, dtype=torch.uint8)
        for i in range(n):
            for t in range(4):
                a = int(acts[i, t])
                frames[i, t, (a // 2) * 16:(a // 2) * 16 + 16, (a % 2) * 16:(a % 2) * 16 + 16] = 255
        return Blocks(frames, acts, torch.ones(n, 4, dtype=torch.bool), None)

    feat = ObsFeaturizer(CNNEncoder(out_dim=32, channels=(8, 16)), context=4)
    head = ActionHead(in_dim=32, num_actions=4, hidden=32)
    train_head(feat, head, make(32, 0), steps=60, batch_size=16, lr=3e-3, train_encoder=True, seed=0,
               progress=False)
    m = evaluate_offline(feat, head, make(16, 1))
    assert m["offline/acc"] > 0.9  # chance is 0.25
    assert m["offline/nll"] < 0.5


def test_byog_live_features_equal_offline_features():
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer
    from experiments.features import BYOGFeaturizer

    torch.manual_seed(0)
    agent = BYOGAgent(make_model_config("tiny", "byog"), train_tokenizer(["you see a red ball"])).eval()
    for pool in ("last", "mean"):
        f = BYOGFeaturizer(agent, pool=pool, context=3)
        fr = torch.randint(0, 255, (2, 5, 32, 32, 3), dtype=torch.uint8)
        with torch.no_grad():
            off = torch.cat([f.sequence(fr[:, :3]), f.sequence(fr[:, 3:])], 1)  # blocks of 3
            st, live = f.start(2), []
            for t in range(5):
                y, st = f.step(st, fr[:, t])
                live.append(y)
        assert off.shape == (2, 5, 64)
        torch.testing.assert_close(torch.stack(live, 1), off, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_live_eval_references():
    """The bot through the evaluation code solves GoToLocal; random matches a plain loop."""
    from collect.policies import make_policy
    from experiments.live import PerEnvPolicies, evaluate_live, make_env

    bot = evaluate_live("babyai-gotolocal", PerEnvPolicies("babyai-bot"), episodes=6, max_steps=64, num_envs=3)
    assert bot["live/success_rate"] == 1.0
    rnd = evaluate_live("babyai-gotolocal", PerEnvPolicies("random", seed=7), episodes=6, max_steps=20, num_envs=3)
    wins, lengths = [], []
    for i in range(6):  # the same episodes by hand: seeds 0..5, policy seeds 7 + slot
        env = make_env("babyai-gotolocal", 20)
        obs, info = env.reset(seed=i)
        pol = make_policy("random", env, seed=7 + i % 3)
        pol.reset(obs, info)
        done, n, r = False, 0, 0.0
        while not done:
            obs, r, term, trunc, info = env.step(pol.act(obs, info))
            n += 1
            done = term or trunc
        wins.append(term and r > 0)
        lengths.append(n)
    assert rnd["live/success_rate"] == pytest.approx(np.mean(wins))
    assert rnd["live/length"] == pytest.approx(np.mean(lengths))
    assert rnd["live/success_rate"] < 0.9


def test_sb3_observation_roundtrip_is_exact():
    from experiments.rl_finetune import sb3_to_uint8

    frames = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8)  # [B, n, H, W, 3]
    sb3 = frames.permute(0, 1, 4, 2, 3).reshape(2, 9, 8, 8).float() / 255.0  # stacked CHW in [0,1]
    assert torch.equal(sb3_to_uint8(sb3, 3), frames)


def test_config_errors_name_the_fix(tmp_path, capsys):
    from experiments.action_transfer import ActionTransferConfig, cli
    from experiments.pretrain import ExperimentError

    with pytest.raises(ExperimentError, match="--checkpoint"):
        ActionTransferConfig(data=tmp_path, out=tmp_path, encoder="byog")
    with pytest.raises(ExperimentError, match="Unknown arm"):
        ActionTransferConfig(data=tmp_path, out=tmp_path, encoder="clip")  # type: ignore[arg-type]
    assert cli(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--encoder", "scratch"]) == 2
    from experiments import run_all

    code = None
    try:
        code = run_all.cli(["--out", str(tmp_path / "s"), "--encoders", "byog", "clip"])
    except SystemExit as e:  # tyro prints the config's message, no traceback
        code = e.code
    assert code == 2 and "Unknown arm 'clip'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def babyai_data(tmp_path_factory):
    """Six BabyAI bot episodes (collected once for the module)."""
    from experiments.run_all import EnvPlan, collect_data

    out = tmp_path_factory.mktemp("exp") / "babyai"
    return collect_data("babyai-gotolocal", EnvPlan(6, 32), out, progress=False)


def test_bc_split_holds_out_the_trainers_validation_episodes():
    from collect.dataset import split_episodes
    from experiments.pretrain import ExperimentError, bc_split

    _, val_trainer = split_episodes(20, 0.2, 0)
    tr0, val0 = bc_split(20, 8, seed=0)
    tr1, val1 = bc_split(20, 8, seed=1)
    assert val0 == val1 == val_trainer and len(val0) == 4
    assert len(tr0) == len(tr1) == 8 and tr0 != tr1  # seeds draw different training episodes
    assert not set(tr0) & set(val0) and tr0 == sorted(tr0)
    assert bc_split(20, 8, seed=0) == (tr0, val0)  # deterministic
    with pytest.raises(ExperimentError, match="collect more episodes or lower N"):
        bc_split(20, 17, seed=0)


@pytest.mark.slow
def test_run_all_end_to_end_schema(tmp_path):
    """Collection, trainer pretraining, BC cells (offline + live), references, report with
    gates: files and schema; a second run recomputes nothing; a changed setting recomputes the
    cells it changes (and only those)."""
    import csv

    from experiments.report import COLUMNS
    from experiments.run_all import RunAllConfig, command, main

    torch.set_num_threads(1)
    root = tmp_path / "study"
    over = {"pretrain_batch": 2, "val_episodes": 1, "bc_batch": 2, "eval_every": 1,
            "live_arms": ("prior", "oracle-text")}
    over["dose_arms"] = ("byog",)  # byog is also cloned from its step-1 checkpoint
    cfg = RunAllConfig(out=root, preset="tiny", progress=False, steps_override=over, episodes={"babyai-gotolocal": 8},
                       arms=("prior", "oracle-text", "byog", "scratch"), ns=(2,), bc_seeds=(0, 1),
                       pretrain_steps=2, bc_steps=3, live_episodes=2, workers=1, dose_steps=(1,))
    main(cfg)
    with open(root / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == COLUMNS
    bc = [r for r in rows if r["study"] == "bc"]
    assert {(r["encoder"], r["n_episodes"], r["pipeline_seed"], r["seed"]) for r in bc} == {
        (e, "2", "0", s) for e in ("prior", "oracle-text", "byog", "scratch") for s in ("0", "1")}
    for r in bc:
        assert 0.0 <= float(r["offline/acc"]) <= 1.0 and float(r["offline/nll"]) > 0
        assert (r["live/success_rate"] != "") == (r["encoder"] in ("prior", "oracle-text"))
        assert (r["narration/event_f1"] != "") == (r["encoder"] == "byog")
        assert r["train/at_cap_improving"] in ("0.0", "1.0") and 0.0 <= float(r["offline/majority_acc"]) <= 1.0
        # the convex check on frozen features (not on an encoder trained with the head)
        assert (r["offline/convex_acc"] != "") == (r["encoder"] != "scratch")
    refs = {r["encoder"] for r in rows if r["study"] == "ref"}
    assert refs == {"babyai-bot", "random", "action-prior/sample", "action-prior/argmax"}
    # the dose cells: byog's step-1 checkpoint cloned offline, with that checkpoint's narration F1
    dose = [r for r in rows if r["study"] == "dose"]
    assert {(r["encoder"], r["pretrain_step"], r["seed"]) for r in dose} == {("byog", "1", "0"), ("byog", "1", "1")}
    assert all(r["live/success_rate"] == "" for r in dose)
    [pre] = list((root / "cells").glob("pretrain/*/byog/*/*/run/pretrain.json"))
    f1s = json.loads(pre.read_text())
    assert {float(r["narration/event_f1"]) for r in dose} == {f1s["narration/event_f1@1"]}
    assert {r["pretrain_step"] for r in bc if r["encoder"] == "byog"} == {"2"}
    md = (root / "report.md").read_text()
    assert "## Gates" in md and "non-discriminating" in md and command(cfg) in md and "Wall clock" in md
    # the run's own design (its overrides), not only the preset's description
    assert "This run's design: babyai-gotolocal 8 episodes x 64 steps;" in md and "pipeline seeds [0]" in md
    assert (root / "acc_babyai-gotolocal.png").stat().st_size > 1000
    cells = {p: p.stat().st_mtime_ns for p in (root / "cells").rglob("cell.json")}
    main(cfg)  # resumable: nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in (root / "cells").rglob("cell.json")} == cells
    main(RunAllConfig(**{**cfg.__dict__, "bc_steps": 4}))  # a changed setting: new BC cells
    after = {p: p.stat().st_mtime_ns for p in (root / "cells").rglob("cell.json")}
    new = [p for p in after if p not in cells]
    assert len(new) == 10 and all("/bc/" in str(p) or "/dose/" in str(p) for p in new)  # pretraining, references reused
    assert all(after[p] == t for p, t in cells.items())  # old cells kept, untouched
    assert json.loads(new[0].read_text())["train/steps"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["units", "vqvae"])
def test_obs_encoders_are_fitted_by_the_trainer(tmp_path, babyai_data, kind):
    """vqvae/units: the trainer fits them; the BC featurizer loads the fitted encoder."""
    from experiments.action_transfer import ActionTransferConfig, build_featurizer
    from experiments.pretrain import PretrainSpec, encoder_checkpoint, pretrain

    torch.set_num_threads(1)
    run = tmp_path / kind
    res = pretrain(kind, babyai_data, run, PretrainSpec(steps=3, batch_size=2, units_k=8, progress=False))
    assert res["pretrain/seconds"] > 0 and "narration/event_f1" not in res
    ckpt = encoder_checkpoint(kind, run)
    assert ckpt.name == "obs_encoder" and ckpt.is_dir()
    feat = build_featurizer(ActionTransferConfig(data=babyai_data, out=tmp_path, encoder=kind, checkpoint=ckpt))
    x = feat.sequence(torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8))
    assert x.shape == (2, 3, feat.out_dim) and torch.isfinite(x).all()
    if kind == "units":
        assert feat.obs.embedding.num_embeddings == 8  # k units
    assert pretrain(kind, babyai_data, run, PretrainSpec(steps=3, progress=False)) == res  # done: reused


@pytest.mark.slow
def test_pretraining_keeps_the_dose_checkpoints(tmp_path, babyai_data):
    """``keep_steps`` keeps those checkpoints (and the final one, nothing else), measures each
    one's narration F1, and does not change what is trained; featurizers load a kept step."""
    from agents.training.checkpoint import list_checkpoints, read_meta
    from agents.training.loading import load_agent
    from experiments.pretrain import ExperimentError, PretrainSpec, encoder_checkpoint, pretrain

    torch.set_num_threads(1)
    run = tmp_path / "byog"
    res = pretrain("byog", babyai_data, run, PretrainSpec(steps=4, batch_size=2, progress=False, keep_steps=(2,)))
    assert [read_meta(c)["step"] for c in list_checkpoints(run)] == [2, 4]  # 1 and 3 saved, then removed
    assert {k for k in res if "@" in k} == {"narration/event_f1@2", "narration/event_f1@4"}
    assert all(0.0 <= res[k] <= 1.0 for k in res if "@" in k)
    # one narration-F1 measure: the final checkpoint's is the kept steps' measure, the trainer's aside
    assert res["narration/event_f1"] == res["narration/event_f1@4"] and "narration/trainer_event_f1" in res
    early = encoder_checkpoint("byog", run, 2)
    assert early.name.endswith("000002") and encoder_checkpoint("byog", run) == run
    w2 = load_agent(early).state_dict()
    w4 = load_agent(run).state_dict()
    assert any(not torch.equal(w2[k], w4[k]) for k in w4)  # two steps of training apart
    plain = tmp_path / "plain"  # the same pretraining without kept steps: the same final weights
    pretrain("byog", babyai_data, plain, PretrainSpec(steps=4, batch_size=2, progress=False))
    wp = load_agent(plain).state_dict()
    assert all(torch.equal(wp[k], w4[k]) for k in w4)
    with pytest.raises(ExperimentError, match="no checkpoint of step 3"):
        encoder_checkpoint("byog", run, 3)
    with pytest.raises(ExperimentError, match="not between 0 and the 4"):
        PretrainSpec(steps=4, keep_steps=(4,))


@pytest.mark.slow
def test_fitted_encoders_take_the_studys_options(tmp_path, babyai_data):
    """PretrainSpec.obs_options reach the trainer's fitting (the gpu preset's position-encoding
    settings): a finer VQ-VAE pooling widens its features, units take their thumbnail size."""
    from experiments.action_transfer import ActionTransferConfig, build_featurizer
    from experiments.pretrain import PretrainSpec, encoder_checkpoint, pretrain

    torch.set_num_threads(1)
    widths = {}
    for pool in (2, 4):
        run = tmp_path / f"vq{pool}"
        pretrain("vqvae", babyai_data, run, PretrainSpec(steps=2, batch_size=2, progress=False,
                                                         obs_options={"pool": pool}))
        feat = build_featurizer(ActionTransferConfig(data=babyai_data, out=tmp_path, encoder="vqvae",
                                                     checkpoint=encoder_checkpoint("vqvae", run)))
        widths[pool] = feat.obs.out_dim
    assert widths[4] == 4 * widths[2]  # code_dim x pool^2
    run = tmp_path / "units"
    pretrain("units", babyai_data, run, PretrainSpec(steps=2, batch_size=2, progress=False,
                                                     obs_options={"pixel_size": 16, "k": 8}))
    feat = build_featurizer(ActionTransferConfig(data=babyai_data, out=tmp_path, encoder="units",
                                                 checkpoint=encoder_checkpoint("units", run)))
    assert feat.obs.cfg.pixel_size == 16 and feat.obs.embedding.num_embeddings == 8


@pytest.mark.slow
def test_rl_finetune_ppo_end_to_end(tmp_path, monkeypatch):
    """PPO with SB3's CnnPolicy and with our (random BYOG) encoder as features extractor, both
    given the mission; evaluated on held-out episodes."""
    from experiments.rl_finetune import RLConfig, main

    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3"))
    torch.set_num_threads(1)
    for enc in ("cnnpolicy", "random"):
        out = tmp_path / enc
        res = main(RLConfig(env="babyai-gotolocal", out=out, encoder=enc, timesteps=64, num_envs=2,
                            n_steps=32, max_episode_steps=8, n_stack=2, eval_episodes=2))
        assert 0.0 <= res["rl/heldout_success"] <= 1.0 and res["rl/heldout_episodes"] == 2
        assert res["rl/mission"] is True  # BabyAI's goal is text: the policy reads it
        assert res["rl/timesteps"] == 64 and res["rl/episodes"] >= 6  # 8-step episodes, 2 envs
        assert 0.0 <= res["rl/final_success"] <= 1.0 and np.isfinite(res["rl/final_return"])
        lines = (out / "curve.csv").read_text().splitlines()
        assert lines[0] == "timesteps,return,length,success" and len(lines) == res["rl/episodes"] + 1
        assert all(0 < float(ln.split(",")[0]) <= 64 and float(ln.split(",")[2]) <= 8 for ln in lines[1:])
        assert json.loads((out / "result.json").read_text())["encoder"] == enc


@pytest.mark.slow
def test_captioner_below_full_labels_trains_on_its_labelled_episodes(tmp_path, babyai_data):
    """The trainer fits the captioner (w_byog = 0) on its labelled episodes only; the batch is
    capped at their window count, and narration is scored on the shared held-out episodes."""
    from agents.training.data import labelled_episodes
    from collect.dataset import open_dataset, split_episodes
    from experiments.pretrain import PretrainSpec, pretrain

    torch.set_num_threads(1)
    full = open_dataset(babyai_data)
    train, _ = split_episodes(full.num_episodes, 0.2, 0)
    assert len(labelled_episodes(train, 0.5, 0)) == 2
    res = pretrain("captioner", babyai_data, tmp_path / "cap", PretrainSpec(steps=2, batch_size=8, progress=False),
                   label_fraction=0.5)
    assert 0.0 <= res["narration/event_f1"] <= 1.0 and res["narration/event_f1"] == res["narration/event_f1@2"]
    summary = json.loads((tmp_path / "cap" / "summary.json").read_text())
    assert summary["episodes"]["labelled"] == 2 and summary["windows"]["train"] == 2  # batch clamped 8 -> 2
    # BYOG gets the same cap on its labelled batch (equal supervision), its unlabelled batch
    # keeping the spec's 8 (here at most the 5 training windows); without the cap its labelled
    # sampler refuses to start
    import yaml

    pretrain("byog", babyai_data, tmp_path / "byog", PretrainSpec(steps=2, batch_size=8, progress=False),
             label_fraction=0.5)
    loader = yaml.safe_load((tmp_path / "byog" / "config.yaml").read_text())["loader"]
    assert (loader["batch_size"], loader["unlabelled_batch_size"]) == (2, 5)


def test_rl_curves_are_a_trailing_mean():
    from experiments.report import smooth

    assert smooth([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert smooth([0.0, 1.0], 20) == [0.0, 0.5]  # fewer than the window at the start


def test_ppo_extractor_reads_the_mission():
    """With a dict observation the PPO features carry the mission (two missions, same frames,
    different features); the frames still go through the arm's featurizer."""
    import gymnasium as gym

    from experiments.features import ConstantFeaturizer
    from experiments.heads import MISSION_BUCKETS
    from experiments.rl_finetune import make_extractor_class

    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (6, 8, 8), np.uint8),
                             "mission": gym.spaces.Box(0.0, 64.0, (2 * MISSION_BUCKETS,), np.float32)})
    ext = make_extractor_class()(space, ConstantFeaturizer(context=2), n_stack=2, trainable=False)
    m = torch.zeros(2, 2 * MISSION_BUCKETS)
    m[0, MISSION_BUCKETS + 3], m[1, MISSION_BUCKETS + 7] = 1.0, 1.0
    x = ext({"image": torch.rand(2, 6, 8, 8), "mission": m})
    assert x.shape == (2, 1 + 32) and not torch.allclose(x[0], x[1])


def _rl_parts(tmp_path, **kw):
    from experiments.rl_finetune import RLConfig, build_policy, has_mission, make_vec_env

    cfg = RLConfig(env="babyai-gotolocal", out=tmp_path, encoder="random", num_envs=2, n_steps=16,
                   max_episode_steps=8, n_stack=2, eval_episodes=0, **kw)
    mission = has_mission(cfg)
    return cfg, build_policy(cfg, make_vec_env(cfg, mission), mission)


def test_ppo_keeps_the_encoders_own_weights(tmp_path):
    """SB3's orthogonal init re-draws every Linear/Conv2d inside a features extractor: without
    keep_pretrained_weights the "pretrained" encoder PPO starts from would be random."""
    from stable_baselines3 import PPO

    from experiments.rl_finetune import keep_pretrained_weights

    torch.set_num_threads(1)
    cfg, (venv, policy, kwargs, cached) = _rl_parts(tmp_path, trainable=True)
    assert cached is None  # a trained encoder is never cached
    model = PPO(policy, venv, n_steps=16, batch_size=8, seed=0, policy_kwargs=kwargs, device="cpu")
    ext = model.policy.features_extractor
    before = {k: v.clone() for k, v in ext.featurizer.state_dict().items()}
    changed = [k for k, v in ext.pristine.items() if not torch.equal(v, before[k])]
    assert changed, "SB3 no longer re-initialises the extractor: this test no longer tests anything"
    keep_pretrained_weights(model)
    after = ext.featurizer.state_dict()
    assert all(torch.equal(after[k], v) for k, v in ext.pristine.items())
    venv.close()


def test_frozen_features_are_cached_in_the_rollout(tmp_path):
    """A frozen encoder runs once per env step (all envs in one batch), never per PPO
    minibatch, and its cached features equal what the in-policy extractor computes from the
    same stacked frames."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from experiments.rl_finetune import make_extractor_class

    torch.set_num_threads(1)
    cfg, (venv, policy, kwargs, cached) = _rl_parts(tmp_path)
    assert cached is not None and policy == "MultiInputPolicy"
    raw = venv.venv.reset()  # stacked frames, as the rollout sees them
    obs = venv._convert(raw)  # what FeatureCache.reset/step_wait return for them
    H, W = raw["image"].shape[1:3]
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (6, H, W), np.uint8),
                             "mission": venv.observation_space["mission"]})
    ext = make_extractor_class()(space, cached, n_stack=2, trainable=False)
    sb3_batch = {"image": torch.as_tensor(raw["image"]).permute(0, 3, 1, 2).float() / 255.0,
                 "mission": torch.as_tensor(raw["mission"])}
    with torch.no_grad():
        direct = ext(sb3_batch)[:, :cached.out_dim]
    np.testing.assert_allclose(obs["features"], direct.numpy(), rtol=0, atol=1e-6)

    calls: list[int] = []
    seq = cached.sequence
    cached.sequence = lambda frames, *a, **k: calls.append(len(frames)) or seq(frames, *a, **k)
    model = PPO(policy, venv, n_steps=16, batch_size=8, n_epochs=4, seed=0, policy_kwargs=kwargs, device="cpu")
    model.learn(total_timesteps=32)
    # one call per vec step over both envs (+ the reset, + one per finished episode's last
    # observation); re-encoding per minibatch would add n_epochs * 32 / 8 = 16 more
    steps, episodes = 32 // cfg.num_envs, 32 // cfg.max_episode_steps
    assert calls[1] == cfg.num_envs and steps <= len(calls) <= steps + 1 + episodes
    venv.close()


@pytest.mark.parametrize("cache", [True, False])
def test_bc_initialisation_clones_on_cached_features(tmp_path, babyai_data, cache):
    """BC before PPO reads the observations the rollout reads (cached features, or SB3's
    channel-first frame stacks) and learns the expert's actions (its NLL ends well below the
    near-uniform initial policy's log 7)."""
    from experiments.rl_finetune import RLConfig, run

    torch.set_num_threads(1)
    res = run(RLConfig(env="babyai-gotolocal", out=tmp_path / "bc", encoder="random", timesteps=16, num_envs=2,
                       n_steps=8, max_episode_steps=8, n_stack=2, eval_episodes=1, mission=False,
                       bc_data=babyai_data, bc_steps=150, cache_features=cache))
    assert res["rl/features_cached"] is cache
    assert res["rl/bc_loss"] < np.log(7) - 0.4


def test_ppo_builds_the_encoder_on_the_configured_device(tmp_path):
    """RLConfig.device reaches the arm's featurizer (the whole agent, not only the parts the
    featurizer registers): on "meta" every weight is there."""
    cfg, (venv, _, _, cached) = _rl_parts(tmp_path, device="meta")
    assert cached.device.type == "meta"
    assert {p.device.type for p in cached.agent.parameters()} == {"meta"}
    venv.close()


@pytest.mark.slow
def test_cells_run_with_an_explicit_device(tmp_path, babyai_data):
    """The run_all entry points with ``device: "cpu"`` in their configs: the trainer gets it
    (its saved config), a BC cell on the pretrained encoder trains, evaluates offline and live;
    a featurizer built for another device loads the whole agent there."""
    import yaml

    from experiments.action_transfer import ActionTransferConfig, build_featurizer
    from experiments.run_all import bc_cell, pretrain_cell

    torch.set_num_threads(1)
    pre = pretrain_cell({"kind": "byog", "data": str(babyai_data), "steps": 2, "batch": 2, "size": "tiny",
                         "label_fraction": 1.0, "pipeline_seed": 0, "device": "cpu"}, tmp_path / "pre")
    assert yaml.safe_load((tmp_path / "pre" / "run" / "config.yaml").read_text())["device"] == "cpu"
    res = bc_cell({"data": str(babyai_data), "encoder": "byog", "mode": "frozen", "n_episodes": 2,
                   "val_episodes": 1, "steps": 2, "eval_every": 1, "patience": 0, "batch_size": 2, "gru": True,
                   "live_episodes": 1, "live_envs": 1, "live_max_steps": 8, "seed": 0, "pipeline_seed": 0,
                   "size": "tiny", "device": "cpu", "pretrained": {"kind": "byog", "run": pre["run"]}},
                  tmp_path / "bc")
    assert res["config"]["device"] == "cpu" and res["train/steps_run"] == 2
    assert 0.0 <= res["offline/acc"] <= 1.0 and np.isfinite(res["offline/nll"])
    assert res["live/episodes"] == res["live_argmax/episodes"] == 1 and 1 <= res["live/length"] <= 8
    assert 0.0 <= res["narration/event_f1"] <= 1.0
    feat = build_featurizer(ActionTransferConfig(data=babyai_data, out=tmp_path, encoder="byog",
                                                 checkpoint=pre["run"], device="meta"))
    assert feat.device.type == "meta" and {p.device.type for p in feat.agent.parameters()} == {"meta"}
