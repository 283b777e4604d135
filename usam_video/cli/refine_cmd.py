"""``usam-video refine STORE``: run the automatic refinements over a store's queue (Prefect flow)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import STORE_HELP, app, console, err_console, fail, one_line_task_failures
from usam_video.errors import UsamVideoError

__all__ = ["refine"]


@app.command()
def refine(
    store: str = typer.Argument(..., help=STORE_HELP),
    video: list[str] = typer.Option(None, "--video", help="only these videos (repeatable)"),
) -> None:
    """Rerun frame-objects routed to the larger SAM 2 with it and write its masks."""
    from usam_video.store import PseudoLabelStore

    try:
        PseudoLabelStore.open(store, mode="r")
    except UsamVideoError as exc:
        fail(exc)
    from flows import bind_embedded_server
    from flows.refine import refine_flow

    bind_embedded_server()  # before the first flow run: see flows/__init__.py

    try:
        with one_line_task_failures():
            results = refine_flow(str(store), list(video) if video else None)
    except UsamVideoError as exc:
        fail(exc)
    table = Table(title=f"refinement of {store}")
    for col in ("video", "refined", "left queued", "model"):
        table.add_column(col)
    for r in results:
        if r.failed:  # nothing is known of its queue: the reason instead of counts
            table.add_row(r.video_id, f"[red]failed[/]: {escape(r.error)}", "-", "-")
        else:
            table.add_row(r.video_id, str(r.refined), str(r.left_queued), r.model or "-")
    console.print(table)
    failed = [r for r in results if r.failed]
    if failed:
        for r in failed:  # one line each, whole, for logs and scripts
            err_console.print(f"[bold red]error:[/] {escape(r.error)}", soft_wrap=True)
        err_console.print(f"[bold red]{len(failed)} of {len(results)} video(s) failed to refine[/]")
        raise typer.Exit(1)
