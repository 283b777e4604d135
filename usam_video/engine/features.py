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
  head's relative AUC from 0.76 to 0.87);
* ``colour_to_cond``: the CIE Lab distance between the mean colour under the mask and the mean
  colour under the object's mask on its last conditioning frame (each mask eroded by one cell of
  a :data:`COLOUR_GRID` grid). A mask that jumped onto a distractor of another colour, or onto
  the background, changes colour even where its shape and area stay plausible (held-out
  generated videos: the release head's coverage at 5 % risk from 0.8x to about 1x the oracle's).
  :data:`EMPTY_COLOUR_DISTANCE` where the mask (or its reference) covers no cell of the grid;
  NaN where the frame's image was not given.

Everything runs on the engine's device over the masks sam2 already produced at video
resolution (the colour also over the frame's image at model resolution, which sam2 already
holds on the device, shrunk to a small grid by :func:`colour_thumbnail`), and nothing is copied
back: the features stay on the device for the heads and
travel to the host in the frame's one packed copy (:mod:`usam_video.engine.frames`). The host
facts they need (which objects are tracked, which frames condition them) go up in one small
``non_blocking`` upload per frame.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from usam_video.engine.transfer import to_device

__all__ = [
    "COLOUR_GRID",
    "EMPTY_COLOUR_DISTANCE",
    "VideoFeatureTracker",
    "colour_thumbnail",
    "count_true",
]

#: Side of the grid the colour feature reads: the model-resolution image is average-pooled to at
#: most ``COLOUR_GRID x COLOUR_GRID`` and the masks sampled at the cells' centres. At 1080p a cell
#: is 8 x 15 pixels: an object smaller than that has no colour of its own at this grid.
COLOUR_GRID = 128
#: ``colour_to_cond`` of a mask (or reference mask) that covers no cell of the grid: nothing is
#: left to compare, so the value says "far", as for a track that jumped onto another generated
#: object (90 to 200; good labels mostly under 5). Finite, so that every tracked object's
#: features are numbers. What it is matters little to the release head, which also sees
#: ``area_fraction`` 0: refitted on heads seeds 7+8 with 0, 150, 300 or NaN (the training mean)
#: there, coverage at 5 % risk on test seed 31 was 0.630 to 0.631 for all four.
EMPTY_COLOUR_DISTANCE = 150.0
#: A core (the mask eroded by one cell) of fewer cells than this is too thin to trust: the whole
#: mask is used instead.
_MIN_CORE_CELLS = 10
# sam2's ImageNet normalisation of its input frames (utils/misc.py load_video_frames), undone to
# get RGB back from the image sam2 holds.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# sRGB (D65) -> XYZ, each row over the D65 white point's component, for CIE Lab.
_RGB_TO_XYZ = (
    (0.4124 / 0.95047, 0.3576 / 0.95047, 0.1805 / 0.95047),
    (0.2126, 0.7152, 0.0722),
    (0.0193 / 1.08883, 0.1192 / 1.08883, 0.9505 / 1.08883),
)


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


