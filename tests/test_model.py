"""Contract tests of the BYOG model: KV-cached sampling, masks, gradients, LoRA, xattn, save/load."""
import json

import pytest
import torch
from helpers import cycle_batch, cycle_tokenizer, narrate_live

from agents.config import ModelConfig, make_model_config
from agents.model import losses as L
from agents.model.agent import BYOGAgent, Evaluation
from agents.model.lm import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def tok():
    return cycle_tokenizer()


def _agent(tok, preset="byog", **over):
    torch.manual_seed(0)
    over.setdefault("text", {"tokens_per_frame": 4})
    return BYOGAgent(make_model_config("tiny", preset, **over), tok)


# ----------------------------------------------------------------------------- config
def test_config_presets_round_trip_and_errors():
    for preset in ("byog", "captioner", "byog-parallel", "byog-xattn"):
        cfg = make_model_config("tiny", preset)
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    assert make_model_config("tiny", "captioner").loss.w_byog == 0.0
    assert make_model_config("base").lm.hidden_size == 512
    assert make_model_config("tiny", "byog-parallel").predictor.mode == "parallel"
    with pytest.raises(ModelError, match="needs lm.pretrained_path"):
        make_model_config("tiny", "byog-lora")
    with pytest.raises(ModelError, match="Unknown size 'huge'"):
        make_model_config("huge")
    with pytest.raises(ModelError, match="divisible"):
        make_model_config("tiny", lm={"num_heads": 5})
    with pytest.raises(ModelError, match=r"Unknown ModelConfig.loss fields \['w_foo'\]"):
        ModelConfig.from_dict({"loss": {"w_foo": 1}})


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("fusion", ["byog", "byog-xattn"])
def test_cached_sampling_matches_teacher_forced_logits(tok, fusion):
    agent = _agent(tok, fusion).eval()
    if agent.encoder.xattn is not None:  # open the gates so the frames really matter
        for blk in agent.encoder.xattn:
            blk.gate_attn.data.fill_(0.7)
            blk.gate_ff.data.fill_(-0.4)
    b = cycle_batch(B=3, T=5)
    e = agent.frame_embeddings(b)
    ids, logits = agent.encoder.sample(e, temperature=1.5, top_k=5)
    _, z = agent.encoder(ids, e)
    z = z.index_fill(-1, agent.encoder.banned, float("-inf"))  # the sampler's: banned at -inf
    assert ids.shape == (3, 5, 4) and logits.shape == (3, 5, 4, len(tok))
    assert torch.allclose(z.view_as(logits), logits, atol=1e-5)
    # the incremental API gives the same tokens frame by frame (greedy)
    greedy = agent.narrate(b["frames"], b["valid"])
    live, state = narrate_live(agent, b["frames"])
    assert torch.equal(live, greedy)
    assert state.cache_length == 20 and state.state.frames == 5
    # and the no-cache path agrees: greedy narration is the fixed point of teacher forcing
    _, z_tf = agent.encoder(greedy, e)
    tf = z_tf.index_fill(-1, agent.encoder.banned, float("-inf")).argmax(-1)
    assert torch.equal(tf.view_as(greedy), greedy)
    sp = agent.special
    assert not torch.isin(greedy, torch.tensor([sp.pad, sp.bos, sp.unk])).any()


def test_xattn_with_zero_gates_is_the_text_only_lm(tok):
    agent = _agent(tok, "byog-xattn").eval()
    b = cycle_batch(B=2, T=4)
    e = agent.frame_embeddings(b)
    ids = torch.randint(5, len(tok), (2, 4, 4))
    _, z = agent.encoder(ids, e)
    tlm = agent.encoder.tlm  # the bare LM on the same tokens, no frames at all
    _, z_text = agent.encoder(ids, torch.zeros_like(e) + 100.0)
    prev = torch.cat([torch.full((2, 1), agent.special.bos), ids.view(2, -1)[:, :-1]], 1)
    z_lm = tlm.core(input_ids=prev).logits  # transformers' own forward
    assert torch.equal(z, z_text)
    assert torch.allclose(z, z_lm, atol=1e-5)
    assert set(agent.encoder.gate_values().values()) == {0.0}


