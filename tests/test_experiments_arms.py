"""Experiment arms: the registry, the language channel, the controls, the oracles' causality."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.action_transfer import Blocks, evaluate_offline, train_head
from experiments.arms import ARMS, ArmSpec, get_arm, register_arm
from experiments.errors import ExperimentError
from experiments.features import (
    AnnotationSource,
    ShuffledSource,
    TextFeaturizer,
    episode_features,
    text_features,
)
from experiments.heads import ActionHead

ROOT = Path(__file__).resolve().parents[1]


def test_registry_lists_the_study_arms_and_rejects_unknown_names(capsys):
    from experiments.arms import main

    for name in ("prior", "oracle-text", "byog-text", "captioner-text", "random-text", "shuffled-text", "shuffled-oracle-text",
                 "oracle-symbolic", "byog", "captioner", "random", "scratch", "byog-hidden+scratch"):
        assert name in ARMS
    assert get_arm("scratch").trains_encoder and not get_arm("byog").trains_encoder
    assert get_arm("shuffled-text").pretrain == "byog" and get_arm("prior").uses_mission is False
    with pytest.raises(ExperimentError, match="Unknown arm 'clip'; known: byog, .*oracle-text, .*prior"):
        get_arm("clip")
    with pytest.raises(ExperimentError, match="The arm 'no_such_module_xyz:toy' needs module .* cannot be imported"):
        get_arm("no_such_module_xyz:toy")
    with pytest.raises(ExperimentError, match="already registered"):
        register_arm("prior", ArmSpec(featurizer="x:y"))
    assert main([]) == 0
    assert "oracle-text" in capsys.readouterr().out


def test_text_features_are_counts_and_a_decayed_bag():
    x, _, _ = text_features([["a tree"], [], ["a tree", "tree"]], buckets=64, decay=0.5)
    assert x.shape == (3, 128)
    assert x[0, :64].sum() == 2 and x[0, 64:].sum() == 0  # slot 0: "a", "tree"; no history
    assert x[1, :64].sum() == 0 and x[1, 64:].sum() == 2  # bag = slot 0
    assert x[2, :64].sum() == 3 and x[2, 64:].sum() == pytest.approx(1.0)  # 0.5 * slot 0 + slot 1 (empty)


def _annotated_task(n: int, T: int, seed: int) -> Blocks:
    """The annotation at row t names the action at t ("go left" -> 0 ...); frames are noise."""
    g = np.random.default_rng(seed)
    words = ["left", "right", "up", "down"]
    acts = torch.as_tensor(g.integers(0, 4, (n, T)))
    ann = [[[f"you should go {words[int(a)]}"] for a in row] for row in acts]
    frames = torch.as_tensor(g.integers(0, 255, (n, T, 8, 8, 3)), dtype=torch.uint8)
    ok = torch.ones(n, T, dtype=torch.bool)
    return Blocks(frames, acts, ok, None, ann, None, ok)


@pytest.mark.parametrize("shuffled", [False, True])
def test_oracle_text_learns_an_annotated_task_and_shuffled_text_stays_at_the_prior(shuffled):
    torch.manual_seed(0)
    src = ShuffledSource(AnnotationSource()) if shuffled else AnnotationSource()
    feat = TextFeaturizer(src, buckets=64, context=4)
    train, val, test = _annotated_task(48, 6, 0), _annotated_task(8, 6, 1), _annotated_task(32, 6, 2)
    head = ActionHead(in_dim=feat.out_dim, num_actions=4, hidden=32)
    train_head(feat, head, train, steps=150, batch_size=16, lr=3e-3, train_encoder=False, seed=0,
               progress=False, val=val, eval_every=25, patience=3)
    m = evaluate_offline(feat, head, test, train.actions)
    if shuffled:
        assert m["offline/acc"] < m["offline/majority_acc"] + 0.1  # chance/prior level (~0.25)
    else:
        assert m["offline/acc"] >= 0.9
    assert sum(m["offline/episode_correct"]) == round(m["offline/acc"] * sum(m["offline/episode_steps"]))


def test_shuffled_text_carries_no_phase_of_a_lockstep_routine():
    """Every episode runs the same routine (action t % 4 at step t) and its annotation names the
    action: another episode's words *at the same step* would give the action away. The shuffled
    source also permutes the donor's steps, so its text stays at the prior (issue 22: time-aligned
    shuffled oracle text beat random-text by +0.023 on Crafter's scripted episodes)."""
    N, L = 48, 12
    acts = torch.arange(L).remainder(4).repeat(N, 1)
    ok = torch.ones(N, L, dtype=torch.bool)
    ann = [[[f"act {int(a)}"] for a in row] for row in acts]
    data = Blocks(torch.zeros(N, L, 4, 4, 3, dtype=torch.uint8), acts, ok, None, ann, None, ok)
    torch.manual_seed(0)
    feat = TextFeaturizer(ShuffledSource(AnnotationSource()), buckets=64, decay=0.0, context=4)
    head = ActionHead(in_dim=feat.out_dim, num_actions=4, hidden=32)
    train_head(feat, head, data, steps=150, batch_size=16, lr=3e-3, train_encoder=False, seed=0, progress=False)
    assert evaluate_offline(feat, head, data, acts)["offline/acc"] < 0.5  # aligned: 1.0; the prior: 0.25
    # live: env b hears what env b+1 said at some step of its episode so far
    src = ShuffledSource(AnnotationSource())
    st = src.start(2)
    heard = []
    for t in range(6):
        w, st = src.step(st, None, [[f"a{t}"], [f"b{t}"]], 4)
        heard.append(w)
    assert all(h[0][0] in {f"b{s}" for s in range(t + 1)} and h[1][0] in {f"a{s}" for s in range(t + 1)}
               for t, h in enumerate(heard))