def _overlap_with_others(flat: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """``overlap_others`` float32 ``(B, O)``: the fraction of each mask (bool ``(B, O, N)``,
    areas ``(B, O)``) that another object's mask also holds (0 for an empty mask)."""
    nb, o, n = flat.shape
    # A pixel of object i is covered by another object where at least two masks hold it
    # (summed as bytes: at most 255 objects, the palette's limit).
    if o > 1:
        cover = flat.view(torch.uint8).sum(dim=1, dtype=torch.uint8)
        covered = count_true((flat & (cover >= 2)[:, None]).reshape(nb * o, n)).reshape(nb, o)
    else:
        covered = torch.zeros_like(area)
    return torch.where(area > 0, covered / area.clamp_min(1), torch.zeros_like(area))


def colour_thumbnail(image: torch.Tensor, grid: int = COLOUR_GRID) -> torch.Tensor:
    """The frame's image as the colour feature reads it: ``float32`` ``(3, S, S)`` (or
    ``(1, 3, S, S)``, as sam2 caches it) normalised as sam2's input -> ``float32`` ``(3, G, G)``
    on the same device, ``G = min(S, grid)``, each cell the mean of the pixels it covers (still
    normalised: the tracker turns a batch of them into Lab).

    Called once per frame, so that only the small grid waits for the batch, not sam2's image.
    """
    image = image.reshape(-1, *image.shape[-2:])[-3:].float()
    s = image.shape[-1]
    if s <= grid:
        return image
    if s % grid == 0:
        # SAM 2's 1024 px input: the mean of 8 x 8 pixels per cell, as sums over rows then
        # columns of reshaped views (a third of avg_pool2d's time on one CPU thread).
        k = s // grid
        rows = image.reshape(3, grid, k, s).sum(dim=2)
        return rows.reshape(3, grid, grid, k).sum(dim=3) / float(k * k)
    return torch.nn.functional.adaptive_avg_pool2d(image[None], grid)[0]


def _lab(rgb: torch.Tensor, rgb_to_xyz: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) of sRGB in [0, 1]: ``float32`` ``(B, 3, N)`` -> ``float32`` ``(B, N, 3)``
    (L in [0, 100], a and b about [-110, 110]); ``rgb_to_xyz`` is :data:`_RGB_TO_XYZ` on the
    device."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = rgb_to_xyz @ linear  # (B, 3, N), each over the white point's component
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    lab = torch.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])])
    return lab.permute(1, 2, 0)


def _erode(cells: torch.Tensor) -> torch.Tensor:
    """``bool`` ``(..., G, G)`` eroded by one cell (a 3 x 3 minimum; the grid's edge does not
    erode), as two separable passes of ``&`` over shifted views: a tenth of the time of a
    ``max_pool2d`` on floats on one CPU thread."""
    rows = cells.clone()
    rows[..., 1:, :] &= cells[..., :-1, :]
    rows[..., :-1, :] &= cells[..., 1:, :]
    core = rows.clone()
    core[..., :, 1:] &= rows[..., :, :-1]
    core[..., :, :-1] &= rows[..., :, 1:]
    return core


