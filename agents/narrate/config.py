"""``NarrateConfig``: the options of ``python -m agents.narrate`` (every field is a flag), and the
names of the files it writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agents.narrate.narration import (
    NarrationError,
)

MP4, JSONL, SUMMARY = "narration.mp4", "narration.jsonl", "summary.json"
PLOT = "narration_over_time.png"


@dataclass
class NarrateConfig:
    """Settings of one live narration run (saved in ``summary.json``)."""

    checkpoint: str
    """Run directory of ``python -m agents.training`` (its newest checkpoint), a checkpoint
    directory, or a ``save_pretrained`` directory. (required)"""
    env: str = "crafter"
    """Environment name for ``byog_env.make`` (``crafter``, ``babyai-gotolocal``, ...)."""
    policy: str = "random"
    """Policy that plays: ``random``, ``crafter-scripted``, ``babyai-bot``, ``sb3:<path.zip>``,
    ``mixed:<policy>:<eps>``."""
    steps: int = 300
    """Most environment steps per episode (fewer when the episode ends first)."""
    episodes: int = 1
    """Number of episodes; episode i is reset with seed ``seed + i``."""
    seed: int = 0
    """Seed of the env resets, the policy and the narration sampling."""
    greedy: bool = False
    """Argmax narration instead of sampling."""
    temperature: float = 1.0
    """Sampling temperature of the narration (ignored with ``--greedy``)."""
    top_k: int | None = None
    """Sample among the k most likely tokens only (None = all)."""
    forecast: int = 0
    """Frames of future narration the predictor forecasts each step (0 = none)."""
    window: int | None = None
    """Context window in frames; memory stays bounded by it on long episodes (None = the
    checkpoint's training window: a longer context is one the model never saw)."""
    keep: int | None = None
    """Frames re-encoded when the window slides (None = window // 2)."""
    out: Path = Path("runs/narration")
    """Output directory for narration.mp4, narration.jsonl and summary.json."""
    tolerance: int = 2
    """Timing tolerance (frames) of the event agreement with the annotations."""
    bucket: int = 50
    """Steps per time bucket of the monitors."""
    scale: int = 4
    """Upscaling factor of the frames in the video."""
    fps: float = 10.0
    """Frames per second of the video."""
    video: bool = True
    """Write narration.mp4 (``--no-video`` to skip)."""
    quiet: bool = False
    """Do not stream the narration to the terminal."""
    device: str = "cpu"
    """Torch device of the agent."""
    num_envs: int = 1
    """Envs played side by side and narrated by ONE batched decode per step
    (:class:`agents.narrate.vector_narration.VectorNarrator`); env i plays episodes i, i+N, ...
    (episode j still reset with seed ``seed + j``). 1 = the single-env wrapper."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``fp32`` or ``bf16``: narrate under ``torch.autocast`` in bf16 (the observation encoder,
    projector, window re-encodes' inputs and logits; the per-token decode path stays in the
    weights' dtype, see agents.model.accel)."""
    compile: bool = False
    """``torch.compile`` the observation encoder and the encoder's teacher-forced forward (the
    per-token decode stays the hand-fused CPU path)."""
    cut: bool = True
    """End a narrated sentence that runs on past the training targets' carry bound (``--no-cut``
    narrates without it; agents.model.slot_rule)."""
    early_exit: bool = True
    """After a slot's first ``<nil>`` write ``<nil>`` and fill the rest of the slot in one pass
    (``--no-early-exit``: decode every position)."""
    word_share: float | None = None
    """Say nothing rather than guess which thing: a sentence's first word holding less than this
    share of the probability of all words becomes ``<nil>`` (counted as gated words; live and
    offline alike; agents.model.slot_rule). None = off."""
    sentence_share: float | None = None
    """Say only sure sentences: leave unsaid each sentence with a word (in the slot it began in)
    holding less than this share of the probability of all words (the narrator decodes as
    without; counted as hushed sentences; live and offline alike; agents.model.slot_rule rule
    4). None = off."""
    sentence_share_sweep: tuple[float, ...] = ()
    """Also score the live narration said at each of these sentence-gate shares (e.g. ``0.6 0.7
    0.8 0.9``), from the same run: the gate leaves decoding as it is, so each row is exactly
    what ``--sentence-share q`` would have said (a table, ``summary.json``'s
    ``sentence_gate_sweep``, ``sentence_gate_sweep.csv`` and ``.png``). Choose q on episodes
    other than those you report."""
    offline: bool = True
    """Also narrate the same frames offline (training-length windows) and report live - offline
    (``--no-offline`` to skip)."""
    stream: bool = False
    """Narrate ``--steps`` per episode as one stream: when the env's episode ends first, the
    next one starts (a new seed) and the narrator goes on with its context, not reset (long-run
    narration where the player dies early). Single env only."""
    drift: int = 500
    """Steps of the early span (from step 0) and the late span (the last ``drift`` of
    ``--steps``) whose paired live - offline F1 change is reported when ``--steps >= 2 * drift``."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise NarrationError(f"--threads must be >= 0 (0 = the cores this process may use), "
                                 f"got {self.threads}.")
        if self.precision not in ("fp32", "bf16"):
            raise NarrationError(f"--precision must be fp32 or bf16, got {self.precision!r}.")
        for name in ("steps", "episodes", "bucket", "scale", "num_envs", "drift"):
            if getattr(self, name) < 1:
                raise NarrationError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.tolerance < 0:
            raise NarrationError(f"--tolerance must be >= 0 frames, got {self.tolerance}.")
        if self.stream and self.num_envs > 1:
            raise NarrationError("--stream narrates one env (its episodes as one stream); pass "
                                 "--num-envs 1.")
        if self.fps <= 0:
            raise NarrationError(f"--fps must be > 0, got {self.fps}.")
        if self.word_share is not None and not 0.0 < self.word_share <= 1.0:
            raise NarrationError(f"--word-share must be in (0, 1] (or left out: off), got "
                                 f"{self.word_share}.")
        if self.sentence_share is not None and not 0.0 < self.sentence_share <= 1.0:
            raise NarrationError(f"--sentence-share must be in (0, 1] (or left out: off), got "
                                 f"{self.sentence_share}.")
        bad = [q for q in self.sentence_share_sweep if not 0.0 < q <= 1.0]
        if bad:
            raise NarrationError(f"--sentence-share-sweep values must be in (0, 1], got {bad}.")
        self.out = Path(self.out)