def test_text_features_live_equal_offline():
    feat = TextFeaturizer(AnnotationSource(), buckets=32, decay=0.7, context=3)
    task = _annotated_task(2, 7, 3)
    off = episode_features(feat, **task.subset([0, 1]))
    st, live = feat.start(2), []
    for t in range(7):
        x, st = feat.step(st, task.frames[:, t], annotations=[task.annotations[b][t] for b in range(2)])
        live.append(x)
    torch.testing.assert_close(torch.stack(live, 1), off)


def test_text_features_are_causal():
    """Row t's features read rows <= t only (changing later annotations changes nothing before)."""
    feat = TextFeaturizer(AnnotationSource(), buckets=32, context=4)
    task = _annotated_task(1, 6, 4)
    a = episode_features(feat, **task.subset([0]))
    task.annotations[0][4] = ["something else entirely"]
    b = episode_features(feat, **task.subset([0]))
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.equal(a[:, 4:], b[:, 4:])


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["crafter", "babyai-unlocklocal"])
def test_oracles_do_not_see_the_action_they_must_predict(env_name):
    """Permuting a_t changes nothing the oracles (symbolic state, annotation text) give at rows
    <= t; it does change the future (so the permutation mattered)."""
    from experiments.live import make_env

    t = 6
    base = [3, 3, 1, 1, 3, 2, 2, 1, 4, 0, 2, 2] if env_name == "crafter" else [2, 2, 1, 2, 0, 2, 2, 1, 2, 0, 2, 2]
    other = list(base)
    other[t] = 1 if env_name == "crafter" else 0  # a turn/move instead of the recorded action
    runs = []
    for acts in (base, other):
        env = make_env(env_name, None, {"view": "agent"} if env_name.startswith("babyai") else {}, symbolic=True)
        obs, info = env.reset(seed=5)
        frames, infos, anns = [obs], [info], [info.get("annotations", [])]
        for a in acts:
            obs, _, _, _, info = env.step(a)
            frames.append(obs)
            infos.append(info)
            anns.append(info.get("annotations", []))
        env.close()
        runs.append((frames, infos, anns))
    (f0, i0, a0), (f1, i1, a1) = runs
    for r in range(t + 1):  # rows 0..t describe arriving at o_0..o_t: before a_t
        np.testing.assert_array_equal(i0[r]["symbolic"], i1[r]["symbolic"])
        assert a0[r] == a1[r]
    assert any(not np.array_equal(f0[r], f1[r]) for r in range(t + 1, len(f0)))
    feat = TextFeaturizer(AnnotationSource(), context=4)
    x0, x1 = (feat.sequence(torch.zeros(1, len(a), 1, 1, 3, dtype=torch.uint8), annotations=[a]) for a in (a0, a1))
    torch.testing.assert_close(x0[:, :t + 1], x1[:, :t + 1])


