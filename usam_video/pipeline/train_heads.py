"""Training USAM heads on video tokens: record targets per annotated frame-object, then fit.

Targets (their video meaning), for each annotated frame-object after the object's prompt:

* ``iou_<label>``: true IoU of the mask model ``<label>`` tracked on that frame;
* ``iou_unsupervised``: true IoU of the SamScore-chosen mask (SAM 2 tracks with the candidate
  of highest predicted IoU, so in video it equals ``iou_<first label>``);
* ``task_gap``: IoU(best candidate) - IoU(chosen), over the candidates the decoder output;
* ``model_gap``: IoU(second model's mask) - IoU(first model's mask) on the same frame;
* ``iou_dense_prompt``: true IoU of the mask the decoder gives on the same memory-conditioned
  frame when it also gets a dense prompt (the ground-truth point nearest the centre of the
  eroded mask plus random positive points inside it); tracking of later frames is unchanged;
* ``prompt_gap``: ``iou_dense_prompt`` - ``iou_<first label>``;
* ``iou_video``: the true IoU of the tracked mask, learnt by a video head that also sees the
  frame-object's baseline scores and video features (:data:`VIDEO_HEAD_INPUTS`);
* ``lost_video``: 1 when the track is lost or switched (true IoU < 0.1 while the ground truth
  shows the object), else 0: a video head too.

Tokens are always the first model's: the heads score that model's tokens. Each row also keeps
SamScore (``sam_iou``: the first model's predicted IoU of the token it chose), the baseline every
head's ranking is compared with in the report.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usam_video.config import TrainHeadsConfig, config_fingerprint
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.engine import BuiltModel, PropagationSession
from usam_video.engine.device import resolve_device
from usam_video.errors import InputError
from usam_video.evaluation.ranking import evaluate_ranking, pearson, spearman, uncertainty_from_confidence
from usam_video.heads import save_heads
from usam_video.heads.fit import HeadFit, split_by_video, train_head, train_heads
from usam_video.heads.manifest import HeadInputs
from usam_video.pipeline.context import cached_model
from usam_video.score_registry import VIDEO_HEAD_FEATURES, score_info
from usam_video.scoring.scores import BASELINE_SCORES, Scorer
from usam_video.store import TrainingContainer
from usam_video.types import FrameAnnotation, FramePrediction, ObjectPrompt, TrainingSamples

__all__ = [
    "HeadReport",
    "RankingComparison",
    "TrainReport",
    "candidate_ious",
    "collect_video",
    "dense_prompt_points",
    "mask_iou",
    "target_names",
    "open_container",
    "rank_against_baselines",
    "record_video",
    "records_on_cuda",
    "training_videos",
    "videos_to_record",
    "train_from_container",
    "train_heads_run",
]


def mask_iou(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """IoU of two ``bool`` ``(H, W)`` masks, ignoring ``void`` pixels; 1.0 when both are empty."""
    if void is not None:
        pred, gt = pred & ~void, gt & ~void
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def candidate_ious(
    chosen_mask: np.ndarray,
    candidate_masks: np.ndarray,
    candidate_valid: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None = None,
) -> tuple[float, np.ndarray, float]:
    """True IoUs of one frame-object's masks.

    Args:
        chosen_mask: ``bool`` ``(H, W)``; candidate_masks: ``bool`` ``(K, H, W)``;
            candidate_valid: ``bool`` ``(K,)``; gt: ``bool`` ``(H, W)``.

    Returns:
        IoU of the chosen mask, ``float32`` ``(K,)`` IoU per candidate (NaN if invalid), and
        the best IoU among the chosen mask and the valid candidates.
    """
    chosen = mask_iou(chosen_mask, gt, void)
    cand = np.array(
        [
            mask_iou(m, gt, void) if ok else np.nan
            for m, ok in zip(candidate_masks, candidate_valid, strict=True)
        ],
        np.float32,
    )
    best = max(chosen, float(np.nanmax(cand))) if np.isfinite(cand).any() else chosen
    return chosen, cand, best


def dense_prompt_points(
    gt: np.ndarray, num_points: int, erosion: int, rng: np.random.Generator
) -> np.ndarray:
    """``float32`` ``(num_points, 2)`` pixel ``(x, y)`` clicks inside a ``bool`` ``(H, W)`` mask.

    The first is the pixel of the eroded mask nearest its centroid, the rest are sampled
    uniformly inside the eroded mask (with replacement if it is small). Erosion keeps clicks
    off the boundary, where a one-pixel error flips the label; a mask that erodes to nothing
    is used as is.
    """
    if not gt.any():
        raise InputError("dense prompt: expected a non-empty ground-truth mask, got an empty one.")
    inner = gt
    if erosion > 0:
        t = torch.from_numpy(~gt)[None, None].float()
        eroded = torch.nn.functional.max_pool2d(t, 2 * erosion + 1, stride=1, padding=erosion)[0, 0] == 0
        if eroded.any():
            inner = eroded.numpy()
    ys, xs = np.nonzero(inner)
    cy, cx = ys.mean(), xs.mean()
    first = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    rest = (
        rng.choice(len(ys), size=num_points - 1, replace=len(ys) < num_points - 1) if num_points > 1 else []
    )
    idx = np.concatenate([[first], np.asarray(rest, dtype=np.int64)])
    return np.stack([xs[idx], ys[idx]], axis=1).astype(np.float32)


#: The video heads: trained on the tokens plus :data:`VIDEO_HEAD_INPUTS`, on video targets.
VIDEO_HEADS: tuple[str, ...] = ("iou_video", "lost_video")
#: The video features the video heads read (score_registry.VIDEO_HEAD_FEATURES), frozen: the
#: shipped heads were trained on exactly these. A feature the engine gained later
#: (``colour_to_cond``) is stored and read by the release head; it enters the video heads only
#: with heads retrained on it (and that list grown with them).
#: Extra inputs of the video heads, in order: the baseline scores and the video features of the
#: frame-object, as the Scorer stores them.
VIDEO_HEAD_INPUTS: tuple[str, ...] = BASELINE_SCORES + VIDEO_HEAD_FEATURES
#: A track counts as lost (or switched to another object) below this true IoU while the ground
#: truth shows the object.
LOST_IOU = 0.1


def target_names(config: TrainHeadsConfig) -> list[str]:
    """The targets a config trains, in head order."""
    names = [f"iou_{m.label}" for m in config.models]
    names += ["iou_unsupervised", "task_gap", "iou_dense_prompt", "prompt_gap"]
    if len(config.models) == 2:
        names.append("model_gap")
    return names + list(VIDEO_HEADS)


def training_videos(config: TrainHeadsConfig, reader: DatasetReader) -> list[str]:
    """Videos with ground truth after some object's first prompt; refuses a dataset with none."""
    usable = []
    for video_id in reader.list_videos():
        first = min((p.frame_index for p in reader.prompts(video_id)), default=None)
        if first is not None and any(t > first for t in reader.annotated_frames(video_id)):
            usable.append(video_id)
    if not usable:
        raise InputError(
            f"dataset {config.dataset.name!r} at {config.dataset.root}: expected ground truth on some frame "
            "after the first prompt of a video, found none (only first-frame annotations). Heads need "
            "annotated tracked frames to learn from."
        )
    return usable


