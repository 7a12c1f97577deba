"""The predictor of future narration: a causal LM conditioned on (a prefix of) encoder states.

* prefix mode: input at p = m_p * W_in x_p + embed(y[p-1]) (``<bos>`` at 0), with m = 1 on
  positions of frames before the cut; x = the encoder's hidden state (``input=hidden``) or
  its output distribution softmax(z) (``input=logits``).
* parallel mode: for each index i, a short sequence: input at j = embed(y[i+j]) (+ W_in x_i at
  j = 0), predicting y[i+1+j], j < K; all indices folded into the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agents.lm import TokenLM


class Predictor(nn.Module):
    """Predicts the encoder's future tokens from its (masked) states."""

    def __init__(self, *, tlm: TokenLM, enc_hidden: int, enc_vocab: int, bos_id: int,
                 input_kind: str = "hidden") -> None:
        super().__init__()
        self.tlm = tlm
        self.input_kind = input_kind
        self.bos_id = bos_id
        in_dim = enc_hidden if input_kind == "hidden" else enc_vocab
        self.w_in = nn.Linear(in_dim, tlm.hidden_size)

    def features(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The encoder output the predictor reads: h [.., D] or softmax(z) [.., V]."""
        return h if self.input_kind == "hidden" else F.softmax(z, dim=-1)

    def forward_prefix(self, x: torch.Tensor, ids: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x [B, L, Dx] encoder features, ids Long [B, L] encoder tokens, m [B, L] -> logits [B, L, V]."""
        B, L = ids.shape
        prev = torch.cat([ids.new_full((B, 1), self.bos_id), ids[:, :-1]], dim=1)
        inp = m.to(x.dtype)[..., None] * self.w_in(x) + self.tlm.embed(prev)
        return self.tlm.logits(self.tlm.hidden(inp))

    def forward_parallel(self, x_i: torch.Tensor, inputs: torch.Tensor,
                         scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """x_i [N, Dx] state at each index, inputs Long [N, K] tokens y[i..i+K-1] -> logits [N, K, V].

        ``scale`` multiplies the conditioning (0 = zeroed, for the prefix-gain monitor).
        """
        inp = self.tlm.embed(inputs)  # [N, K, D]
        cond = self.w_in(x_i) * scale  # [N, D]
        inp = torch.cat([inp[:, :1] + cond[:, None], inp[:, 1:]], dim=1)
        return self.tlm.logits(self.tlm.hidden(inp))
