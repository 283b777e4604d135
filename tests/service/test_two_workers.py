"""More than one worker: two concurrent flow runs label one dataset into one store.

Each video is claimed by one writer; a run that meets a claimed video skips it. Every video ends
complete, labelled exactly once across both runs, and the store equals a single run's, array for
array. A video claimed by a live writer elsewhere is never written by a second run.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.service.helpers import (
    NO_PAGES,
    USAM_VIDEO,
    VIDEOS,
    assert_same_labels,
    outcomes,
    run_labelling,
    summary_rows,
    write_run_yaml,
)
from usam_video.store import PseudoLabelStore

pytestmark = pytest.mark.slow


def test_two_concurrent_runs_label_every_video_exactly_once(
    prefect_server, service_dataset: Path, reference_run, tmp_path: Path, small_model_config
) -> None:
    store = tmp_path / "shared.zarr"
    # The second run walks the videos in reverse order: whichever starts first, the two meet in
    # the middle and split the dataset instead of racing for the same first video.
    configs = [
        write_run_yaml(
            tmp_path / f"run-{i}.yaml", service_dataset, str(store), "svc-two", small_model_config, order
        )
        for i, order in enumerate((VIDEOS, VIDEOS[::-1]))
    ]
    # The store exists before the workers start, as it does for a deployment's runs after the
    # first: two processes creating the same root group at the same instant is a different race.
    PseudoLabelStore.open(store)
    # One video at a time in each run, so that both runs are busy at once on different videos
    # (with a pool of threads the first run to start would claim all three at once).
    env = {**prefect_server.env, "PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS": "1"}
    runs = [
        subprocess.Popen(
            [str(USAM_VIDEO), "run", str(config), *NO_PAGES],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for config in configs
    ]
    logs = [run.communicate(timeout=600)[0] for run in runs]
    for run, log in zip(runs, logs, strict=True):
        assert run.returncode == 0, log

    per_run = summary_rows("svc-two", prefect_server)
    assert len(per_run) == 2, per_run
    labelled: Counter[str] = Counter()
    for rows in per_run.values():
        seen = outcomes(rows)
        assert sorted(seen) == VIDEOS and set(seen.values()) <= {"labelled", "skipped"}, rows
        # A skipped video is complete already, or claimed by the other run: never half-written.
        labelled.update(video for video, outcome in seen.items() if outcome == "labelled")
    assert labelled == Counter(VIDEOS), f"each video labelled once, got {dict(labelled)}"

    assert_same_labels(store, reference_run.store)
    assert not list((store / "claims").glob("*.json"))


def test_a_video_claimed_by_a_live_writer_is_skipped_not_written(
    prefect_server, service_dataset: Path, tmp_path: Path, small_model_config
) -> None:
    store_path = tmp_path / "claimed.zarr"
    config = write_run_yaml(
        tmp_path / "run.yaml", service_dataset, str(store_path), "svc-claimed", small_model_config
    )
    store = PseudoLabelStore.open(store_path)
    # This test's process is the live writer of synth-001 (its claim file names this pid): it
    # renews its lease as a writer does, so the run, after waiting for the claims it met, finds
    # it alive and leaves the video to it.
    assert store.claim("synth-001", owner="worker-elsewhere", lease_s=6) is None
    try:
        with store.keep_claim("synth-001", owner="worker-elsewhere", lease_s=6):
            run_labelling(config, prefect_server)  # asserts exit 0
    finally:
        store.release("synth-001", owner="worker-elsewhere")
    (rows,) = summary_rows("svc-claimed", prefect_server).values()
    assert outcomes(rows) == {"synth-000": "labelled", "synth-001": "skipped", "synth-002": "labelled"}
    assert "worker-elsewhere" in next(r["error"] for r in rows if r["video_id"] == "synth-001")
    reopened = PseudoLabelStore.open(store_path, mode="r")
    assert reopened.videos() == ["synth-000", "synth-002"]  # not one chunk of synth-001
