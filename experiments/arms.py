"""The experiment arms: one registry of what the transfer study compares.

An arm is a name and an :class:`ArmSpec`: which encoder it needs pretrained (``pretrain``), a
``featurizer`` factory (called with an :class:`ArmContext`; it receives the checkpoint, the
dataset and the settings, and builds a :class:`~experiments.features.Featurizer`, which itself
reads frames and, if it says so, the per-frame annotations / infos), and whether its encoder is
trained on the actions. Adding an arm is one :func:`register_arm` call in any module::

    # mypkg/arms.py
    from experiments.arms import ArmSpec, register_arm
    register_arm("mean-colour", ArmSpec(featurizer="mypkg.arms:make_featurizer",
                                        description="mean RGB of the frame"))

and naming it ``mypkg.arms:mean-colour`` (module, colon, name) anywhere an arm is accepted
(``--encoder``, ``--arms``): the module is imported first, in whichever process needs it
(spawned pool workers too), as gymnasium's string entry points are. ``python -m
experiments.arms`` lists the arms.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byog_core.registry import Registry
from experiments.errors import ExperimentError

#: Frames per narration block when neither the config nor a narrator checkpoint says (the
#: trainer's default window).
DEFAULT_CONTEXT = 16


@dataclass
class ArmContext:
    """What an arm's featurizer factory may use."""

    checkpoint: Path | None
    """The pretrained encoder (a run directory, or a fitted obs-encoder directory); None when
    the arm needs no pretraining."""
    data: Path
    """The action-labelled dataset (BYOG-free arms may read its metadata)."""
    env: str
    """Environment short name of the dataset."""
    env_kwargs: dict[str, Any]
    """The options the dataset was collected with (view, size)."""
    size: str = "tiny"
    """Model size of the arms built from scratch (random narrator, scratch CNN)."""
    pool: str = "last"
    """Hidden-state pooling over a frame's slot."""
    context: int = 16  # = DEFAULT_CONTEXT
    """Frames per narration block (``action_transfer.narration_context``: the narrator's
    training window when it has one)."""
    text_decay: float = 0.5
    """Decay of the text featurizer's bag of earlier slots."""
    sentences: list[str] = field(default_factory=list)
    """Training sentences (the random narrator's tokenizer vocabulary)."""
    seed: int = 0
    """Seed of fresh weights (random narrator, scratch CNN)."""
    device: str = "cpu"
    """Torch device of the featurizer (:meth:`ArmSpec.build` moves what the factory built)."""


Factory = Callable[[ArmContext], Any]


@dataclass(frozen=True)
class ArmSpec:
    """One experiment arm."""

    featurizer: Factory | str
    """``ArmContext -> Featurizer``, or a ``"module:function"`` entry point to it."""
    pretrain: str | None = None
    """Encoder kind pretrained for this arm (``byog``, ``captioner``, ``vqvae``, ``units``;
    :mod:`experiments.pretrain`), or None."""
    trains_encoder: bool = False
    """The featurizer's trained part is optimised with the head on the actions."""
    finetunable: bool = False
    """``--mode finetune`` may train its (pretrained) encoder with the head at lr / 3."""
    uses_mission: bool = True
    """Feed the mission text to the head when the dataset has one (False: the bias-only floor)."""
    live: bool = True
    """The featurizer can run live (one frame a step)."""
    description: str = ""
    """One line for the listing."""

    def build(self, ctx: ArmContext) -> Any:
        """The arm's featurizer, on ``ctx.device``."""
        fn = self.featurizer
        if isinstance(fn, str):
            mod, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(mod), attr)
        # a factory may build on the CPU (a plugin that ignores ctx.device): everything the
        # featurizer registers moves here, once (fresh weights are drawn the same on every device)
        return fn(ctx).to(ctx.device)


ARMS: Registry[ArmSpec] = Registry(
    "arm", error=ExperimentError,
    hint="Register one with experiments.arms.register_arm (docs/architecture.md, \"How to add an arm\").")
"""Arm name -> spec (filled by :func:`register_arm`; the built-in arms below)."""


