"""The BYOG objective (issue 12): every optional path correct, words shaped by the
self-supervised signal, collapse visible in the monitors.

Each test names the defect of issue 12 it guards. The synthetic stream is ``test_model``'s colour
cycle: its future is predictable from its past.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import cycle_batch, cycle_tokenizer

from agents.config import make_model_config
from agents.model import losses as L
from agents.model.agent import BYOGAgent
from agents.model.encoder import NarrationEncoder
from agents.model.lm import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


@pytest.fixture(scope="module")
def tok():
    return cycle_tokenizer()


def make(tok, preset="byog", **over):
    torch.manual_seed(0)
    over.setdefault("text", {"tokens_per_frame": 4})
    return BYOGAgent(make_model_config("tiny", preset, **over), tok)


def ban_all_but(enc: NarrationEncoder, keep: int, vocab: int) -> None:
    """Make ``enc`` say only ``keep`` (every other id banned)."""
    enc.banned = torch.tensor([i for i in range(vocab) if i != keep], dtype=torch.long)


def byog_parts(agent, b, step=0):
    """The pieces of one BYOG step: (e, y, y_logits, h, z) with z attached to the graph."""
    e = agent.frame_embeddings(b)
    y, y_logits = agent.sample_targets(b, e, step)
    h, z = agent.encoder(y, e)
    return e, y, y_logits, h, z


def greedy_words(agent, b):
    agent.eval()
    ids = agent.narrate(b["frames"], b["valid"])
    agent.train()
    return ids


def train_steps(agent, steps, lr=5e-3, B=8, T=6, seed=0, labelled=False):
    opt = torch.optim.Adam([p for p in agent.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(seed)
    history = []
    agent.train()
    for step in range(steps):
        loss, metrics = agent.training_step(cycle_batch(B=B, T=T, size=8, g=g, labelled=labelled), step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        agent.update_target()
        history.append(metrics)
    return history


# ----------------------------------------------------------------------------- defect 1
def test_byog_gradient_reaches_the_output_distribution_only_in_logits_mode(tok):
    b = cycle_batch(B=4, T=6, size=8)
    for kind, reaches in (("hidden", False), ("logits", True)):
        agent = make(tok, predictor={"input": kind}, loss={"w_ground": 0.0})
        _, y, _, h, z = byog_parts(agent, b)
        x = agent.predictor.features(h, z)
        out = agent.byog_loss(x, y.reshape(4, -1), b["valid"], b, 0)
        g = torch.autograd.grad(out.loss, z, allow_unused=True)[0]
        if reaches:
            assert g is not None and float(g.abs().sum()) > 0
        else:
            assert g is None or float(g.abs().sum()) == 0.0


def test_byog_only_steps_in_logits_mode_change_the_greedy_words_more(tok):
    # greedy words per position on one fixed token history (teacher-forced): free-running greedy
    # narration cascades (one changed word changes every later one), which hides the difference
    b = cycle_batch(B=16, T=6, size=8, g=torch.Generator().manual_seed(7))

    def words(agent, y):
        agent.eval()
        with torch.no_grad():
            _, z = agent.encoder(y, agent.frame_embeddings(b))
        agent.train()
        return z.index_fill(-1, agent.encoder.banned, float("-inf")).argmax(-1)

    changed = {}
    for kind in ("hidden", "logits"):
        agent = make(tok, predictor={"input": kind}, loss={"w_ground": 0.0, "target_ema": 0.0})
        torch.manual_seed(1)
        y = agent.eval().narrate(b["frames"], greedy=False)
        before = words(agent, y)
        train_steps(agent, 3, lr=1e-4)
        changed[kind] = float((words(agent, y) != before).float().mean())
    assert changed["logits"] > changed["hidden"] + 0.2, changed  # measured: 0.74 vs 0.36


def test_reinforce_changes_the_sampled_words(tok):
    b = cycle_batch(B=16, T=6, size=8, g=torch.Generator().manual_seed(7))
    agent = make(tok, loss={"w_ground": 0.0, "target_ema": 0.0, "token_objective": "reinforce",
                            "w_reinforce": 1.0})
    e = agent.frame_embeddings(b).detach()
    def probs():
        return agent.encoder.sample(e, greedy=True)[1].softmax(-1)

    p0 = probs()
    train_steps(agent, 8, lr=3e-3)
    # the sampled words' distribution moved (total variation over the narrated positions)
    assert float(0.5 * (probs() - p0).abs().sum(-1).mean()) > 0.05


# ----------------------------------------------------------------------------- defect 3
def _reinforce_z_grads(agent, b, step):
    """Gradients of the total loss on every online-encoder logits tensor of one step."""
    zs = []
    hook = agent.encoder.register_forward_hook(lambda m, i, o: zs.append(o[1]) or o[1].retain_grad())
    try:
        loss, metrics = agent.training_step(b, step)
        loss.backward()
    finally:
        hook.remove()
    return [z.grad for z in zs], metrics


def test_reinforce_credits_only_the_prefix_tokens(tok):
    # hidden input, no grounding: only the REINFORCE (and entropy) terms reach the online logits
    agent = make(tok, loss={"w_ground": 0.0, "target_ema": 0.0, "token_objective": "reinforce",
                            "w_reinforce": 1.0})
    b = cycle_batch(B=4, T=6, size=8)
    grads, _ = _reinforce_z_grads(agent, b, step=3)
    cuts = L.sample_cuts(b["valid"].sum(1), seed=0, episode_index=b["episode_index"],
                         start=b["start"], step=3)
    m, future = L.prefix_masks(cuts, b["valid"], 4)
    got = [g for g in grads if g is not None]
    assert got, "REINFORCE gave the online encoder no gradient"
    for g in got:
        per_pos = g.abs().sum(-1)  # [B', L]
        rows = torch.arange(per_pos.shape[0]) % 4
        assert torch.all(per_pos[future[rows]] == 0), "future (predicted) tokens were credited"
        assert float(per_pos[m[rows]].sum()) > 0


def test_reinforce_samples_from_the_online_policy_in_eval_mode(tok, monkeypatch):
    agent = make(tok, loss={"w_ground": 0.0, "target_ema": 0.99, "token_objective": "reinforce"})
    calls = []
    orig = NarrationEncoder.sample

    def spy(self, *a, **kw):
        calls.append((self is agent.encoder, self.training))
        return orig(self, *a, **kw)

    monkeypatch.setattr(NarrationEncoder, "sample", spy)
    agent.train()
    _, metrics = agent.training_step(cycle_batch(B=4, T=6, size=8), 0)
    assert (True, False) in calls, f"the online encoder was not sampled in eval mode: {calls}"
    assert "reinforce/entropy" in metrics and math.isfinite(metrics["reinforce/entropy"])


def test_entropy_bonus_is_a_validated_option():
    cfg = make_model_config("tiny", "byog", loss={"token_objective": "reinforce", "w_entropy": 0.05})
    assert cfg.loss.w_entropy == 0.05
    with pytest.raises(ModelError, match="w_entropy"):
        make_model_config("tiny", "byog", loss={"w_entropy": -1.0})


# ----------------------------------------------------------------------------- defect 4
@pytest.fixture
def wide_lm(tok, tmp_path):
    """A local tiny GPT-NeoX with 35 vocabulary rows for a 13-token tokenizer (like pythia's
    50,304 rows for ~50,282 tokens)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    rows = len(tok) + 22
    base = GPTNeoXConfig(vocab_size=rows, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64)
    GPTNeoXForCausalLM(base).save_pretrained(tmp_path / "wide")
    return str(tmp_path / "wide"), rows


