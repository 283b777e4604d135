"""``usam-video run`` without PREFECT_API_URL starts Prefect's embedded server; killing the run with
SIGKILL (no atexit hook runs) must not leave that server behind (issue #18, case 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS
from tests.prefect_db import DB_NAME, seed

pytestmark = pytest.mark.slow

USAM_VIDEO = Path(sys.executable).with_name("usam-video")
SERVER_MARK = "prefect.server.api.server:create_app"


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process (Linux /proc)."""
    out: dict[int, tuple[int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (int(fields[1]), fields[0], cmdline)
    return out


def _running(pid: int) -> bool:
    info = _processes().get(pid)
    return info is not None and info[1] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigkill_of_run_leaves_no_embedded_server(tmp_path: Path, prefect_db_template: Path) -> None:
    from flows.embedded import GUARD_MARK
    from usam_video.config import load_run_config

    run = load_run_config(CONFIGS / "runs" / "davis-sample-small.yaml").model_dump(mode="json")
    run["store"] = str(tmp_path / "run.zarr")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    seed(prefect_db_template, tmp_path / "prefect-home" / DB_NAME)  # a migrated database
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        cli = subprocess.Popen(
            [str(USAM_VIDEO), "run", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # only for the clean-up below; the kill targets the CLI alone
        )
    server = guard = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (server is None or guard is None):
            table = _processes()
            children = {pid: cmd for pid, (ppid, _, cmd) in table.items() if ppid == cli.pid}
            server = next((pid for pid, cmd in children.items() if SERVER_MARK in cmd), None)
            guard = next((pid for pid, cmd in children.items() if GUARD_MARK in cmd), None)
            assert cli.poll() is None, f"the run ended before its server started: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        assert server is not None and guard is not None, f"no embedded server: {log.read_text()[-2000:]}"

        os.kill(cli.pid, signal.SIGKILL)  # the CLI alone: no atexit hook, no signal handler runs
        cli.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (_running(server) or _running(guard)):
            time.sleep(0.2)
        assert not _running(server), "the embedded Prefect server outlived the killed run"
        assert not _running(guard), "the guard outlived the server it watches"
    finally:
        if cli.poll() is None:
            cli.kill()
        try:
            os.killpg(cli.pid, signal.SIGKILL)  # whatever is left of the session
        except ProcessLookupError:
            pass


_SHARE = """
import json, os, urllib.request
from flows import bind_embedded_server
from flows.embedded import share_embedded_server
bind_embedded_server()
url = share_embedded_server()
with urllib.request.urlopen(url + "/health", timeout=10) as answer:
    healthy = answer.read().decode()
print(json.dumps({"url": url, "env": os.environ["PREFECT_API_URL"], "health": healthy}))
"""


def test_a_local_dask_run_shares_its_embedded_server_with_its_workers(
    tmp_path: Path, prefect_db_template: Path
) -> None:
    """Worker processes of a local cluster inherit the flow process's environment: with the
    embedded server named there, they report to it instead of each starting a server of its own
    (three servers for two workers, one left running by a worker killed with kill -9)."""
    import json

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    seed(prefect_db_template, tmp_path / "home" / DB_NAME)  # a migrated database
    done = subprocess.run(
        [sys.executable, "-c", _SHARE], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shared = json.loads(done.stdout.strip().splitlines()[-1])
    assert shared["url"].startswith("http://127.0.0.1:") and shared["url"] == shared["env"]
    assert shared["health"] == "true"


def test_nothing_is_shared_when_a_server_is_configured(prefect_harness) -> None:
    from flows.embedded import share_embedded_server

    before = os.environ.get("PREFECT_API_URL")
    assert share_embedded_server() is None  # the harness's server is the API: workers find it too
    assert os.environ.get("PREFECT_API_URL") == before


def test_a_remote_cluster_without_an_api_url_is_warned_of(prefect_harness) -> None:
    """Workers on other hosts cannot reach this process's embedded server: `run --dask-address`
    without a configured API warns; with one (the harness's server) it says nothing."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.embedded import remote_cluster_warning

    assert remote_cluster_warning("tcp://scheduler:8786") is None
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        warning = remote_cluster_warning("tcp://scheduler:8786")
    assert warning is not None and "tcp://scheduler:8786" in warning and "PREFECT_API_URL" in warning
