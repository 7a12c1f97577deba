"""Behavioural cloning on top of an experiment arm: does the learned language help an agent act?

An :class:`~experiments.heads.ActionHead` is trained on the per-frame features of an arm
(:mod:`experiments.arms`: hidden states, the language channel, oracles, pixels) over whole
episodes (the head's GRU, when on, remembers the whole episode, for every arm alike), then
evaluated on held-out episodes (action accuracy and NLL, per test episode too) and in the live
env (:mod:`experiments.live`: argmax and sampled actions, the env's own time limit for BabyAI,
a stated cap for Crafter, the same env seeds for every arm).

Splits (three-way, by episode): the *test* episodes are the trainer's validation split (never
seen in pretraining); from its training split a seeded draw gives ``val_episodes`` BC-validation
episodes and, from the rest (the pool), the ``n_episodes`` training episodes. Every arm trains
under the same budget rule: the head's output bias starts at the training actions' log prior,
at most ``steps`` optimizer steps, validation NLL every ``eval_every`` steps, stop after
``patience`` evaluations without an improvement of at least ``min_delta``, keep the best. A cell
that reaches its cap while still improving says so (``train/at_cap_improving``: the study's
budget allows 5% of cells that end so). Arms with frozen features also fit the convex head
(:func:`experiments.heads.fit_convex_head`, ``offline/convex_acc``), a check with no step cap.

    python -m experiments.action_transfer --data runs/babyai --encoder byog \\
        --checkpoint runs/enc/byog --n-episodes 16 --out runs/bc/byog-16
"""
from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from collect.dataset import open_dataset
from experiments.arms import DEFAULT_CONTEXT, ArmContext, resolve_arm
from experiments.errors import ExperimentError
from experiments.features import Featurizer, episode_features, set_trainable, slot_support
from experiments.heads import ActionHead, convex_metrics, fit_convex_head, mission_ids, prior_logits
from experiments.pretrain import PRETRAIN_KINDS, bc_split3

"""Live step cap per env when ``--live-max-steps`` is not given (Crafter's own limit is 10,000
steps); envs not listed keep their own time limit (BabyAI: the level's ``max_steps``)."""