def test_vocabulary_rows_beyond_the_tokenizer_are_never_emitted(tok, wide_lm):
    path, rows = wide_lm
    agent = make(tok, lm={"pretrained_path": path, "hidden_size": 32, "num_heads": 4},
                 obs={"out_dim": 32})
    assert agent.encoder.tlm.vocab_size == rows > len(tok)
    b = cycle_batch(B=8, T=6, size=8)
    e = agent.frame_embeddings(b)
    y, y_logits = agent.sample_targets(b, e, 0)
    assert int(y.max()) < len(tok), "BYOG targets hold ids the tokenizer lacks"
    assert float(y_logits.softmax(-1)[..., len(tok):].sum(-1).max()) == 0.0
    assert int(agent.narrate(b["frames"], greedy=False).max()) < len(tok)
    loss, metrics = agent.training_step(b, 0)
    assert torch.isfinite(loss) and math.isfinite(metrics["monitor/unigram_nll"])


# ----------------------------------------------------------------------------- defect 5
def test_sampler_logits_put_no_mass_on_banned_tokens(tok):
    agent = make(tok, loss={"targets": "soft"})
    b = cycle_batch(B=4, T=6, size=8)
    e = agent.frame_embeddings(b)
    _, y_logits = agent.sample_targets(b, e, 0)
    sp = agent.special
    p = y_logits.softmax(-1)
    assert float(p[..., [sp.pad, sp.bos, sp.unk]].sum(-1).max()) == 0.0
    loss, metrics = agent.training_step(b, 0)
    assert torch.isfinite(loss) and math.isfinite(metrics["loss/byog"])


