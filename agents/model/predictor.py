"""The predictor of future narration: a causal LM conditioned on (a prefix of) encoder states.

* prefix mode: input at p = m_p * W_in x_p + embed(y[p-1]) (``<bos>`` at 0), with m = 1 on
  positions of frames before the cut; x = the encoder's hidden state (``input=hidden``) or
  its output distribution softmax(z) (``input=logits``).
* latent mode: the prefix mode's input; a linear head maps the predictor's hidden states to the
  encoder's width, regressing the EMA target's hidden states (BYOL/JEPA).
* parallel mode: for each index i, a short sequence: input at j = embed(y[i+j]) (+ W_in x_i at
  j = 0), predicting y[i+1+j], j < K; all indices folded into the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agents.model.lm import TokenLM


class Predictor(nn.Module):
    """Predicts the encoder's future tokens from its (masked) states."""

    def __init__(self, *, tlm: TokenLM, enc_hidden: int, enc_vocab: int, bos_id: int,
                 input_kind: str = "hidden", latent: bool = False) -> None:
        super().__init__()
        self.tlm = tlm
        self.input_kind = input_kind
        self.bos_id = bos_id
        in_dim = enc_hidden if input_kind == "hidden" else enc_vocab
        self.w_in = nn.Linear(in_dim, tlm.hidden_size)
        # latent objectives regress the encoder's states, so the output lives in its width
        self.w_out = nn.Linear(tlm.hidden_size, enc_hidden) if latent else None

    def features(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The encoder output the predictor reads: h [.., D] or softmax(z) [.., V]."""
        return h if self.input_kind == "hidden" else F.softmax(z, dim=-1)

    def prefix_inputs(self, x: torch.Tensor, prev: torch.Tensor,
                      m: torch.Tensor | None = None) -> torch.Tensor:
        """The prefix mode's input, stated once (training and live forecasts use it):
        ``m_p * W_in x_p + embed(prev_p)``; x [B, L, Dx], prev Long [B, L] the token before
        each position, m [B, L] (None = 1 everywhere) -> [B, L, D]."""
        cond = self.w_in(x)
        if m is not None:
            cond = m.to(x.dtype)[..., None] * cond
        return cond + self.tlm.embed(prev)

    def parallel_inputs(self, x_i: torch.Tensor, tokens: torch.Tensor,
                        scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The parallel mode's input, stated once: ``embed(tokens_j)``, plus ``scale * W_in x_i``
        at j = 0; x_i [N, Dx], tokens Long [N, J] -> [N, J, D]."""
        inp = self.tlm.embed(tokens)  # [N, J, D]
        cond = self.w_in(x_i) * scale  # [N, D]
        return torch.cat([inp[:, :1] + cond[:, None], inp[:, 1:]], dim=1)

    def forward_prefix(self, x: torch.Tensor, ids: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x [B, L, Dx] encoder features, ids Long [B, L] encoder tokens, m [B, L] -> logits [B, L, V]."""
        B = ids.shape[0]
        prev = torch.cat([ids.new_full((B, 1), self.bos_id), ids[:, :-1]], dim=1)
        return self.tlm.logits(self.tlm.hidden(self.prefix_inputs(x, prev, m)))

    def forward_latent(self, x: torch.Tensor, ids: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward_prefix`, but the regression of the target's hidden states:
        x [B, L, Dx], ids Long [B, L], m [B, L] -> [B, L, D_enc]."""
        if self.w_out is None:
            raise RuntimeError("This predictor was built without a latent head (latent=False).")
        B = ids.shape[0]
        prev = torch.cat([ids.new_full((B, 1), self.bos_id), ids[:, :-1]], dim=1)
        return self.w_out(self.tlm.hidden(self.prefix_inputs(x, prev, m)))

    def forward_parallel(self, x_i: torch.Tensor, inputs: torch.Tensor,
                         scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """x_i [N, Dx] state at each index, inputs Long [N, K] tokens y[i..i+K-1] -> logits [N, K, V].

        ``scale`` multiplies the conditioning (0 = zeroed, for the prefix-gain monitor).
        """
        return self.tlm.logits(self.tlm.hidden(self.parallel_inputs(x_i, inputs, scale)))
