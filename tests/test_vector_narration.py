"""Vector narration: N envs narrated by one batched decode equal N single-env narrators token for
token (greedy), forecasts included, with envs that reset and slide their windows at different
steps."""
import itertools
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.config import make_model_config
from agents.errors import NarrationError
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from agents.narrate.narrator import Narrator
from agents.narrate.vector_narration import VectorNarrationWrapper, VectorNarrator

SENTENCES = ["collected 1 wood", "tree in view", "made wood pickaxe", "cow in view"]
TIE = 1e-5  # greedy: where the two best logits are this close, either choice is accepted


class NoiseEnv(gym.Env):
    """16x16 seeded colour frames; truncates after ``length`` steps (envs end at their own steps)."""

    def __init__(self, length: int) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.length, self.t = length, 0

    def _obs(self):
        base = self.np_random.integers(0, 256, 3)
        noise = self.np_random.integers(0, 60, (16, 16, 3))
        return np.clip(base - noise, 0, 255).astype(np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= self.length, {}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SENTENCES)


def make_agent(tok, preset="byog", delta=False):
    torch.manual_seed(0)
    cfg = make_model_config("tiny", preset, text={"tokens_per_frame": 3},
                            obs={"cnn_frame_delta": delta, "cnn_arch": "conv"})
    agent = BYOGAgent(cfg, tok)
    agent.encoder.projector[1].weight.data.mul_(8.0)  # loud frames: narration varies with them
    for blk in agent.encoder.xattn or []:  # open the gates so frames matter through xattn
        blk.gate_attn.data.fill_(1.0)
        blk.gate_ff.data.fill_(1.0)
    return agent.eval()


def single_narration(agent, episodes, window, keep, forecast=0, rule=True):
    """Each episode (frames uint8 [T, H, W, 3]) narrated alone: (ids [T, k + F*k], logits
    [T, k + F*k, V]), per frame its slot then its F forecast frames. ``rule``: the slot rule
    (carry cut and early exit, agents.model.slot_rule) on or off."""
    out = []
    n = Narrator(agent, window=window, keep=keep, forecast=forecast, greedy=True, decode=False,
                 cut=rule, early_exit=rule)
    seen = []  # the forecaster's logits [1, V], in the order it samples (it samples by n.sample)
    sample = n.sample
    n.sample = lambda z: seen.append(z) or sample(z)
    for frames in episodes:
        n.reset()
        ids, logits = [], []
        for f in frames:
            seen.clear()
            s = n.step(f[None])
            ids.append(torch.cat([s.ids[0], s.forecast_ids[0].reshape(-1)]))
            z = torch.cat([agent.encoder.tlm.logits(s.hidden[0]), *seen])  # [k + F*k, V]
            logits.append(z.index_fill(-1, agent.encoder.banned, float("-inf")))
        out.append((torch.stack(ids), torch.stack(logits)))
    return out


def with_forecast(step):
    """A step's ids then its forecast ids, flat: Long [N, k + F*k] (as single_narration lays out)."""
    return torch.cat([step.ids, step.forecast_ids.flatten(1)], 1)


def assert_same_narration(vec_ids, single, where):
    """Token for token; at the first difference the single narrator's two best logits must tie
    within TIE (then the rest of the episode legitimately diverges and is not compared)."""
    ids, logits = single
    diff = (vec_ids != ids).nonzero()
    if len(diff):
        t, j = diff[0].tolist()
        top = logits[t, j].topk(2).values
        assert float(top[0] - top[1]) < TIE, f"{where}: frame {t} slot {j} differs without a tie"


@pytest.mark.parametrize("rule", [True, False], ids=["slot-rule", "free"])
@pytest.mark.parametrize("preset,delta,forecast", [
    ("byog", False, 2), ("byog-parallel", False, 2), ("byog-xattn", False, 0), ("byog", True, 0)])
