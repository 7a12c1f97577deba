"""The BYOG model's typed config tree and the ``make_model_config(size, preset)`` factory.

A leaf module: it imports neither torch nor transformers (tested), so configs can be built,
validated and saved without loading a model. Plugins it names (predictor objectives) are
registered here by string entry point and imported only when used.

Size (``tiny`` / ``small`` / ``base``) and objective preset (``byog``, ``captioner``,
``byog-parallel``, ``byog-lora``, ``byog-xattn``) are separate axes. Every dataclass validates
itself in ``__post_init__`` and the tree round-trips through ``to_dict`` / ``from_dict`` (JSON).
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agents.errors import ModelError, TextError
from agents.obs.cnn_config import CNNConfig
from agents.obs.config import ObsConfig, obs_config_from_dict
from byog_core.registry import Registry

"""The built-in presets (the CLI's choices); plugins may register more in :data:`PRESETS`."""


@dataclass(frozen=True)
class SizeSpec:
    """A model size: the LM shape and the observation encoder's width, as config sections."""

    lm: dict[str, Any]
    obs: dict[str, Any]

    @property
    def summary(self) -> str:
        lm = self.lm
        return (f"LM {lm['num_layers']} layers x {lm['hidden_size']} wide, {lm['num_heads']} heads; "
                f"frame features {self.obs['out_dim']}")


@dataclass(frozen=True)
class PresetSpec:
    """An objective preset: what it sets on top of a size's defaults."""

    summary: str
    """One line for listings and docs."""
    overrides: dict[str, Any]
    """``ModelConfig`` fields; a nested section as a dict merged into it (``{"loss": {...}}``)."""


SIZES: Registry[SizeSpec] = Registry("size", error=ModelError)
SIZES.register("tiny", SizeSpec(lm={"hidden_size": 64, "num_layers": 2, "num_heads": 4,
                                    "intermediate_size": 256},
                                obs={"out_dim": 64, "cnn_channels": (32, 32)}))
SIZES.register("small", SizeSpec(lm={"hidden_size": 256, "num_layers": 4, "num_heads": 4,
                                     "intermediate_size": 1024},
                                 obs={"out_dim": 256, "cnn_channels": (64, 64)}))
# pythia-70m's shape: 6 layers, width 512, 8 heads, MLP 2048, rotary 25 %
SIZES.register("base", SizeSpec(lm={"hidden_size": 512, "num_layers": 6, "num_heads": 8,
                                    "intermediate_size": 2048},
                                obs={"out_dim": 512, "cnn_channels": (128, 128, 128)}))

PRESETS: Registry[PresetSpec] = Registry(
    "preset", error=ModelError,
    hint="Add one with agents.config.PRESETS.register(name, PresetSpec(...)).")
"""Objective presets by name; ``make_model_config`` applies the entry, never an if-chain."""
PRESETS.register("byog", PresetSpec("BYOG with the prefix predictor (the default)", {}))
PRESETS.register("captioner", PresetSpec("the supervised captioner baseline: no predictor",
                                         {"loss": {"w_byog": 0.0}}))
PRESETS.register("byog-parallel", PresetSpec("BYOG with the parallel-forecast predictor",
                                             {"predictor": {"mode": "parallel"}}))
PRESETS.register("byog-lora", PresetSpec("encoder and predictor as LoRA adapters on one shared "
                                         "pretrained LM (needs lm.pretrained_path)",
                                         {"lora": {"enabled": True}}))
PRESETS.register("byog-latent", PresetSpec(
    "BYOG whose predictor regresses the EMA target's normalised hidden states (BYOL/JEPA)",
    {"predictor": {"mode": "latent"}}))
PRESETS.register("byog-xattn", PresetSpec("frames enter the LM through gated cross-attention",
                                          {"fusion": "xattn"}))


OBJECTIVES: Registry = Registry(
    "predictor objective", error=ModelError,
    hint="Add one with agents.model.objectives.register_objective(name, fn) in a module of yours and "
         "name it as 'your.module:name' (see docs/architecture.md).")
"""Predictor objectives by name (``PredictorConfig.mode``); values are loss functions of
:mod:`agents.model.objectives`, registered here as entry points so this module stays torch-free."""
OBJECTIVES.register("prefix", "agents.model.objectives:prefix_objective")
OBJECTIVES.register("parallel", "agents.model.objectives:parallel_objective")
OBJECTIVES.register("latent", "agents.model.objectives:latent_objective")


@dataclass
class SlotConfig:
    """How a window's annotations become token slots (see :mod:`agents.model.text`)."""

    tokens_per_frame: int = 8
    """Token positions per frame (k)."""
    max_carry: int = 4
    """Frames an overflowing token may wait in the backlog before it is cut (0: no carry)."""

    def __post_init__(self) -> None:
        if self.tokens_per_frame < 1:
            raise TextError(
                f"tokens_per_frame must be >= 1 (each frame needs a slot), got {self.tokens_per_frame}."
            )
        if self.max_carry < 0:
            raise TextError(f"max_carry must be >= 0 frames, got {self.max_carry}.")


@dataclass
class LMConfig:
    """Shape of the GPT-NeoX LMs (encoder and predictor), or a local pretrained checkpoint."""

    hidden_size: int = 64
    """Width of the LM (ignored when ``pretrained_path`` is set)."""
    num_layers: int = 2
    """Number of transformer layers."""
    num_heads: int = 4
    """Attention heads; must divide hidden_size."""
    intermediate_size: int = 0
    """MLP width; 0 = 4 * hidden_size."""
    max_positions: int = 2048
    """Longest token stream (frames * tokens_per_frame) the LM accepts."""
    rotary_pct: float = 0.25
    """Fraction of each head rotated by RoPE (pythia: 0.25)."""
    dropout: float = 0.0
    """Hidden and attention dropout."""
    pretrained_path: str | None = None
    """Local checkpoint directory / HF cache snapshot of a GPT-NeoX model (e.g. pythia-70m);
    None = a freshly initialised model of the shape above."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "max_positions"):
            if getattr(self, name) < 1:
                raise ModelError(f"lm.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.num_layers > 512:  # a saved config is checked against its weights on the meta
            # device before anything is allocated; bounded so that check itself stays cheap
            raise ModelError(f"lm.num_layers must be at most 512, got {self.num_layers}.")
        if self.hidden_size % self.num_heads:
            raise ModelError(
                f"lm.hidden_size {self.hidden_size} must be divisible by lm.num_heads "
                f"{self.num_heads}; pick a head count that divides the width."
            )
        if self.intermediate_size < 0:
            raise ModelError(f"lm.intermediate_size must be >= 0, got {self.intermediate_size}.")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ModelError(f"lm.rotary_pct must be in (0, 1], got {self.rotary_pct}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"lm.dropout must be in [0, 1), got {self.dropout}.")


@dataclass
class LoRAConfig:
    """peft LoRA adapters ``encoder`` and ``predictor`` on one shared, frozen pretrained base."""

    enabled: bool = False
    """Share one frozen pretrained LM between encoder and predictor through two adapters."""
    r: int = 8
    """LoRA rank."""
    alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA branch."""
    target_modules: tuple[str, ...] = ("query_key_value", "dense", "dense_h_to_4h",
                                       "dense_4h_to_h")
    """GPT-NeoX Linear modules that get adapters."""

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        if self.r < 1 or self.alpha < 1:
            raise ModelError(f"lora.r and lora.alpha must be >= 1, got r={self.r}, alpha={self.alpha}.")
        if not self.target_modules:
            raise ModelError("lora.target_modules must name at least one GPT-NeoX Linear module.")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"lora.dropout must be in [0, 1), got {self.dropout}.")