def register_arm(name: str, spec: ArmSpec, *, replace: bool = False) -> ArmSpec:
    """Register ``spec`` as ``name`` (an existing name is an error unless ``replace``)."""
    if ":" in name:
        raise ExperimentError(f"Arm names cannot contain ':' (got {name!r}); the colon separates a module.")
    if name in ARMS and not replace and ARMS[name] != spec:
        raise ExperimentError(f"Arm {name!r} is already registered; pick another name.")
    return ARMS.register(name, spec, overwrite=True)


def resolve_arm(name: str) -> tuple[str, ArmSpec]:
    """``(short name, spec)`` of ``name`` or ``module:name`` (the module is imported first)."""
    short = ARMS.check(name).rpartition(":")[2]
    return short, ARMS[short]


def get_arm(name: str) -> ArmSpec:
    """The spec of ``name`` (see :func:`resolve_arm`)."""
    return resolve_arm(name)[1]


def list_arms() -> list[tuple[str, ArmSpec]]:
    """Every registered arm, in registration order."""
    return [(name, ARMS[name]) for name in ARMS.registration_order()]


# ---------------------------------------------------------------------------- built-in factories
def _agent(ctx: ArmContext) -> Any:
    from agents.training import TrainError, load_agent

    if ctx.checkpoint is None:
        raise ExperimentError("This arm needs --checkpoint DIR (a pretrained BYOG/captioner run; "
                              "python -m experiments.run_all pretrains it).")
    try:
        # the whole agent, not only the parts a featurizer registers (live narration uses the rest)
        return load_agent(ctx.checkpoint, device=ctx.device)
    except TrainError as e:
        raise ExperimentError(f"{ctx.checkpoint} is not a BYOG checkpoint ({e}); pass a run "
                              "directory written by python -m agents.training.command.") from None


def _fresh_agent(ctx: ArmContext) -> Any:
    import torch

    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer

    torch.manual_seed(ctx.seed)  # drawn on the CPU, then moved: the same weights on every device
    return BYOGAgent(make_model_config(ctx.size, "byog"), train_tokenizer(ctx.sentences or [])).to(ctx.device)


def hidden_pretrained(ctx: ArmContext) -> Any:
    from experiments.features import BYOGFeaturizer

    return BYOGFeaturizer(_agent(ctx), pool=ctx.pool, context=ctx.context)


def hidden_random(ctx: ArmContext) -> Any:
    from experiments.features import BYOGFeaturizer

    agent = _agent(ctx) if ctx.checkpoint is not None else _fresh_agent(ctx)
    return BYOGFeaturizer(agent, pool=ctx.pool, context=ctx.context)


def scratch_cnn(ctx: ArmContext) -> Any:
    import torch

    from agents.config import make_model_config
    from agents.obs import build_obs_encoder
    from experiments.features import ObsFeaturizer

    torch.manual_seed(ctx.seed)
    return ObsFeaturizer(build_obs_encoder(make_model_config(ctx.size).obs), context=ctx.context)


def _fitted(kind: str) -> Factory:
    def build(ctx: ArmContext) -> Any:
        from agents.obs import build_obs_encoder
        from agents.obs.config import obs_config_class
        from experiments.features import ObsFeaturizer

        if ctx.checkpoint is None:
            raise ExperimentError(f"Arm {kind!r} needs --checkpoint DIR (the fitted observation encoder).")
        return ObsFeaturizer(build_obs_encoder(obs_config_class(kind)(), fitted_path=ctx.checkpoint),
                             context=ctx.context)
    return build


def hidden_plus_scratch(ctx: ArmContext) -> Any:
    from experiments.features import ConcatFeaturizer

    return ConcatFeaturizer(hidden_pretrained(ctx), scratch_cnn(ctx))


def _text(source: Callable[[ArmContext], Any]) -> Factory:
    def build(ctx: ArmContext) -> Any:
        from experiments.features import TextFeaturizer

        return TextFeaturizer(source(ctx), decay=ctx.text_decay, context=ctx.context)
    return build


def _annotations(ctx: ArmContext) -> Any:
    from experiments.features import AnnotationSource

    return AnnotationSource()


def _shuffled_annotations(ctx: ArmContext) -> Any:
    from experiments.features import AnnotationSource, ShuffledSource

    return ShuffledSource(AnnotationSource())