def test_vector_equals_single_env_narration_with_resets_and_slides_at_different_steps(
        tok, preset, delta, forecast, rule):
    """Forecasts too: the prefix forecaster (byog) keeps a context per row, the parallel one
    (byog-parallel) none. With the slot rule (the carry cut and the early exit, whose parallel
    fill runs at per-row positions) and without it."""
    agent = make_agent(tok, preset, delta)
    agent.encoder.slot_rule = replace(agent.encoder.slot_rule, max_carry=1)  # cuts happen here
    window, keep, N, steps = 6, 3, 3, 30
    rng = np.random.default_rng(0)
    lengths = [[5, 9, 30], [13, 30], [2, 4, 7, 30]]  # episode lengths (frames) of each env
    episodes = [[rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for n in ls] for ls in lengths]
    streams = [np.concatenate(eps)[:steps] for eps in episodes]  # [steps, H, W, 3] per env
    starts = np.zeros((steps, N), bool)
    for i, ls in enumerate(lengths):
        starts[np.cumsum([0] + ls[:-1]), i] = True
    vec = VectorNarrator(agent, num_envs=N, window=window, keep=keep, forecast=forecast,
                         greedy=True, cut=rule, early_exit=rule)
    vec.reset()
    ids = torch.stack([with_forecast(vec.step(np.stack([s[t] for s in streams]), starts=starts[t]))
                       for t in range(steps)], 1)  # [N, steps, k + F*k]
    assert vec.reencodes >= 8  # slides happened, in different envs at different steps
    assert len({tuple(r) for r in ids[..., :3].reshape(-1, 3).tolist()}) > 1 + (not rule)  # varies
    counts = vec.slot_counts()
    if rule:  # the rule did something: sentences were cut (the early exit's fill across rows is
        assert counts["cut_tokens"] > 0, counts  # tested on recorded episodes, test_slot_rule)
    else:
        assert counts == {"cut_tokens": 0, "ill_formed_slots": 0, "early_exit_frames": 0,
                          "gated_words": 0, "hushed_sentences": 0}
    if forecast:  # so do the forecasts
        assert len({tuple(r) for r in ids[..., 3:].reshape(-1, 3 * forecast).tolist()}) > 2
    for i, ls in enumerate(lengths):
        eps = [e[:max(0, min(len(e), steps - s))] for e, s in zip(episodes[i], np.cumsum([0] + ls[:-1]))]
        eps = [e for e in eps if len(e)]
        for e, (b, single) in enumerate(zip(np.cumsum([0] + ls[:-1]),
                                            single_narration(agent, eps, window, keep, forecast,
                                                             rule))):
            n = single[0].shape[0]
            assert_same_narration(ids[i, b:b + n], single, f"env {i} episode {e}")


def test_without_the_reset_an_env_continues_its_old_context(tok):
    """The test above can fail: an env not told it restarted narrates (and forecasts) from its
    old context."""
    agent = make_agent(tok)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (8, 2, 16, 16, 3), dtype=np.uint8)
    out = {}
    for told in (True, False):
        vec = VectorNarrator(agent, num_envs=2, window=16, forecast=1, greedy=True)
        vec.reset()
        out[told] = torch.stack([with_forecast(vec.step(frames[t], starts=[t == 4 and told, False]))
                                 for t in range(8)], 1)
    (fresh, _), = single_narration(agent, [frames[4:, 0]], 16, 8, forecast=1)
    assert torch.equal(out[True][0, 4:], fresh)
    assert not torch.equal(out[False][0, 4:], fresh)
    assert torch.equal(out[True][1], out[False][1])  # the other env is untouched


def test_a_row_not_refilled_after_its_slide_keeps_its_old_forecast_context(tok):
    """The forecast comparison can fail on its own: without re-feeding the slid rows' context
    into the predictor's cache, narration is unchanged but the forecasts after the slide are
    not."""
    agent = make_agent(tok)
    frames = np.random.default_rng(2).integers(0, 256, (10, 2, 16, 16, 3), dtype=np.uint8)
    out = {}
    for refill in (True, False):
        vec = VectorNarrator(agent, num_envs=2, window=4, keep=2, forecast=2, greedy=True)
        if not refill:
            vec._forecaster.refill = lambda *args: None
        vec.reset()
        steps = [vec.step(frames[t]) for t in range(10)]
        out[refill] = (torch.stack([s.ids for s in steps], 1),
                       torch.stack([s.forecast_ids for s in steps], 1))  # [2, 10, k], [2, 10, F, k]
    assert vec.reencodes == 2 * 3  # slides at frames 4, 6 and 8 of both envs
    assert torch.equal(out[True][0], out[False][0])  # narration does not read the predictor
    assert torch.equal(out[True][1][:, :4], out[False][1][:, :4])  # before the first slide
    assert not torch.equal(out[True][1][:, 4:], out[False][1][:, 4:])


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_wrapper_on_a_vector_env_resets_each_env_at_its_own_step(tok, mode):
    agent = make_agent(tok)
    lengths = [3, 5]
    venv = gym.vector.SyncVectorEnv([lambda n=n: NoiseEnv(n) for n in lengths],
                                    autoreset_mode=gym.vector.AutoresetMode(mode))
    env = VectorNarrationWrapper(venv, agent, window=4, keep=2, forecast=2)

    def tokens(info):  # narration then forecast tokens, as single_narration lays them out
        return np.concatenate([info["narration_tokens"], info["forecast_tokens"].reshape(2, -1)], 1)

    obs, info = env.reset(seed=0)
    frames, toks, dones = [obs], [tokens(info)], []
    for _ in range(11):
        obs, _, term, trunc, info = env.step(np.zeros(2, np.int64))
        frames.append(obs)
        toks.append(tokens(info))
        dones.append(term | trunc)
    assert info["narration"].shape == (2,) and info["_narration"].all()
    assert info["narration_tokens"].shape == (2, 3) and info["narration_entropy"].shape == (2,)
    assert info["forecast"].shape == (2,) and info["_forecast"].all() and info["_forecast_tokens"].all()
    assert all(isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
               for f in info["forecast"])
    assert info["forecast_tokens"].shape == (2, 2, 3)
    frames, toks = np.stack(frames), np.stack(toks)  # [12, 2, ...]
    for i in range(2):  # split env i's stream into episodes as the autoreset mode lays them out
        bounds = [0] + [t + (2 if mode == "NextStep" else 1) for t in range(11) if dones[t][i]]
        bounds = [b for b in bounds if b < 12] + [12]
        eps = [frames[a:b, i] for a, b in itertools.pairwise(bounds)]
        assert len(eps) >= 2
        for (a, b), single in zip(itertools.pairwise(bounds),
                                  single_narration(agent, eps, 4, 2, forecast=2)):
            assert_same_narration(torch.as_tensor(toks[a:b, i]), single, f"env {i} from {a}")


