"""The usam-video command line (typer's runner; the flow commands under the Prefect harness)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import CONFIGS, make_run_config
from usam_video.cli import app
from usam_video.pipeline import label_dataset
from usam_video.score_registry import VIDEO_FEATURES

runner = CliRunner()


@pytest.fixture(scope="module")
def labelled_store(synth_root: Path, tmp_path_factory, small_model_config) -> Path:
    store = tmp_path_factory.mktemp("cli") / "s.zarr"
    label_dataset(make_run_config(synth_root, store, ["synth-000", "synth-001"], small_model_config))
    return store


def test_inspect_json_lists_every_frame_with_every_score(labelled_store: Path) -> None:
    result = runner.invoke(app, ["inspect", str(labelled_store), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    videos = {v["video_id"]: v for v in data["videos"]}
    assert set(videos) == {"synth-000", "synth-001"}
    v = videos["synth-001"]
    assert v["complete"] and v["frames"] == 6 and v["objects"] == [1, 2]
    assert v["provenance"]["model_untrained"] is True
    assert v["provenance"]["heads_pairing"] == "aligned"  # random heads read as the project's own
    assert len(v["frame_scores"]) == 6
    for frame in v["frame_scores"]:
        assert [o["object_id"] for o in frame["objects"]] == [1, 2]
        for obj in frame["objects"]:
            assert set(obj["scores"]) == set(v["scores"]) and len(obj["scores"]) == 13 + len(VIDEO_FEATURES)
            assert all(isinstance(x, float) for x in obj["scores"].values())
            assert obj["status"] in {"accepted", "queued_refine", "queued_human"}
    assert sum(v["status_counts"].values()) == 12


def test_inspect_table(labelled_store: Path) -> None:
    result = runner.invoke(app, ["inspect", str(labelled_store)])
    assert result.exit_code == 0 and "synth-001" in result.stdout and "model, heads" in result.stdout
    assert "pairing" in result.stdout and "aligned" in result.stdout


def test_queue_json_matches_inspect(labelled_store: Path) -> None:
    queued = json.loads(runner.invoke(app, ["queue", str(labelled_store), "--json"]).stdout)["queued"]
    inspected = json.loads(runner.invoke(app, ["inspect", str(labelled_store), "--json"]).stdout)["videos"]
    expected = sum(
        v["status_counts"]["queued_refine"] + v["status_counts"]["queued_human"] for v in inspected
    )
    assert len(queued) == expected > 0
    for row in queued:
        assert row["route"] in {"queued_refine", "queued_human"} and row["reason"] in {
            "low_sam_iou",
            "high_task_gap",
        }
        assert "sam_iou" in row["scores"]
    only = json.loads(
        runner.invoke(app, ["queue", str(labelled_store), "--json", "--video", "synth-000"]).stdout
    )
    assert {r["video_id"] for r in only["queued"]} <= {"synth-000"}


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    for command in ("inspect", "queue"):
        result = runner.invoke(app, [command, str(tmp_path / "nope.zarr")])
        assert result.exit_code == 2 and "found nothing" in result.output


def test_run_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text(
        "name: x\nstore: s.zarr\ndataset: {name: d, root: /nonexistent}\nmodel: {name: m, sam2_config: x}\n"
    )
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output and "random_init" in result.output


def test_run_reports_failed_video_with_exit_code(
    prefect_harness, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    (data / "Annotations/480p/synth-001/00000.png").unlink()
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 1
    assert (
        "failed" in result.output
        and "first-frame annotation" in result.output
        and "labelled" in result.output
    )


def test_demo_end_to_end(prefect_harness, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--videos", "2", "--frames", "6"])
    assert result.exit_code == 0, result.output
    assert "J&F against the ground truth" in result.output and "RANDOM" not in result.output
    assert "review plan" in result.output
    assert "review report" in result.output and (out / "report" / "index.html").is_file()
    assert "training dataset (SA-V layout" in result.output
    assert (out / "release-sav" / "manifest.json").is_file()
    assert runner.invoke(app, ["verify-release", str(out / "release-sav")]).exit_code == 0
    for name in ("test-000", "test-001"):
        assert (out / f"overlay-{name}.png").stat().st_size > 1000
        assert (out / f"plan-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store = out / "demo.zarr"
    data = json.loads(runner.invoke(app, ["inspect", str(store), "--json"]).stdout)
    assert [v["video_id"] for v in data["videos"]] == ["test-000", "test-001"]
    for v in data["videos"]:
        assert v["complete"] and len(v["frame_scores"]) == 6
        assert {"iou_micro", "model_gap", "iou_video", "lost_video", "overlap_others"} <= set(v["scores"])
        assert v["provenance"]["heads_untrained"] is False and v["provenance"]["model_untrained"] is False


def test_train_heads_command(prefect_harness, tmp_path: Path, synth_root: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "cli-train",
                "dataset": {"name": "s", "root": str(synth_root), "videos": ["synth-000", "synth-001"]},
                "models": [{"label": "micro", "model": str(CONFIGS / "models" / "small-random.yaml")}],
                "container": str(tmp_path / "c.zarr"),
                "heads_out": str(tmp_path / "heads"),
                "epochs": 3,
                "val_fraction": 0.5,
            }
        )
    )
    result = runner.invoke(app, ["train-heads", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert {h["name"] for h in report["heads"]} == {
        "iou_micro",
        "iou_unsupervised",
        "task_gap",
        "iou_dense_prompt",
        "prompt_gap",
        "iou_video",
        "lost_video",
    }
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["cli-train-heads", "cli-train-report"])
            )
        )
    assert {a.type for a in arts} == {"table", "markdown"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    result = runner.invoke(app, ["train-heads", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output
