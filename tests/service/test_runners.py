"""The task-runner choice: Prefect's thread pool or Dask (prefect-dask), with 2 worker processes.

One test lets the runner start its own local cluster; the CLI tests share one module-wide
cluster through ``--dask-address`` (each new cluster's worker processes import Prefect, torch and
SAM 2 again, several CPU seconds apiece).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prefect.task_runners import ThreadPoolTaskRunner
from typer.testing import CliRunner

from flows.runners import TASK_RUNNERS, task_runner_for, with_task_runner
from tests.service.helpers import USAM_VIDEO, VIDEOS, assert_same_labels, write_run_yaml
from usam_video.store import PseudoLabelStore


def test_task_runner_for_builds_each_runner() -> None:
    from prefect_dask import DaskTaskRunner

    assert TASK_RUNNERS == ("thread", "dask")
    thread = task_runner_for("thread", workers=3)
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    dask = task_runner_for("dask")
    assert isinstance(dask, DaskTaskRunner)
    assert dask.cluster_kwargs["n_workers"] == 2 and dask.cluster_kwargs["processes"] is True
    assert dask.cluster_kwargs["host"] == "127.0.0.1"
    remote = task_runner_for("dask", address="tcp://scheduler.invalid:8786")
    assert remote.address == "tcp://scheduler.invalid:8786"  # an existing cluster: nothing started here


@pytest.mark.parametrize(
    ("name", "workers", "address", "message"),
    [
        ("ray", 2, None, "expected one of ['thread', 'dask']"),
        ("dask", 0, None, "expected at least 1"),
        ("thread", 2, "tcp://host:8786", "runs in this process"),
    ],
)
def test_task_runner_for_rejects_bad_choices(
    name: str, workers: int, address: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        task_runner_for(name, workers, address)


@pytest.mark.slow
def test_dask_runs_submitted_tasks_on_two_worker_processes(prefect_harness) -> None:
    from tests.service.dask_probe import probe

    pids = with_task_runner(probe, "dask", workers=2)(6)
    assert os.getpid() not in pids
    assert len(set(pids)) == 2, f"expected the 6 tasks spread over 2 Dask worker processes, got pids {pids}"


@dataclass(frozen=True)
class DaskCluster:
    """A running local Dask cluster: its scheduler's address, the pids of its worker processes
    and the file their stdout and stderr go to (the Prefect log lines of the tasks they run)."""

    address: str
    worker_pids: frozenset[int]
    log: Path


@contextlib.contextmanager
def _output_fds_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 of this process point at ``path`` inside the block, so that the
    processes started in it inherit that file as their stdout and stderr."""
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(path, "ab") as out:
        try:
            for fd in saved:
                os.dup2(out.fileno(), fd)
            yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """Two worker processes, as ``task_runner_for("dask", 2)`` would start: loopback only, no
    dashboard, one thread each; INFO log lines, as the CLI tests' runs print them."""
    from distributed import Client, LocalCluster

    log = tmp_path_factory.mktemp("dask") / "workers.log"
    with _output_fds_to(log):
        cluster = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            env={"PREFECT_LOGGING_LEVEL": "INFO"},
        )
    try:
        with Client(cluster) as client:
            pids = frozenset(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        yield DaskCluster(cluster.scheduler_address, pids, log)
    finally:
        cluster.close()


@pytest.mark.slow
def test_collected_results_are_not_kept_on_the_workers(prefect_harness, dask_cluster: DaskCluster) -> None:
    """A Dask worker holds a task's result while the client holds its future: a worker killed
    late in a long run would have every result it held computed again. Collected results are
    released."""
    from tests.service.dask_probe import results_held_after_collecting

    flow = with_task_runner(results_held_after_collecting, "dask", address=dask_cluster.address)
    pids, held = flow(dask_cluster.address, 6)
    assert len(pids) == 6 and set(pids) <= dask_cluster.worker_pids
    assert held == 0


@pytest.fixture(scope="module")
def dataset_yaml(service_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runners") / "dataset.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "svc-synth", "format": "davis", "root": str(service_dataset), "videos": VIDEOS}
        )
    )
    return path