@dataclass
class PredictorConfig:
    """The predictor of future narration (see DESIGN.md, *The BYOG model*)."""

    mode: str = "prefix"
    """The predictor objective, a name in ``agents.config.OBJECTIVES`` (or ``"module:name"`` of
    a plugin that registers itself when imported). prefix: masked encoder states of frames
    <= the cut, loss on the rest; parallel: from the state at index i alone predict the next
    ``horizon`` tokens, all i in one pass."""
    input: Literal["hidden", "logits"] = "hidden"
    """What the predictor sees of the encoder: its hidden state or its output distribution."""
    horizon: int = 8
    """parallel mode: number K of future tokens predicted from each index."""
    index: Literal["frame", "token"] = "frame"
    """parallel mode: indices i = each frame's last slot position, or every token position."""

    def __post_init__(self) -> None:
        OBJECTIVES.check(self.mode)
        if self.input not in ("hidden", "logits"):
            raise ModelError(f"predictor.input must be 'hidden' or 'logits', got {self.input!r}.")
        if self.index not in ("frame", "token"):
            raise ModelError(f"predictor.index must be 'frame' or 'token', got {self.index!r}.")
        if self.horizon < 1:
            raise ModelError(f"predictor.horizon must be >= 1 token, got {self.horizon}.")