def _narrator(shuffle: bool = False, fresh: bool = False) -> Callable[[ArmContext], Any]:
    def source(ctx: ArmContext) -> Any:
        from experiments.features import NarratorSource, ShuffledSource

        src = NarratorSource(_fresh_agent(ctx) if fresh else _agent(ctx))
        return ShuffledSource(src) if shuffle else src
    return source


def symbolic(ctx: ArmContext) -> Any:
    import numpy as np

    from experiments.features import SymbolicFeaturizer
    from experiments.oracles import symbolic_fn

    fn = symbolic_fn(ctx.env)  # its width: one probe env
    from experiments.live import make_env

    env = make_env(ctx.env, None, ctx.env_kwargs)
    try:
        env.reset(seed=0)
        dim = int(np.asarray(fn(env)).size)
    finally:
        env.close()
    return SymbolicFeaturizer(dim, context=ctx.context)


def constant(ctx: ArmContext) -> Any:
    from experiments.features import ConstantFeaturizer

    return ConstantFeaturizer(context=ctx.context)


for _name, _spec in {
    "prior": ArmSpec(constant, uses_mission=False, description="bias-only head: the action prior (floor)"),
    "oracle-text": ArmSpec(_text(_annotations), description="text featurizer on the ground-truth annotations "
                           "(positive control)"),
    "byog-text": ArmSpec(_text(_narrator()), pretrain="byog", description="text featurizer on BYOG's greedy narration"),
    "captioner-text": ArmSpec(_text(_narrator()), pretrain="captioner",
                              description="text featurizer on the captioner's greedy narration"),
    "random-text": ArmSpec(_text(_narrator(fresh=True)), description="text featurizer on a random-init "
                           "narrator's greedy narration"),
    "shuffled-oracle-text": ArmSpec(_text(_shuffled_annotations), description="the annotation text shuffled "
                                    "across episodes (negative control: equivalent to random-text)"),
    "shuffled-text": ArmSpec(_text(_narrator(shuffle=True)), pretrain="byog",
                             description="BYOG narration shuffled across episodes (alignment diagnostic: "
                             "byog-text − shuffled-text)"),
    "oracle-symbolic": ArmSpec(symbolic, description="symbolic state (BabyAI egocentric grid; Crafter "
                               "semantic map + inventory)"),
    "byog": ArmSpec(hidden_pretrained, pretrain="byog", finetunable=True,
                    description="BYOG encoder hidden states"),
    "captioner": ArmSpec(hidden_pretrained, pretrain="captioner", finetunable=True,
                         description="captioner (w_byog = 0) hidden states"),
    "random": ArmSpec(hidden_random, finetunable=True, description="random-init encoder hidden states (frozen floor)"),
    "scratch": ArmSpec(scratch_cnn, trains_encoder=True, description="CNN trained on the actions at the head's lr "
                       "(pixel control)"),
    "vqvae": ArmSpec(_fitted("vqvae"), pretrain="vqvae", description="fitted VQ-VAE codes"),
    "units": ArmSpec(_fitted("units"), pretrain="units", description="fitted k-means units"),
    "byog-hidden+scratch": ArmSpec(hidden_plus_scratch, pretrain="byog", trains_encoder=True,
                                   description="frozen BYOG hidden states + a CNN trained on the actions"),
}.items():
    register_arm(_name, _spec)


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.arms``: the registered arms, one a line."""
    import argparse

    from byog_core.cli import run_cli

    parser = argparse.ArgumentParser(prog="python -m experiments.arms",
                                     description="List the registered arms of the transfer study.")
    return run_cli(lambda: _list_arms(parser.parse_args(argv)))


def _list_arms(_args: object) -> int:
    for name, spec in list_arms():
        tags = [f"pretrain={spec.pretrain}" if spec.pretrain else "no pretraining"]
        if spec.trains_encoder:
            tags.append("trains encoder")
        print(f"{name:22s} {spec.description} ({', '.join(tags)})")
    return 0


__all__ = ["ARMS", "ArmContext", "ArmSpec", "get_arm", "list_arms", "register_arm", "resolve_arm"]

if __name__ == "__main__":
    sys.exit(main())
