"""Atomic, durable training checkpoints and dataset-compatibility checks (``load_agent``, which
builds the agent, lives in :mod:`agents.training.loading` so this module never imports the model).

Layout of one checkpoint ``RUNDIR/checkpoints/step_000500/``::

    agent/                     BYOGAgent.save_pretrained (see agents/model/hf.py for its layout)
    obs_encoder/               the fitted vqvae/units encoder (encoder.save), when the kind has one
    trainer_state.safetensors  optimizer moments, RNG states ... (every tensor and array)
    trainer_state.json         the rest of the trainer state (step counters, sampler position),
                               with references into the safetensors file: no pickle anywhere
    meta.json                  step, the resolved TrainConfig, the dataset identity

It is written under ``checkpoints/.tmp-step_000500``, every file and directory fsynced, and
renamed into place (the parent directory fsynced after), so neither a kill nor a power loss
leaves a half-written checkpoint that looks complete; only the newest ``keep_last`` are kept.
Files get the modes the umask gives (safetensors' own save writes 0600). A checkpoint that is
corrupt anyway (a disk error, a hand-edited file) is detected from its headers and sizes: a run
directory falls back to its newest intact checkpoint with a warning; a corrupt checkpoint named
explicitly is refused. Old checkpoints with a pickled ``trainer_state.pt`` still load (numpy
and torch types only, never arbitrary pickled objects), with a warning.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.model.weights import check_dir
from agents.training.config import TrainError
from byog_core.errors import Interrupted
from collect.durable import current_umask, fsync_path, make_durable  # noqa: F401  (re-exported)

CKPT_DIR = "checkpoints"
PREFIX = "step_"
META = "meta.json"
STATE = "trainer_state.pt"  # the pickled state of checkpoints written before the JSON one
STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
AGENT = "agent"
OBS = "obs_encoder"
# test-only fault injection: "ckpt-tmp:STEP" kills this process with SIGKILL inside the
# temporary directory of checkpoint STEP, after its files are written and before the rename
FAULT_ENV = "BYOG_FAULT"


def rng_state() -> dict[str, Any]:
    """The torch, numpy and python RNG states of this process."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(run_dir: str | Path, step: int, *, agent: Any, trainer_state: dict[str, Any],
                    meta: dict[str, Any], obs_encoder: Any = None, keep_last: int = 3) -> Path:
    """Write a checkpoint atomically and durably, and prune old ones.

    Args:
        run_dir: The run directory.
        step: Optimizer steps done.
        agent: The (unwrapped) BYOGAgent.
        trainer_state: Optimizer/scheduler/RNG/sampler state (tensors, arrays, tuples, dicts
            and JSON scalars; see :func:`save_state`).
        meta: JSON-able metadata (config, dataset identity, ...); ``step`` is added.
        obs_encoder: A fitted vqvae/units encoder to save beside the weights, or None.
        keep_last: Number of checkpoints to keep.

    Returns:
        The checkpoint directory.
    """
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{final.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    agent.save_pretrained(tmp / AGENT)
    if (tmp / AGENT / "config.json").is_file() and hasattr(agent, "cfg"):
        from agents.model.hf import update_card

        update_card(agent, tmp / AGENT, trained_on=meta.get("dataset"),
                    metrics=_last_val_metrics(Path(run_dir)), train_config=meta.get("config"))
    if obs_encoder is not None and hasattr(obs_encoder, "save"):
        obs_encoder.save(tmp / OBS)
    save_state(trainer_state, tmp)
    (tmp / META).write_text(json.dumps({**meta, "step": int(step)}, indent=2, default=str))
    make_durable(tmp)
    _maybe_fault("ckpt-tmp", step)
    if final.exists():  # re-saving the same step (e.g. the end right after a periodic save)
        old = root / f".old-{final.name}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    fsync_path(root)
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        # renamed out of the listing first: a kill during the delete leaves a hidden .old-
        # directory (removed at the next save), never a half-deleted checkpoint that still
        # looks complete (meta.json outlived its weights)
        gone = root / f".old-{stale.name}"
        if gone.exists():
            shutil.rmtree(gone)
        os.replace(stale, gone)
        shutil.rmtree(gone)
    for left in root.glob(f".old-{PREFIX}*"):  # an earlier save's, killed mid-delete
        shutil.rmtree(left)
    return final


def _last_val_metrics(run: Path) -> dict[str, float]:
    """The newest validation metrics in RUN/metrics.jsonl (for the model card), or {}."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        val = {k: v for k, v in rec.items() if k.startswith("val/")}
        if val:
            return {"step": rec.get("step"), **val}
    return {}


def _maybe_fault(point: str, step: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- trainer state
def save_state(state: dict[str, Any], directory: str | Path) -> None:
    """Write a trainer state without pickle: tensors and arrays into ``trainer_state.safetensors``,
    the structure (dicts, lists, tuples, scalars, strings) into ``trainer_state.json``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = x.detach().cpu().contiguous().clone()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            key = f"t{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(x).copy())
            return {"__ndarray__": key}
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v) for k, v in x.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in x.items()]}  # int keys (optimizer)
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"Cannot store a {type(x).__name__} in a trainer state (no pickle); "
                        "convert it to tensors, arrays or JSON values.")

    structure = enc(state)
    directory = Path(directory)
    save_file(tensors, str(directory / STATE_TENSORS))
    (directory / STATE_JSON).write_text(json.dumps(structure))