def videos_to_record(config: TrainHeadsConfig) -> list[str]:
    """The :func:`training_videos` of a heads-training config's dataset."""
    return training_videos(config, open_dataset(config.dataset))


def records_on_cuda(config: TrainHeadsConfig) -> bool:
    """True when the config's first model runs on CUDA (the flow then holds the ``gpu`` limit)."""
    return resolve_device(config.models[0].model.device).type == "cuda"


def _frame_rows(
    config: TrainHeadsConfig,
    session: PropagationSession,
    rec: FramePrediction,
    ann: FrameAnnotation,
    inputs: np.ndarray,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """One row per tracked, non-prompt object of an annotated frame of the first model.

    Call it while ``session.propagate()`` is suspended on ``rec`` (the dense-prompt probe needs
    that frame's memory-conditioned features). ``inputs`` is ``float32`` ``(O, F)``: the frame's
    :data:`VIDEO_HEAD_INPUTS`; ``rng`` draws the dense-prompt clicks, object by object.
    """
    rows: list[dict[str, Any]] = []
    t = rec.frame_index
    for o, obj in enumerate(rec.object_ids):
        if not rec.tracked[o] or rec.is_prompt[o]:
            continue
        gt = ann.mask_of(obj)
        assert rec.candidate_masks is not None and rec.candidate_valid is not None
        chosen_iou, cand, best_iou = candidate_ious(
            rec.masks[o], rec.candidate_masks[o], rec.candidate_valid[o], gt, ann.void
        )
        dense_iou = np.nan
        if gt.any():
            points = dense_prompt_points(gt, config.dense_points, config.erosion, rng)
            dense_mask, _ = session.probe_points(t, obj, points, np.ones(len(points), np.int32))
            dense_iou = mask_iou(dense_mask, gt, ann.void)
        rows.append(
            {
                "frame": t,
                "object": obj,
                "iou_token": rec.iou_tokens[o],
                "mask_tokens": rec.mask_tokens[o],
                "chosen": int(rec.chosen_candidate[o]),
                "sam_iou": float(rec.sam_iou[o]),
                "cand": cand,
                "chosen_iou": chosen_iou,
                "best_iou": best_iou,
                "dense_iou": dense_iou,
                "inputs": inputs[o],
                "present": bool(gt.any()),
            }
        )
    return rows


def _primary_rows(
    config: TrainHeadsConfig,
    reader: DatasetReader,
    model: BuiltModel,
    video_id: str,
    prompts: list[ObjectPrompt],
    annotated: set[int],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Propagate the video with the first model and record a row per annotated frame-object."""
    primary = PropagationSession(model, reader.frames(video_id), keep_candidates=True)
    for prompt in prompts:
        primary.add_prompt(prompt)
    rows: list[dict[str, Any]] = []
    # One Scorer for the whole video: it is called on exactly the frames the run would score.
    baseline = Scorer(None)
    # Its columns are every stored baseline and video feature; the heads read theirs by name.
    picked = [baseline.names.index(n) for n in VIDEO_HEAD_INPUTS]
    for rec in primary.propagate():
        t = rec.frame_index
        if t not in annotated:
            continue
        ann = reader.ground_truth(video_id, t)
        if ann is None:
            continue
        inputs = baseline(rec).values[:, picked]  # (O, F): VIDEO_HEAD_INPUTS, as the run stores them
        rows += _frame_rows(config, primary, rec, ann, inputs, rng)
    return rows


def _second_model_ious(
    reader: DatasetReader,
    model: BuiltModel,
    video_id: str,
    prompts: list[ObjectPrompt],
    annotated: set[int],
    wanted: set[tuple[int, int]],
) -> dict[tuple[int, int], float]:
    """``{(frame, object): true IoU}`` of the second model's tracked mask on the ``wanted`` rows."""
    larger: dict[tuple[int, int], float] = {}
    second = PropagationSession(model, reader.frames(video_id))
    for prompt in prompts:
        second.add_prompt(prompt)
    for rec in second.propagate():
        ann = reader.ground_truth(video_id, rec.frame_index) if rec.frame_index in annotated else None
        for o, obj in enumerate(rec.object_ids):
            if ann is not None and (rec.frame_index, obj) in wanted and rec.tracked[o]:
                larger[(rec.frame_index, obj)] = mask_iou(rec.masks[o], ann.mask_of(obj), ann.void)
    return larger


def _targets(
    config: TrainHeadsConfig, rows: list[dict[str, Any]], larger: dict[tuple[int, int], float] | None
) -> dict[str, np.ndarray]:
    """``{target: float32 (N,)}`` from the rows (and the second model's IoUs when there is one)."""
    chosen_iou = np.array([r["chosen_iou"] for r in rows], np.float32)
    dense_iou = np.array([r["dense_iou"] for r in rows], np.float32)
    targets: dict[str, np.ndarray] = {
        f"iou_{config.models[0].label}": chosen_iou,
        "iou_unsupervised": chosen_iou.copy(),
        "task_gap": np.array([r["best_iou"] - r["chosen_iou"] for r in rows], np.float32),
        "iou_dense_prompt": dense_iou,
        "prompt_gap": dense_iou - chosen_iou,
        "iou_video": chosen_iou.copy(),
        "lost_video": np.array(
            [float(r["present"] and r["chosen_iou"] < LOST_IOU) for r in rows], np.float32
        ),
    }
    if larger is not None:
        big = np.array([larger.get((r["frame"], r["object"]), np.nan) for r in rows], np.float32)
        targets[f"iou_{config.models[1].label}"] = big
        targets["model_gap"] = big - chosen_iou
    return targets


def _samples(
    video_id: str, rows: list[dict[str, Any]], targets: dict[str, np.ndarray], model: BuiltModel
) -> TrainingSamples:
    """The rows as arrays; empty arrays of the model's token shapes when there are none."""
    n = len(rows)
    d, k = model.token_dim, model.num_mask_tokens
    return TrainingSamples(
        video_ids=(video_id,) * n,
        frame_index=np.array([r["frame"] for r in rows], np.int32),
        object_id=np.array([r["object"] for r in rows], np.int32),
        iou_tokens=np.stack([r["iou_token"] for r in rows]) if n else np.zeros((0, d), np.float32),
        mask_tokens=np.stack([r["mask_tokens"] for r in rows]) if n else np.zeros((0, k, d), np.float32),
        chosen=np.array([r["chosen"] for r in rows], np.int8),
        candidate_iou=np.stack([r["cand"] for r in rows]) if n else np.zeros((0, k), np.float32),
        sam_iou=np.array([r["sam_iou"] for r in rows], np.float32),
        targets=targets,
        inputs=(
            np.stack([r["inputs"] for r in rows]).astype(np.float32)
            if n
            else np.zeros((0, len(VIDEO_HEAD_INPUTS)), np.float32)
        ),
        input_names=VIDEO_HEAD_INPUTS,
    )


def collect_video(
    config: TrainHeadsConfig, reader: DatasetReader, models: list[BuiltModel], video_id: str
) -> TrainingSamples:
    """Propagate one video with every model and record tokens and targets per annotated frame-object."""
    rng = np.random.default_rng([config.seed, sum(map(ord, video_id))])
    annotated = set(reader.annotated_frames(video_id))
    prompts = reader.prompts(video_id)
    rows = _primary_rows(config, reader, models[0], video_id, prompts, annotated, rng)
    larger = None
    if len(models) == 2:
        wanted = {(r["frame"], r["object"]) for r in rows}
        larger = _second_model_ious(reader, models[1], video_id, prompts, annotated, wanted)
    return _samples(video_id, rows, _targets(config, rows, larger), models[0])


def _models(config: TrainHeadsConfig) -> list[BuiltModel]:
    return [cached_model(spec.model.model_dump_json()) for spec in config.models]


def open_container(config: TrainHeadsConfig) -> TrainingContainer:
    """The config's training container, created for its first model if absent."""
    primary = _models(config)[0]
    fingerprint = f"{config_fingerprint(config.models[0].model)}-{primary.checkpoint_sha256[:16]}"
    return TrainingContainer.open_or_create(
        config.container_path,
        primary.token_dim,
        primary.num_mask_tokens,
        fingerprint,
        target_names(config),
        list(VIDEO_HEAD_INPUTS),
    )


# Appends commit a row count in the container's attributes: one writer at a time per process
# (Prefect runs tasks of one flow in threads). Separate processes need separate containers.
_CONTAINER_LOCK = threading.Lock()


def record_video(config: TrainHeadsConfig, video_id: str) -> int:
    """Record one video into the container (skipped if already there); returns its row count."""
    with _CONTAINER_LOCK:
        container = open_container(config)
        if video_id in container.videos:
            return container.rows_of(video_id)
    samples = collect_video(config, open_dataset(config.dataset), _models(config), video_id)
    with _CONTAINER_LOCK:
        open_container(config).append(video_id, samples)
    return len(samples)


@dataclass(frozen=True)
class RankingComparison:
    """A head's relative AUC next to the SamScore and random baselines' (same rows, same refinement).

    Attributes:
        relative_auc: the head's area over the oracle's (1 = oracle).
        relative_auc_vs_random: the head's area above the expected random curve over the oracle's area
            (0 = random, 1 = oracle).
        samscore_relative_auc, samscore_relative_auc_vs_random: the same for SamScore, ranked by
            ``1 - sam_iou`` (lowest predicted IoU refined first); NaN when SamScore is missing on
            some row (a container recorded before ``sam_iou`` was kept).
        random_relative_auc: the expected random ordering's relative AUC, ``mean(gain) * ∫ r dr``
            over the oracle area (not one random draw; negative when refining loses on average).
        beats_samscore, beats_random: the head's relative AUC is strictly higher than the
            baseline's; None when either figure is NaN.
    """

    relative_auc: float
    relative_auc_vs_random: float
    samscore_relative_auc: float
    samscore_relative_auc_vs_random: float
    random_relative_auc: float
    beats_samscore: bool | None
    beats_random: bool | None

    @classmethod
    def undefined(cls) -> RankingComparison:
        """Every figure NaN (too few rows, or no ordering can help)."""
        return cls(math.nan, math.nan, math.nan, math.nan, math.nan, None, None)


def _beats(a: float, b: float) -> bool | None:
    return bool(a > b) if math.isfinite(a) and math.isfinite(b) else None


def rank_against_baselines(
    base_iou: np.ndarray, refined_iou: np.ndarray, head_uncertainty: np.ndarray, sam_iou: np.ndarray
) -> RankingComparison:
    """Rank items by a head's uncertainty, by SamScore and at random under the paper's protocol.

    Args:
        base_iou, refined_iou: float ``(N,)``: IoU before and after refining an item.
        head_uncertainty: float ``(N,)``, higher = refined first.
        sam_iou: float ``(N,)``: SAM 2's predicted IoU (a confidence: ``1 - sam_iou`` is the
            uncertainty); any NaN makes the SamScore figures NaN.
    """
    scores = {"head": np.asarray(head_uncertainty, np.float64)}
    sam = np.asarray(sam_iou, np.float64)
    if np.isfinite(sam).all():
        scores["samscore"] = 1.0 - sam
    report = evaluate_ranking(base_iou, refined_iou, scores)
    head = report.curve("head")
    sam_rel = sam_rel_random = math.nan
    if "samscore" in scores:
        sam_curve = report.curve("samscore")
        sam_rel, sam_rel_random = sam_curve.relative_auc, sam_curve.relative_auc_vs_random
    random_rel = report.random.relative_auc
    return RankingComparison(
        relative_auc=head.relative_auc,
        relative_auc_vs_random=head.relative_auc_vs_random,
        samscore_relative_auc=sam_rel,
        samscore_relative_auc_vs_random=sam_rel_random,
        random_relative_auc=random_rel,
        beats_samscore=_beats(head.relative_auc, sam_rel),
        beats_random=_beats(head.relative_auc, random_rel),
    )


@dataclass(frozen=True)
class HeadReport:
    """Validation figures of one trained head (on the target's own scale).

    The ranking figures (see :class:`RankingComparison`) rank the head's validation rows under the
    paper's protocol: an ``iou_*`` head's least certain masks are replaced by ground truth, a gap
    head's largest predicted gaps get their refinement (better candidate, clicks, larger model).
    SamScore and random rank the same rows for the same refinement (SamScore is always the first
    model's predicted IoU of its chosen mask, also for ``iou_<second model>`` and
    ``iou_dense_prompt``: it is what the heads have to beat on the same tokens).
    """

    name: str
    train_rows: int
    val_rows: int
    mae: float
    r2: float
    pearson: float
    spearman: float
    relative_auc: float
    relative_auc_vs_random: float
    samscore_relative_auc: float
    samscore_relative_auc_vs_random: float
    random_relative_auc: float
    beats_samscore: bool | None
    beats_random: bool | None


@dataclass(frozen=True)
class TrainReport:
    """What a heads-training run produced."""

    heads_dir: str
    train_videos: tuple[str, ...]
    val_videos: tuple[str, ...]
    heads: tuple[HeadReport, ...]
    skipped_targets: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "heads_dir": self.heads_dir,
            "train_videos": list(self.train_videos),
            "val_videos": list(self.val_videos),
            "skipped_targets": list(self.skipped_targets),
            "heads": [{k: clean(v) for k, v in h.__dict__.items()} for h in self.heads],
        }


def _ranking(
    name: str, fit: HeadFit, samples: TrainingSamples, config: TrainHeadsConfig
) -> RankingComparison:
    """Relative AUC of a head's validation predictions, SamScore's and random's on the same rows."""
    rows = fit.val_rows
    if len(rows) < 2:
        return RankingComparison.undefined()
    primary = samples.targets[f"iou_{config.models[0].label}"][rows]
    info = score_info(name)  # the registry decides the direction, never the name's prefix
    if info.direction == "confidence":
        base = fit.val_target  # replace the least certain masks by ground truth
        refined = np.ones_like(base)
        uncertainty = uncertainty_from_confidence(fit.val_pred)
    elif info.shift:
        base = primary  # a gap (stored shifted): its refinement is the one it predicts
        refined = primary + fit.val_target  # better candidate, clicks, model
        uncertainty = fit.val_pred
    else:
        base = primary  # another uncertainty (lost track): replace by ground truth
        refined = np.ones_like(base)
        uncertainty = fit.val_pred
    return rank_against_baselines(base, refined, uncertainty, samples.sam_iou[rows])


def _sam2_release(sam2_config: str) -> str:
    """The SAM 2 release a model config belongs to: the package's SAM 2.0 configs are named
    ``sam2_hiera_*``; SAM 2.1's (``sam2.1_hiera_*``) and the project's own (built on SAM 2.1's
    architecture) are "2.1"."""
    return "2.0" if Path(sam2_config).name.startswith("sam2_hiera") else "2.1"


def _fit_options(config: TrainHeadsConfig) -> dict[str, Any]:
    """The optimiser settings every head (token and video) is fitted with."""
    return {
        "optimizer": config.optimizer,
        "lr": config.lr,
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
    }


def _fit_video_heads(
    config: TrainHeadsConfig, samples: TrainingSamples, options: dict[str, Any]
) -> tuple[dict[str, HeadFit], dict[str, HeadInputs]]:
    """Fit the video heads whose target has some finite value, in target order.

    Returns:
        ``{name: fit}`` and ``{name: HeadInputs}`` (the normalisation the manifest records).
    """
    fits: dict[str, HeadFit] = {}
    inputs: dict[str, HeadInputs] = {}
    video_targets = {k: v for k, v in samples.targets.items() if k in VIDEO_HEADS and np.isfinite(v).any()}
    if video_targets:
        # The same split by video as the token heads (same seed), so their figures compare.
        train, val = split_by_video(samples.video_ids, config.val_fraction, config.seed)
        features, spec = video_head_inputs(samples, train)
        for i, (name, target) in enumerate(video_targets.items()):
            fits[name] = train_head(
                name, features, target, train, val, seed=config.seed + 100 + i,
                extra_inputs=len(spec), **options,
            )
            inputs[name] = spec
    return fits, inputs


def _head_report(name: str, fit: HeadFit, samples: TrainingSamples, config: TrainHeadsConfig) -> HeadReport:
    """A head's validation figures (NaN, and no ranking, below two validation rows)."""
    pred, target = fit.val_pred, fit.val_target
    if len(target) >= 2:
        mae = float(np.mean(np.abs(pred - target)))
        ss_tot = float(np.sum((target - target.mean()) ** 2))
        r2 = 1.0 - float(np.sum((pred - target) ** 2)) / ss_tot if ss_tot > 0 else math.nan
        ranking = _ranking(name, fit, samples, config)
    else:
        mae = r2 = math.nan
        ranking = RankingComparison.undefined()
    return HeadReport(
        name,
        fit.train_rows,
        len(target),
        mae,
        r2,
        pearson(pred, target),
        spearman(pred, target),
        **asdict(ranking),
    )


def _split_videos(
    samples: TrainingSamples, fits: dict[str, HeadFit]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train videos, validation videos)``, sorted: a video is a validation video when any
    head validated on one of its rows."""
    val_mask = np.zeros(len(samples), bool)
    for fit in fits.values():
        val_mask[fit.val_rows] = True
    val_videos = tuple(sorted({samples.video_ids[i] for i in np.nonzero(val_mask)[0]}))
    train_videos = tuple(sorted(set(samples.video_ids) - set(val_videos)))
    return train_videos, val_videos


def train_from_container(config: TrainHeadsConfig) -> TrainReport:
    """Fit one head per target on the container's rows, write them (official format) and a report."""
    samples = TrainingContainer.open(config.container_path).read()
    if len(samples) == 0:
        raise InputError(f"{config.container_path}: expected recorded frame-objects, found none.")
    options = _fit_options(config)
    token_targets = {k: v for k, v in samples.targets.items() if k not in VIDEO_HEADS}
    fits = train_heads(
        samples.features(),
        token_targets,
        samples.video_ids,
        val_fraction=config.val_fraction,
        seed=config.seed,
        **options,
    )
    video_fits, inputs = _fit_video_heads(config, samples, options)
    fits.update(video_fits)
    # Own heads learn on the chosen candidate's own token (TrainingSamples.features): "aligned".
    save_heads(
        config.heads_out,
        {name: fit.head for name, fit in fits.items()},
        inputs=inputs,
        pairing="aligned",
        sam2_version=_sam2_release(config.models[0].model.sam2_config),
        sam2_size=config.models[0].label,
    )
    reports = [_head_report(name, fit, samples, config) for name, fit in fits.items()]
    train_videos, val_videos = _split_videos(samples, fits)
    report = TrainReport(
        heads_dir=str(config.heads_out),
        train_videos=train_videos,
        val_videos=val_videos,
        heads=tuple(reports),
        skipped_targets=tuple(t for t in samples.targets if t not in fits),
    )
    Path(config.heads_out).mkdir(parents=True, exist_ok=True)
    (Path(config.heads_out) / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    return report


def train_heads_run(config: TrainHeadsConfig) -> TrainReport:
    """Record every usable video (resuming the container) and train, in this process (no Prefect)."""
    reader = open_dataset(config.dataset)
    for video_id in training_videos(config, reader):
        record_video(config, video_id)
    return train_from_container(config)


def video_head_inputs(samples: TrainingSamples, train: np.ndarray) -> tuple[np.ndarray, HeadInputs]:
    """The video heads' features and their normalisation, fitted on the training rows.

    Returns:
        ``float32`` ``(N, 2D + F)``: the tokens (as the token heads see them) then the ``F``
        extra inputs normalised by the training rows' mean and std (a missing input, NaN, sits
        at the mean: 0), and the :class:`HeadInputs` that the manifest records.

    Raises:
        InputError: a container recorded before video features were kept.
    """
    if samples.inputs is None or not samples.input_names:
        raise InputError(
            "video heads: expected a training container with video features (inputs), got one recorded "
            "before they were kept. Delete the container and run train-heads again."
        )
    raw = samples.inputs.astype(np.float64)
    rows = raw[train]
    mean = np.nanmean(rows, axis=0)
    std = np.nanstd(rows, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    # A constant input (std 0) would divide by zero: it carries no information, scale 1.
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    extra = np.nan_to_num((raw - mean) / std, nan=0.0).astype(np.float32)
    spec = HeadInputs(
        tuple(samples.input_names), tuple(float(m) for m in mean), tuple(float(s) for s in std)
    )
    return np.concatenate([samples.features(), extra], axis=1), spec
