"""Dense clicks as corrections, with the ground truth as annotator (``simulate-clicks``).

Mask corrections at several budgets, every score under every planner, are
:mod:`usam_video.pipeline.review_simulation` (``simulate-review``).

``simulate_clicks`` measures the other kind of help: a dense prompt (positive clicks sampled
inside the ground truth) on the lowest-scored frame-objects, given to SAM 2 as corrections of
the tracked masks (see :class:`~usam_video.engine.session.CorrectionPrompt`), against the same
number of random frame-objects.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.config import RunConfig
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.datasets.base import FrameSource
from usam_video.engine.session import CorrectionPrompt
from usam_video.errors import InputError
from usam_video.pipeline.context import RunContext, load_context
from usam_video.pipeline.evaluate import evaluate_predictions, score_direction
from usam_video.pipeline.label import label_dataset, label_video, untrained_warnings
from usam_video.pipeline.train_heads import dense_prompt_points
from usam_video.store import PseudoLabelStore
from usam_video.types import FrameAnnotation, MaskSource, ObjectPrompt, Status, VideoRef

__all__ = [
    "ClickResult",
    "ClickReport",
    "candidates",
    "click_candidates",
    "click_prompts",
    "pick",
    "rank_by_score",
    "simulate_clicks",
]

def candidates(store: PseudoLabelStore, run: RunConfig) -> list[tuple[str, int, int, dict[str, float]]]:
    """``(video, frame, object_id, scores)`` of tracked, non-prompt frame-objects with ground truth."""
    reader = open_dataset(run.dataset)
    out = []
    for video_id in store.videos():
        if not store.is_complete(video_id):
            continue
        table = store.frame_table(video_id)
        annotated = set(reader.annotated_frames(video_id))
        eligible = np.isin(
            table.status, [Status.ACCEPTED, Status.QUEUED_REFINE, Status.QUEUED_HUMAN, Status.REFINED]
        )
        for t, o in zip(*np.nonzero(eligible), strict=True):
            if int(t) in annotated and table.source is not None and table.source[t, o] != MaskSource.PROMPT:
                scores = {n: float(v) for n, v in zip(table.score_names, table.scores[t, o], strict=True)}
                out.append((video_id, int(t), int(table.object_ids[o]), scores))
    return out


def pick(items: list[tuple[str, int, int, dict[str, float]]], k: int, seed: int) -> list[int]:
    """Indices of ``k`` items drawn at random (seeded): the baseline every pick is compared with."""
    return np.random.default_rng(seed).permutation(len(items))[:k].tolist()


def _jf(store_path: str, run: RunConfig) -> float:
    value = evaluate_predictions(store_path, run.dataset, "davis").global_scores()["J&F"]
    return math.nan if value is None else float(value)


# --- corrective clicks --------------------------------------------------------------------------

Item = tuple[str, int, int, dict[str, float]]


@dataclass(frozen=True)
class ClickResult:
    """J&F after dense prompts on one pick of frame-objects.

    Attributes:
        pick: the score the frame-objects were ranked by, or ``"random"``.
        frame_objects: the picked ``(video, frame, object id)``, in pick order.
    """

    pick: str
    frame_objects: tuple[tuple[str, int, int], ...]
    jf_before: float
    jf_after: float

    @property
    def gain(self) -> float:
        return self.jf_after - self.jf_before


@dataclass(frozen=True)
class ClickReport:
    """J&F before and after a dense prompt on the ``fraction`` least certain frame-objects by
    ``score``, and on as many random ones (``results``: the score's pick, then ``random``)."""

    fraction: float
    score: str
    order: str  # "ascending" (a confidence: lowest first) or "descending" (an uncertainty)
    dense_points: int
    erosion: int
    seed: int
    candidates: int
    picked: int
    jf_before: float
    results: tuple[ClickResult, ...]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else round(v, 6)

        return {
            "fraction": self.fraction,
            "score": self.score,
            "order": self.order,
            "dense_points": self.dense_points,
            "erosion": self.erosion,
            "seed": self.seed,
            "candidates": self.candidates,
            "picked": self.picked,
            "jf_before": clean(self.jf_before),
            "results": [
                {
                    "pick": r.pick,
                    "picked": len(r.frame_objects),
                    "jf_before": clean(r.jf_before),
                    "jf_after": clean(r.jf_after),
                    "gain": clean(r.gain),
                    "frame_objects": [list(f) for f in r.frame_objects],
                }
                for r in self.results
            ],
            "warnings": list(self.warnings),
        }


def click_candidates(store: PseudoLabelStore, run: RunConfig) -> list[Item]:
    """The frame-objects a dense prompt may go to: :func:`candidates` (tracked, not a prompt,
    on a frame with ground truth) whose ground-truth mask is not empty (clicks need an object),
    except on each video's last annotated frame, which the DAVIS protocol never scores and
    which no later frame follows (a prompt there cannot change J&F). Only the run's selected
    videos count (the ones its J&F covers)."""
    reader = open_dataset(run.dataset)
    selected = set(reader.list_videos())
    last = {v: max(reader.annotated_frames(v), default=-1) for v in store.videos() if v in selected}
    truth: dict[tuple[str, int], FrameAnnotation | None] = {}
    out = []
    for item in candidates(store, run):
        video_id, t, obj, _ = item
        if video_id not in selected or t == last[video_id]:
            continue
        if (video_id, t) not in truth:
            truth[(video_id, t)] = reader.ground_truth(video_id, t)
        annotation = truth[(video_id, t)]
        if annotation is not None and annotation.mask_of(obj).any():
            out.append(item)
    return out


def rank_by_score(items: list[Item], score: str) -> list[int]:
    """Indices of ``items``, least certain first by ``score``: ascending for a confidence
    (``sam_iou``, ``iou_*``, ...), descending for an uncertainty (``*_gap``, ``entropy``); a
    missing or NaN score ranks last; ties keep the items' order."""
    values = np.array([item[3].get(score, math.nan) for item in items], np.float64)
    descending = score_direction(score) == "uncertainty"
    key = np.where(np.isfinite(values), -values if descending else values, np.inf)
    return np.argsort(key, kind="stable").tolist()


def click_prompts(
    reader: DatasetReader, chosen: list[Item], dense_points: int, erosion: int, seed: int
) -> dict[str, list[ObjectPrompt]]:
    """A :class:`CorrectionPrompt` of ``dense_points`` positive clicks inside the eroded ground
    truth for each chosen frame-object, by video. The clicks of a frame-object depend only on
    ``seed`` and the frame-object, so every pick that chooses it gives it the same clicks."""
    out: dict[str, list[ObjectPrompt]] = {}
    for video_id, t, obj, _ in chosen:
        annotation = reader.ground_truth(video_id, t)
        assert annotation is not None  # click_candidates keeps annotated frames only
        rng = np.random.default_rng([seed, zlib.crc32(video_id.encode()), t, obj])
        points = dense_prompt_points(annotation.mask_of(obj), dense_points, erosion, rng)
        out.setdefault(video_id, []).append(
            CorrectionPrompt(obj, t, points=points, point_labels=np.ones(len(points), np.int32))
        )
    return out


class _WithPrompts(DatasetReader):
    """A dataset whose videos get extra prompts beside their own."""

    def __init__(self, base: DatasetReader, extra: dict[str, list[ObjectPrompt]]):
        self.base = base
        self.extra = extra
        self.name = base.name

    def list_videos(self) -> list[str]:
        return self.base.list_videos()

    def video(self, video_id: str) -> VideoRef:
        return self.base.video(video_id)

    def frames(self, video_id: str) -> FrameSource:
        return self.base.frames(video_id)

    def prompts(self, video_id: str) -> list[ObjectPrompt]:
        merged = self.base.prompts(video_id) + self.extra.get(video_id, [])
        return sorted(merged, key=lambda p: (p.frame_index, p.object_id))

    def annotated_frames(self, video_id: str) -> list[int]:
        return self.base.annotated_frames(video_id)

    def ground_truth(self, video_id: str, frame_index: int) -> FrameAnnotation | None:
        return self.base.ground_truth(video_id, frame_index)


def _default_click_score(names: tuple[str, ...]) -> str:
    # The head predicting the IoU of the mask SAM 2 tracked, else SAM's own prediction.
    return "iou_unsupervised" if "iou_unsupervised" in names else "sam_iou"


def _check_keep(keep: Path, store_path: str) -> None:
    keep, store = keep.resolve(), Path(store_path).resolve()
    if keep == store or store in keep.parents or keep in store.parents:
        raise InputError(
            f"simulate clicks: expected a keep folder apart from the run's store {store}, got {keep}."
        )
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise InputError(f"simulate clicks: expected a new or empty keep folder, got {keep} (not empty).")


def _check_click_arguments(
    run: RunConfig, fraction: float, dense_points: int, erosion: int, keep: Path | None
) -> None:
    """Refuse what :func:`simulate_clicks` cannot do, before anything is built or labelled."""
    if not 0 < fraction <= 1:
        raise InputError(f"simulate clicks: expected a fraction in (0, 1], got {fraction}.")
    if dense_points < 1 or erosion < 0:
        raise InputError(
            "simulate clicks: expected at least 1 point and an erosion >= 0, "
            f"got {dense_points} and {erosion}."
        )
    if "://" in run.store_path:
        raise InputError("simulate clicks: expected a local store path (the clicks go into copies).")
    if keep is not None:
        _check_keep(keep, run.store_path)


def _click_score(score: str | None, names: tuple[str, ...]) -> str:
    """The score that ranks the picks: ``score``, or the default for the run's ``names``."""
    score = score or _default_click_score(names)
    if score not in names:
        raise InputError(
            f"simulate clicks: expected a score the run computes, got {score!r}; "
            f"available: {', '.join(names)}."
        )
    return score


def _relabel_with_clicks(
    run: RunConfig,
    context: RunContext,
    copy: Path,
    chosen: list[Item],
    dense_points: int,
    erosion: int,
    seed: int,
) -> str:
    """Copy the run's store to ``copy`` and relabel there every video holding a ``chosen``
    frame-object, from its own prompts plus the :func:`click_prompts` on them. Returns the
    copy's path."""
    copy_path = str(copy)
    shutil.copytree(run.store_path, copy_path)
    clicks = click_prompts(context.reader, chosen, dense_points, erosion, seed)
    clicked = dataclasses.replace(
        load_context(run.model_copy(update={"store": copy_path})),
        reader=_WithPrompts(context.reader, clicks),
    )
    store = PseudoLabelStore.open(copy_path)
    for video_id in sorted(clicks):
        label_video(clicked, video_id, store, force=True)
    return copy_path


def simulate_clicks(
    run: RunConfig,
    fraction: float = 0.05,
    score: str | None = None,
    dense_points: int = 8,
    erosion: int = 1,
    seed: int = 0,
    keep: Path | None = None,
    work_dir: Path | None = None,
) -> ClickReport:
    """J&F before and after a dense prompt on the ``fraction`` least certain frame-objects.

    Labels ``run`` (resuming its store, as :func:`simulate_review` does) and measures J&F
    (DAVIS protocol). Ranks the run's :func:`click_candidates` by ``score`` over the whole run
    (:func:`rank_by_score`: lowest first for a predicted IoU) and picks ``ceil(fraction * N)``
    of them; a seeded random pick of as many is the baseline. Each picked frame-object gets
    ``dense_points`` positive clicks inside its ground truth, eroded by ``erosion`` pixels
    (:func:`~usam_video.pipeline.train_heads.dense_prompt_points`), as a correction of its
    tracked mask on that frame; the videos holding picks are propagated again from their own
    prompts plus those clicks, in a copy of the store, and J&F is measured again.

    The run's store is only read after labelling; every pick is relabelled in its own copy (in
    a temporary folder, or kept under ``keep`` as ``<pick>.zarr`` with ``report.json``).

    Args:
        score: a stored score name (``iou_<label>``, ``iou_unsupervised``, ``sam_iou``, a
            ``*_gap`` head...); default ``iou_unsupervised`` if the run has that head, else
            ``sam_iou``.

    Raises:
        InputError: a fraction outside (0, 1], fewer than 1 point, a negative erosion, a score
            the run does not compute, a remote store, a keep folder that is not new and apart
            from the store, or a dataset with no ground truth to click on.
    """
    _check_click_arguments(run, fraction, dense_points, erosion, keep)
    context = load_context(run)  # checks the score before anything is labelled
    score = _click_score(score, context.score_names)
    label_dataset(run)
    items = click_candidates(PseudoLabelStore.open(run.store_path, "r"), run)
    if not items:
        raise InputError(
            f"dataset {run.dataset.name!r}: expected ground truth with the object present on tracked "
            "frames, found none to click on."
        )
    k = min(len(items), max(1, math.ceil(fraction * len(items) - 1e-9)))
    jf_before = _jf(run.store_path, run)
    picks = {score: rank_by_score(items, score)[:k], "random": pick(items, k, seed)}
    results = []
    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_dir)))
        else:
            root = keep
            root.mkdir(parents=True, exist_ok=True)
        for name, indices in picks.items():
            chosen = [items[i] for i in indices]
            copy = _relabel_with_clicks(
                run, context, root / f"{name}.zarr", chosen, dense_points, erosion, seed
            )
            frame_objects = tuple((v, t, o) for v, t, o, _ in chosen)
            results.append(ClickResult(name, frame_objects, jf_before, _jf(copy, run)))
        report = ClickReport(
            fraction,
            score,
            "descending" if score_direction(score) == "uncertainty" else "ascending",
            dense_points,
            erosion,
            seed,
            len(items),
            k,
            jf_before,
            tuple(results),
            tuple(untrained_warnings(context)),
        )
        if keep is not None:
            (keep / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    return report
