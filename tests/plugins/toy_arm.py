"""A toy experiment arm registered from outside the experiments package (issue 11's recipe):
the mean colour of the frame, trained nowhere. Named ``plugins.toy_arm:toy``."""
from __future__ import annotations

from experiments.arms import ArmContext, ArmSpec, register_arm
from experiments.features import FeatureState, Featurizer


class MeanColour(Featurizer):
    """frames [B, T, H, W, 3] -> mean RGB in [0, 1]: [B, T, 3]."""

    episode_level = True

    def __init__(self, context: int) -> None:
        super().__init__()
        self.out_dim, self.context = 3, context

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        return frames.float().mean((-3, -2)) / 255.0

    def step(self, state, frame, *, annotations=None, infos=None):
        return frame.float().mean((-3, -2)) / 255.0, FeatureState()


def make_featurizer(ctx: ArmContext) -> MeanColour:
    return MeanColour(ctx.context)


register_arm("toy", ArmSpec(featurizer="plugins.toy_arm:make_featurizer",
                            description="mean colour of the frame (test plugin)"))