# ----------------------------------------------------------------------------- defect 6
def test_targets_are_sampled_in_eval_mode(tok):
    # dropout on: a training-mode encoder would sample other targets on every call
    agent = make(tok, lm={"dropout": 0.5}, loss={"target_ema": 0.0})
    agent.train()
    b = cycle_batch(B=4, T=6, size=8)
    e = agent.frame_embeddings(b).detach()
    y1, l1 = agent.sample_targets(b, e, 0)
    y2, l2 = agent.sample_targets(b, e, 0)
    assert torch.equal(y1, y2) and torch.equal(l1, l2)
    assert agent.encoder.training  # and the mode is restored


def test_lora_target_samples_in_eval_mode_with_the_nil_rule(tok, tmp_path):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from agents.model.lora import adapter_parameters

    torch.manual_seed(0)
    GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64,
                                     hidden_dropout=0.5)).save_pretrained(tmp_path / "base")
    agent = make(tok, "byog-lora", lm={"pretrained_path": str(tmp_path / "base")},
                 lora={"dropout": 0.5}, nil_threshold=0.5)
    assert agent.target.nil_rule == agent.encoder.nil_rule == (agent.special.nil, 0.5)
    for p in adapter_parameters(agent.shared_lm, "target").values():
        p.data.normal_(0, 0.05)
    agent.train()
    b = cycle_batch(B=4, T=5, size=8)
    e = agent.frame_embeddings(b).detach()
    assert torch.equal(agent.sample_targets(b, e, 0)[1], agent.sample_targets(b, e, 0)[1])


# ----------------------------------------------------------------------------- defect 7
def test_distinct_n_of_all_nil_narration_is_zero_not_nan(tok):
    from agents.model import monitors as M
    from agents.model.text import special_ids

    sp = special_ids(tok)
    ids = torch.full((2, 5, 4), sp.nil)
    out = M.collapse_monitors(ids, sp)
    assert out["narration/distinct_1"] == 0.0 and out["narration/distinct_2"] == 0.0
    assert out["narration/nil_rate"] == 1.0
    # nothing counted at all is still "nothing to measure"
    assert math.isnan(M.distinct_n(ids.reshape(2, -1), 1, mask=torch.zeros(2, 20, dtype=torch.bool)))


def test_validation_keeps_the_collapse_monitors_at_collapse(tok):
    from agents.training.evaluate import validate

    agent = make(tok)
    ban_all_but(agent.encoder, agent.special.nil, len(tok))  # narration collapsed to silence
    metrics, _ = validate(agent, [cycle_batch(B=4, T=6, size=8)], step=0)
    assert metrics["val/nil_rate"] == 1.0
    assert metrics["val/distinct_1"] == 0.0 and metrics["val/distinct_2"] == 0.0
    assert "val/entropy" in metrics


