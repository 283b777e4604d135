"""Training SAM 2 on generated clips, with the sam2 modules' own image and tracking steps.

This module drives the model the way ``SAM2Base.track_step`` does at inference (image encoder
once per frame, memory attention over the frames already tracked, prompt encoder + mask decoder,
memory encoder), with gradients on. sam2's own trainer (the ``training`` package, run by
:mod:`usam_video.engine.sam2_trainer`) is the path for the official checkpoints on GPUs; this one
stays for generated clips and for releases, because it keeps a frame whose objects are partly
released (``known``) where sam2's loader drops the whole frame, and it runs on a CPU without
patching (its module docstring lists what the two have in common).
In the spirit of SAM 2's recipe:

- clips of ``clip_frames`` frames; the first frame is prompted with its ground-truth mask, a
  box, or clicks; later frames are tracked through memory; now and then a tracked frame gets
  a corrective click (where the prediction is wrong) or a dense set of clicks and is re-run
  with them, as a user correction would be;
- a curriculum: the first ``image_fraction`` of the steps trains the image path alone (every
  frame prompted by clicks or a box, no memory), so the encoder and decoder learn to segment
  before memory attention has anything to match;
- losses on every decoded frame: focal (x20) + dice on the masks (the minimum over the
  candidates when the decoder returns several), the squared error between the predicted and
  the true IoU of every candidate, and binary cross-entropy of the object score.

Two details of sam2 matter here (both met by the first probe of this recipe):
- with a mask prompt, ``use_mask_input_as_output_without_sam`` returns the input mask itself,
  so such frames give no mask loss; the project's configs turn it off, so the first frame's
  mask is decoded like any prompt and trains the mask-prompt path;
- sam2 replaces the masks of an object it scores absent by -1024, which passes no gradient.
  The losses therefore read the decoder's own (ungated) outputs through a forward hook.

Checkpoints are ``{"model": state_dict}``, the format sam2's loader (and :func:`build_model`)
reads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from usam_video.config import TrainingRecipe
from usam_video.engine.predictor import preprocess_frames
from usam_video.errors import InputError

__all__ = ["TrainingClip", "TrainingState", "train_sam2", "save_checkpoint"]


class TrainingClip(Protocol):
    """A clip to train on: ``frames`` ``uint8`` ``(T, H, W, 3)`` RGB and ``labels`` ``uint8``
    ``(T, H, W)`` index maps (0 background, 1..N objects). The engine does not know where clips
    come from: :mod:`usam_video.pipeline.train_model` renders them
    (:func:`usam_video.datasets.rendering.training_clip`) or cuts them from a dataset.

    A clip may also have ``known``, ``bool`` ``(T, N)``: whether object ``n + 1``'s label on
    frame ``t`` is known (a release leaves uncertain frame-objects out). An unknown
    frame-object gives no loss and is never a prompt; every object must be known, and visible,
    on frame 0, which prompts it. Without ``known`` every frame-object is known.
    """

    @property
    def frames(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...


@dataclass
class TrainingState:
    """Progress of a run: resumable from a checkpoint's ``train_state`` entry."""

    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _lr_at(recipe: TrainingRecipe, step: int) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.min_lr + 0.5 * (recipe.lr - recipe.min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class _DecoderTap:
    """Forward hook on the mask decoder: its last (ungated) masks, IoUs and object scores."""

    def __init__(self, decoder: torch.nn.Module):
        self.last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._handle = decoder.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        masks, ious, _tokens, object_logits = output
        self.last = (masks, ious, object_logits)

    def take(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.last is None:
            raise RuntimeError("the mask decoder was not called")
        out, self.last = self.last, None
        return out

    def close(self) -> None:
        self._handle.remove()


def _focal(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss, mean over pixels.

    ``(B, M, H, W)`` logits and a ``(B, 1, H, W)`` 0/1 target -> ``(B, M)``.
    """
    target = target.expand_as(logits)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * loss).flatten(2).mean(-1)


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss ``(B, M)`` of ``(B, M, H, W)`` logits against a ``(B, 1, H, W)`` target."""
    prob = logits.sigmoid().flatten(2)
    target = target.flatten(2)
    numerator = 2 * (prob * target).sum(-1)
    denominator = prob.sum(-1) + target.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def _true_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU ``(B, M)`` of the binarised masks against the target (1 when both are empty)."""
    pred = (logits > 0).flatten(2)
    gt = (target > 0.5).flatten(2)
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _points_from_mask(
    rng: np.random.Generator, mask: np.ndarray, count: int, negatives: np.ndarray | None = None
) -> tuple[list[tuple[float, float]], list[int]]:
    """``count`` clicks: positives inside ``mask`` (``(S, S)`` bool), negatives in ``negatives``."""
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    inside = np.argwhere(mask)
    outside = np.argwhere(negatives) if negatives is not None else np.empty((0, 2), dtype=np.int64)
    for index in range(count):
        use_negative = index > 0 and len(outside) > 0 and rng.uniform() < 0.3
        pool = outside if use_negative or len(inside) == 0 else inside
        if len(pool) == 0:
            break
        y, x = pool[int(rng.integers(len(pool)))]
        points.append((float(x) + 0.5, float(y) + 0.5))
        labels.append(0 if pool is outside else 1)
    return points, labels


def _box(mask: np.ndarray, rng: np.random.Generator) -> tuple[list[tuple[float, float]], list[int]]:
    """A box prompt (sam2 encodes it as two points labelled 2 and 3), jittered by a few %."""
    ys, xs = np.nonzero(mask)
    size = mask.shape[0]
    jitter = rng.normal(0.0, 0.03 * size, size=4)
    x0 = float(np.clip(xs.min() + jitter[0], 0, size))
    y0 = float(np.clip(ys.min() + jitter[1], 0, size))
    x1 = float(np.clip(xs.max() + 1 + jitter[2], 0, size))
    y1 = float(np.clip(ys.max() + 1 + jitter[3], 0, size))
    return [(x0, y0), (x1, y1)], [2, 3]


def _point_inputs(
    prompts: list[tuple[list[tuple[float, float]], list[int]]], device: torch.device
) -> dict[str, torch.Tensor]:
    """Pad per-object prompts to one ``(B, P, 2)`` / ``(B, P)`` batch (label -1 pads)."""
    width = max(len(points) for points, _ in prompts)
    coords = torch.zeros(len(prompts), width, 2)
    labels = -torch.ones(len(prompts), width, dtype=torch.int32)
    for row, (points, point_labels) in enumerate(prompts):
        if points:
            coords[row, : len(points)] = torch.tensor(points)
            labels[row, : len(points)] = torch.tensor(point_labels, dtype=torch.int32)
    return {"point_coords": coords.to(device), "point_labels": labels.to(device)}


def _frame_losses(
    recipe: TrainingRecipe,
    tap: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    target: torch.Tensor,
    image_size: int,
    known: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one decoder call on ``B`` objects; ``target`` ``(B, 1, S, S)`` float 0/1;
    ``known`` float 0/1 ``(B,)``: an object whose label is unknown gives no loss at all (None:
    every label known)."""
    masks, ious, object_logits = tap
    logits = F.interpolate(masks.float(), size=(image_size, image_size), mode="bilinear", align_corners=False)
    present = (target.flatten(1).sum(-1) > 0).float()  # (B,)
    focal = _focal(logits, target)
    dice = _dice(logits, target)
    combined = recipe.focal_weight * focal + recipe.dice_weight * dice  # (B, M)
    best = combined.argmin(dim=1)
    rows = torch.arange(combined.size(0))
    mask_loss = combined[rows, best]
    picked = ious.detach().argmax(dim=1)
    if recipe.picked_weight > 0 and combined.size(1) > 1:
        # Also train the candidate sam2 keeps (highest predicted IoU): while the IoU head still
        # errs, the best candidate and the kept one differ, and only the kept one reaches the
        # output and the memory (an empty kept candidate on frame 0 loses the object for good).
        mask_loss = mask_loss + recipe.picked_weight * combined[rows, picked]
    true_iou = _true_iou(logits.detach(), target)
    error = ious.float() - true_iou
    # Squared error by default: the IoU head must rank the candidates (sam2 tracks with the
    # highest), and an L1 loss drives every candidate's prediction to the median, ~0 while most
    # candidates are empty early in training.
    iou_loss = (error.square() if recipe.iou_loss == "mse" else error.abs()).mean(dim=1)
    object_loss = F.binary_cross_entropy_with_logits(
        object_logits.float().flatten(), present, reduction="none"
    )
    # Masks and IoUs are supervised only where the object is present, as in SAM 2's losses.
    per_object = present * (mask_loss + recipe.iou_weight * iou_loss) + recipe.object_weight * object_loss
    if known is not None:
        # A label left out (not released) teaches nothing: not "absent", not a mask.
        per_object = per_object * known
        present = present * known
    # "iou": the best candidate (what the mask loss trains); "picked_iou": the candidate of
    # highest predicted IoU, the one sam2 keeps at inference.
    denominator = present.sum().clamp_min(1)
    stats = {
        "iou": float((true_iou[rows, best] * present).sum() / denominator),
        "picked_iou": float((true_iou[rows, picked] * present).sum() / denominator),
        "present": float(present.sum()),
    }
    return per_object.sum(), stats


def _image_step(
    model: Any,
    recipe: TrainingRecipe,
    rng: np.random.Generator,
    feats: list[torch.Tensor],
    sizes: list[tuple[int, int]],
    targets: torch.Tensor,
    decoder_tap: _DecoderTap,
    known: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SAM-style training on single frames: each visible object on each frame prompted alone
    (an object whose label is unknown there is neither prompted nor trained on)."""
    num_objects, num_frames = targets.shape[:2]
    image_size = targets.shape[-1]
    total = torch.zeros(())
    count = 0
    ious: list[float] = []
    picked: list[float] = []
    for t in range(num_frames):
        visible = [o for o in range(num_objects) if bool(known[o, t]) and bool(targets[o, t].any())]
        if not visible:
            continue
        prompts = []
        for o in visible:
            mask = targets[o, t].numpy() > 0.5
            choice = rng.uniform()
            if choice < 0.35:
                prompts.append(_box(mask, rng))
            else:
                prompts.append(
                    _points_from_mask(rng, mask, 1 if choice < 0.7 else int(rng.integers(2, 9)), ~mask)
                )
        # All visible objects of a frame share one decoder call (batch = objects).
        batch = len(visible)
        frame_feats = [x[:, t : t + 1].expand(-1, batch, -1) for x in feats]
        high_res = [
            x.permute(1, 2, 0).reshape(batch, x.size(2), *s)
            for x, s in zip(frame_feats[:-1], sizes[:-1], strict=True)
        ]
        # Image-only pass: the no-memory embedding, as sam2 does on an initial conditioning frame.
        pix = frame_feats[-1] + model.no_mem_embed
        pix = pix.permute(1, 2, 0).reshape(batch, -1, *sizes[-1])
        point_inputs = _point_inputs(prompts, pix.device)
        multimask = model._use_multimask(True, point_inputs)
        model._forward_sam_heads(
            pix, point_inputs=point_inputs, high_res_features=high_res, multimask_output=multimask
        )
        loss, stats = _frame_losses(recipe, decoder_tap.take(), targets[visible, t].unsqueeze(1), image_size)
        total = total + loss
        count += batch
        ious.append(stats["iou"])
        picked.append(stats["picked_iou"])
    return total / max(count, 1), {
        "iou": float(np.mean(ious)) if ious else 0.0,
        "picked_iou": float(np.mean(picked)) if picked else 0.0,
    }


@dataclass
class _ClipTracker:
    """sam2's own track step over one clip, all its objects batched.

    ``feats`` and ``pos`` are the backbone's per-level ``(HW, T, C)`` features and positions,
    ``sizes`` their ``(H, W)``; ``output_dict`` collects the tracked frames' outputs (the
    memory later frames attend to), keyed as in sam2's inference state.
    """

    model: Any
    feats: list[torch.Tensor]
    pos: list[torch.Tensor]
    sizes: list[tuple[int, int]]
    num_objects: int
    num_frames: int
    output_dict: dict[str, dict[int, Any]] = field(
        default_factory=lambda: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    )

    def run(
        self, t: int, is_init: bool, point_inputs: Any, mask_inputs: Any, prev_logits: Any = None
    ) -> dict[str, Any]:
        """Track frame ``t`` (memory attention, prompts, decoder) and encode its memory."""
        model = self.model
        frame_feats = [x[:, t : t + 1].expand(-1, self.num_objects, -1) for x in self.feats]
        frame_pos = [x[:, t : t + 1].expand(-1, self.num_objects, -1) for x in self.pos]
        out, sam_outputs, _, _ = model._track_step(
            t,
            is_init,
            frame_feats,
            frame_pos,
            self.sizes,
            point_inputs,
            mask_inputs,
            self.output_dict,
            self.num_frames,
            False,
            prev_logits,
        )
        _, _, _, low_res, high_res, obj_ptr, object_logits = sam_outputs
        out["pred_masks"], out["pred_masks_high_res"], out["obj_ptr"] = low_res, high_res, obj_ptr
        model._encode_memory_in_output(
            frame_feats, self.sizes, point_inputs, True, high_res, object_logits, out
        )
        return out


def _clip_step(
    model: Any,
    recipe: TrainingRecipe,
    rng: np.random.Generator,
    feats: list[torch.Tensor],
    pos: list[torch.Tensor],
    sizes: list[tuple[int, int]],
    targets: torch.Tensor,
    decoder_tap: _DecoderTap,
    known: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Track every object of a clip from a prompt on frame 0 through sam2's own track step.
    ``known`` float 0/1 ``(N, T)``: frame-objects whose label is unknown give no loss, and a
    frame with one is never corrected (a correction's clicks come from the labels)."""
    num_objects, num_frames = targets.shape[:2]
    image_size = targets.shape[-1]
    tracker = _ClipTracker(model, feats, pos, sizes, num_objects, num_frames)
    total = torch.zeros(())
    count = 0
    tracked_ious: list[float] = []
    tracked_picked: list[float] = []
    correction_frame = int(rng.integers(1, num_frames)) if rng.uniform() < recipe.correction_prob else -1

    out, loss = _track_first_frame(tracker, recipe, rng, targets, decoder_tap)
    if loss is not None:
        total, count = total + loss, count + num_objects
    tracker.output_dict["cond_frame_outputs"][0] = out

    for t in range(1, num_frames):
        target = targets[:, t].unsqueeze(1)
        out = tracker.run(t, False, None, None)
        loss, stats = _frame_losses(recipe, decoder_tap.take(), target, image_size, known[:, t])
        total, count = total + loss, count + int(known[:, t].sum())
        tracked_ious.append(stats["iou"])
        tracked_picked.append(stats["picked_iou"])
        if t == correction_frame and bool(known[:, t].all()):
            # The frame is re-decoded with its memory, the clicks and the previous logits, and
            # becomes a conditioning frame, as in sam2's video predictor.
            prompts = _correction_prompts(rng, targets, t, out["pred_masks"])
            out = tracker.run(t, False, _point_inputs(prompts, targets.device), None, out["pred_masks"])
            loss, _ = _frame_losses(recipe, decoder_tap.take(), target, image_size, known[:, t])
            total, count = total + loss, count + num_objects
            tracker.output_dict["cond_frame_outputs"][t] = out
        else:
            tracker.output_dict["non_cond_frame_outputs"][t] = out
    return total / max(count, 1), {
        "iou": float(np.mean(tracked_ious)) if tracked_ious else 0.0,
        "picked_iou": float(np.mean(tracked_picked)) if tracked_picked else 0.0,
    }


def _track_first_frame(
    tracker: _ClipTracker,
    recipe: TrainingRecipe,
    rng: np.random.Generator,
    targets: torch.Tensor,
    decoder_tap: _DecoderTap,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Frame 0 prompted by its mask, a box or clicks (one draw picks which, by the recipe's
    odds). Returns its output and its loss, None when sam2 copies a mask prompt to the output.
    ``targets``: float 0/1 ``(N, T, S, S)``."""
    model = tracker.model
    num_objects = tracker.num_objects
    image_size = targets.shape[-1]
    # sam2 requires a present object for a prompt; objects of this generator are all visible
    # on frame 0.
    choice = rng.uniform()
    first = [targets[o, 0].numpy() > 0.5 for o in range(num_objects)]
    if choice < recipe.mask_prompt_prob:
        out = tracker.run(0, True, None, targets[:, 0].unsqueeze(1))
        if model.use_mask_input_as_output_without_sam:
            decoder_tap.last = None  # the mask is copied to the output: nothing to learn here
            return out, None
    else:
        if choice < recipe.mask_prompt_prob + recipe.box_prompt_prob:
            prompts = [_box(mask, rng) for mask in first]
        else:
            clicks = int(rng.integers(1, 4))
            prompts = [_points_from_mask(rng, mask, clicks, ~mask) for mask in first]
        out = tracker.run(0, True, _point_inputs(prompts, targets.device), None)
    loss, _ = _frame_losses(recipe, decoder_tap.take(), targets[:, 0].unsqueeze(1), image_size)
    return out, loss


def _correction_prompts(
    rng: np.random.Generator, targets: torch.Tensor, t: int, pred_masks: torch.Tensor
) -> list[tuple[list[tuple[float, float]], list[int]]]:
    """A user's correction of tracked frame ``t``, one prompt per object: one click on the
    largest error (positive where the object was missed, negative where background was taken)
    or a dense set of clicks. ``targets``: float 0/1 ``(N, T, S, S)``; ``pred_masks``: the
    frame's low-res logits ``(N, 1, h, w)``."""
    image_size = targets.shape[-1]
    predicted = F.interpolate(pred_masks.detach(), size=(image_size, image_size), mode="bilinear") > 0
    prompts = []
    for o in range(targets.shape[0]):
        gt = targets[o, t].numpy() > 0.5
        pred = predicted[o, 0].numpy()
        missed, extra = gt & ~pred, pred & ~gt
        if rng.uniform() < 0.5 and (missed.any() or extra.any()):
            positive = missed.sum() >= extra.sum()
            pts, _ = _points_from_mask(rng, missed if positive else extra, 1)
            prompts.append((pts, [1 if positive else 0]))
        elif gt.any():
            prompts.append(_points_from_mask(rng, gt, int(rng.integers(2, 9)), ~gt))
        else:
            pts, _ = _points_from_mask(rng, ~gt, 1)
            prompts.append((pts, [0]))
    return prompts


def save_checkpoint(
    path: Path, model: torch.nn.Module, extra: dict[str, Any] | None = None, half: bool = False
) -> None:
    """Write ``{"model": state_dict, **extra}`` atomically (float16 weights if ``half``)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    payload: dict[str, Any] = {"model": state}
    payload.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def train_sam2(
    model: Any,
    recipe: TrainingRecipe,
    checkpoint: Path,
    clips: Callable[[int], TrainingClip],
    *,
    resume: bool = True,
    save_every: int = 250,
    max_seconds: float | None = None,
    stop_at: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainingState:
    """Train ``model`` (a sam2 ``SAM2Base``, built by :func:`build_model`) by ``recipe``.

    ``clips(step)`` is the clip of training step ``step``; it must be the same clip whatever the
    stops, so that a resumed run equals an uninterrupted one.

    Writes ``checkpoint`` (``{"model", "optimizer", "train_state", "recipe"}``) every
    ``save_every`` steps and at the end; with ``resume`` an existing checkpoint of the same
    recipe is continued from its step (the clip of step k is the same whatever the stops).
    ``max_seconds`` and ``stop_at`` (a step) stop early (the state says how far it got). The
    checkpoint keeps torch's random state (dropout), so stopping and resuming gives the same
    weights as one uninterrupted run.
    """
    torch.manual_seed(recipe.seed)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    state = TrainingState()
    if resume and checkpoint.is_file():
        state = _resume_training(checkpoint, model, optimizer, recipe)
        log(f"resumed {checkpoint} at step {state.step}")
    image_size = int(model.image_size)
    device = next(model.parameters()).device
    decoder_tap = _DecoderTap(model.sam_mask_decoder)
    started = time.perf_counter() - state.seconds
    window: list[dict[str, float]] = []
    try:
        while state.step < recipe.steps:
            if max_seconds is not None and time.perf_counter() - started >= max_seconds:
                log(f"stopped by max_seconds at step {state.step}")
                break
            if stop_at is not None and state.step >= stop_at:
                break
            step = state.step
            images, targets, known = _clip_tensors(clips(step), image_size, device)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(recipe, step)
            loss, stats = _optimise_step(
                model, recipe, optimizer, parameters, step, images, targets, known, decoder_tap
            )
            state.step += 1
            window.append(
                {"loss": float(loss.detach()), "iou": stats["iou"], "picked_iou": stats["picked_iou"]}
            )
            if state.step % 50 == 0 or state.step == recipe.steps:
                summary = _window_summary(
                    window, state.step, time.perf_counter() - started, _lr_at(recipe, step)
                )
                state.history.append(summary)
                window = []
                log(
                    f"step {state.step}/{recipe.steps} loss {summary['loss']:.4f} "
                    f"train IoU best {summary['iou']:.3f} picked {summary['picked_iou']:.3f} "
                    f"lr {summary['lr']:.2e} {summary['seconds']:.0f}s"
                )
            if state.step % save_every == 0 or state.step == recipe.steps:
                state.seconds = time.perf_counter() - started
                _save_training(checkpoint, model, optimizer, state, recipe)
    finally:
        decoder_tap.close()
        model.eval()
    state.seconds = time.perf_counter() - started
    _save_training(checkpoint, model, optimizer, state, recipe)
    return state


def _resume_training(
    checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, recipe: TrainingRecipe
) -> TrainingState:
    """Load weights, optimiser, progress and torch's random state from a checkpoint that
    :func:`train_sam2` wrote for the same recipe (another recipe is refused)."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    # Compared as recipes (a field added later takes its default, which changes nothing).
    saved = payload.get("recipe")
    if not isinstance(saved, dict) or TrainingRecipe(**saved) != recipe:
        raise InputError(
            f"{checkpoint}: expected a checkpoint of the same recipe to resume, found a different one "
            f"({payload.get('recipe')}). Remove it or pass resume=False."
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    state = TrainingState(**json.loads(payload["train_state"]))
    if "rng_state" in payload:
        torch.set_rng_state(payload["rng_state"])
    return state


def _clip_tensors(
    video: TrainingClip, image_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's input frames ``(T, 3, S, S)``, float 0/1 targets ``(N, T, S, S)``, one per
    object id 1..N of the clip's labels, at the input size ``S``, and float 0/1 ``(N, T)``:
    which of those labels are known (the clip's ``known``, transposed; all ones without it).

    Raises:
        InputError: ``known`` of the wrong shape, or an object unknown on frame 0 (it could
            not be prompted).
    """
    images = preprocess_frames(video.frames, image_size).to(device)
    flags = getattr(video, "known", None)
    # With known labels, their columns name the objects (one may be absent on every frame).
    num_objects = int(video.labels.max()) if flags is None else int(np.shape(flags)[1])
    labels = torch.from_numpy(video.labels).to(device)
    # Targets at the model's input size (nearest), as the high-res masks are.
    targets = torch.stack([(labels == o + 1).float() for o in range(num_objects)])
    targets = F.interpolate(targets, size=(image_size, image_size), mode="nearest")
    num_frames = video.labels.shape[0]
    if flags is None:
        known = torch.ones((num_objects, num_frames), device=device)
    else:
        flags = np.asarray(flags, dtype=bool)
        if flags.shape != (num_frames, num_objects) or not flags[0].all():
            raise InputError(
                f"training clip: expected known labels bool {(num_frames, num_objects)} with every object "
                f"known on frame 0, got shape {flags.shape}"
                + ("" if flags.shape != (num_frames, num_objects) else f", frame 0 {flags[0].tolist()}")
                + "."
            )
        known = torch.from_numpy(flags.T.astype(np.float32)).to(device)
    return images, targets, known


def _optimise_step(
    model: Any,
    recipe: TrainingRecipe,
    optimizer: torch.optim.Optimizer,
    parameters: list[torch.nn.Parameter],
    step: int,
    images: torch.Tensor,
    targets: torch.Tensor,
    known: torch.Tensor,
    decoder_tap: _DecoderTap,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimiser step on one clip: the image path alone during the curriculum's first
    ``image_fraction`` of the steps, tracking afterwards (``known``: see :func:`_clip_tensors`).
    Returns the loss and train IoUs."""
    # Seeded by step, so the clip's prompts are the same whatever the stops.
    rng = np.random.default_rng([recipe.seed, 2, step])
    backbone = model.forward_image(images)
    _, feats, pos, sizes = model._prepare_backbone_features(backbone)
    if step < recipe.image_fraction * recipe.steps:
        loss, stats = _image_step(model, recipe, rng, feats, sizes, targets, decoder_tap, known)
    else:
        loss, stats = _clip_step(model, recipe, rng, feats, pos, sizes, targets, decoder_tap, known)
    # sam2's FPN neck has no normalisation: trained from scratch, the image embedding grew
    # ~50x while the dense mask prompt and the memory encoder's mask path stayed at unit
    # scale, so a mask prompt changed the features by ~1 % and every object of a video
    # got the same memory and object pointer. Keep the embedding's mean square <= 1.
    loss = loss + recipe.feature_scale_weight * F.relu(feats[-1].pow(2).mean() - 1.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
    optimizer.step()
    return loss, stats


def _window_summary(window: list[dict[str, float]], step: int, seconds: float, lr: float) -> dict[str, float]:
    """One ``history`` entry: the mean loss and train IoUs of the steps since the last one."""
    return {
        "step": float(step),
        "seconds": seconds,
        "loss": float(np.mean([w["loss"] for w in window])),
        "iou": float(np.mean([w["iou"] for w in window])),
        "picked_iou": float(np.mean([w["picked_iou"] for w in window])),
        "lr": lr,
    }


def _save_training(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    recipe: TrainingRecipe,
) -> None:
    save_checkpoint(
        path,
        model,
        {
            "optimizer": optimizer.state_dict(),
            "train_state": json.dumps(asdict(state)),
            "recipe": recipe.model_dump(),
            "rng_state": torch.get_rng_state(),
        },
    )