def _decode_state(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__tensor__" in x:
            return tensors[x["__tensor__"]]
        if "__ndarray__" in x:
            return tensors[x["__ndarray__"]].numpy()
        if "__tuple__" in x:
            return tuple(dec(v) for v in x["__tuple__"])
        if "__items__" in x:
            return {dec(k): dec(v) for k, v in x["__items__"]}
        return {k: dec(v) for k, v in x.items()}

    return dec(structure)


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's optimizer/scheduler/RNG/sampler state (no code runs while reading it).

    Raises:
        TrainError: the state is missing or unreadable.
    """
    from safetensors.torch import load_file

    ckpt = Path(ckpt)
    if (ckpt / STATE_JSON).is_file():
        try:
            tensors = load_file(str(ckpt / STATE_TENSORS))
            return _decode_state(json.loads((ckpt / STATE_JSON).read_text()), tensors)
        except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ValueError, KeyError
            raise TrainError(f"Checkpoint {ckpt} is corrupt: its trainer state cannot be read "
                             f"({e}); resume from an older checkpoint.") from None
    if (ckpt / STATE).is_file():
        warnings.warn(f"Checkpoint {ckpt} holds a pickled {STATE} (written before "
                      f"{STATE_JSON}); reading it with torch.load(weights_only=True) and numpy "
                      "arrays allowed. The next checkpoint is written without pickle.",
                      UserWarning, stacklevel=2)
        from numpy._core.multiarray import _reconstruct

        safe = [_reconstruct, np.ndarray, np.dtype, type(np.dtype("uint32"))]
        try:
            with torch.serialization.safe_globals(safe):
                return torch.load(ckpt / STATE, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - UnpicklingError, EOFError, RuntimeError ...
            raise TrainError(f"Checkpoint {ckpt} has an unreadable {STATE} ({type(e).__name__}); "
                             "resume from another checkpoint.") from None
    raise TrainError(f"Checkpoint {ckpt} has no trainer state ({STATE_JSON}); resume from "
                     "another checkpoint or start a new run.")


# ----------------------------------------------------------------------------- finding checkpoints
def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run (renamed into place), oldest first; not checked for
    corruption (see :func:`intact_checkpoint`)."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX) and (p / META).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None (corrupt or not; see
    :func:`intact_checkpoint`)."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _safetensors_problem(f: Path) -> str | None:
    """Why a safetensors file is unreadable (truncated or garbled), or None; reads only its
    header and size."""
    from agents.model.weights import header_problem

    return header_problem(f)[1]


def checkpoint_problem(ckpt: str | Path, *, resume: bool = False) -> str | None:
    """Why a checkpoint directory cannot be used (missing or corrupt parts), or None if intact.

    Checks that meta.json and the agent's config parse and that every safetensors file's size
    matches its header (a truncated copy, a disk error); cheap: no weights are read. The
    trainer state is required only to ``resume`` (loading the agent does not read it).
    """
    ckpt = Path(ckpt)
    agent = ckpt / AGENT
    try:  # links out of the directory, FIFOs, devices: refused before anything is read
        check_dir(ckpt, what="Checkpoint", error=TrainError)
    except TrainError as e:
        return str(e).split(f"{ckpt}", 1)[-1].strip(" :;") or str(e)
    needed = [META, f"{AGENT}/model.safetensors"]
    if resume or (ckpt / STATE_JSON).is_file() or (ckpt / STATE_TENSORS).is_file():
        needed += [STATE] if (ckpt / STATE).is_file() else [STATE_JSON, STATE_TENSORS]
    needed.append(f"{AGENT}/config.json" if (agent / "config.json").is_file()
                  else f"{AGENT}/model_config.json")
    for rel in needed:
        if not (ckpt / rel).is_file():
            return f"{rel} is missing"
    for rel in (r for r in needed if r.endswith(".json")):
        try:
            json.loads((ckpt / rel).read_text())
        except (OSError, ValueError) as e:
            return f"{rel} cannot be read ({type(e).__name__})"
    for f in sorted(ckpt.rglob("*.safetensors")):
        why = _safetensors_problem(f)
        if why:
            return f"{f.relative_to(ckpt)} is {why}"
    return None


def intact_checkpoint(run_dir: str | Path, *, resume: bool = False) -> Path | None:
    """The newest intact checkpoint of a run (with its trainer state if ``resume``), or None.
    Newer corrupt ones are skipped with a warning naming each and the steps lost; they are
    left on disk (never deleted)."""
    bad: list[tuple[Path, str]] = []
    for ckpt in reversed(list_checkpoints(run_dir)):
        why = checkpoint_problem(ckpt, resume=resume)
        if why is None:
            break
        bad.append((ckpt, why))
    else:
        ckpt = None
    for b, why in bad:
        lost = _step(b) - (_step(ckpt) if ckpt is not None else 0)
        instead = f"using {ckpt.name} instead" if ckpt is not None else "no intact checkpoint left"
        warnings.warn(f"Checkpoint {b} is corrupt ({why}); {instead}: {lost} steps lost "
                      "(the corrupt files are left in place).", UserWarning, stacklevel=2)
    return ckpt


def _step(ckpt: Path) -> int:
    try:
        return int(ckpt.name[len(PREFIX):])
    except ValueError:
        return 0


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory (its newest intact checkpoint) or a checkpoint dir.

    Raises:
        TrainError: nothing loadable at ``path``, or a corrupt checkpoint named explicitly.
    """
    path = Path(path)
    if (path / META).is_file() and (path / AGENT).is_dir():
        why = checkpoint_problem(path)
        if why:
            raise TrainError(f"Checkpoint {path} is corrupt ({why}); pass its run directory to use "
                             "the newest intact checkpoint, or another checkpoint.")
        return path
    if (path / "model_config.json").is_file() or (path / "config.json").is_file():
        check_dir(path, what="Checkpoint", error=TrainError)
        for f in sorted(path.rglob("*.safetensors")):
            why = _safetensors_problem(f)
            if why:
                raise TrainError(f"Checkpoint {path}: {f.relative_to(path)} is {why}; the directory is "
                                 "damaged, use another checkpoint.")
        return path  # a bare save_pretrained directory
    latest = intact_checkpoint(path) if path.is_dir() else None
    if latest is None:
        what = "does not exist" if not path.exists() else (
            "holds only corrupt checkpoints" if list_checkpoints(path) else "holds no checkpoint")
        raise TrainError(
            f"{str(path)!r} {what}; pass a run directory written by `python -m agents.training` "
            f"(with {CKPT_DIR}/{PREFIX}NNNNNN/) or one of its checkpoint directories."
        )
    return latest


def read_meta(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's ``meta.json`` ({} for a bare save_pretrained directory)."""
    f = Path(ckpt) / META
    return json.loads(f.read_text()) if f.is_file() else {}


def load_weights(model: torch.nn.Module, ckpt: str | Path) -> None:
    """Load a checkpoint's agent weights into ``model`` strictly.

    Raises:
        TrainError: the file holds tensors the model lacks, lacks some it has, or has other
            shapes (a checkpoint of another model version or config).
    """
    from safetensors.torch import load_file

    f = Path(ckpt) / AGENT / "model.safetensors"
    saved = load_file(str(f))
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = sorted(k for k in set(own) & set(saved) if own[k].shape != saved[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{what} {keys[:4]}{' ...' if len(keys) > 4 else ''}" for what, keys in
                 (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes)) if keys]
        raise TrainError(f"Checkpoint {f} does not match the model ({'; '.join(parts)}); it was "
                         "written by another model version or config: start a new run.")
    model.load_state_dict(saved, strict=True)


def load_init_weights(agent: Any, ckpt: str | Path) -> list[str]:
    """Start ``agent`` from another run's checkpoint (``--init-from``, e.g. a trained
    captioner): every tensor of the encoder must be there with its shape; other tensors the
    checkpoint has (a predictor, a target) are loaded where this model has them, the rest keep
    their initialisation. The EMA target then starts as the loaded encoder. Returns the names
    left at their initialisation.

    Raises:
        TrainError: not a training checkpoint, or its encoder does not fit this model.
    """
    from safetensors import safe_open

    from agents.model.weights import tensor_shapes

    f = Path(ckpt) / AGENT / "model.safetensors"
    if not f.is_file():
        raise TrainError(f"--init-from {ckpt}: no {AGENT}/model.safetensors; pass a run directory "
                         "or checkpoint written by `python -m agents.training`.")
    # shapes from the header first: a file that does not fit is refused before any tensor is read
    saved = tensor_shapes(f, what="--init-from weights", error=TrainError)
    own = {k: tuple(v.shape) for k, v in agent.state_dict().items()}
    missing = sorted(k for k in own if k.startswith("encoder.") and k not in saved)
    shapes = sorted(k for k in own if k in saved and own[k] != saved[k])
    if missing or shapes:
        parts = [f"{what} {keys[:4]}{' ...' if len(keys) > 4 else ''}" for what, keys in
                 (("missing encoder tensors", missing), ("other shapes", shapes)) if keys]
        raise TrainError(f"--init-from {ckpt}: its weights do not fit this model ({'; '.join(parts)});"
                         " start from a run of the same size, obs encoder and text settings.")
    with safe_open(str(f), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in own if k in saved}
    agent.load_state_dict(tensors, strict=False)
    if getattr(agent, "target", None) is not None and not any(k.startswith("target.") for k in saved):
        agent.target.load_state_dict(agent.encoder.state_dict())
    return sorted(k for k in own if k not in saved)


def check_trained_env(agent: Any, env: Any, *, name: str | None = None) -> bool:
    """Warn when ``env`` is not the environment the agent was trained on (same frame size, so
    nothing else would notice); True when it is, or when the checkpoint does not say.

    Args:
        agent: An agent from :func:`load_agent` (``agent.metadata["dataset"]``) or one whose
            ``config.json`` recorded its training data (``agent.trained_on``).
        env: The gymnasium env about to be narrated.
        name: The short name the env was made from (``crafter``), compared too.
    """
    meta = getattr(agent, "metadata", None) or {}
    saved = (meta.get("dataset") or {})
    if not saved:
        saved = getattr(agent, "trained_on", None) or {}  # a save_pretrained dir's config.json
    trained = {saved.get("env_id"), saved.get("env")} - {None}
    if not trained:
        return True
    spec = getattr(env, "spec", None)
    now = {name, spec.id if spec is not None else None} - {None}
    if trained & now:
        return True
    shown = saved.get("env_id") or min(trained)
    warnings.warn(f"This agent was trained on env {shown!r} but narrates "
                  f"{(spec.id if spec is not None else name)!r}: its vocabulary and events come "
                  "from the training env, so expect little agreement (cross-domain use).",
                  UserWarning, stacklevel=2)
    return False


def check_compatible(saved: dict[str, Any], current: dict[str, Any], *, where: str) -> list[str]:
    """Check a checkpoint's dataset identity against a dataset's.

    Frame shape, format major version and (for the same environment) the vocabulary must agree;
    another environment with a compatible frame shape is allowed (cross-domain use) and comes
    back as a warning, as do a different action space or annotator version.

    Args:
        saved: The checkpoint's ``dataset`` identity.
        current: :func:`agents.training.data.dataset_identity` of the dataset at hand.
        where: The checkpoint's path (for the messages).

    Returns:
        The warnings (also issued with ``warnings.warn``).

    Raises:
        TrainError: an incompatible frame shape, format or vocabulary.
    """
    if list(saved.get("frame_shape") or []) != list(current.get("frame_shape") or []):
        raise TrainError(
            f"Checkpoint {where} was trained on frames of shape {saved.get('frame_shape')} but "
            f"this dataset has {current.get('frame_shape')}; use a dataset with the same frame "
            "size (re-collect or resize) or train a new model."
        )
    major = [str(x.get("format_version", "")).split(".")[0] for x in (saved, current)]
    if major[0] != major[1]:
        raise TrainError(f"Checkpoint {where} was trained on dataset format {saved.get('format_version')}, "
                         f"this dataset is {current.get('format_version')}; convert the dataset.")
    same_env = saved.get("env_id") == current.get("env_id")
    out: list[str] = []
    if same_env and saved.get("vocab_hash") and current.get("vocab_hash") \
            and saved["vocab_hash"] != current["vocab_hash"]:
        raise TrainError(
            f"Checkpoint {where} has vocabulary {saved['vocab_hash']} ({saved.get('vocab_size')} "
            f"tokens) but this dataset's labelled training annotations give {current['vocab_hash']} "
            f"({current.get('vocab_size')} tokens); resume on the dataset the run was trained on "
            "(same episodes, split and label_fraction) or start a new run."
        )
    if not same_env:
        out.append(f"Checkpoint {where} was trained on env {saved.get('env_id')!r}, this dataset is "
                   f"{current.get('env_id')!r} (same frame shape): cross-domain use, the checkpoint's "
                   "vocabulary is kept and unknown words map to <unk>.")
    elif saved.get("action_space") != current.get("action_space"):
        out.append(f"Checkpoint {where} was trained with another action space than this dataset's.")
    if same_env and saved.get("annotator_version") != current.get("annotator_version"):
        out.append(f"Checkpoint {where} used annotator {saved.get('annotator_version')}, this "
                   f"dataset {current.get('annotator_version')}.")
    for w in out:
        warnings.warn(w, stacklevel=2)
    return out


# ----------------------------------------------------------------------------- Ctrl-C
class TrainInterrupted(Interrupted):
    """Training stopped on Ctrl-C after saving a checkpoint (the CLI exits 130)."""

    def __init__(self, step: int, checkpoint: Path | None, out: str) -> None:
        where = f"saved checkpoint {checkpoint} at step {step}" if checkpoint else \
            f"stopped at step {step}"
        super().__init__(f"interrupted: {where}; continue with the same command plus --resume "
                         f"(--out {out}).")
        self.step, self.checkpoint = step, checkpoint


class InterruptGuard:
    """Turns the first Ctrl-C (SIGINT) into a request to stop at the next step boundary (so
    the checkpoint holds a consistent optimizer/scheduler/RNG state); a second Ctrl-C raises
    ``KeyboardInterrupt`` at once. Use as a context manager around the step loop."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C interrupts at once

    def __enter__(self) -> InterruptGuard:  # noqa: PYI034 - never subclassed
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self._old)

    def stop(self, info: Any = None) -> bool:
        """Whether to stop now; under DDP every rank stops at the same step (any rank's
        request counts)."""
        if info is not None and getattr(info, "active", False):
            import torch.distributed as dist

            flag = torch.tensor([1.0 if self.requested else 0.0])
            dist.all_reduce(flag)
            return bool(flag.item() > 0)
        return self.requested


def warn_unannotated(ds: Any, labelled: list[int], val: list[int]) -> list[str]:
    """Warn when the labelled training episodes or the validation episodes hold no annotation
    at all: grounding then learns nothing, and event F1 cannot be measured (it is reported as
    n/a, never as a vacuous 1.0). Returns the warnings."""
    def count(positions: list[int]) -> int:
        total = 0
        for pos in positions:
            n = ds.records[pos].get("num_annotations")
            if n is None:  # an index written before the count existed: read the column
                from agents.training.data import episode_annotations

                n = sum(len(f) for f in episode_annotations(ds, pos))
            total += int(n)
        return total

    out = []
    if labelled and count(labelled) == 0:
        out.append(f"Dataset {ds.path} has no annotations in its {len(labelled)} labelled "
                   "training episodes: the narration is grounded in nothing (only the BYOG "
                   "objective trains); collect with an annotated env or label more episodes.")
    if val and count(val) == 0:
        out.append(f"Dataset {ds.path} has no annotations in its {len(val)} validation "
                   "episodes: event F1 cannot be measured and is reported as n/a.")
    for w in out:
        warnings.warn(w, UserWarning, stacklevel=2)
    return out