def test_unigram_baseline_of_a_constant_stream_is_zero(tok):
    agent = make(tok, loss={"target_ema": 0.0})
    ban_all_but(agent.encoder, agent.special.nil, len(tok))  # targets all <nil>
    _, metrics = agent.training_step(cycle_batch(B=4, T=6, size=8), 0)
    assert metrics["monitor/unigram_nll"] == pytest.approx(0.0, abs=1e-9)
    ev = agent.evaluate(cycle_batch(B=4, T=6, size=8))
    assert ev["eval/unigram_nll"] == pytest.approx(0.0, abs=1e-9)


def test_predictor_nll_monitor_is_per_token_like_the_unigram(tok):
    agent = make(tok, loss={"target_ema": 0.0, "w_ground": 0.0})
    b = cycle_batch(B=4, T=6, size=8, pad_first=3)  # windows with different target counts
    with torch.no_grad():
        _, y, _, h, z = byog_parts(agent, b, step=2)
        cuts = L.sample_cuts(b["valid"].sum(1), seed=0, episode_index=b["episode_index"],
                             start=b["start"], step=2)
        m, tmask = L.prefix_masks(cuts, b["valid"], 4)
        y_flat = y.reshape(4, -1)
        ce = L.token_ce(agent.predictor.forward_prefix(agent.predictor.features(h, z), y_flat, m),
                        y_flat)
        per_token = float(ce[tmask].mean())
        _, metrics = agent.training_step(b, 2)
    assert metrics["monitor/predictor_nll"] == pytest.approx(per_token, rel=1e-5)


def test_training_monitors_measure_the_online_encoder_without_banned_ids(tok):
    agent = make(tok, loss={"target_ema": 0.99})
    ban_all_but(agent.target, agent.special.nil, len(tok))  # the EMA target says only <nil>
    _, metrics = agent.training_step(cycle_batch(B=4, T=6, size=8), 0)
    assert metrics["monitor/nil_rate"] < 0.9  # the online encoder (near-uniform) speaks
    n_allowed = len(tok) - len(agent.encoder.banned)
    assert metrics["monitor/entropy"] <= math.log(n_allowed) + 1e-6


def test_prefix_gain_also_against_a_prefix_shuffled_across_the_batch(tok):
    for preset in ("byog", "byog-parallel"):
        agent = make(tok, preset)
        b = cycle_batch(B=4, T=6, size=8)
        _, metrics = agent.training_step(b, 0)
        assert math.isfinite(metrics["monitor/prefix_gain_shuffled"])
        ev = agent.evaluate(b)
        assert math.isfinite(ev["eval/prefix_gain_shuffled"])


# ----------------------------------------------------------------------------- defect 8
def test_narrator_defaults_to_the_checkpoints_training_window(tok):
    from agents.narrate.config import NarrateConfig
    from agents.narrate.narration import Narrator

    agent = make(tok)
    agent.metadata = {"config": {"loader": {"window": 8}}}
    assert Narrator(agent).window == 8
    assert NarrateConfig(checkpoint="x").window is None  # None = the checkpoint's window


def test_the_window_is_part_of_the_model_config_saved_with_the_weights(tok, tmp_path):
    """The trainer writes loader.window into ModelConfig.window; it travels with the weights,
    the narrator reads it without any training metadata; a conflicting pair is one error."""
    import pytest

    from agents.model.agent import BYOGAgent
    from agents.narrate.narration import Narrator
    from agents.training.config import TrainConfig, TrainError, config_from_dict

    cfg = config_from_dict({"data": "d", "out": "o", "loader": {"window": 6}}, size="tiny", preset="byog")
    assert cfg.model.window is None  # the trainer writes loader.window into the agent it builds
    assert config_from_dict({"data": "d", "out": "o", "loader": {"window": 6}, "model": {"window": 6}},
                            size="tiny", preset="byog").model.window == 6
    with pytest.raises(TrainError, match="model.window 8 differs from loader.window 6"):
        config_from_dict({"data": "d", "out": "o", "loader": {"window": 6}, "model": {"window": 8}},
                         size="tiny", preset="byog")
    assert isinstance(cfg, TrainConfig)
    assert cfg.fit_window == 6  # fitted encoders (vqvae, units) fit on the narrator's windows
    assert config_from_dict({"data": "d", "out": "o", "loader": {"window": 6}, "obs_fit": {"window": 4}},
                            size="tiny", preset="byog").fit_window == 4
    agent = make(tok)
    agent.cfg.window = 6
    agent.save_pretrained(tmp_path / "a")
    back = BYOGAgent.from_pretrained(tmp_path / "a")
    assert back.cfg.window == 6 and not getattr(back, "metadata", None)
    assert Narrator(back).window == 6


