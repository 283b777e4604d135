"""Running usam-video as a service on Prefect: ``server``, ``deploy``, ``evaluate-run``, ``export-run``.

``server`` starts a local Prefect server (127.0.0.1, SQLite under ``PREFECT_HOME``, analytics
off) and prints its UI address. ``deploy`` creates the work pools, the strict ``gpu`` concurrency
limit and the deployments of ``flows/prefect.yaml`` on the server of ``PREFECT_API_URL``.
``evaluate-run`` and ``export-run`` run the evaluation and review-export flows with a chosen task
runner (``--task-runner dask`` for a Dask cluster of worker processes, or an existing cluster).

Like ``run``, these commands import ``flows`` (and so Prefect) lazily, inside the command.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import typer
from rich.table import Table

from usam_video.cli.app import DASK_ADDRESS_HELP, STORE_HELP, TASK_RUNNER_HELP, app, console, fail
from usam_video.errors import UsamVideoError

__all__ = ["server", "deploy", "evaluate_run", "export_run"]

R = TypeVar("R")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def server(
    port: int = typer.Option(4200, "--port", help="TCP port on 127.0.0.1"),
    home: Path | None = typer.Option(
        None, "--home", help="PREFECT_HOME for the server's SQLite database (default: the current one)"
    ),
    timeout: float = typer.Option(120.0, "--timeout", help="seconds to wait for the server to answer"),
) -> None:
    """Start a local Prefect server bound to 127.0.0.1 (SQLite, analytics off) and print the UI
    address. Runs until interrupted (Ctrl-C or SIGTERM)."""
    from flows.deploy import local_server_env, port_is_free, start_local_server, wait_until_healthy

    if not port_is_free(port):
        # Checked first: a health check would otherwise be answered by whatever holds the port.
        fail(
            UsamVideoError(
                f"127.0.0.1:{port}: expected a free port, got one in use (a server already running?). "
                "Pick another with --port."
            )
        )
    env = local_server_env(port, home.resolve() if home is not None else None)
    api_url = env["PREFECT_API_URL"]
    # SIGTERM (a service manager, a test) stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    process = start_local_server(port, env)
    try:
        try:
            wait_until_healthy(api_url, timeout, process)
        except (TimeoutError, RuntimeError) as exc:
            fail(exc)
        console.print(f"Prefect UI: http://127.0.0.1:{port}", highlight=False)
        console.print(f"In other shells: export PREFECT_API_URL={api_url}", highlight=False)
        console.print(
            f"database: {env.get('PREFECT_HOME', '~/.prefect')}/prefect.db; analytics off", highlight=False
        )
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001  (whatever went wrong, do not leave it running)
                process.kill()
                process.wait()
    if process.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(process.returncode or 1)


@app.command()
def deploy(
    prefect_file: Path | None = typer.Option(
        None, "--prefect-file", help="the deployments file (default: flows/prefect.yaml of this checkout)"
    ),
    gpu_slots: int = typer.Option(1, "--gpu-slots", help="slots of the global 'gpu' concurrency limit"),
    names: list[str] = typer.Option(None, "--name", help="deploy only this deployment (repeatable)"),
) -> None:
    """Create the work pools, the strict 'gpu' concurrency limit and the deployments of the
    deployments file on the Prefect server of PREFECT_API_URL (see 'usam-video server')."""
    import httpx

    from flows.deploy import PREFECT_FILE, bootstrap, configured_api_url

    api_url = configured_api_url()
    if api_url is None:
        fail(
            UsamVideoError(
                "PREFECT_API_URL: expected the API of a running Prefect server, got none (deployments "
                "on a throwaway embedded server would vanish). Start one with 'usam-video server' and "
                "export the PREFECT_API_URL it prints."
            )
        )
    try:
        report = bootstrap(prefect_file or PREFECT_FILE, gpu_slots, list(names) if names else None)
    except httpx.HTTPError as exc:
        fail(UsamVideoError(f"{api_url}: expected a running Prefect server, got: {exc}"))
    except (RuntimeError, ValueError, OSError) as exc:
        fail(exc)
    table = Table(title="Prefect set-up")
    table.add_column("what")
    table.add_column("name")
    table.add_column("state")
    for pool, created in report.pools.items():
        table.add_row("work pool (process)", pool, "created" if created else "exists")
    table.add_row("global concurrency limit", f"gpu ({report.gpu_slots} slots)", report.gpu_limit)
    for name in report.deployments:
        table.add_row("deployment", name, "deployed")
    console.print(table)
    console.print("start a worker per pool: prefect worker start --pool <pool>", highlight=False)


def _runner_flow(
    flow: Callable[..., R], task_runner: str, workers: int, dask_address: str | None
) -> Callable[..., R]:
    """``flow`` (a Prefect flow) with the chosen task runner; a bad choice exits with code 2."""
    from flows import bind_embedded_server
    from flows.runners import with_task_runner

    bind_embedded_server()  # before the first flow run: see flows/__init__.py

    try:
        runner_flow: Any = with_task_runner(flow, task_runner, workers, dask_address)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(exc)
    return runner_flow


@app.command("evaluate-run")
def evaluate_run(
    source: Path = typer.Argument(..., help="a usam-video store or a folder of predicted masks"),
    dataset: Path = typer.Option(..., "--dataset", help="dataset YAML of the ground truth"),
    protocol: str = typer.Option("davis", "--protocol", help="davis (DAVIS 2017) or sav (SA-V benchmark)"),
    layout: str | None = typer.Option(None, "--layout", help="davis or sav, for a predictions folder"),
    out: Path | None = typer.Option(None, "--out", help="folder for evaluation.json and ranking.png"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    task_runner: str = typer.Option("thread", "--task-runner", help=TASK_RUNNER_HELP),
    workers: int = typer.Option(2, "--workers", help="threads, or Dask worker processes"),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_ADDRESS_HELP),
) -> None:
    """'usam-video evaluate' as the Prefect flow 'evaluate' (table and report artifacts)."""
    from usam_video.cli.evaluate_cmd import print_evaluation_result
    from usam_video.config import load_dataset_config

    try:
        load_dataset_config(dataset)
    except UsamVideoError as exc:
        fail(exc)
    from flows.evaluate import evaluate_flow

    flow = _runner_flow(evaluate_flow, task_runner, workers, dask_address)
    try:
        result = flow(
            str(source), str(dataset.resolve()), protocol, str(out.resolve()) if out else None, layout
        )
    except UsamVideoError as exc:
        fail(exc)
    written = [out / name for name in ("evaluation.json", "ranking.png")] if out else []
    files = [path for path in written if path.exists()]
    if as_json:
        data = result.as_dict()
        data["files"] = [str(p) for p in files]
        print(json.dumps(data, indent=1))
        return
    print_evaluation_result(result, files)


@app.command("export-run")
def export_run(
    store: str = typer.Argument(..., help=STORE_HELP),
    fmt: str = typer.Option(..., "--format", help="cvat, coco or png"),
    out: Path = typer.Option(
        ..., "--out", help="new or empty folder, or an unedited earlier export (replaced) for the export"
    ),
    video: str | None = typer.Option(None, "--video", help="only this video"),
    all_queued: bool = typer.Option(False, "--all-queued", help="also frames queued for refinement"),
    force: bool = typer.Option(
        False, "--force", help="replace --out even if it holds other files or an edited earlier export"
    ),
    task_runner: str = typer.Option("thread", "--task-runner", help=TASK_RUNNER_HELP),
    workers: int = typer.Option(2, "--workers", help="threads, or Dask worker processes"),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_ADDRESS_HELP),
) -> None:
    """'usam-video export' as the Prefect flow 'review-export' (a table artifact per export)."""
    from flows.review import export_flow

    flow = _runner_flow(export_flow, task_runner, workers, dask_address)
    try:
        result = flow(str(store), fmt, str(out.resolve()), video, all_queued, force)
    except UsamVideoError as exc:
        fail(exc)
    from usam_video.cli.review_cmd import print_export_result

    print_export_result(store, result)
