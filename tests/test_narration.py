"""Live narration: the wrapper matches offline narration, slides its window faithfully,
forecasts consistently with the predictor, stays bounded on long episodes, and is seedable."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import SENTENCES, PatternEnv

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer, unslot
from agents.narrate.narration import NarrationError, NarrationWrapper, Narrator, check_frame_shape

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SENTENCES)


def make_agent(tok, preset="byog", k=4, **over):
    torch.manual_seed(0)
    # frame-wise unless a test asks for deltas; the equivalences below do not depend on the obs
    # arch, and the conv stack's init gives greedy narration that varies with these frames
    over["obs"] = {"cnn_frame_delta": False, "cnn_arch": "conv", **over.get("obs", {})}
    agent = BYOGAgent(make_model_config("tiny", preset, text={"tokens_per_frame": k}, **over), tok)
    agent.encoder.projector[1].weight.data.mul_(8.0)  # loud frames: narration varies with them
    if agent.encoder.xattn is not None:  # open the gates so frames matter through xattn
        for blk in agent.encoder.xattn:
            blk.gate_attn.data.fill_(1.0)
            blk.gate_ff.data.fill_(1.0)
    return agent.eval()


def make_delta_agent(tok, preset="byog", k=4):
    """A frame-delta agent whose narration varies with the frames: the plain agent's weights,
    its first conv reading o_t with the plain weights and the delta o_t - o_{t-1} with twice them."""
    base = make_agent(tok, preset, k=k)
    agent = make_agent(tok, preset, k=k, obs={"cnn_frame_delta": True})
    agent.load_state_dict({n: v for n, v in base.state_dict().items()
                           if not n.endswith("obs.convs.0.weight")}, strict=False)
    w = base.encoder.obs.convs[0].weight.data  # [C, 3, k, k]
    agent.encoder.obs.convs[0].weight.data.copy_(torch.cat([w, 2 * w], 1))
    return agent.eval()


def rollout(env, steps, seed, key="narration_tokens"):
    obs, info = env.reset(seed=seed)
    frames, infos = [obs], [info]
    for i in range(steps):
        obs, _, _, _, info = env.step(i % env.action_space.n)
        frames.append(obs)
        infos.append(info)
    return np.stack(frames), infos


def banned_argmax(agent, z):
    return z.index_fill(-1, agent.encoder.banned, float("-inf")).argmax(-1)


# ----------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("preset,delta", [("byog", False), ("byog-xattn", False), ("byog", True)])
def test_live_greedy_equals_offline_greedy_within_the_window(tok, preset, delta):
    agent = make_delta_agent(tok, preset) if delta else make_agent(tok, preset)
    assert agent.encoder.obs.uses_previous_frame is delta
    env = NarrationWrapper(PatternEnv(), agent, window=16, greedy=True)
    frames, infos = rollout(env, 13, seed=5)  # 14 frames < window: no slide yet
    live = torch.as_tensor(np.stack([i["narration_tokens"] for i in infos]))  # [T, k]
    offline = agent.narrate(torch.as_tensor(frames)[None], greedy=True)[0]  # [T, k]
    assert live.shape == (14, 4) and live.dtype == torch.long
    assert torch.equal(live, offline)
    if preset == "byog":  # the narration depends on the frames (xattn at init: only the logits)
        assert len({tuple(r) for r in live.tolist()}) > 1
    assert len({round(i["narration_entropy"], 6) for i in infos}) > 7
    texts = ["; ".join(unslot(offline[t][None], tok)[0]) for t in range(14)]
    assert [i["narration"] for i in infos] == texts
    assert env.narrator.reencodes == 0 and env.narrator.cache_length == 14 * 4
    clip = torch.as_tensor(frames)[None]  # [1, 14, H, W, 3]
    e = agent.encoder.frame_embeddings(clip)[0]  # [14, D]
    assert torch.allclose(torch.cat(list(env.narrator._e)), e, atol=1e-5)
    if delta:  # each frame after the first is embedded with its predecessor's delta
        alone = agent.encoder.frame_embeddings(clip[0, :, None])[:, 0]  # [14, D] zero deltas
        assert torch.allclose(alone[0], e[0], atol=1e-5)
        assert (alone[1:] - e[1:]).abs().amax(-1).min() > 1e-3
    assert all(isinstance(i["narration_entropy"], float) and i["narration_entropy"] > 0 for i in infos)


@pytest.mark.parametrize("preset,delta", [("byog", False), ("byog-xattn", False), ("byog", True)])
def test_sliding_window_continues_as_a_fresh_window_of_the_kept_frames(tok, preset, delta):
    agent = make_delta_agent(tok, preset) if delta else make_agent(tok, preset)
    n = Narrator(agent, window=6, keep=3)
    n.reset(0)
    env = PatternEnv()
    env.reset(seed=1)
    seen = []
    for t in range(11):  # slides before frames 6 and 9 (context 6 -> 3, then 3 new each)
        obs = env.step(0)[0]
        seen.append(torch.as_tensor(obs)[None])
        n.step(obs[None])
        assert n.cache_length == n.context_frames * 4 <= 6 * 4
    assert n.reencodes == 2 and n.context_frames == 5
    # the 2 frames narrated after the last slide are the greedy continuation of a window that
    # starts (<bos>, position 0) at the first kept frame: check with a teacher-forced pass
    e = torch.stack(list(n._e), 1)  # [1, 5, D]
    ids = torch.stack(list(n._ids), 1)  # [1, 5, k]
    _, z = agent.encoder(ids, e)  # [1, 20, V]
    assert torch.equal(banned_argmax(agent, z)[0, 12:], ids[0, 3:].reshape(-1))
    if delta:  # the kept frames embed as a training window of them: the first one keeps its
        # real delta to the frame before it (windows carry their prev_frame)
        clip = torch.stack(seen[-5:], 1)  # [1, 5, H, W, 3]
        assert torch.equal(n.state.last_frame, clip[:, -1])
        assert torch.allclose(agent.encoder.frame_embeddings(clip, prev_frame=seen[-6]), e, atol=1e-5)


def test_greedy_forecast_is_the_predictors_rollout_from_the_current_state(tok):
    agent = make_agent(tok, "byog")
    n = Narrator(agent, window=6, keep=3, forecast=2)
    n.reset(0)
    env = PatternEnv()
    env.reset(seed=2)
    for _ in range(8):  # one slide, so the predictor cache was re-encoded too
        out = n.step(env.step(0)[0][None])
    assert out.forecast_ids.shape == (1, 2, 4) and len(out.forecast[0]) == 2
    assert n._forecaster.cache.get_seq_length() == n.cache_length  # the rollout was cropped away
    e = torch.stack(list(n._e), 1)
    ids = torch.stack(list(n._ids), 1)  # [1, 5, k]
    h, z = agent.encoder(ids, e)
    y = torch.cat([ids.reshape(1, -1), out.forecast_ids.reshape(1, -1)], 1)  # [1, 28]
    x = agent.predictor.features(h, z)
    x = torch.cat([x, x.new_zeros(1, 8, x.shape[-1])], 1)
    m = torch.zeros(1, 28)
    m[:, :20] = 1  # the prefix = the context; the forecast positions see no encoder state
    logits = agent.predictor.forward_prefix(x, y, m)
    assert torch.equal(banned_argmax(agent, logits)[0, 20:28], out.forecast_ids.reshape(-1))


def test_parallel_forecast_conditions_on_the_last_state(tok):
    agent = make_agent(tok, "byog-parallel")
    n = Narrator(agent, window=8, forecast=1)
    n.reset(0)
    env = PatternEnv()
    env.reset(seed=3)
    for _ in range(3):
        out = n.step(env.step(0)[0][None])
    x_i = agent.predictor.features(n.state.hidden, None)[:, -1]  # [1, D]
    inputs = torch.cat([out.ids[:, -1:], out.forecast_ids.reshape(1, -1)[:, :-1]], 1)  # [1, 4]
    logits = agent.predictor.forward_parallel(x_i, inputs)
    assert torch.equal(banned_argmax(agent, logits)[0], out.forecast_ids.reshape(-1))


def test_forecasts_decode_with_the_encoders_nil_rule(tok):
    from agents.model.lm import sample_tokens

    agent = make_agent(tok, "byog-parallel")
    nil = agent.special.nil
    env = PatternEnv()
    for p, check in [(1.0, lambda f: (f != nil).all()), (0.0, lambda f: (f == nil).all())]:
        agent.encoder.nil_rule = (nil, p)  # p = 1: never <nil>; p = 0: always <nil>
        n = Narrator(agent, window=8, forecast=2)
        n.reset(0)
        env.reset(seed=3)
        out = n.step(env.step(0)[0][None])
        assert check(out.forecast_ids) and check(out.ids)
    agent.encoder.nil_rule = (nil, 0.5)
    n = Narrator(agent, window=8, forecast=1)
    n.reset(0)
    env.reset(seed=3)
    for _ in range(3):
        out = n.step(env.step(0)[0][None])
    x_i = agent.predictor.features(n.state.hidden, None)[:, -1]
    inputs = torch.cat([out.ids[:, -1:], out.forecast_ids.reshape(1, -1)[:, :-1]], 1)
    logits = agent.predictor.forward_parallel(x_i, inputs)[0]  # [k, V]
    want = sample_tokens(logits, greedy=True, banned=agent.encoder.banned, nil_rule=(nil, 0.5))
    assert torch.equal(want, out.forecast_ids.reshape(-1))


# ----------------------------------------------------------------------------- memory
@pytest.mark.slow
def test_cache_stays_bounded_over_5000_steps(tok):
    agent = make_agent(tok, "byog", k=1, lm={"num_layers": 1, "hidden_size": 32, "num_heads": 2,
                                             "intermediate_size": 64},
                       obs={"out_dim": 16, "cnn_channels": (4, 4)})
    env = NarrationWrapper(PatternEnv(size=8), agent, window=16, keep=8)
    env.reset(seed=0)
    lengths, stored = [], []
    for t in range(5000):
        env.step(0)
        nar = env.narrator
        lengths.append(nar.cache_length)
        if t % 97 == 0:  # the tensors held, not just the counters, stay bounded
            stored.append(cache_positions_stored(nar.state.cache) + len(nar._e) + len(nar._ids))
            assert nar.state.position == nar.cache_length  # positions restart at 0 on each slide
    assert max(lengths) == 16 and min(lengths[20:]) == 9  # between keep + 1 and window frames
    assert nar.reencodes == (5001 - 16 - 1) // 8 + 1
    assert max(stored) <= 64 + 2 * 16 and max(stored[len(stored) // 2:]) <= max(stored[:5]) + 32
    assert len(nar._e) == len(nar._ids) == nar.context_frames <= 16


def cache_positions_stored(cache):
    """Positions the cache's layer 0 holds storage for (a preallocated buffer or keys)."""
    layer = cache.layers[0]
    buf = getattr(layer, "kv", None)
    return int(buf.shape[2]) if buf is not None else int(layer.keys.shape[-2])


