"""Behavioural cloning on top of an encoder: does the learned language help an agent act?

An :class:`~experiments.heads.ActionHead` is trained on the per-frame features of an encoder
(:mod:`experiments.features`; frozen, or fine-tuned with the head) from the first ``n_episodes``
training episodes of an action-labelled dataset, then evaluated on held-out episodes (action
accuracy, NLL) and in the live env (:mod:`experiments.live`: success rate, return, Crafter
score). Every encoder gets the same windows and the same number of optimizer steps; the
wall-clock of feature extraction + training is reported.

    python -m experiments.action_transfer --data runs/babyai --encoder byog \\
        --checkpoint runs/enc/byog --n-episodes 16 --out runs/bc/byog-16
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from agents.obs.config import fitted_obs_kinds
from collect.dataset import WindowDataset, collate_windows, open_dataset
from experiments.features import BYOGFeaturizer, Featurizer, ObsFeaturizer, set_trainable
from experiments.heads import ActionHead, mission_ids
from experiments.pretrain import ENCODER_KINDS, ExperimentError, bc_split

EncoderKind = Literal["byog", "captioner", "random", "scratch", "vqvae", "units"]


@dataclass
class ActionTransferConfig:
    """One behavioural-cloning cell: one encoder, one N, one seed."""

    data: Path
    """Action-labelled dataset (collected with an expert: babyai-bot, crafter-scripted)."""
    out: Path
    """Directory for ``result.json`` (the cell is skipped when it exists, unless --force)."""
    encoder: EncoderKind = "byog"
    """Encoder: byog, captioner, random (fresh agent, frozen floor), scratch (CNN trained on the
    actions only), vqvae, units."""
    checkpoint: Path | None = None
    """Pretrained encoder: a trainer run directory (or checkpoint / save_pretrained dir) for
    byog/captioner (random: optional, else a fresh agent), the fitted observation-encoder dir
    (``RUNDIR/checkpoints/step_N/obs_encoder``) for vqvae/units; unused for scratch."""
    mode: Literal["frozen", "finetune"] = "frozen"
    """Freeze the encoder (features computed once) or fine-tune it with the head (scratch is
    always trained)."""
    n_episodes: int = 16
    """Training episodes N (a seeded draw from the trainer's training split; the held-out
    episodes are the trainer's validation split, unseen in pretraining)."""
    steps: int = 300
    """Optimizer steps (the same for every encoder)."""
    batch_size: int = 16
    """Windows per step."""
    lr: float = 1e-3
    """AdamW learning rate of the head (the fine-tuned encoder uses lr / 3)."""
    context: int = 16
    """Frames per block: narration state and GRU reset at every block start (live too)."""
    pool: Literal["last", "mean"] = "last"
    """Per-frame feature: hidden state at the slot's last position, or mean over the slot."""
    gru: bool = False
    """Add a GRU over the block's frames to the head."""
    hidden: int = 128
    """Head width."""
    mission: bool | None = None
    """Feed the mission text (hashed bag of words) to the head; None = when the dataset has
    missions (BabyAI: the mission is not drawn in the frame)."""
    live_episodes: int = 16
    """Live evaluation episodes (0 = skip)."""
    live_max_steps: int | None = None
    """Episode step limit in the live env (None = the dataset's longest episode)."""
    live_envs: int = 8
    """Environments stepped together in the live evaluation."""
    sample_actions: bool = True
    """Sample actions from the head's distribution live (False: argmax)."""
    seed: int = 0
    """Seed of the split, the head init and the live episodes."""
    size: Literal["tiny", "small", "base"] = "tiny"
    """Model size of the random/scratch encoders."""
    threads: int = 1
    """torch CPU threads."""
    force: bool = False
    """Recompute even if ``out/result.json`` exists."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.checkpoint is not None:
            self.checkpoint = Path(self.checkpoint)
        if self.encoder not in ENCODER_KINDS:
            raise ExperimentError(f"Unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODER_KINDS)}.")
        if (self.encoder in ("byog", "captioner") or self.encoder in fitted_obs_kinds()) \
                and self.checkpoint is None:
            raise ExperimentError(f"Encoder {self.encoder!r} needs --checkpoint DIR (pretrain it first, "
                                  "e.g. with python -m experiments.run_all).")
        for name in ("n_episodes", "steps", "batch_size", "context", "hidden", "live_envs", "threads"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.live_episodes < 0:
            raise ExperimentError(f"--live-episodes must be >= 0, got {self.live_episodes}.")


# ---------------------------------------------------------------------------- encoders
def build_featurizer(cfg: ActionTransferConfig, tokenizer_sentences: list[str] | None = None) -> Featurizer:
    """The featurizer ``cfg.encoder`` names (see the config field)."""
    from agents.config import make_model_config
    from agents.model import BYOGAgent
    from agents.obs import ObsEncoderConfig, build_obs_encoder

    torch.manual_seed(cfg.seed)
    if cfg.encoder in ("byog", "captioner") or (cfg.encoder == "random" and cfg.checkpoint):
        from agents.training import TrainError, load_agent

        try:
            agent = load_agent(cfg.checkpoint)
        except TrainError as e:
            raise ExperimentError(f"{cfg.checkpoint} is not a BYOG checkpoint ({e}); pass a run "
                                  "directory written by python -m agents.train.") from None
        return BYOGFeaturizer(agent, pool=cfg.pool, context=cfg.context)
    if cfg.encoder == "random":
        from agents.text import train_tokenizer

        agent = BYOGAgent(make_model_config(cfg.size, "byog"), train_tokenizer(tokenizer_sentences or []))
        return BYOGFeaturizer(agent, pool=cfg.pool, context=cfg.context)
    if cfg.encoder == "scratch":
        return ObsFeaturizer(build_obs_encoder(make_model_config(cfg.size).obs), context=cfg.context)
    return ObsFeaturizer(build_obs_encoder(ObsEncoderConfig(kind=cfg.encoder), fitted_path=cfg.checkpoint),
                         context=cfg.context)


def trains_encoder(cfg: ActionTransferConfig) -> bool:
    """Whether the encoder's weights are optimised with the head."""
    return cfg.encoder == "scratch" or (cfg.mode == "finetune" and cfg.encoder not in fitted_obs_kinds())


# ---------------------------------------------------------------------------- data
@dataclass
class Blocks:
    """All windows of some episodes, in memory: frames [N, T, H, W, 3], actions [N, T] (-1 = none),
    valid [N, T], mission ids [N, W] or None."""

    frames: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    mission: torch.Tensor | None


def load_blocks(path: Path, episodes: list[int], context: int, use_mission: bool) -> Blocks:
    """Windows of ``context`` frames aligned to block starts (stride = context)."""
    if not episodes:
        raise ExperimentError(f"No episodes selected from {path}; collect more episodes.")
    wd = WindowDataset(path, window=context, stride=context, episodes=episodes)
    b = collate_windows([wd[i] for i in range(len(wd))])
    mission = None
    if use_mission:
        recs = wd.dataset.records
        mission = mission_ids([str(recs[pos].get("mission") or "") for pos, _ in wd.index])
    act = b["actions"].long()
    return Blocks(b["frames"], act, b["valid"].bool() & (act >= 0), mission)


def featurize(feat: Featurizer, frames: torch.Tensor, valid: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Frozen features of many blocks: [N, T, H, W, 3] -> [N, T, D] (no gradient)."""
    with torch.no_grad():
        return torch.cat([feat.sequence(frames[i:i + chunk], valid[i:i + chunk])
                          for i in range(0, len(frames), chunk)])


def action_metrics(logits: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """``acc`` and ``nll`` over masked steps: logits [N, T, A], actions Long [N, T], mask [N, T]."""
    if not bool(mask.any()):
        return {"acc": float("nan"), "nll": float("nan")}
    lg, a = logits[mask], actions[mask]
    return {"acc": float((lg.argmax(-1) == a).float().mean()),
            "nll": float(F.cross_entropy(lg, a))}


# ---------------------------------------------------------------------------- training
def train_head(feat: Featurizer, head: ActionHead, data: Blocks, *, steps: int, batch_size: int,
               lr: float, train_encoder: bool, seed: int, progress: bool = True) -> dict[str, float]:
    """Train the head (and the encoder when ``train_encoder``) by cross-entropy on the actions."""
    rng = np.random.default_rng(seed)
    set_trainable(feat, train_encoder)
    cached = None if train_encoder else featurize(feat, data.frames, data.valid)
    groups = [{"params": head.parameters(), "lr": lr}]
    if train_encoder:
        groups.append({"params": [p for p in feat.parameters() if p.requires_grad], "lr": lr / 3})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    head.train()
    last: dict[str, float] = {}
    for step in tqdm(range(steps), desc="bc", disable=not progress, leave=False):
        idx = torch.as_tensor(rng.choice(len(data.frames), size=min(batch_size, len(data.frames)), replace=False))
        x = cached[idx] if cached is not None else feat.sequence(data.frames[idx], data.valid[idx])
        logits, _ = head(x, None if data.mission is None else data.mission[idx])
        mask = data.valid[idx]
        loss = F.cross_entropy(logits[mask], data.actions[idx][mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = {"train/loss": float(loss.detach())}
    set_trainable(feat, False)
    head.eval()
    return last


@torch.no_grad()
def evaluate_offline(feat: Featurizer, head: ActionHead, data: Blocks) -> dict[str, float]:
    """Held-out action accuracy and NLL (plus the majority-action accuracy for reference)."""
    x = featurize(feat, data.frames, data.valid)
    logits, _ = head(x, data.mission)
    m = action_metrics(logits, data.actions, data.valid)
    acts = data.actions[data.valid]
    major = float((acts == acts.mode().values).float().mean()) if len(acts) else float("nan")
    return {"offline/acc": m["acc"], "offline/nll": m["nll"], "offline/majority_acc": major}


class ClonedActor:
    """The cloned policy as a live :class:`~experiments.live.BatchActor` (incremental features)."""

    def __init__(self, feat: Featurizer, head: ActionHead, *, use_mission: bool, sample: bool,
                 seed: int = 0) -> None:
        self.feat, self.head, self.use_mission, self.sample = feat, head, use_mission, sample
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self, envs: list, obs: list[np.ndarray], infos: list[dict]) -> None:
        self.state = self.feat.start(len(obs))
        self.h = None
        self.mission = mission_ids([str(i.get("mission", "")) for i in infos]) if self.use_mission else None

    @torch.no_grad()
    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool]) -> list[int]:
        if self.state.in_block >= self.feat.context:
            self.h = None  # the GRU resets with the narration state at every block start
        frame = torch.from_numpy(np.stack(obs))  # [B, H, W, 3] uint8
        x, self.state = self.feat.step(self.state, frame)
        logits, self.h = self.head(x[:, None], self.mission, self.h)  # [B, 1, A]
        lg = logits[:, 0]
        a = (torch.multinomial(lg.softmax(-1), 1, generator=self.gen)[:, 0] if self.sample
             else lg.argmax(-1))
        return [int(v) for v in a]


# ---------------------------------------------------------------------------- main
def run(cfg: ActionTransferConfig) -> dict[str, Any]:
    """Train and evaluate one cell; returns (and writes) the result dict."""
    from experiments.live import evaluate_live

    torch.set_num_threads(cfg.threads)
    ds = open_dataset(cfg.data)
    train_ids, val_ids = bc_split(ds.num_episodes, cfg.n_episodes, cfg.seed)
    use_mission = cfg.mission if cfg.mission is not None else any(r.get("mission") for r in ds.records)
    sentences = [s for step in ds.episode(train_ids[0]).annotations for s in step]
    feat = build_featurizer(cfg, sentences)
    n_actions = int(ds.info.get("action_space", {}).get("n") or 0) or int(_max_action(ds) + 1)
    torch.manual_seed(cfg.seed)
    head = ActionHead(in_dim=feat.out_dim, num_actions=n_actions, hidden=cfg.hidden, gru=cfg.gru,
                      mission_dim=32 if use_mission else 0)
    train = load_blocks(cfg.data, train_ids, cfg.context, use_mission)
    val = load_blocks(cfg.data, val_ids, cfg.context, use_mission)
    t0 = time.perf_counter()
    last = train_head(feat, head, train, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                      train_encoder=trains_encoder(cfg), seed=cfg.seed, progress=cfg.progress)
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {"config": _jsonable(asdict(cfg)), "encoder": cfg.encoder, "mode": cfg.mode,
                              "n_episodes": cfg.n_episodes, "seed": cfg.seed, "env": ds.info.get("env"),
                              "train/seconds": seconds, "train/windows": len(train.frames),
                              "train/steps": cfg.steps, **last, **evaluate_offline(feat, head, val)}
    if cfg.live_episodes:
        max_steps = cfg.live_max_steps or max(ds.lengths)
        actor = ClonedActor(feat, head, use_mission=use_mission, sample=cfg.sample_actions, seed=cfg.seed)
        t1 = time.perf_counter()
        result.update(evaluate_live(str(ds.info.get("env")), actor, episodes=cfg.live_episodes,
                                    seed=live_seed(cfg.seed), num_envs=cfg.live_envs,
                                    max_steps=max_steps, progress=cfg.progress))
        result["live/seconds"] = time.perf_counter() - t1
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "result.json").write_text(json.dumps(result, indent=2))
    return result


def live_seed(seed: int) -> int:
    """First env seed of the live episodes of run seed ``seed`` (disjoint from collection's)."""
    return 10_000 + seed * 1000


def main(cfg: ActionTransferConfig) -> dict[str, Any]:
    """Run the cell unless ``out/result.json`` exists (resumable sweeps)."""
    done = cfg.out / "result.json"
    if done.is_file() and not cfg.force:
        return json.loads(done.read_text())
    return run(cfg)


def _max_action(ds: Any) -> int:
    return max(int(np.max(ds.episode(i).actions)) for i in range(ds.num_episodes))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.action_transfer``: errors print as one line, exit status 2."""
    import tyro

    from collect.writer import DatasetError

    try:
        res = main(tyro.cli(ActionTransferConfig, args=argv))
    except (ExperimentError, DatasetError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in res.items() if k != "config" and not k.startswith("live/ach_")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
