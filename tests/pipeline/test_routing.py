"""Routing in the label loop and refine: task swaps, model refinement, human budgets; corrections
survive run and refine. (The routing decisions themselves: tests/scoring/test_routing.py.)"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_run_config
from usam_video.config import HumanBudget, ModelRefinement, PolicyConfig, PolicyRule, ReviewPlanConfig
from usam_video.datasets import open_dataset
from usam_video.engine import PropagationSession
from usam_video.pipeline import label_dataset, refine_store
from usam_video.pipeline.context import cached_model
from usam_video.scoring.policy import OVER_BUDGET
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status


@pytest.fixture()
def data(synth_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def test_task_swap_writes_the_candidate_the_heads_prefer(
    data: Path, tmp_path: Path, small_model_config
) -> None:
    policy = PolicyConfig(
        rules=[PolicyRule(name="swap", score="task_gap", op=">", threshold=-1.0, route="task")],
        candidate_score="iou_tiny",
    )
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-002"], small_model_config, policy=policy)
    [result] = label_dataset(run)
    store = PseudoLabelStore.open(run.store_path, "r")
    table = store.frame_table("synth-002")
    swapped = np.argwhere(table.source == MaskSource.TASK)
    assert result.refined == len(swapped) > 0
    ds = open_dataset(run.dataset)
    session = PropagationSession(
        cached_model(small_model_config.model_dump_json()), ds.frames("synth-002"), keep_candidates=True
    )
    for p in ds.prompts("synth-002"):
        session.add_prompt(p)
    records = {r.frame_index: r for r in session.propagate()}
    column = table.candidate_score_names.index("iou_tiny")
    for t, o in swapped:
        r = records[int(t)]
        values = np.where(r.candidate_valid[o], table.candidate_scores[t, o, :, column], -np.inf)
        best = int(np.argmax(values))
        assert best != r.chosen_candidate[o] and table.status[t, o] == Status.REFINED
        np.testing.assert_array_equal(store.read_masks("synth-002", int(t))[o], r.candidate_masks[o, best])


def test_model_refinement_and_corrections_survive_run_and_refine(
    data: Path, tmp_path: Path, small_model_config
) -> None:
    larger = small_model_config.model_copy(update={"seed": 3, "name": "larger"})
    policy = PolicyConfig(
        rules=[PolicyRule(name="bigger", score="model_gap", op=">", threshold=-1.0, route="model")],
        model_refinement=ModelRefinement(model=larger),
    )
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-001"], small_model_config, policy=policy)
    label_dataset(run)
    store = PseudoLabelStore.open(run.store_path)
    queued = store.frame_table("synth-001").status == Status.QUEUED_REFINE
    assert queued[1:].all()  # every tracked frame-object
    correction = np.zeros((96, 128), bool)
    correction[5:40, 5:40] = True
    store.replace_masks([MaskUpdate("synth-001", 3, 2, correction, MaskSource.HUMAN, Status.CORRECTED)])

    [result] = refine_store(run.store_path)
    assert result.model == "larger" and result.refined == int(queued.sum()) - 1
    table = store.frame_table("synth-001")
    refined = table.status == Status.REFINED
    assert (table.source[refined] == MaskSource.MODEL).all()
    assert table.status[3, 1] == Status.CORRECTED  # untouched by refinement
    np.testing.assert_array_equal(store.read_masks("synth-001", 3)[1], correction)
    # the refined masks are the larger model's (tracking the same prompts plus the correction)
    ds = open_dataset(run.dataset)
    session = PropagationSession(cached_model(larger.model_dump_json()), ds.frames("synth-001"))
    prompts = ds.prompts("synth-001")
    for p in prompts:
        session.add_prompt(p)
    from usam_video.types import ObjectPrompt

    session.add_prompt(ObjectPrompt(2, 3, mask=correction))
    for r in session.propagate():
        for o in range(2):
            if refined[r.frame_index, o]:
                np.testing.assert_array_equal(store.read_masks("synth-001", r.frame_index)[o], r.masks[o])

    # a later run under another config relabels the video; the correction stays
    run2 = run.model_copy(update={"policy": PolicyConfig(name="other")})
    label_dataset(run2)
    table = PseudoLabelStore.open(run.store_path, "r").frame_table("synth-001")
    assert table.status[3, 1] == Status.CORRECTED and table.source[3, 1] == MaskSource.HUMAN
    np.testing.assert_array_equal(
        PseudoLabelStore.open(run.store_path, "r").read_masks("synth-001", 3)[1], correction
    )


PER_FRAME = ReviewPlanConfig(kind="per_frame", skip_after=0)


def test_human_budget_per_video_and_per_run(data: Path, tmp_path: Path, small_model_config) -> None:
    """With the per-frame planner the budget keeps the most uncertain frame-objects."""
    rules = [PolicyRule(name="all", score="sam_iou", op="<", threshold=2.0, route="human")]
    per_video = PolicyConfig(
        rules=rules, human_budget=HumanBudget(fraction_per_video=0.25, priority="sam_iou", plan=PER_FRAME)
    )
    run = make_run_config(
        data, tmp_path / "v.zarr", ["synth-001", "synth-002"], small_model_config, policy=per_video
    )
    label_dataset(run)
    store = PseudoLabelStore.open(run.store_path, "r")
    for v in ("synth-001", "synth-002"):
        table = store.frame_table(v)
        queued = table.status == Status.QUEUED_HUMAN
        assert queued.sum() == int(0.25 * table.status.size)
        turned = (table.status == Status.ACCEPTED) & (table.reason > 0)
        assert {table.reason_label(int(c)) for c in table.reason[turned]} == {OVER_BUDGET}
        # the most uncertain (lowest sam_iou) of the video were kept
        assert table.scores[queued][:, 0].max() <= table.scores[turned][:, 0].min()

    per_run = PolicyConfig(
        rules=rules, human_budget=HumanBudget(max_per_run=3, priority="sam_iou", plan=PER_FRAME)
    )
    run = make_run_config(
        data, tmp_path / "r.zarr", ["synth-001", "synth-002"], small_model_config, policy=per_run
    )
    label_dataset(run)
    store = PseudoLabelStore.open(run.store_path, "r")
    assert len(store.queue()) == 3  # the run's cap, across both videos
    kept, turned = [], []
    for v in ("synth-001", "synth-002"):
        table = store.frame_table(v)
        kept += table.scores[table.status == Status.QUEUED_HUMAN][:, 0].tolist()
        turned += table.scores[(table.status == Status.ACCEPTED) & (table.reason > 0)][:, 0].tolist()
    assert len(turned) == 2 * 5 + 3 * 5 - 3  # every tracked non-prompt frame-object was queued
    assert max(kept) <= min(turned)


@pytest.mark.parametrize("budget", [{"max_per_video": 3}, {"max_per_run": 4}])
def test_human_budget_follows_the_review_plan(
    budget: dict, data: Path, tmp_path: Path, small_model_config
) -> None:
    """The default planner keeps the onsets of low runs, at most one per run, and the store
    says why each was picked (what `queue` shows)."""
    rules = [PolicyRule(name="all", score="sam_iou", op="<", threshold=2.0, route="human")]
    policy = PolicyConfig(rules=rules, human_budget=HumanBudget(priority="sam_iou", **budget))
    run = make_run_config(
        data, tmp_path / "p.zarr", ["synth-001", "synth-002"], small_model_config, policy=policy
    )
    label_dataset(run)
    store = PseudoLabelStore.open(run.store_path, "r")
    queue = store.queue()
    assert 0 < len(queue) <= (4 if "max_per_run" in budget else 6)
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for entry in queue:
        plan = store.review_plan(entry.video_id)[(entry.frame_index, entry.object_id)]
        assert entry.plan == plan["reason"] and plan["rank"] >= 1
        assert "onset of a low run" in entry.plan or "budget left after runs" in entry.plan
        assert plan["run_start"] <= entry.frame_index <= plan["run_end"]
        spans.setdefault((entry.video_id, entry.object_id), []).append((plan["run_start"], plan["run_end"]))
    for runs in spans.values():  # never two picks in one run
        runs.sort()
        assert all(a[1] < b[0] for a, b in zip(runs, runs[1:], strict=False))
