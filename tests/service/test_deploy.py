"""Deployments: ``usam-video server`` and ``usam-video deploy`` set up a local Prefect server from
``flows/prefect.yaml``, and a deployment run triggered from the CLI completes through a worker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from flows.common import GPU_LIMIT_NAME
from flows.deploy import PREFECT_FILE, deployments_in, stop_process_group, work_pools_in
from tests.conftest import REPO_ROOT
from tests.service.helpers import (
    PREFECT,
    assert_same_labels,
    outcomes,
    summary_rows,
    write_run_yaml,
)

pytestmark = pytest.mark.slow

DEPLOYMENTS = {
    "pseudo-label-dataset/nightly",
    "pseudo-label-dataset/local",
    "refine/refine",
    "evaluate/evaluate",
    "train-heads/train-heads",
    "release/release",
}


def test_deployments_file_declares_the_service() -> None:
    """The file itself: a nightly cron run with parameters and tags, refine, evaluate and heads
    training, a process pool for local use and GPU job variables."""
    data = yaml.safe_load(PREFECT_FILE.read_text())
    specs = {d["name"]: d for d in data["deployments"]}
    nightly = specs["nightly"]
    assert nightly["schedules"][0]["cron"] == "0 2 * * *" and "nightly" in nightly["tags"]
    assert Path(REPO_ROOT, nightly["parameters"]["run_config"]).is_file()
    assert nightly["work_pool"]["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert {d["entrypoint"] for d in specs.values()} == {
        "flows/pseudo_label.py:pseudo_label_dataset",
        "flows/refine.py:refine_flow",
        "flows/evaluate.py:evaluate_flow",
        "flows/train_heads.py:train_heads_flow",
        "flows/release.py:release_flow",
    }
    assert all(Path(REPO_ROOT, d["entrypoint"].split(":")[0]).is_file() for d in specs.values())
    assert deployments_in() == ["nightly", "local", "refine", "evaluate", "train-heads", "release"]
    assert Path(REPO_ROOT, specs["release"]["parameters"]["policy"]).is_file()
    assert work_pools_in() == ["usam-gpu", "usam-local"]


def test_server_command_prints_the_ui_address(prefect_server) -> None:
    log = prefect_server.log.read_text()
    assert f"Prefect UI: {prefect_server.ui_url}" in log
    assert f"export PREFECT_API_URL={prefect_server.api_url}" in log
    assert (prefect_server.home / "prefect.db").is_file()  # SQLite, in the temporary PREFECT_HOME


def test_deploy_then_a_worker_runs_a_deployment_triggered_from_the_cli(
    prefect_server, service_dataset: Path, reference_run, tmp_path: Path, small_model_config
) -> None:
    from prefect.client.orchestration import get_client
    from typer.testing import CliRunner

    from usam_video.cli import app

    env = prefect_server.env
    # `usam-video deploy` in this process, on the server's API (a subprocess would only import
    # Prefect and the flows once more); the worker and the triggered run below are processes.
    with prefect_server.settings():
        done = CliRunner().invoke(app, ["deploy"])
    assert done.exit_code == 0, done.output
    for name in DEPLOYMENTS:
        assert name in done.output, done.output

    with prefect_server.settings(), get_client(sync_client=True) as client:
        pools = {pool: client.read_work_pool(pool) for pool in ("usam-local", "usam-gpu")}
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME)
        nightly = client.read_deployment_by_name("pseudo-label-dataset/nightly")
        local = client.read_deployment_by_name("pseudo-label-dataset/local")
    assert all(pool.type == "process" for pool in pools.values())
    assert limit.limit == 1 and limit.active
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.work_pool_name == "usam-gpu" and nightly.parameters["use_gpu_limit"] is True
    assert nightly.job_variables["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert set(nightly.tags) >= {"usam-video", "pseudo-label", "nightly"}
    assert local.work_pool_name == "usam-local"
    # Flow runs start in the checkout the deployments were made from (resolved at deploy time).
    assert local.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
    ]

    config = write_run_yaml(
        tmp_path / "one.yaml",
        service_dataset,
        str(tmp_path / "deployed.zarr"),
        "svc-deployed",
        small_model_config,
        ["synth-000"],
    )
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [str(PREFECT), "worker", "start", "--pool", "usam-local", "--name", "svc-worker", "--limit", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the worker and the flow-run processes it starts: one group
        )
    try:
        triggered = subprocess.run(
            [
                str(PREFECT),
                "deployment",
                "run",
                "pseudo-label-dataset/local",
                "--param",
                f"run_config={config}",
                "--watch",
                "--watch-timeout",
                "480",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
            stdin=subprocess.DEVNULL,
        )
    finally:
        stop_process_group(worker)
    output = triggered.stdout + triggered.stderr
    assert triggered.returncode == 0 and "Completed" in output, output + (tmp_path / "worker.log").read_text()

    (rows,) = summary_rows("svc-deployed", prefect_server).values()
    assert outcomes(rows) == {"synth-000": "labelled"}
    assert_same_labels(tmp_path / "deployed.zarr", reference_run.store, videos=["synth-000"])


def test_server_command_refuses_a_port_in_use(prefect_server) -> None:
    from typer.testing import CliRunner

    from usam_video.cli import app

    result = CliRunner().invoke(app, ["server", "--port", str(prefect_server.port)])
    assert result.exit_code == 2 and "expected a free port" in result.output