def test_bad_inputs_give_one_clear_error(tok, monkeypatch):
    agent = make_agent(tok)
    with pytest.raises(NarrationError, match="num_envs"):
        VectorNarrator(agent, num_envs=0)
    with pytest.raises(NarrationError, match="forecast must be >= 0"):
        VectorNarrator(agent, num_envs=2, forecast=-1)
    with pytest.raises(NarrationError, match="captioner"):
        VectorNarrator(make_agent(tok, "captioner"), num_envs=2, forecast=1)
    monkeypatch.setattr(agent.cfg.predictor, "mode", "other")
    with pytest.raises(NarrationError, match=r"vector live forecast 'other'.*VECTOR_FORECASTS\.register"):
        VectorNarrator(agent, num_envs=2, forecast=1)
    monkeypatch.undo()
    vec = VectorNarrator(agent, num_envs=2, window=4)
    with pytest.raises(NarrationError, match="before reset"):
        vec.step(np.zeros((2, 16, 16, 3), np.uint8))
    vec.reset()
    with pytest.raises(NarrationError, match=r"uint8 frames \[2, H, W, 3\]"):
        vec.step(np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(NarrationError, match="one flag per env"):
        vec.reset_envs([True])
    assert vec.window == 4 and VectorNarrator(agent, num_envs=1).window == 16  # training window


def test_narrate_cli_with_num_envs_plays_every_episode_and_sets_threads(tok, tmp_path):
    import json

    from agents.narrate.command import cli

    ckpt = tmp_path / "ckpt"
    make_agent(tok).save_pretrained(ckpt / "agent")
    (ckpt / "meta.json").write_text(json.dumps({"step": 0, "dataset": {
        "env_id": "crafter", "frame_shape": [64, 64, 3]}}))
    torch.set_num_threads(2)
    try:
        rc = cli(["--env", "crafter", "--checkpoint", str(ckpt), "--steps", "4", "--episodes", "3",
                  "--num-envs", "2", "--forecast", "2", "--greedy", "--no-video", "--quiet",
                  "--threads", "1",
                  "--out", str(tmp_path / "out")])
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(1)
    assert rc == 0 and threads == 1  # --threads reached torch
    lines = [json.loads(s) for s in (tmp_path / "out" / "narration.jsonl").read_text().splitlines()]
    steps = {e: [d["step"] for d in lines if d["episode"] == e] for e in range(3)}
    assert steps == {e: [0, 1, 2, 3, 4] for e in range(3)}  # 3 episodes over 2 envs, all whole
    assert all(len(d["narration_tokens"]) == 3 for d in lines)
    assert all(len(d["forecast"]) == 2 and all(isinstance(f, str) for f in d["forecast"])
               for d in lines)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 15 and summary["config"]["num_envs"] == 2
    assert cli(["--checkpoint", str(ckpt), "--num-envs", "0", "--out", str(tmp_path)]) == 2
    assert cli(["--checkpoint", str(ckpt), "--threads", "-1", "--out", str(tmp_path)]) == 2
