"""The pseudo-labelling flow under Prefect's test harness (one ephemeral server per session)."""

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_run_config
from usam_video.store import PseudoLabelStore


def write_run_yaml(tmp_path: Path, run) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
    return path


@pytest.fixture()
def dataset(synth_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_flow_labels_two_videos_with_artifacts(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    from flows.pseudo_label import pseudo_label_dataset

    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    run = run.model_copy(update={"name": "flow-test"})
    results = pseudo_label_dataset(str(write_run_yaml(tmp_path, run)))
    assert [(r.video_id, r.outcome) for r in results] == [
        ("synth-000", "labelled"),
        ("synth-001", "labelled"),
    ]
    store = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert store.videos() == ["synth-000", "synth-001"] and all(store.is_complete(v) for v in store.videos())

    table = _artifacts("flow-test-summary")
    assert table and table[0].type == "table"
    assert "synth-001" in str(table[0].data) and "mean_predicted_iou" in str(table[0].data)
    row = (
        next(r for r in table[0].data if r["video_id"] == "synth-001")
        if isinstance(table[0].data, list)
        else None
    )
    if row is not None:
        assert row["objects"] == 2 and row["min_predicted_iou"] <= row["mean_predicted_iou"]
    assert "min_predicted_iou" in str(table[0].data) and "queued_by_reason" in str(table[0].data)
    plots = _artifacts("flow-test-scores")
    assert plots and plots[0].type == "markdown" and "data:image/png;base64," in plots[0].data
    progress = _artifacts("flow-test-progress")
    assert progress and progress[0].type == "progress" and float(progress[0].data) == pytest.approx(100.0)


def test_failed_video_is_reported_and_others_complete(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    from flows.pseudo_label import pseudo_label_dataset

    (dataset / "JPEGImages/480p/synth-000/00003.jpg").unlink()
    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    results = {r.video_id: r for r in pseudo_label_dataset(str(write_run_yaml(tmp_path, run)))}
    assert results["synth-000"].outcome == "failed" and "00003.jpg" in results["synth-000"].error
    assert results["synth-001"].outcome == "labelled"
    store = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert store.videos() == ["synth-001"]


def test_bad_input_is_not_retried(prefect_harness) -> None:
    from prefect.states import Failed

    from flows.pseudo_label import _retry_unless_bad_input
    from usam_video.errors import FrameReadError

    assert _retry_unless_bad_input(None, None, Failed(data=FrameReadError("x.jpg: bad"))) is False
    assert _retry_unless_bad_input(None, None, Failed(data=RuntimeError("CUDA out of memory"))) is True


def test_gpu_limit_path_creates_and_holds_the_limit(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    """The CUDA path (forced here on CPU): a strict 'gpu' limit is created, then acquired per video."""
    from prefect.client.orchestration import get_client

    from flows.pseudo_label import GPU_LIMIT_NAME, pseudo_label_dataset

    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000"], small_model_config)
    results = pseudo_label_dataset(str(write_run_yaml(tmp_path, run)), use_gpu_limit=True)
    assert results[0].outcome == "labelled"
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME)
    assert limit.limit == run.gpu_concurrency and limit.active_slots == 0