def test_sampled_targets_are_per_sample_whatever_the_batch(tok):
    """A window's sampled targets depend on (seed, episode, start, step), not on its batch."""
    agent = _agent(tok, "byog", loss={"target_ema": 0.0})
    b = cycle_batch(B=6, T=5, g=torch.Generator().manual_seed(1))
    e = agent.frame_embeddings(b)
    y, _ = agent.sample_targets(b, e, step=4)
    order = torch.tensor([4, 1, 5])  # a different batch: other rows, other positions
    sub = {k_: (v[order] if isinstance(v, torch.Tensor) else [v[i] for i in order.tolist()])
           for k_, v in b.items()}
    y_sub, _ = agent.sample_targets(sub, e[order], step=4)
    assert torch.equal(y_sub, y[order])
    y_next, _ = agent.sample_targets(b, e, step=5)
    assert not torch.equal(y_next, y)  # stochastic: another step draws other tokens
    b2 = dict(b, episode_index=b["episode_index"] + 100)
    assert not torch.equal(agent.sample_targets(b2, e, step=4)[0], y)


# ----------------------------------------------------------------------------- masks and gradients
def test_prefix_gradient_reaches_encoder_only_through_prefix_states(tok):
    agent = _agent(tok, "byog", loss={"w_ground": 0.0})
    b = cycle_batch(B=4, T=6, pad_first=2)
    e = agent.frame_embeddings(b).detach()
    y, _ = agent.sample_targets(b, e, step=0)
    h, z = agent.encoder(y, e)
    h.retain_grad()
    x = agent.predictor.features(h, z)
    out = agent.byog_loss(x, y.view(4, -1), b["valid"], b, step=3)
    out.loss.backward()
    cuts = L.sample_cuts(b["valid"].sum(1), seed=0, episode_index=b["episode_index"],
                         start=b["start"], step=3)
    m, _ = L.prefix_masks(cuts, b["valid"], 4)
    g = h.grad.abs().sum(-1)  # [B, L]
    assert torch.all(g[~m] == 0)  # nothing from states after the cut
    assert torch.all(g.sum(1) > 0)  # every sequence's prefix gets gradient
    assert torch.isfinite(out.loss)


def test_predictor_inputs_fixed_unmasked_label_change_keeps_loss(tok):
    agent = _agent(tok, "byog")
    b = cycle_batch(B=3, T=6, pad_first=3)
    e = agent.frame_embeddings(b).detach()
    y, _ = agent.sample_targets(b, e, step=0)
    with torch.no_grad():
        h, z = agent.encoder(y, e)
        x = agent.predictor.features(h, z)
        cuts = L.sample_cuts(b["valid"].sum(1), seed=0, episode_index=b["episode_index"],
                             start=b["start"], step=1)
        m, tmask = L.prefix_masks(cuts, b["valid"], 4)
        y_flat = y.view(3, -1)
        logits = agent.predictor.forward_prefix(x, y_flat, m)  # inputs held fixed
        base, _ = L.prefix_loss(logits, y_flat, tmask)
        labels = y_flat.clone()
        labels[~tmask] = 0  # change labels on prefix AND padded positions
        same, _ = L.prefix_loss(logits, labels, tmask)
    assert same.item() == base.item() and torch.isfinite(base)
    assert not tmask[0, -12:].any()  # the padded frames of window 0 never count


def test_training_step_gradients_target_and_ema(tok):
    agent = _agent(tok, "byog", loss={"target_ema": 0.5})
    b = cycle_batch(B=4, T=6)
    loss, metrics = agent.training_step(b, step=0)
    loss.backward()
    for key in ("loss/ground", "loss/byog", "monitor/prefix_gain", "monitor/nil_rate",
                "monitor/entropy", "monitor/unigram_nll", "ground/word_accuracy"):
        assert key in metrics and metrics[key] == metrics[key]  # present and not NaN
    assert all(p.grad is None for p in agent.target.parameters())  # target: no gradient
    assert agent.encoder.projector[0].weight.grad.abs().sum() > 0
    assert agent.predictor.w_in.weight.grad.abs().sum() > 0
    tgt0 = [p.clone() for p in agent.target.parameters()]
    with torch.no_grad():
        for p in agent.encoder.parameters():
            p.add_(0.1)
    agent.update_target()
    for t0, t, o in zip(tgt0, agent.target.parameters(), agent.encoder.parameters()):
        assert torch.allclose(t, 0.5 * t0 + 0.5 * o)


