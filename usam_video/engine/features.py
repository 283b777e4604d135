"""Video-aware features of every tracked object on every frame, computed where the data is.

A decoder token describes one frame; it cannot see that an object's mask has jumped onto
another object (an identity switch), shrunk to nothing, or drifted away from what the
conditioning frames showed. These features can (names and order:
:data:`usam_video.score_registry.VIDEO_FEATURES`):

* ``prev_iou``: IoU of the mask with the object's mask on the previous frame;
* ``area_prev_ratio``, ``area_cond_ratio``: ``log((a + 1) / (a_ref + 1))`` of the mask area
  against the previous frame's and against the last conditioning frame's;
* ``overlap_others``: fraction of the mask covered by other objects' masks;
* ``ptr_cos_cond``: cosine of SAM 2's object pointer with the pointers of the object's
  conditioning frames (the largest);
* ``object_score_trend``: object-presence logit minus the previous frame's;
* ``frames_since_cond``: frames since the object's last conditioning frame;
* ``area_fraction``: mask area over the frame area;
* ``min_prev_iou_since_cond``, ``max_overlap_since_cond``, ``min_area_cond_ratio_since_cond``:
  the extremes of three of the above since the object's last conditioning frame. A track that
  jumped onto another object follows it smoothly afterwards, so the frame-to-frame features look
  normal again; their extremes remember the jump (on held-out videos they raised the IoU video
  head's relative AUC from 0.76 to 0.87).

Everything runs on the engine's device over the masks sam2 already produced at video
resolution, and nothing is copied back: the features stay on the device for the heads and
travel to the host in the frame's one packed copy (:mod:`usam_video.engine.frames`). The host
facts they need (which objects are tracked, which frames condition them) go up in one small
``non_blocking`` upload per frame.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from usam_video.engine.transfer import to_device

__all__ = ["VideoFeatureTracker", "count_true"]


@functools.lru_cache(maxsize=64)
def _byte_block(n: int) -> int:
    """The largest divisor of ``n`` that is at most 255 (a row of ``n`` 0/1 bytes splits into
    that many parts, whose sums fit in a byte)."""
    return max(k for k in range(1, min(n, 255) + 1) if n % k == 0)


def count_true(flat: torch.Tensor) -> torch.Tensor:
    """Per-row number of True values: ``bool`` ``(O, N)`` -> ``float32`` ``(O,)``, exact.

    torch's own ``sum(dim=1)`` of a bool tensor converts every element first (40 ms for eight
    1920x1080 masks on one CPU thread); here the bytes are summed as ``uint8`` across ``k <= 255``
    slices of each row (a vectorised add that cannot overflow), then the partial sums (1.5 ms).
    """
    o, n = flat.shape
    k = _byte_block(n) if n else 1
    if k < 16:  # an awkward length (e.g. prime): the plain sum
        return flat.sum(dim=1, dtype=torch.float32)
    partial = flat.reshape(o, k, n // k).view(torch.uint8).sum(dim=1, dtype=torch.uint8)
    return partial.sum(dim=1, dtype=torch.int32).to(torch.float32)


class VideoFeatureTracker:
    """Keeps, per object, what the next frame's features compare against.

    Args:
        num_objects: ``O``, every object of the session (untracked ones get NaN rows).
        device: where the masks live (the engine's device).
    """

    def __init__(self, num_objects: int, device: torch.device):
        self.num_objects = num_objects
        self.device = device
        self._prev: torch.Tensor | None = None  # bool (O, N): last frame's masks
        self._prev_area = torch.zeros(num_objects, device=device)
        self._cond_area = torch.zeros(num_objects, device=device)
        self._cond_ptrs: list[list[torch.Tensor]] = [[] for _ in range(num_objects)]
        self._prev_logit = torch.full((num_objects,), float("nan"), device=device)
        self._extremes = torch.zeros((num_objects, 3), device=device)  # min prev_iou, max overlap, min area
        # Host facts (from which objects are tracked and conditioned, never from device values).
        self._last_cond = np.full(num_objects, -1, np.int64)
        self._seen = np.zeros(num_objects, bool)

    def update(
        self,
        frame_index: int,
        masks: torch.Tensor,
        tracked: np.ndarray,
        is_cond: np.ndarray,
        object_score_logits: torch.Tensor | np.ndarray,
        obj_ptrs: list[torch.Tensor | None],
    ) -> torch.Tensor:
        """The features of one frame; call once per frame, in frame order. Nothing here waits for
        the device.

        Args:
            masks: ``bool`` ``(O, H, W)`` on the device: every object's mask (empty if untracked).
            tracked: ``bool`` ``(O,)``; is_cond: ``bool`` ``(O,)``: a conditioning frame of the
                object (a prompt or a correction). Host arrays.
            object_score_logits: ``float32`` ``(O,)`` on the device (a host array is uploaded).
            obj_ptrs: per object its object pointer ``(C,)`` on the device, or None.

        Returns:
            ``float32`` ``(O, F)`` on the device, NaN rows for untracked objects.
        """
        o = self.num_objects
        tracked = np.asarray(tracked, bool)
        is_cond = np.asarray(is_cond, bool)
        seen = self._seen.copy()
        self._last_cond = np.where(is_cond | ~seen, frame_index, self._last_cond)
        since = (frame_index - self._last_cond).astype(np.float32)
        self._seen |= tracked
        # One upload of this frame's host facts: not yet seen, conditioning, tracked, since.
        facts = to_device(np.stack([~seen, is_cond, tracked, since]).astype(np.float32), self.device)
        first, cond, live = facts[0] > 0, facts[1] > 0, facts[2] > 0
        logits = torch.as_tensor(object_score_logits).to(self.device, torch.float32)

        flat = masks.reshape(o, -1)
        n = flat.shape[1]
        # Counts are exact integers (float32 holds them exactly below 2**24 pixels).
        area = count_true(flat)
        if self._prev is None:
            inter = torch.zeros_like(area)
        else:
            inter = count_true(flat & self._prev)
        union = area + self._prev_area - inter
        prev_iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        prev_iou = torch.where(first, torch.ones_like(prev_iou), prev_iou)
        area_prev = torch.where(first, torch.zeros_like(area), torch.log((area + 1) / (self._prev_area + 1)))
        self._cond_area = torch.where(cond | first, area, self._cond_area)
        area_cond = torch.log((area + 1) / (self._cond_area + 1))
        # A pixel of object i is covered by another object where at least two masks hold it
        # (summed as bytes: at most 255 objects, the palette's limit).
        if o > 1:
            cover = flat.view(torch.uint8).sum(dim=0, dtype=torch.uint8)
            covered = count_true(flat & (cover >= 2)[None])
        else:
            covered = torch.zeros_like(area)
        overlap = torch.where(area > 0, covered / area.clamp_min(1), torch.zeros_like(area))
        cos = torch.ones(o, device=self.device)
        for i in range(o):
            ptr = obj_ptrs[i]
            if ptr is None or not tracked[i]:
                continue
            ptr = torch.nn.functional.normalize(ptr.float().reshape(-1), dim=0)
            if is_cond[i] or not self._cond_ptrs[i]:
                self._cond_ptrs[i].append(ptr)
            bank = torch.stack(self._cond_ptrs[i])
            cos[i] = (bank @ ptr).max()
        self._prev = flat  # the caller's masks of this frame, never modified afterwards
        self._prev_area = area

        had_logit = (~first) & ~torch.isnan(self._prev_logit)
        trend = torch.where(had_logit, logits - self._prev_logit, torch.zeros_like(logits))
        self._prev_logit = torch.where(live, logits, self._prev_logit)
        # Extremes since the last conditioning frame (a conditioning frame starts them afresh).
        now = torch.stack([prev_iou, overlap, area_cond], dim=1)
        kept = torch.stack(
            [
                torch.minimum(self._extremes[:, 0], now[:, 0]),
                torch.maximum(self._extremes[:, 1], now[:, 1]),
                torch.minimum(self._extremes[:, 2], now[:, 2]),
            ],
            dim=1,
        )
        extremes = torch.where((cond | first)[:, None], now, kept)
        self._extremes = torch.where(live[:, None], extremes, self._extremes)
        out = torch.cat(
            [
                torch.stack(
                    [prev_iou, area_prev, area_cond, overlap, cos, trend, facts[3], area / max(n, 1)], dim=1
                ),
                extremes,
            ],
            dim=1,
        ).float()
        return torch.where(live[:, None], out, torch.full_like(out, float("nan")))
