"""The embedded Prefect server dies with the process that started it, even after ``kill -9``.

Without ``PREFECT_API_URL`` Prefect starts a throwaway server (``SubprocessASGIServer``: a
``python -m uvicorn`` child) on first use and stops it from an ``atexit`` hook. A process killed
by SIGKILL runs no hook, so the uvicorn child used to stay behind, holding its port and SQLite
database. :class:`ParentBoundServer` starts, beside each uvicorn child, a tiny guard process that
polls its own parent id: when the starter dies (however), the guard is re-parented, notices,
and stops the server (SIGTERM, then SIGKILL after 5 s).

A guard rather than ``prctl(PR_SET_PDEATHSIG)`` in the child: the parent-death signal fires
when the *thread* that forked the child exits, and Prefect may start the server from one of its
worker threads (the events worker, a task runner thread); the guard also works off Linux.

Prefect's own test harness swaps the server it registers under ``SubprocessASGIServer._instances
[None]`` the same way (``prefect.testing.utilities.prefect_test_harness``): that registry is the
seam through which internal code calling ``SubprocessASGIServer()`` finds the server to use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from prefect.server.api.server import SubprocessASGIServer

__all__ = [
    "GUARD_MARK",
    "ParentBoundServer",
    "bind_embedded_server_to_this_process",
    "remote_cluster_warning",
    "share_embedded_server",
]

#: In the guard's command line, so that tests (and people) can find it.
GUARD_MARK = "usam-video-embedded-server-guard"

# Run with ``python -c``: no import of this package (whose path the child may not have), and it
# starts in milliseconds. argv: parent pid, server pid.
_GUARD = f"""# {GUARD_MARK}
import os, signal, sys, time
parent, server = int(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C goes to the starter, which stops it


def running(pid):
    try:
        with open(f"/proc/{{pid}}/stat") as stat:  # Linux: a zombie is not running
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


while os.getppid() == parent:
    if not running(server):
        sys.exit(0)  # stopped normally by its starter
    time.sleep(0.2)
# Re-parented: the starter is gone without stopping its server.
try:
    os.kill(server, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while running(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(server):
        os.kill(server, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


class ParentBoundServer(SubprocessASGIServer):
    """Prefect's embedded server, plus a guard that stops it when its starter dies."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        process = super()._run_uvicorn_command()
        # The guard is this process's child: its parent id changes exactly when we die.
        self.guard = subprocess.Popen(
            [sys.executable, "-c", _GUARD, str(os.getpid()), str(process.pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # never hold a caller's output pipe open
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        return process


def bind_embedded_server_to_this_process() -> None:
    """Make the embedded server Prefect would start in this process a :class:`ParentBoundServer`.

    Does nothing when an API URL is configured (no embedded server), when one is already
    registered, or when a plain one is already running (too late to bind it).
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return
    current = SubprocessASGIServer._instances.get(None)
    if isinstance(current, ParentBoundServer) or (current is not None and current.running):
        return
    SubprocessASGIServer._instances.pop(None, None)
    ParentBoundServer()  # registers itself under None (SubprocessASGIServer.__new__)


def share_embedded_server() -> str | None:
    """Start this process's embedded server now and name it in ``PREFECT_API_URL`` of this
    process's environment, which the worker processes of a local Dask cluster started later
    inherit; its URL, or None when an API URL is configured (nothing to share).

    Without it each worker, which cannot see this process's server, starts a server of its own
    on the same database (three servers for two workers), and a worker killed with ``kill -9``
    leaves its server running. Call :func:`bind_embedded_server_to_this_process` first, so that
    the server started here is the parent-bound one.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    server = SubprocessASGIServer()  # the registered instance: the one this process's flows use
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


def remote_cluster_warning(dask_address: str) -> str | None:
    """A warning when tasks go to the Dask cluster at ``dask_address`` while no Prefect API is
    configured here; None when one is.

    This process's embedded server cannot be reached from the cluster's hosts (it listens on
    localhost), so each worker process there would start a throwaway server of its own: the
    tasks' states, logs and retries would be spread over servers the dashboard never shows, and
    a worker killed with ``kill -9`` leaves its server running.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    return (
        f"--dask-address {dask_address} without PREFECT_API_URL: each worker of that cluster will "
        "start a Prefect server of its own, which the dashboard never shows. Run one Prefect server "
        "that every host reaches and export its PREFECT_API_URL here and on the workers' hosts "
        "(README, 'Labelling on a Dask cluster')."
    )