@dataclass
class ActionTransferConfig:
    """One behavioural-cloning cell: one arm, one N, one BC seed."""

    data: Path
    """Action-labelled dataset (collected with an expert: babyai-bot, crafter-scripted)."""
    out: Path
    """Directory for ``result.json`` (the cell is skipped when it exists, unless --force)."""
    encoder: str = "byog"
    """Experiment arm (``python -m experiments.arms`` lists them; ``module:name`` imports a
    plugin module first), e.g. byog, byog-text, oracle-text, shuffled-text, prior, scratch."""
    checkpoint: Path | None = None
    """Pretrained encoder of arms that need one: a trainer run directory (or checkpoint /
    save_pretrained dir) for byog/captioner-based arms, the fitted observation-encoder dir
    (``RUNDIR/checkpoints/step_N/obs_encoder``) for vqvae/units."""
    mode: Literal["frozen", "finetune"] = "frozen"
    """Freeze the encoder (features computed once) or fine-tune a pretrained one with the head
    at lr / 3 (arms that train their encoder on the actions always do, at the head's lr)."""
    n_episodes: int = 16
    """Training episodes N (a seeded draw from the pool)."""
    val_episodes: int = 4
    """BC-validation episodes (early stopping), drawn from the trainer's training split."""
    steps: int = 300
    """Most optimizer steps (the same rule for every arm)."""
    eval_every: int = 25
    """Steps between validation-NLL evaluations."""
    patience: int = 4
    """Stop after this many evaluations without a better validation NLL (0 = never stop early)."""
    min_delta: float = 1e-3
    """A BC-validation NLL lower by less than this (nats) is no improvement (a head creeping
    down by 1e-5 a step would otherwise run to the cap)."""
    convex: bool = True
    """Also fit the convex head (logistic regression, C tuned on BC-validation) on frozen features."""
    bc_val_f1: bool = False
    """Also score the pretrained narrator's event F1 on this cell's BC-validation episodes
    (``narration/bc_val_f1``: the study pairs checkpoints at matched F1 by it, never by the test split)."""
    batch_size: int = 8
    """Episodes per step."""
    lr: float = 1e-3
    """AdamW learning rate of the head and of encoders trained on the actions."""
    context: int | None = None
    """Frames per narration block (hidden-state and narration arms restart at block starts, live
    too); None: the pretrained narrator's training window (``ModelConfig.window``, saved with
    its weights), 16 for arms without a narrator checkpoint."""
    pool: Literal["last", "mean"] = "last"
    """Per-frame hidden feature: the slot's last position, or the mean over the slot."""
    gru: bool = False
    """Add a GRU over the whole episode to the head (every arm alike; the prior arm excepted)."""
    hidden: int = 128
    """Head width."""
    mission: bool | None = None
    """Feed the mission text (hashed bag of words) to the head; None = when the dataset has
    missions (BabyAI: the mission is not drawn in the frame)."""
    text_decay: float = 0.5
    """Decay of the text featurizer's bag of earlier slots."""
    live_episodes: int = 16
    """Live evaluation episodes per action mode (0 = skip)."""
    live_max_steps: int | None = None
    """Live step limit (None: the family's ``live_step_cap`` (Crafter 500), else the env's own)."""
    live_envs: int = 8
    """Environments stepped together in the live evaluation."""
    live_modes: tuple[str, ...] = ("argmax", "sample")
    """Live action choice: argmax and/or sampled from the head's distribution."""
    seed: int = 0
    """BC seed: the draw of the training and BC-validation episodes, the head init, the live
    env seeds (shared by every arm) and the sampled actions."""
    pipeline_seed: int = 0
    """Pipeline seed of the pretrained encoder (recorded; seeds fresh random weights)."""
    size: Literal["tiny", "small", "base"] = "tiny"
    """Model size of the random/scratch encoders."""
    threads: int = 1
    """torch CPU threads."""
    device: str = "cpu"
    """Torch device of the featurizer's encoder, the head, their batches and live action
    selection (cpu, cuda, cuda:1); episodes stay in CPU memory and move a batch at a time."""
    force: bool = False
    """Recompute even if ``out/result.json`` exists."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.checkpoint is not None:
            self.checkpoint = Path(self.checkpoint)
        _, spec = resolve_arm(self.encoder)
        if spec.pretrain and self.checkpoint is None:
            raise ExperimentError(f"Arm {self.encoder!r} needs --checkpoint DIR (pretrain it first, "
                                  "e.g. with python -m experiments.run_all).")
        if self.mode == "finetune" and not spec.finetunable:
            raise ExperimentError(f"Arm {self.encoder!r} cannot be fine-tuned; use --mode frozen.")
        for name in ("n_episodes", "steps", "batch_size", "context", "hidden", "live_envs", "threads",
                     "eval_every", "val_episodes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ExperimentError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.live_episodes < 0 or self.patience < 0:
            raise ExperimentError("--live-episodes and --patience must be >= 0.")
        bad = [m for m in self.live_modes if m not in ("argmax", "sample")]
        if bad:
            raise ExperimentError(f"--live-modes takes argmax and/or sample, got {bad}.")


# ---------------------------------------------------------------------------- data
@dataclass
class Blocks:
    """Whole episodes in memory (padded to the longest): frames [N, L, H, W, 3], actions [N, L]
    (-1 = none), valid [N, L] (a frame with an action to predict), mission ids [N, W] or None,
    annotations (N lists of L sentence lists) and infos (N lists of L dicts) when read."""

    frames: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    mission: torch.Tensor | None
    annotations: list[list[list[str]]] | None = None
    infos: list[list[dict[str, Any]]] | None = None
    frame_valid: torch.Tensor | None = None
    """[N, L]: a real frame (the last frame of an episode has no action but is real)."""
    ids: list[int] = field(default_factory=list)
    missions: list[str] | None = None
    """Each episode's mission text (the convex head's one-hot), None without missions."""

    def rows(self, feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """Per-step rows of features [N, L, D] where an action is to be predicted: ``(x [M, D],
        actions [M], mission per row or None)`` (the convex head's data)."""
        valid = self.valid.to(feats.device)
        x = feats[valid].float().cpu().numpy()
        missions = None if self.missions is None else [
            self.missions[i] for i, n in enumerate(self.valid.sum(1).tolist()) for _ in range(int(n))]
        return x, self.actions[self.valid].numpy(), missions

    def subset(self, idx: Any, device: torch.device | str | None = None) -> dict[str, Any]:
        """Featurizer inputs of episodes ``idx`` (frames and masks moved to ``device``)."""
        ii = [int(i) for i in torch.as_tensor(idx).reshape(-1)]
        fv = self.frame_valid if self.frame_valid is not None else self.valid
        return {"frames": self.frames[ii].to(device), "valid": fv[ii].to(device),
                "annotations": None if self.annotations is None else [self.annotations[i] for i in ii],
                "infos": None if self.infos is None else [self.infos[i] for i in ii]}


def env_kwargs_of(ds: Any) -> dict[str, Any]:
    """The options a dataset was collected with (``--env-kwargs``), e.g. view and size."""
    return dict((ds.info.get("collect_config") or {}).get("env_kwargs") or {})


def load_blocks(path: Path, episodes: list[int], use_mission: bool, *, infos: bool = False) -> Blocks:
    """Whole episodes of ``path`` (replayed for their infos when ``infos``)."""
    if not episodes:
        raise ExperimentError(f"No episodes selected from {path}; collect more episodes.")
    ds = open_dataset(path)
    eps = [ds.episode(i) for i in episodes]
    N, L = len(eps), max(e.length for e in eps)
    frames = torch.zeros(N, L, *ds.frame_shape, dtype=torch.uint8)
    actions = torch.full((N, L), -1, dtype=torch.long)
    fvalid = torch.zeros(N, L, dtype=torch.bool)
    for i, e in enumerate(eps):
        frames[i, :e.length] = torch.from_numpy(e.frames)
        actions[i, :e.length] = torch.from_numpy(np.array(e.actions, dtype=np.int64))
        fvalid[i, :e.length] = True
    annotations = [[list(a) for a in e.annotations] + [[] for _ in range(L - e.length)] for e in eps]
    mission = mission_ids([str(e.record.get("mission") or "") for e in eps]) if use_mission else None
    info_rows = None
    if infos:
        from experiments.oracles import replay_infos

        env, kw = str(ds.info.get("env")), env_kwargs_of(ds)
        info_rows = [replay_infos(env, kw, e.record["seed"], e.actions, e.frames) + [{}] * (L - e.length)
                     for e in eps]
    return Blocks(frames, actions, fvalid & (actions >= 0), mission, annotations, info_rows, fvalid,
                  list(episodes), [str(e.record.get("mission") or "") for e in eps] if use_mission else None)


def featurize(feat: Featurizer, data: Blocks, chunk: int = 32) -> torch.Tensor:
    """Frozen features of all episodes: [N, L, D] on the featurizer's device (no gradient);
    the frames move there ``chunk`` episodes at a time."""
    with torch.no_grad():
        return torch.cat([episode_features(feat, **data.subset(range(i, min(i + chunk, len(data.frames))), feat.device))
                          for i in range(0, len(data.frames), chunk)])


def action_metrics(logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """``acc`` and ``nll`` over masked steps: logits [N, T, A], actions Long [N, T], mask [N, T]."""
    actions, mask = actions.to(logits.device), mask.to(logits.device)
    if not bool(mask.any()):
        return {"acc": float("nan"), "nll": float("nan")}
    lg, a = logits[mask], actions[mask]
    return {"acc": float((lg.argmax(-1) == a).float().mean()),
            "nll": float(F.cross_entropy(lg, a))}


# ---------------------------------------------------------------------------- training
class _Model:
    """The head on a featurizer's frozen (cached) and trained parts."""

    def __init__(self, feat: Featurizer, head: ActionHead, train_encoder: bool,
                 cache: dict[int, torch.Tensor] | None = None) -> None:
        self.feat, self.head, self.device = feat, head, feat.device
        self.frozen, self.trained = feat.parts(train_encoder)
        # frozen features stay on the device: read every step, they are small beside the frames
        # (the gpu preset's largest cell, 1,024 episodes x 500 frames x 512 floats: ~1 GB)
        self._cache: dict[int, torch.Tensor] = {} if cache is None else cache

    def logits(self, data: Blocks, idx: torch.Tensor) -> torch.Tensor:
        xs = []
        if self.frozen is not None:
            key = id(data)
            if key not in self._cache:
                self._cache[key] = featurize(self.frozen, data)
            xs.append(self._cache[key][idx.to(self.device)])
        if self.trained is not None:
            xs.append(episode_features(self.trained, **data.subset(idx, self.device)))
        mission = None if data.mission is None else data.mission[idx].to(self.device)
        return self.head(torch.cat(xs, -1), mission)[0]

    def state(self) -> dict[str, Any]:
        return {"head": copy.deepcopy(self.head.state_dict()),
                "trained": None if self.trained is None else copy.deepcopy(self.trained.state_dict())}

    def load(self, st: dict[str, Any]) -> None:
        self.head.load_state_dict(st["head"])
        if self.trained is not None:
            self.trained.load_state_dict(st["trained"])


def train_head(feat: Featurizer, head: ActionHead, data: Blocks, *, steps: int, batch_size: int,
               lr: float, train_encoder: bool, seed: int, progress: bool = True, val: Blocks | None = None,
               eval_every: int = 25, patience: int = 4, encoder_lr_scale: float = 1.0, min_delta: float = 1e-6,
               cache: dict[int, torch.Tensor] | None = None) -> dict[str, float]:
    """Train the head (and the featurizer's trained part when ``train_encoder``, at ``lr *
    encoder_lr_scale``) by cross-entropy on the actions; with ``val``, stop early on its NLL
    (an improvement is a drop of at least ``min_delta``) and keep the best weights.

    ``train/at_cap_improving`` is 1 when the run reached ``steps`` while its validation NLL
    improved within the last ``patience`` evaluations (it had not converged), else 0.
    ``cache`` (``id(blocks) -> features``) keeps the frozen features for the caller."""
    rng = np.random.default_rng(seed)
    set_trainable(feat, False)
    model = _Model(feat, head, train_encoder, cache)
    groups = [{"params": list(head.parameters()), "lr": lr}]
    if model.trained is not None:
        set_trainable(model.trained, True)
        groups.append({"params": [p for p in model.trained.parameters() if p.requires_grad],
                       "lr": lr * encoder_lr_scale})
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=1e-4)
    best, best_nll, best_step, bad, step, stopped = None, float("inf"), 0, 0, 0, False
    if val is not None:  # the start is the first reference: an evaluation improves on it, or not
        best, best_nll = model.state(), _val_nll(model, val)
    last: dict[str, float] = {}
    for step in tqdm(range(1, steps + 1), desc="bc", disable=not progress, leave=False):
        head.train()
        idx = torch.as_tensor(rng.choice(len(data.frames), size=min(batch_size, len(data.frames)), replace=False))
        mask, target = data.valid[idx].to(model.device), data.actions[idx].to(model.device)
        loss = F.cross_entropy(model.logits(data, idx)[mask], target[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = {"train/loss": float(loss.detach())}
        if val is not None and (step % eval_every == 0 or step == steps):
            nll = _val_nll(model, val)
            if nll < best_nll - min_delta:
                best, best_nll, best_step, bad = model.state(), nll, step, 0
            else:
                bad += 1
                if patience and bad >= patience:
                    stopped = True
                    break
    if best is not None:
        model.load(best)
    set_trainable(feat, False)
    head.eval()
    # at the cap, still improving: the last improvement lies within the last `patience` evaluations
    at_cap = val is not None and not stopped and best_step > 0 and bad < max(patience, 1)
    return {**last, "train/steps_run": float(step), "train/best_step": float(best_step if val is not None else step),
            "train/val_nll": best_nll if best is not None else float("nan"),
            "train/at_cap_improving": float(at_cap)}


def _val_nll(model: _Model, val: Blocks) -> float:
    was = model.head.training
    model.head.eval()
    if model.trained is not None:
        model.trained.eval()
    with torch.no_grad():
        lg = model.logits(val, torch.arange(len(val.frames)))
    model.head.train(was)
    if model.trained is not None:
        model.trained.train(True)
    return action_metrics(lg, val.actions, val.valid)["nll"]


@torch.no_grad()
def evaluate_offline(feat: Featurizer, head: ActionHead, data: Blocks,
                     train_actions: torch.Tensor | None = None, feats: torch.Tensor | None = None) -> dict[str, Any]:
    """Held-out action accuracy and NLL, per test episode too (``offline/episode_correct`` and
    ``offline/episode_steps``, for the bootstrap), and the accuracy of always predicting the
    training majority action (the test set's own majority when no training actions are given).
    ``feats``: the episodes' features when already computed."""
    x = featurize(feat, data) if feats is None else feats
    logits, _ = head(x, None if data.mission is None else data.mission.to(feat.device))
    logits = logits.cpu()  # the metrics read the blocks' actions, in CPU memory
    m = action_metrics(logits, data.actions, data.valid)
    acts = data.actions[data.valid]
    ref = train_actions[train_actions >= 0] if train_actions is not None else acts
    major = float((acts == ref.mode().values).float().mean()) if len(acts) and len(ref) else float("nan")
    hit = (logits.argmax(-1) == data.actions) & data.valid
    return {"offline/acc": m["acc"], "offline/nll": m["nll"], "offline/majority_acc": major,
            "offline/episode_correct": [int(v) for v in hit.sum(1)],
            "offline/episode_steps": [int(v) for v in data.valid.sum(1)],
            "offline/episode_ids": list(data.ids)}


class ClonedActor:
    """The cloned policy as a live :class:`~experiments.live.BatchActor` (incremental features;
    the featurizer gets the env's annotations and infos; the GRU remembers the whole episode).
    With a featurizer that restarts streams on its own, each env restarts at its own step
    (``restarts_envs``: live evaluation then never waits for a round's slowest env)."""

    def __init__(self, feat: Featurizer, head: ActionHead, *, use_mission: bool, sample: bool,
                 seed: int = 0) -> None:
        self.feat, self.head, self.use_mission, self.sample = feat, head, use_mission, sample
        self.gen = torch.Generator().manual_seed(seed)
        self.restarts_envs = bool(feat.restarts_streams)
        self.support = [0, 0]  # narrated slots supported by the env's annotations, narrated slots

    def _set_missions(self, missions: list[str]) -> None:
        self.missions = missions
        self.mission = mission_ids(missions).to(self.feat.device) if self.use_mission else None

    def reset(self, envs: list, obs: list[np.ndarray], infos: list[dict]) -> None:
        self.state = self.feat.start(len(obs))
        self.h = None
        self._set_missions([str(i.get("mission", "")) for i in infos])

    @torch.no_grad()
    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool],
            starts: list[bool] | None = None) -> list[int]:
        frame = torch.from_numpy(np.stack(obs)).to(self.feat.device)  # [B, H, W, 3] uint8
        anns = [list(i.get("annotations") or []) for i in infos]
        kw = {}
        if starts is not None and any(starts):  # envs beginning their next episode
            fresh = torch.as_tensor(starts, dtype=torch.bool)  # a control flag: the featurizers keep it on the CPU
            kw["starts"] = fresh
            if self.h is not None:  # the GRU's memory of those envs starts afresh
                self.h = self.h.masked_fill(fresh.to(self.h.device).view(1, -1, 1), 0.0)
            self._set_missions([str(i.get("mission", "")) if s else m for m, i, s in zip(self.missions, infos, starts)])
        x, self.state = self.feat.step(self.state, frame, annotations=anns, infos=infos, **kw)
        if self.feat.narrates:  # the narrator's words on the policy's own states
            words = self.state.narration["words"]
            s = slot_support([w for w, a in zip(words, active) if a], [t for t, a in zip(anns, active) if a])
            self.support = [self.support[0] + s[0], self.support[1] + s[1]]
        logits, self.h = self.head(x[:, None], self.mission, self.h)  # [B, 1, A]
        # the actions leave as Python ints: chosen on the CPU, where the seeded generator lives
        # (the same draws from the same probabilities on every device)
        lg = logits[:, 0].float().cpu()
        a = (torch.multinomial(lg.softmax(-1), 1, generator=self.gen)[:, 0] if self.sample
             else lg.argmax(-1))
        return [int(v) for v in a]


def narration_context(cfg: ActionTransferConfig) -> int:
    """Frames per narration block: ``cfg.context``, else the window the arm's narrator
    checkpoint was trained on (blocks as long as its training windows), else 16."""
    if cfg.context is not None:
        return cfg.context
    kind = resolve_arm(cfg.encoder)[1].pretrain
    if cfg.checkpoint is not None and kind is not None and PRETRAIN_KINDS[kind].narrates:
        from agents.errors import ModelError, TrainError
        from agents.training.loading import checkpoint_window

        try:
            return checkpoint_window(cfg.checkpoint) or DEFAULT_CONTEXT
        except (TrainError, ModelError):
            return DEFAULT_CONTEXT  # not a checkpoint: loading the arm's agent says so, in one line
    return DEFAULT_CONTEXT


def arm_context(cfg: ActionTransferConfig, ds: Any, sentences: list[str] | None = None) -> ArmContext:
    """What the arm's featurizer factory gets for ``cfg`` on dataset ``ds``."""
    return ArmContext(checkpoint=cfg.checkpoint, data=cfg.data, env=str(ds.info.get("env")),
                      env_kwargs=env_kwargs_of(ds), size=cfg.size, pool=cfg.pool,
                      context=narration_context(cfg),
                      text_decay=cfg.text_decay, sentences=list(sentences or []), seed=cfg.pipeline_seed,
                      device=cfg.device)


def build_featurizer(cfg: ActionTransferConfig, tokenizer_sentences: list[str] | None = None) -> Featurizer:
    """The featurizer of ``cfg``'s arm."""
    return resolve_arm(cfg.encoder)[1].build(arm_context(cfg, open_dataset(cfg.data), tokenizer_sentences))


# ---------------------------------------------------------------------------- main
def run(cfg: ActionTransferConfig) -> dict[str, Any]:
    """Train and evaluate one cell; returns (and writes) the result dict."""
    from experiments.devices import require_device

    require_device(cfg.device, "This BC cell")
    torch.set_num_threads(cfg.threads)
    name, spec = resolve_arm(cfg.encoder)
    ds = open_dataset(cfg.data)
    env = str(ds.info.get("env"))
    train_ids, val_ids, test_ids = bc_split3(ds.num_episodes, cfg.n_episodes, cfg.seed, cfg.val_episodes)
    has_mission = any(r.get("mission") for r in ds.records)
    use_mission = spec.uses_mission and (cfg.mission if cfg.mission is not None else has_mission)
    sentences = [s for i in train_ids[:4] for step in ds.episode(i).annotations for s in step]
    ctx = arm_context(cfg, ds, sentences)
    feat = spec.build(ctx)
    n_actions = int(ds.info.get("action_space", {}).get("n") or 0) or int(_max_action(ds) + 1)
    train_encoder = spec.trains_encoder or cfg.mode == "finetune"
    torch.manual_seed(cfg.seed)  # the head is drawn on the CPU, then moved: the same init on every device
    head = ActionHead(in_dim=feat.out_dim, num_actions=n_actions, hidden=cfg.hidden,
                      gru=cfg.gru and spec.uses_mission, mission_dim=32 if use_mission else 0)
    load = {"use_mission": use_mission, "infos": feat.needs_infos}
    train, val, test = (load_blocks(cfg.data, ids, **load) for ids in (train_ids, val_ids, test_ids))
    with torch.no_grad():  # start exactly at the action prior (every arm alike): zero output weights
        head.out.weight.zero_()  # (the first step still trains them; the layers below follow)
        head.out.bias.copy_(prior_logits(train.actions, n_actions))
    head = head.to(feat.device)
    t0 = time.perf_counter()
    cache: dict[int, torch.Tensor] = {}
    last = train_head(feat, head, train, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                      train_encoder=train_encoder, seed=cfg.seed, progress=cfg.progress, val=val,
                      eval_every=cfg.eval_every, patience=cfg.patience, min_delta=cfg.min_delta,
                      encoder_lr_scale=1.0 if spec.trains_encoder else 1 / 3, cache=cache)
    seconds = time.perf_counter() - t0
    x_test = None if train_encoder else featurize(feat, test)
    convex = (convex_head(cache[id(train)], cache[id(val)], x_test, train, val, test, n_actions, cfg.seed)
              if cfg.convex and x_test is not None and id(train) in cache and id(val) in cache else {})
    result: dict[str, Any] = {"config": _jsonable(asdict(cfg)), "encoder": cfg.encoder, "arm": name,
                              "mode": cfg.mode, "n_episodes": cfg.n_episodes, "seed": cfg.seed,
                              "pipeline_seed": cfg.pipeline_seed, "env": env, "env_kwargs": ctx.env_kwargs,
                              "train/seconds": seconds, "train/episodes": len(train_ids),
                              "train/steps": cfg.steps, **last, **convex,
                              **evaluate_offline(feat, head, test, train.actions, x_test)}
    if cfg.bc_val_f1 and spec.pretrain is not None and PRETRAIN_KINDS[spec.pretrain].narrates:
        from experiments.pretrain import narration_f1

        result["narration/bc_val_f1"] = narration_f1(cfg.checkpoint, cfg.data, cfg.device, val_ids)
    if cfg.live_episodes and spec.live:
        if feat.narrates:  # the same measure on the expert's test episodes
            said = feat.texts(test.frames.to(feat.device), test.frame_valid.to(feat.device))
            s = slot_support([w for ep in said for w in ep], [a for ep in test.annotations for a in ep])
            result["offline/narration_support"] = s[0] / max(s[1], 1)
        t1 = time.perf_counter()
        result.update(live_results(cfg, env, ctx.env_kwargs, feat, head, use_mission))
        result["live/seconds"] = time.perf_counter() - t1
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def convex_head(x_train: torch.Tensor, x_val: torch.Tensor, x_test: torch.Tensor, train: Blocks, val: Blocks,
                test: Blocks, num_actions: int, seed: int) -> dict[str, float]:
    """The convex check on the frozen features: fitted on the training episodes, C chosen on the
    BC-validation episodes, scored on the test episodes (``offline/convex_acc``, ``…_nll``)."""
    t0 = time.perf_counter()
    head = fit_convex_head(train.rows(x_train), val.rows(x_val), num_actions=num_actions, seed=seed)
    m = convex_metrics(head, *test.rows(x_test))
    return {"offline/convex_acc": m["acc"], "offline/convex_nll": m["nll"], "train/convex_C": head.C,
            "train/convex_seconds": time.perf_counter() - t0}


def live_results(cfg: ActionTransferConfig, env: str, env_kwargs: dict[str, Any], feat: Featurizer,
                 head: ActionHead, use_mission: bool) -> dict[str, Any]:
    """Live metrics per action mode: ``live/…`` for sampled actions, ``live_argmax/…`` for argmax."""
    from experiments.live import evaluate_live

    out: dict[str, Any] = {}
    for mode in cfg.live_modes:
        actor = ClonedActor(feat, head, use_mission=use_mission, sample=mode == "sample", seed=cfg.seed)
        res = evaluate_live(env, actor, episodes=cfg.live_episodes, seed=live_seed(cfg.seed),
                            num_envs=cfg.live_envs, max_steps=live_cap(env, cfg.live_max_steps),
                            env_kwargs=env_kwargs, symbolic=feat.needs_infos, progress=cfg.progress)
        prefix = "live/" if mode == "sample" else "live_argmax/"
        out.update({prefix + k.split("/", 1)[1]: v for k, v in res.items()})
        if feat.narrates:
            out[prefix + "narration_support"] = actor.support[0] / max(actor.support[1], 1)
    return out


def live_cap(env: str, max_steps: int | None) -> int | None:
    """The live step limit: the given one, else the env family's ``live_step_cap``, else the
    env's own (None). An unknown env is one error (``UnknownEnvError``), never a default."""
    import byog_env

    return max_steps if max_steps is not None else byog_env.family(env).live_step_cap


def live_seed(seed: int) -> int:
    """First env seed of the live episodes of run seed ``seed`` (disjoint from collection's)."""
    return 10_000 + seed * 1000


RUN_ONLY = ("out", "force", "progress", "threads")
"""Config fields that do not change a cell's result."""
ADDED_LATER = {"device": "cpu"}
"""Config fields newer than some saved results, with the value those results were computed at."""


def main(cfg: ActionTransferConfig) -> dict[str, Any]:
    """Run the cell unless ``out/result.json`` holds a result of the same settings (a changed
    setting recomputes it)."""
    done = cfg.out / "result.json"
    if done.is_file() and not cfg.force:
        old = json.loads(done.read_text())
        same = {k: v for k, v in _jsonable(asdict(cfg)).items() if k not in RUN_ONLY}
        old_cfg = {**ADDED_LATER, **old.get("config", {})}
        if {k: old_cfg.get(k) for k in same} == json.loads(json.dumps(same)):
            return old
    return run(cfg)


def _max_action(ds: Any) -> int:
    return max(int(np.max(ds.episode(i).actions)) for i in range(ds.num_episodes))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.action_transfer``: errors print as one line, exit status 2."""
    import tyro

    from byog_core.cli import run_cli

    def body() -> int:
        res = main(tyro.cli(ActionTransferConfig, args=argv))
        print(json.dumps({k: v for k, v in res.items() if k != "config" and not k.startswith("live/ach_")}, indent=2))
        return 0

    return run_cli(body)  # exit codes: the one policy of byog_core.cli


if __name__ == "__main__":
    sys.exit(cli())
