"""Running usam-video as a service: a local Prefect server, and what ``prefect deploy`` needs.

``usam-video server`` and ``usam-video deploy`` are thin shells over these helpers; the tests use
the same ones to start a throwaway server. Nothing here schedules or distributes work: Prefect's
server, work pools and workers do (``flows/prefect.yaml`` declares the deployments).

A local server binds 127.0.0.1 only, keeps its SQLite database under ``PREFECT_HOME``, and has
analytics off. ``bootstrap`` creates the process work pools the deployments file names, the
global ``gpu`` concurrency limit (the flows acquire it with ``strict=True``: without it a GPU run
fails instead of running unlimited), then runs ``prefect deploy`` on the file.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows.common import GPU_LIMIT_NAME, ensure_concurrency_limit

__all__ = [
    "REPO_ROOT",
    "PREFECT_FILE",
    "BootstrapReport",
    "configured_api_url",
    "port_is_free",
    "local_server_env",
    "start_local_server",
    "wait_until_healthy",
    "stop_process_group",
    "deployments_in",
    "work_pools_in",
    "ensure_work_pool",
    "prefect_deploy",
    "bootstrap",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = Path(__file__).with_name("prefect.yaml")


def configured_api_url() -> str | None:
    """The Prefect API this process would use (``PREFECT_API_URL`` or the active profile's), or
    None when it would start an embedded throwaway server instead."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port`` (so a new server can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def local_server_env(
    port: int, home: Path | str | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a local server on ``127.0.0.1:port`` and of the clients that use it.

    Args:
        port: the TCP port on 127.0.0.1.
        home: ``PREFECT_HOME`` (its SQLite database ``prefect.db`` lives there); the current one
            when None.
        base: the environment to extend (``os.environ`` when None).
    """
    env = dict(os.environ if base is None else base)
    url = f"http://127.0.0.1:{port}/api"
    env.update(
        {
            "PREFECT_API_URL": url,
            "PREFECT_UI_API_URL": url,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    return env


def start_local_server(
    port: int, env: dict[str, str], log: Path | None = None, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` (not waiting for it: see
    :func:`wait_until_healthy`). Output goes to ``log`` (appended) or is inherited.

    Args:
        env: from :func:`local_server_env`.
        new_session: start it in its own process group (stop it with
            :func:`stop_process_group`); False keeps it in the caller's group, so a Ctrl-C in a
            terminal reaches it too.
    """
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    out: Any = open(log, "ab") if log is not None else None  # noqa: SIM115  (owned by the child)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=new_session,
        )
    finally:
        if out is not None:
            out.close()


def wait_until_healthy(
    api_url: str, timeout_s: float = 120.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Poll ``<api_url>/health`` until it answers ``true``.

    Raises:
        TimeoutError: not healthy within ``timeout_s``.
        RuntimeError: ``process`` (the server) exited first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the Prefect server exited with code {process.returncode} before {api_url} answered."
            )
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if response.read().strip() == b"true":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{api_url}/health: expected 'true' within {timeout_s:.0f} s, got no answer.")


def stop_process_group(process: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """Stop the process group that ``process`` leads (it was started with a new session):
    SIGTERM, then SIGKILL for whatever is still there after ``timeout_s``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, so that only live members keep the group
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _deployment_specs(prefect_file: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(Path(prefect_file).read_text()) or {}
    specs = data.get("deployments") or []
    if not isinstance(specs, list):
        raise ValueError(f"{prefect_file}: expected a list under 'deployments', got {type(specs).__name__}.")
    return specs


def deployments_in(prefect_file: Path = PREFECT_FILE) -> list[str]:
    """The deployment names a deployments file declares, in file order."""
    return [str(spec["name"]) for spec in _deployment_specs(prefect_file)]


def work_pools_in(prefect_file: Path = PREFECT_FILE) -> list[str]:
    """The work pools a deployments file's deployments use, sorted."""
    return sorted(
        {str(spec["work_pool"]["name"]) for spec in _deployment_specs(prefect_file) if spec.get("work_pool")}
    )


def ensure_work_pool(name: str) -> bool:
    """Create process work pool ``name`` (the process worker's default job template) unless the
    API already has it. Returns True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            return True


def prefect_deploy(
    prefect_file: Path = PREFECT_FILE,
    names: list[str] | None = None,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``prefect --no-prompt deploy --prefect-file FILE`` (``--all``, or ``--name`` each of
    ``names``) in ``cwd``, the root the file's entry points and paths are relative to."""
    command = [
        sys.executable,
        "-m",
        "prefect",
        "--no-prompt",
        "deploy",
        "--prefect-file",
        str(Path(prefect_file).resolve()),
    ]
    if names:
        for name in names:
            command += ["--name", name]
    else:
        command.append("--all")
    env = dict(os.environ if env is None else env)
    # The API this process talks to, also when it was set in a settings context, not the env.
    api_url = configured_api_url()
    if api_url and "PREFECT_API_URL" not in env:
        env["PREFECT_API_URL"] = api_url
    env.setdefault("COLUMNS", "200")  # one line per message in its (non-tty) output
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)


@dataclass(frozen=True)
class BootstrapReport:
    """What :func:`bootstrap` did."""

    pools: dict[str, bool]  # pool name -> created now (False: it existed)
    gpu_limit: str  # created, updated or unchanged
    gpu_slots: int
    deployments: list[str]  # "flow/deployment" as prefect deploy reported them
    output: str  # prefect deploy's stdout and stderr


def bootstrap(
    prefect_file: Path = PREFECT_FILE, gpu_slots: int = 1, names: list[str] | None = None
) -> BootstrapReport:
    """Create the file's work pools (process type) and the ``gpu`` limit, then deploy.

    Uses the API of the current settings (``PREFECT_API_URL``).

    Raises:
        RuntimeError: ``prefect deploy`` failed (its output is in the message).
    """
    pools = {name: ensure_work_pool(name) for name in work_pools_in(prefect_file)}
    limit = ensure_concurrency_limit(GPU_LIMIT_NAME, gpu_slots)
    done = prefect_deploy(prefect_file, names)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(
            f"prefect deploy --prefect-file {prefect_file} failed (exit {done.returncode}):\n{output}"
        )
    deployed = re.findall(r"Deployment '([^']+)'\s+successfully\s+(?:created|updated)", output)
    return BootstrapReport(pools, limit, gpu_slots, deployed, output)
