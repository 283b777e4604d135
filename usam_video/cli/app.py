"""The typer app every ``usam-video`` command registers on, and what the command modules share.

A module of its own so that the command modules (``main``, ``refine_cmd``, ...) import this one
and not each other: ``demo`` in :mod:`usam_video.cli.main` runs ``refine``, and ``refine_cmd``
needs only the app, the consoles and :func:`fail`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from usam_video.errors import UsamVideoError

__all__ = ["app", "console", "err_console", "fail", "repo_configs_dir"]

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Video pseudo-labelling with SAM 2 and USAM."
)
# Wide enough that tables are not cut when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


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
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)
