"""``usam-video release``, ``verify-release`` and ``audit``: training datasets out of a store.

All three run in this process (no Prefect; the ``release`` flow is for scheduled releases):
a release reads masks and frames and writes files, it runs no model. Bad input exits with
code 2 and one line naming what is wrong; the store is never written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import app, console, err_console, fail
from usam_video.errors import UsamVideoError

__all__ = ["release", "verify_release_cmd"]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


@app.command()
def release(
    store: Path = typer.Argument(..., help="path of a usam-video Zarr store"),
    fmt: str = typer.Option(..., "--format", help="sav, davis, ytvis or coco"),
    out: Path = typer.Option(..., "--out", help="new (or empty) folder, or an earlier release to replace"),
    policy: Path | None = typer.Option(
        None, "--policy", help="release policy YAML (default: configs/release/default.yaml's settings)"
    ),
    max_risk: float | None = typer.Option(
        None,
        "--max-risk",
        help="pick the threshold so that the share of bad labels (IoU < 0.5) stays below this",
    ),
    delta: float = typer.Option(0.1, "--delta", help="probability that the risk guarantee fails"),
    audit_size: int | None = typer.Option(
        None,
        "--audit-size",
        help="audit a stratified sample of this many candidates (default: all with truth)",
    ),
    audit_seed: int = typer.Option(0, "--audit-seed", help="seed of the audit sample"),
    video: list[str] = typer.Option(None, "--video", help="only these videos (repeatable)"),
    split: list[str] = typer.Option(
        None, "--split", help="NAME=FRACTION of videos (repeatable); the rest is train"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the split by video"),
    require_complete: bool = typer.Option(
        False,
        "--require-complete",
        help="refuse if any video is incomplete or failed instead of leaving it out",
    ),
    force: bool = typer.Option(False, "--force", help="replace a non-empty --out that is not a release"),
) -> None:
    """Write the store's released frame-objects as a training dataset, with a manifest (sha256 of
    every file), a table of every frame-object, and with --max-risk a certified threshold."""
    from usam_video.pipeline.release import load_policy_file, release_store
    from usam_video.release import parse_splits

    try:
        rules = load_policy_file(policy)
        outcome = release_store(
            store, fmt, out, policy=rules, max_risk=max_risk, delta=delta, audit_size=audit_size,
            audit_seed=audit_seed, video_ids=list(video) if video else None,
            splits=parse_splits(list(split) if split else []), seed=seed,
            require_complete=require_complete, force=force,
        )  # fmt: skip
    except UsamVideoError as exc:
        fail(exc)
    result = outcome.result
    table = Table(title=f"release {result.release_number} of {store} ({result.format})")
    for col in ("video", "split", "frames written"):
        table.add_column(col)
    for split_name, videos in result.splits.items():
        for video_id in videos:
            table.add_row(escape(video_id), split_name, str(result.frames[video_id]))
    console.print(table)
    counts = result.counts
    console.print(
        f"released {counts['released']} of {counts['frame_objects']} frame-objects "
        f"({counts['released_candidates']} of {counts['candidates']} pseudo-labels: coverage "
        f"{_fmt(result.coverage)})"
    )
    cert = result.certificate
    if cert is not None:
        verdict = "certified" if cert.certified else "NOT certified: no pseudo-label released by score"
        console.print(
            f"risk target {cert.max_risk:g} at delta {cert.delta:g}: {verdict}; audit {cert.audit_size} "
            f"({cert.audit_bad} bad), released audit {cert.released_audit} with {cert.released_bad} bad: "
            f"estimated risk {_fmt(cert.estimated_risk)}, upper bound {_fmt(cert.upper_bound)}"
        )
    for video_id, why in result.skipped.items():
        err_console.print(f"[bold yellow]not released:[/] {escape(video_id)}: {escape(why)}")
    console.print(f"wrote {result.out}")


@app.command("verify-release")
def verify_release_cmd(out: Path = typer.Argument(..., help="a release folder")) -> None:
    """Check every file of a release against its manifest's sha256 (exit 1 on any difference)."""
    from usam_video.release import verify_release

    try:
        problems = verify_release(out)
    except UsamVideoError as exc:
        fail(exc)
    for problem in problems:
        err_console.print(f"[bold red]damaged:[/] {escape(problem)}")
    if problems:
        raise typer.Exit(1)
    console.print(f"{out}: intact (every file matches the manifest)")
