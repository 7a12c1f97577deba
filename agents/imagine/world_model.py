"""A world model over frame tokens, conditioned on the BYOG narrator: imagination in pictures.

A second training stage that reads a *frozen* agent (DESIGN.md, *Imagination*):

* **Frame tokens** (registry :data:`FRAME_TOKENS`): ``vqvae`` turns a frame into a grid of
  VQ-VAE codes (the agent's own VQ-VAE when its observation encoder is one, otherwise one fitted
  here on the dataset's frames; its decoder renders codes back to pixels); ``units`` turns a
  frame into ONE k-means unit id over downsampled pixels (the hidden-units note's forward model),
  whose picture is the unit's *centroid thumbnail*: the mean of the training frames assigned to
  it. Units are one id per frame, so a units world model can only ever show those thumbnails.
  ``grid`` (:mod:`agents.imagine.grid_tokens`) gives each tile of a grid world's frame (the env family's
  ``tile_size``) the id of its nearest k-means tile patch: nearly lossless by day on Crafter.
* **Condition** (registry :data:`CONDITIONS`): the BYOG encoder's state at frame t (the final
  hidden state of frame t's narration slot, so its narration is included) and the action taken
  at t; ``action`` / ``state`` / ``none`` drop one or both (the language ablation).
* **Model** (:class:`FrameTransformer`): a small bidirectional transformer over the grid
  positions of frame t+1. Position i's input is ``embed(code_t[i]) + embed(revealed_{t+1}[i])
  + pos[i]``, where ``revealed`` holds the frame-t+1 codes decoded so far and ``[MASK]``
  elsewhere; two condition tokens (state, action) are prepended. With a copy path
  (``copy``, :mod:`agents.imagine.copy_path`) each position may also copy frame t's code at itself or a
  neighbour, and a copied tile keeps its pixels (``copy_pixels``). The model is causal in time:
  frame t+1 is predicted from frame t and the narrator's state, which summarises frames <= t.
  Trained by masked-code cross-entropy (MaskGIT): a fraction ``full_mask_fraction`` of the
  samples has every position masked (what one-pass decoding sees), the rest a cosine-scheduled
  random ratio (what iterative decoding sees). Actions are dropped with probability
  ``action_dropout`` (replaced by a learned "no action" id), so a rollout without actions predicts
  under the action prior of the data rather than an unseen input.

Rollouts: :func:`imagine` (also ``BYOGAgent.imagine``) feeds each imagined frame back, narrated
by the agent, whose new state conditions the next step; it lives here, not in the CLI module
:mod:`agents.imagine.command`, so that ``agents.model.agent`` depends on this module only.

Decoding scheme (registry :data:`DECODERS`), chosen by measured quality per CPU second
---------------------------------------------------------------------------------------
``parallel`` (every position in one pass), ``maskgit`` (``decoding_steps`` passes, each keeping
the most confident predictions, cosine schedule) and ``autoregressive`` (raster order, one
position per pass: ``h*w`` passes) all run on the same trained model. ``parallel`` is the
default because it was as good for a fraction of the cost. Measured on the Crafter demo
(docs/results/crafter-imagination-cpu/: 8x8 code grid, 64 one-step predictions from real frames,
argmax, 1 CPU thread): code accuracy 0.604 / 0.604 / 0.605 / 0.607 and PSNR 20.44 / 20.46 /
20.46 / 20.47 dB for parallel / maskgit-4 / maskgit-8 / autoregressive, at 1.0 / 5.4 / 8.2 /
61 CPU ms per frame. Iterative decoding can only pay off where positions of the next frame are
strongly coupled given the condition (multi-modal futures sampled at temperature > 0); argmax
decoding of a mostly predictable next frame gains nothing from it here. On the sprite test env
one parallel pass already reaches the reconstruction ceiling.
"""
from __future__ import annotations

from agents.imagine.config import (  # noqa: F401
    CONDITIONS,
    CONFIG_FILE,
    DECODERS,
    FORMAT_VERSION,
    FRAME_TOKENS,
    KIND,
    TOKENS_DIR,
    WEIGHTS_FILE,
    WORLD_MODEL_DIR,
    Conditioning,
    WorldModelConfig,
    WorldModelError,
    _known,
    _read_json,
    _write_json,
)
from agents.imagine.decoding import (  # noqa: F401
    LogitsFn,
    decode_autoregressive,
    decode_maskgit,
    decode_parallel,
)
from agents.imagine.dynamics import (  # noqa: F401
    WorldModel,
    _is_world_model,
    attach_world_model,
    attached_world_model,
    train_world_model,
)
from agents.imagine.frame_tokens import (  # noqa: F401
    FrameTokens,
    UnitFrameTokens,
    VQFrameTokens,
    frame_tokens_for,
)
from agents.imagine.masking import (  # noqa: F401
    masked_code_loss,
    sample_codes,
    training_mask,
)
from agents.imagine.metrics import (  # noqa: F401
    _unit,
    code_accuracy,
    psnr,
    ssim,
)
from agents.imagine.rollout import (  # noqa: F401
    Imagination,
    imagine,
)
from agents.imagine.transformer import (  # noqa: F401
    FrameTransformer,
)
from agents.imagine.transitions import (  # noqa: F401
    Transitions,
    build_transitions,
    narrator_states,
)

__all__ = [
    "CONDITIONS",
    "CONFIG_FILE",
    "Conditioning",
    "DECODERS",
    "FORMAT_VERSION",
    "FRAME_TOKENS",
    "FrameTokens",
    "FrameTransformer",
    "Imagination",
    "KIND",
    "LogitsFn",
    "TOKENS_DIR",
    "Transitions",
    "UnitFrameTokens",
    "VQFrameTokens",
    "WEIGHTS_FILE",
    "WORLD_MODEL_DIR",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelError",
    "attach_world_model",
    "attached_world_model",
    "build_transitions",
    "code_accuracy",
    "decode_autoregressive",
    "decode_maskgit",
    "decode_parallel",
    "frame_tokens_for",
    "imagine",
    "masked_code_loss",
    "narrator_states",
    "psnr",
    "sample_codes",
    "ssim",
    "train_world_model",
    "training_mask",
]
