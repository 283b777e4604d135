"""One review loop with the ground truth as annotator (the issue's budgeted comparison)."""

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.conftest import make_run_config
from usam_video.cli import app
from usam_video.pipeline.simulate import pick


def test_pick_orders_by_strategy() -> None:
    items = [
        ("v", t, 1, {"sam_iou": s, "prompt_gap": g, "iou_x": i})
        for t, (s, g, i) in enumerate([(0.9, 0.0, 0.2), (0.1, 0.3, 0.9), (0.5, 0.1, 0.5)])
    ]
    assert pick(items, "samscore", "prompt_gap", 2, 0) == [1, 2]  # lowest predicted IoU first
    assert pick(items, "usam", "prompt_gap", 2, 0) == [1, 2]  # biggest predicted gap first
    assert pick(items, "usam", "iou_x", 1, 0) == [0]  # lowest predicted IoU first
    assert pick(items, "random", "iou_x", 3, 0) == pick(items, "random", "iou_x", 3, 0)
    assert sorted(pick(items, "random", "iou_x", 3, 1)) == [0, 1, 2]


def test_simulate_review_command(
    prefect_harness, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-001", "synth-002"], small_model_config)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["simulate-review", str(path), "--budget", "0.2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    # frames 1..5 of 2 + 3 objects have ground truth and are tracked: 25 candidates, 20% -> 5
    assert report["candidates"] == 25 and report["budget"] == 5
    assert [r["strategy"] for r in report["results"]] == ["usam", "samscore", "random"]
    before = {r["jf_before"] for r in report["results"]}
    assert len(before) == 1 and 0 <= before.pop() <= 1
    for r in report["results"]:
        assert r["corrected"] == 5 and 0 <= r["jf_after"] <= 1
        assert r["priority"] == "prompt_gap"