def test_parallel_batched_loss_equals_naive_loop(tok):
    agent = _agent(tok, "byog-parallel", predictor={"mode": "parallel", "horizon": 3})
    b = cycle_batch(B=2, T=4, pad_first=1)
    e = agent.frame_embeddings(b).detach()
    y, _ = agent.sample_targets(b, e, step=0)
    with torch.no_grad():
        h, z = agent.encoder(y, e)
        x = agent.predictor.features(h, z)
        out = agent.byog_loss(x, y.view(2, -1), b["valid"], b, step=0)
        k, K, Lp = 4, 3, 16
        pv = L.frame_mask(b["valid"], k)
        total, n = 0.0, 0
        for bi in range(2):
            for t in range(4):
                i = t * k + k - 1
                if not pv[bi, i]:
                    continue
                js = [j for j in range(K) if i + 1 + j < Lp and pv[bi, i + 1 + j]]
                if not js:
                    continue
                seq = y.view(2, -1)[bi, i:i + K]
                seq = torch.cat([seq, seq.new_full((K - len(seq),), int(seq[-1]))])
                lg = agent.predictor.forward_parallel(x[bi, i][None], seq[None])[0]
                for j in js:
                    total += torch.nn.functional.cross_entropy(lg[j][None], y.view(2, -1)[bi, i + 1 + j][None]).item()
                    n += 1
    assert n == 6 + 9  # window 0 (3 valid frames): 3 + 3 + 0; window 1: 3 + 3 + 3 + 0
    assert out.loss.item() == pytest.approx(total / n, rel=1e-5)


def test_save_load_round_trip(tok, tmp_path):
    agent = _agent(tok, "byog-xattn").eval()
    for blk in agent.encoder.xattn:
        blk.gate_attn.data.fill_(0.3)
    b = cycle_batch(B=2, T=3)
    before = agent.narrate(b["frames"], b["valid"])
    agent.save_pretrained(tmp_path / "ckpt")
    again = BYOGAgent.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.equal(again.narrate(b["frames"], b["valid"]), before)
    for (n1, p1), (n2, p2) in zip(agent.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    with pytest.raises(ModelError, match="not a BYOG checkpoint"):
        BYOGAgent.from_pretrained(tmp_path / "nothing")


def test_an_agent_saved_before_the_patch_cnn_still_loads(tok, tmp_path):
    # checkpoints written before cnn_arch existed hold the stride-2 'conv' stack and no key for it
    agent = _agent(tok, obs={"cnn_arch": "conv", "cnn_frame_delta": False}).eval()
    agent.save_pretrained(tmp_path / "old")
    new_cfg = tmp_path / "old" / "config.json"  # that was before config.json too (issue 15)
    d = json.loads(new_cfg.read_text())["byog"]
    new_cfg.unlink()
    # the flat obs config of those days (every kind's options, prefixed), without cnn_arch
    d["obs"] = {"kind": "cnn", "out_dim": 64, "cnn_channels": [32, 32], "cnn_frame_delta": False,
                "vqvae_hidden": 64, "units_k": 64, "units_dim": 64, "precomputed_dim": None}
    (tmp_path / "old" / "model_config.json").write_text(json.dumps(d))
    again = BYOGAgent.from_pretrained(tmp_path / "old").eval()
    assert again.encoder.obs.convs[0].stride == (2, 2)
    b = cycle_batch(B=2, T=3)
    assert torch.equal(again.narrate(b["frames"], b["valid"]), agent.narrate(b["frames"], b["valid"]))
    # a config built today without the key gets today's default
    assert ModelConfig.from_dict({"obs": {"kind": "cnn"}}).obs.cnn_arch == "patch"


def test_lora_gradients_per_adapter(tok, tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from agents.model.lora import adapter_parameters, base_parameters

    torch.manual_seed(0)
    base = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=64))
    base.save_pretrained(tmp_path / "base")
    agent = BYOGAgent(make_model_config("tiny", "byog-lora", lm={"pretrained_path": str(tmp_path / "base")},
                                        text={"tokens_per_frame": 4}), tok)
    for p in adapter_parameters(agent.shared_lm, "encoder").values():  # leave LoRA's B = 0 init
        p.data.normal_(0, 0.05)
    for p in adapter_parameters(agent.shared_lm, "predictor").values():
        p.data.normal_(0, 0.05)
    b = cycle_batch(B=4, T=5)

    def grads(adapter):
        return sum(float(p.grad.abs().sum()) for p in adapter_parameters(agent.shared_lm, adapter).values()
                   if p.grad is not None)

    # grounding alone: encoder adapter yes, predictor adapter no
    agent.cfg.loss.w_byog, agent.cfg.loss.w_ground = 1e-12, 1.0
    agent.training_step(b, 0)[0].backward()
    assert grads("encoder") > 0 and grads("predictor") < 1e-6
    agent.zero_grad(set_to_none=True)
    # BYOG alone: predictor adapter AND (through the prefix states) encoder adapter
    agent.cfg.loss.w_byog, agent.cfg.loss.w_ground = 1.0, 0.0
    agent.training_step(b, 0)[0].backward()
    assert grads("predictor") > 0 and grads("encoder") > 0
    agent.zero_grad(set_to_none=True)
    # both in one step; base frozen, target adapter untouched
    agent.cfg.loss.w_ground = 1.0
    agent.training_step(b, 0)[0].backward()
    assert grads("encoder") > 0 and grads("predictor") > 0
    assert all(p.grad is None for p in base_parameters(agent.shared_lm).values())
    assert grads("target") == 0.0
    assert agent.encoder.tlm.delta_in.grad is not None  # special rows stay trainable