def test_the_transfer_study_narrates_in_blocks_of_the_narrators_training_window(tok, tmp_path):
    """ActionTransferConfig.context None: a narrating arm's blocks are its checkpoint's
    training window (read from the saved config, no weights loaded); an arm without a narrator
    checkpoint takes 16; a context set by hand wins."""
    import json

    from agents.training.loading import checkpoint_window
    from experiments.action_transfer import ActionTransferConfig, narration_context

    agent = make(tok)
    agent.cfg.window = 6
    agent.save_pretrained(tmp_path / "a")
    assert checkpoint_window(tmp_path / "a") == 6
    old = tmp_path / "old"  # saved before ModelConfig.window: the loader's window in meta.json
    agent.cfg.window = None
    agent.save_pretrained(old / "agent")
    (old / "meta.json").write_text(json.dumps({"step": 1, "config": {"loader": {"window": 12}}}))
    assert checkpoint_window(old) == 12
    data = tmp_path / "data"
    assert narration_context(ActionTransferConfig(data=data, out=data, encoder="byog", checkpoint=tmp_path / "a")) == 6
    assert narration_context(ActionTransferConfig(data=data, out=data, encoder="byog", checkpoint=old)) == 12
    assert narration_context(ActionTransferConfig(data=data, out=data, encoder="byog", checkpoint=old,
                                                  context=4)) == 4
    assert narration_context(ActionTransferConfig(data=data, out=data, encoder="scratch")) == 16


def test_slide_gives_the_first_kept_frame_its_real_delta(tok):
    from helpers import PatternEnv

    from agents.narrate.narration import Narrator

    agent = make(tok, obs={"cnn_frame_delta": True}).eval()
    n = Narrator(agent, window=6, keep=3)
    n.reset(0)
    env = PatternEnv(size=8)
    env.reset(seed=1)
    frames = []
    for _ in range(7):  # the slide happens before the 7th frame
        frames.append(torch.as_tensor(env.step(0)[0]))
        n.step(frames[-1][None].numpy())
    assert n.reencodes == 1 and n.context_frames == 4
    clip = torch.stack(frames[3:], 0)[None]  # the kept frames 3..5 and the new frame 6
    e = agent.encoder.frame_embeddings(clip, prev_frame=frames[2][None])
    assert torch.allclose(torch.stack(list(n._e), 1), e, atol=1e-5)


# ----------------------------------------------------------------------------- defect 9
def test_byog_nil_weight_and_slot0_weighting(tok):
    agent = make(tok, loss={"target_ema": 0.0, "w_ground": 0.0, "byog_nil_weight": 0.0})
    ban_all_but(agent.encoder, agent.special.nil, len(tok))  # all targets <nil>
    loss, metrics = agent.training_step(cycle_batch(B=4, T=6, size=8), 0)
    assert float(loss) == 0.0 and metrics["loss/byog"] == 0.0
    # slot-0 only: the same loss whatever the later slots' targets are
    agent = make(tok, loss={"target_ema": 0.0, "w_ground": 0.0, "byog_later_slots_weight": 0.0})
    b = cycle_batch(B=4, T=6, size=8)
    with torch.no_grad():
        _, y, _, h, z = byog_parts(agent, b)
        x = agent.predictor.features(h, z)
        base = agent.byog_loss(x, y.reshape(4, -1), b["valid"], b, 0).loss
        logits_in = y.clone()
        # changing the later-slot targets changes the inputs too: compare with the hand sum
        cuts = L.sample_cuts(b["valid"].sum(1), seed=0, episode_index=b["episode_index"],
                             start=b["start"], step=0)
        m, tmask = L.prefix_masks(cuts, b["valid"], 4)
        ce = L.token_ce(agent.predictor.forward_prefix(x, logits_in.reshape(4, -1), m),
                        logits_in.reshape(4, -1))
        slot0 = tmask & (torch.arange(24) % 4 == 0)[None]
        want = ((ce * slot0).sum(1) / slot0.sum(1)).mean()
    assert float(base) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ModelError, match="byog_nil_weight"):
        make_model_config("tiny", "byog", loss={"byog_nil_weight": -1.0})