def _mean_colours(cells: torch.Tensor, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Lab under each mask's core: ``cells`` bool ``(B, O, G, G)`` (the masks at the grid's
    cell centres), ``lab`` float32 ``(B, G*G, 3)`` -> float32 ``(B, O, 3)`` and the cells used,
    float32 ``(B, O)`` (0 where the mask covers no cell; its mean is then 0, not meaningful).

    The core is the mask eroded by one cell: edge cells mix the object with its background.
    A core of fewer than ``_MIN_CORE_CELLS`` cells (a thin object) gives way to the whole mask.
    """
    nb, o, gh, gw = cells.shape
    whole = cells.reshape(nb, o, gh * gw)
    core = _erode(cells).reshape(nb, o, gh * gw)
    thin = count_true(core.reshape(nb * o, -1)).reshape(nb, o) < _MIN_CORE_CELLS
    weights = torch.where(thin[:, :, None], whole, core).float()
    used = weights.sum(dim=2)
    sums = torch.bmm(weights, lab)
    return sums / used.clamp_min(1.0)[:, :, None], used


class VideoFeatureTracker:
    """Keeps, per object, what the next frame's features compare against.

    Frames are taken a batch at a time (:meth:`update_many`): the per-pixel counts of the batch
    run as one operation each and the per-object arithmetic on ``(B, O)`` blocks, so the number
    of device operations per frame falls with the batch (each one is a kernel launch on a GPU
    and a hand-over of the interpreter lock beside SAM 2's thread on the CPU). What carries from
    frame to frame (the previous mask and area, the last conditioning area, the last object
    logit, the extremes) is resolved on the host from which objects are tracked and conditioned,
    as gathers of the batch's own values.

    Args:
        num_objects: ``O``, every object of the session (untracked ones get NaN rows).
        device: where the masks live (the engine's device).
    """

    #: Sign that turns the three extremes (min, max, min) into minima: ``max(a, b) = -min(-a, -b)``
    #: exactly.
    _EXTREME_SIGNS = (1.0, -1.0, 1.0)

    def __init__(self, num_objects: int, device: torch.device):
        self.num_objects = num_objects
        self.device = device
        self._prev: torch.Tensor | None = None  # bool (O, N): last frame's masks
        self._prev_area = torch.zeros(num_objects, device=device)
        self._cond_area = torch.zeros(num_objects, device=device)
        self._cond_ptrs: list[torch.Tensor | None] = [None] * num_objects  # (M, C) unit pointers
        self._prev_logit = torch.full((num_objects,), float("nan"), device=device)
        self._extremes = torch.zeros((num_objects, 3), device=device)  # min prev_iou, max overlap, min area
        self._signs = torch.tensor(self._EXTREME_SIGNS, device=device)
        # The colour feature's reference (mean Lab on the last conditioning frame, NaN if none),
        # its constants (made once: a tensor from host values is an upload) and the grid's
        # sample rows and columns of the masks (made on the first frame, which gives the size).
        self._cond_colour = torch.full((num_objects, 3), float("nan"), device=device)
        self._rgb_mean = torch.tensor(_IMAGENET_MEAN, device=device)[:, None]
        self._rgb_std = torch.tensor(_IMAGENET_STD, device=device)[:, None]
        self._rgb_to_xyz = torch.tensor(_RGB_TO_XYZ, device=device)
        self._grid_at: dict[tuple[int, int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
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
        obj_ptrs: Sequence[torch.Tensor | None],
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The features of one frame: :meth:`update_many` with a batch of one.

        Args:
            masks: ``bool`` ``(O, H, W)`` on the device; tracked, is_cond: ``bool`` ``(O,)`` host
                arrays; object_score_logits: ``float32`` ``(O,)``; obj_ptrs: ``O`` pointers or None.
            image: the frame as sam2's input, ``float32`` ``(3, S, S)`` normalised, on the device
                (None: ``colour_to_cond`` is NaN).

        Returns:
            ``float32`` ``(O, F)`` on the device, NaN rows for untracked objects.
        """
        logits = torch.as_tensor(object_score_logits)
        return self.update_many(
            [frame_index],
            masks[None],
            np.asarray(tracked, bool)[None],
            np.asarray(is_cond, bool)[None],
            logits[None],
            [obj_ptrs],
            None if image is None else colour_thumbnail(image)[None],
        )[0]

    def update_many(
        self,
        frame_indices: Sequence[int],
        masks: torch.Tensor,
        tracked: np.ndarray,
        is_cond: np.ndarray,
        object_score_logits: torch.Tensor | np.ndarray,
        obj_ptrs: Sequence[Sequence[torch.Tensor | None]],
        thumbnails: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The features of ``B`` consecutive frames, in frame order (call again with the next
        frames). Nothing here waits for the device.

        Args:
            frame_indices: the ``B`` frames' indices, increasing.
            masks: ``bool`` ``(B, O, H, W)`` on the device: every object's mask (empty if
                untracked).
            tracked: ``bool`` ``(B, O)``; is_cond: ``bool`` ``(B, O)``: a conditioning frame of
                the object (a prompt or a correction). Host arrays.
            object_score_logits: ``float32`` ``(B, O)`` on the device (a host array is uploaded).
            obj_ptrs: per frame, per object its object pointer ``(C,)`` on the device, or None.
            thumbnails: ``float32`` ``(B, 3, G, G)`` the frames' images by
                :func:`colour_thumbnail`, on the device (None: ``colour_to_cond`` is NaN).

        Returns:
            ``float32`` ``(B, O, F)`` on the device, NaN rows for untracked objects.
        """
        nb, o = len(frame_indices), self.num_objects
        tracked = np.asarray(tracked, bool).reshape(nb, o)
        is_cond = np.asarray(is_cond, bool).reshape(nb, o)
        first, since, reset_row, live_row = self._advance_host_facts(frame_indices, tracked, is_cond)
        first_t, cond_t, live, since_t, reset_at, live_at = self._upload_facts(
            first, is_cond, tracked, since, reset_row, live_row
        )
        logits = torch.as_tensor(object_score_logits).to(self.device, torch.float32).reshape(nb, o)

        flat = masks.reshape(nb, o, -1)
        n = flat.shape[2]
        # Counts are exact integers (float32 holds them exactly below 2**24 pixels).
        area = count_true(flat.reshape(nb * o, n)).reshape(nb, o)
        prev_iou, area_prev = self._previous_frame_features(flat, area, first_t)
        # The area on each object's last conditioning (or entering) frame, else the carried one.
        cond_area = torch.cat([self._cond_area[None], area]).gather(0, reset_at)
        area_cond = torch.log((area + 1) / (cond_area + 1))
        overlap = _overlap_with_others(flat, area)
        cos = self._pointer_cosines(tracked, is_cond, obj_ptrs)
        # The object logit of each object's last tracked frame before this one (NaN if none).
        prev_logit = torch.cat([self._prev_logit[None], logits]).gather(0, live_at)
        had_logit = (~first_t) & ~torch.isnan(prev_logit[:nb])
        trend = torch.where(had_logit, logits - prev_logit[:nb], torch.zeros_like(logits))
        extremes_t, carried = self._scan_extremes(prev_iou, overlap, area_cond, cond_t | first_t, live)
        colour = self._colour_to_cond(masks, thumbnails, reset_at)

        self._prev = flat[-1]  # the caller's masks of the last frame, never modified afterwards
        self._prev_area = area[-1]
        self._cond_area = cond_area[-1]
        self._prev_logit = prev_logit[nb]
        self._extremes = carried * self._signs
        columns = [prev_iou, area_prev, area_cond, overlap, cos, trend, since_t, area / max(n, 1)]
        out = torch.cat([torch.stack(columns, dim=2), extremes_t, colour[:, :, None]], dim=2)
        return torch.where(live[:, :, None], out, torch.full_like(out, float("nan")))

    def _colour_to_cond(
        self, masks: torch.Tensor, thumbnails: torch.Tensor | None, reset_at: torch.Tensor
    ) -> torch.Tensor:
        """``colour_to_cond`` float32 ``(B, O)`` of the masks ``bool`` ``(B, O, H, W)``: the Lab
        distance of their mean colour to the one on each object's last conditioning (or
        entering) frame, ``reset_at`` as :meth:`_upload_facts` gives it. Carries the reference
        past the batch. NaN everywhere without ``thumbnails``."""
        nb, o, h, w = masks.shape
        if thumbnails is None:
            return torch.full((nb, o), float("nan"), device=masks.device)
        g_h, g_w = thumbnails.shape[2:]
        key = (h, w, g_h, g_w)
        if key not in self._grid_at:
            # Each cell's centre in video pixels: the thumbnail is the whole frame, stretched.
            self._grid_at[key] = (
                to_device(((np.arange(g_h) + 0.5) * h / g_h).astype(np.int64), self.device),
                to_device(((np.arange(g_w) + 0.5) * w / g_w).astype(np.int64), self.device),
            )
        rows, cols = self._grid_at[key]
        # Rows first (a small copy), as bytes: torch's bool index_select takes twice as long.
        flat = masks.reshape(nb * o, h, w).view(torch.uint8)
        cells = flat.index_select(1, rows).index_select(2, cols).view(torch.bool).reshape(nb, o, g_h, g_w)
        rgb = (thumbnails.reshape(nb, 3, -1) * self._rgb_std + self._rgb_mean).clamp(0.0, 1.0)
        mean, used = _mean_colours(cells, _lab(rgb, self._rgb_to_xyz))
        mean = torch.where((used > 0)[:, :, None], mean, torch.full_like(mean, float("nan")))
        index = reset_at[:, :, None].expand(nb, o, 3)
        reference = torch.cat([self._cond_colour[None], mean]).gather(0, index)
        self._cond_colour = reference[-1]
        distance = torch.linalg.vector_norm(mean - reference, dim=2)
        # NaN here means an empty mask or reference (the image was given): a defined value.
        return torch.where(torch.isnan(distance), torch.full_like(distance, EMPTY_COLOUR_DISTANCE), distance)

    def _advance_host_facts(
        self, frame_indices: Sequence[int], tracked: np.ndarray, is_cond: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Host facts, frame by frame, carried past the batch in ``_last_cond`` and ``_seen``.

        Returns ``first`` bool ``(B, O)`` (not yet seen: the object enters, a fresh start),
        ``since`` float32 ``(B, O)`` (frames since the last conditioning frame), ``reset_row``
        int64 ``(B, O)`` (for each frame the batch row of the last reset, conditioning or
        entering, at or before it) and ``live_row`` int64 ``(B + 1, O)`` (the last tracked row
        before each frame, and after the batch). Rows are -1 before this batch, i.e. the
        carried state.
        """
        nb, o = tracked.shape
        first = np.empty((nb, o), bool)
        since = np.empty((nb, o), np.float32)
        reset_row = np.empty((nb, o), np.int64)
        live_row = np.empty((nb + 1, o), np.int64)
        last_reset = np.full(o, -1, np.int64)
        last_live = np.full(o, -1, np.int64)
        for b, t in enumerate(frame_indices):
            first[b] = ~self._seen
            reset = is_cond[b] | first[b]
            self._last_cond = np.where(reset, t, self._last_cond)
            since[b] = t - self._last_cond
            self._seen |= tracked[b]
            last_reset = np.where(reset, b, last_reset)
            reset_row[b] = last_reset
            live_row[b] = last_live
            last_live = np.where(tracked[b], b, last_live)
        live_row[nb] = last_live
        return first, since, reset_row, live_row

    def _upload_facts(
        self,
        first: np.ndarray,
        is_cond: np.ndarray,
        tracked: np.ndarray,
        since: np.ndarray,
        reset_row: np.ndarray,
        live_row: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One upload of the batch's host facts (as :meth:`_advance_host_facts` returns them).

        Returns on the device: ``first``, ``is_cond``, ``tracked`` as bool ``(B, O)``, ``since``
        float32 ``(B, O)``, and the reset and live rows as int64 ``(B, O)`` and ``(B + 1, O)``,
        shifted by one so that 0 is the carried state (gather indices into a stack of the
        carried value and the batch's).
        """
        nb, o = tracked.shape
        facts = to_device(
            np.concatenate(
                [np.stack([first, is_cond, tracked, since]).astype(np.float32).reshape(4 * nb, o),
                 (np.concatenate([reset_row, live_row]) + 1).astype(np.float32)]
            ),
            self.device,
        )  # fmt: skip
        first_t, cond_t, live = facts[:nb] > 0, facts[nb : 2 * nb] > 0, facts[2 * nb : 3 * nb] > 0
        since_t = facts[3 * nb : 4 * nb]
        rows = facts[4 * nb :].long()
        return first_t, cond_t, live, since_t, rows[:nb], rows[nb:]

    def _previous_frame_features(
        self, flat: torch.Tensor, area: torch.Tensor, first_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``prev_iou`` and ``area_prev_ratio``, float32 ``(B, O)``, of the masks ``flat`` (bool
        ``(B, O, N)``, areas ``(B, O)``) against each one's previous frame: the carried mask for
        the batch's first frame. An entering object (``first_t``) gets 1 and 0."""
        nb, o, n = flat.shape
        if self._prev is None:
            inter = [torch.zeros_like(area[:1])]
        else:
            inter = [count_true(flat[0] & self._prev)[None]]
        if nb > 1:
            inter.append(count_true((flat[1:] & flat[:-1]).reshape((nb - 1) * o, n)).reshape(nb - 1, o))
        inter_t = torch.cat(inter) if len(inter) > 1 else inter[0]
        prev_area = torch.cat([self._prev_area[None], area[:-1]])
        union = area + prev_area - inter_t
        prev_iou = torch.where(union > 0, inter_t / union.clamp_min(1), torch.ones_like(union))
        prev_iou = torch.where(first_t, torch.ones_like(prev_iou), prev_iou)
        area_prev = torch.where(first_t, torch.zeros_like(area), torch.log((area + 1) / (prev_area + 1)))
        return prev_iou, area_prev

    def _scan_extremes(
        self,
        prev_iou: torch.Tensor,
        overlap: torch.Tensor,
        area_cond: torch.Tensor,
        restart: torch.Tensor,
        live: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extremes since the last conditioning frame (a conditioning or entering frame,
        ``restart`` bool ``(B, O)``, starts them afresh), carried only through tracked frames
        (``live``): a short scan over the batch, as minima of signed values.

        Returns the extremes float32 ``(B, O, 3)`` and the signed carry ``(O, 3)`` after the
        batch.
        """
        now = torch.stack([prev_iou, overlap, area_cond], dim=2) * self._signs
        carried = self._extremes * self._signs
        extremes = []
        steps = zip(now.unbind(0), restart[:, :, None].unbind(0), live[:, :, None].unbind(0), strict=True)
        for now_b, restart_b, live_b in steps:
            kept = torch.where(restart_b, now_b, torch.minimum(carried, now_b))
            carried = torch.where(live_b, kept, carried)
            extremes.append(kept)
        return torch.stack(extremes) * self._signs, carried

    def _pointer_cosines(
        self, tracked: np.ndarray, is_cond: np.ndarray, obj_ptrs: Sequence[Sequence[torch.Tensor | None]]
    ) -> torch.Tensor:
        """``float32`` ``(B, O)``: per object and frame, the largest cosine of its object pointer
        with the pointers of its conditioning frames so far (its first tracked frame's pointer
        when it has none yet); 1 where it has no pointer."""
        nb, o = tracked.shape
        cos = torch.ones((nb, o), device=self.device)
        for i in range(o):
            frames = [b for b in range(nb) if obj_ptrs[b][i] is not None and tracked[b, i]]
            if not frames:
                continue
            units = torch.nn.functional.normalize(
                torch.stack([obj_ptrs[b][i].reshape(-1) for b in frames]).float(), dim=1
            )
            # Which of these pointers join the bank: conditioning frames, or the first one seen.
            size = 0 if self._cond_ptrs[i] is None else self._cond_ptrs[i].shape[0]
            joins = []
            for j, b in enumerate(frames):
                if is_cond[b, i] or size + len(joins) == 0:
                    joins.append(j)
            bank = self._cond_ptrs[i]
            if joins:
                new = units[joins]
                bank = new if bank is None else torch.cat([bank, new])
                self._cond_ptrs[i] = bank
            assert bank is not None
            # Frame j sees the old bank and the pointers that joined at or before it.
            sims = (units[:, None, :] * bank[None]).sum(dim=2)  # (k, M)
            visible = np.ones((len(frames), bank.shape[0]), bool)
            for m, j in enumerate(joins):
                visible[:j, size + m] = False
            if not visible.all():
                sims = torch.where(to_device(visible, self.device), sims, torch.full_like(sims, -torch.inf))
            cos[frames, i] = sims.max(dim=1).values
        return cos
