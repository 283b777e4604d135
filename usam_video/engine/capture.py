"""Capture of the SAM 2 mask decoder's tokens through torch forward hooks.

Three hooks on modules sam2 already has, no method replaced:
- ``sam_mask_decoder.transformer``: its output ``hs`` ``(B, n_tokens, D)`` holds, after the
  optional object-score token, the IoU token and the ``K`` mask tokens;
- ``sam_mask_decoder.iou_prediction_head``: the predicted IoU of all ``K`` tokens ``(B, K)``;
- ``sam_mask_decoder`` itself: which tokens it returned (``multimask_output``) and the object
  score logits, which closes one decoder call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

__all__ = ["DecoderCall", "DeviceCall", "TokenCapture", "mask_entropy", "stability_score"]


def mask_entropy(logits: torch.Tensor) -> torch.Tensor:
    """UncertainSAM's H_std: binary entropy of the mask probabilities weighted by the probability.

    ``logits`` ``(B, H, W)`` -> ``(B,)``: ``sum(p * H(p)) / sum(p)`` with ``p = sigmoid(logits)`` and
    ``H(p) = -p ln p - (1 - p) ln(1 - p)`` (nats). An empty mask (``sum(p) == 0``) scores 0.
    Higher means more uncertain.
    """
    logits = logits.float().flatten(1)
    p = torch.sigmoid(logits)
    # H(p) from the logits: softplus form is exact and finite where p rounds to 0 or 1.
    h = torch.nn.functional.softplus(logits) - p * logits
    total = p.sum(dim=1)
    return torch.where(total > 0, (p * h).sum(dim=1) / total.clamp_min(1e-12), torch.zeros_like(total))


def stability_score(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability score: IoU of the masks thresholded at ``+offset`` and ``-offset``.

    ``logits`` ``(B, H, W)`` -> ``(B,)`` in [0, 1]; 1 when both masks are empty. Higher means
    more stable (more confident).
    """
    flat = logits.float().flatten(1)
    inner = (flat > offset).sum(dim=1).float()
    outer = (flat > -offset).sum(dim=1).float()
    return torch.where(outer > 0, inner / outer.clamp_min(1), torch.ones_like(outer))


@dataclass(frozen=True, eq=False)
class DeviceCall:
    """One mask-decoder call for a batch of ``B`` objects, kept on the engine's device.

    The hooks never copy to the host: on a GPU a copy would wait for the decoder to finish and
    stall the launch of the next frame's work. :class:`DecoderCall` is the host copy.

    Attributes:
        iou_tokens: ``float32`` ``(B, D)``.
        mask_tokens: ``float32`` ``(B, K, D)``.
        candidate_ious: ``float32`` ``(B, K)``: the decoder's IoU head on ``iou_tokens``.
        chosen: ``int64`` ``(B,)``: the token whose mask the decoder returned.
        object_score_logits: ``float32`` ``(B,)``.
        chosen_logits: ``(B, h, w)`` low-res logits of the mask the decoder returned (sam2's
            dtype: ``float32``, ``bfloat16`` under autocast). Its :attr:`entropy` and
            :attr:`stability` are computed from them when first asked for, not in the hook: the
            hook runs on the thread that drives SAM 2, between two of its decoder calls, and
            the ~15 operations per object (each a kernel launch on a GPU) belong to whoever
            consumes the call (:class:`~usam_video.engine.frames.FrameAssembler` computes them for
            all of a frame's objects at once, on its own thread).
        candidate_logits: ``float32`` ``(B, K, h, w)`` low-res logits of every token's mask
            (NaN for tokens the decoder did not return), kept only when the capture was asked to
            (``keep_logits``); else None.
    """

    iou_tokens: torch.Tensor
    mask_tokens: torch.Tensor
    candidate_ious: torch.Tensor
    chosen: torch.Tensor
    object_score_logits: torch.Tensor
    chosen_logits: torch.Tensor
    candidate_logits: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.iou_tokens.shape[0])

    @cached_property
    def entropy(self) -> torch.Tensor:
        """``float32`` ``(B,)``: :func:`mask_entropy` of the chosen mask's logits."""
        return mask_entropy(self.chosen_logits).detach()

    @cached_property
    def stability(self) -> torch.Tensor:
        """``float32`` ``(B,)``: :func:`stability_score` of the chosen mask's logits."""
        return stability_score(self.chosen_logits).detach()

    def to_host(self) -> DecoderCall:
        """The numpy copy (a synchronisation on a GPU: for one-off calls such as probes)."""
        return DecoderCall(
            iou_tokens=_np(self.iou_tokens),
            mask_tokens=_np(self.mask_tokens),
            candidate_ious=_np(self.candidate_ious),
            chosen=self.chosen.to("cpu", torch.int64).numpy().copy(),
            object_score_logits=_np(self.object_score_logits),
            entropy=_np(self.entropy),
            stability=_np(self.stability),
            candidate_logits=self.candidate_logits,
        )


