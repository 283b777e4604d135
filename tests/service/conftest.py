"""One real Prefect server for the whole ``tests/service`` package, a generated dataset, and the
store of an uninterrupted run that the other tests compare against.

The server is ``usam-video server`` itself: 127.0.0.1 on a free port, a temporary
``PREFECT_HOME`` (its own SQLite database), analytics off; it is stopped (its whole process
group) when the package's tests end. Tests talk to it from subprocesses through ``ServerHandle.env``
and in-process through ``ServerHandle.settings()``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.helpers import (
    FRAMES,
    USAM_VIDEO,
    VIDEOS,
    ServerHandle,
    free_port,
    run_labelling,
    write_run_yaml,
)


@pytest.fixture(scope="package")
def prefect_server(
    tmp_path_factory: pytest.TempPathFactory, prefect_db_template: Path
) -> Iterator[ServerHandle]:
    from flows.deploy import local_server_env, stop_process_group, wait_until_healthy
    from tests.prefect_db import DB_NAME, seed

    home = tmp_path_factory.mktemp("prefect-home")
    seed(prefect_db_template, home / DB_NAME)  # migrated once per session, not per server
    port = free_port()
    log = home / "server.log"
    env = local_server_env(port, home)
    env["TQDM_DISABLE"] = "1"
    env["COLUMNS"] = "160"
    # A worker asks for scheduled runs every 10 s by default: the deployment test would wait
    # for it, with nothing to do, for 5 s on average.
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(USAM_VIDEO), "server", "--port", str(port), "--home", str(home)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/api", timeout_s=180, process=process)
        # Ready as `usam-video server` reports it: the UI address printed after the health check.
        deadline = time.monotonic() + 60
        while "Prefect UI:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield ServerHandle(port, home, log, env)
    finally:
        stop_process_group(process)


@pytest.fixture(scope="package")
def service_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three generated videos of 12 frames (1, 2 and 3 objects), DAVIS layout."""
    from usam_video.datasets.synthetic import make_demo_dataset

    root = tmp_path_factory.mktemp("service-data")
    assert make_demo_dataset(root, num_videos=len(VIDEOS), num_frames=FRAMES, seed=3) == VIDEOS
    return root


@dataclass(frozen=True)
class ReferenceRun:
    store: Path
    config: Path
    name: str
    output: str


@pytest.fixture(scope="package")
def reference_run(
    prefect_server: ServerHandle,
    service_dataset: Path,
    tmp_path_factory: pytest.TempPathFactory,
    small_model_config,
) -> ReferenceRun:
    """An uninterrupted ``usam-video run`` of the dataset against the server: the store every
    other run must equal, and the flow run the browser test looks at."""
    folder = tmp_path_factory.mktemp("reference")
    store = folder / "reference.zarr"
    config = write_run_yaml(
        folder / "run.yaml", service_dataset, str(store), "svc-reference", small_model_config
    )
    done = run_labelling(config, prefect_server, options=())  # with its review pages
    return ReferenceRun(store, config, "svc-reference", done.stdout)