@pytest.fixture(scope="module")
def unlock_data(tmp_path_factory):
    from collect.rollout import CollectConfig, collect_dataset

    out = tmp_path_factory.mktemp("arms") / "unlock"
    collect_dataset(CollectConfig(env="babyai-unlocklocal", out=out, policy="babyai-bot", episodes=12, num_envs=1,
                          vector_mode="sync", env_kwargs={"view": "agent", "size": 32}, progress=False))
    return out


@pytest.mark.slow
def test_symbolic_oracle_replays_the_dataset_and_runs_live(unlock_data, tmp_path):
    """The egocentric dataset's options are recorded and reused: replayed frames equal the
    stored ones, and the live env is the same view/size."""
    from collect.dataset import open_dataset
    from experiments.action_transfer import ActionTransferConfig, env_kwargs_of, load_blocks, run

    ds = open_dataset(unlock_data)
    assert env_kwargs_of(ds) == {"view": "agent", "size": 32} and ds.frame_shape == (32, 32, 3)
    b = load_blocks(unlock_data, [0, 1], use_mission=True, infos=True)
    assert len(b.infos[0]) == b.frames.shape[1] and b.infos[0][0]["symbolic"].shape == (7 * 7 * 20 + 11,)
    res = run(ActionTransferConfig(data=unlock_data, out=tmp_path / "sym", encoder="oracle-symbolic",
                                   n_episodes=4, val_episodes=2, steps=4, eval_every=2, live_episodes=2,
                                   live_envs=2, progress=False))
    assert 0.0 <= res["offline/acc"] <= 1.0 and res["env_kwargs"] == {"view": "agent", "size": 32}
    assert res["live/episodes"] == 2 and res["live_argmax/episodes"] == 2
    assert len(res["offline/episode_correct"]) == len(res["offline/episode_ids"]) >= 1


@pytest.mark.slow
def test_a_plugin_arm_runs_through_a_bc_cell(unlock_data, tmp_path, monkeypatch):
    """Issue 11's recipe: an arm registered from a module the test suite holds, named
    module:name, runs through a BC cell (offline and live) with no other edit."""
    from experiments.action_transfer import ActionTransferConfig, main

    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # plugins/toy_arm.py
    cfg = ActionTransferConfig(data=unlock_data, out=tmp_path / "toy", encoder="plugins.toy_arm:toy",
                               n_episodes=4, val_episodes=2, steps=6, eval_every=3, live_episodes=2,
                               live_envs=2, progress=False)
    res = main(cfg)
    assert res["arm"] == "toy" and "toy" in ARMS and 0.0 <= res["offline/acc"] <= 1.0
    assert res["train/steps_run"] >= 3 and res["live/episodes"] == 2
    saved = json.loads((tmp_path / "toy" / "result.json").read_text())
    assert saved["config"]["encoder"] == "plugins.toy_arm:toy"


def test_narration_text_live_equals_offline():
    """A narrator's words (here a random-init agent) read live, frame by frame with block
    restarts, give the same text features as offline narration of the episode."""
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer
    from experiments.features import NarratorSource

    torch.manual_seed(0)
    agent = BYOGAgent(make_model_config("tiny", "byog"), train_tokenizer(["you see a red ball", "a tree"]))
    feat = TextFeaturizer(NarratorSource(agent), buckets=32, context=3)
    fr = torch.randint(0, 255, (2, 5, 32, 32, 3), dtype=torch.uint8)
    off = episode_features(feat, fr, torch.ones(2, 5, dtype=torch.bool))
    st, live = feat.start(2), []
    for t in range(5):
        x, st = feat.step(st, fr[:, t])
        live.append(x)
    torch.testing.assert_close(torch.stack(live, 1), off)