@dataclass
class LossConfig:
    """Weights and options of the training objective."""

    w_ground: float = 1.0
    """Weight of the grounding CE on labelled windows."""
    w_byog: float = 1.0
    """Weight of the BYOG predictor loss (0 = supervised captioner baseline)."""
    w_byog_warmup_steps: int = 0
    """Ramp w_byog linearly from 0 at step 0 to its value at this step (0 = no ramp), so
    grounding shapes the words before the self-supervised term pulls on them."""
    byog_encoder_grad_scale: float = 1.0
    """Scale of the BYOG gradient that reaches the encoder (through the states the predictor
    reads); the predictor itself trains at full strength. 0 = the encoder gets the grounding
    gradient only."""
    target_ema: float = 0.99
    """EMA decay of the target encoder (0 = the online encoder itself is the target)."""
    target_ema_anneal_steps: int = 0
    """Cosine-anneal the EMA decay from target_ema towards 1 over this many optimizer steps, as
    BYOL does (the target settles as training ends); 0 = a constant decay."""
    targets: Literal["hard", "soft"] = "hard"
    """hard: CE on the target's sampled ids; soft: KL to the target's distribution at tau."""
    tau: float = 1.0
    """Temperature of soft targets."""
    sample_temperature: float = 1.0
    """Temperature at which the target encoder samples the token stream (0 = greedy)."""
    nil_weight: float = 1.0
    """Weight of <nil> targets in the grounding CE (down-weight to < 1 to favour words)."""
    history_dropout: float = 0.0
    """Grounding: probability that a frame's slot is replaced by <nil> in the teacher-forced
    input (positions inside it leave the loss), so the model learns to narrate after a silent
    history as free-running greedy narration produces (against exposure bias)."""
    byog_nil_weight: float = 1.0
    """Weight of <nil> targets in the BYOG predictor loss (most slot positions are <nil>, so
    at 1 the predictor mostly learns to predict silence; < 1 favours the words)."""
    byog_later_slots_weight: float = 1.0
    """Weight of slot positions 1..k-1 in the BYOG loss: those are largely predictable from
    the same frame's earlier tokens; 0 = only each future frame's first slot position counts."""
    token_objective: Literal["none", "reinforce"] = "none"
    """reinforce: also train the words with REINFORCE: the online encoder samples a stream
    (on-policy, eval mode), its prefix tokens (those the predictor reads) are credited with
    reward = -(the predictor's NLL of the stream's future tokens)."""
    w_reinforce: float = 0.1
    """Weight of the REINFORCE term."""
    w_entropy: float = 0.01
    """Weight of the entropy bonus on the online encoder's distribution at the credited
    tokens (REINFORCE only): it opposes collapse to one constant narration."""
    baseline_momentum: float = 0.9
    """Momentum of the REINFORCE moving-average reward baseline."""
    seed: int = 0
    """Seed of the per-sample cut and sampling RNG."""

    def __post_init__(self) -> None:
        for name in ("w_ground", "w_byog", "w_reinforce", "w_entropy", "byog_nil_weight",
                     "byog_later_slots_weight"):
            if getattr(self, name) < 0:
                raise ModelError(f"loss.{name} must be >= 0, got {getattr(self, name)}.")
        if self.w_byog_warmup_steps < 0:
            raise ModelError(f"loss.w_byog_warmup_steps must be >= 0, got {self.w_byog_warmup_steps}.")
        if self.byog_encoder_grad_scale < 0:
            raise ModelError("loss.byog_encoder_grad_scale must be >= 0, got "
                             f"{self.byog_encoder_grad_scale}.")
        if self.w_ground == 0 and self.w_byog == 0:
            raise ModelError("w_ground and w_byog are both 0: nothing would be trained; set one > 0.")
        if not 0.0 <= self.target_ema < 1.0:
            raise ModelError(f"loss.target_ema must be in [0, 1) (0 = online), got {self.target_ema}.")
        if self.target_ema_anneal_steps < 0:
            raise ModelError(f"loss.target_ema_anneal_steps must be >= 0, got {self.target_ema_anneal_steps}.")
        if self.targets not in ("hard", "soft"):
            raise ModelError(f"loss.targets must be 'hard' or 'soft', got {self.targets!r}.")
        if self.tau <= 0:
            raise ModelError(f"loss.tau must be > 0, got {self.tau}.")
        if self.sample_temperature < 0:
            raise ModelError(f"loss.sample_temperature must be >= 0, got {self.sample_temperature}.")
        if not 0.0 <= self.history_dropout < 1.0:
            raise ModelError(f"loss.history_dropout must be in [0, 1), got {self.history_dropout}.")
        if self.nil_weight < 0:
            raise ModelError(f"loss.nil_weight must be >= 0, got {self.nil_weight}.")
        if self.token_objective not in ("none", "reinforce"):
            raise ModelError(
                f"loss.token_objective must be 'none' or 'reinforce', got {self.token_objective!r}."
            )
        if not 0.0 <= self.baseline_momentum < 1.0:
            raise ModelError(f"loss.baseline_momentum must be in [0, 1), got {self.baseline_momentum}.")