@pytest.mark.slow
def test_evaluate_run_with_dask_equals_the_in_process_evaluation(
    prefect_server, reference_run, dataset_yaml: Path, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    from usam_video.config import load_dataset_config
    from usam_video.pipeline.evaluate import evaluate_predictions

    out = tmp_path / "evaluation"
    command = [str(USAM_VIDEO), "evaluate-run", str(reference_run.store), "--dataset", str(dataset_yaml)]
    command += ["--task-runner", "dask", "--dask-address", dask_cluster.address]
    command += ["--out", str(out), "--json"]
    env = {**prefect_server.env, "PREFECT_LOGGING_LEVEL": "INFO"}  # to see the cluster connect
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = json.loads(done.stdout)
    assert got.pop("files") == [str(out / "evaluation.json"), str(out / "ranking.png")]
    expected = evaluate_predictions(str(reference_run.store), load_dataset_config(dataset_yaml), "davis")
    assert got == json.loads(json.dumps(expected.as_dict()))
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["evaluate-svc-synth-table", "evaluate-svc-synth-report"]
    with prefect_server.settings(), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert sorted(a.key for a in artifacts) == sorted(keys)
    # Prefect starts a flow's task runner at its first submitted task: evaluate_flow submits
    # its task, so the evaluation ran on the Dask cluster.
    assert f"Connecting to an existing Dask cluster at {dask_cluster.address}" in done.stderr


@pytest.mark.slow
def test_export_run_with_dask_writes_the_same_export_as_export(
    prefect_server, reference_run, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    from usam_video.cli import app
    from usam_video.pipeline.review import export_queue

    out = tmp_path / "export-run"
    args = ["export-run", str(reference_run.store), "--format", "png", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--task-runner", "dask", "--dask-address", dask_cluster.address])
    assert result.exit_code == 0, result.output
    direct = export_queue(reference_run.store, "png", tmp_path / "export")
    assert direct.total_frames > 0  # the reference run queues frames for humans

    def files(folder: Path) -> list[str]:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    assert files(out) == files(tmp_path / "export")
    for video, frames in direct.frames.items():
        assert video in result.output and str(frames) in result.output


@pytest.mark.slow
def test_run_with_dask_labels_on_worker_processes_as_the_thread_run(
    prefect_server,
    reference_run,
    service_dataset: Path,
    small_model_config,
    dask_cluster: DaskCluster,
    tmp_path: Path,
) -> None:
    """``usam-video run --task-runner dask --dask-address ...`` writes the reference
    (thread-runner) run's store array for array. Its video tasks run in the cluster's worker
    processes, which never held the context the CLI opened: each built it from the config's
    path."""
    store = tmp_path / "dask.zarr"
    config = write_run_yaml(
        tmp_path / "run.yaml", service_dataset, str(store), "svc-dask", small_model_config
    )
    command = [
        str(USAM_VIDEO),
        "run",
        str(config),
        "--task-runner",
        "dask",
        "--dask-address",
        dask_cluster.address,
    ]
    env = {**prefect_server.env, "PREFECT_LOGGING_LEVEL": "INFO"}  # the flow process's log lines
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_labels(store, reference_run.store)
    # Generations are per video: the revisions match too, whatever order the workers took.
    got, want = PseudoLabelStore.open(store, "r"), PseudoLabelStore.open(reference_run.store, "r")
    for video in VIDEOS:
        assert (got.frame_table(video).revision == want.frame_table(video).revision).all(), video
    logs = done.stdout + done.stderr
    [flow_pid] = re.findall(r"flow run of run svc-dask in process (\d+)", logs)
    # The tasks' log lines are the worker processes' output, not the CLI's.
    worker_logs = dask_cluster.log.read_text()
    task_pids = {int(pid) for pid in re.findall(r"video tasks of run svc-dask in process (\d+)", worker_logs)}
    assert task_pids and task_pids <= dask_cluster.worker_pids, worker_logs[-3000:]
    assert int(flow_pid) not in task_pids, logs
    assert f"Connecting to an existing Dask cluster at {dask_cluster.address}" in done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--task-runner", "ray"], "expected one of ['thread', 'dask']"),
        (["--task-runner", "dask", "--workers", "0"], "expected at least 1"),
        (["--dask-address", "tcp://host:8786"], "runs in this process"),
    ],
)
def test_run_refuses_a_bad_task_runner_choice(
    service_dataset: Path, small_model_config, tmp_path: Path, options: list[str], message: str
) -> None:
    from usam_video.cli import app

    store = tmp_path / "never.zarr"
    config = write_run_yaml(tmp_path / "run.yaml", service_dataset, str(store), "svc-bad", small_model_config)
    result = CliRunner().invoke(app, ["run", str(config), *options])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert PseudoLabelStore.open(store, "r").videos() == []  # refused before any video ran
