"""Automatic refinement of a store's queue: rerun the videos with frame-objects routed to the
larger model and write its masks there (the task swap happens while labelling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usam_video.datasets import open_dataset
from usam_video.engine import PropagationSession
from usam_video.errors import InputError
from usam_video.pipeline.context import cached_heads, cached_model
from usam_video.pipeline.label import prompts_with_corrections, run_config_of, scored_frames
from usam_video.scoring import Scorer, ThresholdPolicy
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status

__all__ = ["RefineResult", "refinable_videos", "refine_video", "refine_store"]


@dataclass(frozen=True)
class RefineResult:
    """What refinement did to one video: frame-objects refined and left queued, the model used,
    and, for a video whose refinement failed, why (``error``; the counts are then 0)."""

    video_id: str
    refined: int
    left_queued: int
    model: str
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)


def refine_video(store: PseudoLabelStore, video_id: str) -> RefineResult:
    """Refine the model-routed frame-objects of one video with the policy's larger SAM 2.

    The larger model tracks the same prompts (and every human correction, as conditioning
    frames); its masks replace the queued frame-objects (status ``refined``, source ``model``),
    rescored from its own tokens. Corrected frame-objects are never touched.

    Raises:
        DamagedVideoError: a chunk of the video fails its checksum (nothing is written).
        StoreWriteError: the OS refused a write (read-only store, full disk).
    """
    # Every chunk is read first: refining writes masks and history beside the damaged ones.
    store.require_intact(video_id)
    run = run_config_of(store, video_id)
    policy = ThresholdPolicy(run.policy)
    table = store.frame_table(video_id)
    routes = [policy.route_of(table.reason_label(int(code))) for code in range(len(table.reasons) + 1)]
    wanted = {
        (int(t), int(table.object_ids[o]))
        for t, o in zip(*np.nonzero(table.status == Status.QUEUED_REFINE), strict=True)
        if routes[int(table.reason[t, o])] in ("model", "refine")
    }
    if not wanted:
        return RefineResult(video_id, 0, 0, "")
    if run.policy.model_refinement is None:
        return RefineResult(video_id, 0, len(wanted), "")
    larger_cfg = run.policy.model_refinement.model
    larger = cached_model(larger_cfg.model_dump_json())
    heads = cached_heads(run.heads.model_dump_json())
    if heads is not None and heads.token_dim != larger.token_dim:
        raise InputError(
            f"policy model_refinement {larger_cfg.name!r}: expected {heads.token_dim}-d tokens "
            f"like the heads, got {larger.token_dim}-d."
        )
    scorer = Scorer(heads, larger.device)
    if scorer.names != table.score_names:
        raise InputError(
            f"video {video_id!r}: the stored scores {table.score_names} differ from {scorer.names}."
        )
    reader = open_dataset(run.dataset)
    prompts, _ = prompts_with_corrections(reader.prompts(video_id), store.corrections(video_id))
    session = PropagationSession(larger, reader.frames(video_id))
    for prompt in prompts:
        session.add_prompt(prompt)
    reasons = {
        (t, obj): table.reason_label(int(table.reason[t, table.object_ids.index(obj)])) for t, obj in wanted
    }
    updates = []
    for prediction, scores in scored_frames(session, scorer):
        for o, obj in enumerate(prediction.object_ids):
            key = (prediction.frame_index, obj)
            if key in wanted and prediction.tracked[o]:
                updates.append(
                    MaskUpdate(
                        video_id,
                        prediction.frame_index,
                        obj,
                        prediction.masks[o],
                        MaskSource.MODEL,
                        Status.REFINED,
                        reason=reasons[key],
                        scores=scores.values[o],
                    )
                )
    store.replace_masks(updates)
    return RefineResult(video_id, len(updates), len(wanted) - len(updates), larger_cfg.name)


def refinable_videos(store_path: str | Path) -> list[str]:
    """The complete videos of a store (an interrupted one is relabelled before it is refined)."""
    store = PseudoLabelStore.open(store_path)
    return [v for v in store.videos() if store.is_complete(v)]


def refine_store(store_path: str | Path, video_ids: Sequence[str] | None = None) -> list[RefineResult]:
    """Refine every (or the given) complete video of a store."""
    store = PseudoLabelStore.open(store_path)
    ids = list(video_ids) if video_ids is not None else refinable_videos(store_path)
    return [refine_video(store, video_id) for video_id in ids]
