"""``BYOGAgent``: the narrating encoder, the predictor, the EMA target and the training step.

One training step (DESIGN.md, *The BYOG model*):
1. ``e = projector(obs_encoder(frames))``.
2. Targets: the target encoder (EMA of the online one; ``target_ema = 0``: the online one)
   samples a slot of k tokens per frame, without gradient.
3. One teacher-forced online-encoder pass over [labelled windows with their annotation ids;
   every window with the sampled ids] gives the grounding CE and the states h, logits z.
4. The predictor reads (a prefix of) h or softmax(z) and predicts the sampled tokens; the BYOG
   loss reaches the encoder only through the states it reads.
Total loss = ``w_ground * L_ground + w_byog * L_byog`` (+ ``w_reinforce * L_reinforce``).
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.config import ModelConfig
from agents.errors import ModelError
from agents.model import losses as L
from agents.model import monitors as M
from agents.model.batch import ByogInputs, _as_long, _eval_mode, select_rows
from agents.model.encoder import NarrationEncoder
from agents.model.lm import TokenLM, build_gpt_neox
from agents.model.objectives import ObjectiveInputs, ObjectiveOutput, get_objective
from agents.model.predictor import Predictor
from agents.model.slot_rule import SlotRule, SlotTrack, narration_rule
from agents.model.text import load_tokenizer, save_tokenizer, slot_annotations, special_ids
from agents.obs import ObsEncoder, build_obs_encoder

if TYPE_CHECKING:
    from agents.narrate.narrator import Narrator

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"
TOKENIZER_DIR = "tokenizer"


@dataclass(eq=False, repr=False)  # equality: the Mapping's (same metrics)
class Evaluation(Mapping[str, float]):
    """What :meth:`BYOGAgent.evaluate` returns: the metrics (this object reads as their
    mapping, ``ev["eval/token_accuracy"]``, as evaluate's dict did) and the greedy narration
    ids they scored."""

    metrics: dict[str, float]
    """``eval/…`` metric name -> value."""
    ids: torch.Tensor
    """Long [B, T, k] greedy narration (``<pad>`` where invalid)."""

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def __repr__(self) -> str:
        return f"Evaluation({self.metrics!r}, ids of shape {tuple(self.ids.shape)})"


class BYOGAgent(nn.Module):
    """A narrating agent trained with grounding + BYOG (see the module docstring).

    Args:
        cfg: The model config.
        tokenizer: A tokenizer with the special tokens (``agents.model.text``).
        obs_encoder: An already built (and, for vqvae/units, fitted) observation encoder;
            None = ``build_obs_encoder(cfg.obs)`` (must not need fitting).
    """

    def __init__(self, cfg: ModelConfig, tokenizer: Any, *, obs_encoder: ObsEncoder | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.special = special_ids(tokenizer)
        sp = self.special
        vocab = len(tokenizer)
        obs = obs_encoder if obs_encoder is not None else build_obs_encoder(cfg.obs)
        if getattr(obs, "requires_fit", False):
            raise ModelError(
                f"The {cfg.obs.kind} observation encoder must be fitted first: fit it "
                "(encoder.fit(...)) or load a fitted one, and pass it as obs_encoder."
            )
        specials = list(sp.as_tuple())
        k = cfg.text.tokens_per_frame
        banned: tuple[int, ...] = (sp.pad, sp.bos, sp.unk)
        use_pred = cfg.uses_predictor
        with_target = use_pred and cfg.loss.target_ema > 0
        self.shared_lm: nn.Module | None = None
        if cfg.lora.enabled:
            from agents.model.lora import make_lora_model

            self.shared_lm = make_lora_model(build_gpt_neox(cfg.lm, vocab), cfg.lora,
                                             with_target=with_target)
            enc_tlm = TokenLM(self.shared_lm, special_ids=specials, adapter="encoder",
                              register_lm=False)
        else:
            enc_tlm = TokenLM(build_gpt_neox(cfg.lm, vocab), special_ids=specials)
        # a pretrained LM may have more rows than the tokenizer has tokens (pythia: 50,304 vs
        # ~50,282): those ids decode to nothing, so they are never sampled nor used as targets
        banned += tuple(range(vocab, enc_tlm.vocab_size))
        self.encoder = NarrationEncoder(obs=obs, tlm=enc_tlm, tokens_per_frame=k, bos_id=sp.bos,
                                        fusion=cfg.fusion, banned_ids=banned)
        if cfg.nil_threshold is not None:
            self.encoder.nil_rule = (sp.nil, cfg.nil_threshold)
        # narration keeps the training targets' slot format: their carry bound, nothing after
        # a slot's first <nil> (agents.model.slot_rule); training's own sampling does not use it
        self.encoder.slot_rule = SlotRule(nil=sp.nil, ends=(sp.sep, sp.nil, sp.pad),
                                          max_carry=cfg.text.max_carry)
        self.predictor: Predictor | None = None
        # the objective is looked up by name: an unknown mode fails here, listing the known ones
        self.objective = get_objective(cfg.predictor.mode) if use_pred else None
        if use_pred:
            pred_lm = (TokenLM(self.shared_lm, special_ids=specials, adapter="predictor",
                               register_lm=False) if self.shared_lm is not None
                       else TokenLM(build_gpt_neox(cfg.lm, vocab), special_ids=specials))
            self.predictor = Predictor(tlm=pred_lm, enc_hidden=enc_tlm.hidden_size,
                                       enc_vocab=enc_tlm.vocab_size, bos_id=sp.bos,
                                       input_kind=cfg.predictor.input,
                                       latent=bool(getattr(self.objective, "predictor_latent",
                                                           False)))
        self.target: NarrationEncoder | None = None
        if with_target:
            self.target = self._make_target(specials, banned)
        self.register_buffer("reward_baseline", torch.zeros(()))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ target
    def _make_target(self, specials: list[int], banned: tuple[int, ...]) -> NarrationEncoder:
        if self.shared_lm is None:
            target = copy.deepcopy(self.encoder)
        else:  # share the frozen base; the target's LM part is the EMA adapter "target"
            tlm = TokenLM(self.shared_lm, special_ids=specials, adapter="target", register_lm=False)
            target = NarrationEncoder(obs=copy.deepcopy(self.encoder.obs), tlm=tlm,
                                      tokens_per_frame=self.encoder.k, bos_id=self.special.bos,
                                      fusion=self.cfg.fusion, banned_ids=banned)
            target.load_state_dict(self.encoder.state_dict())
            target.nil_rule = self.encoder.nil_rule  # the deepcopy above carries it; this must too
        for p in target.parameters():
            p.requires_grad_(False)
        return target.eval()

    def _ema_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        assert self.target is not None
        tgt = list(self.target.parameters())
        onl = list(self.encoder.parameters())
        if self.shared_lm is not None:
            from agents.model.lora import adapter_parameters

            a_t = adapter_parameters(self.shared_lm, "target")
            a_o = adapter_parameters(self.shared_lm, "encoder")
            tgt += [a_t[n] for n in sorted(a_t)]
            onl += [a_o[n] for n in sorted(a_t)]
        return tgt, onl

    @torch.no_grad()
    def update_target(self, step: int | None = None) -> float:
        """EMA step of the target encoder; call after each optimizer step (no-op when online).

        ``step`` (the optimizer step just taken, from 0) anneals the decay towards 1 over
        ``loss.target_ema_anneal_steps`` as BYOL does (None: the constant ``loss.target_ema``).
        Returns the decay used."""
        lc = self.cfg.loss
        decay = L.ema_decay(lc.target_ema, step, lc.target_ema_anneal_steps)
        if self.target is not None:
            L.ema_update(*self._ema_pairs(), decay=decay)
        return decay

    def train(self, mode: bool = True) -> BYOGAgent:
        super().train(mode)
        if self.target is not None:
            self.target.eval()
        return self

    # ------------------------------------------------------------------ helpers
    def frame_embeddings(self, batch: dict[str, Any], encoder: NarrationEncoder | None = None) -> torch.Tensor:
        """e [B, T, D] of a batch through ``encoder`` (default: the online one)."""
        enc = encoder or self.encoder
        col = enc.obs.needs_column
        # windows carry the frame before them, so a frame-delta encoder sees every real change
        return enc.frame_embeddings(batch["frames"], batch["valid"].bool(),
                                    batch.get(col) if col else None, prev_frame=batch.get("prev_frame"))

    def _row_seeds(self, batch: dict[str, Any], step: int, stream: int) -> torch.Tensor:
        """Long [B] per-window seeds keyed by (seed, episode_index, start, step, stream)."""
        B = batch["frames"].shape[0]
        ep = _as_long(batch.get("episode_index"), B).tolist()
        st = _as_long(batch.get("start"), B).tolist()
        return torch.tensor([L.row_seed(self.cfg.loss.seed, e, s, step, stream)
                             for e, s in zip(ep, st)], dtype=torch.long)

    def _noise(self, step: int, batch: dict[str, Any], positions: int) -> L.RowNoise:
        """Per-row sampling noise keyed by (seed, episode_index, start, step), like the cuts."""
        return L.RowNoise(self._row_seeds(batch, step, stream=1).tolist(), positions,
                          device=batch["frames"].device)

    @torch.no_grad()
    def sample_targets(self, batch: dict[str, Any], e: torch.Tensor, step: int,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The target encoder's tokens ids Long [B, T, k] (<pad> on padded frames) and logits.

        Sampled in eval mode (no dropout), also when the target is the online encoder itself
        (``target_ema = 0``) or a LoRA adapter on the shared base."""
        enc = self.target if self.target is not None else self.encoder
        temp = self.cfg.loss.sample_temperature
        with _eval_mode(enc, self.shared_lm):
            e_t = self.frame_embeddings(batch, enc) if self.target is not None else e.detach()
            ids, logits = enc.sample(e_t, greedy=temp == 0, temperature=max(temp, 1e-6),
                                     generator=None if temp == 0 else
                                     self._noise(step, batch, e_t.shape[1] * enc.k))
        valid = batch["valid"].bool()
        ids = ids.masked_fill(~valid[:, :, None], self.special.pad)
        return ids, logits

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """One step's loss and metrics on a ``collate_windows`` batch (+ ``labelled: bool [B]``,
        the rows the grounding loss reads, and optionally ``byog: bool [B]``, the rows the
        self-supervised loss reads; absent = every row).

        Returns:
            (loss, metrics) with namespaced keys: ``loss/total``, ``loss/ground``,
            ``loss/byog``, ``loss/reinforce``, ``ground/*``, ``byog/*``, ``monitor/*``, ``text/*``.
        """
        terms, metrics = self.training_terms(batch, step)
        total = sum(terms.values())
        metrics["loss/total"] = float(total.detach())
        return total, metrics

    def training_terms(self, batch: dict[str, Any], step: int = 0,
                       ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The weighted loss terms of one step (``ground``, ``byog``, ``reinforce``; their sum
        is the loss) and the metrics; the trainer reads the terms apart to log the gradient
        each one puts on the encoder."""
        cfg, sp = self.cfg, self.special
        valid = batch["valid"].bool()
        B = valid.shape[0]
        labelled = torch.as_tensor(batch.get("labelled", torch.zeros(B, dtype=torch.bool))).bool()
        byog_rows = batch.get("byog")
        byog_rows = (torch.ones(B, dtype=torch.bool) if byog_rows is None
                     else torch.as_tensor(byog_rows).bool().cpu())
        e = self.frame_embeddings(batch)  # [B, T, D]
        metrics: dict[str, float] = {}
        ids_parts, e_parts = [], []
        g_ids = byog = None
        if cfg.loss.w_ground > 0 and bool(labelled.any()):
            g_in, g_ids = self._ground_targets(batch, valid, labelled, step, metrics, e.device)
            ids_parts.append(g_in)
            e_parts.append(e[labelled])
        if self.predictor is not None and bool(byog_rows.any()):
            byog = self._byog_inputs(batch, e, byog_rows, step)
            policy = [] if byog.y_pi is None else [byog.y_pi]  # reinforce: its own words too
            ids_parts += [byog.y, *policy]
            e_parts += [byog.e] * (1 + len(policy))
        if not ids_parts:
            raise ModelError(
                "Nothing to train on this batch: w_byog is 0 (captioner) and no window is "
                "labelled; pass labelled windows or set w_byog > 0."
            )
        h, z = self.encoder(torch.cat(ids_parts), torch.cat(e_parts))  # [B', L, D], [B', L, V]
        terms: dict[str, torch.Tensor] = {}
        n_g = 0 if g_ids is None else g_ids.shape[0]
        if g_ids is not None:
            l_g, m_g = L.grounding_loss(z[:n_g], g_ids.reshape(n_g, -1), pad_id=sp.pad,
                                        nil_id=sp.nil, nil_weight=cfg.loss.nil_weight)
            terms["ground"] = cfg.loss.w_ground * l_g
            metrics.update(m_g)
            metrics["loss/ground"] = float(l_g.detach())
        if byog is not None:
            terms.update(self._byog_terms(byog, h[n_g:], z[n_g:], step, metrics))
        metrics.update(self.encoder.gate_values())
        return terms, metrics

    def _ground_targets(self, batch: dict[str, Any], valid: torch.Tensor, labelled: torch.Tensor,
                        step: int, metrics: dict[str, float], device: torch.device
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled rows' slotted annotations: (encoder input ids with the history dropout
        applied, target ids) [Bg, T, k]; the slot counts go into ``metrics``."""
        cfg, sp = self.cfg, self.special
        slotted = slot_annotations(batch["annotations"], valid, self.tokenizer, cfg.text)
        g_ids = slotted.ids.to(device)[labelled]  # [Bg, T, k]
        g_in, g_ids = L.history_dropout(
            g_ids, valid[labelled], rate=cfg.loss.history_dropout,
            seeds=self._row_seeds(batch, step, stream=2)[labelled.cpu()].tolist(),
            nil_id=sp.nil, pad_id=sp.pad)
        metrics.update(M.slot_counts(slotted))
        return g_in, g_ids

    def _byog_inputs(self, batch: dict[str, Any], e: torch.Tensor, rows: torch.Tensor,
                     step: int) -> ByogInputs:
        """The self-supervised rows: (their batch, frame embeddings, the target's sampled tokens
        y, its logits, and with the reinforce objective the online encoder's own words y_pi)."""
        bb = select_rows(batch, rows)  # the self-supervised batch
        e_b = e[rows.to(e.device)]
        y, y_logits = self.sample_targets(bb, e_b, step)
        y_pi = None
        if self.cfg.loss.token_objective == "reinforce":  # on-policy: the online encoder's words
            y_pi = self.sample_policy(bb, e_b, step)
        return ByogInputs(bb, e_b, y, y_logits, y_pi)

    def _byog_terms(self, byog: ByogInputs, h: torch.Tensor, z: torch.Tensor, step: int,
                    metrics: dict[str, float]) -> dict[str, torch.Tensor]:
        """The ``byog`` (and ``reinforce``) loss terms from the encoder's outputs on the
        self-supervised rows (``h``/``z`` start at them); their metrics go into ``metrics``."""
        cfg = self.cfg
        bb, e_b, y, y_logits, y_pi = byog
        Bb = e_b.shape[0]
        h_b, z_b = h[:Bb], z[:Bb]
        l_b, m_b = self._byog(bb, h_b, z_b, y, y_logits, step)
        w_b = L.ramp_weight(cfg.loss.w_byog, step, cfg.loss.w_byog_warmup_steps)
        terms = {"byog": w_b * l_b}
        metrics.update(m_b)
        metrics["loss/byog"] = float(l_b.detach())
        metrics["loss/w_byog"] = w_b
        if y_pi is not None:
            l_r, m_r = self._reinforce(bb, h[Bb:], z[Bb:], y_pi, step)
            terms["reinforce"] = l_r
            metrics.update(m_r)
        else:  # the online encoder's next-token distribution on the sampled history
            metrics.update(self._online_monitors(z_b, None, bb["valid"].bool()))
        return terms

    def _byog(self, batch: dict[str, Any], h: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
              y_logits: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(predictor loss, metrics) on the target's sampled tokens y [B, T, k]."""
        cfg, k = self.cfg, self.encoder.k
        assert self.predictor is not None
        valid = batch["valid"].bool()
        B, T = valid.shape
        y_flat = y.reshape(B, T * k)
        soft = y_logits.reshape(B, T * k, -1) if cfg.loss.targets == "soft" else None
        target_h = self.target_hidden(batch, y, h) if self._needs_target_hidden else None
        # the BYOG gradient reaches the encoder only through these states: scale it there
        s_enc = cfg.loss.byog_encoder_grad_scale
        x = self.predictor.features(L.scale_grad(h, s_enc), L.scale_grad(z, s_enc))  # [B, L, Dx]
        out = self.byog_loss(x, y_flat, valid, batch, step, soft_logits=soft, target_hidden=target_h)
        metrics = dict(out.metrics)
        metrics.setdefault("monitor/predictor_nll", metrics.get("byog/ce", float("nan")))
        metrics["monitor/target_nil_rate"] = M.nil_rate(y, self.special.nil,
                                                        valid[:, :, None].expand_as(y))
        return out.loss, metrics

    @torch.no_grad()
    def sample_policy(self, batch: dict[str, Any], e: torch.Tensor, step: int) -> torch.Tensor:
        """The online encoder's own narration Long [B, T, k] (<pad> on padded frames), sampled in
        eval mode at temperature 1 with per-window noise: the on-policy tokens of REINFORCE."""
        noise = L.RowNoise(self._row_seeds(batch, step, stream=3).tolist(),
                           e.shape[1] * self.encoder.k, device=e.device)
        with _eval_mode(self.encoder, self.shared_lm):
            ids, _ = self.encoder.sample(e.detach(), generator=noise)
        return ids.masked_fill(~batch["valid"].bool()[:, :, None], self.special.pad)

    def _online_monitors(self, z: torch.Tensor, ids: torch.Tensor | None,
                         valid: torch.Tensor) -> dict[str, float]:
        """Collapse monitors of the ONLINE encoder: entropy of its distribution z [B, L, V]
        (banned ids excluded) and nil rate / distinct-n of ``ids`` [B, T, k] (None: its greedy
        words on the same history)."""
        B, T = valid.shape
        with torch.no_grad():
            zm = z.detach().index_fill(-1, self.encoder.banned, float("-inf")).view(B, T, self.encoder.k, -1)
            ids = zm.argmax(-1) if ids is None else ids
            mask = valid[:, :, None].expand(B, T, self.encoder.k)
            return {f"monitor/{n}": v for n, v in M.collapse_monitors(
                ids, self.special, logits=zm, mask=mask, prefix="").items()}

    def _reinforce(self, batch: dict[str, Any], h: torch.Tensor, z: torch.Tensor,
                   y_pi: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted REINFORCE term (+ entropy bonus) on the online policy's stream y_pi
        [B, T, k] (h, z: its teacher-forced online states): reward = -(the predictor's NLL of
        the stream's future), credited to the prefix tokens the predictor read only."""
        cfg, k = self.cfg, self.encoder.k
        valid = batch["valid"].bool()
        B, T = valid.shape
        y_flat = y_pi.reshape(B, T * k)
        metrics = self._online_monitors(z, y_pi, valid)
        with torch.no_grad():  # the reward: the predictor is not trained on this stream
            out = self.byog_loss(self.predictor.features(h, z).detach(), y_flat, valid, batch, step)
        credit = out.credit if out.credit is not None else L.frame_mask(valid, k)
        has = out.has_target
        if not bool(has.any()):
            return z.sum() * 0.0, metrics
        reward = -out.per_seq_nll
        zb = z.index_fill(-1, self.encoder.banned, -1e4)  # the policy never emits banned ids
        logp = F.log_softmax(zb, -1).gather(-1, y_flat[..., None].clamp_min(0))[..., 0]  # [B, L]
        if not bool(self.baseline_ready):
            self.reward_baseline.fill_(float(reward[has].mean()))
            self.baseline_ready.fill_(True)
        l_r, m_r = L.reinforce_loss(logp[has], credit[has], reward[has], float(self.reward_baseline))
        mom = cfg.loss.baseline_momentum
        self.reward_baseline.mul_(mom).add_((1 - mom) * float(reward[has].mean()))
        ent, m_e = L.entropy_bonus(z, credit & has[:, None], self.encoder.banned)
        metrics.update(m_r)
        metrics.update(m_e)
        metrics["loss/reinforce"] = float(l_r.detach())
        return cfg.loss.w_reinforce * l_r - cfg.loss.w_entropy * ent, metrics

    @property
    def _needs_target_hidden(self) -> bool:
        return bool(getattr(self.objective, "needs_target_hidden", False))

    @torch.no_grad()
    def target_hidden(self, batch: dict[str, Any], y: torch.Tensor, h_online: torch.Tensor,
                      ) -> torch.Tensor:
        """The target encoder's hidden states [B, L, D] on its own tokens y [B, T, k], without
        gradient (latent objectives regress them); the online states, detached, when the
        online encoder is its own target (``target_ema = 0``)."""
        if self.target is None:
            return h_online.detach()
        with _eval_mode(self.target, self.shared_lm):
            h_t, _ = self.target(y, self.frame_embeddings(batch, self.target))
        return h_t

    def byog_loss(self, x: torch.Tensor, y_flat: torch.Tensor, valid: torch.Tensor,
                  batch: dict[str, Any], step: int, *, soft_logits: torch.Tensor | None = None,
                  target_hidden: torch.Tensor | None = None) -> ObjectiveOutput:
        """The configured predictor objective on encoder features x [B, L, Dx] and target
        tokens y_flat [B, L] (see :mod:`agents.model.objectives`)."""
        assert self.predictor is not None
        B = valid.shape[0]
        return self.objective(ObjectiveInputs(
            predictor=self.predictor, x=x, targets=y_flat, valid=valid, k=self.encoder.k,
            cfg=self.cfg, step=step, episode_index=_as_long(batch.get("episode_index"), B),
            start=_as_long(batch.get("start"), B), soft_logits=soft_logits,
            nil_id=self.special.nil, target_hidden=target_hidden))

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, batch: dict[str, Any], *, step: int = 0, tolerance: int = 2) -> Evaluation:
        """Monitors on a batch (no gradient): greedy narration against the annotations and the
        collapse detectors (:func:`agents.model.monitors.narration_metrics`), predictor vs unigram,
        prefix gain, carried/cut counts, gate values.

        Returns:
            An :class:`Evaluation`: the ``eval/…`` metrics (it reads as their mapping) and the
            greedy narration ids ``[B, T, k]`` they scored (``<pad>`` where invalid), so callers
            need not decode a second time.
        """
        was = self.training
        self.eval()
        try:
            valid = batch["valid"].bool()
            e = self.frame_embeddings(batch)
            # scored as narration writes it: the slot format kept (agents.model.slot_rule)
            ids, logits = self.encoder.sample(e, greedy=True, rule=narration_rule(self))
            ids = ids.masked_fill(~valid[:, :, None], self.special.pad)
            slotted = slot_annotations(batch["annotations"], valid, self.tokenizer, self.cfg.text)
            truth = slotted.ids.to(ids.device)
            _, z_tf = self.encoder(truth, e)  # every position fed the true previous tokens
            tf = z_tf.index_fill(-1, self.encoder.banned, float("-inf")).argmax(-1).view_as(truth)
            out = M.narration_metrics(ids, self.tokenizer, valid, logits=logits, truth=truth,
                                      teacher_forced=tf, annotations=batch["annotations"],
                                      tolerance=tolerance)
            out.update(M.slot_counts(slotted, prefix=""))
            if self.predictor is not None:
                out.update(self._predictor_monitors(batch, e, step))
            out.update(self.encoder.gate_values())
            return Evaluation({f"eval/{k_}": v for k_, v in out.items()}, ids)
        finally:
            self.train(was)

    def _predictor_monitors(self, batch: dict[str, Any], e: torch.Tensor, step: int) -> dict[str, float]:
        """Predictor NLL, its unigram baseline and the prefix gain on the target's samples."""
        valid = batch["valid"].bool()
        B, T = valid.shape
        y, _ = self.sample_targets(batch, e, step)
        h, z = self.encoder(y, e)
        target_h = self.target_hidden(batch, y, h) if self._needs_target_hidden else None
        r = self.byog_loss(self.predictor.features(h, z), y.reshape(B, T * self.encoder.k), valid,
                           batch, step, target_hidden=target_h)
        nan = float("nan")  # a plugin objective need not report every monitor
        out = {"predictor_nll": r.metrics.get("monitor/predictor_nll", r.metrics.get("byog/ce", nan))}
        for name in ("unigram_nll", "prefix_gain", "prefix_gain_shuffled"):
            out[name] = r.metrics.get(f"monitor/{name}", nan)
        return out

    # ------------------------------------------------------------------ narration
    @torch.no_grad()
    def narrate(self, frames: torch.Tensor, valid: torch.Tensor | None = None, *, greedy: bool = True,
                temperature: float = 1.0, top_k: int = 0, embedding: torch.Tensor | None = None,
                prev_frame: torch.Tensor | None = None, cut: bool = True, early_exit: bool = True,
                track: SlotTrack | None = None) -> torch.Tensor:
        """Offline narration: frames uint8 [B, T, H, W, 3] -> ids Long [B, T, k] (<pad> where invalid).

        ``prev_frame`` uint8 [B, H, W, 3]: the frame before the clip (a window's ``prev_frame``),
        read by frame-delta encoders; None = the clip starts afresh. ``cut``/``early_exit``:
        the slot format kept, as in live narration (:mod:`agents.model.slot_rule`); ``track``: a
        :class:`~agents.model.slot_rule.SlotTrack` of B rows to read (and accumulate) its counts."""
        if valid is None:
            valid = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        e = self.encoder.frame_embeddings(frames, valid, embedding, prev_frame=prev_frame)
        rule = narration_rule(self, cut=cut, early_exit=early_exit)
        if rule is not None and track is not None:
            track.age.fill_(-1)  # a clip starts afresh: no sentence open
        ids, _ = self.encoder.sample(e, greedy=greedy, temperature=temperature, top_k=top_k,
                                     rule=rule, track=track)
        return ids.masked_fill(~valid[:, :, None], self.special.pad)

    def start(self, batch_size: int, **narrator: Any) -> Narrator:
        """A reset :class:`agents.narrate.narrator.Narrator` for ``batch_size`` streams: the live
        narration state :meth:`narrate_step` advances (``narrator``: its options, e.g.
        ``window``, ``forecast``, ``seed``). Puts the agent in eval mode."""
        from agents.narrate.narrator import Narrator

        narr = Narrator(self, batch_size=batch_size, **narrator)
        narr.reset()
        return narr

    @torch.no_grad()
    def narrate_step(self, state: Narrator, frame: torch.Tensor, *, greedy: bool = True,
                     temperature: float = 1.0, top_k: int = 0, embedding: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, Narrator]:
        """Narrate one new frame per stream: frame uint8 [B, H, W, 3] -> (ids Long [B, k], state).

        ``state`` is the narrator :meth:`start` made (advanced in place and returned); its
        context stays bounded by its window (see :mod:`agents.narrate.narrator`). The sampling options
        apply from this step on."""
        state.greedy, state.temperature, state.top_k = greedy, temperature, top_k
        return state.step(frame, embedding).ids, state

    # ------------------------------------------------------------------ imagination
    def imagine(self, frames: torch.Tensor, actions: torch.Tensor | None = None, steps: int = 16,
                **kwargs: Any) -> Any:
        """Imagine ``steps`` frames after real ``frames`` uint8 [B, T, H, W, 3] with the world
        model saved beside this agent's checkpoint, and narrate them; ``actions=None`` means no
        action input (the world model's learned "no action"). See :func:`agents.imagine.world_model.imagine`."""
        from agents.imagine.rollout import imagine

        return imagine(self, frames, actions, steps, **kwargs)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``model.safetensors``, ``config.json``, ``tokenizer/``, the LMs as stock
        GPT-NeoX directories and a model card under ``path`` (layout: :mod:`agents.model.hf`)."""
        from safetensors.torch import save_model

        from agents.model.hf import write_hf_files

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self, str(path / WEIGHTS))
        save_tokenizer(self.tokenizer, path / TOKENIZER_DIR)
        write_hf_files(self, path)
        return path

    def describe(self, frames: Any, **kwargs: Any) -> list:
        """Sentences per frame: uint8 ``[T, H, W, 3]`` -> T lists (``[B, T, ...]`` -> B of them)."""
        from agents.model.hf import describe

        return describe(self, frames, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, obs_encoder: ObsEncoder | None = None) -> BYOGAgent:
        """Rebuild an agent written by :meth:`save_pretrained` (fitted obs parts included)."""
        from safetensors.torch import load_model

        from agents.model.hf import read_agent_config
        from agents.model.weights import check_weights

        path = Path(path)
        saved, extra = read_agent_config(path)  # config.json, or an old model_config.json
        if not (path / WEIGHTS).is_file():
            raise ModelError(f"{str(path)!r} has no {WEIGHTS}; pass a directory written by "
                             "BYOGAgent.save_pretrained.")
        cfg = ModelConfig.from_saved(saved)
        tok = load_tokenizer(path / TOKENIZER_DIR)

        def build() -> BYOGAgent:
            obs = obs_encoder
            if obs is None:
                obs = build_obs_encoder(cfg.obs)
                if obs.requires_fit:
                    obs.mark_fitted()  # its fitted state comes from the weights below
            return cls(cfg, tok, obs_encoder=obs)

        # the config's model compared with the file's tensors on the meta device first: a
        # config asking for more than the file holds fails here, before any memory is taken
        check_weights(build, path / WEIGHTS, what="Checkpoint weights", error=ModelError)
        agent = build()
        missing, unexpected = load_model(agent, str(path / WEIGHTS), strict=False)
        if missing or unexpected:
            raise ModelError(
                f"Checkpoint {str(path)!r} does not match its config (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}); it was written by a different model version."
            )
        agent.trained_on = extra.get("trained_on") or None  # the data it learned from, if known
        return agent
