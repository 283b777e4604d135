"""``usam-video doctor``: what a user needs to know before a run, in a few lines per check.

The checks live in :mod:`usam_video.doctor.checks`; this module only prints them (a table-like
text listing, or JSON with ``--json``) and sets the exit code: 1 when a fatal check failed,
that is when a run would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from usam_video.cli.app import app, console
from usam_video.doctor.checks import (
    DEFAULT_MIN_FREE_BYTES,
    DEFAULT_PREFECT_TIMEOUT_S,
    Check,
    checks_as_dict,
    exit_code,
    run_checks,
)

__all__ = ["doctor", "format_check"]

_TAGS = {"ok": "[green] ok [/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def format_check(check: Check, width: int = 15) -> str:
    """One check as rich markup: a status tag, the name, the detail (continuation lines indented)."""
    state = "ok" if check.ok else ("fail" if check.fatal else "warn")
    first, *rest = check.detail.splitlines() or [""]
    pad = " " * (width + 7)
    lines = [f"{_TAGS[state]}  {escape(check.name):<{width}} {escape(first)}"]
    lines += [f"{pad}{escape(line)}" for line in rest]
    return "\n".join(lines)


@app.command()
def doctor(
    config: Path | None = typer.Option(
        None, "--config", help="a run YAML: also check its dataset, checkpoint, heads and store disk"
    ),
    store: Path | None = typer.Option(
        None, "--store", help="a store to verify chunk by chunk (a config's store is verified too)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON (for scripts)"),
    prefect_timeout: float = typer.Option(
        DEFAULT_PREFECT_TIMEOUT_S, help="seconds to wait for the Prefect server named by PREFECT_API_URL"
    ),
    min_free_gib: float = typer.Option(
        DEFAULT_MIN_FREE_BYTES / (1 << 30), help="free disk below this (GiB) where the store goes fails"
    ),
) -> None:
    """Check torch/CUDA, sam2 (version and integrity), decord, zarr, Prefect, and what a run config names.

    Exit code 1 when a run would fail.
    """
    checks = run_checks(
        config,
        prefect_timeout=prefect_timeout,
        min_free_bytes=int(min_free_gib * (1 << 30)),
        store=store,
    )
    code = exit_code(checks)
    if as_json:
        print(json.dumps(checks_as_dict(checks), indent=1))
    else:
        for check in checks:
            console.print(format_check(check), highlight=False, soft_wrap=True)
        failed = [c.name for c in checks if c.failed]
        warned = [c.name for c in checks if not c.ok and not c.fatal]
        if failed:
            console.print(f"[bold red]a run would fail:[/] {escape(', '.join(failed))}", highlight=False)
        elif warned:
            console.print(f"[yellow]ready, with warnings:[/] {escape(', '.join(warned))}", highlight=False)
        else:
            console.print("[green]ready[/]", highlight=False)
    if code:
        raise typer.Exit(code)
