"""Resume after a crash: SIGKILL a ``usam-video run`` in the middle of a video, run it again.

The finished video is not recomputed, the interrupted one is redone from scratch, the last one
is labelled, and the final store equals an uninterrupted run's, array for array. The killed run
is a process of its own; the rerun is the same command in this process (under the session's
Prefect harness), which spares an interpreter start and its imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.service.helpers import (
    FRAMES,
    NO_PAGES,
    USAM_VIDEO,
    assert_same_labels,
    file_times,
    outcomes,
    summary_rows,
    write_run_yaml,
)
from usam_video.store import PseudoLabelStore

pytestmark = pytest.mark.slow

# One video at a time (Prefect's thread pool of one): video 1 is complete when video 2 begins,
# so "the middle of video 2" is a well-defined moment to kill at.
SEQUENTIAL = {"PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS": "1"}


def _group_attrs(video_dir: Path) -> dict | None:
    try:
        return json.loads((video_dir / "zarr.json").read_text())["attributes"]
    except (OSError, ValueError, KeyError):  # absent, or not written yet
        return None


def _status_chunks(video_dir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(video_dir / "status" / "c"))


def _kill_mid_video(command: list[str], env: dict[str, str], video_dir: Path, log: Path) -> bool:
    """Run ``command`` and SIGKILL its whole process group as soon as ``video_dir`` holds an
    incomplete group with some frame-objects written. Returns True if the kill landed in the
    middle of that video (False: the run got past it between two polls)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            attrs = _group_attrs(video_dir)
            if attrs is not None and attrs.get("complete") is False and _status_chunks(video_dir) > 0:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                attrs = _group_attrs(video_dir)
                return attrs is not None and attrs.get("complete") is False
            if process.poll() is not None:
                return False
            time.sleep(0.01)
        pytest.fail(f"no partial write of {video_dir.name} within 400 s; log: {log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    return False


def test_sigkill_mid_video_then_rerun_equals_uninterrupted_run(
    prefect_server,
    prefect_harness,
    service_dataset: Path,
    reference_run,
    tmp_path: Path,
    small_model_config,
) -> None:
    from typer.testing import CliRunner

    from usam_video.cli import app

    env = {**prefect_server.env, **SEQUENTIAL}
    for attempt in range(3):  # a kill that lands after video 2 finished proves nothing: try again
        store = tmp_path / f"attempt-{attempt}" / "resume.zarr"
        store.parent.mkdir()
        name = f"svc-resume-{attempt}"
        # A file:// URL: the CLI, the flow and the store take URLs (the polling reads the folder).
        config = write_run_yaml(
            store.parent / "run.yaml", service_dataset, f"file://{store}", name, small_model_config
        )
        command = [str(USAM_VIDEO), "run", str(config), *NO_PAGES]
        if _kill_mid_video(command, env, store / "videos" / "synth-001", store.parent / "killed.log"):
            break
    else:
        pytest.fail(
            "three runs got past video synth-001 before the kill; the machine is too fast for 12 frames"
        )

    # What the crash left: video 1 complete, video 2 half-written with its writer's claim, no video 3.
    assert _group_attrs(store / "videos" / "synth-000")["complete"] is True
    assert 0 < _status_chunks(store / "videos" / "synth-001") <= FRAMES * 2  # 2 objects
    assert not (store / "videos" / "synth-002").exists()
    assert (store / "claims" / "synth-001.json").exists()  # the dead worker's claim, taken over below
    first_video = file_times(store / "videos" / "synth-000")
    killed_generation = _group_attrs(store / "videos" / "synth-001")["generation"]

    # One video at a time as well: a thread pool of one worker, chosen on the command line (the
    # environment variable is read when the flow module is imported, long before this test).
    done = CliRunner().invoke(app, ["run", str(config), "--workers", "1", *NO_PAGES])
    assert done.exit_code == 0, done.output

    # The rerun's table artifact, on the harness's server (the killed run never reached its own).
    (rows,) = summary_rows(name).values()
    assert outcomes(rows) == {"synth-000": "skipped", "synth-001": "labelled", "synth-002": "labelled"}
    assert file_times(store / "videos" / "synth-000") == first_video  # not one chunk rewritten
    assert_same_labels(store, reference_run.store)
    assert not list((store / "claims").glob("*.json"))
    # The rerun reused the killed write's generation: one generation per video, as uninterrupted.
    resumed = PseudoLabelStore.open(store, "r")
    assert {int(v) for v in np.unique(resumed.frame_table("synth-001").revision)} == {killed_generation}
    assert resumed.generation == 3  # one write per video, as uninterrupted: the release number