def test_byog_weights_entropy_bonus_and_weighted_loss_hand_values():
    y = torch.tensor([[2, 5, 2, 6]])  # k = 2: slots (0, 1), (0, 1); <nil> = 2
    w = L.byog_target_weights(y, 2, nil_id=2, nil_weight=0.5, later_slots_weight=0.25)
    assert w.tolist() == [[0.5, 0.25, 0.5, 0.25]]
    # weighted per-sequence mean: (1*0.5 + 3*0.25) / 0.75 on positions 0, 1
    logits = torch.zeros(1, 4, 7)
    ce = float(L.token_ce(logits, y)[0, 0])  # log 7 everywhere
    loss, _ = L.prefix_loss(logits, y, torch.tensor([[True, True, False, False]]), weights=w)
    assert float(loss) == pytest.approx(ce)
    zero, _ = L.prefix_loss(logits, y, torch.tensor([[True, False, False, False]]),
                            weights=torch.zeros(1, 4))
    assert float(zero) == 0.0  # no counted weight: nothing to learn
    # entropy bonus: uniform over the 5 allowed of 7 ids -> log 5, banned ids excluded
    z = torch.zeros(1, 2, 7, requires_grad=True)
    ent, m = L.entropy_bonus(z, torch.tensor([[True, False]]), torch.tensor([0, 1]))
    assert float(ent) == pytest.approx(math.log(5)) and m["reinforce/entropy"] == pytest.approx(math.log(5))
    ent.backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------- defect 10
def _train_run(tmp_path, *extra, steps=3, name="run"):
    from helpers import synthetic_dataset, tiny_args

    from agents.training.config import parse_args
    from agents.training.loop import train

    data = tmp_path / "data"
    if not data.is_dir():
        synthetic_dataset(data, episodes=4, length=16, size=8)
    run = tmp_path / name
    summary = train(parse_args(tiny_args(data, run, steps, "--logging.log_every", "1", *extra)))
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, [r for r in records if "loss/total" in r], run


def _load(run):
    from agents.training.loading import load_agent

    return load_agent(run)


def test_soft_targets_train_through_the_trainer(tmp_path):
    _, rec, _ = _train_run(tmp_path, "--model.loss.targets", "soft")
    for r in rec:  # the loss is the KL to the target's distribution, not the sampled ids' CE
        assert math.isfinite(r["loss/byog"]) and r["loss/byog"] != r["byog/ce"]


def test_logits_input_trains_through_the_trainer(tmp_path):
    summary, rec, run = _train_run(tmp_path, "--model.predictor.input", "logits")
    agent = _load(run)
    assert agent.predictor.w_in.in_features == agent.encoder.tlm.vocab_size
    assert all(math.isfinite(r["loss/byog"]) for r in rec) and math.isfinite(summary["val_prefix_gain"])


def test_parallel_token_index_trains_through_the_trainer(tmp_path):
    _, frame, _ = _train_run(tmp_path, "--preset", "byog-parallel", steps=1, name="frame")
    _, token, _ = _train_run(tmp_path, "--preset", "byog-parallel", "--model.predictor.index",
                             "token", steps=1, name="token")
    # every token position is an index: k times the frame indices' (i, j) pairs, give or take
    # the window's end
    assert token[0]["byog/positions"] > 2 * frame[0]["byog/positions"]


