"""The human budget over review rounds (usam_video.review.budget): what a video has left after
the corrections of earlier rounds, each round's share of it, where ``rounds`` stops it, and the
round a plan records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usam_video.config import HumanBudget
from usam_video.review import read_manifest
from usam_video.review.budget import budget_left, plan_entries, review_round, round_share, video_limit
from usam_video.review.manifest import Manifest, ManifestEntry, write_manifest
from usam_video.review.planner import Pick
from usam_video.store import WriteBatch


@pytest.mark.parametrize(
    ("budget", "queued", "spent", "expected"),
    [
        ({"max_per_video": 4}, 10, 0, 4),  # the first round: the whole cap
        ({"max_per_video": 4}, 10, 1, 3),  # later rounds: the cap less what humans corrected
        ({"max_per_video": 4}, 2, 1, 2),  # fewer queued than left: all of them
        ({"max_per_video": 4}, 10, 4, 0),  # spent
        ({"max_per_video": 4}, 10, 7, 0),  # more corrections than the cap (a smaller new cap): never negative
        ({"fraction_per_video": 0.25}, 10, 1, 2),  # floor(0.25 * 12) - 1
        ({"fraction_per_video": 0.5, "max_per_video": 4}, 10, 1, 3),  # the smaller cap, less spent
        ({"max_per_run": 3}, 10, 5, 10),  # no per-video cap: the run budget decides later
    ],
)
def test_video_limit_subtracts_the_spent_budget(budget: dict, queued: int, spent: int, expected: int) -> None:
    assert video_limit(HumanBudget(**budget), queued, 12, spent=spent) == expected


def test_rounds_spread_the_budget_and_stop_planning() -> None:
    budget = HumanBudget(max_per_video=10, rounds=3)
    assert video_limit(budget, 20, 40) == 4  # round 1: ceil(10 / 3)
    assert video_limit(budget, 20, 40, spent=4, rounds_done=1) == 3  # ceil(6 / 2)
    assert video_limit(budget, 20, 40, spent=1, rounds_done=1) == 5  # a curator fixed less: ceil(9 / 2)
    assert video_limit(budget, 20, 40, spent=7, rounds_done=2) == 3  # the last round: all that is left
    assert video_limit(budget, 20, 40, spent=7, rounds_done=3) == 0  # the review is over
    assert budget_left(budget, 40, spent=7, rounds_done=3) == 0
    # Without a per-video cap only the rounds stop a video; before that nothing caps it (None).
    assert budget_left(HumanBudget(rounds=1), 12, spent=3, rounds_done=1) == 0
    assert budget_left(HumanBudget(rounds=1), 12, spent=3, rounds_done=0) is None
    assert video_limit(HumanBudget(rounds=2), 8, 12, rounds_done=1) == 8


def test_round_share_is_the_simulations_split() -> None:
    from usam_video.pipeline.review_simulation import split_budget

    assert [round_share(10, k) for k in (3, 2, 1, 0)] == [4, 5, 10, 0]
    assert split_budget(10, 3) == [4, 3, 3] and split_budget(2, 3) == [1, 1, 0]
    assert sum(split_budget(112, 3)) == 112


def test_one_round_by_default_and_checked() -> None:
    assert HumanBudget().rounds == 1
    assert video_limit(HumanBudget(max_per_video=4), 10, 12) == 4  # the whole budget at once
    with pytest.raises(ValueError, match="rounds"):
        HumanBudget(rounds=0)


def test_the_default_rounds_keeps_the_run_fingerprint() -> None:
    """Stores labelled before ``rounds`` existed stay complete under their config: the budget
    without the field (as it was) fingerprints as the default does; another value not."""
    from pydantic import create_model

    from usam_video.config import config_fingerprint
    from usam_video.config.base import StrictModel

    fields = {n: (f.annotation, f) for n, f in HumanBudget.model_fields.items() if n != "rounds"}
    before = create_model("HumanBudget", __base__=StrictModel, **fields)  # type: ignore[call-overload]
    assert config_fingerprint(before(max_per_video=3)) == config_fingerprint(HumanBudget(max_per_video=3))
    two_rounds = HumanBudget(max_per_video=3, rounds=2)
    assert config_fingerprint(before(max_per_video=3)) != config_fingerprint(two_rounds)


def _batch(generation: int, history: dict[str, tuple[int, int]]) -> WriteBatch:
    return WriteBatch(f"b{generation}", generation, True, history)


def test_the_round_counts_the_imports_that_brought_the_video_corrections() -> None:
    batches = [
        _batch(2, {"a": (0, 3), "b": (0, 1)}),
        _batch(3, {"b": (1, 2)}),
        _batch(4, {"a": (3, 3)}),  # recorded, but wrote nothing of "a"
    ]
    assert review_round(batches, "a") == 2
    assert review_round(batches, "b") == 3
    assert review_round(batches, "c") == 1
    assert review_round([], "a") == 1


def test_plan_entries_record_their_round() -> None:
    picks = [Pick("v", 1, 3, 0.5, 3, 5, 3, "run", "onset"), Pick("v", 2, 4, 0.4, 4, 4, 1, "run", "onset")]
    assert [e["round"] for e in plan_entries(picks)] == [1, 1]
    entries = plan_entries(picks, in_round=3)
    assert [(e["rank"], e["round"]) for e in entries] == [(1, 3), (2, 3)]


def test_a_manifest_entry_without_a_round_reads_as_none(tmp_path: Path) -> None:
    entries = (
        ManifestEntry("v", 1, 1, 2, "queued_human", "propagated", "low", True, "", round=2),
        ManifestEntry("v", 1, 2, 2, "accepted", "propagated", "", False, ""),
    )
    manifest = Manifest("/s.zarr", "png", "now", ("queued_human",), {}, (), entries)
    path = write_manifest(tmp_path, manifest)
    assert [e.round for e in read_manifest(path).entries] == [2, None]
    data = json.loads(path.read_text())
    for entry in data["entries"]:
        entry.pop("round")  # written before rounds
    path.write_text(json.dumps(data))
    assert [e.round for e in read_manifest(path).entries] == [None, None]
