"""A KV cache of preallocated buffers written in place, in transformers' ``Cache`` interface.

Sampling makes one model call per token position. ``DynamicCache`` grows each layer's keys and
values with ``torch.cat``, which copies the whole cache at every position (quadratic in the
length, and one allocation per layer per token). transformers' ``StaticCache`` writes in place
but does not fit this loop either: its ``update`` returns the full ``max_cache_len`` buffer, so
every step attends over empty slots through a mask built per step, its length is a tensor (a
device sync to read), and it cannot ``crop`` (live narration's forecasts roll the predictor
forward and crop the rollout off again).

:class:`KVCache` keeps transformers' ``Cache`` container (so ``GPTNeoXAttention`` calls its
``update`` unchanged, and ``get_seq_length`` / ``crop`` / ``reset`` / ``layers[i].keys`` behave
as with ``DynamicCache``); each :class:`BufferLayer` holds ONE buffer [B, H, capacity, 2, d]
(keys and values side by side, so the fused decode path writes both with one copy), a Python
int length, and ``keys`` / ``values`` as views of the filled part. The buffer is preallocated
when the caller knows the length (``capacity``) and otherwise doubles when full (amortised
O(1) per position). With autograd on (training through the cache) ``update`` grows out of
place instead, like ``DynamicCache``, since backward needs the earlier keys unchanged.

``KVCache.plan`` holds the model's decode plan (``agents.model.decode_plan.DecodePlan``) once the lean decode
path has used the cache; that path stores keys with the rotary channels of each head
interleaved (attention is invariant to it), so ``TokenLM.hidden`` refuses to mix the two paths
on one cache.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class BufferLayer(CacheLayerMixin):
    """One layer's keys and values in a preallocated buffer, written in place.

    Args:
        capacity: Positions to preallocate on first use (0: grow by doubling from 64).
    """

    is_sliding = False
    is_croppable = True
    is_compileable = False

    def __init__(self, capacity: int = 0, **kwargs) -> None:
        super().__init__()
        if capacity < 0:
            raise ValueError(f"KV cache capacity must be >= 0, got {capacity}.")
        self.capacity = capacity
        self.length = 0
        self.kv: torch.Tensor | None = None  # [B, H, capacity, 2, d]
        self.kv3: torch.Tensor | None = None  # the same buffer as [B*H, capacity, 2, d]

    # transformers' interface: the filled part, [B, H, length, d] views of the buffer
    @property
    def keys(self) -> torch.Tensor | None:
        return None if self.kv is None else self.kv[:, :, :self.length, 0]

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        if value is not None:
            raise AttributeError("BufferLayer.keys is a view of its buffer; use update().")

    @property
    def values(self) -> torch.Tensor | None:
        return None if self.kv is None else self.kv[:, :, :self.length, 1]

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        if value is not None:
            raise AttributeError("BufferLayer.values is a view of its buffer; use update().")

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        if key_states.shape != value_states.shape:
            raise ValueError("BufferLayer needs keys and values of one shape "
                             f"(got {tuple(key_states.shape)} and {tuple(value_states.shape)}).")
        self.dtype, self.device = key_states.dtype, key_states.device
        B, H, _, d = key_states.shape
        self._set(self._alloc(B, H, max(self.capacity, 64), d))
        self.is_initialized = True

    def _alloc(self, B: int, H: int, n: int, d: int) -> torch.Tensor:
        # a normal (not inference-mode) tensor: the same cache may be written under
        # torch.inference_mode (sampling) and under torch.no_grad (narration's prefill/feeds)
        with torch.inference_mode(False):
            return torch.empty(B, H, n, 2, d, dtype=self.dtype, device=self.device)

    def _set(self, kv: torch.Tensor) -> None:
        B, H, n, _, d = kv.shape
        self.kv = kv
        self.kv3 = kv.view(B * H, n, 2, d) if kv.is_contiguous() else None

    def reserve(self, n: int) -> torch.Tensor:
        """Make room for ``n`` more positions; returns the buffer slot [B, H, n, 2, d] for them."""
        end = self.length + n
        cap = self.kv.shape[2]
        if end > cap:
            B, H, _, _, d = self.kv.shape
            new = self._alloc(B, H, max(2 * cap, end), d)
            new[:, :, :self.length] = self.kv[:, :, :self.length]
            self._set(new)
        return self.kv[:, :, self.length:end]

    def advance(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Count ``n`` positions written into :meth:`reserve`'s slot; returns (keys, values)."""
        self.length += n
        return self.keys, self.values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs,
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append key/value states [B, H, L, d]; returns all cached (keys, values) [B, H, n, d]."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        L = key_states.shape[-2]
        if torch.is_grad_enabled() and (key_states.requires_grad or value_states.requires_grad):
            # autograd keeps the cached tensors of earlier steps for backward: never overwrite
            # them in place; grow out of place like DynamicCache (training through the cache)
            new = torch.stack([key_states, value_states], dim=3)  # [B, H, L, 2, d]
            self._set(torch.cat([self.kv[:, :, :self.length], new], dim=2))
            return self.advance(L)
        slot = self.reserve(L)
        slot[:, :, :, 0] = key_states
        slot[:, :, :, 1] = value_states
        return self.advance(L)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1  # grows on demand

    def reset(self) -> None:
        self.length = 0

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` positions (transformers 5 semantics: negative)."""
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of positions to remove, got "
                             f"{tokens_to_remove}; pass -n to drop the last n positions.")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        if -tokens_to_remove > self.length:
            raise ValueError(f"Cannot crop {-tokens_to_remove} positions from a cache of "
                             f"{self.length}.")
        self.length += tokens_to_remove

    def _select(self, index: torch.Tensor) -> None:
        if self.is_initialized:
            self._set(self.kv.index_select(0, index.to(self.kv.device)))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._select(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select(torch.as_tensor(indices))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._select(torch.arange(self.kv.shape[0]).repeat_interleave(repeats))


class KVCache(Cache):
    """transformers ``Cache`` of :class:`BufferLayer` s: in-place writes, int length, ``crop``.

    Args:
        num_layers: Attention layers of the model.
        capacity: Positions to preallocate per layer (0: grow by doubling).
    """

    def __init__(self, num_layers: int, capacity: int = 0) -> None:
        super().__init__(layers=[BufferLayer(capacity) for _ in range(num_layers)])
        self.plan: tuple | None = None  # the model's decode plan, bound on first use

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.layers[layer_idx].length if layer_idx < len(self.layers) else 0


__all__ = ["BufferLayer", "KVCache"]
