"""``usam-video export`` and ``usam-video import``: the human-review round trip.

Both run in this process (no Prefect): an export decodes a few frames, an import validates the
files and re-propagates the touched videos. Bad input exits with code 2 and a message naming
every bad entry; the store is then unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from usam_video.cli.app import STORE_HELP, app, console, err_console, fail
from usam_video.cli.main import print_results
from usam_video.errors import UsamVideoError

__all__ = ["export", "import_", "print_export_result"]


def print_export_result(store: str | Path, result: Any) -> None:
    """The frames exported per video, the videos left out with why, and the frame-objects to
    review (the count ``queue`` shows) beside those shown for context."""
    table = Table(title=f"export of {store} ({result.format})")
    table.add_column("video")
    table.add_column("frames", justify="right")
    for video_id, n in result.frames.items():
        table.add_row(video_id, str(n))
    console.print(table)
    for video_id, why in result.skipped_videos.items():
        err_console.print(f"[bold yellow]not exported:[/] {video_id}: {why}")
    # The same count as `queue`: what the reviewer is asked about; the rest of each frame is context.
    context = (
        f", and {result.context} other frame-object{'' if result.context == 1 else 's'} of those frames "
        "for context (left as they are unless edited)"
        if result.context
        else ""
    )
    console.print(
        f"{result.queued} queued frame-object{'' if result.queued == 1 else 's'} to review{context}; "
        f"manifest: {result.manifest}",
        highlight=False,
    )


@app.command()
def export(
    store: str = typer.Argument(..., help=STORE_HELP),
    fmt: str = typer.Option(..., "--format", help="cvat (CVAT for video 1.1 XML), coco (JSON, RLE) or png"),
    out: Path = typer.Option(
        ..., "--out", help="new or empty folder, or an unedited earlier export (replaced) for the export"
    ),
    video: str | None = typer.Option(None, "--video", help="only this video"),
    all_queued: bool = typer.Option(
        False, "--all-queued", help="also frames queued for automatic refinement (not only human review)"
    ),
    force: bool = typer.Option(
        False, "--force", help="replace --out even if it holds other files or an edited earlier export"
    ),
) -> None:
    """Export the frames queued for human review with all their objects' masks, the frames'
    JPEGs and manifest.json, for annotators (import the corrected files with 'usam-video import')."""
    from usam_video.pipeline.review import export_queue

    try:
        result = export_queue(store, fmt, out, video_id=video, include_refine=all_queued, force=force)
    except UsamVideoError as exc:
        fail(exc)
    print_export_result(store, result)
    if not result.total_frames:
        console.print("nothing queued for review: the export holds no frames.")
    for path in result.annotations:
        console.print(f"wrote {path}")


@app.command("import")
def import_(
    store: str = typer.Argument(..., help=STORE_HELP),
    path: Path = typer.Argument(
        ..., help="an export folder, a CVAT .xml, a COCO .json or a masks/ folder written by 'export'"
    ),
    no_relabel: bool = typer.Option(
        False, "--no-relabel", help="store the corrections without propagating the videos again"
    ),
) -> None:
    """Import corrected masks: validate every entry (nothing is written if one is bad), store
    them as human corrections, and propagate the touched videos again from them."""
    from usam_video.pipeline.review import import_corrections

    try:
        result = import_corrections(store, path, relabel=not no_relabel)
    except UsamVideoError as exc:
        fail(exc)
    resumed = "; resumed an interrupted run of this import" if result.resumed else ""
    if not result.total_corrected and not result.relabelled:
        console.print(f"nothing to import: {result.describe()}{resumed}.", highlight=False)
        return
    table = Table(title=f"corrections imported from {path} ({result.format})")
    table.add_column("video")
    table.add_column("corrected", justify="right")
    for video_id, n in result.corrected.items():
        table.add_row(video_id, str(n))
    console.print(table)
    console.print(f"{result.describe()}; store generation {result.generation}{resumed}", highlight=False)
    if result.relabelled:
        failed = print_results(list(result.relabelled))
        if failed:
            raise typer.Exit(1)
    else:
        console.print("not relabelled (--no-relabel): the next relabel of these videos uses the corrections.")
