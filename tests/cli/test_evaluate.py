"""``usam-video evaluate`` on the shared DAVIS sample (predictions folders written from its
ground truth) and on a store, with the exit code 2 on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.evaluation.helpers import copy_davis_predictions, write_dataset_yaml, write_fake_store
from usam_video.cli import app
from usam_video.config import DatasetConfig
from usam_video.palette import write_palette_png

runner = CliRunner()
SAMPLE_VIDEOS = ["blackswan", "bmx-trees", "car-shadow", "tennis"]
EVALUATED = ["blackswan", "car-shadow"]  # bmx-trees has 1 annotated frame, tennis 2


@pytest.fixture(scope="module")
def sample_yaml(davis_root: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-eval")
    return write_dataset_yaml(folder / "davis.yaml", "davis-sample", davis_root, SAMPLE_VIDEOS)


def _evaluate_json(*args: str) -> dict:
    result = runner.invoke(app, ["evaluate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ground_truth_as_prediction_is_perfect(davis_root: Path, sample_yaml: Path, tmp_path: Path) -> None:
    folder = copy_davis_predictions(davis_root / "Annotations" / "480p", tmp_path / "pred", EVALUATED)
    data = _evaluate_json(str(folder), "--dataset", str(sample_yaml))
    assert data["source_kind"] == "davis-folder" and data["protocol"] == "davis"
    assert data["global"] == {"J&F": 1.0, "J": 1.0, "F": 1.0}
    assert data["jf"]["J&F-Mean"] == 1.0
    assert [s["sequence"] for s in data["sequences"]] == EVALUATED
    assert set(data["skipped"]) == {"bmx-trees", "tennis"}
    assert data["ranking"] is None


def test_shifted_by_one_frame(davis_root: Path, sample_yaml: Path, tmp_path: Path) -> None:
    annotations = davis_root / "Annotations" / "480p"
    folder = copy_davis_predictions(annotations, tmp_path / "pred", EVALUATED, shift=1)
    data = _evaluate_json(str(folder), "--dataset", str(sample_yaml))
    # car-shadow frame 1 is predicted by the ground truth of frame 0.
    car = data["jf"]["sequences"][1]
    assert car["sequence"] == "car-shadow" and car["frames"][0] == 1
    gt = np.array(Image.open(annotations / "car-shadow" / "00001.png")) == 1
    pred = np.array(Image.open(annotations / "car-shadow" / "00000.png")) == 1
    j = np.logical_and(gt, pred).sum() / np.logical_or(gt, pred).sum()
    assert car["objects"][0]["J"][0] == pytest.approx(j, abs=1e-12)
    assert car["objects"][0]["J"][0] == pytest.approx(0.89116470, abs=1e-8)  # worked out by hand
    # F of that frame, checked once by hand with scipy's binary dilation (radius 8 px).
    assert car["objects"][0]["F"][0] == pytest.approx(0.79914689, abs=1e-8)
    assert 0.0 < data["global"]["J&F"] < 1.0
    assert 0.0 < data["global"]["J"] < 1.0


def test_table_output_and_files_for_a_store(synth_root: Path, tmp_path: Path) -> None:
    videos = ["synth-000", "synth-001"]
    store = tmp_path / "s.zarr"
    write_fake_store(DatasetConfig(name="synth", root=synth_root, videos=videos), store, videos)
    config = write_dataset_yaml(tmp_path / "synth.yaml", "synth", synth_root, videos)
    result = runner.invoke(
        app, ["evaluate", str(store), "--dataset", str(config), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    for text in ("J&F", "synth-001", "relative AUC", "task_gap", "oracle", "random_sample", "mystery"):
        assert text in result.output
    assert (tmp_path / "o" / "evaluation.json").is_file() and (tmp_path / "o" / "ranking.png").is_file()
    data = _evaluate_json(str(store), "--dataset", str(config), "--protocol", "sav")
    assert data["protocol"] == "sav" and 0.0 < data["global"]["J&F"] <= 100.0
    rows = {r["score"]: r for r in data["ranking"]["table"]}
    assert rows["oracle"]["relative_auc"] == 1.0 and not math.isnan(rows["sam_iou"]["spearman"])


@pytest.mark.parametrize("case", ["neither", "wrong_size", "missing_video", "bad_protocol", "bad_config"])
def test_bad_input_exits_2_naming_the_file(
    davis_root: Path, sample_yaml: Path, tmp_path: Path, case: str
) -> None:
    folder = copy_davis_predictions(davis_root / "Annotations" / "480p", tmp_path / "pred", EVALUATED)
    args = [str(folder), "--dataset", str(sample_yaml)]
    if case == "neither":
        (tmp_path / "junk").mkdir()
        (tmp_path / "junk" / "readme.txt").write_text("x")
        args[0] = str(tmp_path / "junk")
        expected = "neither"
    elif case == "wrong_size":
        write_palette_png(folder / "car-shadow" / "00007.png", np.zeros((240, 427), np.uint8))
        expected = "00007.png"
    elif case == "missing_video":
        for png in (folder / "blackswan").iterdir():
            png.unlink()
        (folder / "blackswan").rmdir()
        expected = "blackswan"
    elif case == "bad_protocol":
        args += ["--protocol", "coco"]
        expected = "protocol"
    else:
        args[2] = str(tmp_path / "absent.yaml")
        expected = "absent.yaml"
    result = runner.invoke(app, ["evaluate", *args])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and expected in result.output.replace("\n", "")
