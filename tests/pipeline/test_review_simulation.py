"""simulate-review: budgets, every score under every planner, oracle and random; its in-memory
relabel equals relabelling a store copy."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_run_config
from usam_video.cli import app
from usam_video.errors import InputError
from usam_video.pipeline.click_simulation import pick
from usam_video.pipeline.evaluate import evaluate_predictions
from usam_video.pipeline.label import label_dataset, relabel_videos
from usam_video.pipeline.review_simulation import (
    ReviewSimulation,
    SimulationReport,
    StrategyResult,
    simulate_review,
    split_budget,
    write_report,
)
from usam_video.review.planner import PlannerSettings
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status

VIDEOS = ["synth-001", "synth-002"]


@pytest.fixture(scope="module")
def labelled(synth_root: Path, tmp_path_factory, small_model_config):
    tmp = tmp_path_factory.mktemp("sim")
    data = tmp / "data"
    shutil.copytree(synth_root, data)
    run = make_run_config(data, tmp / "s.zarr", VIDEOS, small_model_config)
    label_dataset(run)
    return run


def test_random_pick_is_seeded() -> None:
    items = [("v", t, 1, {}) for t in range(5)]
    assert pick(items, 3, 0) == pick(items, 3, 0)
    assert sorted(pick(items, 5, 1)) == [0, 1, 2, 3, 4]


def test_before_review_equals_evaluate(labelled) -> None:
    sim = ReviewSimulation.open(labelled)
    expected = evaluate_predictions(labelled.store_path, labelled.dataset).global_scores()["J&F"]
    assert sim.jf({}) == pytest.approx(expected, abs=1e-9)
    # frames 1..5 of 2 + 3 objects have ground truth and are tracked
    assert sim.candidates == 25


def test_in_memory_relabel_equals_relabelling_a_store_copy(labelled, tmp_path: Path) -> None:
    sim = ReviewSimulation.open(labelled)
    picks = [(2, 1), (4, 2)]
    ours = sim.relabelled("synth-002", picks)
    copy = tmp_path / "copy.zarr"
    shutil.copytree(labelled.store_path, copy)
    store = PseudoLabelStore.open(copy)
    reader = sim.context.reader
    store.replace_masks(
        [
            MaskUpdate(
                "synth-002",
                t,
                o,
                reader.ground_truth("synth-002", t).mask_of(o),
                MaskSource.HUMAN,
                Status.CORRECTED,
            )
            for t, o in picks
        ]
    )
    relabel_videos(copy, ["synth-002"])
    theirs = evaluate_predictions(copy, labelled.dataset, videos=["synth-002"])
    assert ours.objects and np.mean([(o.j_mean + o.f_mean) / 2 for o in ours.objects]) == pytest.approx(
        theirs.global_scores()["J&F"], abs=1e-9
    )
    assert sim.relabelled("synth-002", list(reversed(picks))) is ours  # cached by the set of picks
    # The rescored table (what a next round plans on) is the relabelled store's, bit for bit.
    table = store.frame_table("synth-002")
    _, names, scores, tracked, eligible, true_iou = sim.rescored("synth-002", picks)
    assert names == table.score_names and np.array_equal(scores, table.scores, equal_nan=True)
    assert np.array_equal(tracked, table.status != Status.NOT_STARTED)
    assert not eligible[2, 0] and not eligible[4, 1]  # corrected: never picked again
    assert np.array_equal(eligible[1:], np.isin(table.status[1:], [1, 2, 3, 4]))  # frame 0: prompts
    assert true_iou[2, 0] == 1.0 and true_iou[4, 1] == 1.0  # the ground truth itself
    assert sim.relabelled("synth-002", picks) == ours  # the rescoring relabel: the same result


def test_oracle_corrections_help(labelled) -> None:
    sim = ReviewSimulation.open(labelled)
    picks = sim.plan("oracle", PlannerSettings(kind="per_frame", skip_after=0), 5)
    assert len(picks) == 5
    assert sim.evaluate(picks) > sim.jf({})  # ground truth where the masks are worst


def test_per_frame_planner_takes_the_most_uncertain_first_in_the_registrys_direction(labelled) -> None:
    sim = ReviewSimulation.open(labelled)
    per_frame = PlannerSettings(kind="per_frame", skip_after=0)
    for score, worst_first in (("entropy", np.argmax), ("sam_iou", np.argmin)):
        picks = sim.plan(score, per_frame, 1)
        values = []
        for video_id in sim.videos:
            object_ids, names, scores, _, eligible, _ = sim.tables[video_id]
            column = scores[..., names.index(score)]
            rows = zip(*np.nonzero(eligible), strict=True)
            values += [(column[t, o], video_id, t, object_ids[o]) for t, o in rows]
        best = values[int(worst_first([v[0] for v in values]))]
        assert (picks[0].video_id, picks[0].frame_index, picks[0].object_id) == best[1:]


@pytest.fixture(scope="module")
def one_round(labelled) -> SimulationReport:
    return simulate_review(labelled, budgets=(0.1, 0.2), scores=["sam_iou", "entropy"], label=False)


def test_simulate_review_reports_every_strategy_at_every_budget(one_round, tmp_path: Path) -> None:
    report = one_round
    assert report.candidates == 25 and dict(report.budgets) == {0.1: 2, 0.2: 5}
    expected = {f"{s}/{p}" for s in ("oracle", "sam_iou", "entropy") for p in ("per_frame", "runs")}
    assert set(report.strategies) == expected | {"random/per_frame"}
    assert len(report.results) == 2 * 7
    for r in report.results:
        assert r.corrected == report.budgets[r.budget_fraction] and 0 <= r.jf_after <= 1
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths[0].read_text())
    assert data["default_strategy"] == report.default_strategy and data["results"][0]["picks"]
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_round_is_one_plan_on_the_labelled_tables_without_a_feature_cache(labelled, one_round) -> None:
    """The default (one round, features cached) gives what planning once on the labelled tables
    and relabelling without a cache gives: the same picks and the same J&F, bit for bit."""
    sim = ReviewSimulation.open(labelled)
    assert sim.features is None
    runs = PlannerSettings(**one_round.settings)
    per_frame = PlannerSettings(**{**one_round.settings, "kind": "per_frame", "skip_after": 0})
    for r in one_round.results:  # every strategy at every budget plans as before
        settings = runs if r.planner == "runs" else per_frame
        assert r.picks == rows_of(sim.plan(r.score, settings, one_round.budgets[r.budget_fraction]))
        assert not r.rounds
    r = one_round.result("entropy/runs", 0.2)
    assert r.jf_after == sim.evaluate(sim.plan("entropy", runs, 5))  # bit for bit, uncached
    assert "rounds" not in one_round.as_dict()


def test_rounds_plan_on_rescored_tables(labelled) -> None:
    sim = ReviewSimulation.open(labelled, feature_cache_bytes=1 << 28)
    per_frame = PlannerSettings(kind="per_frame", skip_after=0)
    assert split_budget(5, 2) == [3, 2]
    results = []
    for score in ("oracle", "entropy"):
        first, second = sim.review_in_rounds(score, per_frame, 5, 2)
        assert (first.corrected, second.corrected) == (3, 5)  # the whole budget
        picks = first.picks + second.picks
        assert len(set(picks)) == 5 and set(first.picks).isdisjoint(second.picks)
        # Round 1 is the top of the one-round plan; on the labelled tables round 2 would pick
        # it again: round 2 is the top of the plan on the tables rescored after round 1.
        assert first.picks[:2] == rows_of(sim.plan(score, per_frame, 2))
        corrected: dict[str, list[tuple[int, int]]] = {}
        for video_id, t, obj, _ in first.picks:
            corrected.setdefault(video_id, []).append((t, obj))
        tables = {**sim.tables, **{v: sim.rescored(v, ps) for v, ps in corrected.items()}}
        replanned = sim.plan(score, per_frame, 2, tables=tables)
        assert second.picks == rows_of(replanned)
        assert second.jf_after == sim.evaluate(sim.plan(score, per_frame, 3) + replanned)
        results.append(
            StrategyResult(score, "per_frame", 0.2, 5, sim.jf({}), second.jf_after, picks, (first, second))
        )
    assert sim.features is not None and sim.features.hits > 0
    report = SimulationReport(25, {0.2: 5}, "entropy/per_frame", {}, sim.jf({}), tuple(results), rounds=2)
    rows = report.as_dict(with_picks=True)["results"][0]["rounds"]
    assert report.as_dict()["rounds"] == 2 and [x["corrected"] for x in rows] == [3, 5]
    assert len(rows[1]["picks"]) == 2 and report.round_gains()["oracle/per_frame"][0.2] == [
        first.jf_after - sim.jf({}) for first in results[0].rounds
    ]


def rows_of(picks) -> tuple:
    return tuple((p.video_id, p.frame_index, p.object_id, p.reason) for p in picks)


def test_simulate_review_refuses_bad_input(labelled) -> None:
    with pytest.raises(InputError, match="budget fractions"):
        simulate_review(labelled, budgets=(0.0,), label=False)
    with pytest.raises(InputError, match="planners"):
        simulate_review(labelled, planners=("magic",), label=False)
    with pytest.raises(InputError, match="prev_iou"):
        simulate_review(labelled, scores=["prev_iou"], label=False)  # a feature has no direction
    with pytest.raises(InputError, match="expected 1 or more rounds, got 0"):
        simulate_review(labelled, rounds=0, label=False)
    with pytest.raises(InputError, match="feature cache of 0 or more bytes, got -1"):
        simulate_review(labelled, feature_cache_bytes=-1, label=False)


def test_simulate_review_command(prefect_harness, labelled, one_round, tmp_path: Path) -> None:
    """``--rounds 1 --rounds 2`` compares one round and two in one report: every strategy once
    per count, the one-round rows exactly those of a one-round report."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(labelled.model_dump(mode="json")))
    result = CliRunner().invoke(
        app,
        [
            "simulate-review",
            str(path),
            "--budget",
            "0.2",
            "--score",
            "entropy",
            "--rounds",
            "2",
            "--rounds",
            "1",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["candidates"] == 25 and report["budgets"] == {"0.2": 5} and report["rounds"] == 2
    names = ["oracle/per_frame", "oracle/runs", "entropy/per_frame", "entropy/runs", "random/per_frame"]
    by_name = {r["strategy"]: r for r in report["results"]}
    assert list(by_name) == names + [f"{n} (2 rounds)" for n in names]
    assert report["default_strategy"] == one_round.default_strategy  # named for the first count
    for name in names:
        assert by_name[name]["gain"] == round(one_round.result(name, 0.2).gain, 6)
        assert "rounds" not in by_name[name] and len(by_name[f"{name} (2 rounds)"]["rounds"]) == 2
        assert by_name[f"{name} (2 rounds)"]["corrected"] == 5
    assert (tmp_path / "out" / "gain-curves.png").is_file()
