"""The typer app every ``usam-video`` command registers on, and what the command modules share.

A module of its own so that the command modules (``main``, ``refine_cmd``, ...) import this one
and not each other: ``demo`` in :mod:`usam_video.cli.main` runs ``refine``, and ``refine_cmd``
needs only the app, the consoles and :func:`fail`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from usam_video.errors import UsamVideoError

__all__ = [
    "DASK_ADDRESS_HELP",
    "STORE_HELP",
    "TASK_RUNNER_HELP",
    "app",
    "console",
    "err_console",
    "fail",
    "one_line_task_failures",
    "repo_configs_dir",
]

# The task-runner options every flow command takes (run, evaluate-run, export-run).
TASK_RUNNER_HELP = (
    "task runner of the flow's submitted tasks: thread (this process) or dask (a local cluster "
    "of --workers processes, or the cluster at --dask-address)"
)
# A store argument is a string, not a Path: a Path would fold "s3://bucket/x" into "s3:/bucket/x".
STORE_HELP = "path or URL (s3://..., endpoint and credentials from AWS_* variables) of a usam-video store"
DASK_ADDRESS_HELP = "scheduler of an existing Dask cluster (tcp://host:8786) instead of a local one"

#: The loggers Prefect's engines report a failed task or flow run on (with its traceback).
_PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Video pseudo-labelling with SAM 2 and USAM."
)
# Wide enough that tables are not cut when output goes to a file or CI log. No emoji codes:
# text from outside (a decoder's error, a file name) may hold ":100:" and must print as is.
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, emoji=False)


def repo_configs_dir() -> Path:
    """The project's ``configs/`` folder (beside the package in a checkout)."""
    path = Path(__file__).resolve().parents[2] / "configs"
    if not path.is_dir():
        raise UsamVideoError(
            f"{path}: expected the project's configs/ folder beside the package, found nothing. "
            "Run from a checkout installed with 'pip install -e .'."
        )
    return path


def fail(exc: Exception) -> NoReturn:
    """Print ``exc`` as one red error line and exit with status 2 (bad input or a damaged store)."""
    # soft_wrap: one line however long (a path, a reason), so it greps and copies whole.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(2)


class _OwnErrorsWithoutTraceback(logging.Filter):
    """Drop the traceback from a log record whose exception is one of usam-video's own errors:
    their message already names the file and what is wrong (a full disk, a damaged video), and
    Prefect would print thirty lines of its engine below it. Other exceptions keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UsamVideoError):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def one_line_task_failures() -> Iterator[None]:
    """While a flow runs from the CLI, log its failed tasks' own errors as one line each."""
    only_ours = _OwnErrorsWithoutTraceback()
    loggers = [logging.getLogger(name) for name in _PREFECT_RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(only_ours)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(only_ours)
