"""The trainer's typed config tree, its YAML file layer and its command-line layer.

Layering (later wins): dataclass defaults → ``make_model_config(size, preset)`` → ``--config
FILE.yaml`` → dotted command-line flags (``--model.obs.kind vqvae``, ``--optim.lr 1e-3``).
``size`` and ``preset`` are read first (from the command line, else the YAML file) because they
pick the model's defaults; the YAML file and the remaining flags then override single fields.
The flags are parsed by ``tyro`` with the YAML-resolved config as its default, so ``--help``
lists every field with its docstring and unknown flags are rejected by tyro (exit code 2).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agents.config import PRESETS, SIZES, ModelConfig, make_model_config
from agents.errors import ModelError, TrainError
from agents.obs.legacy import obs_cli_layer, translate_flat_flags


@dataclass
class LoaderConfig:
    """Windows, the train/validation split and the DataLoader."""

    window: int = 16
    """T, frames per training window."""
    stride: int | None = None
    """Frames between window starts in training episodes (None = window, no overlap)."""
    batch_size: int = 32
    """The labelled batch: windows of labelled episodes drawn each step for the grounding loss
    (global, split evenly across DDP ranks); 32 x 16 frames per step. Every arm of a seed draws
    the same labelled windows in the same order."""
    unlabelled_batch_size: int | None = None
    """BYOG (and an obs encoder's pseudo-language): windows drawn each step from all training
    episodes, by a second sampler, for the self-supervised loss; None = ``batch_size``. The
    self-training captioner (``pseudo_labels``) draws its pseudo-labelled batch at this size."""
    val_fraction: float = 0.2
    """Share of episodes held out for validation (split by episode, never by window)."""
    split_seed: int = 0
    """Seed of the episode split."""
    pilot_episodes: int = 0
    """Training episodes set aside (a slice seeded by ``split_seed``) for pilot selection: no
    run trains on them, so a pilot can choose settings without touching the reported split."""
    validate_on: Literal["val", "pilot"] = "val"
    """Validate on the held-out episodes (``val``) or on the pilot slice (``pilot``, needs
    ``pilot_episodes``)."""
    num_workers: int = 2
    """DataLoader worker processes (0 = load in the main process)."""
    prefetch_factor: int = 4
    """Batches each worker prepares ahead (ignored with 0 workers)."""
    tokenizer_path: str | None = None
    """A local pretrained tokenizer directory (e.g. pythia's); None = train a word-level one on
    the labelled training episodes' annotations."""
    min_frequency: int = 1
    """Words seen fewer times in the labelled training annotations map to <unk>."""
    max_vocab: int | None = None
    """Vocabulary bound including the 5 special tokens (None = no bound)."""

    def __post_init__(self) -> None:
        _positive(self, "loader", "window", "batch_size", "prefetch_factor", "min_frequency")
        if self.stride is not None and self.stride < 1:
            raise TrainError(f"loader.stride must be >= 1 frame or None, got {self.stride}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainError(f"loader.val_fraction must be in [0, 1), got {self.val_fraction}.")
        if self.num_workers < 0:
            raise TrainError(f"loader.num_workers must be >= 0, got {self.num_workers}.")
        if self.unlabelled_batch_size is not None and self.unlabelled_batch_size < 1:
            raise TrainError("loader.unlabelled_batch_size must be >= 1 window or None (= "
                             f"batch_size), got {self.unlabelled_batch_size}.")
        if self.pilot_episodes < 0:
            raise TrainError(f"loader.pilot_episodes must be >= 0, got {self.pilot_episodes}.")
        if self.validate_on not in ("val", "pilot"):
            raise TrainError(f"loader.validate_on must be 'val' or 'pilot', got {self.validate_on!r}.")
        if self.validate_on == "pilot" and not self.pilot_episodes:
            raise TrainError("loader.validate_on is 'pilot' but loader.pilot_episodes is 0; set "
                             "loader.pilot_episodes to the size of the pilot slice.")

    @property
    def unlabelled_batch(self) -> int:
        """The unlabelled (and pseudo-labelled) batch size in windows."""
        return self.unlabelled_batch_size or self.batch_size


@dataclass
class OptimConfig:
    """AdamW and gradient clipping."""

    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases, norms and embeddings)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    grad_clip_encoder: float = 0.0
    """Clip the narrating encoder's own gradient norm to this before the global clip (0 = no
    separate clip): keeps a large BYOG gradient from crowding out grounding in the encoder."""
    grad_clip_predictor: float = 0.0
    """Clip the predictor's own gradient norm to this before the global clip (0 = none)."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise TrainError(f"optim.lr must be > 0, got {self.lr}.")
        if min(self.weight_decay, self.grad_clip, self.grad_clip_encoder,
               self.grad_clip_predictor) < 0:
            raise TrainError("optim.weight_decay, optim.grad_clip, optim.grad_clip_encoder and "
                             "optim.grad_clip_predictor must be >= 0.")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise TrainError(f"optim.beta1/beta2 must be in [0, 1), got {self.beta1}, {self.beta2}.")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: linear warm-up, then a decay to ``min_lr_ratio * lr``."""

    warmup_steps: int = 50
    """Steps of linear warm-up from 0."""
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    """Shape of the decay after warm-up."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    total_steps: int | None = None
    """Horizon of the decay (None = the run's ``steps``); set it to stop early on purpose and
    resume later on the same schedule."""

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise TrainError(f"schedule.warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.decay not in ("cosine", "linear", "constant"):
            raise TrainError(f"schedule.decay must be cosine, linear or constant, got {self.decay!r}.")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TrainError(f"schedule.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}.")
        if self.total_steps is not None and self.total_steps < 1:
            raise TrainError(f"schedule.total_steps must be >= 1 or None, got {self.total_steps}.")


@dataclass
class LoggingConfig:
    """Progress bar, TensorBoard, validation and the end-of-run plots."""

    log_every: int = 10
    """Write training scalars every this many steps."""
    eval_every: int = 200
    """Validate every this many steps (and always at the end); 0 = only at the end."""
    val_batches: int = 4
    """Batches the validation windows are split into (0 = no validation); the metrics pool
    over all of them, so this changes memory per pass, never what is measured."""
    val_windows: int | None = 128
    """Validation windows: this many spaced evenly over every held-out episode, in a fixed
    order (None = every held-out window). The same windows whatever the batch size, so runs
    with different batches are measured on the same frames."""
    examples: int = 1
    """Validation windows whose narration is printed beside the annotations."""
    example_lines: int = 8
    """At most this many frames printed per example window."""
    tolerance: int = 2
    """Event timing tolerance in frames for event precision/recall/F1."""
    tensorboard: bool = True
    """Write TensorBoard event files under RUNDIR/tb."""
    progress: bool = True
    """Show a tqdm progress bar."""
    plots: bool = True
    """Write PNG plots of the curves under RUNDIR/plots at the end."""

    def __post_init__(self) -> None:
        _positive(self, "logging", "log_every")
        for name in ("eval_every", "val_batches", "examples", "example_lines", "tolerance"):
            if getattr(self, name) < 0:
                raise TrainError(f"logging.{name} must be >= 0, got {getattr(self, name)}.")
        if self.val_windows is not None and self.val_windows < 1:
            raise TrainError(f"logging.val_windows must be >= 1 or None (every held-out window), "
                             f"got {self.val_windows}.")


@dataclass
class CheckpointConfig:
    """Atomic checkpoints under RUNDIR/checkpoints."""

    every: int = 500
    """Save every this many steps (and always at the end); 0 = only at the end."""
    keep_last: int = 3
    """Keep the newest K checkpoints, delete older ones."""

    def __post_init__(self) -> None:
        if self.every < 0:
            raise TrainError(f"checkpoint.every must be >= 0, got {self.every}.")
        _positive(self, "checkpoint", "keep_last")


@dataclass
class ObsFitConfig:
    """Fitting the observation encoder's frozen parts (vqvae, units) before training."""

    vqvae_steps: int | None = None
    """Overrides the VQ-VAE's own fit budget (``--model.obs.fit_steps``, 500); None = its own."""
    units_max_frames: int | None = None
    """Overrides the units encoder's own fit budget (``--model.obs.fit_max_frames``, 20,000);
    None = its own."""
    batch_size: int = 32
    """Windows per fitting batch."""
    window: int | None = None
    """Frames per fitting window (None: the loader's window, which the narrator trains and
    narrates on, so clip-level features are fitted on clips like the ones they will see)."""

    def __post_init__(self) -> None:
        _positive(self, "obs_fit", "batch_size", *(("window",) if self.window is not None else ()))
        for name in ("vqvae_steps", "units_max_frames"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise TrainError(f"obs_fit.{name} must be >= 1 or None (the encoder's own budget), "
                                 f"got {getattr(self, name)}.")


@dataclass
class TrainConfig:
    """``python -m agents.training``: train a BYOG agent on a collected dataset."""

    data: str = ""
    """Dataset directory written by collect/rollout.py. (required)"""
    out: str = ""
    """Run directory: config.yaml, checkpoints/, tb/, plots/, summary.json. (required)"""
    steps: int = 1000
    """Optimizer steps to train for (in total, counting resumed ones)."""
    size: Literal["tiny", "small", "base"] = "tiny"
    """Model size (picks the model defaults; see agents.config)."""
    preset: str = "byog"
    """Objective preset (picks the model defaults): byog, captioner, byog-parallel, byog-lora,
    byog-xattn, or a plugin's ``module:name`` (``python -m agents list`` shows every preset)."""
    resume: bool = False
    """Continue from the newest checkpoint in --out (same config, same dataset)."""
    seed: int = 0
    """Seed of the model's initialisation, the data order and every other RNG."""
    label_fraction: float = 1.0
    """Share of training episodes whose annotations are used (grounding and tokenizer)."""
    label_seed: int = 0
    """Seed choosing the labelled training episodes."""
    pseudo_labels: bool = False
    """The unlabelled training episodes carry a teacher's pseudo-labels (the self-training
    captioner): each step adds a batch of ``loader.unlabelled_batch_size`` of their windows to
    the grounding loss, beside the true-labelled batch."""
    init_from: str | None = None
    """Start from a trained run's weights (RUNDIR or a checkpoint, e.g. a captioner's): every
    tensor it has that this model has (the encoder at least) is loaded, its tokenizer reused;
    the EMA target starts as that encoder. Optimizer and schedule start afresh."""
    device: str = "cpu"
    """Torch device (``cpu``, ``cuda``); under DDP each rank uses cuda:LOCAL_RANK."""
    threads: int = 0
    """torch threads per process (0 = the cores this process may use, ``os.sched_getaffinity``,
    shared out among the ranks of a DDP run; through the Python API 0 leaves torch as is)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Forward passes under ``torch.autocast`` in bf16 (CPU and GPU; weights, optimizer state
    and losses stay fp32) or plain fp32 (see agents.model.accel)."""
    compile: bool = False
    """``torch.compile`` the encoder's, observation encoder's and predictor's forward (the first
    steps pay the compilation; see agents.model.accel)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The agent (built from size and preset, then overridden)."""
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """Windows, split, DataLoader."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Logging and validation."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpointing."""
    obs_fit: ObsFitConfig = field(default_factory=ObsFitConfig)
    """Fitting vqvae/units encoders before training."""

    @property
    def fit_window(self) -> int:
        """Frames per window the observation encoder is fitted on (``obs_fit.window``, else the
        loader's)."""
        return self.obs_fit.window or self.loader.window

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise TrainError(f"steps must be >= 1, got {self.steps}.")
        if self.size not in SIZES:
            raise TrainError(_unknown("size", self.size, SIZES))
        _check_preset(self.preset)
        if not 0.0 <= self.label_fraction <= 1.0:
            raise TrainError(f"label_fraction must be in [0, 1], got {self.label_fraction}.")
        if self.threads < 0:
            raise TrainError(f"threads must be >= 0, got {self.threads}.")
        # the narrator's context is the window it trains on: one number, saved with the weights
        # (the trainer writes loader.window into the agent's config; set here it must agree)
        if self.model.window is not None and self.model.window != self.loader.window:
            raise TrainError(f"model.window {self.model.window} differs from loader.window "
                             f"{self.loader.window}: the narrator's context is the window it trains "
                             "on; set --loader.window alone.")
        if self.label_fraction == 0 and self.model.loss.w_byog == 0:
            raise TrainError(
                "label_fraction is 0 and w_byog is 0 (captioner): nothing would be trained; "
                "label some episodes or use a BYOG preset."
            )

    def check_paths(self) -> None:
        """The two required paths are given (tyro cannot require them with a YAML default)."""
        if not self.data:
            raise TrainError("No dataset given; pass --data DIR (a directory written by collect/rollout.py).")
        if not self.out:
            raise TrainError("No run directory given; pass --out RUNDIR.")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise TrainError(f"--out {self.out} is a file; pass a directory for the run "
                             "(it is created if missing).")
        out, data = Path(self.out).resolve(), Path(self.data).resolve()
        if out == data or data in out.parents or (out / "meta" / "info.json").is_file():
            raise TrainError(f"--out {self.out} is {'inside ' if out != data else ''}a dataset "
                             f"directory{' (--data)' if data in (out, *out.parents) else ''}; the "
                             "run's files would mix with its episodes: choose another --out.")


_SECTIONS: dict[str, type] = {"loader": LoaderConfig, "optim": OptimConfig,
                              "schedule": ScheduleConfig, "logging": LoggingConfig,
                              "checkpoint": CheckpointConfig, "obs_fit": ObsFitConfig}


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A YAML/JSON-able dict of ``cfg``; :func:`config_from_dict` inverts it."""
    d = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
         if f.name != "model" and f.name not in _SECTIONS}
    for name in _SECTIONS:
        d[name] = dataclasses.asdict(getattr(cfg, name))
    d["model"] = cfg.model.to_dict()
    return d


def config_from_dict(d: dict[str, Any], *, size: str | None = None,
                     preset: str | None = None) -> TrainConfig:
    """Build a config from a (partial) nested dict, e.g. a YAML file's contents.

    Model fields not in ``d["model"]`` come from ``make_model_config(size, preset)``; unknown
    keys anywhere are an error naming them.

    Raises:
        TrainError: unknown keys, an unknown size/preset or an invalid value.
    """
    d = dict(d or {})
    _check_keys(TrainConfig, d, "the config")
    size = size or d.get("size") or "tiny"
    preset = preset or d.get("preset") or "byog"
    if size not in SIZES:
        raise TrainError(_unknown("size", size, SIZES))
    _check_preset(preset)
    d["size"], d["preset"] = size, preset
    model = dict(d.pop("model", None) or {})
    model.pop("size", None), model.pop("preset", None)
    _check_types(ModelConfig, model, "model")
    try:
        d["model"] = make_model_config(size, preset, **model)
    except ValueError as e:
        raise TrainError(f"Bad model config: {e}") from None
    for name, cls in _SECTIONS.items():
        section = dict(d.get(name) or {})
        _check_keys(cls, section, name)
        _check_types(cls, section, name)
        d[name] = cls(**section)
    _check_types(TrainConfig, {k: v for k, v in d.items() if k != "model" and k not in _SECTIONS},
                 "")
    return TrainConfig(**d)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (a clear error for a missing or malformed one)."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"Config file {path} does not exist; pass an existing YAML file to --config.")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise TrainError(f"Config file {path} is not valid YAML ({e}).") from None
    if not isinstance(d, dict):
        raise TrainError(f"Config file {path} must hold a mapping of fields, got {type(d).__name__}.")
    return d


def save_yaml(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (reloadable with ``--config``)."""
    path = Path(path)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Resolve the config from defaults, ``--size/--preset``, ``--config FILE`` and flags.

    Raises:
        TrainError: bad YAML, unknown keys, unknown size/preset, invalid values.
        SystemExit: tyro's exit (code 2) for an unknown flag or a malformed value; 0 for --help.
    """
    import tyro

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--size", default=None)
    pre.add_argument("--preset", default=None)
    # byog-lora cannot even be built without its base checkpoint, so read that one early too
    pre.add_argument("--model.lm.pretrained_path", "--model.lm.pretrained-path", dest="lm_path",
                     default=None)
    known, rest = pre.parse_known_args(argv)
    base = load_yaml(known.config) if known.config else {}
    if known.lm_path:
        model = base.setdefault("model", {}) or {}
        model.setdefault("lm", {})["pretrained_path"] = known.lm_path
        base["model"] = model
        rest = [*rest, f"--model.lm.pretrained_path={known.lm_path}"]
    # the obs kind picks the options the other --model.obs flags name; old flat names map on
    base, rest = obs_cli_layer(base, rest)
    default = config_from_dict(base, size=known.size, preset=known.preset)
    rest = translate_flat_flags(rest, default.model.obs.kind)
    # size/preset were consumed above; hand them back so tyro records them (choices checked)
    rest = rest + [f"--size={default.size}", f"--preset={default.preset}"]
    return tyro.cli(TrainConfig, args=rest, default=default,
                    description="Train a BYOG agent on a collected dataset "
                                "(--config FILE.yaml is read before the flags; "
                                "--model.obs.kind KIND picks the observation encoder whose "
                                "options are listed: python -m agents.obs list).")


def _positive(obj: Any, where: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise TrainError(f"{where}.{name} must be >= 1, got {getattr(obj, name)}.")


def _check_preset(name: str) -> None:
    """A built-in preset or a plugin's ``module:name`` (imported here, so it registers itself);
    anything else is one error listing the known presets."""
    try:
        PRESETS[name]
    except ModelError as e:
        raise TrainError(str(e)) from None


def _unknown(what: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    near = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.{hint}"


def _check_keys(cls: type, d: dict[str, Any], where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    for key in d:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise TrainError(f"Unknown option {key!r} in {where}; known: {', '.join(known)}.{hint}")


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's annotation (scalars, Literals, unions; other
    annotations are left to the dataclass)."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    return True


def _check_types(cls: type, d: dict[str, Any], where: str) -> None:
    """A YAML value of the wrong type (``lr: fast``) is one error naming the field, the value
    and the type wanted, not a TypeError from deep inside ``__post_init__``."""
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that does not resolve: leave it to cls
        return
    for key, value in d.items():
        hint = hints.get(key)
        name = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            _check_types(hint, value, name)  # a nested section (model.lm, model.loss, ...)
        elif hint is not None and not _type_ok(value, hint):
            wanted = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            article = "an" if wanted[:1] in "aeiou" else "a"
            raise TrainError(f"Config value {name}: {value!r} is not {article} {wanted}; fix it "
                             f"in the YAML file (e.g. {name}: {_example(hint)}).")


def _example(hint: Any) -> str:
    import typing

    for h in (hint, *typing.get_args(hint)):
        if h is float:
            return "0.001"
        if h is int:
            return "4"
        if h is bool:
            return "true"
        if typing.get_origin(h) is typing.Literal:
            return str(typing.get_args(h)[0])
    return "..."
