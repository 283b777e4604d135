"""``usam-video report STORE --out DIR``: the review pages of a store as static HTML.

Runs :func:`usam_video.pipeline.report.write_static_report` in this process (no Prefect): an
``index.html`` with a row per video, most uncertain first, and a page per video with its
timeline, worst frames and review plan, readable without a server or attachable to a release.
"""

from __future__ import annotations

from pathlib import Path

import typer

from usam_video.cli.app import STORE_HELP, app, console, fail
from usam_video.errors import UsamVideoError

__all__ = ["report"]


@app.command()
def report(
    store: str = typer.Argument(..., help=STORE_HELP),
    out: Path = typer.Option(
        ..., "--out", help="folder for index.html and videos/ (new, empty, or an earlier report)"
    ),
    dataset: Path = typer.Option(
        None, "--dataset", help="dataset config YAML for frames and ground truth (default: the store's own)"
    ),
    max_videos: int = typer.Option(
        None, "--max-videos", min=0, help="pages for this many of the most uncertain videos (default: all)"
    ),
    worst: int = typer.Option(4, "--worst", min=1, help="worst frames drawn per video"),
    jf: bool = typer.Option(
        True, "--jf/--no-jf", help="J&F against the ground truth, when the dataset has it"
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="write into a non-empty folder that is not an earlier report (its index.html and "
        "videos/ are replaced, other files kept)",
    ),
) -> None:
    """Write a store's review report as static HTML: which videos and frames need a curator, and why."""
    from usam_video.config import load_dataset_config
    from usam_video.pipeline.report import write_static_report

    try:
        config = load_dataset_config(dataset) if dataset is not None else None
        index = write_static_report(
            store, out, config, max_pages=max_videos, worst=worst, ground_truth=jf, force=force
        )
    except UsamVideoError as exc:
        fail(exc)
    console.print(f"review report: {index.resolve()}", soft_wrap=True)
