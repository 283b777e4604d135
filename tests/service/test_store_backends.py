"""Stores by fsspec URL, and Prefect retries, through the real labelling flow (in this process,
under the session's Prefect test harness).

- ``memory://``: the same flow writes the same arrays as into a local folder.
- A video task that fails mid-video is retried by Prefect; the retry rewrites that video only,
  and videos already complete under the same config are skipped, their chunks untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import (
    VIDEOS,
    assert_same_labels,
    copy_store,
    file_times,
    outcomes,
    summary_rows,
    write_run_yaml,
)

pytestmark = pytest.mark.slow


def test_memory_store_through_the_flow_equals_the_local_store(
    prefect_harness, service_dataset: Path, reference_run, tmp_path: Path, small_model_config
) -> None:
    from flows.pseudo_label import pseudo_label_dataset

    url = f"memory://usam-service-{tmp_path.name}/labels.zarr"
    config = write_run_yaml(tmp_path / "run.yaml", service_dataset, url, "svc-memory", small_model_config)
    results = pseudo_label_dataset(str(config))
    assert [(r.video_id, r.outcome) for r in results] == [(v, "labelled") for v in VIDEOS]
    assert not (Path.cwd() / "memory:").exists()  # nothing written to a folder named after the URL
    assert_same_labels(url, reference_run.store)


def test_a_retried_video_task_rewrites_that_video_only(
    prefect_harness, service_dataset: Path, reference_run, tmp_path: Path, small_model_config, monkeypatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import flows.pseudo_label as pseudo_label
    from usam_video.store import VideoWriter

    # synth-000 and synth-002 complete from the reference run; synth-001 still to do.
    store = copy_store(reference_run.store, tmp_path / "retry.zarr", without=["synth-001"])
    kept = {video: file_times(store / "videos" / video) for video in ("synth-000", "synth-002")}
    config = write_run_yaml(
        tmp_path / "run.yaml", service_dataset, str(store), "svc-retry", small_model_config
    )

    failed_at: list[int] = []
    write_frame = VideoWriter.write_frame

    def flaky_write_frame(self: VideoWriter, frame_index: int, *args: Any, **kwargs: Any) -> None:
        """The first attempt at synth-001 dies half-way with a transient error."""
        if self._group.name.endswith("/synth-001") and frame_index == 5 and not failed_at:
            failed_at.append(frame_index)
            raise OSError("simulated I/O hiccup at frame 5")
        write_frame(self, frame_index, *args, **kwargs)

    monkeypatch.setattr(VideoWriter, "write_frame", flaky_write_frame)
    # The flow's own task, retried at once instead of after its 5 s delay.
    monkeypatch.setattr(
        pseudo_label, "label_video_task", pseudo_label.label_video_task.with_options(retry_delay_seconds=0)
    )
    results = pseudo_label.pseudo_label_dataset(str(config))
    assert failed_at == [5]
    assert {r.video_id: r.outcome for r in results} == {
        "synth-000": "skipped",
        "synth-001": "labelled",
        "synth-002": "skipped",
    }
    assert {video: file_times(store / "videos" / video) for video in kept} == kept
    assert_same_labels(store, reference_run.store)

    ((flow_run_id, rows),) = summary_rows("svc-retry").items()
    assert outcomes(rows)["synth-001"] == "labelled"
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    runs = {t.name: t for t in task_runs}
    assert runs["label-synth-001"].run_count == 2  # Prefect ran it twice: the failure, the retry
    assert runs["label-synth-000"].run_count == 1