@dataclass
class ModelConfig:
    """Everything that defines a BYOG agent's architecture and objective."""

    size: str = "tiny"
    """Size the config was made from (informational; the nested fields are authoritative)."""
    preset: str = "byog"
    """Objective preset the config was made from (informational; a name in ``PRESETS``)."""
    fusion: Literal["additive", "xattn"] = "additive"
    """How frames enter the encoder LM: added at each slot's first position, or gated xattn."""
    lm: LMConfig = field(default_factory=LMConfig)
    """Encoder LM (the predictor uses the same shape)."""
    obs: ObsConfig = field(default_factory=CNNConfig)
    """Observation encoder: the options of the kind ``--model.obs.kind`` picks (a registered
    plugin, see ``python -m agents.obs list``)."""
    text: SlotConfig = field(default_factory=SlotConfig)
    """Tokens per frame and the carry bound."""
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    """Predictor mode and input."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights, targets and EMA."""
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """Shared pretrained base with LoRA adapters (byog-lora)."""
    nil_threshold: float | None = None
    """Greedy narration's decision rule: say <nil> iff P(<nil>) > nil_threshold, else the most
    likely word (None = plain argmax, where <nil> wins whenever the word mass is split over
    several words). Used by evaluation, offline and live narration."""
    window: int | None = None
    """Frames in the narrator's context: the window it was trained on (the trainer writes
    ``--loader.window`` into the agent it builds), saved with the weights and read by live narration, the studies and
    imagination. None in a config saved before it existed: the loader's window in the
    checkpoint's metadata stands in (:func:`agents.narrate.narrator.training_window`)."""

    def __post_init__(self) -> None:
        SIZES.check(self.size)
        PRESETS.check(self.preset)
        if self.fusion not in ("additive", "xattn"):
            raise ModelError(f"fusion must be 'additive' or 'xattn', got {self.fusion!r}.")
        if self.lora.enabled and not self.lm.pretrained_path:
            raise ModelError(
                "LoRA mode (preset byog-lora) needs lm.pretrained_path, a local GPT-NeoX "
                "checkpoint directory to share between encoder and predictor."
            )
        if self.nil_threshold is not None and not 0.0 < self.nil_threshold < 1.0:
            raise ModelError(f"nil_threshold must be in (0, 1) or None, got {self.nil_threshold}.")
        if self.window is not None and (isinstance(self.window, bool) or int(self.window) < 1):
            raise ModelError(f"window must be >= 1 frame or None, got {self.window}.")
        if self.lora.enabled and self.fusion == "xattn":
            raise ModelError("LoRA mode supports additive fusion only; use fusion='additive'.")

    @property
    def uses_predictor(self) -> bool:
        """Whether the BYOG predictor is built (not for the pure captioner)."""
        return self.loss.w_byog > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` inverts it."""
        d = asdict(self)
        d["obs"] = self.obs.to_dict()
        d["lora"]["target_modules"] = list(self.lora.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error naming them."""
        nested = {"lm": LMConfig, "text": SlotConfig, "predictor": PredictorConfig,
                  "loss": LossConfig, "lora": LoRAConfig}
        _check_keys(cls, d, "ModelConfig")
        kw = dict(d)
        for name, sub in nested.items():
            if name in kw:
                _check_keys(sub, kw[name], f"ModelConfig.{name}")
                kw[name] = sub(**kw[name])
        if "obs" in kw:
            kw["obs"] = obs_config_from_dict(kw["obs"])
        return cls(**kw)

    @classmethod
    def from_saved(cls, d: dict[str, Any]) -> ModelConfig:
        """A config read back from a saved agent: fields whose default changed since are filled
        as such an agent was built (a cnn saved without ``cnn_arch`` is the older 'conv' stack),
        so older checkpoints keep loading."""
        obs = d.get("obs")
        if isinstance(obs, dict) and obs.get("kind", "cnn") == "cnn" and "cnn_arch" not in obs \
                and "plugin" not in obs:  # an old flat obs config (today's name 'arch')
            d = {**d, "obs": {**obs, "cnn_arch": "conv"}}
        return cls.from_dict(d)


def _check_keys(cls: type, d: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ModelError(f"Unknown {where} fields {unknown}; known fields are {sorted(known)}.")


def make_model_config(size: str = "tiny", preset: str = "byog", **overrides: Any) -> ModelConfig:
    """Build a validated :class:`ModelConfig` from a size and an objective preset.

    Args:
        size: ``tiny`` (2-layer 64-wide LM, small CNN: tests and demo), ``small``, ``base``
            (pythia-70m shape).
        preset: ``byog`` (prefix predictor), ``captioner`` (w_byog = 0), ``byog-parallel``,
            ``byog-lora`` (needs ``lm={"pretrained_path": DIR}``), ``byog-xattn``.
        **overrides: Top-level fields; nested ones as dicts merged into the preset's, e.g.
            ``loss={"w_ground": 0.0}`` or ``lm={"pretrained_path": "/ckpt/pythia-70m"}``.

    Returns:
        The config.

    Raises:
        ModelError: unknown size/preset/field or an invalid value.
    """
    spec = SIZES[size]
    d: dict[str, Any] = {"size": size, "preset": preset, "lm": dict(spec.lm), "obs": dict(spec.obs),
                         "loss": {}, "predictor": {}, "lora": {}}
    for key, value in PRESETS[preset].overrides.items():
        d[key] = {**d[key], **value} if isinstance(value, dict) else value
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key].update(value)
        elif dataclasses.is_dataclass(value):
            d[key] = value.to_dict() if hasattr(value, "to_dict") else asdict(value)
        else:
            d[key] = value
    _check_keys(ModelConfig, d, "ModelConfig")
    d["obs"] = obs_config_from_dict(d["obs"]).to_dict()
    return ModelConfig.from_dict(d)
