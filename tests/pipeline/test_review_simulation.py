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
from usam_video.pipeline.review_simulation import ReviewSimulation, simulate_review, write_report
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
                "synth-002", t, o, reader.ground_truth("synth-002", t).mask_of(o), MaskSource.HUMAN,
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


def test_simulate_review_reports_every_strategy_at_every_budget(labelled, tmp_path: Path) -> None:
    report = simulate_review(labelled, budgets=(0.1, 0.2), scores=["sam_iou", "entropy"], label=False)
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


def test_simulate_review_refuses_bad_input(labelled) -> None:
    with pytest.raises(InputError, match="budget fractions"):
        simulate_review(labelled, budgets=(0.0,), label=False)
    with pytest.raises(InputError, match="planners"):
        simulate_review(labelled, planners=("magic",), label=False)
    with pytest.raises(InputError, match="prev_iou"):
        simulate_review(labelled, scores=["prev_iou"], label=False)  # a feature has no direction


def test_simulate_review_command(prefect_harness, labelled, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(labelled.model_dump(mode="json")))
    result = CliRunner().invoke(
        app,
        ["simulate-review", str(path), "--budget", "0.2", "--score", "entropy", "--json",
         "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["candidates"] == 25 and report["budgets"] == {"0.2": 5}
    names = [r["strategy"] for r in report["results"]]
    assert names == [
        "oracle/per_frame", "oracle/runs", "entropy/per_frame", "entropy/runs", "random/per_frame"
    ]
    assert (tmp_path / "out" / "gain-curves.png").is_file()
