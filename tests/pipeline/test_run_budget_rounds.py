"""The run's human budget (``max_per_run``) over review rounds: a total for the store's videos,
less every correction made, and shared with the picks still queued in videos an import did not
touch (``share_run_budget``, ``apply_run_budget``)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_run_config
from usam_video.config import HumanBudget, PolicyConfig, PolicyRule, ReviewPlanConfig
from usam_video.pipeline import (
    apply_run_budget,
    export_queue,
    import_corrections,
    label_dataset,
    relabel_videos,
    stored_videos,
    video_result,
)
from usam_video.review import read_manifest
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

VIDEOS = ["synth-001", "synth-002"]  # 2 and 3 objects, 6 frames: 10 and 15 frame-objects queued
MAX_PER_RUN = 5


def queued(store: PseudoLabelStore, video_id: str) -> int:
    return int((store.frame_table(video_id).status == Status.QUEUED_HUMAN).sum())


def test_an_import_relabel_gets_the_run_budget_left(
    synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    """Rule: the relabelled videos get at most max_per_run, less every correction in the store,
    less the frame-objects still queued for humans in the store's other videos."""
    # 4 per video and 5 for the run, over 2 rounds: the first pass plans 2 per video and
    # ceil(5 / 2) = 3 for the run, so the run's picks are split 2 and 1 over the videos.
    budget = HumanBudget(
        priority="sam_iou",
        max_per_video=4,
        max_per_run=MAX_PER_RUN,
        rounds=2,
        plan=ReviewPlanConfig(kind="per_frame", skip_after=0),
    )
    rules = [PolicyRule(name="all", score="sam_iou", op="<", threshold=2.0, route="human")]
    policy = PolicyConfig(rules=rules, human_budget=budget)
    run = make_run_config(synth_root, tmp_path / "s.zarr", VIDEOS, small_model_config, policy=policy)
    label_dataset(run)
    store = PseudoLabelStore.open(run.store_path, "r")
    first = {v: queued(store, v) for v in VIDEOS}
    assert sorted(first.values()) == [1, 2]
    # The video with fewer picks is corrected: the other holds more of the run's budget.
    video, other = sorted(VIDEOS, key=lambda v: first[v])

    # The curator confirms one pick of `video` (an unchanged queued mask is a correction) and
    # leaves the rest of its export alone.
    out = tmp_path / "export"
    export_queue(run.store_path, "png", out, video_id=video)
    picks = [e for e in read_manifest(out / "manifest.json").entries if e.queued]
    for e in picks[1:]:
        (out / "masks" / video / f"{e.object_id:03d}" / f"{e.frame:05d}.png").unlink()
    result = import_corrections(run.store_path, out)
    assert result.corrected == {video: 1} and [r.outcome for r in result.relabelled] == ["labelled"]

    store = PseudoLabelStore.open(run.store_path, "r")
    assert queued(store, other) == first[other]  # picks already handed out keep their place
    # Its own budget has 4 - 1 = 3 left for its last round; the run only 5 - 1 - 2 = 2.
    assert queued(store, video) == MAX_PER_RUN - 1 - first[other] == 2
    assert {e["round"] for e in store.review_plan(video).values()} == {2}
    assert len(result.relabelled[0].plan) == queued(store, video)  # the returned plan is the stored one

    # A later pass over the run's videos counts the correction too: a cap of 4 keeps 4 - 1 picks.
    four = policy.model_copy(update={"human_budget": budget.model_copy(update={"max_per_run": 4})})
    smaller = run.model_copy(update={"policy": four})
    writable = PseudoLabelStore.open(run.store_path)
    rows = [video_result(writable, v, "skipped", 0.0) for v in VIDEOS]
    labelled, turned_away = apply_run_budget(smaller, writable, stored_videos(writable, rows))
    assert turned_away == first[other] + 2 - 3
    assert sum(queued(writable, v) for v in VIDEOS) == 3
    assert sum(len(v.plan) for v in labelled) == 3
    assert {e["round"] for e in writable.review_plan(video).values()} <= {2}  # rewritten, round kept

    # relabel_videos alone shares the run budget too (its stored max_per_run, 6).
    [again] = relabel_videos(run.store_path, [video])
    store = PseudoLabelStore.open(run.store_path, "r")
    assert queued(store, video) == len(again.plan) == min(4 - 1, MAX_PER_RUN - 1 - queued(store, other))
