"""Live evaluation with envs restarting at their own steps: featurizers restart one stream
without touching the others and give exactly the offline features of every episode; the live
runner plays every seed once and never waits for a round's slowest env."""
from __future__ import annotations

import pytest
import torch

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from experiments.features import (
    AnnotationSource,
    BYOGFeaturizer,
    ConcatFeaturizer,
    NarratorSource,
    ObsFeaturizer,
    TextFeaturizer,
    episode_features,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONTEXT = 3
# two streams: stream 0 plays episodes of 4 then 5 frames, stream 1 one of 9 frames, so stream 0
# restarts mid-block of stream 1 (and blocks of 3 restart at different steps in each)
LENGTHS = [[4, 5], [9]]


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    a = BYOGAgent(make_model_config("tiny", "byog", obs={"cnn_frame_delta": True}),
                  train_tokenizer(["you see a red ball", "a tree", "collected wood"]))
    a.encoder.projector[1].weight.data.mul_(8.0)  # loud frames: features vary with them
    return a.eval()


def featurizers(agent):
    from agents.obs import build_obs_encoder

    torch.manual_seed(1)
    obs = ObsFeaturizer(build_obs_encoder(make_model_config("tiny", "byog", obs={"cnn_frame_delta": True}).obs),
                        context=CONTEXT)
    return {"byog-hidden": BYOGFeaturizer(agent, context=CONTEXT),
            "byog-text": TextFeaturizer(NarratorSource(agent), buckets=32, context=CONTEXT),
            "oracle-text": TextFeaturizer(AnnotationSource(), buckets=32, context=CONTEXT),
            "scratch-delta": obs,
            "hidden+scratch": ConcatFeaturizer(BYOGFeaturizer(agent, context=CONTEXT), obs)}


def episodes():
    g = torch.Generator().manual_seed(0)
    return [[(torch.randint(0, 255, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
              [[f"you see a red ball {t % 3}"] for t in range(n)]) for n in ls] for ls in LENGTHS]


@pytest.mark.parametrize("name", ["byog-hidden", "byog-text", "oracle-text", "scratch-delta", "hidden+scratch"])
def test_streams_restarting_at_their_own_steps_give_each_episodes_offline_features(agent, name):
    feat = featurizers(agent)[name]
    assert feat.restarts_streams
    eps = episodes()
    streams = [torch.cat([f for f, _ in se]) for se in eps]
    anns = [[a for _, al in se for a in al] for se in eps]
    starts = torch.zeros(9, 2, dtype=torch.bool)
    starts[4, 0] = True  # stream 0's second episode
    with torch.no_grad():
        st, live = feat.start(2), []
        for t in range(9):
            x, st = feat.step(st, torch.stack([streams[0][t], streams[1][t]]),
                              annotations=[anns[0][t], anns[1][t]], starts=starts[t] if t else None)
            live.append(x)
        live = torch.stack(live, 1)  # [2, 9, D]
        for b, se in enumerate(eps):
            s = 0
            for frames, al in se:
                off = episode_features(feat, frames[None], torch.ones(1, len(frames), dtype=torch.bool),
                                       annotations=[al])[0]
                torch.testing.assert_close(live[b, s:s + len(frames)], off, atol=1e-4, rtol=1e-4,
                                           msg=f"{name}: stream {b}, episode at {s}")
                s += len(frames)


def test_without_the_start_flag_the_stream_carries_its_old_episode(agent):
    """The test above can fail: a stream not told its episode restarted keeps its old context."""
    feat = featurizers(agent)["byog-hidden"]
    eps = episodes()
    frames = torch.stack([torch.cat([f for f, _ in eps[0]]), torch.cat([f for f, _ in eps[1]])], 0)
    out = {}
    with torch.no_grad():
        for told in (True, False):
            st, live = feat.start(2), []
            for t in range(9):
                starts = torch.tensor([t == 4 and told, False])
                x, st = feat.step(st, frames[:, t], starts=starts)
                live.append(x)
            out[told] = torch.stack(live, 1)
    assert not torch.allclose(out[True][0, 4:6], out[False][0, 4:6], atol=1e-3)
    torch.testing.assert_close(out[True][1], out[False][1])  # the other stream is untouched


class _CountingActor:
    """A stand-in with per-env state that steps right in the toy env (an episode lasts as many
    steps as its seed's start cell is from the lamp: lengths differ by seed); counts calls."""

    def __init__(self, restarts: bool) -> None:
        self.restarts_envs, self.calls, self.started = restarts, 0, 0

    def reset(self, envs, obs, infos):
        self.started += len(obs)

    def act(self, obs, infos, active, starts=None):
        self.calls += 1
        self.started += sum(starts or [])
        return [1] * len(obs)


def test_envs_restart_on_their_own_and_play_every_seed_once():
    from experiments.live import run_episodes

    res = {}
    for restarts in (False, True):
        actor = _CountingActor(restarts)
        out = run_episodes("plugins.toy_env:toy", actor, episodes=9, seed=3, num_envs=3)
        assert [r.seed for r in out] == list(range(3, 12)) and all(r.success for r in out)
        assert actor.started == 9
        res[restarts] = (out, actor.calls)
    (rounds, rounds_calls), (cont, cont_calls) = res[False], res[True]
    assert len({r.length for r in rounds}) > 2  # episodes of different lengths
    assert [(r.seed, r.length, r.ret) for r in rounds] == [(r.seed, r.length, r.ret) for r in cont]
    assert cont_calls < rounds_calls  # no env idles while a round's slowest finishes


def test_a_cloned_policy_acts_the_same_whether_envs_restart_alone_or_in_rounds():
    """ClonedActor's own restart path (featurizer streams, GRU memory, mission) gives every
    episode exactly what a fresh reset gives it: the argmax actions are the same under both
    schedules (checked by hand to fail when the GRU's memory is not reset)."""
    from experiments.action_transfer import ClonedActor
    from experiments.arms import ArmContext, resolve_arm
    from experiments.heads import ActionHead
    from experiments.live import run_episodes

    feat = resolve_arm("scratch")[1].build(ArmContext(checkpoint=None, data=None, env="babyai-gotolocal",
                                                      env_kwargs={}, context=CONTEXT, seed=0))
    torch.manual_seed(0)
    head = ActionHead(in_dim=feat.out_dim, num_actions=7, gru=True, mission_dim=32).eval()
    with torch.no_grad():  # a loud memory and output: the GRU's state decides the argmax
        for p in (*head.gru.parameters(), *head.out.parameters()):
            p.mul_(8.0)
    out = {}
    for restarts in (True, False):
        actor = ClonedActor(feat, head, use_mission=True, sample=False)
        actor.restarts_envs = restarts
        acts: list[list[int]] = []
        act = actor.act
        def logged(obs, infos, active, _act=act, **kw):
            a = _act(obs, infos, active, **kw)
            acts.append([x for x, on in zip(a, active) if on])  # an idle slot's action is unused
            return a
        actor.act = logged
        # equal-length episodes (the 7-step cap): both schedules put the same seeds in the same
        # slots at the same steps, so their actions must agree call for call
        res = run_episodes("babyai-gotolocal", actor, episodes=5, seed=20, num_envs=2, max_steps=7)
        assert all(r.length == 7 for r in res)
        out[restarts] = [a for call in acts for a in call]
    assert len(set(out[True])) > 1 and out[True] == out[False]


class _ReplayHead(torch.nn.Module):
    """Stands in for a trained head: records the features the live actor feeds it and returns
    logits that pick the recorded episode's next action (so the live env replays the episode)."""

    def __init__(self, actions, num_actions: int) -> None:
        super().__init__()
        self.actions, self.num_actions, self.t, self.seen = list(actions), num_actions, 0, []

    def forward(self, x, mission=None, h=None):
        self.seen.append(x[0, 0].clone())
        logits = torch.zeros(1, 1, self.num_actions)
        logits[0, 0, int(self.actions[min(self.t, len(self.actions) - 1)])] = 1.0
        self.t += 1
        return logits, h


@pytest.mark.slow
@pytest.mark.parametrize("env_name,plan", [("babyai-unlocklocal", (10, None, {"view": "agent"})),
                                           ("crafter", (3, 40, {}))])
def test_a_trained_narrators_live_features_equal_the_offline_features_of_the_recorded_episode(
        tmp_path, env_name, plan):
    """Issue 22: with a narrator pretrained as the study pretrains it, the live path (the env
    stepped by the live runner, the cloned actor, the featurizer's step) gives per step exactly
    the features the BC head was trained on offline for the recorded episode (byog-text: its
    words; byog: its hidden states), across block restarts (episodes longer than the context)."""
    from collect.dataset import open_dataset
    from experiments.action_transfer import (
        ActionTransferConfig,
        ClonedActor,
        build_featurizer,
        env_kwargs_of,
        featurize,
        load_blocks,
    )
    from experiments.live import run_episodes
    from experiments.pretrain import PretrainSpec, pretrain
    from experiments.run_all import EnvPlan, collect_data

    data = collect_data(env_name, EnvPlan(*plan), tmp_path / "data", progress=False)
    pretrain("byog", data, tmp_path / "run", PretrainSpec(steps=80, batch_size=4, progress=False), label_fraction=1.0)
    ds = open_dataset(data)
    longest = max(range(ds.num_episodes), key=lambda i: ds.episode(i).length)
    assert ds.episode(longest).length > 16  # crosses a block restart (context 16)
    mission = bool(ds.records[0].get("mission"))
    spoken = 0.0
    for arm in ("byog-text", "byog"):
        feat = build_featurizer(ActionTransferConfig(data=data, out=tmp_path / "bc", encoder=arm,
                                                     checkpoint=tmp_path / "run"))
        for i in sorted({0, longest}):
            ep = ds.episode(i)
            offline = featurize(feat, load_blocks(data, [i], mission))[0]  # [L, D]
            head = _ReplayHead(ep.actions[ep.actions >= 0], int(ds.info["action_space"]["n"]))
            actor = ClonedActor(feat, head, use_mission=False, sample=False)
            [res] = run_episodes(env_name, actor, episodes=1, seed=int(ep.record["seed"]), num_envs=1,
                                 max_steps=plan[1], env_kwargs=env_kwargs_of(ds))
            steps = int((ep.actions >= 0).sum())
            assert res.length == steps  # the env replayed the recorded episode
            torch.testing.assert_close(torch.stack(head.seen), offline[:steps], atol=1e-4, rtol=1e-4)
            if arm == "byog-text":
                spoken += float(offline[:steps].abs().sum())
    assert spoken > 0  # the narrator speaks: the comparison is not of empty channels


def test_slot_support_counts_narrated_slots_whose_words_the_annotations_hold():
    from experiments.features import slot_support

    narrated = [["picked up blue key"], [], ["facing", "blue door"], ["picked up blue door"]]
    truth = [["You picked up the blue key"], ["facing blue door"], ["facing blue door"], ["facing blue door"]]
    # slot 0 supported (case and extra words aside), slot 1 says nothing, slot 2 supported, slot 3 not
    assert slot_support(narrated, truth) == (2, 3)
    assert slot_support([[]], [["x"]]) == (0, 0)
