"""Review rounds in the real loop (issue #35): label with a per-video human budget, export,
correct some of the planner's picks, import (which relabels the video): the next round plans
only its share of what the budget has left, records its round in the plan, the export and the
review report, and the last of the budget's ``rounds`` ends the video's review."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_run_config
from tests.review.helpers import VIDEO, edit_png, rectangle
from usam_video.config import HumanBudget, PolicyConfig, PolicyRule, ReviewPlanConfig
from usam_video.evaluation.pages import render_markdown
from usam_video.pipeline import export_queue, import_corrections, label_dataset
from usam_video.pipeline.label import LabelledVideo
from usam_video.pipeline.report import build_report, digest_video
from usam_video.pipeline.report.blocks import index_header, index_row, video_blocks
from usam_video.review import read_manifest
from usam_video.review.budget import budget_left
from usam_video.scoring.policy import OVER_BUDGET
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

#: 4 corrections per video over 2 rounds (2 a round when each is corrected in full). The
#: per-frame planner takes exactly min(limit, queued) picks, so every count below is exact.
BUDGET = HumanBudget(
    priority="sam_iou",
    max_per_video=4,
    rounds=2,
    plan=ReviewPlanConfig(kind="per_frame", skip_after=0),
)
POLICY = PolicyConfig(
    name="rounds",
    rules=[PolicyRule(name="low", score="sam_iou", op="<", threshold=2.0, route="human")],  # all
    human_budget=BUDGET,
)
FRAME_OBJECTS = 12  # VIDEO: 6 frames x 2 objects; frame 0 holds the prompts, 10 are queued


def plan_of(store: Path) -> list[dict]:
    return sorted(PseudoLabelStore.open(store, "r").review_plan(VIDEO).values(), key=lambda e: e["rank"])


def correct(store: Path, out: Path, picks: list[tuple[int, int]]):
    """Export the queue, draw a new mask on each of ``picks``, delete every other queued mask
    (left as it is by the import), import: exactly ``picks`` become corrections."""
    export_queue(store, "png", out)
    for e in read_manifest(out / "manifest.json").entries:
        if e.queued and (e.frame, e.object_id) not in picks:
            (out / "masks" / VIDEO / f"{e.object_id:03d}" / f"{e.frame:05d}.png").unlink()
    for t, obj in picks:
        edit_png(out, t, obj, rectangle())
    return import_corrections(store, out)


@dataclass(frozen=True)
class SecondRound:
    store: Path
    first_plan: list[dict]
    corrected: list[tuple[int, int]]
    relabelled: tuple


@pytest.fixture(scope="module")
def second_round(tmp_path_factory, synth_root: Path, small_model_config) -> SecondRound:
    """VIDEO labelled (round 1: its share, 2 picks), both corrected through export and import."""
    root = tmp_path_factory.mktemp("rounds")
    store = root / "s.zarr"
    [labelled] = label_dataset(make_run_config(synth_root, store, [VIDEO], small_model_config, POLICY))
    assert labelled.queued_human == 2
    first = plan_of(store)
    corrected = [(e["frame"], e["object"]) for e in first[:2]]
    result = correct(store, root / "export-1", corrected)
    assert result.corrected == {VIDEO: 2} and result.edited == 2
    return SecondRound(store, first, corrected, result.relabelled)


def test_the_first_pass_is_round_one_with_its_share(second_round: SecondRound) -> None:
    assert len(second_round.first_plan) == 2  # half of the 4, for the first of 2 rounds
    assert {e["round"] for e in second_round.first_plan} == {1}


def test_a_relabel_after_an_import_plans_what_is_left_in_round_two(
    second_round: SecondRound, tmp_path: Path
) -> None:
    [relabelled] = second_round.relabelled
    assert relabelled.outcome == "labelled" and isinstance(relabelled, LabelledVideo)
    plan = plan_of(second_round.store)
    k = len(second_round.corrected)
    assert len(plan) == BUDGET.max_per_video - k  # the last round: what is left, not the budget again
    assert {e["round"] for e in plan} == {2}
    assert list(relabelled.plan) == plan  # what the relabel returned is what it stored
    assert not {(e["frame"], e["object"]) for e in plan} & set(second_round.corrected)
    store = PseudoLabelStore.open(second_round.store, "r")
    table = store.frame_table(VIDEO)
    for t, obj in second_round.corrected:
        assert table.status[t, obj - 1] == Status.CORRECTED
    # Every other frame-object the policy queued was accepted over the budget.
    assert int((table.status == Status.QUEUED_HUMAN).sum()) == len(plan)
    over = [table.reason_label(int(c)) for c in table.reason[table.status == Status.ACCEPTED]]
    assert over.count(OVER_BUDGET) == FRAME_OBJECTS - 2 - k - len(plan)  # 2: frame 0's prompts

    # The export carries each pick's round; context entries carry none.
    export_queue(second_round.store, "png", tmp_path / "export-2")
    entries = read_manifest(tmp_path / "export-2" / "manifest.json").entries
    picks = {(e["frame"], e["object"]) for e in plan}
    assert {(e.frame, e.object_id) for e in entries if e.queued} == picks
    assert all(e.round == 2 for e in entries if e.queued)
    assert all(e.round is None for e in entries if not e.queued)
    assert {k: e["round"] for k, e in store.review_plan(VIDEO).items()} == dict.fromkeys(picks, 2)


def test_the_review_report_shows_round_spent_and_left(second_round: SecondRound) -> None:
    store = PseudoLabelStore.open(second_round.store, "r")
    digest = digest_video(store, VIDEO)
    assert (digest.review_round, digest.corrected, digest.budget_left) == (2, 2, 2)
    report = build_report(second_round.store, ground_truth=False)
    page = render_markdown(video_blocks(report, VIDEO, None), str)  # no images: text only
    assert "Review round 2: human budget spent 2, left 2." in page
    row = dict(zip(index_header(report, "video"), index_row(report, digest, VIDEO), strict=True))
    assert (row["corrected"], row["round"], row["budget left"]) == ("2", "2", "2")


def test_the_last_round_ends_the_review(second_round: SecondRound, tmp_path: Path) -> None:
    store = shutil.copytree(second_round.store, tmp_path / "s.zarr")
    queued = [(e["frame"], e["object"]) for e in plan_of(store)]
    result = correct(store, tmp_path / "export-3", queued[:1])
    assert [r.outcome for r in result.relabelled] == ["labelled"]
    spent = len(second_round.corrected) + 1
    # The budget alone would let one more through; the second round of corrections ends it.
    assert budget_left(BUDGET.model_copy(update={"rounds": 3}), FRAME_OBJECTS, spent, rounds_done=2) == 1
    assert plan_of(store) == []
    opened = PseudoLabelStore.open(store, "r")
    table = opened.frame_table(VIDEO)
    assert not (table.status == Status.QUEUED_HUMAN).any()
    over = [table.reason_label(int(c)) for c in table.reason[table.status == Status.ACCEPTED]]
    assert over.count(OVER_BUDGET) == FRAME_OBJECTS - 2 - spent
    digest = digest_video(opened, VIDEO)
    assert (digest.review_round, digest.corrected, digest.budget_left) == (3, spent, 0)


def test_a_plan_stored_before_rounds_reads_as_round_one(second_round: SecondRound, tmp_path: Path) -> None:
    store = shutil.copytree(second_round.store, tmp_path / "s.zarr")
    old = [{k: v for k, v in e.items() if k != "round"} for e in plan_of(store)]
    PseudoLabelStore.open(store).set_review_plan(VIDEO, old)
    import zarr  # an older store's video group: no review round among its attributes either

    del zarr.open_group(store / "videos" / VIDEO).attrs["review_round"]
    opened = PseudoLabelStore.open(store, "r")
    assert {e["round"] for e in opened.review_plan(VIDEO).values()} == {1}
    assert digest_video(opened, VIDEO).review_round == 1
    export_queue(store, "png", tmp_path / "export")
    queued = [e for e in read_manifest(tmp_path / "export" / "manifest.json").entries if e.queued]
    assert len(queued) == len(old) and all(e.round == 1 for e in queued)