def test_xattn_memory_and_predictor_cache_stay_bounded(tok):
    agent = make_agent(tok, "byog-xattn")
    n = Narrator(agent, window=5, keep=2, forecast=1)
    n.reset(0)
    env = PatternEnv()
    env.reset(seed=0)
    for _ in range(40):
        n.step(env.step(0)[0][None])
        assert n.state.memory.shape[1] == n.context_frames <= 5
        assert n._forecaster.cache.get_seq_length() == n.cache_length <= 20
    assert n.reencodes == 12


# ----------------------------------------------------------------------------- seeding, envs
@pytest.mark.parametrize("name", ["crafter", "babyai-gotolocal"])
def test_reset_with_the_same_seed_gives_the_same_narration(tok, name):
    import byog_env

    agent = make_agent(tok, "byog")
    env = NarrationWrapper(byog_env.make(name), agent, window=8, forecast=1, greedy=False,
                           temperature=1.0)
    _, a = rollout(env, 10, seed=3)
    _, b = rollout(env, 10, seed=3)
    _, c = rollout(env, 10, seed=4)

    def key(infos):
        return [(i["narration"], tuple(i["narration_tokens"]), tuple(i["forecast"])) for i in infos]

    assert key(a) == key(b)
    assert key(a) != key(c)
    assert env.narrator.reencodes == 1  # 11 frames through an 8-frame window
    info = a[-1]
    assert info["narration_tokens"].shape == (4,) and info["forecast_tokens"].shape == (1, 4)
    assert isinstance(info["annotations"], list)  # the env's own info is kept


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_give_one_clear_error(tok):
    agent = make_agent(tok, "byog")
    with pytest.raises(NarrationError, match="RGB frames"):
        NarrationWrapper(gym.make("CartPole-v1"), agent)
    env = NarrationWrapper(PatternEnv(), agent)
    with pytest.raises(NarrationError, match="before reset"):
        env.step(0)
    with pytest.raises(NarrationError, match="max_positions"):
        Narrator(agent, window=1000)
    with pytest.raises(NarrationError, match="keep must be in"):
        Narrator(agent, window=8, keep=8)
    with pytest.raises(NarrationError, match="temperature must be > 0"):
        Narrator(agent, greedy=False, temperature=0.0)
    with pytest.raises(NarrationError, match="predictor"):
        Narrator(make_agent(tok, "captioner"), forecast=2)
    n = Narrator(agent)
    n.reset()
    with pytest.raises(NarrationError, match="uint8 frames"):
        n.step(np.zeros((1, 16, 16, 3), np.float32))
    agent.frame_shape = (32, 32, 3)
    with pytest.raises(NarrationError, match="trained on 32x32x3 frames but this env gives 16x16x3"):
        NarrationWrapper(PatternEnv(), agent)
    check_frame_shape(None, (16, 16, 3))  # unknown shape: no check
