"""Close the loop on a dataset with ground truth: the ground truth plays the annotator.

Label once, then for each strategy spend the same human budget (a fraction of the run's tracked
frame-objects on annotated frames, prompted frames excluded) on the frame-objects that strategy
picks: ``usam`` (most uncertain by a USAM head score), ``samscore`` (lowest SAM predicted IoU) or
``random``. The picked masks are replaced by the ground truth as human corrections, the videos are
propagated again with them as conditioning frames, and J&F (DAVIS protocol) is measured before and
after.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.config import RunConfig
from usam_video.datasets import open_dataset
from usam_video.errors import InputError
from usam_video.pipeline.evaluate import evaluate_predictions
from usam_video.pipeline.label import label_dataset, relabel_videos
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status

__all__ = ["STRATEGIES", "StrategyResult", "SimulationReport", "candidates", "pick", "simulate_review"]

STRATEGIES = ("usam", "samscore", "random")


@dataclass(frozen=True)
class StrategyResult:
    """J&F after spending the budget with one strategy."""

    strategy: str
    priority: str
    corrected: int
    jf_before: float
    jf_after: float

    @property
    def gain(self) -> float:
        return self.jf_after - self.jf_before


@dataclass(frozen=True)
class SimulationReport:
    """The before/after J&F of every strategy at one budget."""

    budget_fraction: float
    candidates: int
    budget: int
    results: tuple[StrategyResult, ...]

    def as_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else round(v, 6)

        return {
            "budget_fraction": self.budget_fraction,
            "candidates": self.candidates,
            "budget": self.budget,
            "results": [
                {
                    "strategy": r.strategy,
                    "priority": r.priority,
                    "corrected": r.corrected,
                    "jf_before": clean(r.jf_before),
                    "jf_after": clean(r.jf_after),
                    "gain": clean(r.gain),
                }
                for r in self.results
            ],
        }


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


def pick(
    items: list[tuple[str, int, int, dict[str, float]]], strategy: str, priority: str, k: int, seed: int
) -> list[int]:
    """Indices of the ``k`` items a strategy corrects.

    ``usam`` orders by ``priority``: ascending for a predicted IoU (``iou_*``), descending for a
    gap (``*_gap``, higher means a bigger expected gain); ``samscore`` by ``sam_iou`` ascending.
    """
    if strategy == "random":
        return np.random.default_rng(seed).permutation(len(items))[:k].tolist()
    name = "sam_iou" if strategy == "samscore" else priority
    values = np.array([item[3].get(name, math.nan) for item in items], np.float64)
    if not np.isfinite(values).any():
        raise InputError(f"simulate review: expected score {name!r} in the store, found none.")
    descending = name.endswith("_gap")
    key = np.where(np.isfinite(values), -values if descending else values, np.inf)
    return np.argsort(key, kind="stable")[:k].tolist()


def _jf(store_path: str, run: RunConfig) -> float:
    value = evaluate_predictions(store_path, run.dataset, "davis").global_scores()["J&F"]
    return math.nan if value is None else float(value)


def simulate_review(
    run: RunConfig,
    budget_fraction: float = 0.05,
    strategies: tuple[str, ...] = STRATEGIES,
    priority: str | None = None,
    seed: int = 0,
    work_dir: Path | None = None,
) -> SimulationReport:
    """Label ``run`` (resuming its store), then measure each strategy's J&F gain at the budget.

    The run's store is left as labelled; every strategy works on its own copy.
    """
    if not 0 < budget_fraction <= 1:
        raise InputError(f"simulate review: expected a budget fraction in (0, 1], got {budget_fraction}.")
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise InputError(f"simulate review: expected strategies among {STRATEGIES}, got {sorted(unknown)}.")
    if "://" in run.store_path:
        raise InputError("simulate review: expected a local store path (strategies work on copies).")
    label_dataset(run)
    base = PseudoLabelStore.open(run.store_path, "r")
    items = candidates(base, run)
    if not items:
        raise InputError(
            f"dataset {run.dataset.name!r}: expected ground truth on tracked frames, "
            "found none to simulate with."
        )
    k = max(1, int(math.floor(budget_fraction * len(items))))
    if priority is None:
        names = items[0][3]
        priority = next((n for n in ("prompt_gap", "iou_unsupervised") if n in names), "sam_iou")
    jf_before = _jf(run.store_path, run)
    reader = open_dataset(run.dataset)
    results = []
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for strategy in strategies:
            copy = str(Path(tmp) / f"{strategy}.zarr")
            shutil.copytree(run.store_path, copy)
            store = PseudoLabelStore.open(copy)
            chosen = [items[i] for i in pick(items, strategy, priority, k, seed)]
            updates = []
            for video_id, t, obj, _ in chosen:
                annotation = reader.ground_truth(video_id, t)
                assert annotation is not None
                updates.append(
                    MaskUpdate(video_id, t, obj, annotation.mask_of(obj), MaskSource.HUMAN, Status.CORRECTED)
                )
            store.replace_masks(updates)
            relabel_videos(copy, sorted({u.video_id for u in updates}))
            results.append(StrategyResult(strategy, priority, len(updates), jf_before, _jf(copy, run)))
    return SimulationReport(budget_fraction, len(items), k, tuple(results))
