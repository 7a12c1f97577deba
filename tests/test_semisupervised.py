"""Semi-supervised batches, fixed validation and the options that make the BYOG term help
(issue 21): equal true-labelled streams across arms, the same validation windows whatever the
batch size, resumable samplers, and each loss option doing what it claims."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from helpers import synthetic_dataset, tiny_args

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from agents.training.config import LoaderConfig, TrainError
from agents.training.data import (
    build_data,
    combine_batches,
    train_streams,
    validation_batches,
    validation_indices,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("semi") / "ds", episodes=12, length=24)


def _loader(**kw) -> LoaderConfig:
    return LoaderConfig(**{"window": 8, "batch_size": 4, "num_workers": 0, "val_fraction": 0.25,
                           **kw})


def _ids(batch) -> list[tuple[int, int]]:
    return list(zip(batch["episode_index"].tolist(), batch["start"].tolist()))


def _streams(data, cfg, *, captioner: bool, pseudo: bool = False, fraction: float = 0.5):
    bundle = build_data(str(data), cfg, label_fraction=fraction, label_seed=3,
                        labelled_only=captioner)
    return bundle, train_streams(bundle, cfg, seed=7, ground=True, unlabelled=not captioner,
                                 pseudo=pseudo)


def test_every_arm_of_a_seed_draws_the_same_labelled_windows_in_the_same_order(data):
    cfg = _loader()
    cap_bundle, cap = _streams(data, cfg, captioner=True)
    _, byog = _streams(data, cfg, captioner=False)
    _, selftrain = _streams(data, cfg, captioner=True, pseudo=True)
    assert [s.name for s in cap] == ["labelled"]
    assert [s.name for s in byog] == ["labelled", "unlabelled"]
    assert [s.name for s in selftrain] == ["labelled", "pseudo"]
    n = 3 * cap[0].per_epoch + 1  # past an epoch boundary
    ref = [_ids(b) for b in itertools.islice(cap[0].batches(0), n)]
    assert ref == [_ids(b) for b in itertools.islice(byog[0].batches(0), n)]
    assert ref == [_ids(b) for b in itertools.islice(selftrain[0].batches(0), n)]
    labelled = {int(cap_bundle.dataset.records[p]["episode_index"]) for p in cap_bundle.labelled_ids}
    assert {e for b in ref for e, _ in b} <= labelled
    # the unlabelled batch draws from every training episode, in its own order
    unl = [_ids(b) for b in itertools.islice(byog[1].batches(0), n)]
    train = {int(cap_bundle.dataset.records[p]["episode_index"]) for p in cap_bundle.train_ids}
    assert {e for b in unl for e, _ in b} == train and unl != ref
    # the pseudo-labelled batch draws only from the unlabelled episodes
    pseudo = [_ids(b) for b in itertools.islice(selftrain[1].batches(0), n)]
    assert not ({e for b in pseudo for e, _ in b} & labelled)


def test_a_step_batch_marks_which_rows_each_loss_reads(data):
    cfg = _loader(unlabelled_batch_size=6)
    _, streams = _streams(data, cfg, captioner=False)
    parts = [next(s.batches(0)) for s in streams]
    batch = combine_batches(streams, parts)
    assert batch["frames"].shape[0] == 4 + 6 and len(batch["annotations"]) == 10
    assert batch["labelled"].tolist() == [True] * 4 + [False] * 6
    assert batch["byog"].tolist() == [False] * 4 + [True] * 6
    assert batch["true_labelled"] == 4


def test_resume_mid_run_continues_both_samplers_in_order(data):
    cfg = _loader()
    _, streams = _streams(data, cfg, captioner=False)
    for st in streams:
        full = [_ids(b) for b in itertools.islice(st.batches(0), 9)]
        assert [_ids(b) for b in itertools.islice(st.batches(5), 4)] == full[5:]


def test_the_validation_windows_do_not_depend_on_the_batch_size(data):
    bundle = build_data(str(data), _loader(), label_fraction=1.0, label_seed=0)
    n = len(bundle.val)
    idx = validation_indices(n, 5)
    assert len(idx) == 5 and idx[0] == 0 and idx[-1] == n - 1  # spread over every episode
    assert validation_indices(n, None) == list(range(n)) == validation_indices(n, 10 ** 6)
    a = validation_batches(bundle.val, 5, 1)
    b = validation_batches(bundle.val, 5, 3)
    assert [x for batch in a for x in _ids(batch)] == [x for batch in b for x in _ids(batch)]
    assert validation_batches(bundle.val, 5, 0) == []


def test_batch_2_and_batch_4_runs_score_the_same_windows_and_majority(data, tmp_path):
    from agents.training.command import cli

    out = {}
    for bs in (2, 4):
        run = tmp_path / f"b{bs}"
        assert cli(tiny_args(data, run, 1, "--preset", "captioner", "--loader.batch_size", str(bs),
                             "--logging.val_windows", "6", "--logging.val_batches", "2",
                             "--loader.val_fraction", "0.25")) == 0
        out[bs] = json.loads((run / "summary.json").read_text())["val"]
    assert out[2]["val/majority_token_accuracy"] == out[4]["val/majority_token_accuracy"]
    # the old validation (the first val_batches x batch_size windows) differed here
    from agents.training.config import LoaderConfig as LC
    from agents.training.data import val_batches

    b = build_data(str(data), LC(window=8, val_fraction=0.25, num_workers=0), label_fraction=1.0,
                   label_seed=0)
    old = [[x for batch in val_batches(b.val, bs, 2) for x in _ids(batch)] for bs in (2, 4)]
    assert old[0] != old[1]


def test_the_pilot_slice_is_trained_on_by_no_run(data):
    cfg = _loader(pilot_episodes=2)
    b = build_data(str(data), cfg, label_fraction=1.0, label_seed=0)
    assert len(b.pilot_ids) == 2 and not set(b.pilot_ids) & (set(b.train_ids) | set(b.val_ids))
    assert not set(b.pilot_ids) & {p for p, _ in b.train.index}
    p = build_data(str(data), _loader(pilot_episodes=2, validate_on="pilot"), label_fraction=1.0,
                   label_seed=0)
    assert {pos for pos, _ in p.val.index} == set(b.pilot_ids) and p.train_ids == b.train_ids
    with pytest.raises(TrainError, match="pilot_episodes"):
        LoaderConfig(validate_on="pilot")


# ----------------------------------------------------------------------------- the loss options
SENTENCES = ["collected 1 wood", "tree in view", "cow in view"]


def _batch(B: int = 4, T: int = 4, g: int = 0) -> dict:
    gen = torch.Generator().manual_seed(g)
    return {"frames": torch.randint(0, 255, (B, T, 16, 16, 3), dtype=torch.uint8, generator=gen),
            "valid": torch.ones(B, T, dtype=torch.bool),
            "annotations": [[[SENTENCES[(b + t) % 3]] if (b + t) % 2 == 0 else []
                             for t in range(T)] for b in range(B)],
            "episode_index": torch.arange(B), "start": torch.zeros(B, dtype=torch.long),
            "labelled": torch.tensor([True, True, False, False]),
            "byog": torch.tensor([False, False, True, True])}


def _agent(**loss) -> BYOGAgent:
    torch.manual_seed(0)
    cfg = make_model_config("tiny", text={"tokens_per_frame": 4},
                            obs={"out_dim": 32, "cnn_channels": (8, 8)},
                            lm={"hidden_size": 32, "num_heads": 2, "intermediate_size": 64},
                            loss=loss)
    return BYOGAgent(cfg, train_tokenizer(SENTENCES))


def _encoder_grads(agent: BYOGAgent, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in agent.encoder.parameters() if p.requires_grad]
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True),
                            params)]


@pytest.mark.parametrize("scale, equal", [(0.0, True), (1.0, False)])
def test_encoder_grad_scale_0_leaves_the_grounding_gradient_alone(scale, equal):
    agent = _agent(byog_encoder_grad_scale=scale, target_ema=0.0)
    terms, _ = agent.training_terms(_batch(), step=0)
    total = _encoder_grads(agent, sum(terms.values()))
    ground = _encoder_grads(agent, terms["ground"])
    same = all(torch.allclose(a, b, atol=1e-7) for a, b in zip(total, ground))
    assert same is equal
    if scale == 0.0:  # the predictor still learns from the BYOG term
        pred = [p for p in agent.predictor.parameters() if p.requires_grad]
        grads = torch.autograd.grad(terms["byog"], pred, retain_graph=True, allow_unused=True)
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_warmup_weight_is_0_at_step_0_and_full_after():
    agent = _agent(w_byog_warmup_steps=10, w_byog=0.5)
    for step, w in ((0, 0.0), (5, 0.25), (10, 0.5), (50, 0.5)):
        terms, m = agent.training_terms(_batch(), step=step)
        assert m["loss/w_byog"] == pytest.approx(w)
        assert float(terms["byog"]) == pytest.approx(w * m["loss/byog"], rel=1e-5)


@pytest.mark.parametrize("ema", [0.99, 0.0])
def test_the_latent_target_receives_no_gradient(ema):
    agent = BYOGAgent(make_model_config("tiny", preset="byog-latent", text={"tokens_per_frame": 4},
                                        obs={"out_dim": 32, "cnn_channels": (8, 8)},
                                        lm={"hidden_size": 32, "num_heads": 2,
                                            "intermediate_size": 64},
                                        loss={"target_ema": ema}),
                      train_tokenizer(SENTENCES))
    seen = {}
    real = agent.byog_loss

    def spy(*a, **kw):
        seen["target"] = kw.get("target_hidden")
        return real(*a, **kw)

    agent.byog_loss = spy
    loss, m = agent.training_step(_batch(), step=0)
    assert seen["target"] is not None and not seen["target"].requires_grad
    assert 0.0 <= m["loss/byog"] <= 4.0 and "byog/cos" in m
    loss.backward()
    if agent.target is not None:
        assert all(p.grad is None for p in agent.target.parameters())
    assert agent.predictor.w_out.weight.grad is not None  # the regression head learns


def test_separate_clips_bound_each_group():
    from agents.training.config import config_from_dict
    from agents.training.loop import clip_groups

    agent = _agent()
    loss, _ = agent.training_step(_batch(), step=0)
    (loss * 1000).backward()
    cfg = config_from_dict({"optim": {"grad_clip": 0.0, "grad_clip_encoder": 0.01,
                                      "grad_clip_predictor": 0.02}})
    params = [p for p in agent.parameters() if p.requires_grad]
    norms = clip_groups(agent, params, cfg)
    assert norms["optim/grad_norm_encoder"] > 0.01 and norms["optim/grad_norm_predictor"] > 0.02

    def norm(m):
        return float(torch.sqrt(sum((p.grad ** 2).sum() for p in m.parameters() if p.grad is not None)))

    assert norm(agent.encoder) == pytest.approx(0.01, rel=1e-3)
    assert norm(agent.predictor) == pytest.approx(0.02, rel=1e-3)


def test_init_from_a_captioner_starts_encoder_and_target_from_it(data, tmp_path, capsys):
    from agents.training.checkpoint import load_init_weights, resolve_checkpoint
    from agents.training.command import cli
    from agents.training.loading import load_agent

    cap = tmp_path / "cap"
    assert cli(tiny_args(data, cap, 2, "--preset", "captioner")) == 0
    captioner = load_agent(cap)
    run = tmp_path / "byog"
    assert cli(tiny_args(data, run, 1, "--init-from", str(cap), "--optim.lr", "1e-9",
                         "--schedule.warmup_steps", "0")) == 0
    byog = load_agent(run)
    enc_c, enc_b = captioner.encoder.state_dict(), byog.encoder.state_dict()
    assert all(torch.allclose(enc_c[k], enc_b[k], atol=1e-5) for k in enc_c)
    assert byog.tokenizer.get_vocab() == captioner.tokenizer.get_vocab()
    fresh = BYOGAgent(byog.cfg, byog.tokenizer)
    left = load_init_weights(fresh, resolve_checkpoint(cap))
    assert any(k.startswith("predictor.") for k in left) and not any(k.startswith("encoder.") for k in left)
    tgt = fresh.target.state_dict()
    assert all(torch.equal(tgt[k], fresh.encoder.state_dict()[k]) for k in tgt)
    # a run of another size does not fit: one clear error
    assert cli(tiny_args(data, tmp_path / "bad", 1, "--init-from", str(cap),
                         "--model.lm.hidden_size", "64")) == 2
    # a damaged weights file is refused from its header, one error line, before any tensor is read
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(resolve_checkpoint(cap), broken)
    w = broken / "agent" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    capsys.readouterr()
    assert cli(tiny_args(data, tmp_path / "bad2", 1, "--init-from", str(broken))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]


def test_logs_labelled_windows_per_step_and_encoder_gradient_norms(data, tmp_path):
    from agents.training.command import cli

    run = tmp_path / "r"
    assert cli(tiny_args(data, run, 4, "--label-fraction", "0.5", "--logging.log_every", "2",
                         "--loader.unlabelled_batch_size", "6")) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "data/labelled_windows_per_step" in r]
    assert logged and all(r["data/labelled_windows_per_step"] == 4 for r in logged)
    grads = [r for r in rows if "grad/encoder_byog" in r]
    assert len(grads) == 2 and all(r["grad/encoder_ground"] > 0 and r["grad/byog_over_ground"] > 0
                                   for r in grads)