def test_featurizers_and_the_head_work_on_the_featurizers_device():
    """On the "meta" device (shapes, no data) a tensor silently made on the CPU comes out on the
    CPU or fails beside a meta one: every frame-free, text, symbolic, pixel and concatenated
    featurizer, offline (the BC cache), live (one step) and through the head, stays on its
    device. (BYOG featurizers are left out: autocast takes no meta device.)"""
    from agents.obs import CNNEncoder
    from experiments.action_transfer import _Model, featurize
    from experiments.features import (
        ConcatFeaturizer,
        ConstantFeaturizer,
        ObsFeaturizer,
        SymbolicFeaturizer,
    )
    from experiments.heads import mission_ids

    torch.manual_seed(0)
    N, L = 3, 5
    frames = torch.randint(0, 255, (N, L, 16, 16, 3), dtype=torch.uint8)
    valid = torch.ones(N, L, dtype=torch.bool)
    anns = [[["you see a ball"] if t % 2 else [] for t in range(L)] for _ in range(N)]
    infos = [[{"symbolic": [1.0, 2.0, 3.0]} for _ in range(L)] for _ in range(N)]
    data = Blocks(frames, torch.randint(0, 4, (N, L)), valid, mission_ids(["go to the ball"] * N), anns, infos,
                  valid, list(range(N)))

    def cnn():
        return ObsFeaturizer(CNNEncoder(out_dim=8, channels=(4, 8)), context=2)

    feats = {"constant": ConstantFeaturizer(context=2), "text": TextFeaturizer(AnnotationSource(), context=2),
             "symbolic": SymbolicFeaturizer(3, context=2), "pixels": cnn(),
             "concat": ConcatFeaturizer(TextFeaturizer(AnnotationSource(), context=2), cnn())}
    for name, feat in feats.items():
        feat.to("meta")
        assert feat.device.type == "meta", name
        head = ActionHead(in_dim=feat.out_dim, num_actions=4, hidden=8, gru=True, mission_dim=4).to("meta")
        x = featurize(feat, data)
        logits = _Model(feat, head, train_encoder=name in ("pixels", "concat")).logits(data, torch.tensor([0, 2]))
        y, _ = feat.step(feat.start(2), frames[:2, 0].to("meta"), annotations=[["a ball"], []], infos=infos[0][:2])
        assert (x.shape, logits.shape, y.shape) == ((N, L, feat.out_dim), (2, L, 4), (2, feat.out_dim)), name
        assert {x.device.type, logits.device.type, y.device.type} == {"meta"}, name


def test_a_pretraining_kind_is_one_plugin_file(tmp_path):
    """tests/plugins/toy_pretrain.py registers a kind and an arm; the study plans it at every
    label fraction, trains it with its own preset and measures its narration, with no edit."""
    from dataclasses import replace

    import plugins.toy_pretrain  # noqa: F401  (registers latent-narrator and latent-hidden)

    from experiments.pretrain import PRETRAIN_KINDS, PretrainSpec, train_config
    from experiments.run_all import PRESETS, data_dir, plan_cells

    assert PRETRAIN_KINDS["latent-narrator"].narrates
    p = replace(PRESETS["tiny"], arms=("prior", "latent-hidden"), label_fractions=(0.25, 0.5))
    root = tmp_path / "study"
    data = {e: data_dir(root, e, plan) for e, plan in p.envs.items()}
    cells = plan_cells(p, root, data, {e: plan.episodes for e, plan in p.envs.items()})
    pre = [c for c in cells if c.kind == "pretrain"]
    assert sorted(c.config["label_fraction"] for c in pre) == [0.25, 0.5]
    assert {c.config["kind"] for c in pre} == {"latent-narrator"}
    cfg = train_config("latent-narrator", tmp_path / "data", tmp_path / "run", PretrainSpec(steps=3), 0.5)
    assert cfg.model.predictor.mode == "latent"  # its preset, byog-latent
    with pytest.raises(ExperimentError, match="Unknown pretraining kind 'zz-kind'"):
        train_config("zz-kind", tmp_path / "data", tmp_path / "run", PretrainSpec(steps=3), 0.5)
