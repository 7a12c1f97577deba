"""The KV cache and the lean decode path: same numbers as the stock layers, cache semantics."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from agents.config import LMConfig, make_model_config
from agents.model.agent import BYOGAgent
from agents.model.kv_cache import KVCache
from agents.model.lm import ModelError, TokenLM, build_gpt_neox, sample_tokens
from agents.model.text import train_tokenizer

V = 40


def make_tlm(seed=0, **lm) -> TokenLM:
    torch.manual_seed(seed)
    tlm = TokenLM(build_gpt_neox(LMConfig(**lm), V), special_ids=[0, 1, 2]).eval()
    with torch.no_grad():  # non-zero special deltas so the folded tables are exercised
        tlm.delta_in.normal_()
        tlm.delta_out.normal_()
    return tlm


class WrappedLinear(nn.Linear):
    """Not a plain nn.Linear: the decode path must call it as a module (like a LoRA layer)."""


def unfuse(tlm: TokenLM) -> None:
    for layer in tlm.core.gpt_neox.layers:
        old = layer.attention.query_key_value
        new = WrappedLinear(old.in_features, old.out_features)
        new.load_state_dict(old.state_dict())
        layer.attention.query_key_value = new


# ----------------------------------------------------------------------------- cache object
def test_buffer_cache_matches_dynamic_cache_and_crops():
    kv, dyn = KVCache(2), DynamicCache()
    g = torch.Generator().manual_seed(0)
    for L in (3, 70, 1, 1, 60):  # crosses the 64-position first allocation and one doubling
        k, v = torch.randn(2, 4, L, 8, generator=g), torch.randn(2, 4, L, 8, generator=g)
        for i in range(2):
            a, b = kv.update(k, v, i), dyn.update(k, v, i)
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert kv.get_seq_length() == dyn.get_seq_length() == 135
    assert kv.layers[0].kv.shape[2] == 256  # 64 -> 128 -> 256: doubling, amortised O(1)
    kv.crop(-5)
    dyn.crop(-5)
    assert kv.get_seq_length() == 130
    assert torch.equal(kv.layers[1].keys, dyn.layers[1].keys)
    assert torch.equal(kv.layers[1].values, dyn.layers[1].values)
    with pytest.raises(ValueError, match="negative count"):
        kv.crop(3)
    with pytest.raises(ValueError, match="Cannot crop 200"):
        kv.crop(-200)
    kv.reset()
    assert kv.get_seq_length() == 0 and kv.layers[0].keys.shape[2] == 0


def test_preallocated_cache_never_reallocates():
    tlm = make_tlm()
    cache = tlm.new_cache(100)
    with torch.no_grad():
        tlm.hidden(torch.randn(2, 1, 64), cache=cache, start=0)
        buf = cache.layers[0].kv
        for p in range(1, 70):  # past the 64 positions a cache without capacity starts with
            tlm.hidden(torch.randn(2, 1, 64), cache=cache, start=p)
    assert cache.layers[0].kv is buf and buf.shape[2] == 100  # written in place throughout
    assert cache.get_seq_length() == 70


# ----------------------------------------------------------------------------- decode == stock layers
@pytest.mark.parametrize("variant", ["fused", "module-qkv", "serial-residual"])
def test_decode_path_matches_teacher_forced(variant):
    tlm = make_tlm(rotary_pct=0.5)
    if variant == "module-qkv":
        unfuse(tlm)
    if variant == "serial-residual":
        for layer in tlm.core.gpt_neox.layers:
            layer.use_parallel_residual = False
    x = torch.randn(3, 12, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = tlm.hidden(x)  # the stock transformers layers, no cache
        cache = tlm.new_cache()
        parts = [tlm.hidden(x[:, :4], cache=cache, start=0)]  # a prefill (causal SDPA)
        parts += [tlm.hidden(x[:, p:p + 1], cache=cache, start=p) for p in range(4, 9)]
        parts.append(tlm.hidden(x[:, 9:], cache=cache, start=9))  # a feed after a prefix (mask)
        fused = cache.plan.layers[0][-1] is not None
    assert fused == (variant == "fused")
    assert torch.allclose(torch.cat(parts, 1), ref, atol=1e-5)
    assert not torch.equal(ref[:, 5], ref[:, 6])  # positions really differ
    with torch.no_grad():  # crop the last 3 and re-feed them one at a time: same states
        cache.crop(-3)
        again = [tlm.hidden(x[:, p:p + 1], cache=cache, start=p) for p in range(9, 12)]
    assert torch.allclose(torch.cat(again, 1), ref[:, 9:], atol=1e-5)


def test_new_caches_share_the_decode_plan_until_a_weight_changes():
    """A window slide starts a new cache every few frames: the folded weights are reused while
    no parameter changes, and refolded after an in-place update or a load_state_dict."""
    tlm = make_tlm(rotary_pct=0.5)
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(2))

    def run():
        cache = tlm.new_cache()
        with torch.no_grad():
            h = torch.cat([tlm.hidden(x[:, :2], cache=cache, start=0)]
                          + [tlm.hidden(x[:, p:p + 1], cache=cache, start=p) for p in range(2, 5)], 1)
        return cache.plan, h

    plan1, _ = run()
    plan2, _ = run()
    assert plan2 is plan1  # no weight changed: the same folded plan
    with torch.no_grad():
        tlm.core.gpt_neox.layers[1].mlp.dense_h_to_4h.bias.add_(0.5)  # an optimiser-like step
    plan3, h3 = run()
    assert plan3 is not plan1
    with torch.no_grad():
        assert torch.allclose(h3, tlm.hidden(x), atol=1e-5)  # the new weights, not the old fold
    tlm.load_state_dict(make_tlm(seed=1, rotary_pct=0.5).state_dict())
    plan4, h4 = run()
    assert plan4 is not plan3
    with torch.no_grad():
        assert torch.allclose(h4, tlm.hidden(x), atol=1e-5)


def test_folded_token_io_matches_embed_and_logits():
    tlm = make_tlm()
    ids = torch.tensor([0, 1, 2, 5, 39])
    h = torch.randn(5, 64)
    with torch.no_grad():
        embed, logits = tlm.token_io()
        assert torch.equal(embed(ids), tlm.embed(ids))  # same sums, exactly
        assert torch.allclose(logits(h), tlm.logits(h), atol=1e-5)
    assert not torch.allclose(tlm.logits(h), tlm.core.lm_head(h))  # deltas matter here


def test_cache_with_autograd_matches_teacher_forced_gradients_and_guards_layouts():
    tlm = make_tlm()
    x = torch.randn(2, 6, 64, requires_grad=True)
    g_ref, = torch.autograd.grad(tlm.hidden(x).square().sum(), x)
    cache = tlm.new_cache()
    h = torch.cat([tlm.hidden(x[:, :2], cache=cache, start=0)]
                  + [tlm.hidden(x[:, p:p + 1], cache=cache, start=p) for p in range(2, 6)], 1)
    g, = torch.autograd.grad(h.square().sum(), x)
    assert torch.allclose(g, g_ref, atol=1e-5)
    with pytest.raises(ModelError, match="filled by another model or with autograd on"), \
            torch.no_grad():
        tlm.hidden(x[:, :1], cache=cache, start=6)
    fresh = tlm.new_cache()
    with torch.no_grad():
        tlm.hidden(x[:, :1], cache=fresh, start=0)
    with pytest.raises(ModelError, match="filled with autograd off"):
        tlm.hidden(x[:, 1:2], cache=fresh, start=1)
    with pytest.raises(ModelError, match="holds 1 positions, asked for 3"), torch.no_grad():
        tlm.hidden(x[:, 1:2], cache=fresh, start=3)


# ----------------------------------------------------------------------------- sampling
def test_sampler_is_multinomials_draw_and_respects_topk_and_bans():
    z = torch.randn(16, V, generator=torch.Generator().manual_seed(2))
    for seed in range(20):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        ours = sample_tokens(z, temperature=0.7, generator=g1)
        ref = torch.multinomial(F.softmax(z / 0.7, -1), 1, generator=g2).squeeze(-1)
        assert torch.equal(ours, ref)
        assert torch.equal(torch.rand(2, generator=g1), torch.rand(2, generator=g2))  # same stream
    banned = z.argmax(-1).unique()
    top3 = z.index_fill(-1, banned, float("-inf")).topk(3, -1).indices
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        y = sample_tokens(z, temperature=5.0, top_k=3, banned=banned, generator=g)
        assert (y[:, None] == top3).any(-1).all() and not torch.isin(y, banned).any()
    assert torch.equal(sample_tokens(z, greedy=True, banned=banned),
                       z.index_fill(-1, banned, float("-inf")).argmax(-1))


def test_sample_outputs_are_ordinary_tensors_and_see_new_weights():
    tok = train_tokenizer(["collected 1 wood", "tree in view"])
    torch.manual_seed(0)
    agent = BYOGAgent(make_model_config("tiny", "byog"), tok).eval()
    enc = agent.encoder
    e = torch.randn(2, 3, 64)
    ids, logits = enc.sample(e, greedy=True)
    assert not ids.is_inference() and not logits.is_inference()
    w = torch.randn_like(logits, requires_grad=True)
    (w * logits).sum().backward()  # usable in a training loss
    assert torch.equal(w.grad, logits)
    with torch.no_grad():  # an in-place weight update (an optimizer step) between two calls
        enc.tlm.core.gpt_neox.layers[0].attention.query_key_value.weight.mul_(1.5)
    ids2, logits2 = enc.sample(e, greedy=True)
    _, z = enc(ids2, e)
    z = z.index_fill(-1, enc.banned, float("-inf"))  # the sampler's logits: banned ids at -inf
    assert torch.allclose(z.view_as(logits2), logits2, atol=1e-5)
    assert not torch.allclose(logits2, logits)
    state = enc.start(2)
    y, zf, state = enc.step_frame(state, e[:, 0], greedy=True)
    assert not state.hidden.is_inference() and not zf.is_inference()
    assert torch.equal(y, ids2[:, 0]) and state.cache.get_seq_length() == state.position == enc.k
