"""The label loop returns what it wrote (issue #33): each labelled video comes back with its
frame table and review plan, as the store holds them after either human budget, so that the run
budget, the score plots and the report never read them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_run_config
from usam_video.config import HumanBudget, PolicyConfig, PolicyRule
from usam_video.pipeline import (
    LabelledVideo,
    apply_run_budget,
    label_video,
    load_context,
    run_score_values,
    stored_videos,
)
from usam_video.store import PseudoLabelStore
from usam_video.types import Status


def assert_table_is_the_stores(video: LabelledVideo, store: PseudoLabelStore) -> None:
    """The frame table and review plan a labelled video comes back with equal the stored ones."""
    assert video.table is not None
    stored = store.frame_table(video.video_id)
    for name in ("object_ids", "score_names", "reasons"):
        assert getattr(video.table, name) == getattr(stored, name), name
    for name in ("status", "reason", "source"):
        np.testing.assert_array_equal(getattr(video.table, name), getattr(stored, name), err_msg=name)
    np.testing.assert_array_equal(video.table.scores, stored.scores)
    plan = sorted(store.review_plan(video.video_id).values(), key=lambda e: e["rank"])
    assert list(video.plan) == plan


@pytest.mark.parametrize("budget", [{"max_per_video": 3}, {"max_per_run": 4}])
def test_the_loop_returns_what_it_wrote_after_either_budget(
    budget: dict, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    rules = [PolicyRule(name="all", score="sam_iou", op="<", threshold=2.0, route="human")]
    policy = PolicyConfig(rules=rules, human_budget=HumanBudget(priority="sam_iou", **budget))
    videos = ["synth-001", "synth-002"]
    run = make_run_config(synth_root, tmp_path / "b.zarr", videos, small_model_config, policy=policy)
    store = PseudoLabelStore.open(run.store_path)
    context = load_context(run)
    results = [label_video(context, v, store) for v in videos]
    labelled, turned_away = apply_run_budget(run, store, stored_videos(store, results))
    assert [v.video_id for v in labelled] == videos
    for video in labelled:
        assert_table_is_the_stores(video, store)
        assert video.table is not None
        # every frame-object still queued for a human is one of the plan's picks
        assert int((video.table.status == Status.QUEUED_HUMAN).sum()) == len(video.plan)
    if "max_per_run" in budget:
        assert turned_away > 0  # the run budget re-planned across the videos
        assert sum(len(v.plan) for v in labelled) == 4
    else:
        assert turned_away == 0
        assert all(1 <= len(v.plan) <= 3 for v in labelled)


def test_a_skipped_video_is_read_from_the_store_once(
    synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    """A video labelled by an earlier run comes back without a table; stored_videos reads it,
    and the run's score values equal those of the videos as first labelled."""
    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-001"], small_model_config)
    store = PseudoLabelStore.open(run.store_path)
    context = load_context(run)
    first = label_video(context, "synth-001", store)
    again = label_video(context, "synth-001", store)
    assert again.outcome == "skipped" and not isinstance(again, LabelledVideo)
    (read,) = stored_videos(store, [again])
    assert_table_is_the_stores(read, store)
    assert isinstance(first, LabelledVideo)
    before, after = run_score_values([first]), run_score_values([read])
    assert before.keys() == after.keys() and before
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_every_propagation_scores_as_the_label_loop_stored(
    synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    """One propagation path (issue #33): a caller that propagates and scores on its own thread
    (refine, the review simulation: :func:`scored_frames`) goes through the same frame batches
    and scorer as the label loop on its background thread, so it gets the stored scores bit for
    bit, not merely to float32 rounding."""
    from usam_video.engine import PropagationSession
    from usam_video.pipeline.label import FINISH_BATCH, scored_frames

    run = make_run_config(synth_root, tmp_path / "p.zarr", ["synth-002"], small_model_config)
    store = PseudoLabelStore.open(run.store_path)
    context = load_context(run)
    video = label_video(context, "synth-002", store)
    assert isinstance(video, LabelledVideo) and video.table is not None
    assert video.frames % FINISH_BATCH  # a partial batch is exercised
    session = PropagationSession(
        context.model, context.reader.frames("synth-002"), keep_candidates=context.policy.swaps_candidates
    )
    for prompt in context.reader.prompts("synth-002"):
        session.add_prompt(prompt)
    seen = []
    for prediction, scores in scored_frames(session, context.scorer):
        seen.append(prediction.frame_index)
        np.testing.assert_array_equal(scores.values, video.table.scores[prediction.frame_index])
    assert seen == list(range(video.frames))
