"""The evaluation flow under Prefect's test harness: one task, a table and a markdown artifact."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.evaluation.helpers import copy_davis_predictions, write_dataset_yaml, write_fake_store
from usam_video.config import DatasetConfig

VIDEOS = ["synth-000", "synth-001"]


def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_flow_on_a_store_publishes_table_and_plot(prefect_harness, synth_root: Path, tmp_path: Path) -> None:
    from flows.evaluate import artifact_rows, evaluate_flow

    store = tmp_path / "s.zarr"
    write_fake_store(DatasetConfig(name="synth", root=synth_root, videos=VIDEOS), store, VIDEOS)
    config = write_dataset_yaml(tmp_path / "synth.yaml", "Synth Flow", synth_root, VIDEOS)
    result = evaluate_flow(str(store), str(config), out_dir=str(tmp_path / "out"))
    assert result.ranking is not None and result.ranking.oracle.relative_auc == 1.0
    assert (tmp_path / "out" / "evaluation.json").is_file() and (tmp_path / "out" / "ranking.png").is_file()

    table = _artifacts("evaluate-synth-flow-table")
    assert table and table[0].type == "table"
    text = str(table[0].data)
    for expected in ("synth-001", "relative_auc", "oracle", "task_gap", "random_sample"):
        assert expected in text
    rows = artifact_rows(result)
    assert len({tuple(row) for row in rows}) == 1  # every row has the same columns

    report = _artifacts("evaluate-synth-flow-report")
    assert report and report[0].type == "markdown"
    markdown = str(report[0].data)
    assert "| sam_iou | confidence |" in markdown
    png = markdown.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(png) == (tmp_path / "out" / "ranking.png").read_bytes()


def test_flow_on_a_predictions_folder(prefect_harness, synth_root: Path, tmp_path: Path) -> None:
    from flows.evaluate import evaluate_flow

    folder = copy_davis_predictions(synth_root / "Annotations" / "480p", tmp_path / "pred", VIDEOS)
    config = write_dataset_yaml(tmp_path / "synth.yaml", "synth-folder", synth_root, VIDEOS)
    result = evaluate_flow(str(folder), str(config), protocol="sav")
    assert result.global_scores()["J&F"] == 100.0
    report = _artifacts("evaluate-synth-folder-report")
    assert report and "No ranking: predictions folders carry no scores" in str(report[0].data)
    assert "data:image/png" not in str(report[0].data)
