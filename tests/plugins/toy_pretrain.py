"""A pretraining kind and an arm that uses it, registered from outside the experiments package
(issue 23's recipe: one new file, zero edits): ``latent-narrator`` trains the agent with the
trainer's ``byog-latent`` preset, narrates (its held-out narration F1 is measured) and learns
from the annotations (a study runs it at each label fraction). The arm ``latent-hidden`` clones
from its hidden states, as the built-in ``byog`` arm does from BYOG's."""
from __future__ import annotations

from experiments.arms import ARMS, ArmSpec, register_arm
from experiments.pretrain import PRETRAIN_KINDS, PretrainKind

PRETRAIN_KINDS.register("latent-narrator", PretrainKind("byog-latent", narrates=True, label_sensitive=True))
register_arm("latent-hidden", ArmSpec(featurizer=ARMS["byog"].featurizer, pretrain="latent-narrator",
                                      finetunable=True,
                                      description="frozen latent-narrator hidden states (test plugin)"))