def test_nil_threshold_rule_in_greedy_narration(tok):
    from agents.model.lm import sample_tokens

    # <nil> (id 2) is the argmax at 0.4, but words hold 0.6 together: the rule says the best word
    logits = torch.tensor([[0.0, 0.0, 0.4, 0.0, 0.0, 0.35, 0.25],
                           [0.0, 0.0, 0.7, 0.0, 0.0, 0.2, 0.1]]).clamp_min(1e-9).log()
    assert sample_tokens(logits, greedy=True).tolist() == [2, 2]
    assert sample_tokens(logits, greedy=True, nil_rule=(2, 0.5)).tolist() == [5, 2]
    agent = _agent(tok, "captioner", nil_threshold=0.5)
    assert agent.encoder.nil_rule == (agent.special.nil, 0.5)
    with torch.no_grad():
        e = agent.frame_embeddings(cycle_batch(B=2, T=3))
        ids, z = agent.encoder.sample(e, greedy=True)
    p = z.softmax(-1)
    nil = agent.special.nil
    assert torch.equal(ids == nil, p[..., nil] > 0.5)
    with pytest.raises(ModelError, match="nil_threshold must be in"):
        make_model_config("tiny", "byog", nil_threshold=1.5)


def test_evaluate_reports_teacher_forced_beside_greedy_accuracy(tok):
    agent = _agent(tok, "captioner")
    out = agent.evaluate(cycle_batch(B=3, T=6))
    for key in ("eval/token_accuracy", "eval/teacher_forced_token_accuracy",
                "eval/majority_token_accuracy"):
        assert 0.0 <= out[key] <= 1.0
    # the ids it scored are the greedy narration (validation reuses them instead of decoding twice)
    b = cycle_batch(B=3, T=6)
    again = agent.evaluate(b)
    assert isinstance(again, Evaluation) and again == agent.evaluate(b)  # one type, same metrics
    assert dict(again) == again.metrics and all(k.startswith("eval/") for k in again)
    assert torch.equal(again.ids, agent.narrate(b["frames"], b["valid"].bool()))


def test_window_prev_frame_gives_the_first_frame_its_real_delta(tok):
    # a window cut from the middle of an episode: with the batch's prev_frame its first frame is
    # embedded exactly as inside the longer clip; without it, with a zero delta
    agent = _agent(tok, obs={"kind": "cnn", "cnn_frame_delta": True}).eval()
    b = cycle_batch(B=2, T=6)
    whole = agent.encoder.frame_embeddings(b["frames"], b["valid"].bool())
    tail = {"frames": b["frames"][:, 2:], "valid": b["valid"][:, 2:], "prev_frame": b["frames"][:, 1]}
    assert torch.allclose(agent.frame_embeddings(tail), whole[:, 2:], atol=1e-5)
    cold = agent.frame_embeddings({"frames": tail["frames"], "valid": tail["valid"]})
    assert not torch.allclose(cold[:, 0], whole[:, 2], atol=1e-5)
    assert torch.allclose(cold[:, 1:], whole[:, 3:], atol=1e-5)


def test_narrate_step_with_frame_delta_cnn_matches_offline_narration(tok):
    # a frame-delta encoder must see each frame's predecessor live, as it does in an offline clip
    agent = _agent(tok, obs={"kind": "cnn", "cnn_frame_delta": True}).eval()
    b = cycle_batch(B=2, T=5)
    greedy = agent.narrate(b["frames"], b["valid"])
    live, state = narrate_live(agent, b["frames"])
    assert torch.equal(live, greedy)
    assert torch.equal(state.state.last_frame, b["frames"][:, 4])  # the next step's predecessor
    e_live = agent.encoder.embed_frame(agent.encoder.start(2), b["frames"][:, 1])  # zero delta
    e_clip = agent.encoder.frame_embeddings(b["frames"][:, :2])[:, 1]
    assert not torch.allclose(e_live, e_clip)