@dataclass(frozen=True, eq=False)
class DecoderCall:
    """One mask-decoder call for a batch of ``B`` objects (numpy, on the CPU): the host copy of
    a :class:`DeviceCall`, fields as there; ``candidate_logits`` stays on the device."""

    iou_tokens: np.ndarray
    mask_tokens: np.ndarray
    candidate_ious: np.ndarray
    chosen: np.ndarray
    object_score_logits: np.ndarray
    entropy: np.ndarray
    stability: np.ndarray
    candidate_logits: torch.Tensor | None = None


def _np(t: torch.Tensor) -> np.ndarray:
    # Copy to plain float32 CPU memory: hooks run under inference_mode, and bf16 has no numpy type.
    return t.detach().to(device="cpu", dtype=torch.float32).numpy().copy()


class TokenCapture:
    """Context manager collecting one :class:`DeviceCall` per mask-decoder forward (no copies to
    the host, no synchronisation: every tensor stays on the engine's device)."""

    def __init__(self, model: torch.nn.Module, keep_logits: bool = False):
        self.keep_logits = keep_logits
        self._decoder = model.sam_mask_decoder
        # With pred_obj_scores the object-score token comes first in hs (mask_decoder.py).
        self._first = 1 if self._decoder.pred_obj_scores else 0
        self._k = int(self._decoder.num_mask_tokens)
        self._handles: list[Any] = []
        self._hs: torch.Tensor | None = None
        self._ious: torch.Tensor | None = None
        self.calls: list[DeviceCall] = []

    def __enter__(self) -> TokenCapture:
        self._handles = [
            self._decoder.transformer.register_forward_hook(self._on_transformer),
            self._decoder.iou_prediction_head.register_forward_hook(self._on_iou_head),
            self._decoder.register_forward_hook(self._on_decoder, with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def drain(self) -> list[DeviceCall]:
        """Return and forget the calls captured since the last drain."""
        calls, self.calls = self.calls, []
        return calls

    def _on_transformer(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self._hs = output[0]

    def _on_iou_head(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        self._ious = output

    def _on_decoder(self, module: torch.nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if self._hs is None or self._ious is None:
            raise RuntimeError("mask decoder ran without its transformer/IoU head: sam2 internals changed")
        hs, all_ious = self._hs, self._ious.float()
        self._hs = self._ious = None
        returned_ious = output[1].float()
        multimask = bool(kwargs.get("multimask_output", args[4] if len(args) > 4 else False))
        if multimask:
            # The decoder returned tokens 1..K-1; sam2 then keeps the highest predicted IoU.
            chosen = 1 + torch.argmax(all_ious[:, 1:], dim=-1)
        else:
            # Token 0, unless dynamic_multimask_via_stability swapped in the best multimask
            # token; the returned IoU tells which (it is copied from one of the two).
            best_multi = 1 + torch.argmax(all_ious[:, 1:], dim=-1)
            took_single = returned_ious[:, 0] == all_ious[:, 0]
            chosen = torch.where(took_single, torch.zeros_like(best_multi), best_multi)
        # The chosen mask among those returned (sam2 keeps the highest predicted IoU of the
        # multimask outputs; a single output is the only one). Its low-res logits give the
        # mask-based baselines, computed here on the engine's device.
        returned = output[0]
        pick = torch.argmax(returned_ious, dim=-1) if multimask else torch.zeros_like(chosen)
        chosen_logits = returned[
            torch.arange(returned.shape[0], device=returned.device), pick.to(returned.device)
        ]
        kept = None
        if self.keep_logits:
            b, _, h, w = returned.shape
            kept = torch.full((b, self._k, h, w), float("nan"), device=returned.device)
            if multimask:
                kept[:, 1:] = returned.float()
            else:
                kept[torch.arange(b, device=returned.device), chosen.to(returned.device)] = returned[
                    :, 0
                ].float()
            # sam2 replaces every mask of an absent object (object score <= 0) by NO_OBJ_SCORE.
            # (torch.where, not boolean indexing: indexing by a device mask synchronises.)
            absent = (output[3][:, 0] <= 0)[:, None, None, None]
            kept = torch.where(absent & ~torch.isnan(kept), torch.full_like(kept, -1024.0), kept)
        s = self._first
        self.calls.append(
            DeviceCall(
                iou_tokens=hs[:, s].detach().float(),
                mask_tokens=hs[:, s + 1 : s + 1 + self._k].detach().float(),
                candidate_ious=all_ious.detach(),
                chosen=chosen.detach().to(torch.int64),
                object_score_logits=output[3][:, 0].detach().float(),
                chosen_logits=chosen_logits.detach(),  # its entropy and stability: later
                candidate_logits=kept,
            )
        )