def test_tokenizer_path_is_used_by_the_trainer(tmp_path):
    from agents.model.text import save_tokenizer, train_tokenizer

    saved = train_tokenizer(["saw thing0", "wood in view", "a word only here"])
    save_tokenizer(saved, tmp_path / "tok")
    _, _, run = _train_run(tmp_path, "--loader.tokenizer_path", str(tmp_path / "tok"))
    assert _load(run).tokenizer.get_vocab() == saved.get_vocab()


def test_baseline_momentum_through_the_trainer(tmp_path):
    _, rec, run = _train_run(tmp_path, "--model.loss.token_objective", "reinforce",
                             "--model.loss.baseline_momentum", "0.0")
    agent = _load(run)
    # momentum 0: the baseline is the last step's mean reward
    assert float(agent.reward_baseline) == pytest.approx(rec[-1]["reinforce/reward"], rel=1e-5)


def test_ema_decay_anneals_towards_one_through_the_trainer(tok, tmp_path):
    assert L.ema_decay(0.5, 0, 4) == 0.5 and L.ema_decay(0.5, 2, 4) == 0.75
    assert L.ema_decay(0.5, 4, 4) == L.ema_decay(0.5, 9, 4) == 1.0 and L.ema_decay(0.5, 2, 0) == 0.5
    agent = make(tok, loss={"target_ema": 0.5, "target_ema_anneal_steps": 4})
    before = [p.clone() for p in agent.target.parameters()]
    with torch.no_grad():
        for p in agent.encoder.parameters():
            p.add_(0.1)
    assert agent.update_target(4) == 1.0  # annealed to 1: the target no longer moves
    assert all(torch.equal(b, p) for b, p in zip(before, agent.target.parameters()))
    _, rec, _ = _train_run(tmp_path, "--model.loss.target_ema_anneal_steps", "3")
    assert [round(r["optim/target_ema"], 4) for r in rec] == [0.99, 0.9925, 0.9975]
    with pytest.raises(ModelError, match="target_ema_anneal_steps"):
        make_model_config("tiny", "byog", loss={"target_ema_anneal_steps": -1})


# ----------------------------------------------------------------------------- done means
def distinct_narrations(agent, frames=100, seed=0):
    """Distinct (sampled) narration slots over ``frames`` frames of the cycle, as the model
    writes them (no slot rule: the carry cut would break a collapsed model's endless sentence
    into two kinds of slot)."""
    agent.eval()
    g = torch.Generator().manual_seed(seed)
    b = cycle_batch(B=frames // 10, T=10, size=8, g=g)
    torch.manual_seed(seed)
    ids = agent.narrate(b["frames"], b["valid"], greedy=False, cut=False, early_exit=False)
    return len({tuple(s) for s in ids.reshape(-1, ids.shape[-1]).tolist()})


@pytest.mark.slow
def test_collapse_safeguards_keep_narration_diverse_and_the_monitors_show_it(tok):
    # no labels at all: REINFORCE + BYOG alone. Safeguards: EMA target, entropy bonus, a sane lr;
    # broken: the same without the entropy bonus at a high lr
    reinforce = {"w_ground": 0.0, "target_ema": 0.99, "token_objective": "reinforce",
                 "w_reinforce": 1.0}
    safe = make(tok, loss={**reinforce, "w_entropy": 0.1})
    broken = make(tok, loss={**reinforce, "w_entropy": 0.0})
    last_s = train_steps(safe, 40, lr=1e-2)[-1]
    last_b = train_steps(broken, 40, lr=3e-2)[-1]
    assert distinct_narrations(safe) >= 5  # measured: 55 of 100 frames
    assert distinct_narrations(broken) == 1
    for m in (last_s, last_b):  # the monitors stay finite at collapse
        for key in ("monitor/nil_rate", "monitor/distinct_1", "monitor/distinct_2", "monitor/entropy"):
            assert math.isfinite(m[key]), key
    assert last_b["monitor/entropy"] < 0.05 and last_s["monitor/entropy"] > 0.5  # measured 0.0, 1.08
    assert last_b["monitor/distinct_1"] < last_s["monitor/distinct_1"]
